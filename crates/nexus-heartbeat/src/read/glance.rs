//! The fleet sweep's fast path: the verdict on a heartbeat without keeping
//! its document.
//!
//! A supervisor of 10,000 agents reads 10,000 files per sweep, and 90 % of
//! them are fresh. For those it needs three numbers (state, age, PID), not a
//! map of every field and a sentence. [`Glance::parse`] reads just the fields the
//! verdict depends on; anything it is not sure about (legacy forms, a field
//! of an odd type, a duplicate key, a beat that is not fresh) goes through
//! the full [`Classification::of`], so the two can never disagree
//! (a property test holds them to it).

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Classification, FIRST_READ, Observation, Problem, Rule, State, interval_value, observe_read,
    open_heartbeat, read_heartbeat, time_value,
};

/// What a sweep needs of one heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Glance {
    /// The state, as [`Classification::of`] decides it.
    pub state: State,
    /// Seconds since the beat; `None` when the file has no timestamp
    /// (unlike [`Classification::age_seconds`], which counts from epoch 0).
    pub age_seconds: Option<f64>,
    /// The writer's `pid`, when it is a number that fits.
    pub pid: Option<u32>,
    /// Why it is not fresh, as [`Classification::of`] words it; `None` when fresh.
    pub reason: Option<String>,
}

impl Glance {
    /// The glance of a full classification.
    pub fn of(c: Classification) -> Glance {
        let obs = c.observation.as_ref();
        Glance {
            state: c.state,
            age_seconds: c
                .age_seconds
                .filter(|_| obs.is_some_and(|o| o.timestamp.is_some())),
            pid: obs.and_then(|o| pid_of(o.fields.get("pid"))),
            reason: (c.state != State::Fresh).then_some(c.reason),
        }
    }

    /// The glance of a file that could not be read.
    pub fn problem(p: Problem) -> Glance {
        Glance {
            state: p.state,
            age_seconds: None,
            pid: None,
            reason: Some(p.reason),
        }
    }
}

fn pid_of(v: Option<&Value>) -> Option<u32> {
    v?.as_u64().and_then(|p| u32::try_from(p).ok())
}

/// The fields the verdict depends on; every other field is skipped unread.
#[derive(Deserialize)]
struct Lean {
    timestamp: Option<Value>,
    interval_seconds: Option<Value>,
    interval: Option<Value>,
    pid: Option<Value>,
}

impl Glance {
    /// The verdict on heartbeat content (as [`Classification::of`] of
    /// [`Observation::parse`] would give it, without the document).
    pub fn parse(bytes: &[u8], now: f64, rule: &Rule) -> Glance {
        fast(bytes, now, rule).unwrap_or_else(|| full(bytes, now, rule))
    }

    /// [`Glance::parse`] of a file the caller opened (with `O_NONBLOCK`, as for
    /// [`Observation::of_file`]; its content is never quoted).
    pub fn of_file(file: &mut File, now: f64, rule: &Rule) -> Glance {
        glance_opened(file, None, now, rule)
    }

    /// [`Glance::parse`] of the file at `path`, read like [`Observation::read`]
    /// reads it: a symbolic link is not followed, a missing file is `Missing`,
    /// an invalid file's content is quoted by a sample at most.
    pub fn read(path: &Path, now: f64, rule: &Rule) -> Glance {
        match open_heartbeat(path) {
            Ok(mut f) => glance_opened(&mut f, Some(path), now, rule),
            Err(p) => Glance::problem(p),
        }
    }
}

/// [`Glance::of_file`] of a file opened at `path`, when the caller knows it.
fn glance_opened(file: &mut File, path: Option<&Path>, now: f64, rule: &Rule) -> Glance {
    READ_BUF.with_borrow_mut(|buf| {
        let glance = glance_read(file, path, buf, now, rule);
        // A rare big file must not pin a megabyte to the thread.
        if buf.len() > FIRST_READ {
            buf.truncate(FIRST_READ);
            buf.shrink_to_fit();
        }
        glance
    })
}

thread_local! {
    /// The read buffer of [`Glance::of_file`], reused by every file a thread
    /// reads (no allocation and no zeroing per heartbeat).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn glance_read(
    file: &mut File,
    path: Option<&Path>,
    buf: &mut Vec<u8>,
    now: f64,
    rule: &Rule,
) -> Glance {
    let bytes = match read_heartbeat(file, buf) {
        Ok(len) => &buf[..len],
        Err(p) => return Glance::problem(p),
    };
    if !bytes.is_empty()
        && bytes.len() as u64 <= Observation::MAX_FILE_BYTES
        && let Some(g) = fast(bytes, now, rule)
    {
        return g;
    }
    // Empty, oversized, legacy or not fresh: the full reader decides.
    let observed = observe_read(file, bytes, path);
    Glance::of(Classification::of(Path::new(""), observed, now, rule))
}

fn full(bytes: &[u8], now: f64, rule: &Rule) -> Glance {
    let observed = Observation::parse(bytes, None).map_err(|e| Problem {
        state: State::Corrupt,
        reason: e.to_string(),
    });
    Glance::of(Classification::of(Path::new(""), observed, now, rule))
}

