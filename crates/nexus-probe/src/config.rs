//! Probe configuration from TOML: one `[[probe]]` table per probe, with a
//! `name`, an optional `timeout` and exactly one kind table.
//!
//! ```toml
//! [runner]
//! concurrency = 64
//! default_timeout = "5s"
//!
//! [[probe]]
//! name = "ws_gateway"
//! timeout = "5s"
//! tcp = { host = "localhost", port = 8765 }
//!
//! [[probe]]
//! name = "health"
//! [probe.http]
//! url = "http://127.0.0.1:8000/health"
//! json = [{ pointer = "/status", equals = "ok" }]
//! ```
//!
//! Every struct denies unknown fields, so a typo is an error naming the key.

use std::path::{Path, PathBuf};

use nexus_secret::Redactor;
use std::time::Duration;

use serde::Deserialize;

use crate::budget::BudgetSpec;
use crate::command::CommandSpec;
use crate::disk::DiskSpec;
use crate::error::SpecError;
use crate::gpu::GpuSpec;
use crate::heartbeat::HeartbeatSpec;
use crate::http::HttpSpec;
use crate::ollama::OllamaSpec;
use crate::postgres::PostgresSpec;
use crate::process::ProcessSpec;
use crate::python::PythonSyntaxSpec;
use crate::redis::RedisSpec;
use crate::secrets::{ConnString, url_secrets};
use crate::tcp::TcpSpec;
use crate::ws::WsSpec;

/// An error loading probe configuration. Names the file (or origin) and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be opened or read.
    #[error("cannot read probe config {}: {source}", path.display())]
    Read {
        /// Config path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, a wrong type or an invalid probe.
    #[error("invalid probe config {origin}: {message}")]
    Parse {
        /// The file name (or `<string>`).
        origin: String,
        /// The parser's message, with line, column and key.
        message: String,
    },
}

/// One configured probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawSpec")]
pub struct ProbeSpec {
    /// The probe's name (check name in reports, e.g. `ws_gateway`).
    pub name: String,
    /// Its own timeout; the runner's default when `None`.
    pub timeout: Option<Duration>,
    /// What to check.
    pub kind: ProbeKind,
}

impl ProbeSpec {
    /// A probe with the runner's default timeout.
    pub fn new(name: impl Into<String>, kind: ProbeKind) -> ProbeSpec {
        ProbeSpec {
            name: name.into(),
            timeout: None,
            kind,
        }
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> ProbeSpec {
        self.timeout = Some(timeout);
        self
    }
}

/// The kinds of probe, one per TOML kind table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProbeKind {
    /// `tcp`: connect to every resolved address.
    Tcp(TcpSpec),
    /// `ws`: WebSocket handshake, optional round trip.
    Ws(WsSpec),
    /// `http`: status ranges, JSON assertions, body cap.
    Http(HttpSpec),
    /// `process`: `/proc` scan by argv word, substring, PID file or PID.
    Process(ProcessSpec),
    /// `heartbeat`: heartbeat file freshness with start-up grace.
    Heartbeat(HeartbeatSpec),
    /// `python_syntax`: `ast.parse` with the configured interpreter.
    PythonSyntax(PythonSyntaxSpec),
    /// `redis`: PING and INFO memory.
    Redis(RedisSpec),
    /// `postgres`: connect, `SELECT 1`, optional threshold query.
    Postgres(PostgresSpec),
    /// `disk`: statvfs space and inodes.
    Disk(DiskSpec),
    /// `ollama`: `/api/tags` and required models.
    Ollama(OllamaSpec),
    /// `gpu`: `nvidia-smi` query.
    Gpu(GpuSpec),
    /// `budget`: daily token budget.
    Budget(BudgetSpec),
    /// `command`: a Nagios-style plugin.
    Command(CommandSpec),
}

