//! `[nostr]`: relays, recipient, approvers, the secret key's source.

use std::path::PathBuf;
use std::time::Duration;

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
#[derive(Clone, Deserialize)]
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
    /// A secret key from a seed JSON file; the variable and the file win.
    #[serde(skip)]
    pub secret_key: Option<String>,
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

impl std::fmt::Debug for NostrSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NostrSettings")
            .field("relays", &self.relay_urls())
            .field("recipient_pubkey", &self.recipient_pubkey)
            .field("approvers", &self.approvers)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("dm", &self.dm)
            .finish_non_exhaustive()
    }
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

/// A public key in hex or `npub` form.
pub fn parse_pubkey(s: &str) -> Result<PublicKey, String> {
    let s = s.trim();
    if s.starts_with("npub1") {
        PublicKey::from_bech32(s).map_err(|e| format!("{s:?} is not a valid npub: {e}"))
    } else {
        PublicKey::from_hex(s)
            .map_err(|_| format!("{s:?} is not a 64-hex-digit public key or an npub"))
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
            parse_pubkey(&self.recipient_pubkey).map_err(|why| Error::Config {
                field: "recipient_pubkey",
                why,
            })?,
        ];
        for a in &self.approvers {
            let k = parse_pubkey(a).map_err(|why| Error::Config {
                field: "approvers",
                why,
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

    /// The secret key: `$token_env`, else `token_file`, else the seed's;
    /// `None` when there is none. An unusable file or a malformed key is an
    /// error that never quotes the key.
    pub fn keys(&self) -> Result<Option<Keys>, Error> {
        let raw = nexus_secret::token(&self.token_env, self.token_file.as_deref())
            .map_err(|e| Error::Config {
                field: "token_file",
                why: e.to_string(),
            })?
            .or_else(|| self.secret_key.clone().filter(|s| !s.trim().is_empty()));
        let Some(raw) = raw else {
            return Ok(None);
        };
        Keys::parse(raw.trim()).map(Some).map_err(|_| Error::Config {
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
            secret_key: Some(hex.clone()),
            ..NostrSettings::default()
        };
        assert_eq!(s.keys().unwrap().unwrap().public_key(), k.public_key());
        assert!(!format!("{s:?}").contains(&hex));
        let bad = NostrSettings {
            secret_key: Some(format!("{}zz", &hex[..62])),
            ..s.clone()
        };
        let e = bad.keys().unwrap_err().to_string();
        assert!(e.contains("secret_key") && !e.contains(&hex[..62]), "{e}");
        let none = NostrSettings {
            secret_key: None,
            ..s
        };
        assert!(none.keys().unwrap().is_none());
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
