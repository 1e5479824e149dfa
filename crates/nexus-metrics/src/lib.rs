//! The Prometheus text exposition format (version 0.0.4), as every daemon of
//! the suite writes it: the pool serves it on `/metrics`; the watchdog and the
//! cron checker, which may run from timers, write it to a file for
//! node_exporter's textfile collector ([`write_textfile`]).
//!
//! [`Exposition`] builds the text: a family's `# HELP`/`# TYPE` lines, then
//! its samples, with label values escaped ([`escape_label`]) and values in
//! the format's spelling (`NaN`, `+Inf`). The series names and labels each
//! daemon exports are listed in docs/DEPLOYMENT.md and used by
//! docs/prometheus/rules.yml; a test in `tests/it/prometheus.rs` checks that
//! every metric a rule uses is exported.
//!
//! # What this crate must never do
//! - Depend on an async runtime or a metrics registry: it is a text writer
//!   that a one-shot binary can afford.
//! - Leave a half-written file where node_exporter reads: the textfile is
//!   replaced atomically (temp file not ending in `.prom`, then rename).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a family's `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up (resets on restart).
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A textfile could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write metrics to {path}: {source}")]
pub struct Error {
    /// Target path as given (should end in `.prom`).
    pub path: PathBuf,
    /// The atomic write's error as text (directory, temp file or rename), wrapped as I/O.
    #[source]
    pub source: std::io::Error,
}

/// The text of one exposition, built family by family.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Empty text; add families and samples, then take the text.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Exposition {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Exposition {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// Text built so far; every line ends in a newline.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Text built so far, consuming the builder.
    pub fn into_string(self) -> String {
        self.text
    }
}

/// A label value in the text format: `\`, `"` and newlines escaped.
pub fn escape_label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// A sample value as the format spells it.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Replaces `path` (it should end in `.prom`) with `text`, atomically, so
/// node_exporter's textfile collector never reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), Error> {
    nexus_stdx::write_atomic(path, text.as_bytes(), false).map_err(|e| Error {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_in_the_text_format() {
        let mut e = Exposition::new();
        e.family("nexus_up", Kind::Gauge, "Whether it is up.")
            .sample("nexus_up", &[("job", "a\"b\\c\nd")], 1.0)
            .sample("nexus_up", &[], f64::NAN)
            .family("nexus_runs_total", Kind::Counter, "Runs.")
            .sample("nexus_runs_total", &[("a", "1"), ("b", "2")], 3.5);
        assert_eq!(
            e.as_str(),
            "# HELP nexus_up Whether it is up.\n# TYPE nexus_up gauge\n\
             nexus_up{job=\"a\\\"b\\\\c\\nd\"} 1\nnexus_up NaN\n\
             # HELP nexus_runs_total Runs.\n# TYPE nexus_runs_total counter\n\
             nexus_runs_total{a=\"1\",b=\"2\"} 3.5\n"
        );
        nexus_testkit::promtool_check_metrics(e.as_str());
    }

    #[test]
    fn values_and_labels_are_spelled_as_prometheus_reads_them() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert!(matches!(escape_label("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn a_textfile_is_replaced_whole_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nexus.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = write_textfile(&file.join("x.prom"), "a 1\n").unwrap_err();
        assert!(err.to_string().contains("x.prom"), "{err}");
    }
}
