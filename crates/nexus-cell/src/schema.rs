//! `cell.json` (docs/SPEC.md §5.2): the typed manifest and its validation.
//!
//! Unknown fields are kept in `extra` and written back, so an older tool
//! never drops what a newer one recorded.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{UnknownValue, ValueError};
use crate::{AgentName, CellId, Error, Status};

/// What the daemon may do when an agent dies (docs/SPEC.md defect L6; the
/// resurrection pool's semantics): the one policy type, `nexus_revive`'s,
/// under the name the cell schema has always used. On disk `"auto"`,
/// `"ask"`, `"never"`; `yes`/`no` are accepted as aliases.
pub use nexus_revive::Policy as RevivePolicy;

/// Longest `mission` / `objective` text, in bytes.
pub const MAX_TEXT: usize = 8 * 1024;
/// Longest short string (`name`, `created_by`, `repo`, a home path), in bytes.
pub const MAX_SHORT: usize = 512;
/// Most arguments in a revive command.
pub const MAX_ARGS: usize = 256;
/// Longest single argument of a revive command, in bytes.
pub const MAX_ARG: usize = 4096;
/// Most agents in one cell.
pub const MAX_AGENTS: usize = 1024;

/// The role of an agent in a cell (the proposal template's four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes the code.
    Developer,
    /// Reviews it.
    Reviewer,
    /// Watches, does not act.
    Observer,
    /// Runs the mission.
    Coordinator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Developer,
        Role::Reviewer,
        Role::Observer,
        Role::Coordinator,
    ];

    /// Lower-case name as written in `cell.json` and accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Developer => "developer",
            Role::Reviewer => "reviewer",
            Role::Observer => "observer",
            Role::Coordinator => "coordinator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Role, UnknownValue> {
        let t = s.trim().to_ascii_lowercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == t)
            .ok_or_else(|| UnknownValue {
                kind: "role",
                value: s.to_string(),
                expected: "developer, reviewer, observer or coordinator",
            })
    }
}

/// One member of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEntry {
    /// The agent's name (also its heartbeat, log and inbox file stem).
    pub name: AgentName,
    /// Role given when it joined; never changes afterwards.
    pub role: Role,
    /// When it joined (ISO-8601, UTC `Z`).
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// The agent's home outside the cell (`/root/wizards/<name>/`); never
    /// written by the store, never deleted with the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
    /// How to revive it: a program and its arguments, run without a shell
    /// in the cell's `workspace/` (see [`crate::Cell::revive_command`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive_cmd: Option<Vec<String>>,
    /// Overrides the cell's and the daemon's revive policy for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive_policy: Option<RevivePolicy>,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An agent named in the mission proposal, not (yet) joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    /// Agent name as written after `@` in the proposal.
    pub name: AgentName,
    /// Role written after the separator (`—`, `–`, ` - ` or `:`) in the proposal.
    pub role: Role,
}

/// The proposal's "Cell Configuration" table; `None` means the daemon's
/// defaults from `lazarus-pit.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellConfig {
    /// Maximum mission duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    /// How often to checkpoint the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_seconds: Option<u64>,
    /// Archive the cell when the mission issue closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_archive: Option<bool>,
    /// Revive attempts per agent before escalating to a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_revive_attempts: Option<u32>,
}

impl CellConfig {
    /// True when every setting is left to the defaults.
    pub fn is_empty(&self) -> bool {
        *self == CellConfig::default()
    }
}

/// The proposal's "Isolation Requirements".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// No agent needs its home directory.
    #[serde(default)]
    pub no_home_access: bool,
    /// Homes to expose read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_homes: Vec<String>,
    /// Whether the mission needs external network access (`None`: not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_network: Option<bool>,
}

