//! What the engine writes on Gitea and how it recognises its own: the
//! subject fingerprint and its label, the hidden body and action markers,
//! the failure signature, action ids, and the issue, comment and recovery
//! bodies.

use crate::check::Check;
use crate::outbox::{ActionKind, QueuedAction};
use crate::state::SubjectState;

use super::Engine;

/// The fingerprint of a subject under a label: 16 hex digits of FNV-1a 64 over
/// `label \n subject`. Stable across versions, hosts and restarts.
pub fn fingerprint(label: &str, subject: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes().chain([b'\n']).chain(subject.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The label that carries a fingerprint on an issue.
pub fn fingerprint_label(fp: &str) -> String {
    format!("nx-{fp}")
}

/// The hidden marker that carries a fingerprint in an issue body.
pub fn marker(fp: &str) -> String {
    format!("<!-- nexus-incident:{fp} -->")
}

/// The hidden marker that carries a queued action's id in the comments it
/// posts (see [`QueuedAction::id`]).
pub fn action_marker(id: &str) -> String {
    format!("<!-- nexus-action:{id} -->")
}

pub(super) fn new_action_id(fp: &str, kind: ActionKind, now: i64) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    fingerprint(
        "action",
        &format!("{fp}/{kind:?}/{now}/{}/{nanos}/{n}", std::process::id()),
    )
}

/// Signature of what a failure *is*: its summary and its problems (sorted),
/// with every run of digits replaced by `#` (counts, ages, pids change
/// without the failure changing), hashed. The diagnostics are not part of
/// it: an event list that grows or a time stamp that moves is the same
/// failure, commented only when `comment_min_interval` has passed.
pub fn signature(check: &Check) -> String {
    let mut problems: Vec<&str> = check.problems.iter().map(|p| p.trim()).collect();
    problems.sort_unstable();
    problems.dedup();
    let mut norm = String::with_capacity(check.summary.len() + 16 * problems.len());
    let mut in_digits = false;
    let parts = std::iter::once(check.summary.trim()).chain(problems);
    for c in parts.flat_map(|p| p.chars().chain(['\n'])) {
        if c.is_ascii_digit() {
            if !in_digits {
                norm.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            norm.push(c);
        }
    }
    fingerprint("sig", &norm)
}

/// The start of every body marker ([`marker`]).
pub(super) const MARKER_START: &str = "<!-- nexus-incident:";

/// The fingerprint in a body marker, if any.
pub(super) fn parse_marker(body: &str) -> Option<String> {
    let start = body.find(MARKER_START)? + MARKER_START.len();
    let rest = &body[start..];
    let fp: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (fp.len() == 16).then_some(fp)
}

impl Engine {
    pub(super) fn open_body(
        &self,
        st: &SubjectState,
        a: &QueuedAction,
        missing: &[String],
    ) -> String {
        let mut b = String::new();
        b.push_str(&marker(&st.fingerprint));
        if !a.id.is_empty() {
            b.push_str(&action_marker(&a.id));
        }
        b.push_str(&format!(
            "\n**Subject:** `{}`\n**Failing since:** {}\n",
            a.check.subject.replace('`', "'"),
            nexus_stdx::rfc3339(a.down_since.unwrap_or(a.decided_at) as f64)
        ));
        if !missing.is_empty() {
            b.push_str(&format!(
                "\n> Note: could not assign {} (no such user, or not assignable in this repository).\n",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        b.push_str("\n## Diagnostics\n\n");
        b.push_str(a.check.diagnostics.trim());
        b.push_str(&format!(
            "\n\n---\n_Opened by the nexus incident engine on {} at {}. It comments while the problem lasts and closes this issue on recovery._\n",
            nexus_stdx::hostname(),
            nexus_stdx::rfc3339(a.decided_at as f64)
        ));
        b
    }

    pub(super) fn comment_body(&self, a: &QueuedAction) -> String {
        format!(
            "## Still failing: {}\n\n_Observed at {}._\n\n{}\n",
            a.check.summary.trim(),
            nexus_stdx::rfc3339(a.decided_at as f64),
            a.check.diagnostics.trim()
        )
    }

    pub(super) fn recovery_body(&self, a: &QueuedAction) -> String {
        let down = a
            .down_since
            .map(|s| nexus_stdx::format_duration(a.decided_at.saturating_sub(s) as f64));
        format!(
            "## ✅ Recovered: `{}`\n\n{}\n\nRecovered at {}{}. Closing.\n",
            a.check.subject.replace('`', "'"),
            a.check.summary.trim(),
            nexus_stdx::rfc3339(a.decided_at as f64),
            down.map_or(String::new(), |d| format!(" after being down for {d}"))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_namespaced() {
        assert_eq!(
            fingerprint("watchdog", "nexus"),
            fingerprint("watchdog", "nexus")
        );
        assert_ne!(
            fingerprint("watchdog", "nexus"),
            fingerprint("pool", "nexus")
        );
        assert_eq!(fingerprint("watchdog", "nexus").len(), 16);
        // Pinned: a change would orphan every open issue.
        assert_eq!(fingerprint("watchdog", "nexus"), "fdb2d058248fe19f");
    }

    #[test]
    fn the_signature_is_what_fails_not_how_it_looks() {
        let sig = |summary: &str, diag: &str, problems: &[&str]| {
            signature(&Check::failing("s", summary, diag).with_problems(problems.iter().copied()))
        };
        let a = sig("timmy: agent dead", "age 301s, pid 4242", &[]);
        assert_eq!(
            a,
            sig("timmy: agent dead", "age 999s\n- revive started", &[])
        );
        assert_eq!(a, sig(" timmy: agent dead ", "", &[]));
        assert_ne!(a, sig("timmy: agent hung", "", &[]));
        // Counts are numbers; names and severities are not.
        assert_eq!(
            sig("2 job(s) silent: a, b", "", &[]),
            sig("3 job(s) silent: a, b", "", &[])
        );
        let p = sig("down", "", &["heartbeat:critical", "syntax:warning"]);
        assert_eq!(
            p,
            sig("down", "", &["syntax:warning", "heartbeat:critical"])
        );
        assert_ne!(p, sig("down", "", &["heartbeat:warning", "syntax:warning"]));
        assert_ne!(p, sig("down", "", &["heartbeat:critical"]));
    }

    #[test]
    fn marker_round_trips() {
        let fp = fingerprint("watchdog", "nexus");
        let body = format!("{}\nrest", marker(&fp));
        assert_eq!(parse_marker(&body), Some(fp));
        assert_eq!(parse_marker("<!-- nexus-incident:xyz -->"), None);
        assert_eq!(parse_marker("no marker"), None);
    }
}
