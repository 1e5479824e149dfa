//! URLs in messages: never with the credentials or the query they carry.

/// A URL for messages and logs: no user info (`user:password@`), no query
/// string and no fragment (either may hold a token). Everything up to the
/// last `@` before the query is user info, even where a malformed URL has
/// an unencoded `/` in its password: the message errs on the side of the
/// secret (a path holding an `@` is cut there too).
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = match no_query.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, no_query),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_query_and_fragment_never_shown() {
        for (url, shown) in [
            ("http://u:p@h:1/health?token=x", "http://h:1/health"),
            ("http://pool:8767", "http://pool:8767"),
            (
                "https://user:s3cret@pool.example/ping/",
                "https://pool.example/ping/",
            ),
            ("http://:s3cret@127.0.0.1:9/", "http://127.0.0.1:9/"),
            ("http://user:pa/s3cret@host/x", "http://host/x"),
            ("user:s3cret@host:8767", "host:8767"),
            ("ws://h/socket#s3cret", "ws://h/socket"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