/// A fresh beat's glance, or `None` for anything else.
fn fast(bytes: &[u8], now: f64, rule: &Rule) -> Option<Glance> {
    // Only a JSON object; `Lean` would also accept an array.
    let first = bytes.iter().find(|b| !b" \t\r\n".contains(b))?;
    if *first != b'{' {
        return None;
    }
    // UTF-8 checked once for the file, not per string (see nexus-cell's
    // manifests); invalid UTF-8 is for `Classification::of` to word.
    let lean: Lean = serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()?;
    let timestamp = time_value(lean.timestamp.as_ref()?).ok()?;
    let interval = match (&lean.interval_seconds, &lean.interval) {
        (Some(v), _) => Some(interval_value(v).ok()?),
        // `interval_seconds: null` beside `interval`: let `Classification::of` decide.
        (None, Some(_)) => return None,
        (None, None) => None,
    };
    let age = now - timestamp;
    let max_age = rule.max_age_for_interval(interval);
    if age < -rule.future_tolerance || age > max_age {
        return None;
    }
    Some(Glance {
        state: State::Fresh,
        age_seconds: Some(age),
        pid: pid_of(lean.pid.as_ref()),
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: f64 = 1000.0;

    fn rule() -> Rule {
        Rule::fixed(60.0)
    }

    #[test]
    fn a_fresh_beat_needs_no_document() {
        let g = Glance::parse(
            br#"{"timestamp": 990, "pid": 42, "model": "m"}"#,
            1000.0,
            &rule(),
        );
        assert_eq!(g.state, State::Fresh);
        assert_eq!(g.age_seconds, Some(10.0));
        assert_eq!(g.pid, Some(42));
        assert_eq!(g.reason, None);
    }

    #[test]
    fn a_path_is_glanced_like_it_is_classified() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hb.json");
        assert_eq!(Glance::read(&p, NOW, &rule()).state, State::Missing);
        std::fs::write(&p, br#"{"timestamp": 995, "pid": 9}"#).unwrap();
        let g = Glance::read(&p, NOW, &rule());
        assert_eq!((g.state, g.pid), (State::Fresh, Some(9)));
        std::fs::write(&p, b"").unwrap();
        let c = super::super::Classification::read(&p, NOW, &rule());
        assert_eq!(Glance::read(&p, NOW, &rule()).state, c.state);
    }

    #[test]
    fn anything_else_is_worded_by_classify() {
        let stale = Glance::parse(br#"{"timestamp": 100, "pid": 7}"#, 1000.0, &rule());
        assert_eq!(stale.state, State::Stale);
        assert!(stale.reason.as_deref().is_some_and(|r| r.contains("ago")));
        assert_eq!(stale.pid, Some(7));
        let corrupt = Glance::parse(br#"{"timestamp": 17"#, 1000.0, &rule());
        assert_eq!(corrupt.state, State::Corrupt);
        let no_ts = Glance::parse(br#"{"pid": 1}"#, 1000.0, &rule());
        assert_eq!((no_ts.state, no_ts.age_seconds), (State::Stale, None));
        let array = Glance::parse(b"[990]", 1000.0, &rule());
        assert_eq!(array.state, State::Corrupt);
        let bare = Glance::parse(b"990", 1000.0, &rule());
        assert_eq!(bare.state, State::Fresh);
    }

    /// A field value: mostly plausible (times near `NOW`, small PIDs), some
    /// of the wrong type or absurd.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (800.0f64..1100.0).prop_map(|n| format!("{n}")),
            2 => (0u64..5_000_000_000).prop_map(|n| n.to_string()),
            1 => Just("null".to_string()),
            1 => Just("true".to_string()),
            1 => Just("[]".to_string()),
            1 => (900i64..1100).prop_map(|n| format!("\"{n}\"")),
            1 => Just("\"1970-01-01T00:16:30Z\"".to_string()),
            1 => Just("\"30s\"".to_string()),
            1 => Just("\"x\"".to_string()),
        ]
    }

    /// A heartbeat object: each field present or not (and sometimes twice),
    /// sometimes truncated.
    fn document() -> impl Strategy<Value = String> {
        let keys = [
            "timestamp",
            "interval_seconds",
            "interval",
            "pid",
            "status",
            "exit_code",
            "other",
        ];
        let fields =
            keys.map(|k| proptest::option::weighted(0.6, value()).prop_map(move |v| (k, v)));
        (fields, any::<u8>()).prop_map(|(fields, mode)| {
            let mut body: Vec<String> = fields
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("\"{k}\": {v}")))
                .collect();
            if mode % 16 == 0
                && let Some(first) = body.first().cloned()
            {
                body.push(first); // a duplicate key
            }
            let doc = format!("{{{}}}", body.join(", "));
            if mode % 16 == 1 {
                doc[..doc.len() / 2].to_string()
            } else {
                doc
            }
        })
    }

    proptest! {
        /// The fast path never disagrees with the full reader.
        #[test]
        fn glance_agrees_with_classify(doc in document()) {
            let (rule, now) = (Rule::default(), NOW);
            let fast = Glance::parse(doc.as_bytes(), now, &rule);
            let slow = full(doc.as_bytes(), now, &rule);
            prop_assert_eq!(fast.state, slow.state, "{}", doc);
            prop_assert_eq!(fast.age_seconds, slow.age_seconds, "{}", doc);
            prop_assert_eq!(fast.pid, slow.pid, "{}", doc);
        }
    }
}
