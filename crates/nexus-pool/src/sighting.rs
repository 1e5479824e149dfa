//! What the last check of an agent saw, kept beside its record and saved in
//! the state file, so `--status` (a separate process that reads that file
//! and the cells, and probes nothing) shows what the status page shows: the
//! state and why, the heartbeat's age at the check, the gateway and the
//! process, and when.
//!
//! Twelve bytes per agent, reasons as codes ([`Why`]) worded at display
//! time; only a heartbeat that cannot be read or parsed has words of its
//! own (the file and the field), kept apart for the few agents that have
//! one (`PoolState::reasons`).

use nexus_heartbeat::State as HbState;
use nexus_revive::{Health, Probe, State};
use serde::{Deserialize, Serialize};

/// Why an agent is not healthy, as the last check saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Why {
    /// Healthy, or nothing to say.
    #[default]
    None,
    /// No heartbeat file.
    NoHeartbeat,
    /// The heartbeat is older than its threshold.
    HeartbeatStale,
    /// The heartbeat cannot be parsed (a field such as `timestamp` is bad).
    HeartbeatCorrupt,
    /// The heartbeat cannot be read (a link, a FIFO, no permission).
    HeartbeatUnreadable,
    /// The heartbeat is stamped in the future and no longer changes.
    HeartbeatFuture,
    /// An agent process the pool itself launched has exited.
    Exited,
    /// The pool's own child runs, its heartbeat is stale.
    Hung,
    /// Nothing runs: no process, no gateway, no live heartbeat writer.
    NotRunning,
    /// `/proc` no longer shows its process.
    ProcessGone,
    /// The gateway did not answer the last probe.
    GatewayDown,
    /// It could not be checked.
    Unchecked,
    /// Its cell cannot be read (its record is kept, not stepped).
    CellUnreadable,
    /// Launched, its first fresh heartbeat not there yet.
    Launched,
}

impl Why {
    /// What the check saw, for an agent judged `health`: its own child's
    /// exit first, then a heartbeat that cannot be parsed or read (the
    /// operator's to fix, whatever else it causes: a "hung" agent whose
    /// heartbeat is corrupt is the corrupt heartbeat), then what the pool
    /// knows of the process, then the heartbeat, then the probes.
    pub fn of(health: Health, beat: HbState, probe: &Probe) -> Why {
        match (health, beat) {
            (Health::Healthy, _) => return Why::None,
            (Health::Gone, _) => return Why::Exited,
            (_, HbState::Corrupt) => return Why::HeartbeatCorrupt,
            (_, HbState::Unreadable) => return Why::HeartbeatUnreadable,
            (Health::Hung, _) => return Why::Hung,
            (Health::NotRunning, _) => return Why::NotRunning,
            (Health::ProcessGone, _) => return Why::ProcessGone,
            (Health::Dead | Health::Degraded | Health::Unknown, _) => {}
        }
        match beat {
            HbState::Missing => Why::NoHeartbeat,
            HbState::Stale => Why::HeartbeatStale,
            HbState::FromTheFuture => Why::HeartbeatFuture,
            HbState::Corrupt => Why::HeartbeatCorrupt,
            HbState::Unreadable => Why::HeartbeatUnreadable,
            HbState::Fresh if probe.gateway == Some(false) => Why::GatewayDown,
            HbState::Fresh if probe.process == Some(false) => Why::ProcessGone,
            HbState::Fresh => Why::Unchecked,
        }
    }

    /// The same, of an agent whose launch is in flight (`reviving`): what
    /// is missing is its first beat, unless its file is bad or its process
    /// already exited.
    pub fn launched(self) -> Why {
        match self {
            Why::HeartbeatCorrupt | Why::HeartbeatUnreadable | Why::Exited => self,
            _ => Why::Launched,
        }
    }

    /// A heartbeat that cannot be read or parsed: its words name the file
    /// and the field, and it is logged once per episode.
    pub fn is_bad_file(self) -> bool {
        matches!(self, Why::HeartbeatCorrupt | Why::HeartbeatUnreadable)
    }
}

/// What the last check of an agent saw (see the module documentation).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(from = "OnDisk", into = "OnDisk")]
pub struct Sighting {
    /// When, in whole epoch seconds; 0: never checked.
    checked_at: u32,
    /// The heartbeat's age at the check, in seconds; NaN: no heartbeat.
    age: f32,
    /// The state shown (a frozen cell's agent: as judged, its record untouched).
    pub state: State,
    /// Why it is not healthy.
    pub why: Why,
    /// Gateway and process, two bits each (0 unknown, 1 alive, 2 not), and
    /// bit 4: its cell is frozen.
    bits: u8,
}

const FROZEN: u8 = 1 << 4;

/// Equal when they say the same (no heartbeat equals no heartbeat).
impl PartialEq for Sighting {
    fn eq(&self, o: &Sighting) -> bool {
        self.checked_at == o.checked_at
            && self.age.to_bits() == o.age.to_bits()
            && self.state == o.state
            && self.why == o.why
            && self.bits == o.bits
    }
}

