//! The status page's actions ([`crate::actions`]) as the pool's loop
//! takes them in: an answer to a revive request goes the way a Telegram or
//! Nostr answer goes (the request is then withdrawn there); a retry or an
//! acknowledgement is carried out at the agent's next step by
//! [`nexus_revive::command`]. Each is written to the agent's cell log
//! (`human_action`, with its outcome) and to the history (`[history]`: a
//! row whose actor is who asked, its state unchanged); a refusal is noted
//! among the agent's events, so the page shows why nothing happened.

use std::sync::Arc;

use nexus_cell::EventKind;
use nexus_revive::{Action, AgentRecord, Approval, Command, State};

use super::outside::{Via, request_id};
use super::{Pool, Wake};
use crate::actions::{HumanAction, PageActions, What};
use crate::fleet::Target;

/// The outcome word of an action carried out.
const DONE: &str = "done";

impl Pool {
    /// The status page's actions: the HTTP side, for `http::serve`; what
    /// it takes arrives in [`Pool::idle`].
    pub fn page_actions(&mut self) -> std::io::Result<PageActions> {
        let (gate, inbox) = PageActions::new()?;
        self.inbox = Some(inbox);
        Ok(gate)
    }

    /// One action from the page: what the loop must do next (a refusal
    /// steps the agent too, so its view shows the note at once; `None`:
    /// no such agent).
    pub(super) fn take_action(&mut self, a: HumanAction) -> Option<Wake> {
        let Some((t, _)) = self.indexed(&a.key) else {
            tracing::warn!(
                "status page: {} for an unknown agent ignored",
                a.what.as_str()
            );
            return None;
        };
        let t = t.clone();
        let state = self
            .state
            .records
            .get(&t.key)
            .map_or(State::Unknown, |r| r.state);
        match a.what {
            What::Approve | What::Deny => {
                let approval = if a.what == What::Approve {
                    Approval::Approved
                } else {
                    Approval::Denied
                };
                let id = match self.state.records.get(&t.key) {
                    Some(rec) if rec.pending.is_some() => self
                        .state
                        .requests
                        .get(&*t.key)
                        .cloned()
                        .unwrap_or_else(|| request_id(&t.key, rec, 0.0)),
                    _ => {
                        self.human_outcome(&t, a, state, "refused: no revive request waits");
                        return Some(Wake::Steps(vec![t.key.clone()]));
                    }
                };
                if self.take_answers(Via::Page, vec![(id, approval, Some(a.by.to_string()))]) {
                    self.human_outcome(&t, a, state, DONE);
                    Some(Wake::Answers)
                } else {
                    self.human_outcome(&t, a, state, "refused: answered already");
                    Some(Wake::Steps(vec![t.key.clone()]))
                }
            }
            What::Command(c) => {
                self.commands.insert(t.key.clone(), (c, a.by));
                Some(Wake::Steps(vec![t.key.clone()]))
            }
        }
    }

    /// Carries out the page's command for `t`, if one waits, after its
    /// step: adds its actions to the step's (a retry's launch), or notes
    /// why not.
    pub(super) fn human_command(
        &mut self,
        t: &Target,
        rec: &mut AgentRecord,
        actions: &mut Vec<Action>,
        now: f64,
    ) {
        let Some((cmd, by)) = self.commands.remove(&*t.key) else {
            return;
        };
        let what = What::Command(cmd);
        let a = HumanAction {
            key: t.key.to_string(),
            what,
            by,
        };
        if cmd == Command::RetryNow && actions.iter().any(|a| matches!(a, Action::Launch { .. })) {
            self.human_outcome(t, a, rec.state, "done (a launch was due anyway)");
            return;
        }
        let acknowledged = self.state.acknowledged.get(&*t.key).map(String::as_str);
        let state = rec.state;
        match nexus_revive::command(rec, cmd, by, acknowledged, now) {
            Ok(more) => {
                actions.extend(more);
                if cmd == Command::Acknowledge {
                    self.state
                        .acknowledged
                        .insert(t.key.to_string(), by.to_string());
                }
                self.human_outcome(t, a, state, DONE);
            }
            Err(why) => self.human_outcome(t, a, state, &format!("refused: {why}")),
        }
    }

    /// Writes `a` and its outcome to the history (in `state`, unchanged)
    /// and to `t`'s cell log; notes a refusal among the agent's events (a
    /// carried-out action notes itself: its comment, its launch, the
    /// answer).
    fn human_outcome(&mut self, t: &Target, a: HumanAction, state: State, outcome: &str) {
        if let Some(h) = &self.history {
            let mut e = nexus_history::Event::now(
                nexus_history::Kind::Agent,
                super::history_group(t),
                &t.key,
                state.as_str(),
                state.as_str(),
                &format!("{}: {outcome}", a.what.as_str()),
            );
            e.actor = a.by.to_string();
            h.record(e);
        }
        if outcome != DONE && !outcome.starts_with("done ") {
            self.note(
                &t.key,
                format!("{} from {}: {outcome}", a.what.as_str(), a.by),
            );
        }
        if let Some((cell, agent)) = t.cell_agent()
            && !self.dry_run
        {
            self.cell_append(
                cell,
                EventKind::HumanAction {
                    agent,
                    action: a.what.as_str().to_string(),
                    by: a.by.to_string(),
                    outcome: outcome.to_string(),
                },
            );
        }
    }
}

/// Waits for the page's next action; never, without a page.
pub(super) async fn next_action(inbox: &mut Option<crate::actions::Inbox>) -> Option<HumanAction> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Keys of agents with a command waiting (kept on the pool).
pub(super) type Commands = std::collections::HashMap<Arc<str>, (Command, &'static str)>;
