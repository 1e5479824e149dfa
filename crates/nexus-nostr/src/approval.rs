//! Approval requests over Nostr direct messages, with the rules Telegram's
//! have: one request per id, answers only from an approver, dated at or
//! after the request, `revive <name>` / `skip <name>`, `+1` only as a reply
//! to the request; expiry reported once. Pending requests live in a state
//! file (0600), so a restart neither asks again nor loses an answer: the
//! relays keep the replies, and a request is forgotten only once answered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_notify::{Approval, Decision, take_expired};
use nostr::nips::{nip04, nip59::UnwrappedGift};
use nostr::{
    Event, EventBuilder, EventId, Filter, Keys, Kind, PublicKey, Tag, TagKind, Timestamp, ToBech32,
};
use serde::{Deserialize, Serialize};

use crate::{Dm, Error, NostrSettings, Relays};

/// NIP-59 dates a gift wrap up to two days in the past: replies are asked
/// for from that far back and dated by the sealed message.
const WRAP_TWEAK: u64 = 2 * 86_400;

/// A request waiting for its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Agent name that `revive <name>` and `skip <name>` replies must give (any case).
    pub subject: String,
    /// The ids a reply names with an `e` tag (the message of each DM).
    pub refs: Vec<String>,
    /// When it was sent (epoch seconds).
    pub sent_at: u64,
    /// When it expires (epoch seconds).
    pub deadline: u64,
}

/// What the state file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ApprovalState {
    /// Requests by id.
    pub pending: BTreeMap<String, Pending>,
}

/// Approval requests over Nostr.
#[derive(Debug)]
pub struct NostrApprovals {
    keys: Keys,
    /// The recipient first, then the other approvers.
    approvers: Vec<PublicKey>,
    dm: Dm,
    relays: Relays,
    state_file: PathBuf,
}

/// A DM as read: who, when, what, which events it replies to.
struct Reply {
    from: PublicKey,
    at: u64,
    text: String,
    refs: Vec<String>,
}

fn event_err(e: impl std::fmt::Display) -> Error {
    Error::Event(e.to_string())
}