fn tri(v: Option<bool>) -> u8 {
    match v {
        None => 0,
        Some(true) => 1,
        Some(false) => 2,
    }
}

fn untri(b: u8) -> Option<bool> {
    match b & 3 {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

impl Sighting {
    /// A check at `now` (epoch seconds).
    pub fn new(now: f64, state: State, why: Why, probe: &Probe, age: Option<f64>) -> Sighting {
        Sighting {
            checked_at: now.clamp(0.0, f64::from(u32::MAX)) as u32,
            age: age.map_or(f32::NAN, |a| a as f32),
            state,
            why,
            bits: tri(probe.gateway) | tri(probe.process) << 2,
        }
    }

    /// The same, of an agent in a frozen cell.
    pub fn frozen(mut self) -> Sighting {
        self.bits |= FROZEN;
        self
    }

    /// Whether it was ever checked.
    pub fn checked(&self) -> bool {
        self.checked_at > 0
    }

    /// When it was checked (epoch seconds), if ever.
    pub fn checked_at(&self) -> Option<f64> {
        self.checked().then_some(f64::from(self.checked_at))
    }

    /// The heartbeat's age at the check, if there was one.
    pub fn heartbeat_age(&self) -> Option<f64> {
        (!self.age.is_nan()).then_some(f64::from(self.age))
    }

    /// Whether the gateway answered (`None`: not probed).
    pub fn gateway_alive(&self) -> Option<bool> {
        untri(self.bits)
    }

    /// Whether the process ran (`None`: not probed).
    pub fn process_alive(&self) -> Option<bool> {
        untri(self.bits >> 2)
    }

    /// Whether the agent's cell was frozen (reported, never revived).
    pub fn is_frozen(&self) -> bool {
        self.bits & FROZEN != 0
    }

    /// Why, in words; `detail` is the words of a bad heartbeat file (see
    /// [`Why::is_bad_file`]). `None` for a healthy agent.
    pub fn reason(&self, detail: Option<&str>) -> Option<String> {
        let age = |a: Option<f64>| a.map(|a| format!("{:.0} s ago", a.max(0.0)));
        let why = match self.why {
            Why::None if self.is_frozen() && self.state != State::Healthy => {
                "cell frozen".to_string()
            }
            Why::None => return None,
            Why::NoHeartbeat => "no heartbeat".to_string(),
            Why::HeartbeatStale => match age(self.heartbeat_age()) {
                Some(ago) => format!("heartbeat stale: last beat {ago}"),
                None => "heartbeat stale: no timestamp".to_string(),
            },
            Why::HeartbeatCorrupt => detail.unwrap_or("corrupt heartbeat").to_string(),
            Why::HeartbeatUnreadable => detail.unwrap_or("unreadable heartbeat").to_string(),
            Why::HeartbeatFuture => {
                "heartbeat stamped in the future and no longer changing".to_string()
            }
            Why::Exited => "its process exited".to_string(),
            Why::Hung => "hung: its process runs, its heartbeat is stale".to_string(),
            Why::NotRunning => "not running: no process, no live heartbeat writer".to_string(),
            Why::ProcessGone => "its process is gone".to_string(),
            Why::GatewayDown => "its gateway does not answer".to_string(),
            Why::Unchecked => "could not be checked".to_string(),
            Why::CellUnreadable => "its cell cannot be read: record kept, not stepped".to_string(),
            Why::Launched => "launched: no fresh heartbeat yet".to_string(),
        };
        Some(if self.is_frozen() && self.why != Why::None {
            format!("cell frozen (reported, never revived): {why}")
        } else {
            why
        })
    }
}

/// The words of a heartbeat file that cannot be read or parsed: the file,
/// then the reader's reason (which names the field).
pub fn bad_file_reason(why: Why, file: &std::path::Path, reason: &str) -> String {
    let what = match why {
        Why::HeartbeatUnreadable => "unreadable heartbeat",
        _ => "corrupt heartbeat",
    };
    format!("{what}: {}: {reason}", file.display())
}

/// A sighting as the state file holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct OnDisk {
    checked_at: Option<f64>,
    state: State,
    #[serde(skip_serializing_if = "is_none")]
    why: Why,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_age: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_alive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_alive: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    frozen: bool,
}

fn is_none(w: &Why) -> bool {
    *w == Why::None
}

impl From<Sighting> for OnDisk {
    fn from(s: Sighting) -> OnDisk {
        OnDisk {
            checked_at: s.checked_at(),
            state: s.state,
            why: s.why,
            // Tenths of a second: what an f32 holds, without its noise.
            heartbeat_age: s.heartbeat_age().map(|a| (a * 10.0).round() / 10.0),
            gateway_alive: s.gateway_alive(),
            process_alive: s.process_alive(),
            frozen: s.is_frozen(),
        }
    }
}

impl From<OnDisk> for Sighting {
    fn from(d: OnDisk) -> Sighting {
        let probe = Probe {
            gateway: d.gateway_alive,
            process: d.process_alive,
            heartbeat: nexus_revive::Heartbeat::Unknown,
        };
        let s = Sighting::new(
            d.checked_at.unwrap_or(0.0),
            d.state,
            d.why,
            &probe,
            d.heartbeat_age,
        );
        if d.frozen { s.frozen() } else { s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(gateway: Option<bool>, process: Option<bool>) -> Probe {
        Probe {
            gateway,
            process,
            heartbeat: nexus_revive::Heartbeat::Stale,
        }
    }

    #[test]
    fn a_sighting_is_twelve_bytes() {
        assert_eq!(size_of::<Sighting>(), 12);
    }

    #[test]
    fn why_puts_what_the_pool_knows_of_the_process_first() {
        let p = probe(Some(false), Some(true));
        assert_eq!(Why::of(Health::Healthy, HbState::Corrupt, &p), Why::None);
        assert_eq!(Why::of(Health::Gone, HbState::Fresh, &p), Why::Exited);
        assert_eq!(Why::of(Health::Hung, HbState::Stale, &p), Why::Hung);
        // A broken heartbeat is what the operator must fix, whatever it causes.
        assert_eq!(
            Why::of(Health::Hung, HbState::Corrupt, &p),
            Why::HeartbeatCorrupt
        );
        assert_eq!(
            Why::of(Health::NotRunning, HbState::Unreadable, &p),
            Why::HeartbeatUnreadable
        );
        assert_eq!(Why::of(Health::Gone, HbState::Corrupt, &p), Why::Exited);
        assert_eq!(
            Why::of(Health::Dead, HbState::Corrupt, &p),
            Why::HeartbeatCorrupt
        );
        assert_eq!(
            Why::of(Health::Dead, HbState::Missing, &p),
            Why::NoHeartbeat
        );
        assert_eq!(
            Why::of(Health::Degraded, HbState::Fresh, &p),
            Why::GatewayDown
        );
        assert_eq!(
            Why::of(Health::Degraded, HbState::Fresh, &probe(None, Some(false))),
            Why::ProcessGone
        );
        assert!(Why::HeartbeatCorrupt.is_bad_file() && Why::HeartbeatUnreadable.is_bad_file());
        assert!(!Why::HeartbeatStale.is_bad_file());
        // In flight: the first beat is what is missing, not a hang.
        assert_eq!(Why::Hung.launched(), Why::Launched);
        assert_eq!(Why::NoHeartbeat.launched(), Why::Launched);
        assert_eq!(Why::Exited.launched(), Why::Exited);
        assert_eq!(Why::HeartbeatCorrupt.launched(), Why::HeartbeatCorrupt);
    }

    #[test]
    fn reasons_are_worded_at_display_time() {
        let p = probe(Some(true), Some(false));
        let s = Sighting::new(
            1_800_000_000.4,
            State::Dead,
            Why::HeartbeatStale,
            &p,
            Some(72.4),
        );
        assert_eq!(s.checked_at(), Some(1_800_000_000.0));
        assert_eq!(s.gateway_alive(), Some(true));
        assert_eq!(s.process_alive(), Some(false));
        assert!(!s.is_frozen());
        assert_eq!(
            s.reason(None).as_deref(),
            Some("heartbeat stale: last beat 72 s ago")
        );
        let none = Sighting::new(5.0, State::Dead, Why::NoHeartbeat, &probe(None, None), None);
        assert_eq!(none.heartbeat_age(), None);
        assert_eq!(none.gateway_alive(), None);
        assert_eq!(
            none.frozen().reason(None).as_deref(),
            Some("cell frozen (reported, never revived): no heartbeat")
        );
        let detail = bad_file_reason(
            Why::HeartbeatCorrupt,
            std::path::Path::new("/c/a.json"),
            "field `timestamp`: bad",
        );
        assert_eq!(
            detail,
            "corrupt heartbeat: /c/a.json: field `timestamp`: bad"
        );
        let bad = Sighting::new(5.0, State::Dead, Why::HeartbeatCorrupt, &p, None);
        assert_eq!(bad.reason(Some(&detail)), Some(detail.clone()));
        let healthy = Sighting::new(5.0, State::Healthy, Why::None, &p, Some(1.0));
        assert_eq!(healthy.reason(None), None);
        assert_eq!(Sighting::default().checked_at(), None);
    }

    #[test]
    fn the_state_file_form_round_trips_and_defaults_when_absent() {
        let s = Sighting::new(
            1_800_000_000.0,
            State::Dead,
            Why::HeartbeatCorrupt,
            &probe(Some(false), None),
            Some(3.0),
        )
        .frozen();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""why":"heartbeat_corrupt""#), "{text}");
        assert!(text.contains(r#""heartbeat_age":3.0"#), "{text}");
        assert!(
            !text.contains("process_alive"),
            "not probed: not written: {text}"
        );
        assert!(text.contains(r#""frozen":true"#), "{text}");
        let back: Sighting = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let empty: Sighting = serde_json::from_str("{}").unwrap();
        assert!(!empty.checked());
        assert_eq!(empty.heartbeat_age(), None);
    }
}
