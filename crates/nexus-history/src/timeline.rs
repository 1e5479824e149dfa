//! The recent history in memory, for the dashboard: every subject with its
//! last state, its last events and its 24-hour and 7-day uptime bars.
//!
//! [`Reader::refresh`] brings a [`Timeline`] up to date: the first call
//! reads the last 7 days (finding where they start by a binary search on
//! the row ids, which follow time, and the state before them by one index
//! seek per subject); every later call reads only the rows added since
//! (`id > last`). The bars are computed there too, so reading a timeline
//! (the page's render) does no SQL and no arithmetic over events.

use std::collections::{HashMap, VecDeque};

use rusqlite::{OptionalExtension, params};

use crate::{Event, HistoryError, Kind, Reader, Subject, Uptime, compute_uptime};

/// One day, in ms.
pub const DAY_MS: i64 = 86_400_000;
/// The long bar's span: 7 days, in ms.
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// Buckets of the 24-hour bar (one an hour).
pub const DAY_BUCKETS: usize = 24;
/// Buckets of the 7-day bar (one per 6 hours).
pub const WEEK_BUCKETS: usize = 28;

/// Whether a state counts as up in the uptime: `Some(true)` up,
/// `Some(false)` down, `None` unknown (not counted either way).
///
/// Agents are up when `healthy`; cron jobs when `OK`, `RUNNING` or `LATE`
/// (late is inside its grace); checks when `OK` or `WARNING` (the service
/// answers); `unknown` (any case) is unknown for all.
pub fn is_up(kind: Kind, state: &str) -> Option<bool> {
    if state.eq_ignore_ascii_case("unknown") || state.is_empty() {
        return None;
    }
    Some(match kind {
        Kind::Agent => state == "healthy",
        Kind::Cron => matches!(state, "OK" | "RUNNING" | "LATE"),
        Kind::Check => matches!(state, "OK" | "WARNING"),
    })
}

/// One subject as the timeline holds it.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Its row: group, name, last state and reason, when it changed and
    /// when it was last seen.
    pub subject: Subject,
    /// Its last events, newest first.
    pub recent: VecDeque<Event>,
    /// The last 24 hours in [`DAY_BUCKETS`] buckets.
    pub day: Uptime,
    /// The last 7 days in [`WEEK_BUCKETS`] buckets.
    pub week: Uptime,
    /// Up or not before the first change kept.
    before: Option<bool>,
    /// Changes inside the 7 days, oldest first: (ms, up).
    changes: VecDeque<(i64, Option<bool>)>,
}

/// What one [`Reader::refresh`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Subjects held.
    pub subjects: usize,
    /// Event rows read.
    pub rows: usize,
    /// The first refresh (or one after the file was replaced): read the
    /// whole 7 days.
    pub full: bool,
}

/// The recent history of every subject; see the module's doc.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The highest event row id read.
    last_id: i64,
    /// The 7 days have been read once.
    loaded: bool,
    tracks: HashMap<i64, Tracked>,
    index: HashMap<(Kind, String), i64>,
    /// Events kept per subject.
    recent: usize,
    /// The time of the last refresh, ms.
    at_ms: i64,
}

impl Timeline {
    /// An empty timeline keeping `recent` events per subject.
    pub fn new(recent: usize) -> Timeline {
        Timeline {
            last_id: 0,
            loaded: false,
            tracks: HashMap::new(),
            index: HashMap::new(),
            recent,
            at_ms: 0,
        }
    }

    /// A subject by kind and name.
    pub fn get(&self, kind: Kind, subject: &str) -> Option<&Tracked> {
        let id = self.index.get(&(kind, subject.to_owned()))?;
        self.tracks.get(id)
    }

    /// The subjects of one kind, by group then name.
    pub fn of_kind(&self, kind: Kind) -> Vec<&Tracked> {
        let mut v: Vec<&Tracked> = self
            .tracks
            .values()
            .filter(|t| t.subject.kind == kind)
            .collect();
        v.sort_by(|a, b| {
            (&a.subject.group, &a.subject.subject).cmp(&(&b.subject.group, &b.subject.subject))
        });
        v
    }

    /// Subjects held.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// No subject held.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// When it was last refreshed, ms since the epoch (0: never).
    pub fn refreshed_at_ms(&self) -> i64 {
        self.at_ms
    }
}

