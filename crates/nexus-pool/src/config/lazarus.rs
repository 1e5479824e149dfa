//! The lazarus-pit daemon's own `config/lazarus-pit.toml` (seed 003,
//! docs/SPEC.md "System L"), accepted as is and mapped onto [`PoolConfig`].
//!
//! The file has the tables `[daemon]`, `[cells]`, `[gateway]`, `[gitea]`
//! and `[notifications]`; it is told from the pool's own TOML by its shape
//! ([`shape`]). As in the seed, an unknown key is a warning, not an error;
//! a wrong type or a value that is not positive is an error naming
//! `section.key`. Every key that has no equivalent in the pool is named in
//! one warning ([`PoolConfig::warnings`]). The token (`gitea.token`) never
//! appears in a warning, an error or a `Debug` output.

use std::path::PathBuf;
use std::time::Duration;

use nexus_alert::IncidentSettings;
use nexus_secret::Secret;
use serde::Deserialize;

use super::{CellsSection, ConfigFormat, PoolConfig};
use crate::Error;

/// Every key of the seed's file, by table.
const KNOWN: &[(&str, &[&str])] = &[
    ("daemon", &["pid_file", "log_file", "log_level"]),
    (
        "cells",
        &[
            "root",
            "heartbeat_stale_threshold",
            "resurrect_after",
            "max_revive_attempts",
            "poll_interval",
            // Not in the seed's file: docs/SPEC.md L6 names it.
            "revive_policy",
        ],
    ),
    ("gateway", &["host", "port", "health_host", "health_port"]),
    ("gitea", &["url", "repo", "token"]),
    (
        "notifications",
        &["open_issue_on_death", "close_issue_on_revive"],
    ),
];

/// Tables only lazarus-pit's format has (its `[gateway]` is a table).
const LAZARUS_ONLY: &[&str] = &["daemon", "gitea", "notifications"];

/// Tables only the pool's own format has (`[[gateway]]` is an array there).
const POOL_ONLY: &[&str] = &["pool", "missions", "revive", "incident", "telegram", "ping"];

/// Which format a TOML document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The pool's own TOML (docs/DEPLOYMENT.md), not lazarus-pit's.
    Pool,
    /// lazarus-pit's `config/lazarus-pit.toml`.
    Lazarus,
    /// Tables of both: (a lazarus-pit one, a pool one).
    Mixed(String, String),
}

/// Tells lazarus-pit's file from the pool's TOML: a `[daemon]`, `[gitea]`
/// or `[notifications]` table, a `[gateway]` table (the pool's gateways are
/// an array, `[[gateway]]`), or a `[cells]` key only lazarus-pit has
/// (`resurrect_after`, `max_revive_attempts`, `poll_interval`).
pub(crate) fn shape(table: &toml::Table) -> Shape {
    // The first of `names` that is a table of `table` (named as written),
    // else `gateway` if `is_gateway` says it has that format's form.
    let first = |names: &[&str], is_gateway: fn(&toml::Value) -> bool, gateway: &str| {
        names
            .iter()
            .find(|k| table.contains_key(**k))
            .map(|k| format!("[{k}]"))
            .or_else(|| {
                table
                    .get("gateway")
                    .filter(|g| is_gateway(g))
                    .map(|_| gateway.to_string())
            })
    };
    let lazarus = first(LAZARUS_ONLY, toml::Value::is_table, "[gateway]").or_else(|| {
        let cells = table.get("cells").and_then(toml::Value::as_table)?;
        ["resurrect_after", "max_revive_attempts", "poll_interval"]
            .into_iter()
            .find(|k| cells.contains_key(*k))
            .map(|k| format!("[cells] {k}"))
    });
    let pool = first(POOL_ONLY, toml::Value::is_array, "[[gateway]]");
    match (lazarus, pool) {
        (None, _) => Shape::Pool,
        (Some(_), None) => Shape::Lazarus,
        (Some(l), Some(p)) => Shape::Mixed(l, p),
    }
}

/// A number of seconds: an integer or a float, positive and finite.
#[derive(Debug, Clone, Copy)]
struct Seconds(f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
        }
        let s = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a number of seconds (an integer or a float)")
        })? {
            Raw::Int(i) => i as f64,
            Raw::Float(f) => f,
        };
        if s.is_finite() && s > 0.0 && s < 1e9 {
            Ok(Seconds(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{s} is not a positive number of seconds"
            )))
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Count(u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        let n = i64::deserialize(d)?;
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .map(Count)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a positive count")))
    }
}

