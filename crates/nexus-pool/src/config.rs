//! The pool's configuration: TOML (`deny_unknown_fields`), the seed's
//! `resurrection_pool.json` accepted as is ([`PoolConfig::from_seed_json`]),
//! or the lazarus-pit daemon's `config/lazarus-pit.toml` accepted as is
//! (told apart by its tables: a `[daemon]`, `[gitea]` or `[notifications]`
//! table, a `[gateway]` table, or a `[cells]` key only it has).

mod lazarus;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_alert::{IncidentSettings, TelegramSettings};
use nexus_probe::seed;
use nexus_revive::{DeadRule, Policy, Settings};
use nexus_secret::Secret;
use nexus_stdx::deserialize_duration;
use serde::Deserialize;

use crate::Error;

/// A pool config file, parsed: its own TOML, the seed's JSON or lazarus-pit's TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `[pool]`: the daemon's own settings.
    #[serde(default)]
    pub pool: PoolSection,
    /// Gateways watched directly (one agent each).
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewayConfig>,
    /// Missions: which agents they hold and their revive policy.
    #[serde(default)]
    pub missions: BTreeMap<String, MissionConfig>,
    /// Mission cells whose agents are watched too.
    #[serde(default)]
    pub cells: Option<CellsSection>,
    /// The state machine's thresholds and budgets.
    #[serde(default)]
    pub revive: Settings,
    /// Gitea issues, one per death episode (label `resurrection-pool`,
    /// prefix `[pool]` unless set).
    #[serde(default)]
    pub incident: Option<IncidentSettings>,
    /// Telegram approvals and escalations.
    #[serde(default)]
    pub telegram: Option<TelegramSettings>,
    /// Remote heartbeats pushed to `POST /ping/<job>`.
    #[serde(default)]
    pub ping: Option<PingSection>,
    /// Nostr approvals: signed, encrypted DMs to the approvers' keys.
    #[serde(default)]
    pub nostr: Option<nexus_nostr::NostrSettings>,
    /// Alertmanager's webhook into the incident engine (`POST /alertmanager`).
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerSection>,
    /// `[history]`: every agent state change in a SQLite file (nexus-history).
    #[serde(default)]
    pub history: Option<nexus_history::Settings>,
    /// `[webhook]`: problem-set alerts (dead, escalated, degraded agents)
    /// as one POST each, with the same dedup, reminders and limits as the
    /// watchdog's (see [`crate::notify`]).
    #[serde(default)]
    pub webhook: Option<nexus_alert::WebhookSettings>,
    /// `[ntfy]`: the same alerts through an ntfy topic.
    #[serde(default)]
    pub ntfy: Option<nexus_alert::NtfySettings>,
    /// `[email]`: the same alerts by SMTP (STARTTLS).
    #[serde(default)]
    pub email: Option<nexus_alert::EmailSettings>,
    /// `[cron]`: heartbeat directories whose cron jobs the pool judges and
    /// records into the history for its page (the `[ping]` directory is
    /// always among them).
    #[serde(default)]
    pub cron: Option<CronSection>,
    /// Which format the file was in.
    #[serde(skip)]
    pub format: ConfigFormat,
    /// What the file holds that the pool does not use, and other start-up
    /// warnings of the file (lazarus-pit's: one line naming every key with
    /// no equivalent). Logged at start-up, printed by `check-config`.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The daemon's log filter from the file (lazarus-pit's
    /// `daemon.log_level`); `NEXUS_LOG` wins.
    #[serde(skip)]
    pub log_level: Option<&'static str>,
}

/// The format a config file was in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConfigFormat {
    /// The pool's own TOML (docs/DEPLOYMENT.md), not lazarus-pit's.
    #[default]
    Toml,
    /// The seed pool's `resurrection_pool.json`.
    SeedJson,
    /// The lazarus-pit daemon's `config/lazarus-pit.toml`.
    LazarusPit,
}

impl ConfigFormat {
    /// How `check-config` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigFormat::Toml => "resurrection-pool TOML",
            ConfigFormat::SeedJson => "seed resurrection_pool.json",
            ConfigFormat::LazarusPit => "lazarus-pit TOML",
        }
    }
}

