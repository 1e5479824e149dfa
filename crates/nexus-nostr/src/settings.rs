//! `[nostr]`: relays, recipient, approvers, the secret key's source.

use std::path::PathBuf;
use std::time::Duration;

use nexus_secret::Secret;
use nexus_stdx::deserialize_duration;
use nostr::{FromBech32, Keys, PublicKey};
use serde::Deserialize;

use crate::Error;

/// Which direct messages are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dm {
    /// NIP-17: a kind-14 message sealed (NIP-44) and gift-wrapped (NIP-59)
    /// under a throw-away key. What current clients read; relays see
    /// neither the sender nor the time.
    #[default]
    Nip17,
    /// NIP-04: the seed's kind 4 (AES-CBC, sender and recipient visible).
    /// For old clients only.
    Nip04,
}

/// `[nostr]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NostrSettings {
    /// One relay (the seed's key).
    pub relay_url: Option<String>,
    /// More relays; a request counts once one of them accepted it.
    pub relays: Vec<String>,
    /// The public key (hex or `npub`) the requests are sent to.
    pub recipient_pubkey: String,
    /// Keys allowed to answer, besides the recipient (hex or `npub`); each
    /// is sent the request too.
    pub approvers: Vec<String>,
    /// The variable holding the secret key (hex or `nsec`).
    pub token_env: String,
    /// A file holding it, mode 0600 or stricter; used when the variable is
    /// not set.
    pub token_file: Option<PathBuf>,
    /// A secret key from a seed JSON file, or the variable's once
    /// [`NostrSettings::with_env`] has run; the file wins over a seed's.
    #[serde(skip)]
    pub secret_key: Option<Secret>,
    /// `nip17` (default) or `nip04`.
    pub dm: Dm,
    /// A relay's `OK` (or `EOSE`) must come within this.
    #[serde(deserialize_with = "deserialize_duration")]
    pub ok_timeout: Duration,
    /// A relay that failed is skipped this long, doubling per failure…
    #[serde(deserialize_with = "deserialize_duration")]
    pub backoff_initial: Duration,
    /// …up to this.
    #[serde(deserialize_with = "deserialize_duration")]
    pub backoff_max: Duration,
}

