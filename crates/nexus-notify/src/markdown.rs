//! MarkdownV2 escaping and a message builder that renders the same content
//! as MarkdownV2 and as plain text (the fallback when Telegram rejects the
//! entities).

/// Escapes text for MarkdownV2 outside code: every one of
/// `_ * [ ] ( ) ~ ` > # + - = | { } . !` and `\` gets a backslash.
pub fn escape_markdown_v2(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(
            c,
            '_' | '*'
                | '['
                | ']'
                | '('
                | ')'
                | '~'
                | '`'
                | '>'
                | '#'
                | '+'
                | '-'
                | '='
                | '|'
                | '{'
                | '}'
                | '.'
                | '!'
                | '\\'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes text for a MarkdownV2 `code` span: only `` ` `` and `\`.
pub fn escape_markdown_v2_code(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '`' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A message in two renderings. Build it with the chaining methods; every
/// piece of text is escaped, so arbitrary error strings are safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    markdown: String,
    plain: String,
}

impl Text {
    /// Empty in both renderings; add text with the chaining methods.
    pub fn new() -> Text {
        Text::default()
    }

    /// Plain text.
    pub fn text(mut self, s: &str) -> Text {
        self.markdown.push_str(&escape_markdown_v2(s));
        self.plain.push_str(s);
        self
    }

    /// Bold text.
    pub fn bold(mut self, s: &str) -> Text {
        self.markdown.push('*');
        self.markdown.push_str(&escape_markdown_v2(s));
        self.markdown.push('*');
        self.plain.push_str(s);
        self
    }

    /// Monospace text.
    pub fn code(mut self, s: &str) -> Text {
        self.markdown.push('`');
        self.markdown.push_str(&escape_markdown_v2_code(s));
        self.markdown.push('`');
        self.plain.push_str(s);
        self
    }

    /// Appends a newline to both renderings.
    pub fn line(mut self) -> Text {
        self.markdown.push('\n');
        self.plain.push('\n');
        self
    }

    /// The MarkdownV2 rendering.
    pub fn markdown(&self) -> &str {
        &self.markdown
    }

    /// Same content without MarkdownV2 markup: the fallback when Telegram rejects the markup.
    pub fn plain(&self) -> &str {
        &self.plain
    }

    /// Both renderings cut to Telegram's 4096-character limit.
    pub(crate) fn bounded(&self) -> (String, String) {
        fn cut(s: &str, max: usize) -> String {
            if s.chars().count() <= max {
                return s.to_owned();
            }
            let mut t: String = s.chars().take(max - 2).collect();
            // Never end on a lone escape backslash.
            while t.ends_with('\\') {
                t.pop();
            }
            t.push('…');
            t
        }
        (cut(&self.markdown, 4000), cut(&self.plain, 4000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_reserved_character() {
        assert_eq!(
            escape_markdown_v2("a_b*c[d](e)~`>#+-=|{}.!\\"),
            "a\\_b\\*c\\[d\\]\\(e\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\"
        );
        assert_eq!(escape_markdown_v2("plain words 123"), "plain words 123");
        assert_eq!(escape_markdown_v2_code("a`b\\c_d"), "a\\`b\\\\c_d");
    }

    #[test]
    fn builder_renders_both_forms() {
        let t = Text::new()
            .bold("disk_usage")
            .text(": 95.5% (db-1)")
            .line()
            .code("x`y");
        assert_eq!(
            t.markdown(),
            "*disk\\_usage*: 95\\.5% \\(db\\-1\\)\n`x\\`y`"
        );
        assert_eq!(t.plain(), "disk_usage: 95.5% (db-1)\nx`y");
    }

    #[test]
    fn long_messages_are_cut_without_a_dangling_escape() {
        let t = Text::new().text(&".".repeat(5000));
        let (md, plain) = t.bounded();
        assert!(md.chars().count() <= 4000 && plain.chars().count() <= 4000);
        assert!(md.ends_with('…'));
        assert!(!md.trim_end_matches('…').ends_with('\\'), "{md}");
    }
}