impl ProbeKind {
    /// The secrets this probe hands to its target (header values, URL
    /// passwords and tokens, connection-string passwords): what a target
    /// that echoes the request must not get into a verdict.
    pub(crate) fn redactor(&self) -> Redactor {
        let mut r = Redactor::new();
        match self {
            ProbeKind::Http(s) => {
                for v in s.headers.values() {
                    r.add(v.expose());
                    // `Bearer <token>`, `token <token>`: the credential alone too.
                    if let Some((_, credential)) = v.expose().trim().split_once(' ') {
                        r.add(credential.trim());
                    }
                }
                url_secrets(&s.url, &mut r);
            }
            ProbeKind::Ws(s) => url_secrets(&s.url, &mut r),
            ProbeKind::Ollama(s) => url_secrets(&s.url, &mut r),
            ProbeKind::Redis(s) => r.add(s.url.password().unwrap_or_default()),
            ProbeKind::Postgres(s) => r.add(s.url.password().unwrap_or_default()),
            ProbeKind::Budget(s) => {
                if let Some(url) = &s.http {
                    url_secrets(url, &mut r);
                }
                if let Some(q) = &s.postgres {
                    r.add(q.url.password().unwrap_or_default());
                }
            }
            ProbeKind::Tcp(_)
            | ProbeKind::Process(_)
            | ProbeKind::Heartbeat(_)
            | ProbeKind::PythonSyntax(_)
            | ProbeKind::Disk(_)
            | ProbeKind::Gpu(_)
            | ProbeKind::Command(_) => {}
        }
        r
    }

    /// The kind's TOML key (`tcp`, `http`, `python_syntax`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ProbeKind::Tcp(_) => "tcp",
            ProbeKind::Ws(_) => "ws",
            ProbeKind::Http(_) => "http",
            ProbeKind::Process(_) => "process",
            ProbeKind::Heartbeat(_) => "heartbeat",
            ProbeKind::PythonSyntax(_) => "python_syntax",
            ProbeKind::Redis(_) => "redis",
            ProbeKind::Postgres(_) => "postgres",
            ProbeKind::Disk(_) => "disk",
            ProbeKind::Ollama(_) => "ollama",
            ProbeKind::Gpu(_) => "gpu",
            ProbeKind::Budget(_) => "budget",
            ProbeKind::Command(_) => "command",
        }
    }

    /// The probe opens a network connection, so the runner paces it.
    pub fn connects(&self) -> bool {
        matches!(
            self,
            ProbeKind::Tcp(_)
                | ProbeKind::Ws(_)
                | ProbeKind::Http(_)
                | ProbeKind::Redis(_)
                | ProbeKind::Postgres(_)
                | ProbeKind::Ollama(_)
        )
    }

    /// Checks what serde cannot (exactly one target, ranges, positive limits).
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            ProbeKind::Http(s) => s.validate(),
            ProbeKind::Process(s) => s.validate(),
            ProbeKind::Budget(s) => s.validate(),
            ProbeKind::Command(s) => s.validate(),
            ProbeKind::Heartbeat(s) => s.validate(),
            ProbeKind::Disk(s) => s.validate(),
            ProbeKind::Ws(s) => url_field(&s.url, &["ws", "wss"]),
            ProbeKind::Ollama(s) => url_field(&s.url, &["http", "https"]),
            _ => Ok(()),
        }
    }

    /// What may work only later, a path the probe needs that does not
    /// exist yet (a disk path, the source a syntax check reads, the
    /// directory a heartbeat is written to): warnings, not errors, each
    /// naming its key.
    pub fn warnings(&self) -> Vec<String> {
        let missing = |key: &str, path: &std::path::Path, then: &str| {
            let path = nexus_stdx::expand_home(path);
            (!path.exists())
                .then(|| format!("`{key}` {} does not exist (yet): {then}", path.display()))
        };
        let warning = match self {
            ProbeKind::Disk(s) => missing("path", &s.path, "the check is Critical until it does"),
            ProbeKind::PythonSyntax(s) => {
                missing("path", &s.path, "the check is Critical until it does")
            }
            ProbeKind::Heartbeat(s) => s
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .and_then(|dir| {
                    missing(
                        "path",
                        dir,
                        "no heartbeat can be written there until it does (its directory)",
                    )
                }),
            _ => None,
        };
        warning.into_iter().collect()
    }
}

/// `url` is an absolute URL with one of `schemes` and a host.
fn url_field(url: &str, schemes: &[&str]) -> Result<(), SpecError> {
    match nexus_stdx::url_problem(url, schemes) {
        Some(why) => Err(SpecError::field("url", why)),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default, deserialize_with = "nexus_stdx::deserialize_opt_duration")]
    timeout: Option<Duration>,
    tcp: Option<TcpSpec>,
    ws: Option<WsSpec>,
    http: Option<HttpSpec>,
    process: Option<ProcessSpec>,
    heartbeat: Option<HeartbeatSpec>,
    python_syntax: Option<PythonSyntaxSpec>,
    redis: Option<RedisSpec>,
    postgres: Option<PostgresSpec>,
    disk: Option<DiskSpec>,
    ollama: Option<OllamaSpec>,
    gpu: Option<GpuSpec>,
    budget: Option<BudgetSpec>,
    command: Option<CommandSpec>,
}

