//! The pool's end of its channels to Gitea, Telegram and Nostr (see
//! [`crate::channels`]): what it sends them, what their events change in
//! the pool state, and the waits between sweeps (`idle`) and around a
//! one-shot's sweep (`settle`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use nexus_alert::gitea::Outcome;
use tokio::time::Instant;

use nexus_alert::gitea::Check;
use nexus_alert::telegram::Text;
use nexus_revive::{AgentRecord, State};

use super::{Pool, Unsent};
use crate::channels::{
    Answer, ApprovalCommand, ApprovalEvent, Channel, ChannelError, GiteaCommand, GiteaEvent,
    GiteaExecutor, GiteaJob, NostrEvent, NostrExecutor, TelegramCommand, TelegramEvent,
    TelegramExecutor,
};
use crate::config::AskWithoutChannel;
use crate::fleet::{Seen, Target};
use crate::view::ChannelView;
use nexus_revive::Approval;

/// The Gitea channel as the pool sees it.
#[derive(Debug)]
pub(super) struct Incidents {
    chan: Channel<GiteaExecutor>,
    /// No command until then (a call went unanswered).
    hold_until: Option<Instant>,
    /// Open issues are to be adopted (after a start).
    adopt_wanted: bool,
    adopting: bool,
    ticking: bool,
    trouble: Option<String>,
}

impl Incidents {
    pub(super) fn new(x: GiteaExecutor) -> Incidents {
        Incidents {
            chan: Channel::new(x),
            hold_until: None,
            adopt_wanted: false,
            adopting: false,
            ticking: false,
            trouble: None,
        }
    }
}

/// The Telegram channel as the pool sees it.
#[derive(Debug)]
pub(super) struct Messages {
    chan: Channel<TelegramExecutor>,
    /// Unsent messages handed to the channel, by id.
    sending: HashSet<u64>,
    asks: Asks,
    /// The id of the last message queued.
    last_id: u64,
    trouble: Option<String>,
}

impl Messages {
    /// The channel, for a state whose unsent messages get their ids here.
    pub(super) fn new(x: TelegramExecutor, unsent: &mut VecDeque<Unsent>) -> Messages {
        let mut last_id = 0;
        for m in unsent {
            last_id += 1;
            m.id = last_id;
        }
        Messages {
            chan: Channel::new(x),
            sending: HashSet::new(),
            asks: Asks::default(),
            last_id,
            trouble: None,
        }
    }

    /// Queues `text` behind the messages still waiting in `unsent`.
    pub(super) fn queue(&mut self, unsent: &mut VecDeque<Unsent>, text: &str) {
        if unsent.len() >= UNSENT_KEPT
            && let Some(i) = unsent.iter().position(|u| !self.sending.contains(&u.id))
            && let Some(old) = unsent.remove(i)
        {
            tracing::warn!("telegram: dropped an unsent message: {}", old.text);
        }
        self.last_id += 1;
        unsent.push_back(Unsent {
            text: text.to_string(),
            not_before: 0.0,
            id: self.last_id,
        });
    }
}

/// What the pool knows of an approval channel's requests.
#[derive(Debug, Default)]
struct Asks {
    /// Requests handed to the channel: agent key → request id.
    asking: HashMap<String, String>,
    /// Requests the channel has (since this start): key → id.
    asked: HashMap<String, String>,
    polling: bool,
}

impl Asks {
    /// The channel should be asked `id` for `key`: it neither has it nor
    /// is being asked.
    fn lacks(&self, key: &str, id: &str) -> bool {
        !self.asking.contains_key(key) && self.asked.get(key).is_none_or(|a| a != id)
    }

    /// Hands `ask` to `chan`; false if its queue is full.
    fn ask<X, Q>(
        &mut self,
        chan: &mut Channel<X>,
        ask: ApprovalCommand<Q>,
        wrap: fn(ApprovalCommand<Q>) -> X::Command,
    ) -> bool
    where
        X: crate::channels::Executor,
    {
        let ApprovalCommand::Ask { key, id, .. } = &ask else {
            return false;
        };
        let (key, id) = (key.clone(), id.clone());
        let queued = chan.send(wrap(ask)).is_ok();
        if queued {
            self.asking.insert(key, id);
        }
        queued
    }