fn load(path: &Path) -> Result<ApprovalState, Error> {
    match nexus_stdx::read_config(path) {
        Ok(text) => Ok(serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::error!(
                "corrupt nostr approval state {}: {e}; starting fresh",
                path.display()
            );
            ApprovalState::default()
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ApprovalState::default()),
        Err(source) => Err(Error::Io {
            op: "read state",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn save(path: &Path, st: &ApprovalState) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(st).map_err(event_err)?;
    nexus_stdx::write_private(path, &bytes, true).map_err(|e| Error::Io {
        op: "write state",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// `npub1…` shortened, for "answered by".
fn who(k: &PublicKey) -> String {
    let s = k.to_bech32().unwrap_or_else(|_| k.to_hex());
    format!(
        "{}…{}",
        &s[..12.min(s.len())],
        &s[s.len().saturating_sub(6)..]
    )
}

impl NostrApprovals {
    /// The channel, or `None` without a secret key (Nostr disabled: the
    /// caller warns). Settings must be valid ([`NostrSettings::validate`]).
    pub fn new(s: &NostrSettings, state_file: PathBuf) -> Result<Option<NostrApprovals>, Error> {
        s.validate()?;
        let Some(keys) = s.keys()? else {
            return Ok(None);
        };
        let mut relays = Relays::new(&s.relay_urls(), s.ok_timeout);
        relays.backoff_initial = s.backoff_initial;
        relays.backoff_max = s.backoff_max.max(s.backoff_initial);
        Ok(Some(NostrApprovals {
            keys,
            approvers: s.approver_keys()?,
            dm: s.dm,
            relays,
            state_file,
        }))
    }

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.keys.public_key()
    }

    /// Our public key as an `npub` (what a person follows).
    pub fn npub(&self) -> String {
        let k = self.keys.public_key();
        k.to_bech32().unwrap_or_else(|_| k.to_hex())
    }

    /// Whether `request_id` waits for an answer.
    pub fn is_pending(&self, request_id: &str) -> Result<bool, Error> {
        Ok(load(&self.state_file)?.pending.contains_key(request_id))
    }

    /// Signed, encrypted DMs of `text` to each approver, dated `at`; each
    /// with the id a reply names.
    async fn dms(&self, text: &str, at: Timestamp) -> Result<Vec<(Event, EventId)>, Error> {
        let mut out = Vec::new();
        for to in &self.approvers {
            match self.dm {
                Dm::Nip17 => {
                    let mut rumor = EventBuilder::private_msg_rumor(*to, text)
                        .custom_created_at(at)
                        .build(self.keys.public_key());
                    let id = rumor.id();
                    let wrap = EventBuilder::gift_wrap(&self.keys, to, rumor, [])
                        .await
                        .map_err(event_err)?;
                    out.push((wrap, id));
                }
                Dm::Nip04 => {
                    let content =
                        nip04::encrypt(self.keys.secret_key(), to, text).map_err(event_err)?;
                    let ev = EventBuilder::new(Kind::EncryptedDirectMessage, content)
                        .tag(Tag::public_key(*to))
                        .custom_created_at(at)
                        .sign_with_keys(&self.keys)
                        .map_err(event_err)?;
                    let id = ev.id;
                    out.push((ev, id));
                }
            }
        }
        Ok(out)
    }

    /// Publishes `text` to the approvers; the ids of the DMs a relay
    /// accepted (an error when none was).
    async fn send(&mut self, text: &str, at: Timestamp) -> Result<Vec<EventId>, Error> {
        let dms = self.dms(text, at).await?;
        let events: Vec<Event> = dms.iter().map(|(e, _)| e.clone()).collect();
        let published = self.relays.publish(&events).await?;
        let refs: Vec<EventId> = dms
            .iter()
            .filter(|(e, _)| published.accepted.contains(&e.id))
            .map(|(_, r)| *r)
            .collect();
        if refs.is_empty() {
            return Err(Error::Refused(published.problems.join("; ")));
        }
        for p in &published.problems {
            tracing::warn!("nostr: {p}");
        }
        Ok(refs)
    }

    /// Sends the request (asking again for a pending id does nothing). It
    /// counts, and is saved, only once a relay accepted it.
    pub async fn request(
        &mut self,
        request_id: &str,
        subject: &str,
        text: &str,
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut st = load(&self.state_file)?;
        if st.pending.contains_key(request_id) {
            return Ok(());
        }
        let at = Timestamp::now();
        let refs = self.send(text, at).await?;
        // Read again: nothing else writes it, but a slow relay is a long time.
        st = load(&self.state_file)?;
        st.pending.insert(
            request_id.to_string(),
            Pending {
                subject: subject.to_string(),
                refs: refs.iter().map(EventId::to_hex).collect(),
                sent_at: at.as_secs(),
                deadline: at.as_secs().saturating_add(ttl.as_secs()),
            },
        );
        save(&self.state_file, &st)
    }

    /// A plain DM to the approvers (a request answered elsewhere, say).
    pub async fn notify(&mut self, text: &str) -> Result<(), Error> {
        self.send(text, Timestamp::now()).await.map(|_| ())
    }

    /// Forgets `request_id` (answered on another channel) and, when it was
    /// pending, tells the approvers `note`. A later answer is ignored.
    pub async fn withdraw(&mut self, request_id: &str, note: &str) -> Result<bool, Error> {
        let mut st = load(&self.state_file)?;
        if st.pending.remove(request_id).is_none() {
            return Ok(false);
        }
        save(&self.state_file, &st)?;
        self.notify(note).await?;
        Ok(true)
    }

    /// Reads the replies to the pending requests (one `REQ` per relay, up
    /// to `EOSE`) and returns the decided and the expired ones; `now`
    /// (epoch seconds) only decides expiry.
    pub async fn poll(&mut self, now: u64) -> Result<Vec<Decision>, Error> {
        let mut st = load(&self.state_file)?;
        let mut decisions = Vec::new();
        if let Some(since) = st.pending.values().map(|p| p.sent_at).min() {
            let me = self.keys.public_key();
            let filters = [
                Filter::new()
                    .kind(Kind::GiftWrap)
                    .pubkey(me)
                    .since(Timestamp::from(since.saturating_sub(WRAP_TWEAK))),
                Filter::new()
                    .kind(Kind::EncryptedDirectMessage)
                    .authors(self.approvers.clone())
                    .pubkey(me)
                    .since(Timestamp::from(since)),
            ];
            let events = self.relays.fetch(&filters).await?;
            let mut replies = Vec::new();
            for e in events {
                match self.open(&e).await {
                    Some(r) if self.approvers.contains(&r.from) => replies.push(r),
                    Some(r) => tracing::info!(
                        "nostr: ignored a direct message from {}, not an approver",
                        who(&r.from)
                    ),
                    None => {}
                }
            }
            // The first answer wins.
            replies.sort_by_key(|r| r.at);
            for r in &replies {
                if let Some(d) = decide(&mut st, r) {
                    decisions.push(d);
                }
            }
        }
        decisions.extend(take_expired(
            &mut st.pending,
            now,
            |p| p.deadline,
            |p| p.subject,
        ));
        save(&self.state_file, &st)?;
        Ok(decisions)
    }

    /// A DM to us, decrypted (and, for a gift wrap, its seal verified);
    /// `None` for anything else.
    async fn open(&self, e: &Event) -> Option<Reply> {
        let refs = |tags: &nostr::Tags| {
            tags.iter()
                .filter(|t| t.kind() == TagKind::e())
                .filter_map(|t| t.content().map(str::to_string))
                .collect()
        };
        match e.kind {
            Kind::GiftWrap => {
                let g = UnwrappedGift::from_gift_wrap(&self.keys, e).await.ok()?;
                (g.rumor.kind == Kind::PrivateDirectMessage).then(|| Reply {
                    from: g.sender,
                    at: g.rumor.created_at.as_secs(),
                    text: g.rumor.content.clone(),
                    refs: refs(&g.rumor.tags),
                })
            }
            Kind::EncryptedDirectMessage => {
                let text = nip04::decrypt(self.keys.secret_key(), &e.pubkey, &e.content).ok()?;
                Some(Reply {
                    from: e.pubkey,
                    at: e.created_at.as_secs(),
                    text,
                    refs: refs(&e.tags),
                })
            }
            _ => None,
        }
    }
}

/// The request `r` answers, taken out of `st`: `revive <name>`, `/revive
/// <name>`, `+1` as a reply to the request approve; `skip <name>`, `/skip
/// <name>` deny; only when sent at or after the request.
fn decide(st: &mut ApprovalState, r: &Reply) -> Option<Decision> {
    let text = r.text.trim().to_lowercase();
    let (id, verdict) = st.pending.iter().find_map(|(id, p)| {
        if r.at < p.sent_at {
            return None;
        }
        let name = p.subject.to_lowercase();
        let reply = r.refs.iter().any(|x| p.refs.contains(x));
        let verdict = if text == format!("revive {name}")
            || text == format!("/revive {name}")
            || (text == "+1" && reply)
        {
            Approval::Approved
        } else if text == format!("skip {name}") || text == format!("/skip {name}") {
            Approval::Denied
        } else {
            return None;
        };
        Some((id.clone(), verdict))
    })?;
    let p = st.pending.remove(&id)?;
    Some(Decision {
        request_id: id,
        subject: p.subject,
        verdict: Some(verdict),
        by: Some(who(&r.from)),
    })
}

#[cfg(test)]
mod tests;