/// A `[[probe]]` table serde read but that cannot work, naming the probe.
#[derive(Debug, thiserror::Error)]
enum RawSpecError {
    #[error("probe `name` is empty")]
    EmptyName,
    #[error(
        "probe {0:?} has no kind table (one of tcp, ws, http, process, heartbeat, \
         python_syntax, redis, postgres, disk, ollama, gpu, budget, command)"
    )]
    NoKind(String),
    #[error(
        "probe {name:?} has more than one kind table ({first}, {second}, ...): use one per probe"
    )]
    TwoKinds {
        name: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("probe {0:?}: `timeout` must be positive")]
    ZeroTimeout(String),
    #[error("probe {name:?} ({kind}): {source}")]
    Invalid {
        name: String,
        kind: &'static str,
        source: SpecError,
    },
}

impl TryFrom<RawSpec> for ProbeSpec {
    type Error = RawSpecError;

    fn try_from(r: RawSpec) -> Result<ProbeSpec, RawSpecError> {
        let name = r.name;
        if name.trim().is_empty() {
            return Err(RawSpecError::EmptyName);
        }
        let kinds: Vec<ProbeKind> = [
            r.tcp.map(ProbeKind::Tcp),
            r.ws.map(ProbeKind::Ws),
            r.http.map(ProbeKind::Http),
            r.process.map(ProbeKind::Process),
            r.heartbeat.map(ProbeKind::Heartbeat),
            r.python_syntax.map(ProbeKind::PythonSyntax),
            r.redis.map(ProbeKind::Redis),
            r.postgres.map(ProbeKind::Postgres),
            r.disk.map(ProbeKind::Disk),
            r.ollama.map(ProbeKind::Ollama),
            r.gpu.map(ProbeKind::Gpu),
            r.budget.map(ProbeKind::Budget),
            r.command.map(ProbeKind::Command),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut kinds = kinds.into_iter();
        let kind = match (kinds.next(), kinds.next()) {
            (Some(k), None) => k,
            (None, _) => return Err(RawSpecError::NoKind(name)),
            (Some(a), Some(b)) => {
                return Err(RawSpecError::TwoKinds {
                    name,
                    first: a.as_str(),
                    second: b.as_str(),
                });
            }
        };
        if r.timeout == Some(Duration::ZERO) {
            return Err(RawSpecError::ZeroTimeout(name));
        }
        if let Err(source) = kind.validate() {
            let kind = kind.as_str();
            return Err(RawSpecError::Invalid { name, kind, source });
        }
        Ok(ProbeSpec {
            name,
            timeout: r.timeout,
            kind,
        })
    }
}

/// The runner's settings (`[runner]` in a probe file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// How many probes may run at once (default 256). One sweep takes about
    /// one timeout as long as fewer than this many targets hang.
    pub concurrency: usize,
    /// Timeout for probes that set none (default 5 s, the seeds' value).
    #[serde(deserialize_with = "nexus_stdx::deserialize_duration")]
    pub default_timeout: Duration,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            concurrency: 256,
            default_timeout: Duration::from_secs(5),
        }
    }
}

/// A probe config file: an optional `[runner]` table and `[[probe]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeFile {
    /// Concurrency bound and default timeout.
    #[serde(default)]
    pub runner: RunnerConfig,
    /// The probes, in report order.
    #[serde(default, rename = "probe")]
    pub probes: Vec<ProbeSpec>,
}

