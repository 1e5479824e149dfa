//! The pool's side effects on outside services, off the sweep's path.
//!
//! Three channels: Gitea (the incident engine), Telegram (messages and
//! approvals) and Nostr (approvals by direct message). Each is an
//! *executor*: a tokio task that owns its client, takes commands in order
//! from a bounded queue, runs each under the channel's deadline (`[pool]
//! channel_deadline`) and reports how it went as an event. The pool (the core) only sends commands and reads the events
//! back, at the start of its next sweep or between sweeps: a Gitea or a
//! Telegram that accepts connections and never answers costs its executor a
//! deadline, never a sweep its timing.
//!
//! The executors keep nothing that must outlive them. What waits is in the
//! pool state ([`Observations`], the unsent messages, the approval answers)
//! and in the clients' own files (the Gitea outbox, `approvals.json`,
//! `nostr-approvals.json`), so a command lost with its queue (a restart,
//! `--once` ending at its deadline) is sent again, and a call cut by the deadline is a crash at that point,
//! which the clients are built for: the Gitea engine is rebuilt from its
//! files as after a restart (its outbox delivers once, with a duplicate
//! check), an approval request or poll saves nothing before its answer.
//!
//! After a call that got no answer, a channel holds: the commands queued
//! behind it are answered at once without a call, and the pool sends no
//! more until the hold ends (Gitea: `[incident] retry_interval`; Telegram:
//! one deadline). Nostr's relays back off one by one inside its client.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use nexus_alert::gitea::{Check, Engine, Outcome};
use nexus_alert::telegram::{Approvals, Decision, Telegram, Text};
use nexus_revive::Approval;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Commands waiting in a channel's queue at most; beyond, the pool keeps
/// them for a later sweep.
const QUEUE: usize = 256;

/// A channel's executor: runs one command at a time, in order.
pub(crate) trait Executor: Send + 'static {
    /// What the core asks for.
    type Command: Send + 'static;
    /// How it went.
    type Event: Send + 'static;
    /// Runs `cmd` (under the channel's deadline); its event.
    fn run(&mut self, cmd: Self::Command) -> impl Future<Output = Self::Event> + Send;
}

/// The executor's loop: one event per command, until the pool drops its end.
async fn serve<X: Executor>(
    mut x: X,
    mut commands: mpsc::Receiver<X::Command>,
    events: mpsc::UnboundedSender<X::Event>,
) {
    while let Some(cmd) = commands.recv().await {
        let ev = x.run(cmd).await;
        if events.send(ev).is_err() {
            return;
        }
    }
}

/// The core's end of a channel. The executor's task is started by the
/// first command (a pool built outside a runtime starts none).
pub(crate) struct Channel<X: Executor> {
    link: Link<X>,
    /// Commands sent whose event was not read yet.
    in_flight: usize,
}

enum Link<X: Executor> {
    Ready(Option<X>),
    Running {
        commands: mpsc::Sender<X::Command>,
        events: mpsc::UnboundedReceiver<X::Event>,
    },
}

impl<X: Executor> std::fmt::Debug for Channel<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("running", &matches!(self.link, Link::Running { .. }))
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<X: Executor> Channel<X> {
    pub(crate) fn new(x: X) -> Channel<X> {
        Channel {
            link: Link::Ready(Some(x)),
            in_flight: 0,
        }
    }

    /// Queues `cmd` without waiting; gives it back when the queue is full.
    pub(crate) fn send(&mut self, cmd: X::Command) -> Result<(), X::Command> {
        if let Link::Ready(x) = &mut self.link
            && let Some(x) = x.take()
        {
            let (commands, rx) = mpsc::channel(QUEUE);
            let (tx, events) = mpsc::unbounded_channel();
            tokio::spawn(serve(x, rx, tx));
            self.link = Link::Running { commands, events };
        }
        let Link::Running { commands, .. } = &self.link else {
            return Err(cmd);
        };
        match commands.try_send(cmd) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c)) => {
                Err(c)
            }
        }
    }

    /// An event already reported, if any.
    pub(crate) fn try_event(&mut self) -> Option<X::Event> {
        let Link::Running { events, .. } = &mut self.link else {
            return None;
        };
        let ev = events.try_recv().ok()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(ev)
    }

    /// The next event (pending while nothing is in flight).
    pub(crate) async fn event(&mut self) -> Option<X::Event> {
        let Link::Running { events, .. } = &mut self.link else {
            return std::future::pending().await;
        };
        let ev = events.recv().await?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(ev)
    }

    /// No command waits for its event.
    pub(crate) fn idle(&self) -> bool {
        self.in_flight == 0
    }
}

