//! The observation a caller makes of a subject once per cycle ([`Check`]):
//! what the engine decides on and what an outbox entry carries, so both
//! import it from here (the outbox does not depend on the engine).

use serde::{Deserialize, Serialize};

/// One observation of a subject, made once per cycle by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name of what is monitored (`nexus`, `cron`, `agent:timmy`).
    pub subject: String,
    /// Whether the subject is healthy now.
    pub healthy: bool,
    /// One line; goes into the issue title after the prefix.
    pub summary: String,
    /// Markdown diagnostics for the issue body and comments.
    pub diagnostics: String,
    /// What is failing, each with its severity (`heartbeat:critical`), in
    /// any order; empty when the caller does not say (the summary alone
    /// then tells one failure from another). With the summary, this is what
    /// the failure *is*: a change of it may be commented before
    /// `comment_min_interval` (see [`EngineConfig::comment_change_floor`](crate::EngineConfig::comment_change_floor));
    /// a change of the diagnostics alone may not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// How the summary names the subject, at its start (`timmy:` in
    /// `timmy: agent dead`), when the engine watches several subjects. The
    /// titles of this subject's issues start with `<title_prefix>
    /// <title_subject>` (`[pool] timmy:`; `None`: the title prefix alone,
    /// for an engine with one subject like the watchdog's): an open issue
    /// with the engine label and that title but no fingerprint, filed by
    /// the original tools, is adopted (docs/SPEC.md §1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_subject: Option<String>,
}

impl Check {
    /// Failing `subject`, without `problems` or a title subject (set them after).
    pub fn failing(subject: &str, summary: &str, diagnostics: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: false,
            summary: summary.to_owned(),
            diagnostics: diagnostics.to_owned(),
            problems: Vec::new(),
            title_subject: None,
        }
    }

    /// A healthy observation (`summary` says what is fine now).
    pub fn healthy(subject: &str, summary: &str) -> Check {
        Check {
            subject: subject.to_owned(),
            healthy: true,
            summary: summary.to_owned(),
            diagnostics: String::new(),
            problems: Vec::new(),
            title_subject: None,
        }
    }

    /// The same observation naming what fails (`heartbeat:critical`, ...):
    /// see [`Check::problems`].
    pub fn with_problems<S: Into<String>>(
        mut self,
        problems: impl IntoIterator<Item = S>,
    ) -> Check {
        self.problems = problems.into_iter().map(Into::into).collect();
        self
    }

    /// The same observation naming how its summary names the subject
    /// (`timmy:`): see [`Check::title_subject`].
    pub fn with_title_subject(mut self, title_subject: &str) -> Check {
        self.title_subject = Some(title_subject.to_owned());
        self
    }
}
