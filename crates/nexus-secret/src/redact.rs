//! Text a server sent back, made safe to log, print or store.
//!
//! A server may echo the request in its error body (headers, path, query):
//! `authorization: token …`, `/bot<token>/sendMessage`, sometimes
//! URL-encoded or base64-encoded. It may also put escape sequences and line
//! breaks into its `message`, which would colour a terminal or forge log
//! lines. [`Redactor::clean`] is the one way server text reaches a log line,
//! an error or a state file:
//!
//! 1. control characters are taken out: ANSI/VT escape sequences (CSI, OSC,
//!    DCS … with their parameters) vanish whole; every other C0 or C1
//!    character, DEL, the Unicode line and paragraph separators and the
//!    bidirectional overrides become one space per run;
//! 2. every known secret is replaced by `***`, in each form a server could
//!    echo it in: as is, percent-encoded (upper- or lower-case hex) and
//!    base64-encoded (standard or URL-safe alphabet, at any of the three
//!    byte alignments, so a token inside a longer encoded text is found);
//! 3. the result is cut to a fixed number of characters (`…` marks a cut).
//!
//! Redaction runs on the whole text before the cut, so a cut never leaves a
//! token's first characters behind, and both before and after the controls
//! are taken out, so an escape sequence next to or inside a token does not
//! hide it.

use std::borrow::Cow;
use std::fmt;

/// The longest excerpt of server text kept in an error or a log line.
pub const EXCERPT_CHARS: usize = 300;

/// What a secret is replaced by.
pub const REDACTED: &str = "***";

/// Encoded forms shorter than this are not redacted (they would match
/// ordinary words); the secret itself is always redacted.
const MIN_DERIVED: usize = 8;

/// The secrets a client knows, in every form a server could echo them in.
/// `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first.
    forms: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms: ***)", self.forms.len())
    }
}

impl Redactor {
    /// A redactor that knows no secret (it still strips controls and cuts).
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Adds a secret (blank ones are ignored) with its encoded forms.
    pub fn secret(mut self, secret: &str) -> Redactor {
        self.add(secret);
        self
    }

    /// Adds a secret (blank ones are ignored) with its encoded forms.
    pub fn add(&mut self, secret: &str) {
        if secret.trim().is_empty() {
            return;
        }
        let mut forms = vec![secret.to_owned()];
        for upper in [true, false] {
            forms.push(percent_encode(secret.as_bytes(), upper));
        }
        for align in 0..3 {
            for url_safe in [false, true] {
                forms.push(base64_inner(secret.as_bytes(), align, url_safe));
            }
        }
        for (i, form) in forms.into_iter().enumerate() {
            let usable = i == 0 || form.len() >= MIN_DERIVED;
            if usable && !self.forms.contains(&form) {
                self.forms.push(form);
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// Whether no secret is known.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every form of every known secret replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
        out
    }

    /// Server text made safe for a log line, an error or a file: controls
    /// out, secrets redacted, at most `max_chars` characters (plus `…`).
    /// Borrowed when nothing had to change.
    pub fn clean<'a>(&self, text: &'a str, max_chars: usize) -> Cow<'a, str> {
        // Before stripping too: an escape sequence just before a token
        // would otherwise swallow its first character and hide the rest.
        let redacted = match self.redact(text) {
            Cow::Borrowed(t) => strip_controls(t),
            Cow::Owned(t) => Cow::Owned(strip_controls(&t).into_owned()),
        };
        let redacted = match self.redact(&redacted) {
            Cow::Borrowed(_) => redacted,
            Cow::Owned(s) => Cow::Owned(s),
        };
        match redacted.char_indices().nth(max_chars) {
            None => redacted,
            Some((cut, _)) => Cow::Owned(format!("{}…", &redacted[..cut])),
        }
    }
}

/// [`Redactor::clean`] for text that can hold no known secret.
pub fn clean(text: &str, max_chars: usize) -> Cow<'_, str> {
    Redactor::new().clean(text, max_chars)
}