/// `daemon.log_level`: the seed's words, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LogLevel, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" | "CRITICAL" => Ok(LogLevel::Error),
            _ => Err(serde::de::Error::custom(format!(
                "{:?} is not one of DEBUG, INFO, WARNING, ERROR",
                nexus_secret::clean(&s, 32)
            ))),
        }
    }
}

impl LogLevel {
    /// The `NEXUS_LOG` filter of this level.
    fn filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LazarusFile {
    daemon: Daemon,
    cells: Cells,
    gateway: Gateway,
    gitea: Gitea,
    notifications: Notifications,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Daemon {
    pid_file: Option<PathBuf>,
    log_file: Option<PathBuf>,
    log_level: Option<LogLevel>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Cells {
    root: Option<PathBuf>,
    heartbeat_stale_threshold: Option<Seconds>,
    resurrect_after: Option<Seconds>,
    max_revive_attempts: Option<Count>,
    poll_interval: Option<Seconds>,
    revive_policy: Option<PolicyWord>,
}

/// `cells.revive_policy`: `auto`, `ask` or `never` (docs/SPEC.md L6).
struct PolicyWord(String);

impl<'de> Deserialize<'de> for PolicyWord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PolicyWord, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse::<nexus_revive::Policy>() {
            Ok(p) => Ok(PolicyWord(p.to_string())),
            Err(_) => Err(serde::de::Error::custom(format!(
                "{:?} is not one of auto, ask, never",
                nexus_secret::clean(&s, 32)
            ))),
        }
    }
}

/// Never read by the seed; typed so a wrong type is still named.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Gateway {
    host: Option<String>,
    port: Option<u16>,
    health_host: Option<String>,
    health_port: Option<u16>,
}

/// No `Debug`: it holds the token.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Gitea {
    url: Option<String>,
    repo: Option<String>,
    token: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Notifications {
    open_issue_on_death: Option<bool>,
    close_issue_on_revive: Option<bool>,
}

/// The seed's defaults (lazarus_pit.py `DaemonConfig`).
const STALE_DEFAULT: f64 = 60.0;
const RESURRECT_DEFAULT: f64 = 120.0;
const ATTEMPTS_DEFAULT: u32 = 3;
const POLL_DEFAULT: f64 = 15.0;
const CELLS_ROOT_DEFAULT: &str = "/var/missions";

/// The keys of `table` the seed does not know, as `section.key` (control
/// characters taken out and lengths capped: they go into a log line).
fn unknown_keys(table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (section, value) in table {
        let Some((_, keys)) = KNOWN.iter().find(|(s, _)| s == section) else {
            out.push(nexus_secret::clean(section, 64).into_owned());
            continue;
        };
        if let Some(t) = value.as_table() {
            out.extend(
                t.keys()
                    .filter(|k| !keys.contains(&k.as_str()))
                    .map(|k| format!("{section}.{}", nexus_secret::clean(k, 64))),
            );
        }
    }
    out
}