    /// Asks `chan` for the answers, unless a poll is under way.
    fn poll<X, Q>(&mut self, chan: &mut Channel<X>, wrap: fn(ApprovalCommand<Q>) -> X::Command)
    where
        X: crate::channels::Executor,
    {
        if !self.polling && chan.send(wrap(ApprovalCommand::Poll)).is_ok() {
            self.polling = true;
        }
    }
}

/// The Nostr channel as the pool sees it.
#[derive(Debug)]
pub(super) struct Dms {
    chan: Channel<NostrExecutor>,
    asks: Asks,
    trouble: Option<String>,
}

impl Dms {
    pub(super) fn new(x: NostrExecutor) -> Dms {
        Dms {
            chan: Channel::new(x),
            asks: Asks::default(),
            trouble: None,
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    Telegram,
    Nostr,
    /// The status page's approve and deny buttons (never asked on).
    Page,
}

impl Via {
    /// Its name in the state file (`asked_on`).
    fn name(self) -> &'static str {
        match self {
            Via::Telegram => "telegram",
            Via::Nostr => "nostr",
            Via::Page => "page",
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Telegram => "Telegram",
            Via::Nostr => "Nostr",
            Via::Page => "the status page",
        })
    }
}

/// Telegram messages kept to retry; beyond this the oldest are dropped.
const UNSENT_KEPT: usize = 100;