impl Default for NostrSettings {
    fn default() -> NostrSettings {
        NostrSettings {
            relay_url: None,
            relays: Vec::new(),
            recipient_pubkey: String::new(),
            approvers: Vec::new(),
            token_env: "NOSTR_SECRET_KEY".to_string(),
            token_file: None,
            secret_key: None,
            dm: Dm::Nip17,
            ok_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Why a public key does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PubkeyError {
    /// It starts like an `npub` but is not one.
    #[error("{key:?} is not a valid npub: {why}")]
    Npub {
        /// Key as given, trimmed.
        key: String,
        /// The bech32 decoder's reason.
        why: String,
    },
    /// Neither an `npub` nor 64 hex digits.
    #[error("{key:?} is not a 64-hex-digit public key or an npub")]
    Hex {
        /// Key as given, trimmed.
        key: String,
    },
}

/// A public key in hex or `npub` form.
pub fn parse_pubkey(s: &str) -> Result<PublicKey, PubkeyError> {
    let s = s.trim();
    if s.starts_with("npub1") {
        PublicKey::from_bech32(s).map_err(|e| PubkeyError::Npub {
            key: s.to_string(),
            why: e.to_string(),
        })
    } else {
        PublicKey::from_hex(s).map_err(|_| PubkeyError::Hex { key: s.to_string() })
    }
}

impl NostrSettings {
    /// Every relay: `relay_url` first, then `relays`, without repeats.
    pub fn relay_urls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in self.relay_url.iter().chain(&self.relays) {
            let u = u.trim();
            if !u.is_empty() && !out.iter().any(|o| o == u) {
                out.push(u.to_string());
            }
        }
        out
    }

    /// Whether the section asks for anything at all (the seed writes an
    /// empty `nostr` object when unused).
    pub fn is_configured(&self) -> bool {
        !self.relay_urls().is_empty() || !self.recipient_pubkey.trim().is_empty()
    }

    /// The recipient then the approvers, parsed, without repeats.
    pub fn approver_keys(&self) -> Result<Vec<PublicKey>, Error> {
        let mut out = vec![
            parse_pubkey(&self.recipient_pubkey).map_err(|e| Error::Config {
                field: "recipient_pubkey",
                why: e.to_string(),
            })?,
        ];
        for a in &self.approvers {
            let k = parse_pubkey(a).map_err(|e| Error::Config {
                field: "approvers",
                why: e.to_string(),
            })?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Checks everything but the secret key: relay URLs, keys, deadlines.
    pub fn validate(&self) -> Result<(), Error> {
        let urls = self.relay_urls();
        if urls.is_empty() {
            return Err(Error::Config {
                field: "relay_url",
                why: "no relay: set `relay_url` or `relays`".into(),
            });
        }
        for u in &urls {
            if !(u.starts_with("ws://") || u.starts_with("wss://")) || u.len() < 8 {
                return Err(Error::Config {
                    field: "relays",
                    why: format!("{u:?} is not a ws:// or wss:// URL"),
                });
            }
        }
        self.approver_keys()?;
        if self.ok_timeout.is_zero() {
            return Err(Error::Config {
                field: "ok_timeout",
                why: "must be more than 0s".into(),
            });
        }
        Ok(())
    }

    /// The environment override, resolved once by the binary: `$token_env`
    /// when set and not blank wins over `token_file` and a seed's key.
    pub fn with_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> NostrSettings {
        if let Some(k) = env(&self.token_env).as_deref().and_then(Secret::trimmed) {
            self.secret_key = Some(k);
            self.token_file = None;
        }
        self
    }

    /// The secret key: `token_file`'s, else [`NostrSettings::secret_key`]
    /// (the variable's after [`NostrSettings::with_env`], or the seed's);
    /// `None` when there is none. An unusable file or a malformed key is an
    /// error that never quotes the key.
    pub fn keys(&self) -> Result<Option<Keys>, Error> {
        let raw = nexus_secret::token(None, self.token_file.as_deref())
            .map_err(|e| Error::Config {
                field: "token_file",
                why: e.to_string(),
            })?
            .or_else(|| self.secret_key.clone().filter(|s| !s.is_blank()));
        let Some(raw) = raw else {
            return Ok(None);
        };
        Keys::parse(raw.expose().trim()).map(Some).map_err(|_| Error::Config {
            field: "secret_key",
            why: format!(
                "the key in ${} (or token_file, or the seed's secret_key) is not a 64-hex-digit or nsec secret key",
                self.token_env
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_errors_never_quote_the_secret() {
        let k = Keys::generate();
        let hex = k.secret_key().to_secret_hex();
        let s = NostrSettings {
            token_env: "NEXUS_NOSTR_TEST_UNSET_VAR".into(),
            secret_key: Some(Secret::new(hex.clone())),
            ..NostrSettings::default()
        };
        assert_eq!(s.keys().unwrap().unwrap().public_key(), k.public_key());
        assert!(!format!("{s:?}").contains(&hex));
        let bad = NostrSettings {
            secret_key: Some(Secret::new(format!("{}zz", &hex[..62]))),
            ..s.clone()
        };
        let e = bad.keys().unwrap_err().to_string();
        assert!(e.contains("secret_key") && !e.contains(&hex[..62]), "{e}");
        let none = NostrSettings {
            secret_key: None,
            ..s
        };
        assert!(none.keys().unwrap().is_none());
        // The variable, resolved by the binary, wins over the seed's key.
        let other = Keys::generate();
        let var = other.secret_key().to_secret_hex();
        let env = |k: &str| (k == "NEXUS_NOSTR_TEST_UNSET_VAR").then(|| var.clone());
        let from_env = none.with_env(&env);
        assert_eq!(
            from_env.keys().unwrap().unwrap().public_key(),
            other.public_key()
        );
        assert!(!format!("{from_env:?}").contains(&var));
    }

    #[test]
    fn validation_names_the_bad_key() {
        let pk = Keys::generate().public_key();
        let good = NostrSettings {
            relay_url: Some("ws://127.0.0.1:1".into()),
            recipient_pubkey: pk.to_hex(),
            ..NostrSettings::default()
        };
        good.validate().unwrap();
        for (s, needle) in [
            (
                NostrSettings {
                    recipient_pubkey: "abc".into(),
                    ..good.clone()
                },
                "recipient_pubkey",
            ),
            (
                NostrSettings {
                    approvers: vec!["npub1nope".into()],
                    ..good.clone()
                },
                "approvers",
            ),
            (
                NostrSettings {
                    relays: vec!["http://x".into()],
                    ..good.clone()
                },
                "relays",
            ),
            (
                NostrSettings {
                    relay_url: None,
                    ..good.clone()
                },
                "relay_url",
            ),
        ] {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
