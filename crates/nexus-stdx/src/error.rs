//! Errors as one line of text.

/// An error and its sources on one line: `a: b: c`. A source whose text the
/// line already holds (errors that print their source themselves) is skipped.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<Wrap>>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|w| w as _)
        }
    }

    #[test]
    fn joins_sources_and_skips_repeats() {
        let e = Wrap(
            "a",
            Some(Box::new(Wrap("b", Some(Box::new(Wrap("c", None)))))),
        );
        assert_eq!(error_chain(&e), "a: b: c");
        let e = Wrap("connect: refused", Some(Box::new(Wrap("refused", None))));
        assert_eq!(error_chain(&e), "connect: refused");
    }
}