fn seconds(d: Duration) -> String {
    nexus_stdx::format_duration(d.as_secs_f64())
}

/// Why a channel's call did not go through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    /// Gitea refused or could not be reached (the engine's error).
    #[error(transparent)]
    Gitea(#[from] nexus_alert::gitea::Error),
    /// Telegram's.
    #[error(transparent)]
    Telegram(#[from] nexus_alert::telegram::Error),
    /// Nostr's.
    #[error(transparent)]
    Nostr(#[from] nexus_nostr::Error),
    /// The call was cut at the channel's deadline.
    #[error("no answer within {}", seconds(*.0))]
    NoAnswer(Duration),
    /// The channel holds after a call without an answer: no call made.
    #[error("{0} is not answering")]
    Held(&'static str),
}

/// What a Gitea command was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiteaJob {
    /// Re-find open issues after a restart.
    Adopt,
    /// The observation with this sequence number.
    Observe(u64),
    /// Deliver the outbox and the subjects the rate limit held back.
    Tick,
}

/// A command of the Gitea channel.
#[derive(Debug)]
pub(crate) enum GiteaCommand {
    Adopt,
    Observe { seq: u64, check: Check },
    Tick,
}

/// How a Gitea command went.
#[derive(Debug)]
pub(crate) enum GiteaEvent {
    /// Open issues adopted (how many), or why not.
    Adopted(Result<usize, ChannelError>),
    /// The engine observed `seq`: what it did, or Gitea's refusal.
    Observed {
        seq: u64,
        result: Result<Outcome, ChannelError>,
    },
    /// A tick ran: the actions still queued in the outbox, or why not.
    Ticked(Result<usize, ChannelError>),
    /// Not done: no answer within the deadline (the engine was rebuilt from
    /// its files), or held after such a call; to send again after `retry_at`.
    NotDone {
        job: GiteaJob,
        why: String,
        retry_at: Instant,
    },
}

/// Runs the incident engine.
pub(crate) struct GiteaExecutor {
    engine: Engine,
    /// A fresh engine from its files, as after a restart.
    rebuild: Box<dyn Fn() -> Engine + Send>,
    deadline: Duration,
    /// The hold after a call without an answer.
    retry: Duration,
    held: Option<(Instant, String)>,
}

impl GiteaExecutor {
    pub(crate) fn new(
        rebuild: Box<dyn Fn() -> Engine + Send>,
        deadline: Duration,
        retry: Duration,
    ) -> GiteaExecutor {
        GiteaExecutor {
            engine: rebuild(),
            rebuild,
            deadline,
            retry,
            held: None,
        }
    }
}

impl Executor for GiteaExecutor {
    type Command = GiteaCommand;
    type Event = GiteaEvent;

    async fn run(&mut self, cmd: GiteaCommand) -> GiteaEvent {
        let job = match &cmd {
            GiteaCommand::Adopt => GiteaJob::Adopt,
            GiteaCommand::Observe { seq, .. } => GiteaJob::Observe(*seq),
            GiteaCommand::Tick => GiteaJob::Tick,
        };
        if let Some((until, why)) = &self.held
            && *until > Instant::now()
        {
            return GiteaEvent::NotDone {
                job,
                why: why.clone(),
                retry_at: *until,
            };
        }
        self.held = None;
        let engine = &mut self.engine;
        let done = tokio::time::timeout(self.deadline, async move {
            match cmd {
                GiteaCommand::Adopt => GiteaEvent::Adopted(
                    engine
                        .adopt()
                        .await
                        .map(|n| n.len())
                        .map_err(ChannelError::from),
                ),
                GiteaCommand::Observe { seq, check } => GiteaEvent::Observed {
                    seq,
                    result: engine.observe(&check).await.map_err(ChannelError::from),
                },
                GiteaCommand::Tick => GiteaEvent::Ticked(match engine.tick().await {
                    Ok(()) => engine.outbox().len().map_err(ChannelError::from),
                    Err(e) => Err(e.into()),
                }),
            }
        })
        .await;
        match done {
            Ok(ev) => ev,
            Err(_) => {
                // Cut mid-call: whatever the engine held in memory may be
                // half-changed. Its files are whole (each is replaced
                // atomically): start again from them, as after a crash.
                self.engine = (self.rebuild)();
                let why = format!("no answer within {}", seconds(self.deadline));
                let retry_at = Instant::now() + self.retry;
                self.held = Some((retry_at, format!("held after a call with {why}")));
                GiteaEvent::NotDone { job, why, retry_at }
            }
        }
    }
}

/// A command of the Telegram channel.
#[derive(Debug)]
pub(crate) enum TelegramCommand {
    /// A message to the chat (an unsent message of the pool state).
    Send { id: u64, text: String },
    /// Approvals.
    Approval(ApprovalCommand<Text>),
}

/// A command of an approval channel (Telegram's, Nostr's); `Q` is its
/// text (Telegram's MarkdownV2 builder, Nostr's plain text).
#[derive(Debug)]
pub(crate) enum ApprovalCommand<Q> {
    /// An approval request for the agent `key` (request id `id`).
    Ask {
        key: String,
        id: String,
        name: String,
        question: Q,
        ttl: Duration,
    },
    /// Read the answers to the requests waiting.
    Poll,
    /// The request `id` was answered on another channel: forget it and
    /// say so (`note`).
    Withdraw { id: String, note: Q },
}

/// How a Telegram command went.
#[derive(Debug)]
pub(crate) enum TelegramEvent {
    Sent {
        id: u64,
    },
    /// Not sent now: to try again in `retry_after` seconds (flood control,
    /// Telegram unreachable or not answering, a message ahead waiting).
    Later {
        id: u64,
        retry_after: f64,
        why: String,
    },
    /// Refused for good (a bad request): not retried.
    Dropped {
        id: u64,
        why: String,
    },
    /// How an approval command went.
    Approval(ApprovalEvent),
}

/// How an approval command went (Telegram's, Nostr's).
#[derive(Debug)]
pub(crate) enum ApprovalEvent {
    /// The channel accepted request `id`; its answers refer to that id.
    Asked {
        key: String,
        id: String,
    },
    AskFailed {
        key: String,
        why: String,
    },
    /// Answers by request id, with who gave them (expiry is the state
    /// machine's own deadline).
    Answers(Vec<Answer>),
    PollFailed {
        why: String,
    },
    /// A withdrawal done (or why not: the request then expires by itself).
    Withdrawn {
        id: String,
        result: Result<bool, ChannelError>,
    },
}

/// An answer read from a channel: the request id, the answer, who gave it.
pub(crate) type Answer = (String, Approval, Option<String>);

/// The answers among `decisions` (expiry is the state machine's own
/// deadline, not a channel's).
fn answers(decisions: Vec<Decision>) -> Vec<Answer> {
    decisions
        .into_iter()
        .filter_map(|d| Some((d.request_id, d.verdict?, d.by)))
        .collect()
}

/// Sends messages, asks for approvals and reads the answers.
pub(crate) struct TelegramExecutor {
    tg: Telegram,
    approvals: Approvals,
    deadline: Duration,
    /// After a call without an answer: nothing until then.
    held: Option<Instant>,
    /// Flood control on messages: none until then, so a message never
    /// overtakes an older one still waiting.
    sends_after: Option<Instant>,
}

impl TelegramExecutor {
    pub(crate) fn new(tg: Telegram, approvals: Approvals, deadline: Duration) -> TelegramExecutor {
        TelegramExecutor {
            tg,
            approvals,
            deadline,
            held: None,
            sends_after: None,
        }
    }

    /// Seconds until a hold ends, if one holds.
    fn holding(&self, send: bool) -> Option<f64> {
        let now = Instant::now();
        let until = match (self.held, self.sends_after.filter(|_| send)) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        (until > now).then(|| (until - now).as_secs_f64())
    }

    /// No answer within the deadline (or none at all): hold the channel.
    fn no_answer(&mut self) -> f64 {
        self.held = Some(Instant::now() + self.deadline);
        self.deadline.as_secs_f64()
    }
}

impl Executor for TelegramExecutor {
    type Command = TelegramCommand;
    type Event = TelegramEvent;

    async fn run(&mut self, cmd: TelegramCommand) -> TelegramEvent {
        use nexus_alert::telegram::Error as E;
        let deadline = self.deadline;
        let late = || format!("no answer within {}", seconds(deadline));
        match cmd {
            TelegramCommand::Send { id, text } => {
                if let Some(left) = self.holding(true) {
                    let why = "waiting behind an earlier message or call".to_string();
                    return TelegramEvent::Later {
                        id,
                        retry_after: left,
                        why,
                    };
                }
                let sent =
                    tokio::time::timeout(deadline, self.tg.send(&Text::new().text(&text), None))
                        .await;
                let (retry_after, why) = match sent {
                    Ok(Ok(_)) => return TelegramEvent::Sent { id },
                    Err(_) => (self.no_answer(), late()),
                    Ok(Err(E::RateLimited { retry_after, .. })) => {
                        let wait = Duration::from_secs(retry_after);
                        self.sends_after = Some(Instant::now() + wait);
                        (
                            wait.as_secs_f64(),
                            format!("flood control for {retry_after}s"),
                        )
                    }
                    Ok(Err(e @ (E::Unreachable { .. } | E::Decode { .. }))) => {
                        (self.no_answer(), e.to_string())
                    }
                    Ok(Err(e @ E::Api { status: 500.., .. })) => {
                        self.sends_after = Some(Instant::now() + deadline);
                        (deadline.as_secs_f64(), e.to_string())
                    }
                    Ok(Err(e)) => {
                        return TelegramEvent::Dropped {
                            id,
                            why: e.to_string(),
                        };
                    }
                };
                TelegramEvent::Later {
                    id,
                    retry_after,
                    why,
                }
            }
            TelegramCommand::Approval(a) => TelegramEvent::Approval(self.approve(a).await),
        }
    }
}

impl TelegramExecutor {
    /// Asks, polls or withdraws an approval request.
    async fn approve(&mut self, cmd: ApprovalCommand<Text>) -> ApprovalEvent {
        use nexus_alert::telegram::Error as E;
        let deadline = self.deadline;
        let late = || format!("no answer within {}", seconds(deadline));
        match cmd {
            ApprovalCommand::Ask {
                key,
                id,
                name,
                question,
                ttl,
            } => {
                if self.holding(false).is_some() {
                    let why = "telegram is not answering; asking again later".to_string();
                    return ApprovalEvent::AskFailed { key, why };
                }
                let asked = tokio::time::timeout(
                    deadline,
                    self.approvals.request(&id, &name, &question, ttl),
                )
                .await;
                match asked {
                    Ok(Ok(())) => ApprovalEvent::Asked { key, id },
                    Ok(Err(e)) => {
                        if matches!(e, E::Unreachable { .. }) {
                            self.no_answer();
                        }
                        ApprovalEvent::AskFailed {
                            key,
                            why: e.to_string(),
                        }
                    }
                    Err(_) => {
                        self.no_answer();
                        ApprovalEvent::AskFailed { key, why: late() }
                    }
                }
            }
            ApprovalCommand::Poll => {
                if self.holding(false).is_some() {
                    let why = "telegram is not answering".to_string();
                    return ApprovalEvent::PollFailed { why };
                }
                let now = nexus_stdx::now_epoch() as i64;
                match tokio::time::timeout(deadline, self.approvals.poll(now)).await {
                    Ok(Ok(decisions)) => ApprovalEvent::Answers(answers(decisions)),
                    Ok(Err(e)) => {
                        if matches!(e, E::Unreachable { .. }) {
                            self.no_answer();
                        }
                        ApprovalEvent::PollFailed { why: e.to_string() }
                    }
                    Err(_) => {
                        self.no_answer();
                        ApprovalEvent::PollFailed { why: late() }
                    }
                }
            }
            ApprovalCommand::Withdraw { id, note } => {
                if self.holding(false).is_some() {
                    return ApprovalEvent::Withdrawn {
                        id,
                        result: Err(ChannelError::Held("telegram")),
                    };
                }
                let done =
                    tokio::time::timeout(deadline, self.approvals.withdraw(&id, &note)).await;
                let result = match done {
                    Ok(r) => r.map_err(ChannelError::from),
                    Err(_) => {
                        self.no_answer();
                        Err(ChannelError::NoAnswer(deadline))
                    }
                };
                ApprovalEvent::Withdrawn { id, result }
            }
        }
    }
}

/// A command of the Nostr channel.
pub(crate) type NostrCommand = ApprovalCommand<String>;

/// How a Nostr command went.
pub(crate) type NostrEvent = ApprovalEvent;

/// Asks for approvals over Nostr DMs and reads the replies. Relays that
/// fail back off inside the client (no call until then), so there is no
/// hold here; each command still gets the channel's deadline.
pub(crate) struct NostrExecutor {
    approvals: nexus_nostr::NostrApprovals,
    deadline: Duration,
}

impl NostrExecutor {
    pub(crate) fn new(approvals: nexus_nostr::NostrApprovals, deadline: Duration) -> NostrExecutor {
        NostrExecutor {
            approvals,
            deadline,
        }
    }
}

impl Executor for NostrExecutor {
    type Command = NostrCommand;
    type Event = NostrEvent;

    async fn run(&mut self, cmd: NostrCommand) -> NostrEvent {
        let deadline = self.deadline;
        let late = || format!("no answer within {}", seconds(deadline));
        let a = &mut self.approvals;
        match cmd {
            ApprovalCommand::Ask {
                key,
                id,
                name,
                question,
                ttl,
            } => {
                match tokio::time::timeout(deadline, a.request(&id, &name, &question, ttl)).await {
                    Ok(Ok(())) => ApprovalEvent::Asked { key, id },
                    Ok(Err(e)) => ApprovalEvent::AskFailed {
                        key,
                        why: e.to_string(),
                    },
                    Err(_) => ApprovalEvent::AskFailed { key, why: late() },
                }
            }
            ApprovalCommand::Poll => {
                let now = nexus_stdx::now_epoch() as u64;
                match tokio::time::timeout(deadline, a.poll(now)).await {
                    Ok(Ok(decisions)) => ApprovalEvent::Answers(answers(decisions)),
                    Ok(Err(e)) => ApprovalEvent::PollFailed { why: e.to_string() },
                    Err(_) => ApprovalEvent::PollFailed { why: late() },
                }
            }
            ApprovalCommand::Withdraw { id, note } => {
                let result = match tokio::time::timeout(deadline, a.withdraw(&id, &note)).await {
                    Ok(r) => r.map_err(ChannelError::from),
                    Err(_) => Err(ChannelError::NoAnswer(deadline)),
                };
                ApprovalEvent::Withdrawn { id, result }
            }
        }
    }
}

/// Observations kept for Gitea; beyond this the oldest are dropped (a Gitea
/// down for hours under a flapping fleet), with a warning.
const OBSERVATIONS_KEPT: usize = 10_000;

/// Observations waiting for the Gitea channel, oldest first, in the pool
/// state (so a restart sends them again). A newer observation of a subject
/// replaces its last one not sent yet when both say the same (failing, or
/// healthy): the engine acts on the latest diagnostics, as it does for the
/// subjects its rate limit holds back. A change (a death, a recovery) is
/// never merged away: every episode reaches the engine, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// By sequence number (the order they were made in), and whether the
    /// channel has it.
    entries: BTreeMap<u64, (Check, bool)>,
    /// Each subject's newest entry.
    last: HashMap<String, u64>,
    next: u64,
}

impl Observations {
    /// How many wait, sent or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// None waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `check` (see the type's documentation).
    pub(crate) fn add(&mut self, check: Check) {
        if let Some(seq) = self.last.get(&check.subject)
            && let Some((c, false)) = self.entries.get_mut(seq)
            && c.healthy == check.healthy
        {
            *c = check;
            return;
        }
        if self.entries.len() >= OBSERVATIONS_KEPT
            && let Some((seq, (old, _))) = self.entries.pop_first()
        {
            tracing::warn!(
                "gitea: {} observations wait; the oldest ({}) is dropped",
                OBSERVATIONS_KEPT,
                old.subject
            );
            if self.last.get(&old.subject) == Some(&seq) {
                self.last.remove(&old.subject);
            }
        }
        let seq = self.next;
        self.next += 1;
        self.last.insert(check.subject.clone(), seq);
        self.entries.insert(seq, (check, false));
    }

    /// The observations not sent yet, oldest first.
    pub(crate) fn unsent(&self) -> impl Iterator<Item = (u64, &Check)> + '_ {
        self.entries
            .iter()
            .filter(|(_, (_, sent))| !sent)
            .map(|(seq, (c, _))| (*seq, c))
    }

    /// The channel has `seq`.
    pub(crate) fn sent(&mut self, seq: u64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            e.1 = true;
        }
    }

    /// The engine took `seq`: it is done.
    pub(crate) fn done(&mut self, seq: u64) -> Option<Check> {
        let (c, _) = self.entries.remove(&seq)?;
        if self.last.get(&c.subject) == Some(&seq) {
            self.last.remove(&c.subject);
        }
        Some(c)
    }

    /// `seq` was not done: it waits again, in its place.
    pub(crate) fn retry(&mut self, seq: u64) {
        if let Some(e) = self.entries.get_mut(&seq) {
            e.1 = false;
        }
    }
}

