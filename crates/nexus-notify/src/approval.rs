//! Approve / Deny requests for the resurrection pool, answered with inline
//! buttons (or a `revive <name>` / `skip <name>` message) and read with
//! `getUpdates`. Non-blocking: [`Approvals::request`] sends and returns;
//! [`Approvals::poll`] is called once per sweep and returns the decisions.
//!
//! An answer counts only if it comes from the configured chat, from an
//! allowed approver (when a list is configured), and after the request was
//! sent: a button press must be on the request message itself; a text
//! message must be dated at or after the request and name the subject
//! (`+1` only as a reply to the request). Everything else is ignored (a
//! button press is still answered, so the user's spinner stops).
//!
//! The `getUpdates` offset is persisted with the pending requests, so a
//! restart neither replays old answers nor loses new ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nexus_revive::Approval;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Error;
use crate::markdown::Text;
use crate::state;
use crate::telegram::{Message, Telegram, TgUser};

/// Settings of [`Approvals`]: state file, who may decide, long-poll time.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// State file (offset + pending requests).
    pub state_file: PathBuf,
    /// User ids allowed to decide; empty = anyone in the configured chat.
    pub approvers: Vec<i64>,
    /// Long-poll seconds per [`Approvals::poll`] (≤ 10 keeps a sweep short).
    pub poll_timeout: u32,
}

impl ApprovalConfig {
    /// Defaults: anyone in the chat, 5 s long poll.
    pub fn new(state_file: PathBuf) -> ApprovalConfig {
        ApprovalConfig {
            state_file,
            approvers: Vec::new(),
            poll_timeout: 5,
        }
    }
}

/// A request that was answered or expired, as [`Approvals::poll`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The request id given to [`Approvals::request`].
    pub request_id: String,
    /// The subject (agent name).
    pub subject: String,
    /// The answer (Approve pressed, `revive <name>` or `+1` as a reply;
    /// Deny pressed or `skip <name>`), or `None`: nobody answered before
    /// the deadline.
    pub verdict: Option<Approval>,
    /// Who decided (`@username` or first name), if anyone.
    pub by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pending {
    subject: String,
    message_id: i64,
    /// Telegram's `date` of the request message.
    sent_at: i64,
    deadline: i64,
}

