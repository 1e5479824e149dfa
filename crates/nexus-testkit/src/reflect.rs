//! A server that reflects the request in its error body, as some proxies
//! and misconfigured servers do: the request line (path and query: a
//! Telegram `/bot<token>/` path) and every header (`Authorization: token
//! …`), as they came, percent-encoded and base64-encoded, behind escape
//! sequences and line breaks meant to colour a terminal and to forge a log
//! line ([`FORGED`]). Whatever a client makes of it (its error, its log
//! lines, what it stores) must pass [`assert_clean`].

use base64::Engine as _;
use serde_json::json;

use crate::HttpResponse;

/// The log line a reflecting server tries to forge, after a line break.
pub const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR nexus: forged log line";

/// The hostile reflection of a request head.
pub fn echo(head: &str) -> String {
    let mut url = String::new();
    for b in head.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(head);
    format!(
        "\u{1b}[2J\u{1b}[31mrequest refused\u{1b}[0m\r\n{FORGED}\n\u{9b}1m{head}\u{85} \
         url={url}\u{2028}b64={b64}\u{7}\u{0}"
    )
}

/// A Gitea `APIError` body reflecting `head` (`message`, `url`).
pub fn gitea_error(head: &str) -> String {
    json!({"message": echo(head), "url": "https://git.example.com/api/swagger"}).to_string()
}

/// A Bot API error body (`ok: false`, `error_code`, `description`)
/// reflecting `head`.
pub fn telegram_error(status: u16, head: &str) -> String {
    json!({"ok": false, "error_code": status, "description": echo(head)}).to_string()
}

/// A plain-text reply of `status` reflecting `head` (any other server).
pub fn text_error(status: u16, head: &str) -> HttpResponse {
    HttpResponse::text(status, &echo(head))
}

/// The head of a mockito request, as [`crate::HttpServer`] passes it.
pub fn head_of(req: &mockito::Request) -> String {
    let mut head = format!("{} {} HTTP/1.1", req.method(), req.path_and_query());
    for (name, value) in req.headers() {
        head.push_str(&format!(
            "\r\n{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    head
}

/// Panics, naming `what`, if `text` (an error, or log lines separated by
/// `\n`) holds a canary in any form, a control character other than the
/// line breaks between log lines, or a line the server forged.
pub fn assert_clean(what: &str, text: &str) {
    crate::canary::assert_no_canary(what, text.as_bytes());
    let bad: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && (c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')))
        .collect();
    assert!(
        bad.is_empty(),
        "control characters {bad:?} in {what}:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with(FORGED)),
        "a forged line in {what}:\n{text}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_fails_the_check_and_its_sanitised_form_passes() {
        let head = format!(
            "POST /bot{}/sendMessage HTTP/1.1\r\nauthorization: token {}",
            crate::canary::TELEGRAM_TOKEN,
            crate::gitea::TOKEN
        );
        let raw = echo(&head);
        assert!(std::panic::catch_unwind(|| assert_clean("raw", &raw)).is_err());
        // Every encoding of each canary is caught on its own.
        for part in raw.split(['\u{2028}', ' ']) {
            if part.starts_with("url=") || part.starts_with("b64=") {
                assert_eq!(crate::canary::leaks(part.as_bytes()).len(), 2, "{part}");
            }
        }
        assert!(
            std::panic::catch_unwind(|| assert_clean("forged", &format!("ok\n{FORGED}"))).is_err()
        );
        assert_clean("clean", "line one ***\nline two");
    }
}