/// Maps a lazarus-pit file (already parsed, [`shape`] `Lazarus`) onto the
/// pool's configuration. `env` looks up an environment variable (the
/// process's in the binary; injected in tests): `GITEA_TOKEN` wins over
/// `gitea.token`, as in the seed.
pub(crate) fn to_pool(table: toml::Table, origin: &str) -> Result<PoolConfig, Error> {
    let err = |message: String| Error::Config {
        origin: origin.to_string(),
        message,
    };
    let unknown = unknown_keys(&table);
    let file: LazarusFile =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            err(format!(
                "lazarus-pit `{}`: {}",
                e.path(),
                e.inner().message().trim_end()
            ))
        })?;
    let mut cfg = PoolConfig {
        format: ConfigFormat::LazarusPit,
        ..PoolConfig::default()
    };
    let c = &file.cells;
    let stale = c.heartbeat_stale_threshold.map_or(STALE_DEFAULT, |s| s.0);
    let resurrect = c.resurrect_after.map_or(RESURRECT_DEFAULT, |s| s.0);
    let poll = c.poll_interval.map_or(POLL_DEFAULT, |s| s.0);
    if poll < 1.0 {
        return Err(err(format!(
            "lazarus-pit `cells.poll_interval`: {poll} is less than the pool's smallest, 1 second"
        )));
    }
    cfg.pool.poll_interval = Duration::from_secs_f64(poll);
    cfg.cells = Some(CellsSection {
        root: c
            .root
            .clone()
            .unwrap_or_else(|| PathBuf::from(CELLS_ROOT_DEFAULT)),
        heartbeat_stale_threshold: Duration::from_secs_f64(stale),
        revive_policy: c
            .revive_policy
            .as_ref()
            .map_or_else(|| "auto".to_string(), |p| p.0.clone()),
    });
    // The seed revives an agent silent for more than `resurrect_after`
    // (counted from its last beat); the pool counts its wait from the
    // moment the heartbeat went stale, `heartbeat_stale_threshold` after
    // that beat. The seed has no start-up grace: `resurrect_after` is its
    // only hold-back.
    let wait = (resurrect - stale).max(0.0);
    cfg.pool.dead_threshold = Duration::from_secs_f64(wait);
    cfg.revive.dead_after = wait;
    cfg.revive.startup_grace = 0.0;
    cfg.revive.max_attempts = c.max_revive_attempts.map_or(ATTEMPTS_DEFAULT, |n| n.0);
    if resurrect < stale {
        cfg.warnings.push(format!(
            "lazarus-pit config {origin}: `cells.resurrect_after` ({resurrect}s) is smaller than `cells.heartbeat_stale_threshold` ({stale}s): agents are revived as soon as their heartbeat is stale"
        ));
    }
    cfg.pool.pid_file = file.daemon.pid_file.clone();
    cfg.log_level = file.daemon.log_level.map(LogLevel::filter);
    cfg.pool.open_issue_on_death = file.notifications.open_issue_on_death.unwrap_or(true);
    cfg.pool.close_issue_on_revive = file.notifications.close_issue_on_revive.unwrap_or(true);
    let d = IncidentSettings::named("resurrection-pool", "[pool]");
    cfg.incident = Some(IncidentSettings {
        url: file.gitea.url.unwrap_or_else(|| d.url.clone()),
        repo: file.gitea.repo.unwrap_or_else(|| d.repo.clone()),
        // The variable wins (`PoolConfig::with_env` replaces it).
        token: file.gitea.token.as_deref().and_then(Secret::trimmed),
        assignees: Vec::new(),
        ..d
    });

    let mut ignored: Vec<String> = Vec::new();
    if let Some(f) = file.daemon.log_file.filter(|f| f.as_os_str() != "-") {
        ignored.push(format!(
            "daemon.log_file ({}: the pool logs to stderr, e.g. the journal)",
            nexus_secret::clean(&f.to_string_lossy(), 256)
        ));
    }
    let g = &file.gateway;
    for (key, set) in [
        ("host", g.host.is_some()),
        ("port", g.port.is_some()),
        ("health_host", g.health_host.is_some()),
        ("health_port", g.health_port.is_some()),
    ] {
        if set {
            ignored.push(format!("gateway.{key}"));
        }
    }
    let mut parts = Vec::new();
    if !ignored.is_empty() {
        parts.push(format!(
            "keys with no equivalent in resurrection-pool, ignored: {}",
            ignored.join(", ")
        ));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown keys, ignored: {}", unknown.join(", ")));
    }
    if !parts.is_empty() {
        cfg.warnings.insert(
            0,
            format!("lazarus-pit config {origin}: {}", parts.join("; ")),
        );
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's own sample file, copied into the repository.
    const SAMPLE: &str = include_str!("../../../../docs/examples/lazarus-pit.toml");

    fn load(text: &str) -> Result<PoolConfig, Error> {
        PoolConfig::parse(text, "lazarus-pit.toml")
    }

    #[test]
    fn the_seed_sample_maps_onto_the_pool() {
        let c = load(SAMPLE).unwrap();
        assert_eq!(c.format, ConfigFormat::LazarusPit);
        let cells = c.cells.as_ref().unwrap();
        assert_eq!(cells.root, PathBuf::from("/var/missions"));
        assert_eq!(cells.heartbeat_stale_threshold, Duration::from_secs(60));
        assert_eq!(cells.revive_policy, "auto");
        assert_eq!(c.pool.poll_interval, Duration::from_secs(15));
        // Revived 120 s after the last beat: 60 s stale, then 60 s more.
        assert_eq!(c.settings().dead_after, 60.0);
        assert_eq!(c.settings().startup_grace, 0.0);
        assert_eq!(c.settings().max_attempts, 3);
        assert_eq!(
            c.pool.pid_file.as_deref(),
            Some(std::path::Path::new("/var/run/lazarus-pit.pid"))
        );
        assert_eq!(c.log_level, Some("info"));
        assert!(c.pool.open_issue_on_death && c.pool.close_issue_on_revive);
        let i = c.incident.as_ref().unwrap();
        assert_eq!(i.url, "https://forge.alexanderwhitestone.com");
        assert_eq!(i.repo, "Timmy_Foundation/the-nexus");
        assert_eq!(i.token_env, "GITEA_TOKEN");
        assert_eq!(i.token, None, "the sample's token is commented out");
        assert_eq!(
            (i.label.as_str(), i.title_prefix.as_str()),
            ("resurrection-pool", "[pool]")
        );
        assert!(c.gateways.is_empty(), "[gateway] is never read by the seed");
        // One warning, naming every key with no equivalent.
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        for key in [
            "daemon.log_file",
            "gateway.host",
            "gateway.port",
            "gateway.health_host",
            "gateway.health_port",
        ] {
            assert!(w.contains(key), "{key}: {w}");
        }
        assert!(!w.contains("unknown"), "{w}");
    }

    #[test]
    fn an_empty_table_set_gets_the_seed_defaults() {
        let c = load("[notifications]\n").unwrap();
        let cells = c.cells.as_ref().unwrap();
        assert_eq!(cells.root, PathBuf::from("/var/missions"));
        assert_eq!(cells.heartbeat_stale_threshold, Duration::from_secs(60));
        assert_eq!(c.pool.poll_interval, Duration::from_secs(15));
        assert_eq!(c.settings().dead_after, 60.0);
        assert_eq!(c.settings().max_attempts, 3);
        assert_eq!(c.pool.pid_file, None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn each_bad_key_is_named() {
        for (old, new, key) in [
            (
                "poll_interval = 15",
                "poll_interval = 0",
                "cells.poll_interval",
            ),
            (
                "poll_interval = 15",
                "poll_interval = 0.5",
                "cells.poll_interval",
            ),
            (
                "poll_interval = 15",
                "poll_interval = \"15s\"",
                "cells.poll_interval",
            ),
            (
                "heartbeat_stale_threshold = 60",
                "heartbeat_stale_threshold = -1",
                "cells.heartbeat_stale_threshold",
            ),
            (
                "resurrect_after = 120",
                "resurrect_after = true",
                "cells.resurrect_after",
            ),
            (
                "max_revive_attempts = 3",
                "max_revive_attempts = 0",
                "cells.max_revive_attempts",
            ),
            (
                "max_revive_attempts = 3",
                "max_revive_attempts = 2.5",
                "cells.max_revive_attempts",
            ),
            ("root = \"/var/missions\"", "root = 7", "cells.root"),
            (
                "pid_file = \"/var/run/lazarus-pit.pid\"",
                "pid_file = 1",
                "daemon.pid_file",
            ),
            (
                "log_level = \"INFO\"",
                "log_level = \"LOUD\"",
                "daemon.log_level",
            ),
            ("port = 8765", "port = 70000", "gateway.port"),
            (
                "health_host = \"localhost\"",
                "health_host = []",
                "gateway.health_host",
            ),
            (
                "poll_interval = 15",
                "poll_interval = 15\nrevive_policy = \"maybe\"",
                "cells.revive_policy",
            ),
            (
                "url = \"https://forge.alexanderwhitestone.com\"",
                "url = 1",
                "gitea.url",
            ),
            (
                "open_issue_on_death = true",
                "open_issue_on_death = \"yes\"",
                "notifications.open_issue_on_death",
            ),
            (
                "close_issue_on_revive = true",
                "close_issue_on_revive = 1",
                "notifications.close_issue_on_revive",
            ),
        ] {
            assert!(SAMPLE.contains(old), "{old}");
            let text = SAMPLE.replacen(old, new, 1);
            let e = load(&text).unwrap_err();
            assert!(matches!(e, Error::Config { .. }));
            let e = e.to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("lazarus-pit.toml"),
                "{key}: {e}"
            );
        }
        let e = load("daemon = 5\n[notifications]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`daemon`"), "{e}");
    }

    #[test]
    fn unknown_keys_are_one_warning_not_an_error() {
        let text = format!("{SAMPLE}\n[extra]\nx = 1\n");
        let text = text.replacen("[cells]\n", "[cells]\nreviev_after = 3\n", 1);
        let c = load(&text).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(
            w.contains("unknown keys, ignored: ")
                && w.contains("cells.reviev_after")
                && w.contains("extra"),
            "{w}"
        );
        assert!(w.contains("gateway.health_port"), "{w}");
    }

    #[test]
    fn an_unknown_key_cannot_forge_a_log_line() {
        let text = format!("{SAMPLE}\n[cells.\"x\\u001b[2J\\nERROR forged\"]\n");
        let c = load(&text).unwrap();
        let w = &c.warnings[0];
        assert!(!w.contains('\u{1b}') && !w.contains('\n'), "{w:?}");
        assert!(w.contains("cells.x"), "{w:?}");
    }

    #[test]
    fn resurrect_after_below_the_threshold_is_a_warning() {
        let text = SAMPLE.replacen("resurrect_after = 120", "resurrect_after = 30", 1);
        let c = load(&text).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[1].contains("`cells.resurrect_after` (30s)"),
            "{:?}",
            c.warnings
        );
        assert_eq!(c.settings().dead_after, 0.0, "revived as soon as stale");
    }

    #[test]
    fn the_environment_token_wins_over_the_file_and_neither_is_shown() {
        let text = SAMPLE.replacen("# token = \"\"", "token = \"f1le-t0ken-canary\"", 1);
        assert_ne!(text, SAMPLE);
        let c = PoolConfig::parse(&text, "l.toml").unwrap();
        let i = c.incident.as_ref().unwrap();
        assert_eq!(
            i.token.as_ref().map(Secret::expose),
            Some("f1le-t0ken-canary")
        );
        assert!(!format!("{c:?}").contains("canary"));
        assert!(!c.warnings.join("\n").contains("canary"));
        let env = |k: &str| (k == "GITEA_TOKEN").then(|| "env-t0ken".to_string());
        let c = PoolConfig::parse(&text, "l.toml").unwrap().with_env(&env);
        let i = c.incident.as_ref().unwrap();
        assert_eq!(
            i.token.as_ref().map(Secret::expose),
            Some("env-t0ken"),
            "the variable is used"
        );
        assert!(!format!("{c:?}").contains("env-t0ken"));
        assert_eq!(i.token_env, "GITEA_TOKEN");
        // A token of the wrong type is named, not shown.
        let bad = SAMPLE.replacen("# token = \"\"", "token = [\"s3cret-canary\"]", 1);
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("`gitea.token`") && !e.contains("canary"), "{e}");
    }

    #[test]
    fn the_revive_policy_of_spec_l6_is_taken() {
        let text = SAMPLE.replacen(
            "poll_interval = 15",
            "poll_interval = 15\nrevive_policy = \"never\"",
            1,
        );
        let c = load(&text).unwrap();
        assert_eq!(c.cells.as_ref().unwrap().revive_policy, "never");
        assert!(!c.warnings[0].contains("revive_policy"), "{:?}", c.warnings);
    }

    #[test]
    fn the_notifications_are_knobs() {
        let text = SAMPLE
            .replacen(
                "open_issue_on_death = true",
                "open_issue_on_death = false",
                1,
            )
            .replacen(
                "close_issue_on_revive = true",
                "close_issue_on_revive = false",
                1,
            );
        let c = load(&text).unwrap();
        assert!(!c.pool.open_issue_on_death && !c.pool.close_issue_on_revive);
    }

    #[test]
    fn the_shape_tells_the_formats_apart() {
        let t = |s: &str| s.parse::<toml::Table>().unwrap();
        assert_eq!(shape(&t(SAMPLE)), Shape::Lazarus);
        let ours = include_str!("../../../../docs/examples/resurrection-pool.toml");
        assert_eq!(shape(&t(ours)), Shape::Pool);
        assert_eq!(
            shape(&t(
                "[cells]\nroot = \"/x\"\nheartbeat_stale_threshold = 60\n"
            )),
            Shape::Pool
        );
        assert_eq!(shape(&t("[cells]\nresurrect_after = 60\n")), Shape::Lazarus);
        assert_eq!(shape(&t("[gateway]\nport = 1\n")), Shape::Lazarus);
        assert_eq!(shape(&t("[[gateway]]\nname = \"a\"\n")), Shape::Pool);
        assert_eq!(
            shape(&t("[daemon]\n[pool]\n")),
            Shape::Mixed("[daemon]".into(), "[pool]".into())
        );
        let e = load("[daemon]\n[pool]\npoll_interval = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[daemon]") && e.contains("[pool]"), "{e}");
    }
}