/// `[cron]`: the cron jobs the pool shows (with `[history]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronSection {
    /// Heartbeat directories of `<job>.last` records (`nexus-heartbeat`'s).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl PoolConfig {
    /// `[webhook]`, `[ntfy]` and `[email]`, as configured (after
    /// [`PoolConfig::with_env`]).
    pub fn channels(&self) -> nexus_alert::Channels {
        nexus_alert::Channels {
            webhook: self.webhook.clone(),
            ntfy: self.ntfy.clone(),
            email: self.email.clone(),
        }
    }

    /// The directories whose cron jobs the pool records: `[cron] dirs`,
    /// and the `[ping]` directory.
    pub fn cron_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.cron.iter().flat_map(|c| c.dirs.clone()).collect();
        if let Some(p) = &self.ping
            && !dirs.contains(&p.dir)
        {
            dirs.push(p.dir.clone());
        }
        dirs
    }
}

/// `[ping]`: accept heartbeats from cron jobs on other hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingSection {
    /// Where the pushed `<job>.last` records are written (point
    /// `cron-heartbeat-check --dir` at it).
    pub dir: PathBuf,
    /// The variable holding the token senders must present.
    #[serde(default = "ping_token_env")]
    pub token_env: String,
    /// A file holding that token (mode 0600 or stricter, else refused);
    /// used when the variable is not set. One of the two is required.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The variable's value, set by [`PoolConfig::with_env`] at the
    /// binary's edge.
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Interval recorded for a ping that names none.
    #[serde(default = "one_day", deserialize_with = "deserialize_duration")]
    pub default_interval: Duration,
    /// Largest accepted request body, in bytes.
    #[serde(default = "sixteen_kib")]
    pub max_body: usize,
    /// `{ burst = 60, per_minute = 600 }`: more pings than that get 429.
    #[serde(default)]
    pub rate_limit: crate::ratelimit::RateLimit,
}

fn ping_token_env() -> String {
    "NEXUS_PING_TOKEN".to_string()
}
fn one_day() -> Duration {
    Duration::from_secs(86_400)
}
fn sixteen_kib() -> usize {
    16 * 1024
}

/// `[alertmanager]`: Alertmanager's webhook receiver (see
/// [`crate::alertmanager`]); present means on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSection {
    /// The variable holding the bearer token Alertmanager presents
    /// (`http_config.authorization.credentials`).
    #[serde(default = "alertmanager_token_env")]
    pub token_env: String,
    /// A file holding that token (mode 0600 or stricter, else refused);
    /// used when the variable is not set. One of the two is required.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The variable's value, set by [`PoolConfig::with_env`].
    #[serde(skip)]
    pub token: Option<Secret>,
    /// Largest accepted notification, in bytes.
    #[serde(default = "one_mib")]
    pub max_body: usize,
}

fn alertmanager_token_env() -> String {
    "NEXUS_ALERTMANAGER_TOKEN".to_string()
}
fn one_mib() -> usize {
    1024 * 1024
}

impl AlertmanagerSection {
    /// The receiver, or why it cannot run (a receiver without a token
    /// would let anyone open issues).
    pub fn ingest(
        &self,
    ) -> Result<
        (
            crate::alertmanager::AlertIngest,
            crate::alertmanager::AlertInbox,
        ),
        crate::Error,
    > {
        let token = nexus_secret::token(
            self.token.as_ref().map(Secret::expose),
            self.token_file.as_deref(),
        )
        .map_err(|e| crate::Error::TokenUnreadable {
            table: "alertmanager",
            source: e,
        })?
        .filter(|t| t.expose().len() >= 16)
        .ok_or_else(|| crate::Error::TokenMissing {
            table: "alertmanager",
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        })?;
        Ok(crate::alertmanager::AlertIngest::new(token, self.max_body))
    }
}

impl PingSection {
    /// The ingest, or why it cannot run (a ping endpoint without a token
    /// would let anyone write heartbeats).
    pub fn ingest(&self) -> Result<crate::ping::PingIngest, crate::Error> {
        let token = nexus_secret::token(
            self.token.as_ref().map(Secret::expose),
            self.token_file.as_deref(),
        )
        .map_err(crate::Error::PingTokenUnreadable)?
        .filter(|t| t.expose().len() >= 16)
        .ok_or_else(|| crate::Error::PingTokenMissing {
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        })?;
        Ok(crate::ping::PingIngest {
            dir: self.dir.clone(),
            token,
            default_interval: self.default_interval,
            max_body: self.max_body,
            rate_limit: self.rate_limit,
            dry_run: false,
        })
    }
}