/// `cell.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellManifest {
    /// The cell id; equals the directory name.
    pub uuid: CellId,
    /// Optional display label, free text of at most [`MAX_SHORT`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One-sentence mission.
    pub mission: String,
    /// Creation time (ISO-8601, UTC `Z`).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// Lifecycle status.
    pub status: Status,
    /// Agents that have joined and not left, in join order.
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    /// The Gitea issue of the mission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea_issue: Option<u64>,
    /// The repository the mission works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The cell's revive policy (overrides the daemon's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive_policy: Option<RevivePolicy>,
    /// What "done" looks like (from the proposal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// Agents invited by the proposal that have not joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invited: Vec<Invitee>,
    /// Per-cell settings from the proposal.
    #[serde(default, skip_serializing_if = "CellConfig::is_empty")]
    pub config: CellConfig,
    /// Isolation requirements from the proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// Fields this version does not know; preserved on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CellManifest {
    /// The member called `name`.
    pub fn agent(&self, name: &AgentName) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| &a.name == name)
    }

    /// The policy for `agent`: its own, else the cell's, else `default`.
    pub fn effective_policy(&self, agent: &AgentName, default: RevivePolicy) -> RevivePolicy {
        self.agent(agent)
            .and_then(|a| a.revive_policy)
            .or(self.revive_policy)
            .unwrap_or(default)
    }

    /// Checks what serde cannot: bounds, unique agents, absolute homes,
    /// non-empty revive commands. The error names `path` and the field.
    pub fn validate(&self, path: &Path) -> Result<(), Error> {
        let bad = |field: String, reason: String| Err(Error::corrupt(path, field, reason));
        let why = |e: ValueError| e.to_string();
        if let Err(r) = check_text(&self.mission, MAX_TEXT, false) {
            return bad("mission".into(), why(r));
        }
        if let Some(Err(r)) = self.name.as_deref().map(|n| check_text(n, MAX_SHORT, true)) {
            return bad("name".into(), why(r));
        }
        if let Err(r) = check_text(&self.created_by, MAX_SHORT, true) {
            return bad("created_by".into(), why(r));
        }
        if let Some(Err(r)) = self.repo.as_deref().map(|n| check_text(n, MAX_SHORT, true)) {
            return bad("repo".into(), why(r));
        }
        if let Some(Err(r)) = self
            .objective
            .as_deref()
            .map(|n| check_text(n, MAX_TEXT, true))
        {
            return bad("objective".into(), why(r));
        }
        if self.agents.len() > MAX_AGENTS {
            return bad("agents".into(), format!("more than {MAX_AGENTS} agents"));
        }
        for (i, a) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|b| b.name == a.name) {
                return bad(
                    format!("agents[{i}].name"),
                    format!("duplicate agent {}", a.name),
                );
            }
            if let Some(Err(r)) = a.home.as_deref().map(check_home) {
                return bad(format!("agents[{i}].home"), why(r));
            }
            if let Some(Err(r)) = a.revive_cmd.as_deref().map(check_revive_cmd) {
                return bad(format!("agents[{i}].revive_cmd"), why(r));
            }
        }
        Ok(())
    }
}

/// Bounded, NUL-free text; `single_line` also refuses control characters.
pub(crate) fn check_text(s: &str, max: usize, single_line: bool) -> Result<(), ValueError> {
    if s.len() > max {
        return Err(ValueError::TooLong(max));
    }
    // Printable ASCII (nearly every text) passes in one pass over the bytes;
    // other ASCII is checked byte by byte; the control characters beyond
    // ASCII (U+0080..U+009F) need the `char` walk.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    if s.is_ascii() {
        return if s.bytes().any(|b| b == 0) {
            Err(ValueError::Nul)
        } else if single_line && s.bytes().any(|b| b.is_ascii_control()) {
            Err(ValueError::Control)
        } else {
            Ok(())
        };
    }
    if s.contains('\0') {
        return Err(ValueError::Nul);
    }
    if single_line && s.chars().any(char::is_control) {
        return Err(ValueError::Control);
    }
    Ok(())
}