/// A channel's trouble as shown: one line of at most 200 characters (it
/// may quote a server).
fn brief(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

pub(super) enum Event {
    Gitea(GiteaEvent),
    Telegram(TelegramEvent),
    Nostr(NostrEvent),
}

/// The next event of any channel (pending while none has a command in
/// flight).
pub(super) async fn next_event(
    gitea: &mut Option<Incidents>,
    telegram: &mut Option<Messages>,
    nostr: &mut Option<Dms>,
) -> Event {
    let gitea = async {
        match gitea {
            Some(i) => i.chan.event().await,
            None => std::future::pending().await,
        }
    };
    let telegram = async {
        match telegram {
            Some(m) => m.chan.event().await,
            None => std::future::pending().await,
        }
    };
    let nostr = async {
        match nostr {
            Some(n) => n.chan.event().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        Some(e) = gitea => Event::Gitea(e),
        Some(e) = telegram => Event::Telegram(e),
        Some(e) = nostr => Event::Nostr(e),
        // An executor ended (it never does while the pool runs).
        else => std::future::pending().await,
    }
}

impl Pool {
    /// Re-finds open incidents after a restart, through the Gitea channel:
    /// queued, not awaited (see [`crate::channels`]).
    pub fn adopt(&mut self) {
        if let Some(inc) = &mut self.incidents {
            inc.adopt_wanted = true;
        }
        self.dispatch(false);
    }

    /// Asks Telegram for the answers to the approval requests waiting
    /// (queued, not awaited): they are acted on by the next sweep, which
    /// [`Pool::idle`] starts as soon as they arrive.
    pub fn poll_approvals(&mut self) {
        if self.dry_run || self.state.requests.is_empty() {
            return;
        }
        if let Some(m) = &mut self.telegram {
            m.asks.poll(&mut m.chan, TelegramCommand::Approval);
        }
        if let Some(n) = &mut self.nostr {
            n.asks.poll(&mut n.chan, |c| c);
        }
    }

    /// `--once`: sends what waits for the channels and waits until they have
    /// answered, or `limit` (`[pool] channel_deadline` is the natural one)
    /// has passed; what was not done stays in the state for the next run.
    pub async fn settle(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            self.take_events();
            self.dispatch(false);
            let busy = |c: Option<bool>| c == Some(false);
            if !busy(self.incidents.as_ref().map(|i| i.chan.idle()))
                && !busy(self.telegram.as_ref().map(|m| m.chan.idle()))
                && !busy(self.nostr.as_ref().map(|n| n.chan.idle()))
            {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => {
                    tracing::warn!(
                        "Gitea, Telegram or Nostr did not answer within {}: what waits is kept for the next run",
                        nexus_stdx::format_duration(limit.as_secs_f64())
                    );
                    break;
                }
                e = next_event(&mut self.incidents, &mut self.telegram, &mut self.nostr) => {
                    self.on_event(e);
                }
            }
        }
        // A one-shot run ends after this: its transitions reach the history first.
        self.flush_history();
        self.publish_channels();
        if std::mem::take(&mut self.dirty) | std::mem::take(&mut self.urgent) {
            self.save_state();
        }
    }

    /// At a stop (SIGTERM): takes in the events already reported and saves
    /// what they changed. Calls in flight are left (their work waits in
    /// the state for the next start).
    pub fn shutdown(&mut self) {
        self.flush_history();
        self.take_events();
        if (std::mem::take(&mut self.dirty) | std::mem::take(&mut self.urgent)) && !self.sweeping {
            self.save_state();
        }
    }

    pub(super) fn on_event(&mut self, e: Event) -> bool {
        match e {
            Event::Gitea(e) => {
                self.on_gitea(e);
                false
            }
            Event::Telegram(e) => self.on_telegram(e),
            Event::Nostr(e) => self.on_nostr(e),
        }
    }

    /// Takes in every event the channels reported so far.
    pub(super) fn take_events(&mut self) {
        while let Some(e) = self.incidents.as_mut().and_then(|i| i.chan.try_event()) {
            self.on_gitea(e);
        }
        while let Some(e) = self.telegram.as_mut().and_then(|m| m.chan.try_event()) {
            self.on_telegram(e);
        }
        while let Some(e) = self.nostr.as_mut().and_then(|n| n.chan.try_event()) {
            self.on_nostr(e);
        }
    }

    /// Sends the channels what waits for them and is due: adopting open
    /// issues, the observations not sent yet, a tick of the incident engine
    /// (`tick`), the Telegram messages whose time has come.
    pub(super) fn dispatch(&mut self, tick: bool) {
        if let Some(inc) = &mut self.incidents
            && inc.hold_until.is_none_or(|t| t <= Instant::now())
        {
            inc.hold_until = None;
            if inc.adopt_wanted && !inc.adopting && inc.chan.send(GiteaCommand::Adopt).is_ok() {
                inc.adopt_wanted = false;
                inc.adopting = true;
            }
            let mut sent = Vec::new();
            for (seq, check) in self.state.observations.unsent() {
                let cmd = GiteaCommand::Observe {
                    seq,
                    check: check.clone(),
                };
                if inc.chan.send(cmd).is_err() {
                    break;
                }
                sent.push(seq);
            }
            for seq in sent {
                self.state.observations.sent(seq);
            }
            if tick && !inc.ticking && inc.chan.send(GiteaCommand::Tick).is_ok() {
                inc.ticking = true;
            }
        }
        if let Some(m) = &mut self.telegram
            && !self.dry_run
        {
            let now = nexus_stdx::now_epoch();
            for u in &self.state.unsent {
                if m.sending.contains(&u.id) {
                    continue;
                }
                if u.not_before > now {
                    break;
                }
                let cmd = TelegramCommand::Send {
                    id: u.id,
                    text: u.text.clone(),
                };
                if m.chan.send(cmd).is_err() {
                    break;
                }
                m.sending.insert(u.id);
            }
        }
    }

    fn on_gitea(&mut self, e: GiteaEvent) {
        let Some(inc) = &mut self.incidents else {
            return;
        };
        match e {
            GiteaEvent::Adopted(r) => {
                inc.adopting = false;
                match r {
                    Ok(n) if n > 0 => tracing::info!("adopted {n} open issue(s)"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot adopt open issues: {e}"),
                }
            }
            GiteaEvent::Observed { seq, result } => {
                let check = self.state.observations.done(seq);
                self.dirty = true;
                let subject = check.map(|c| c.subject).unwrap_or_default();
                inc.trouble = match result {
                    Ok(outcome @ Outcome::Queued { .. }) => {
                        tracing::warn!("[{subject}] incident: {outcome}");
                        Some(outcome.to_string())
                    }
                    Ok(outcome) => {
                        tracing::debug!("[{subject}] incident: {outcome}");
                        None
                    }
                    Err(e) => {
                        tracing::warn!("[{subject}] incident: {e}");
                        Some(e.to_string())
                    }
                };
            }
            GiteaEvent::Ticked(r) => {
                inc.ticking = false;
                inc.trouble = match r {
                    Ok(0) => None,
                    Ok(n) => Some(format!(
                        "{n} issue action(s) queued in the outbox (Gitea unreachable)"
                    )),
                    Err(e) => {
                        tracing::warn!("incidents: {e}");
                        Some(e.to_string())
                    }
                };
            }
            GiteaEvent::NotDone { job, why, retry_at } => {
                tracing::warn!("gitea: {why}; trying again later");
                inc.hold_until = Some(retry_at);
                inc.trouble = Some(why);
                match job {
                    GiteaJob::Adopt => {
                        inc.adopt_wanted = true;
                        inc.adopting = false;
                    }
                    GiteaJob::Observe(seq) => self.state.observations.retry(seq),
                    GiteaJob::Tick => inc.ticking = false,
                }
            }
        }
    }

    /// Takes in one Telegram event; true when it brought approval answers.
    fn on_telegram(&mut self, e: TelegramEvent) -> bool {
        let Some(m) = &mut self.telegram else {
            return false;
        };
        let unsent = &mut self.state.unsent;
        let at = |id: u64| unsent.iter().position(|u| u.id == id);
        match e {
            TelegramEvent::Sent { id } => {
                m.sending.remove(&id);
                m.trouble = None;
                if let Some(i) = at(id) {
                    unsent.remove(i);
                    self.urgent = true;
                }
            }
            TelegramEvent::Later {
                id,
                retry_after,
                why,
            } => {
                m.sending.remove(&id);
                tracing::warn!("telegram: {why}; retrying in {retry_after:.0}s");
                m.trouble = Some(why);
                if let Some(i) = at(id) {
                    unsent[i].not_before = nexus_stdx::now_epoch() + retry_after;
                    self.dirty = true;
                }
            }
            TelegramEvent::Dropped { id, why } => {
                m.sending.remove(&id);
                tracing::warn!("telegram: message dropped: {why}");
                if let Some(i) = at(id) {
                    unsent.remove(i);
                    self.urgent = true;
                }
            }
            TelegramEvent::Approval(e) => return self.on_approval(Via::Telegram, e),
        }
        false
    }

    /// Takes in one Nostr event; true when it brought approval answers.
    fn on_nostr(&mut self, e: NostrEvent) -> bool {
        self.on_approval(Via::Nostr, e)
    }

    /// Takes in one event of an approval channel; true when it brought
    /// approval answers.
    fn on_approval(&mut self, via: Via, e: ApprovalEvent) -> bool {
        let channel = match via {
            Via::Telegram => self
                .telegram
                .as_mut()
                .map(|m| (&mut m.asks, &mut m.trouble)),
            Via::Nostr => self.nostr.as_mut().map(|n| (&mut n.asks, &mut n.trouble)),
            // The page asks nothing: its answers come through `take_answers`.
            Via::Page => None,
        };
        let Some((asks, trouble)) = channel else {
            return false;
        };
        match e {
            ApprovalEvent::Asked { key, id } => {
                asks.asking.remove(&key);
                asks.asked.insert(key.clone(), id.clone());
                *trouble = None;
                self.state.requests.insert(key.clone(), id);
                let on = self.state.asked_on.entry(key.clone()).or_default();
                on.insert(via.name().to_string());
                self.dirty = true;
                self.note(&key, format!("approval requested on {via}"));
            }
            ApprovalEvent::AskFailed { key, why } => {
                asks.asking.remove(&key);
                *trouble = Some(why.clone());
                self.note_at(
                    tracing::Level::WARN,
                    &key,
                    format!("{via} approval request failed: {why}"),
                );
            }
            ApprovalEvent::Answers(answers) => {
                asks.polling = false;
                *trouble = None;
                return self.take_answers(via, answers);
            }
            ApprovalEvent::PollFailed { why } => {
                asks.polling = false;
                tracing::warn!("{via} approval poll failed: {why}");
                *trouble = Some(why);
            }
            ApprovalEvent::Withdrawn { id, result } => withdrawn(via, &id, result),
        }
        false
    }

    /// Answers read from `via`: the first answer to a request still asked
    /// decides; the request is withdrawn on the other channel (which says
    /// so), and any later answer to it is ignored. True when one counted.
    pub(super) fn take_answers(&mut self, via: Via, answers: Vec<Answer>) -> bool {
        let mut any = false;
        for (id, a, by) in answers {
            let key = self.asked_for(&id);
            let Some(key) = key.filter(|_| !self.state.answers.contains_key(&id)) else {
                tracing::info!(
                    "{via}: an answer to {id} ignored: already answered, or no longer asked"
                );
                continue;
            };
            let by = by.unwrap_or_else(|| "an approver".to_string());
            let word = match a {
                Approval::Approved => "revive",
                Approval::Denied => "skip",
            };
            let name = key.rsplit('/').next().unwrap_or(&key);
            let note = format!("Answered via {via} by {by}: {word} {name}");
            self.state.answers.insert(id.clone(), a);
            self.urgent = true;
            any = true;
            self.note(&key, format!("approval answered via {via} by {by}: {word}"));
            if via != Via::Telegram
                && let Some(m) = &mut self.telegram
            {
                let cmd = TelegramCommand::Approval(ApprovalCommand::Withdraw {
                    id: id.clone(),
                    note: Text::new().text(&note),
                });
                if m.chan.send(cmd).is_err() {
                    tracing::warn!("telegram: queue full; request {id} not withdrawn (it expires)");
                }
            }
            if via != Via::Nostr
                && let Some(n) = &mut self.nostr
            {
                let cmd = ApprovalCommand::Withdraw {
                    id: id.clone(),
                    note: note.clone(),
                };
                if n.chan.send(cmd).is_err() {
                    tracing::warn!("nostr: queue full; request {id} not withdrawn (it expires)");
                }
            }
        }
        any
    }

    /// The agent whose request `id` is: one a channel reported asked, or
    /// (a crash before that was saved) one whose pending approval has this
    /// id, which is then noted as asked.
    fn asked_for(&mut self, id: &str) -> Option<String> {
        if let Some((k, _)) = self.state.requests.iter().find(|(_, r)| *r == id) {
            return Some(k.clone());
        }
        let key = self
            .state
            .records
            .iter()
            .find(|(k, r)| r.pending.is_some() && request_id(k, r, 0.0) == id)
            .map(|(k, _)| k.to_string())?;
        self.state.requests.insert(key.clone(), id.to_string());
        Some(key)
    }

    /// The channels' state, for the snapshot.
    pub(super) fn channel_views(&self) -> Vec<ChannelView> {
        let mut out = Vec::new();
        if let Some(i) = &self.incidents {
            out.push(ChannelView {
                name: "gitea",
                trouble: i.trouble.as_deref().map(brief),
                waiting: self.state.observations.len(),
            });
        }
        if let Some(m) = &self.telegram {
            out.push(ChannelView {
                name: "telegram",
                trouble: m.trouble.as_deref().map(brief),
                waiting: self.state.unsent.len() + m.asks.asking.len(),
            });
        }
        if let Some(n) = &self.nostr {
            out.push(ChannelView {
                name: "nostr",
                trouble: n.trouble.as_deref().map(brief),
                waiting: n.asks.asking.len(),
            });
        }
        out
    }

    /// Shows the channels' state at once (between sweeps too).
    pub(super) fn publish_channels(&mut self) {
        let views = self.channel_views();
        crate::http::snapshot_mut(&self.shared).channels = views;
    }
}

impl Pool {
    /// Asks for an approval through each approval channel that does not
    /// have the request yet (queued, not awaited: the request id is kept
    /// once a channel has it).
    pub(super) fn request_approval(
        &mut self,
        t: &Target,
        s: &Seen,
        rec: &mut AgentRecord,
        deadline: f64,
        now: f64,
    ) {
        if self.telegram.is_none() && self.nostr.is_none() {
            match self.cfg.pool.ask_without_channel {
                AskWithoutChannel::Auto => {
                    rec.pending = None;
                    rec.approved = true;
                    self.note(
                        &t.key,
                        "No approval channel available (configure telegram or nostr): falling back to auto-revive"
                            .to_string(),
                    );
                    tracing::error!(
                        "[{}] ask policy without an approval channel: reviving without asking",
                        t.key
                    );
                }
                AskWithoutChannel::Never => {
                    rec.pending = None;
                    rec.denied = true;
                    self.note(
                        &t.key,
                        "No approval channel available: death recorded, no revive".to_string(),
                    );
                }
            }
            return;
        };
        if self.dry_run {
            self.note(&t.key, "[DRY-RUN] would ask for approval".to_string());
            return;
        }
        let id = request_id(&t.key, rec, now);
        let dead_for = rec.dead_since.map_or(0.0, |d| now - d);
        let what = Text::new()
            .text("🔴 Resurrection Pool: agent ")
            .bold(&t.name)
            .text(&format!(" has been dead for {dead_for:.0}s."))
            .line()
            .text("Mission: ")
            .text(t.mission.as_deref().unwrap_or("unassigned"))
            .line()
            .text(&s.lines(t).join("; "))
            .line();
        let ttl = Duration::from_secs_f64((deadline - now).max(1.0));
        if let Some(n) = &mut self.nostr
            && n.asks.lacks(&t.key, &id)
        {
            let text = format!(
                "{}Reply \"revive {name}\" to revive it, or \"skip {name}\" to leave it dead (\"+1\" as a reply to this message revives it too).",
                what.plain(),
                name = t.name
            );
            let ask = ApprovalCommand::Ask {
                key: t.key.to_string(),
                id: id.clone(),
                name: t.name.to_string(),
                question: text,
                ttl,
            };
            if !n.asks.ask(&mut n.chan, ask, |c| c) {
                let why = "approval request not sent: the Nostr queue is full; asking again at the next sweep";
                self.note(&t.key, why.to_string());
            }
        }
        if let Some(m) = &mut self.telegram
            && m.asks.lacks(&t.key, &id)
        {
            let question = what
                .text("Approve to revive it, or reply ")
                .code(&format!("revive {}", t.name));
            let ask = ApprovalCommand::Ask {
                key: t.key.to_string(),
                id,
                name: t.name.to_string(),
                question,
                ttl,
            };
            if !m.asks.ask(&mut m.chan, ask, TelegramCommand::Approval) {
                let why = "approval request not sent: the Telegram queue is full; asking again at the next sweep";
                self.note(&t.key, why.to_string());
            }
        }
    }

    /// Some approval channel lacks `key`'s request `id` (not asked, or
    /// its request failed): it is asked again at each sweep while the
    /// approval waits, so a human sees it before `ask_default` decides.
    pub(super) fn request_missing(&self, key: &str, id: &str) -> bool {
        self.telegram
            .as_ref()
            .is_some_and(|m| m.asks.lacks(key, id))
            || self.nostr.as_ref().is_some_and(|n| n.asks.lacks(key, id))
    }

    /// At a start: each channel has the requests the state says it has.
    pub(super) fn recall_asked(&mut self) {
        for (key, id) in &self.state.requests {
            let on = self.state.asked_on.get(key);
            let has = |via: Via| on.map_or(via == Via::Telegram, |o| o.contains(via.name()));
            if let Some(m) = &mut self.telegram
                && has(Via::Telegram)
            {
                m.asks.asked.insert(key.clone(), id.clone());
            }
            if let Some(n) = &mut self.nostr
                && has(Via::Nostr)
            {
                n.asks.asked.insert(key.clone(), id.clone());
            }
        }
    }

    /// `key` asks for nothing any more: the channels forget it.
    pub(super) fn forget_request(&mut self, key: &str) {
        self.state.asked_on.remove(key);
        if let Some(m) = &mut self.telegram {
            m.asks.asked.remove(key);
        }
        if let Some(n) = &mut self.nostr {
            n.asks.asked.remove(key);
        }
    }

    /// Queues `text` for the Telegram chat, behind any message still
    /// waiting; it waits in the pool state until Telegram has it (flood
    /// control, Telegram unreachable or not answering: see
    /// [`crate::channels`]).
    pub(super) fn send_telegram(&mut self, text: &str) {
        if self.dry_run {
            return;
        }
        if let Some(m) = &mut self.telegram {
            m.queue(&mut self.state.unsent, text);
        }
    }

    /// One incident per death episode, through the Gitea channel: the
    /// observation waits in the pool state until the engine has it.
    pub(super) fn sync_incident(&mut self, t: &Target, s: &Seen, rec: &AgentRecord, before: State) {
        if self.incidents.is_none() {
            self.recovered = None;
            return;
        }
        let check = if rec.incident_open {
            if !self.cfg.pool.open_issue_on_death {
                // `open_issue_on_death = false`: no issue, so none to close.
                self.recovered = None;
                return;
            }
            let events: Vec<String> = self
                .events
                .get(&*t.key)
                .map(|q| q.iter().take(5).map(ToString::to_string).collect())
                .unwrap_or_default();
            let body = format!(
                "### 🔴 Agent death detected: {}\n\n- **Mission:** {}\n- **State:** {:?}\n- **Policy:** {}\n- **Gateway alive:** {}\n- **Process alive:** {}\n- **Heartbeat age:** {}\n- **Revive attempts (window):** {}\n\n#### Probes\n{}\n\n#### Recent events\n{}\n",
                t.name,
                t.mission.as_deref().unwrap_or("unassigned"),
                rec.state,
                t.policy,
                fmt_opt(s.probe.gateway),
                fmt_opt(s.probe.process),
                s.heartbeat_age
                    .map_or("N/A".to_string(), |a| format!("{a:.0}s")),
                rec.attempts.len(),
                s.lines(t)
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                events
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            // `[pool] <name>:` names the agent's issues, the seed's too
            // (docs/SPEC.md §6.6).
            Check::failing(&t.key, &format!("{}: agent dead", t.name), &body)
                .with_title_subject(&format!("{}:", t.name))
        } else if before != State::Healthy && rec.state == State::Healthy {
            // Closed with how it came back; no incident, nothing to close.
            match self.recovered.take() {
                // `close_issue_on_revive = false`: the issue is left open
                // for a human.
                Some((how, true)) if self.cfg.pool.close_issue_on_revive => {
                    Check::healthy(&t.key, &format!("{}: {how}", t.name))
                        .with_title_subject(&format!("{}:", t.name))
                }
                _ => return,
            }
        } else {
            return;
        };
        self.state.observations.add(check);
    }
}

/// The approval request id of `key`'s current death episode.
pub(super) fn request_id(key: &str, rec: &AgentRecord, now: f64) -> String {
    let episode = format!("{key}@{}", rec.episode_start.unwrap_or(now));
    format!("r{}", nexus_alert::gitea::fingerprint("pool", &episode))
}

fn fmt_opt(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    }
}

fn withdrawn(via: Via, id: &str, result: Result<bool, ChannelError>) {
    match result {
        Ok(true) => tracing::info!("{via}: request {id} withdrawn (answered elsewhere)"),
        Ok(false) => {}
        Err(why) => {
            tracing::warn!("{via}: request {id} not withdrawn ({why}); it expires by itself")
        }
    }
}