/// What to do when a mission asks for approval but no channel exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AskWithoutChannel {
    /// Revive anyway, loudly (the seed's behaviour).
    #[default]
    Auto,
    /// Record the death; a human must act.
    Never,
}

/// `[pool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Time between sweeps.
    #[serde(deserialize_with = "deserialize_duration")]
    pub poll_interval: Duration,
    /// Dead this long before the policy acts (overrides `[revive] dead_after`).
    #[serde(deserialize_with = "deserialize_duration")]
    pub dead_threshold: Duration,
    /// Timeout of each probe.
    #[serde(deserialize_with = "deserialize_duration")]
    pub probe_timeout: Duration,
    /// Each call to Gitea, Telegram or Nostr gets this long; they run beside the
    /// sweeps, never in them (see [`crate::channels`]). A call cut by it is
    /// tried again later: Gitea after `[incident] retry_interval`, Telegram
    /// after one more deadline. `--once` waits at most this long for them.
    #[serde(deserialize_with = "deserialize_duration")]
    pub channel_deadline: Duration,
    /// Probes running at once. High by default: a hung host holds its slot
    /// for the whole probe timeout, so with 100 hung gateways a bound of 32
    /// would make one sweep four timeouts long. Capped at what the open-file
    /// limit allows (the pool raises its soft limit to the hard one).
    pub max_parallel_probes: usize,
    /// Pool state (records, pending approvals) [default: ~/.nexus/resurrection_pool.state.json].
    pub state_file: Option<PathBuf>,
    /// HTTP listen address (loopback by default).
    pub listen: String,
    /// PID file with a lock: a second daemon exits 2.
    pub pid_file: Option<PathBuf>,
    /// The job name of the pool's own cron heartbeat.
    pub heartbeat_job: String,
    /// Where that heartbeat goes (default: the cron heartbeat directories).
    pub heartbeat_dir: Option<PathBuf>,
    /// `hung` (stale heartbeat = dead) or `all` (the seed's 0-of-3 rule).
    pub dead_rule: DeadRule,
    /// Allow a fleet with no agent at all (else exit 2).
    pub allow_empty: bool,
    /// `ask` without an approval channel (Telegram or Nostr): `auto`
    /// (revive, loudly) or `never`.
    pub ask_without_channel: AskWithoutChannel,
    /// Open a Gitea issue when an agent needs a human (lazarus-pit's
    /// `notifications.open_issue_on_death`); `false`: no issue at all.
    pub open_issue_on_death: bool,
    /// Close the issue when the agent is healthy again (lazarus-pit's
    /// `notifications.close_issue_on_revive`); `false`: left for a human.
    pub close_issue_on_revive: bool,
}

impl Default for PoolSection {
    fn default() -> PoolSection {
        PoolSection {
            poll_interval: Duration::from_secs(60),
            dead_threshold: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(5),
            channel_deadline: Duration::from_secs(30),
            max_parallel_probes: 1024,
            state_file: None,
            listen: "127.0.0.1:8767".to_string(),
            pid_file: None,
            heartbeat_job: "resurrection_pool".to_string(),
            heartbeat_dir: None,
            dead_rule: DeadRule::Hung,
            allow_empty: false,
            ask_without_channel: AskWithoutChannel::Auto,
            open_issue_on_death: true,
            close_issue_on_revive: true,
        }
    }
}

/// `[[gateway]]`: one agent behind one gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Agent name; also the agent's key in the pool's state.
    pub name: String,
    /// Gateway host; the process probe only applies when it is local.
    #[serde(default = "localhost")]
    pub host: String,
    /// Gateway WebSocket port (default the seed's 8765).
    #[serde(default = "ws_port")]
    pub port: u16,
    /// The agent's heartbeat (`~` expanded).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_path: PathBuf,
    /// The agent's process, matched as an argv word.
    #[serde(default = "nexus_think")]
    pub process_pattern: String,
    /// How to revive it: argv, no shell.
    #[serde(default)]
    pub revive_cmd: Vec<String>,
    /// Where the revived agent's output goes (appended).
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// A Python source checked (`ast.parse`) before each revive.
    #[serde(default)]
    pub preflight: Option<PathBuf>,
    /// The interpreter of the pre-flight check.
    #[serde(default = "python3")]
    pub python: String,
    /// Heartbeat older than this is stale [default: `[pool] dead_threshold`, as in the seed].
    #[serde(default, deserialize_with = "opt_duration")]
    pub stale_threshold: Option<Duration>,
    /// Probe the gateway's `GET /health` too (docs/SPEC.md §7): a `degraded`
    /// answer (a wedged gateway) counts as the gateway down; nothing there
    /// leaves the TCP probe to decide. `false` turns it off.
    #[serde(default = "yes")]
    pub health: bool,
    /// The port of that endpoint, on the gateway's host (the seed's 8766).
    #[serde(default = "health_port")]
    pub health_port: u16,
}