/// Takes every request past its deadline out of `pending`, in id order: one
/// expired decision (`verdict: None`) each. Shared by the approval channels
/// (Telegram here, Nostr in `nexus-nostr`), whose pending records differ.
pub fn take_expired<P, T: PartialOrd>(
    pending: &mut BTreeMap<String, P>,
    now: T,
    deadline: impl Fn(&P) -> T,
    subject: impl Fn(P) -> String,
) -> Vec<Decision> {
    let expired: Vec<String> = pending
        .iter()
        .filter(|(_, p)| now > deadline(p))
        .map(|(k, _)| k.clone())
        .collect();
    expired
        .into_iter()
        .filter_map(|id| {
            let p = pending.remove(&id)?;
            Some(Decision {
                request_id: id,
                subject: subject(p),
                verdict: None,
                by: None,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct ApprovalState {
    offset: Option<i64>,
    pending: BTreeMap<String, Pending>,
    /// Flood control (429 `retry_after`): no call before this time.
    hold_until: Option<i64>,
}

impl ApprovalState {
    /// Seconds left of a flood-control hold.
    fn held(&self, now: i64) -> Option<u64> {
        self.hold_until
            .filter(|t| crate::clock::holds(now, *t))
            .map(|t| t.saturating_sub(now) as u64)
    }

    /// Remembers a 429 so no call is made before `retry_after` has passed.
    fn note(&mut self, e: &Error, now: i64) {
        if let Error::RateLimited { retry_after, .. } = e {
            self.hold_until = Some(now.saturating_add(*retry_after as i64));
        }
    }
}

/// Approval requests over a [`Telegram`] client.
#[derive(Debug)]
pub struct Approvals {
    cfg: ApprovalConfig,
    tg: Telegram,
}

fn who(u: &TgUser) -> String {
    u.username
        .as_ref()
        .map_or_else(|| u.first_name.clone(), |n| format!("@{n}"))
}

impl Approvals {
    /// Sends through `tg`; pending requests live in `cfg`'s state file.
    pub fn new(cfg: ApprovalConfig, tg: Telegram) -> Approvals {
        Approvals { cfg, tg }
    }

    /// Whether a request with this id is waiting.
    pub fn is_pending(&self, request_id: &str) -> Result<bool, Error> {
        let st: ApprovalState = state::load(&self.cfg.state_file)?;
        Ok(st.pending.contains_key(request_id))
    }

    /// Sends a request with Approve / Deny buttons. `request_id` must be
    /// short (`[A-Za-z0-9._-]`, ≤ 50 bytes: it travels in `callback_data`).
    /// Asking again for a pending id does nothing.
    pub async fn request(
        &self,
        request_id: &str,
        subject: &str,
        question: &Text,
        ttl: Duration,
    ) -> Result<(), Error> {
        if request_id.is_empty()
            || request_id.len() > 50
            || !request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(Error::Config {
                field: "request_id",
                why: format!("{request_id:?} must be 1-50 characters of [A-Za-z0-9._-]"),
            });
        }
        let mut st: ApprovalState = state::load(&self.cfg.state_file)?;
        if st.pending.contains_key(request_id) {
            return Ok(());
        }
        let now = nexus_stdx::now_epoch() as i64;
        if let Some(retry_after) = st.held(now) {
            return Err(Error::RateLimited {
                method: "sendMessage",
                retry_after,
            });
        }
        let markup = json!({"inline_keyboard": [[
            {"text": "✅ Approve", "callback_data": format!("approve:{request_id}")},
            {"text": "❌ Deny", "callback_data": format!("deny:{request_id}")},
        ]]});
        let msg = match self.tg.send(question, Some(markup)).await {
            Ok(m) => m,
            Err(e) => {
                st.note(&e, now);
                if matches!(e, Error::RateLimited { .. }) {
                    state::save(&self.cfg.state_file, &st)?;
                }
                return Err(e);
            }
        };
        st.pending.insert(
            request_id.to_owned(),
            Pending {
                subject: subject.to_owned(),
                message_id: msg.message_id,
                sent_at: msg.date,
                deadline: msg.date.saturating_add(ttl.as_secs() as i64),
            },
        );
        state::save(&self.cfg.state_file, &st)
    }

    /// Forgets `request_id` (answered on another channel): its buttons are
    /// removed and `note` is sent to the chat. A later answer to it is
    /// ignored. False when it was not pending (nothing sent).
    pub async fn withdraw(&self, request_id: &str, note: &Text) -> Result<bool, Error> {
        let mut st: ApprovalState = state::load(&self.cfg.state_file)?;
        let Some(p) = st.pending.remove(request_id) else {
            return Ok(false);
        };
        state::save(&self.cfg.state_file, &st)?;
        if let Err(e) = self.tg.clear_buttons(p.message_id).await {
            tracing::warn!(error = %e, "could not remove the approval buttons");
        }
        self.tg.send(note, None).await?;
        Ok(true)
    }

    fn approver_ok(&self, from: Option<&TgUser>) -> bool {
        self.cfg.approvers.is_empty() || from.is_some_and(|u| self.cfg.approvers.contains(&u.id))
    }

    /// Reads new updates once (long poll of `poll_timeout`), answers button
    /// presses, persists the offset, and returns decided and expired requests.
    /// `now` (epoch seconds) is only used for expiry.
    pub async fn poll(&self, now: i64) -> Result<Vec<Decision>, Error> {
        let mut st: ApprovalState = state::load(&self.cfg.state_file)?;
        // Under flood control: no call, but expiry still counts.
        let updates = if st.held(now).is_some() {
            Vec::new()
        } else {
            match self.tg.get_updates(st.offset, self.cfg.poll_timeout).await {
                Ok(u) => u,
                Err(e) => {
                    st.note(&e, now);
                    if matches!(e, Error::RateLimited { .. }) {
                        state::save(&self.cfg.state_file, &st)?;
                    }
                    return Err(e);
                }
            }
        };
        let mut decisions = Vec::new();
        let chat = self.tg.chat_id();
        for u in updates {
            st.offset = Some(
                st.offset
                    .map_or(u.update_id + 1, |o| o.max(u.update_id + 1)),
            );
            if let Some(cq) = u.callback_query {
                let parsed = cq.data.as_deref().and_then(|d| {
                    let (verb, id) = d.split_once(':')?;
                    let verdict = match verb {
                        "approve" => Approval::Approved,
                        "deny" => Approval::Denied,
                        _ => return None,
                    };
                    Some((verdict, id.to_owned()))
                });
                let accepted = parsed.and_then(|(verdict, id)| {
                    let p = st.pending.get(&id)?;
                    let m = cq.message.as_ref()?;
                    (m.chat.id == chat
                        && m.message_id == p.message_id
                        && self.approver_ok(Some(&cq.from)))
                    .then_some((verdict, id))
                });
                match accepted {
                    Some((verdict, id)) => {
                        let p = st.pending.remove(&id).unwrap_or_default();
                        let by = who(&cq.from);
                        let word = if verdict == Approval::Approved {
                            "Approved"
                        } else {
                            "Denied"
                        };
                        self.tg
                            .answer_callback(&cq.id, &format!("{word} by {by}"))
                            .await?;
                        if let Err(e) = self.tg.clear_buttons(p.message_id).await {
                            tracing::warn!(error = %e, "could not remove the approval buttons");
                        }
                        decisions.push(Decision {
                            request_id: id,
                            subject: p.subject,
                            verdict: Some(verdict),
                            by: Some(by),
                        });
                    }
                    None => {
                        tracing::warn!(from = cq.from.id, data = ?cq.data, "ignored a button press (wrong chat, user, message or request)");
                        self.tg.answer_callback(&cq.id, "Not accepted here").await?;
                    }
                }
                continue;
            }
            let Some(m) = u.message.or(u.channel_post) else {
                continue;
            };
            if m.chat.id != chat || !self.approver_ok(m.from.as_ref()) {
                continue;
            }
            if let Some(d) = self.text_decision(&mut st, &m) {
                decisions.push(d);
            }
        }
        decisions.extend(take_expired(
            &mut st.pending,
            now,
            |p| p.deadline,
            |p| p.subject,
        ));
        state::save(&self.cfg.state_file, &st)?;
        Ok(decisions)
    }

    fn text_decision(&self, st: &mut ApprovalState, m: &Message) -> Option<Decision> {
        let text = m.text.as_deref()?.trim().to_lowercase();
        let by = m.from.as_ref().map(who);
        let found = st.pending.iter().find_map(|(id, p)| {
            if m.date < p.sent_at {
                return None;
            }
            let name = p.subject.to_lowercase();
            let reply_to_request = m
                .reply_to_message
                .as_ref()
                .is_some_and(|r| r.message_id == p.message_id);
            let verdict = if text == format!("revive {name}")
                || text == format!("/revive {name}")
                || (text == "+1" && reply_to_request)
            {
                Approval::Approved
            } else if text == format!("skip {name}") || text == format!("/skip {name}") {
                Approval::Denied
            } else {
                return None;
            };
            Some((id.clone(), verdict))
        });
        let (id, verdict) = found?;
        let p = st.pending.remove(&id)?;
        Some(Decision {
            request_id: id,
            subject: p.subject,
            verdict: Some(verdict),
            by,
        })
    }
}
