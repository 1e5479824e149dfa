//! Credentials in probe specs and how they are shown: [`ConnString`],
//! `Secret` (`nexus_secret`'s, re-exported), the secrets a URL carries and
//! `redact_url`. The probe modules
//! and `config` both import from here, so imports run one way
//! (`config` → probe modules → `secrets`).

use nexus_secret::Redactor;
use serde::Deserialize;

pub use nexus_secret::Secret;

/// A connection string that may hold a password (`redis://:pw@host`,
/// `postgres://user:pw@host/db`, `password=pw`), held in a [`Secret`]:
/// `Debug` shows none of it, [`ConnString::redacted`] all but the password;
/// [`ConnString::scrub`] removes the password from error text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnString(Secret);

impl ConnString {
    /// Empty or whitespace only: the database is not configured
    /// (docs/SPEC.md §4.2 items 3, 4, 6).
    pub fn is_blank(&self) -> bool {
        self.0.is_blank()
    }

    /// Wraps a connection string.
    pub fn new(s: impl Into<String>) -> ConnString {
        ConnString(Secret::new(s))
    }

    /// The full string, password included: only for handing to a driver.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The password, if the string has one.
    pub(crate) fn password(&self) -> Option<&str> {
        let s = self.0.expose();
        if let Some((_, rest)) = s.split_once("://") {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let userinfo = authority.rsplit_once('@')?.0;
            return userinfo
                .split_once(':')
                .map(|(_, pw)| pw)
                .filter(|p| !p.is_empty());
        }
        s.split_whitespace()
            .find_map(|kv| kv.strip_prefix("password="))
            .map(|p| p.trim_matches('\''))
            .filter(|p| !p.is_empty())
    }

    /// The string with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        self.scrub(self.0.expose())
    }

    /// `text` with every occurrence of the password (as is or encoded)
    /// replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        Redactor::new()
            .secret(self.password().unwrap_or_default())
            .redact(text)
            .into_owned()
    }
}

/// The secrets a URL may carry: the user-info password (or the user, when
/// it stands alone: `https://<token>@host`) and query values long enough to
/// be tokens (shorter ones, `?verbose=1`, would only garble messages).
pub(crate) fn url_secrets(url: &str, r: &mut Redactor) {
    let Some((_, rest)) = url.split_once("://") else {
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        match userinfo.split_once(':') {
            Some((_, password)) => r.add(password),
            None => r.add(userinfo),
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split('#').next().unwrap_or("");
        for value in query
            .split('&')
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
        {
            if value.len() >= 8 {
                r.add(value);
            }
        }
    }
}

/// A URL for messages: no user info, no query string (either may hold a token).
pub(crate) use nexus_secret::redact_url;