fn yes() -> bool {
    true
}
fn health_port() -> u16 {
    seed::HEALTH_PORT
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(d).map(Some)
}

fn localhost() -> String {
    seed::WS_HOST.to_string()
}
fn ws_port() -> u16 {
    seed::WS_PORT
}
fn default_heartbeat() -> PathBuf {
    seed::heartbeat_path()
}
fn nexus_think() -> String {
    seed::PROCESS_PATTERN.to_string()
}
fn python3() -> String {
    seed::PYTHON.to_string()
}

/// `[missions.<id>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionConfig {
    /// Shown in messages.
    #[serde(default)]
    pub label: String,
    /// The gateway agents of this mission.
    #[serde(default)]
    pub agents: Vec<String>,
    /// `auto`, `ask` or `never` (`yes`/`no` are aliases); unknown words are `ask`.
    #[serde(default = "ask")]
    pub revive_policy: String,
    /// Telegram user ids allowed to approve (empty: anyone in the chat).
    #[serde(default)]
    pub approvers: Vec<i64>,
}

fn ask() -> String {
    "ask".to_string()
}

/// `[cells]`: watch the agents of every active (and frozen) mission cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellsSection {
    /// Directory holding one subdirectory per cell (default `/var/missions`).
    #[serde(default = "missions_root")]
    pub root: PathBuf,
    /// A cell agent's heartbeat is stale beyond this.
    #[serde(default = "sixty_seconds", deserialize_with = "deserialize_duration")]
    pub heartbeat_stale_threshold: Duration,
    /// Policy of agents whose cell and entry name none.
    #[serde(default = "auto_word")]
    pub revive_policy: String,
}

fn missions_root() -> PathBuf {
    PathBuf::from("/var/missions")
}
fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}
fn auto_word() -> String {
    "auto".to_string()
}

/// The seed's `resurrection_pool.json`.
#[derive(Debug, Deserialize)]
struct SeedJson {
    #[serde(default)]
    poll_interval: Option<f64>,
    #[serde(default)]
    dead_threshold: Option<f64>,
    #[serde(default)]
    approval_timeout: Option<f64>,
    #[serde(default)]
    max_revive_attempts: Option<u32>,
    #[serde(default)]
    gateways: Vec<SeedGateway>,
    #[serde(default)]
    missions: BTreeMap<String, MissionConfig>,
    #[serde(default)]
    telegram: Option<SeedTelegram>,
    #[serde(default)]
    gitea: Option<SeedGitea>,
    #[serde(default)]
    nostr: Option<SeedNostr>,
}