impl ProbeFile {
    /// Parses TOML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ProbeFile, ConfigError> {
        let file: ProbeFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut seen = std::collections::HashSet::new();
        for p in &file.probes {
            if !seen.insert(p.name.as_str()) {
                return Err(ConfigError::Parse {
                    origin: origin.to_string(),
                    message: format!("two probes are named {:?}", p.name),
                });
            }
        }
        Ok(file)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<ProbeFile, ConfigError> {
        let text = nexus_stdx::read_config(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ProbeFile::parse(&text, &path.display().to_string())
    }
}

/// Where the PostgreSQL probes and budget sources connect, with the seed's
/// precedence (docs/SPEC.md §4.6): the flag (`--postgres-url`), else the
/// URL the config gives, else `DATABASE_URL` (`env`, read by the caller).
/// A blank value counts as absent at every level, so a probe left with a
/// blank URL is "not configured" (Unknown), never a connection attempt.
pub fn fill_database_url(probes: &mut [ProbeSpec], flag: Option<&str>, env: Option<&str>) {
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (flag, env) = (given(flag), given(env));
    for p in probes {
        let url = match &mut p.kind {
            ProbeKind::Postgres(s) => &mut s.url,
            ProbeKind::Budget(s) => match &mut s.postgres {
                Some(q) => &mut q.url,
                None => continue,
            },
            _ => continue,
        };
        if let Some(f) = &flag {
            *url = ConnString::new(f.clone());
        } else if url.is_blank()
            && let Some(e) = &env
        {
            *url = ConnString::new(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{Secret, redact_url};

    fn parse(text: &str) -> Result<ProbeFile, String> {
        ProbeFile::parse(text, "test.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_kind_with_durations() {
        let f = parse(
            r#"
            [runner]
            concurrency = 8
            default_timeout = "2s"

            [[probe]]
            name = "gw"
            timeout = "250ms"
            tcp = { host = "localhost", port = 8765 }

            [[probe]]
            name = "ws"
            ws = { url = "ws://127.0.0.1:8765/", send = "ping" }

            [[probe]]
            name = "health"
            [probe.http]
            url = "http://127.0.0.1:8000/health"
            expect_status = ["2xx", "301-302"]
            json = [{ pointer = "/status", equals = "ok" }]

            [[probe]]
            name = "loop"
            process = { pattern = "nexus_think" }

            [[probe]]
            name = "hb"
            heartbeat = { path = "~/.nexus/heartbeat.json", max_age = "5m", grace = { pattern = "nexus_think" } }

            [[probe]]
            name = "syntax"
            python_syntax = { path = "nexus/nexus_think.py", python = "python3" }

            [[probe]]
            name = "redis"
            redis = { url = "redis://127.0.0.1:6379/0" }

            [[probe]]
            name = "agents"
            [probe.postgres]
            url = "host=127.0.0.1 user=postgres"
            query = "SELECT COUNT(*) FROM work_orders WHERE status = 'in_progress' AND updated_at < NOW() - make_interval(secs => $1)"
            params = [300]
            warn_at = 1

            [[probe]]
            name = "disk"
            disk = { path = "/" }

            [[probe]]
            name = "ollama"
            ollama = { url = "http://127.0.0.1:11434", models = ["llama3"] }

            [[probe]]
            name = "gpu"
            gpu = {}

            [[probe]]
            name = "budget"
            budget = { limit = 1000000, file = "/tmp/usage.json" }

            [[probe]]
            name = "plugin"
            command = { argv = ["/usr/lib/nagios/plugins/check_load", "-w", "5"] }
            "#,
        )
        .unwrap();
        assert_eq!(f.runner.concurrency, 8);
        assert_eq!(f.runner.default_timeout, Duration::from_secs(2));
        assert_eq!(f.probes.len(), 13);
        assert_eq!(f.probes[0].timeout, Some(Duration::from_millis(250)));
        let kinds: Vec<_> = f.probes.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "tcp",
                "ws",
                "http",
                "process",
                "heartbeat",
                "python_syntax",
                "redis",
                "postgres",
                "disk",
                "ollama",
                "gpu",
                "budget",
                "command"
            ]
        );
    }

    #[test]
    fn rejects_unknown_keys_missing_and_double_kinds() {
        let e = parse("[[probe]]\nname = \"a\"\ntcp = { host = \"h\", port = 1, bogus = 2 }")
            .unwrap_err();
        assert!(e.contains("test.toml") && e.contains("bogus"), "{e}");
        let e = parse("[[probe]]\nname = \"a\"\ntimout = \"5s\"\ntcp = { host = \"h\", port = 1 }")
            .unwrap_err();
        assert!(e.contains("timout"), "{e}");
        let e = parse("[[probe]]\nname = \"a\"").unwrap_err();
        assert!(e.contains("no kind table"), "{e}");
        let e = parse(
            "[[probe]]\nname = \"a\"\ntcp = { host = \"h\", port = 1 }\ndisk = { path = \"/\" }",
        )
        .unwrap_err();
        assert!(e.contains("more than one kind"), "{e}");
        let e = parse("[[probe]]\nname = \"a\"\ntimeout = \"5 parsecs\"\ndisk = {}").unwrap_err();
        assert!(e.contains("invalid duration"), "{e}");
        let e = parse("[[probe]]\nname = \"a\"\ndisk = {}\n[[probe]]\nname = \"a\"\ndisk = {}")
            .unwrap_err();
        assert!(e.contains("two probes are named"), "{e}");
        let e = parse("[[probe]]\nname = \"a\"\nprocess = {}").unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
    }

    #[test]
    fn the_shipped_example_parses() {
        let f = parse(include_str!("../probes.example.toml")).unwrap();
        assert_eq!(f.probes.len(), 12);
        assert_eq!(f.runner.concurrency, 32);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_messages() {
        let c = ConnString::new("postgres://app:hunter2@db:5432/x");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.scrub("failed for hunter2"), "failed for ***");
        let c = ConnString::new("host=db user=app password=hunter2");
        assert!(!c.redacted().contains("hunter2"));
        let c = ConnString::new("redis://:s3cret@127.0.0.1:6379/0");
        assert_eq!(c.redacted(), "redis://:***@127.0.0.1:6379/0");
        assert!(!format!("{:?}", Secret::new("Bearer abc")).contains("abc"));
        assert_eq!(
            redact_url("http://u:p@h:1/health?token=x"),
            "http://h:1/health"
        );
    }

    #[test]
    fn a_probe_redacts_what_it_sends() {
        let f = parse(
            r#"
            [[probe]]
            name = "h"
            http = { url = "https://ghp_t0ken@h/x?verbose=1&key=abcdefgh12", headers = { Authorization = "Bearer b3arer-value" } }
            [[probe]]
            name = "r"
            redis = { url = "redis://:s3cret@127.0.0.1:6379/0" }
            "#,
        )
        .unwrap();
        let r = f.probes[0].kind.redactor();
        assert_eq!(
            r.redact("ghp_t0ken abcdefgh12 verbose=1 Bearer b3arer-value b3arer-value"),
            "*** *** verbose=1 *** ***"
        );
        let r = f.probes[1].kind.redactor();
        assert_eq!(r.redact("auth s3cret failed"), "auth *** failed");
    }

    /// Issue 18 item 5: an empty, blank or missing PostgreSQL URL is "not
    /// configured"; `DATABASE_URL` fills it; the flag beats both.
    #[tokio::test]
    async fn a_blank_database_url_is_not_configured_and_database_url_fills_it() {
        let text = r#"
[[probe]]
name = "postgres"
postgres = { url = "" }
[[probe]]
name = "agents"
postgres = { url = "  ", query = "SELECT 1" }
[[probe]]
name = "budget"
budget = { limit = 10, postgres = {} }
[[probe]]
name = "named"
postgres = { url = "host=db.example user=n" }
"#;
        let file = parse(text).unwrap();
        let runner = crate::Runner::default();
        let verdicts = runner.run(&file.probes).await;
        use crate::Status;
        let got: Vec<(&str, Status, &str)> = verdicts
            .iter()
            .map(|v| (v.name.as_str(), v.status, v.summary.as_str()))
            .collect();
        assert_eq!(
            got[..3],
            [
                ("postgres", Status::Unknown, "PostgreSQL URL not configured"),
                (
                    "agents",
                    Status::Unknown,
                    "Cannot check agents without database"
                ),
                (
                    "budget",
                    Status::Unknown,
                    "Cannot check budget without database"
                ),
            ]
        );
        let url = |p: &ProbeSpec| match &p.kind {
            ProbeKind::Postgres(s) => s.url.expose().to_string(),
            ProbeKind::Budget(s) => s.postgres.as_ref().unwrap().url.expose().to_string(),
            _ => unreachable!(),
        };
        // Config > env: only the blank ones take DATABASE_URL.
        let mut probes = file.probes.clone();
        fill_database_url(&mut probes, Some(" "), Some("host=env"));
        let urls: Vec<String> = probes.iter().map(url).collect();
        assert_eq!(
            urls,
            ["host=env", "host=env", "host=env", "host=db.example user=n"]
        );
        // A blank DATABASE_URL fills nothing.
        let mut probes = file.probes.clone();
        fill_database_url(&mut probes, None, Some("\t"));
        assert!(probes[..3].iter().all(|p| url(p).trim().is_empty()));
        // Flag > config > env.
        let mut probes = file.probes.clone();
        fill_database_url(&mut probes, Some("host=flag"), Some("host=env"));
        assert!(probes.iter().all(|p| url(p) == "host=flag"));
    }
}