/// A character that must not reach a log line as is.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` without escape sequences (they vanish, so one put inside a word
/// does not split it), with every other run of control characters turned
/// into one space (none at either end).
pub fn strip_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut gap = false;
    while let Some(c) = chars.next() {
        if !is_control(c) {
            if gap && !out.is_empty() && c != ' ' && !out.ends_with(' ') {
                out.push(' ');
            }
            gap = false;
            out.push(c);
            continue;
        }
        // Which sequence, if any, this character introduces.
        let kind = match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    Seq::Csi
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    Seq::Text
                }
                Some(&n) if (' '..='~').contains(&n) => {
                    chars.next();
                    Seq::Short
                }
                _ => Seq::None,
            },
            '\u{9b}' => Seq::Csi,
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => Seq::Text,
            _ => Seq::None,
        };
        match kind {
            // A lone control character separates what is around it.
            Seq::None => gap = true,
            Seq::Short => {}
            // Parameters and intermediates, up to the final byte.
            Seq::Csi => {
                while let Some(&n) = chars.peek() {
                    if is_control(n) {
                        break; // the outer loop takes it
                    }
                    chars.next();
                    if ('\u{40}'..='\u{7e}').contains(&n) {
                        break;
                    }
                }
            }
            // Up to BEL, ESC \ or ST.
            Seq::Text => {
                while let Some(n) = chars.next() {
                    if n == '\u{7}' || n == '\u{9c}' {
                        break;
                    }
                    if n == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
        }
    }
    Cow::Owned(out)
}

/// What a control character starts.
enum Seq {
    /// Nothing: a lone control character.
    None,
    /// A two-character escape (`ESC 7`, `ESC c`), already consumed.
    Short,
    /// A control sequence: parameters up to a final byte.
    Csi,
    /// A string (OSC, DCS, …) up to its terminator.
    Text,
}