/// The seed's `nostr` object, with the new `secret_key` (the variable
/// `NOSTR_SECRET_KEY` wins over it).
#[derive(Debug, Deserialize)]
struct SeedNostr {
    #[serde(default)]
    relay_url: Option<String>,
    #[serde(default)]
    recipient_pubkey: Option<String>,
    #[serde(default)]
    secret_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SeedGateway {
    name: String,
    #[serde(default = "localhost")]
    host: String,
    #[serde(default = "ws_port")]
    port: u16,
    #[serde(default = "default_heartbeat")]
    heartbeat_path: PathBuf,
    #[serde(default = "nexus_think")]
    process_pattern: String,
    #[serde(default)]
    revive_cmd: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SeedTelegram {
    #[serde(default)]
    bot_token: Option<String>,
    #[serde(default)]
    chat_id: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct SeedGitea {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    repo: Option<String>,
}

impl PoolConfig {
    /// Reads a config file: `.json` is the seed format, anything else TOML
    /// (the pool's, or lazarus-pit's, told apart by its tables).
    pub fn load(path: &Path) -> Result<PoolConfig, Error> {
        let text = nexus_stdx::read_config(path).map_err(|source| Error::Io {
            op: "read config",
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        if path.extension().is_some_and(|e| e == "json") {
            PoolConfig::from_seed_json(&text, &origin)
        } else {
            PoolConfig::parse(&text, &origin)
        }
    }

    /// The environment overrides, resolved once by the binary
    /// (`|k| std::env::var(k).ok()`): `[incident]`, `[telegram]` and
    /// `[nostr]` (see their `with_env`) and the `[ping]` and
    /// `[alertmanager]` token variables.
    pub fn with_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> PoolConfig {
        self.incident = self.incident.map(|i| i.with_env(env));
        self.telegram = self.telegram.map(|t| t.with_env(env));
        self.nostr = self.nostr.map(|n| n.with_env(env));
        self.webhook = self.webhook.map(|w| w.with_env(env));
        self.ntfy = self.ntfy.map(|n| n.with_env(env));
        self.email = self.email.map(|e| e.with_env(env));
        if let Some(p) = &mut self.ping {
            p.token = env(&p.token_env).as_deref().and_then(Secret::trimmed);
        }
        if let Some(a) = &mut self.alertmanager {
            a.token = env(&a.token_env).as_deref().and_then(Secret::trimmed);
        }
        self
    }

    /// Parses TOML: the pool's own, or lazarus-pit's `config/lazarus-pit.toml`.
    /// Reads no environment: see [`PoolConfig::with_env`].
    pub fn parse(text: &str, origin: &str) -> Result<PoolConfig, Error> {
        if let Ok(table) = text.parse::<toml::Table>() {
            match lazarus::shape(&table) {
                lazarus::Shape::Pool => {}
                lazarus::Shape::Lazarus => {
                    let cfg = lazarus::to_pool(table, origin)?;
                    cfg.validate(origin)?;
                    return Ok(cfg);
                }
                lazarus::Shape::Mixed(l, p) => {
                    return Err(Error::Config {
                        origin: origin.to_string(),
                        message: format!(
                            "mixes lazarus-pit's format ({l}) with the pool's ({p}): use one (docs/DEPLOYMENT.md, \"Coming from lazarus-pit\")"
                        ),
                    });
                }
            }
        }
        let mut cfg: PoolConfig = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.incident = cfg
            .incident
            .map(|i| i.or_named("resurrection-pool", "[pool]"));
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Accepts the seed's JSON unchanged.
    pub fn from_seed_json(text: &str, origin: &str) -> Result<PoolConfig, Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let seed: SeedJson =
            serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Config {
                origin: origin.to_string(),
                message: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        let secs = |v: Option<f64>, field: &str| -> Result<Option<Duration>, Error> {
            match v {
                None => Ok(None),
                Some(s) if s.is_finite() && (0.0..1e9).contains(&s) => {
                    Ok(Some(Duration::from_secs_f64(s)))
                }
                Some(s) => Err(Error::Config {
                    origin: origin.to_string(),
                    message: format!("`{field}` {s} is not a number of seconds"),
                }),
            }
        };
        let mut cfg = PoolConfig {
            format: ConfigFormat::SeedJson,
            ..PoolConfig::default()
        };
        if let Some(d) = secs(seed.poll_interval, "poll_interval")? {
            cfg.pool.poll_interval = d;
        }
        if let Some(d) = secs(seed.dead_threshold, "dead_threshold")? {
            cfg.pool.dead_threshold = d;
        }
        if let Some(d) = secs(seed.approval_timeout, "approval_timeout")? {
            cfg.revive.approval_timeout = d.as_secs_f64();
        }
        if let Some(n) = seed.max_revive_attempts {
            cfg.revive.max_attempts = n;
        }
        cfg.gateways = seed
            .gateways
            .into_iter()
            .map(|g| GatewayConfig {
                name: g.name,
                host: g.host,
                port: g.port,
                heartbeat_path: g.heartbeat_path,
                process_pattern: g.process_pattern,
                revive_cmd: g.revive_cmd,
                log_file: None,
                preflight: None,
                python: python3(),
                stale_threshold: None,
                health: true,
                health_port: health_port(),
            })
            .collect();
        cfg.missions = seed.missions;
        if let Some(t) = seed.telegram {
            let chat_id = match &t.chat_id {
                Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
                _ => 0,
            };
            cfg.telegram = Some(TelegramSettings {
                chat_id,
                token: t.bot_token.as_deref().and_then(Secret::trimmed),
                ..TelegramSettings::default()
            });
        }
        if let Some(n) = seed.nostr {
            let s = nexus_nostr::NostrSettings {
                relay_url: n.relay_url.filter(|u| !u.trim().is_empty()),
                recipient_pubkey: n.recipient_pubkey.unwrap_or_default(),
                secret_key: n.secret_key.as_deref().and_then(Secret::trimmed),
                ..nexus_nostr::NostrSettings::default()
            };
            // The seed writes an empty object when Nostr is not used, and
            // its example has a relay but no recipient: nobody to ask.
            if !s.relay_urls().is_empty() && !s.recipient_pubkey.trim().is_empty() {
                cfg.nostr = Some(s);
            } else if s.is_configured() {
                tracing::warn!(
                    "{origin}: `nostr` needs both relay_url and recipient_pubkey; Nostr approvals are off"
                );
            }
        }
        if let Some(g) = seed.gitea {
            let d = IncidentSettings::named("resurrection-pool", "[pool]");
            cfg.incident = Some(IncidentSettings {
                url: g.url.unwrap_or(d.url.clone()),
                repo: g.repo.unwrap_or(d.repo.clone()),
                token: g.token.as_deref().and_then(Secret::trimmed),
                assignees: Vec::new(),
                ..d
            });
        }
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The values that cannot work (errors: the daemon refuses to start)
    /// or may not (warnings), after [`PoolConfig::with_env`]: a `[ping]`
    /// or `[alertmanager]` without its token, `[incident]` and
    /// `[telegram]` values, a cells root that does not exist. Each line
    /// names the table and key, never a token.
    pub fn findings(&self) -> nexus_stdx::Findings {
        let mut f = nexus_stdx::Findings::default();
        for w in &self.warnings {
            f.warn(w.clone());
        }
        if let Some(p) = &self.ping
            && let Err(e) = p.ingest()
        {
            f.error(e.to_string());
        }
        if let Some(a) = &self.alertmanager
            && let Err(e) = a.ingest()
        {
            f.error(e.to_string());
        }
        if let Some(i) = &self.incident {
            f.extend(i.findings());
        }
        if let Some(t) = &self.telegram {
            f.extend(t.findings());
        }
        f.extend(self.channels().findings());
        if let Some(c) = &self.cells {
            let root = nexus_stdx::expand_home(&c.root);
            if !root.is_dir() {
                f.warn(format!(
                    "[cells] `root` {} is not a directory (yet): the daemon refuses to start without it unless --allow-empty",
                    root.display()
                ));
            }
        }
        f
    }

    fn validate(&self, origin: &str) -> Result<(), Error> {
        let err = |message: String| Error::Config {
            origin: origin.to_string(),
            message,
        };
        if self.pool.poll_interval < Duration::from_secs(1) {
            return Err(err("[pool] `poll_interval` must be at least 1s".into()));
        }
        if self.pool.max_parallel_probes == 0 {
            return Err(err("[pool] `max_parallel_probes` must be at least 1".into()));
        }
        let mut names = std::collections::HashSet::new();
        for g in &self.gateways {
            if g.stale_threshold
                .unwrap_or(self.pool.dead_threshold)
                .is_zero()
            {
                return Err(err(format!(
                    "[[gateway]] {:?}: a heartbeat stale threshold of 0s: set `stale_threshold` (or a positive [pool] dead_threshold)",
                    g.name
                )));
            }
            nexus_heartbeat::CronDirs::validate_job_name(&g.name)
                .map_err(|e| err(format!("[[gateway]] `name`: {e}")))?;
            if !names.insert(g.name.as_str()) {
                return Err(err(format!("two gateways are named {:?}", g.name)));
            }
        }
        nexus_heartbeat::CronDirs::validate_job_name(&self.pool.heartbeat_job)
            .map_err(|e| err(format!("[pool] `heartbeat_job`: {e}")))?;
        if let Some(n) = &self.nostr {
            n.validate().map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// The revive settings with `[pool] dead_threshold` applied.
    pub fn settings(&self) -> Settings {
        Settings {
            dead_after: self.pool.dead_threshold.as_secs_f64(),
            ..self.revive.clone()
        }
    }

    /// The mission holding gateway agent `name`, its policy and label.
    /// Unknown policy words are `ask`, with a warning.
    pub fn mission_of(&self, name: &str) -> (Option<String>, Policy, Vec<String>) {
        self.mission_in(&self.mission_index(), name)
    }

    /// Agent name → the id of the first mission (in id order) listing it,
    /// as [`PoolConfig::mission_of`] finds it; built once per sweep, so 1,000
    /// gateways do not each scan every mission's agents.
    pub fn mission_index(&self) -> HashMap<&str, &str> {
        let mut index = HashMap::new();
        for (id, m) in &self.missions {
            for a in &m.agents {
                index.entry(a.as_str()).or_insert(id.as_str());
            }
        }
        index
    }

    /// [`PoolConfig::mission_of`] through a [`PoolConfig::mission_index`].
    pub fn mission_in(
        &self,
        index: &HashMap<&str, &str>,
        name: &str,
    ) -> (Option<String>, Policy, Vec<String>) {
        let mut warnings = Vec::new();
        let Some((id, m)) = index
            .get(name)
            .and_then(|id| self.missions.get_key_value(*id))
        else {
            return (None, Policy::Ask, warnings);
        };
        let policy = m.revive_policy.parse().unwrap_or_else(|_| {
            warnings.push(format!(
                "Unknown revive_policy '{}' for mission {id}; defaulting to 'ask'",
                m.revive_policy
            ));
            Policy::Ask
        });
        let label = if m.label.is_empty() {
            id.clone()
        } else {
            m.label.clone()
        };
        (Some(label), policy, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_json_is_accepted_as_is() {
        let text = r#"{
          "poll_interval": 30, "dead_threshold": 120, "approval_timeout": 60,
          "gateways": [{"name": "timmy", "port": 8765, "revive_cmd": ["python3", "-m", "nexus.nexus_think"]},
                       {"name": "allegro", "host": "10.0.0.5"}],
          "missions": {"m1": {"label": "Operation Lazarus", "agents": ["timmy"], "revive_policy": "auto"},
                       "m2": {"agents": ["allegro"], "revive_policy": "substitute"}},
          "telegram": {"bot_token": "123:abc", "chat_id": "-1001"},
          "gitea": {"url": "http://127.0.0.1:3000", "token": "t0k", "repo": "o/r"},
          "nostr": {"relay_url": "wss://relay.example"}
        }"#;
        let c = PoolConfig::from_seed_json(text, "resurrection_pool.json").unwrap();
        assert_eq!(c.pool.poll_interval, Duration::from_secs(30));
        assert_eq!(c.settings().dead_after, 120.0);
        assert_eq!(c.revive.approval_timeout, 60.0);
        assert_eq!(c.gateways.len(), 2);
        // The seed agent's file, as the watchdog resolves it
        // (`NEXUS_HEARTBEAT_PATH`, else `~/.nexus/heartbeat.json`).
        assert_eq!(
            c.gateways[1].heartbeat_path,
            nexus_heartbeat::AgentHeartbeat::default_path()
        );
        assert_eq!(c.telegram.as_ref().unwrap().chat_id, -1001);
        let i = c.incident.as_ref().unwrap();
        assert_eq!(i.token.as_ref().map(Secret::expose), Some("t0k"));
        assert!(!format!("{c:?}").contains("t0k") && !format!("{c:?}").contains("123:abc"));
        let (label, policy, warnings) = c.mission_of("timmy");
        assert_eq!(
            (label.as_deref(), policy),
            (Some("Operation Lazarus"), Policy::Auto)
        );
        assert!(warnings.is_empty());
        let (_, policy, warnings) = c.mission_of("allegro");
        assert_eq!(policy, Policy::Ask);
        assert!(warnings[0].contains("substitute"));
        assert_eq!(c.mission_of("ghost").1, Policy::Ask);
    }

    /// The seed's `nostr` object: with a relay and a recipient it is the
    /// channel (the new `secret_key` kept out of `Debug`); the seed's own
    /// example, a relay and nobody to ask, leaves Nostr off; a bad key is
    /// named.
    #[test]
    fn the_seed_nostr_object_configures_the_channel() {
        let hex = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e";
        let secret = "1".repeat(64);
        let text = format!(
            r#"{{"nostr": {{"relay_url": "wss://relay.example", "recipient_pubkey": "{hex}", "secret_key": "{secret}"}}}}"#
        );
        let c = PoolConfig::from_seed_json(&text, "p.json").unwrap();
        let n = c.nostr.as_ref().unwrap();
        assert_eq!(n.relay_urls(), ["wss://relay.example"]);
        assert_eq!(
            n.secret_key.as_ref().map(Secret::expose),
            Some(secret.as_str())
        );
        assert!(!format!("{c:?}").contains(&secret));
        let bare = r#"{"nostr": {"relay_url": "wss://relay.example"}}"#;
        assert!(
            PoolConfig::from_seed_json(bare, "p.json")
                .unwrap()
                .nostr
                .is_none()
        );
        let bad = text.replace(hex, "nope");
        let e = PoolConfig::from_seed_json(&bad, "p.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("recipient_pubkey") && !e.contains(&secret),
            "{e}"
        );
    }

    #[test]
    fn toml_errors_name_the_key() {
        for (text, needle) in [
            ("[pool]\npoll_intervall = \"5s\"", "poll_intervall"),
            ("[pool]\npoll_interval = \"0s\"", "poll_interval"),
            ("[[gateway]]\nname = \"../x\"", "name"),
            (
                "[[gateway]]\nname = \"a\"\n[[gateway]]\nname = \"a\"",
                "two gateways",
            ),
            ("[revive]\nmax_attemps = 3", "max_attemps"),
            ("[nostr]\nrelay_urls = [\"ws://x\"]", "relay_urls"),
            ("[incident]\nlable = \"x\"", "lable"),
            ("[telegram]\nchatid = 1", "chatid"),
            (
                "[[gateway]]\nname = \"a\"\nhealth_prot = 8766",
                "health_prot",
            ),
            (
                "[[gateway]]\nname = \"a\"\nhealth_port = 70000",
                "health_port",
            ),
            ("[[gateway]]\nname = \"a\"\nhealth = \"no\"", "health"),
        ] {
            let e = PoolConfig::parse(text, "pool.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("pool.toml") && e.contains(needle),
                "{needle}: {e}"
            );
        }
        let e = PoolConfig::from_seed_json("{\"gateways\": 5}", "p.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.json") && e.contains("gateways"), "{e}");
    }

    #[test]
    fn the_http_surface_binds_to_loopback_by_default() {
        let addr: std::net::SocketAddr = PoolConfig::default().pool.listen.parse().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        let example = include_str!("../../../docs/examples/resurrection-pool.toml");
        let c = PoolConfig::parse(example, "example").unwrap();
        let addr: std::net::SocketAddr = c.pool.listen.parse().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
    }

    #[test]
    fn the_ping_token_comes_from_a_private_file_and_a_rate_limit_is_set() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("ping.token");
        std::fs::write(&file, "p1ng-t0ken-from-a-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[ping]\ndir = \"/tmp/x\"\ntoken_env = \"NEXUS_POOL_TEST_UNSET\"\ntoken_file = {:?}\nrate_limit = {{ burst = 5, per_minute = 30 }}\n",
            file.display().to_string()
        );
        let c = PoolConfig::parse(&text, "t").unwrap();
        let p = c.ping.as_ref().unwrap();
        let ingest = p.ingest().unwrap();
        assert_eq!(ingest.token.expose(), "p1ng-t0ken-from-a-file");
        assert_eq!(
            ingest.rate_limit,
            crate::ratelimit::RateLimit {
                burst: 5,
                per_minute: 30
            }
        );
        assert!(!format!("{ingest:?}").contains("p1ng"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = p.ingest().unwrap_err().to_string();
        assert!(e.contains("ping.token") && e.contains("chmod 600"), "{e}");
        assert!(e.starts_with("invalid pool config [ping]: "), "{e}");
        assert!(!e.contains("p1ng"), "{e}");
        let none = PoolConfig::parse(
            "[ping]\ndir = \"/tmp/x\"\ntoken_env = \"NEXUS_POOL_TEST_UNSET\"\n",
            "t",
        )
        .unwrap();
        let e = none.ping.unwrap().ingest().unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert_eq!(
            e.to_string(),
            "invalid pool config [ping]: needs a token of at least 16 characters in $NEXUS_POOL_TEST_UNSET"
        );
    }
}
