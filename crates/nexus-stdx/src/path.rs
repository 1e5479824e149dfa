//! Paths as people write them in config files.

use std::path::{Path, PathBuf};

/// Expands a leading `~` component (`~` or `~/...`) with `$HOME`.
///
/// When `HOME` is unset or empty the path is returned unexpanded (still
/// starting with `~`), so whatever the caller does with it fails with an
/// error that names the path as written. It never guesses: expanding to a
/// relative path (`~/x` → `x`) would silently read or write beside the
/// process's working directory instead. `~user/...` is not expanded.
pub fn expand_home(p: &Path) -> PathBuf {
    expand_home_with(p, std::env::var_os("HOME").as_deref())
}

/// [`expand_home`] with `$HOME` given (testable without touching the
/// process environment).
pub fn expand_home_with(p: &Path, home: Option<&std::ffi::OsStr>) -> PathBuf {
    match (p.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) if !home.is_empty() => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn expands_a_leading_tilde_with_home() {
        let home = Some(OsStr::new("/home/ann"));
        assert_eq!(
            expand_home_with(Path::new("~/hb.json"), home),
            Path::new("/home/ann/hb.json")
        );
        assert_eq!(
            expand_home_with(Path::new("~"), home),
            Path::new("/home/ann")
        );
        for untouched in ["/abs/~/x", "rel/x", "~ann/x", "x~"] {
            assert_eq!(
                expand_home_with(Path::new(untouched), home),
                Path::new(untouched)
            );
        }
    }

    #[test]
    fn leaves_the_path_unexpanded_when_home_is_unset_or_empty() {
        for home in [None, Some(OsStr::new(""))] {
            assert_eq!(
                expand_home_with(Path::new("~/hb.json"), home),
                Path::new("~/hb.json"),
                "{home:?}"
            );
        }
    }
}