/// A home is an absolute, normalised path (no `.` or `..` components).
pub(crate) fn check_home(p: &Path) -> Result<(), ValueError> {
    use std::os::unix::ffi::OsStrExt;
    // `from_utf8` has an ASCII fast path; `to_string_lossy` walks chunks.
    let s = match std::str::from_utf8(p.as_os_str().as_bytes()) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => p.to_string_lossy(),
    };
    check_text(&s, MAX_SHORT, true)?;
    if !p.is_absolute() {
        return Err(ValueError::NotAbsolute(s.into_owned()));
    }
    // As `Path::components` sees it: `..` anywhere, `.` only at the start
    // (and an absolute path has none there). Split by hand: the survey
    // checks 10,000 homes per sweep.
    if s.split('/').any(|c| c == "..") {
        return Err(ValueError::DotComponent(s.into_owned()));
    }
    Ok(())
}

/// A revive command is a non-empty argv of bounded, NUL-free strings.
pub(crate) fn check_revive_cmd(argv: &[String]) -> Result<(), ValueError> {
    match argv.first() {
        None => return Err(ValueError::EmptyCommand),
        Some(p) if p.trim().is_empty() => return Err(ValueError::EmptyProgram),
        _ => {}
    }
    if argv.len() > MAX_ARGS {
        return Err(ValueError::TooManyArgs(MAX_ARGS));
    }
    for (i, a) in argv.iter().enumerate() {
        if a.len() > MAX_ARG {
            return Err(ValueError::ArgTooLong {
                index: i,
                max: MAX_ARG,
            });
        }
        if a.contains('\0') {
            return Err(ValueError::ArgNul(i));
        }
    }
    Ok(())
}