impl Reader {
    /// Brings `t` up to date at `now_ms`: the subjects, the rows added
    /// since the last call, the bars. See the module's doc.
    pub fn refresh(&self, t: &mut Timeline, now_ms: i64) -> Result<Refreshed, HistoryError> {
        let e = self.err();
        let from = now_ms.saturating_sub(WEEK_MS);
        let max_id: i64 = self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
            .map_err(&e)?;
        // A file replaced by an older or emptier one: start over.
        if max_id < t.last_id {
            *t = Timeline::new(t.recent);
        }
        let full = !t.loaded;
        let mut out = Refreshed {
            full,
            ..Refreshed::default()
        };
        self.refresh_subjects(t)?;
        if full {
            t.last_id = self.first_id_since(from, max_id)?.saturating_sub(1);
            let mut before = self
                .conn
                .prepare_cached(
                    "SELECT new_state FROM events WHERE subject_id = ?1 AND at_ms < ?2
                     ORDER BY at_ms DESC, id DESC LIMIT 1",
                )
                .map_err(&e)?;
            for (id, track) in &mut t.tracks {
                let state: Option<String> = before
                    .query_row(params![id, from], |r| r.get(0))
                    .optional()
                    .map_err(&e)?;
                track.before = state.and_then(|s| is_up(track.subject.kind, &s));
            }
        }
        let mut rows = self
            .conn
            .prepare_cached(
                "SELECT e.id, e.subject_id, e.at_ms, e.old_state, e.new_state, r.text, e.actor
                 FROM events e JOIN reasons r ON r.id = e.reason_id
                 WHERE e.id > ?1 ORDER BY e.id",
            )
            .map_err(&e)?;
        let mut q = rows.query(params![t.last_id]).map_err(&e)?;
        while let Some(r) = q.next().map_err(&e)? {
            let id: i64 = r.get(0).map_err(&e)?;
            let subject_id: i64 = r.get(1).map_err(&e)?;
            t.last_id = t.last_id.max(id);
            out.rows += 1;
            let Some(track) = t.tracks.get_mut(&subject_id) else {
                continue;
            };
            let at_ms: i64 = r.get(2).map_err(&e)?;
            let new_state: String = r.get(4).map_err(&e)?;
            let up = is_up(track.subject.kind, &new_state);
            // Rows follow time but two writers' clocks may not: keep the
            // changes sorted.
            let pos = track.changes.partition_point(|(at, _)| *at <= at_ms);
            track.changes.insert(pos, (at_ms, up));
            track.recent.push_front(Event {
                at_ms,
                kind: track.subject.kind,
                group: track.subject.group.clone(),
                subject: track.subject.subject.clone(),
                old_state: r.get(3).map_err(&e)?,
                new_state,
                reason: r.get(5).map_err(&e)?,
                actor: r.get(6).map_err(&e)?,
            });
            track.recent.truncate(t.recent);
        }
        drop(q);
        if full {
            // Subjects quiet all week still show their last events.
            for track in t.tracks.values_mut().filter(|tr| tr.recent.is_empty()) {
                let ev = self.last_events(track.subject.kind, &track.subject.subject, t.recent)?;
                track.recent = ev.into();
            }
        }
        let day_from = now_ms.saturating_sub(DAY_MS);
        for track in t.tracks.values_mut() {
            while let Some(&(at, up)) = track.changes.front() {
                if at >= from {
                    break;
                }
                track.before = up;
                track.changes.pop_front();
            }
            let changes = || track.changes.iter().copied();
            track.week = compute_uptime(track.before, changes(), from, now_ms, WEEK_BUCKETS);
            track.day = compute_uptime(track.before, changes(), day_from, now_ms, DAY_BUCKETS);
        }
        t.at_ms = now_ms;
        t.loaded = true;
        out.subjects = t.tracks.len();
        Ok(out)
    }

    /// Every subject row into `t` (new ones added, gone ones removed).
    fn refresh_subjects(&self, t: &mut Timeline) -> Result<(), HistoryError> {
        let e = self.err();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, kind, grp, subject, state, reason, at_ms, seen_ms FROM subjects",
            )
            .map_err(&e)?;
        let mut q = st.query([]).map_err(&e)?;
        let mut present = std::collections::HashSet::new();
        while let Some(r) = q.next().map_err(&e)? {
            let id: i64 = r.get(0).map_err(&e)?;
            let kind: String = r.get(1).map_err(&e)?;
            let Some(kind) = Kind::parse(&kind) else {
                continue;
            };
            let subject = Subject {
                kind,
                group: r.get(2).map_err(&e)?,
                subject: r.get(3).map_err(&e)?,
                state: r.get(4).map_err(&e)?,
                reason: r.get(5).map_err(&e)?,
                at_ms: r.get(6).map_err(&e)?,
                seen_ms: r.get(7).map_err(&e)?,
            };
            present.insert(id);
            match t.tracks.get_mut(&id) {
                Some(track) => track.subject = subject,
                None => {
                    t.index.insert((kind, subject.subject.clone()), id);
                    t.tracks.insert(
                        id,
                        Tracked {
                            subject,
                            recent: VecDeque::new(),
                            day: Uptime::default(),
                            week: Uptime::default(),
                            before: None,
                            changes: VecDeque::new(),
                        },
                    );
                }
            }
        }
        t.tracks.retain(|id, _| present.contains(id));
        t.index.retain(|_, id| present.contains(id));
        Ok(())
    }

    /// The lowest event id whose time is `from` or later (row ids follow
    /// time), by a binary search of about 20 index lookups; `max_id + 1`
    /// when there is none.
    fn first_id_since(&self, from: i64, max_id: i64) -> Result<i64, HistoryError> {
        let e = self.err();
        let mut at = self
            .conn
            .prepare_cached("SELECT id, at_ms FROM events WHERE id >= ?1 ORDER BY id LIMIT 1")
            .map_err(&e)?;
        let (mut lo, mut hi) = (0i64, max_id.saturating_add(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row: Option<(i64, i64)> = at
                .query_row(params![mid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(&e)?;
            match row {
                Some((id, t)) if t < from => lo = id + 1,
                Some(_) => hi = mid,
                None => hi = mid,
            }
        }
        Ok(lo)
    }
}