/// Every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(bytes: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The base64 characters that encode `bytes` alone when they start at
/// byte offset `align` (mod 3) of a longer text: the characters any
/// encoding of a text holding `bytes` at that offset contains.
fn base64_inner(bytes: &[u8], align: usize, url_safe: bool) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut data = vec![0u8; align];
    data.extend_from_slice(bytes);
    let mut chars = Vec::with_capacity(data.len() * 4 / 3 + 4);
    for group in data.chunks(3) {
        let mut g = [0u8; 3];
        g[..group.len()].copy_from_slice(group);
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        for k in 0..4 {
            chars.push(STD[(n >> (18 - 6 * k) & 63) as usize]);
        }
    }
    // Character i covers bits [6i, 6i + 6) of the data; keep those that lie
    // wholly inside the secret's bits [8 align, 8 (align + len)).
    let first = (8 * align).div_ceil(6);
    let end = (8 * data.len()) / 6;
    let inner = chars.get(first..end).unwrap_or_default();
    inner
        .iter()
        .map(|&c| match (url_safe, c) {
            (true, b'+') => '-',
            (true, b'/') => '_',
            (_, c) => char::from(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cr3t-t0ken-value";
    const BOT: &str = "123456:test-token";

    /// Base64 written independently of the code under test (RFC 4648 test
    /// vectors below pin it).
    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = String::new();
        for &b in data {
            bits = bits << 8 | u32::from(b);
            n += 8;
            while n >= 6 {
                n -= 6;
                out.push(char::from(A[(bits >> n & 63) as usize]));
            }
        }
        if n > 0 {
            out.push(char::from(A[(bits << (6 - n) & 63) as usize]));
        }
        while !out.len().is_multiple_of(4) {
            out.push('=');
        }
        out
    }

    #[test]
    fn the_reference_base64_is_rfc_4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(i.as_bytes()), o);
        }
    }

    #[test]
    fn a_secret_is_redacted_as_is_percent_encoded_and_base64_encoded() {
        let r = Redactor::new().secret(TOKEN).secret(BOT);
        for prefix in ["", "a", "ab", "abc", "authorization: token "] {
            for secret in [TOKEN, BOT] {
                let raw = format!("{prefix}{secret} and more");
                let url = format!("{prefix}{}", secret.replace(':', "%3A"));
                let url_lower = secret.replace(':', "%3a");
                let enc = b64(raw.as_bytes());
                let enc_url = enc.replace('+', "-").replace('/', "_");
                for text in [raw.clone(), url, url_lower, enc, enc_url] {
                    let out = r.clean(&text, 10_000);
                    assert!(!out.contains(secret), "{text} -> {out}");
                    let inner: Vec<String> = (0..3)
                        .map(|a| base64_inner(secret.as_bytes(), a, false))
                        .collect();
                    assert!(
                        inner.iter().all(|f| !out.contains(f.as_str())),
                        "{text} -> {out}"
                    );
                    assert!(out.contains(REDACTED), "{text} -> {out}");
                }
            }
        }
        // The bot token inside a URL path, as a reflecting server shows it.
        let line = format!("POST /bot{BOT}/sendMessage HTTP/1.1");
        assert_eq!(r.clean(&line, 1000), "POST /bot***/sendMessage HTTP/1.1");
    }

    #[test]
    fn escape_sequences_and_line_breaks_cannot_forge_a_log_line() {
        let hostile = "\u{1b}[2J\u{1b}[31mred\u{1b}[0m\r\n2026-01-01T00:00:00Z ERROR forged\n\
                       \u{1b}]0;title\u{7}osc \u{9b}31mc1\u{85}nel\u{2028}ls \u{202e}rlo\u{0}nul\u{7f}del";
        let out = clean(hostile, 1000);
        assert_eq!(
            out,
            "red 2026-01-01T00:00:00Z ERROR forged osc c1 nel ls rlo nul del"
        );
        assert!(!out.chars().any(is_control), "{out:?}");
        // Plain text is borrowed, unchanged.
        assert!(matches!(
            clean("plain text", 100),
            Cow::Borrowed("plain text")
        ));
        // An escape inside a token does not hide it.
        let r = Redactor::new().secret(TOKEN);
        let split = format!("{}\u{1b}[0m{}", &TOKEN[..5], &TOKEN[5..]);
        assert_eq!(r.clean(&split, 100), REDACTED);
    }

    #[test]
    fn excerpts_are_cut_after_redaction() {
        let r = Redactor::new().secret(TOKEN);
        let long = format!("{}{TOKEN}{}", "x".repeat(10), "y".repeat(500));
        let out = r.clean(&long, 20);
        assert_eq!(out, format!("{}***{}…", "x".repeat(10), "y".repeat(7)));
        assert_eq!(out.chars().count(), 21);
        // Multi-byte characters are cut on a character boundary.
        assert_eq!(clean("ééééé", 3), "ééé…");
        assert_eq!(clean(&"é".repeat(3), 3), "ééé");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn no_secret_and_no_control_character_survives(
            before in "(?s).{0,40}",
            after in "(?s).{0,40}",
            which in 0..2usize,
            encode in 0..3usize,
            max in 1..200usize,
        ) {
            let secret = [TOKEN, BOT][which];
            let raw = format!("{before}{secret}{after}");
            let text = match encode {
                0 => raw,
                1 => b64(raw.as_bytes()),
                _ => format!("{before}{}{after}", secret.replace(':', "%3a")),
            };
            let r = Redactor::new().secret(TOKEN).secret(BOT);
            let out = r.clean(&text, max);
            proptest::prop_assert!(!out.contains(secret), "{:?} -> {:?}", text, out);
            for f in &r.forms {
                proptest::prop_assert!(!out.contains(f.as_str()), "{:?} -> {:?}", text, out);
            }
            proptest::prop_assert!(!out.chars().any(is_control), "{:?}", out);
            proptest::prop_assert!(out.chars().count() <= max + 1);
        }
    }

    #[test]
    fn short_or_blank_secrets_do_not_eat_ordinary_words() {
        let r = Redactor::new().secret("  ").secret("pw");
        assert_eq!(r.clean("the pw is here", 100), "the *** is here");
        assert!(
            !Redactor::new()
                .secret("")
                .secret(" \n")
                .redact("x")
                .contains('*')
        );
        assert!(Redactor::new().secret("\t").is_empty());
        let debug = format!("{:?}", Redactor::new().secret(TOKEN));
        assert!(!debug.contains(TOKEN) && debug.contains("***"), "{debug}");
    }
}