/// On disk: the checks, oldest first.
impl Serialize for Observations {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.values().map(|(c, _)| c))
    }
}

impl<'de> Deserialize<'de> for Observations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Observations, D::Error> {
        let mut out = Observations::default();
        for c in Vec::<Check>::deserialize(d)? {
            out.add(c);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(subject: &str, healthy: bool) -> Check {
        if healthy {
            Check::healthy(subject, "ok")
        } else {
            Check::failing(subject, "dead", "")
        }
    }

    fn unsent(o: &Observations) -> Vec<(u64, Check)> {
        o.unsent().map(|(s, c)| (s, c.clone())).collect()
    }

    #[test]
    fn a_newer_observation_replaces_a_waiting_one_that_says_the_same() {
        let mut o = Observations::default();
        o.add(check("a", false));
        o.add(check("b", false));
        let mut newer = check("a", false);
        newer.diagnostics = "newer".into();
        o.add(newer.clone());
        assert_eq!(unsent(&o), [(0, newer.clone()), (1, check("b", false))]);
        // A recovery is not merged into the death before it.
        o.add(check("a", true));
        assert_eq!(o.len(), 3);
        // One already sent is not replaced: the newer waits behind it.
        o.sent(0);
        o.sent(2);
        o.add(check("a", true));
        assert_eq!(unsent(&o), [(1, check("b", false)), (3, check("a", true))]);
        // Not done: it waits again, in its place.
        o.retry(0);
        assert_eq!(unsent(&o).first(), Some(&(0, newer.clone())));
        assert_eq!(o.done(0), Some(newer));
        for seq in [1, 2, 3] {
            o.done(seq);
        }
        assert!(o.is_empty());
        o.add(check("a", true));
        assert_eq!(unsent(&o), [(4, check("a", true))], "a fresh entry");
    }

    #[test]
    fn on_disk_they_keep_their_order() {
        let mut o = Observations::default();
        o.add(check("a", false));
        o.add(check("b", false));
        o.sent(0);
        o.add(check("a", true));
        let json = serde_json::to_string(&o).unwrap();
        let back: Observations = serde_json::from_str(&json).unwrap();
        let unsent: Vec<Check> = back.unsent().map(|(_, c)| c.clone()).collect();
        assert_eq!(
            unsent,
            [check("a", false), check("b", false), check("a", true)]
        );
    }

    /// A Telegram that accepts and never answers: the call is cut at the
    /// deadline, the message waits, and the commands behind it are answered
    /// at once (held), without a call; the approval state file is untouched.
    #[tokio::test]
    async fn a_call_without_an_answer_is_cut_at_the_deadline_and_holds_the_channel() {
        let silent = nexus_testkit::tcp::silent().await;
        let tmp = tempfile::tempdir().unwrap();
        let token = nexus_notify::BotToken::new("123456:test-token").unwrap();
        let mut cfg = nexus_notify::TelegramConfig::new(token, -1);
        cfg.base_url = format!("http://{}", silent.addr);
        let tg = Telegram::new(&cfg).unwrap();
        let state = tmp.path().join("approvals.json");
        let approvals =
            Approvals::new(nexus_notify::ApprovalConfig::new(state.clone()), tg.clone());
        let deadline = Duration::from_millis(300);
        let mut x = TelegramExecutor::new(tg, approvals, deadline);
        let t0 = Instant::now();
        let first = x
            .run(TelegramCommand::Send {
                id: 1,
                text: "one".into(),
            })
            .await;
        let took = t0.elapsed();
        assert!(
            matches!(&first, TelegramEvent::Later { id: 1, why, .. } if why.contains("no answer")),
            "{first:?}"
        );
        assert!(took >= deadline && took < deadline * 3, "{took:?}");
        let t1 = Instant::now();
        let ask = x
            .run(TelegramCommand::Approval(ApprovalCommand::Ask {
                key: "c/a".into(),
                id: "r1".into(),
                name: "a".into(),
                question: Text::new().text("revive a?"),
                ttl: Duration::from_secs(60),
            }))
            .await;
        let poll = x
            .run(TelegramCommand::Approval(ApprovalCommand::Poll))
            .await;
        use ApprovalEvent as A;
        assert!(
            matches!(ask, TelegramEvent::Approval(A::AskFailed { .. })),
            "{ask:?}"
        );
        assert!(
            matches!(poll, TelegramEvent::Approval(A::PollFailed { .. })),
            "{poll:?}"
        );
        assert!(t1.elapsed() < deadline, "held: no call");
        assert!(!state.exists(), "nothing saved for a request never made");
    }

    /// A Gitea that accepts and never answers: the engine's call is cut at
    /// the deadline and the engine rebuilt; the observation is not done (it
    /// waits in the pool state) and the channel holds until `retry`.
    #[tokio::test]
    async fn a_gitea_call_without_an_answer_is_cut_and_the_engine_rebuilt() {
        let silent = nexus_testkit::tcp::silent().await;
        let tmp = tempfile::tempdir().unwrap();
        let rebuilt = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (dir, url, count) = (
            tmp.path().to_path_buf(),
            format!("http://{}", silent.addr),
            rebuilt.clone(),
        );
        let rebuild = Box::new(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let token = nexus_gitea::Token::new("a-token-of-some-length").unwrap();
            let mut g = nexus_gitea::GiteaConfig::new(&url, "ops/alerts", token);
            g.timeout = Duration::from_secs(5);
            let client = nexus_gitea::GiteaClient::new(&g).unwrap();
            Engine::new(
                nexus_gitea::EngineConfig::new(&dir, "pool", "[pool]"),
                Some(client),
            )
        });
        let deadline = Duration::from_millis(300);
        let mut x = GiteaExecutor::new(rebuild, deadline, Duration::from_secs(60));
        let t0 = Instant::now();
        let ev = x
            .run(GiteaCommand::Observe {
                seq: 7,
                check: check("c/a", false),
            })
            .await;
        assert!(t0.elapsed() < deadline * 3, "{:?}", t0.elapsed());
        assert!(
            matches!(
                ev,
                GiteaEvent::NotDone {
                    job: GiteaJob::Observe(7),
                    ..
                }
            ),
            "{ev:?}"
        );
        assert_eq!(
            rebuilt.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "rebuilt once"
        );
        let t1 = Instant::now();
        let ev = x.run(GiteaCommand::Tick).await;
        assert!(
            matches!(
                ev,
                GiteaEvent::NotDone {
                    job: GiteaJob::Tick,
                    ..
                }
            ),
            "{ev:?}"
        );
        assert!(t1.elapsed() < deadline, "held: no call");
    }
}