/// The current time in UTC, to the microsecond (what `cell.json` and
/// `events.jsonl` record).
pub fn now_utc() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_agent_entry_keeps_unknown_keys_and_names_what_is_wrong() {
        let ok = r#"{"name":"a1","role":"developer","joined_at":"2026-04-06T00:01:00Z",
                     "home":null,"x-team":{"k":[1,2]},"note":"hi"}"#;
        let a: AgentEntry = serde_json::from_str(ok).unwrap();
        assert_eq!(a.name.as_str(), "a1");
        assert_eq!(a.home, None);
        assert_eq!(a.extra["x-team"]["k"][1], 2);
        assert_eq!(a.extra["note"], "hi");
        let back: AgentEntry = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        for (doc, says) in [
            (
                r#"{"role":"developer","joined_at":"2026-04-06T00:01:00Z"}"#,
                "missing field `name`",
            ),
            (
                r#"{"name":"a1","name":"a2","role":"developer","joined_at":"2026-04-06T00:01:00Z"}"#,
                "duplicate field `name`",
            ),
            (
                r#"{"name":"a1","role":"king","joined_at":"2026-04-06T00:01:00Z"}"#,
                "unknown variant `king`",
            ),
            (
                r#"{"name":"a1","role":"developer","joined_at":7}"#,
                "invalid type",
            ),
            (
                r#"{"name":"a/b","role":"developer","joined_at":"2026-04-06T00:01:00Z"}"#,
                "path separator",
            ),
            ("[1]", "invalid type"),
        ] {
            let e = serde_json::from_str::<AgentEntry>(doc)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{doc}: {e}");
        }
    }

    proptest! {
        /// The hand-split check rejects exactly what `Path::components`
        /// shows as `..` or `.` in an absolute path.
        #[test]
        fn home_check_agrees_with_path_components(parts in proptest::collection::vec("(\\.|\\.\\.|a|\\.a|a\\.\\.|)", 0..6)) {
            let home = format!("/{}", parts.join("/"));
            let p = Path::new(&home);
            let by_components = p.components().any(|c| {
                matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir)
            });
            prop_assert_eq!(check_home(p).is_err(), by_components, "{}", home);
        }

        /// The byte-wise check of ASCII text words every refusal as the
        /// `char` walk does.
        #[test]
        fn text_check_agrees_with_the_char_walk(
            s in prop_oneof!["[a \\x00\\x01\\x1f\\x7f]{0,6}", "\\PC{0,8}", ".{0,8}", "[a\\x00\\u{85}\\u{9f}]{0,4}"],
            max in 0usize..10,
            single_line in any::<bool>(),
        ) {
            let by_chars = if s.len() > max {
                Err(format!("longer than {max} bytes"))
            } else if s.contains('\0') {
                Err("contains NUL".to_string())
            } else if single_line && s.chars().any(char::is_control) {
                Err("contains a control character".to_string())
            } else {
                Ok(())
            };
            prop_assert_eq!(check_text(&s, max, single_line).map_err(|e| e.to_string()), by_chars, "{:?}", s);
        }
    }

    pub(crate) fn utc_time() -> impl Strategy<Value = OffsetDateTime> {
        // Years 1970..=9999: what RFC 3339 can express.
        (0i64..253_402_300_799, 0u32..1_000_000_000).prop_map(|(s, n)| {
            OffsetDateTime::from_unix_timestamp(s)
                .unwrap()
                .replace_nanosecond(n)
                .unwrap()
        })
    }

    pub(crate) fn agent_name() -> impl Strategy<Value = AgentName> {
        "[A-Za-z0-9_][A-Za-z0-9_-]{0,20}".prop_map(|s| AgentName::new(&s).unwrap())
    }

    fn role() -> impl Strategy<Value = Role> {
        proptest::sample::select(Role::ALL.to_vec())
    }

    fn policy() -> impl Strategy<Value = RevivePolicy> {
        proptest::sample::select(vec![
            RevivePolicy::Auto,
            RevivePolicy::Ask,
            RevivePolicy::Never,
        ])
    }

    fn extra() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map("x_[a-z]{1,8}", any::<i64>(), 0..3)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
    }

    fn agent() -> impl Strategy<Value = AgentEntry> {
        (
            agent_name(),
            role(),
            utc_time(),
            proptest::option::of("/[a-z]{1,8}/[a-z]{1,8}"),
            proptest::option::of(proptest::collection::vec(".{0,12}", 1..4)),
            proptest::option::of(policy()),
            extra(),
        )
            .prop_map(|(name, role, joined_at, home, cmd, revive_policy, extra)| {
                AgentEntry {
                    name,
                    role,
                    joined_at,
                    home: home.map(PathBuf::from),
                    revive_cmd: cmd,
                    revive_policy,
                    extra,
                }
            })
    }

    pub(crate) fn manifest() -> impl Strategy<Value = CellManifest> {
        let head = (
            any::<[u8; 16]>(),
            proptest::option::of(".{0,20}"),
            ".{0,60}",
            utc_time(),
            "[a-z]{0,10}",
            proptest::sample::select(Status::ALL.to_vec()),
            proptest::collection::vec(agent(), 0..4),
        );
        let tail = (
            proptest::option::of(any::<u64>()),
            proptest::option::of("[a-z/]{1,20}"),
            proptest::option::of(policy()),
            proptest::option::of(".{0,30}"),
            proptest::collection::vec((agent_name(), role()), 0..3),
            (
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(any::<bool>()),
                proptest::option::of(any::<u32>()),
            ),
            proptest::option::of((
                any::<bool>(),
                proptest::collection::vec("[a-z]{1,6}", 0..3),
                proptest::option::of(any::<bool>()),
            )),
            extra(),
        );
        (head, tail).prop_map(
            |(
                (bytes, name, mission, created_at, created_by, status, agents),
                (gitea_issue, repo, revive_policy, objective, invited, cfg, iso, extra),
            )| CellManifest {
                uuid: CellId::parse(
                    &uuid::Builder::from_random_bytes(bytes)
                        .into_uuid()
                        .to_string(),
                )
                .unwrap(),
                name,
                mission,
                created_at,
                created_by,
                status,
                agents,
                gitea_issue,
                repo,
                revive_policy,
                objective,
                invited: invited
                    .into_iter()
                    .map(|(name, role)| Invitee { name, role })
                    .collect(),
                config: CellConfig {
                    max_duration_seconds: cfg.0,
                    checkpoint_interval_seconds: cfg.1,
                    auto_archive: cfg.2,
                    max_revive_attempts: cfg.3,
                },
                isolation: iso.map(|(no_home_access, read_only_homes, external_network)| {
                    Isolation {
                        no_home_access,
                        read_only_homes,
                        external_network,
                    }
                }),
                extra,
            },
        )
    }

    proptest! {
        #[test]
        fn manifest_round_trips(m in manifest()) {
            let text = serde_json::to_string_pretty(&m).unwrap();
            let back: CellManifest = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn policy_and_role_round_trip(p in policy(), r in role()) {
            let t = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<RevivePolicy>(&t).unwrap(), p);
            prop_assert_eq!(p.as_str().parse::<RevivePolicy>().unwrap(), p);
            let t = serde_json::to_string(&r).unwrap();
            prop_assert_eq!(serde_json::from_str::<Role>(&t).unwrap(), r);
            prop_assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn policy_aliases() {
        assert_eq!(
            serde_json::from_str::<RevivePolicy>("\"yes\"").unwrap(),
            RevivePolicy::Auto
        );
        assert_eq!("no".parse::<RevivePolicy>().unwrap(), RevivePolicy::Never);
        assert!("maybe".parse::<RevivePolicy>().is_err());
        assert!(
            "pilot"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("developer")
        );
        assert_eq!(
            "maybe".parse::<RevivePolicy>().unwrap_err().to_string(),
            "unknown revive policy \"maybe\" (use auto, ask or never; yes and no are aliases of auto and never)"
        );
    }

    #[test]
    fn time_is_written_as_iso_z() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let e = AgentEntry {
            name: AgentName::new("a").unwrap(),
            role: Role::Developer,
            joined_at: t,
            home: None,
            revive_cmd: None,
            revive_policy: None,
            extra: Map::new(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["joined_at"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn validate_names_the_field() {
        let mut m: CellManifest = serde_json::from_value(serde_json::json!({
            "uuid": CellId::new_v4(), "mission": "m", "created_at": "2026-01-01T00:00:00Z",
            "created_by": "me", "status": "active",
            "agents": [
                {"name": "a", "role": "developer", "joined_at": "2026-01-01T00:00:00Z"},
                {"name": "b", "role": "reviewer", "joined_at": "2026-01-01T00:00:00Z",
                 "home": "relative/home"}
            ]
        }))
        .unwrap();
        let e = m.validate(Path::new("/x/cell.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x/cell.json: field `agents[1].home`: \"relative/home\" is not an absolute path"
        );
        m.agents[1].home = Some("/root/wizards/b".into());
        m.agents[1].revive_cmd = Some(vec![]);
        let e = m.validate(Path::new("cell.json")).unwrap_err();
        assert!(
            e.to_string()
                .contains("agents[1].revive_cmd`: empty command"),
            "{e}"
        );
        m.agents[1].revive_cmd = None;
        m.agents[1].name = AgentName::new("a").unwrap();
        let e = m.validate(Path::new("cell.json")).unwrap_err();
        assert!(
            e.to_string().contains("agents[1].name`: duplicate agent a"),
            "{e}"
        );
        m.agents.pop();
        m.validate(Path::new("cell.json")).unwrap();
        assert_eq!(
            m.effective_policy(&AgentName::new("a").unwrap(), RevivePolicy::Ask),
            RevivePolicy::Ask
        );
        m.revive_policy = Some(RevivePolicy::Never);
        assert_eq!(
            m.effective_policy(&AgentName::new("a").unwrap(), RevivePolicy::Ask),
            RevivePolicy::Never
        );
    }
}
