//! The filled-in mission proposal (docs/SPEC.md §5.7, the Gitea issue template
//! `mission-proposal.md`), parsed into what a new cell records.
//!
//! HTML comments (the template's hints) are ignored, and so are the
//! template's unfilled placeholders (`- @ —`, `yes / no`, empty cells).

use nexus_stdx::{DurationError, parse_duration};

use crate::{AgentName, CellConfig, Invitee, Isolation, NameError, NewCell, Role, UnknownValue};

/// The blank template (seed 003's `.gitea/ISSUE_TEMPLATE/mission-proposal.md`),
/// for `mission-cell template` and the Gitea repository.
pub const PROPOSAL_TEMPLATE: &str = include_str!("../templates/mission-proposal.md");

/// A proposal that cannot be used, with the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ProposalError {
    /// Where (0 when the problem is a missing section).
    pub line: usize,
    /// What is wrong.
    pub reason: ProposalProblem,
}

/// What is wrong with a line of a proposal (or the proposal as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalProblem {
    /// No "Mission Summary" text.
    #[error("section \"Mission Summary\" is missing or empty")]
    NoMission,
    /// An "Agents Invited" item that is not `- @agent — role`.
    #[error("expected \"- @agent — role\", found {0:?}")]
    NotAnInvitee(String),
    /// An invitee line with `@agent` but no `— role` after it.
    #[error("no role for @{0} (expected \"- @agent — role\")")]
    NoRole(String),
    /// An agent listed twice under "Agents Invited".
    #[error("agent {0} is listed twice")]
    Duplicate(AgentName),
    /// An invitee's name that cannot be an agent name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An invitee's role that is not one.
    #[error(transparent)]
    Role(#[from] UnknownValue),
    /// "External network access required:" neither yes nor no.
    #[error("expected yes or no, found {0:?}")]
    YesNo(String),
    /// A "Cell Configuration" row whose value does not fit its setting;
    /// `key` is the setting as written.
    #[error("{key}: {why}")]
    Setting {
        /// The setting (`Max duration`, ...).
        key: String,
        /// What is wrong with its value.
        why: SettingProblem,
    },
}

/// Why a "Cell Configuration" value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingProblem {
    /// Not a duration (`48h`, `30m`).
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// Neither yes nor no.
    #[error("expected yes or no, found {0:?}")]
    YesNo(String),
    /// Not a whole number.
    #[error("expected a whole number, found {0:?}")]
    Number(String),
}

/// What a proposal says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    /// The issue title without `[MISSION]`.
    pub title: Option<String>,
    /// "Mission Summary" (required).
    pub mission: String,
    /// "Objective".
    pub objective: Option<String>,
    /// "Agents Invited".
    pub invited: Vec<Invitee>,
    /// "Isolation Requirements".
    pub isolation: Isolation,
    /// "Cell Configuration".
    pub config: CellConfig,
    /// The epic from "Related Issues / Context".
    pub epic: Option<u64>,
}

impl Proposal {
    /// The cell to provision; `text` is kept as `proposal.md`.
    pub fn into_new_cell(self, created_by: String, text: &str) -> NewCell {
        NewCell {
            mission: self.mission,
            created_by,
            name: self.title,
            objective: self.objective,
            invited: self.invited,
            config: self.config,
            isolation: Some(self.isolation),
            proposal: Some(text.to_string()),
            ..NewCell::default()
        }
    }
}

impl Proposal {
    /// The proposal as a filled-in template; [`parse_proposal`] reads it
    /// back to the same value (single-line texts).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line("---".into());
        line("name: Mission Proposal".into());
        line(format!(
            "title: \"[MISSION] {}\"",
            self.title.as_deref().unwrap_or("")
        ));
        line("labels: mission-proposal".into());
        line("---".into());
        line("\n## Mission Summary".into());
        line(self.mission.clone());
        line("\n## Objective".into());
        line(self.objective.clone().unwrap_or_default());
        line("\n## Agents Invited".into());
        for i in &self.invited {
            line(format!("- @{} — {}", i.name, i.role));
        }
        let check = |b: bool| if b { "[x]" } else { "[ ]" };
        let iso = &self.isolation;
        line("\n## Isolation Requirements".into());
        line(format!(
            "- {} No wizard home-directory access needed",
            check(iso.no_home_access)
        ));
        line(format!(
            "- {} Read-only access to the following homes: {}",
            check(!iso.read_only_homes.is_empty()),
            iso.read_only_homes.join(", ")
        ));
        line(format!(
            "- {} External network access required: {}",
            check(iso.external_network == Some(true)),
            match iso.external_network {
                Some(true) => "yes",
                Some(false) => "no",
                None => "yes / no",
            }
        ));
        let c = &self.config;
        let secs = |v: Option<u64>| v.map(|s| format!("{s}s")).unwrap_or_default();
        line("\n## Cell Configuration".into());
        line("| Setting | Value |".into());
        line("|--------------------------|-------|".into());
        line(format!(
            "| Max duration | {} |",
            secs(c.max_duration_seconds)
        ));
        line(format!(
            "| Checkpoint interval | {} |",
            secs(c.checkpoint_interval_seconds)
        ));
        line(format!(
            "| Auto-archive on close | {} |",
            match c.auto_archive {
                Some(true) => "yes",
                Some(false) => "no",
                None => "yes / no",
            }
        ));
        line(format!(
            "| Max revive attempts | {} |",
            c.max_revive_attempts
                .map(|n| n.to_string())
                .unwrap_or_default()
        ));
        line("\n## Related Issues / Context".into());
        line(format!(
            "- Epic: #{}",
            self.epic.map(|n| n.to_string()).unwrap_or_default()
        ));
        out
    }
}

/// Parses a filled-in proposal.
pub fn parse_proposal(text: &str) -> Result<Proposal, ProposalError> {
    let clean = strip_comments(text);
    let lines: Vec<&str> = clean.lines().collect();
    let mut p = Proposal::default();
    let mut section = String::new();
    let mut summary: Vec<&str> = Vec::new();
    let mut objective: Vec<&str> = Vec::new();
    let mut body_start = 0;
    if lines.first().map(|l| l.trim()) == Some("---")
        && let Some(end) = lines.iter().skip(1).position(|l| l.trim() == "---")
    {
        for l in &lines[1..=end] {
            if let Some(t) = l.trim().strip_prefix("title:") {
                p.title = title(t);
            }
        }
        body_start = end + 2;
    }
    for (i, raw) in lines.iter().enumerate().skip(body_start) {
        let n = i + 1;
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().to_ascii_lowercase();
            continue;
        }
        if let Some(h) = line.strip_prefix("# ")
            && p.title.is_none()
        {
            p.title = title(h);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let err = |reason: ProposalProblem| ProposalError { line: n, reason };
        match section.as_str() {
            "mission summary" => summary.push(line),
            "objective" => objective.push(line),
            "agents invited" => {
                if let Some(inv) = invitee(line).map_err(err)? {
                    if p.invited.iter().any(|x| x.name == inv.name) {
                        return Err(err(ProposalProblem::Duplicate(inv.name)));
                    }
                    p.invited.push(inv);
                }
            }
            "isolation requirements" => isolation(line, &mut p.isolation).map_err(err)?,
            "cell configuration" => config_row(line, &mut p.config).map_err(err)?,
            s if s.starts_with("related issues") => {
                if let Some(v) = line
                    .trim_start_matches(['-', '*', ' '])
                    .strip_prefix("Epic:")
                {
                    p.epic = v.trim().trim_start_matches('#').parse().ok();
                }
            }
            _ => {}
        }
    }
    p.mission = summary.join(" ");
    if p.mission.is_empty() {
        return Err(ProposalError {
            line: 0,
            reason: ProposalProblem::NoMission,
        });
    }
    if !objective.is_empty() {
        p.objective = Some(objective.join(" "));
    }
    Ok(p)
}

fn title(t: &str) -> Option<String> {
    let t = t.trim().trim_matches('"').trim();
    let t = t.strip_prefix("[MISSION]").unwrap_or(t).trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Replaces `<!-- ... -->` with as many newlines as it spanned.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => {
                let comment = &rest[start..start + end + 3];
                out.extend(std::iter::repeat_n('\n', comment.matches('\n').count()));
                rest = &rest[start + end + 3..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `- @name — role`; `None` for the template's empty placeholder.
fn invitee(line: &str) -> Result<Option<Invitee>, ProposalProblem> {
    let Some(item) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) else {
        return Ok(None);
    };
    let item = item.trim();
    if item.trim_matches(['@', '—', '–', '-', ' ']).is_empty() {
        return Ok(None);
    }
    let item = item
        .strip_prefix('@')
        .ok_or_else(|| ProposalProblem::NotAnInvitee(item.to_string()))?;
    let (name, role) = ["—", "–", " - ", ":"]
        .iter()
        .find_map(|sep| item.split_once(sep))
        .ok_or_else(|| ProposalProblem::NoRole(item.to_string()))?;
    let name = AgentName::new(name.trim())?;
    let word = role.split_whitespace().next().unwrap_or("");
    let role: Role = word.parse()?;
    Ok(Some(Invitee { name, role }))
}

fn checkbox(line: &str) -> Option<(bool, &str)> {
    let item = line
        .strip_prefix("- ")
        .or_else(|| line.strip_prefix("* "))?;
    if let Some(r) = item
        .strip_prefix("[x]")
        .or_else(|| item.strip_prefix("[X]"))
    {
        Some((true, r.trim()))
    } else {
        item.strip_prefix("[ ]").map(|r| (false, r.trim()))
    }
}

/// `Some(None)` for the template's blank, `None` for a word that is
/// neither yes nor no.
fn yes_no(v: &str) -> Option<Option<bool>> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "y" => Some(Some(true)),
        "no" | "false" | "n" => Some(Some(false)),
        "" | "yes / no" | "yes/no" => Some(None),
        _ => None,
    }
}

fn isolation(line: &str, iso: &mut Isolation) -> Result<(), ProposalProblem> {
    let Some((checked, text)) = checkbox(line) else {
        return Ok(());
    };
    let lower = text.to_ascii_lowercase();
    let value = text.split_once(':').map_or("", |(_, v)| v.trim());
    if lower.contains("home-directory") || lower.starts_with("no wizard home") {
        iso.no_home_access = checked;
    } else if lower.starts_with("read-only access") {
        let value = match value.find('(') {
            Some(i) => &value[..i],
            None => value,
        };
        if checked {
            iso.read_only_homes = value
                .split([',', ' '])
                .map(|s| s.trim().trim_start_matches('@'))
                .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("none"))
                .map(str::to_string)
                .collect();
        }
    } else if lower.starts_with("external network") {
        iso.external_network = match yes_no(value)
            .ok_or_else(|| ProposalProblem::YesNo(value.to_ascii_lowercase()))?
        {
            Some(v) => Some(v),
            None if checked => Some(true),
            None => None,
        };
    }
    Ok(())
}

fn config_row(line: &str, cfg: &mut CellConfig) -> Result<(), ProposalProblem> {
    let Some(inner) = line.strip_prefix('|') else {
        return Ok(());
    };
    let cols: Vec<&str> = inner
        .trim_end_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    let [key, value] = cols.as_slice() else {
        return Ok(());
    };
    let secs = |v: &str| -> Result<Option<u64>, SettingProblem> {
        if v.is_empty() {
            return Ok(None);
        }
        Ok(Some(parse_duration(v)?.as_secs()))
    };
    let setting = |why: SettingProblem| ProposalProblem::Setting {
        key: key.to_string(),
        why,
    };
    match key.to_ascii_lowercase().as_str() {
        "max duration" => cfg.max_duration_seconds = secs(value).map_err(setting)?,
        "checkpoint interval" => cfg.checkpoint_interval_seconds = secs(value).map_err(setting)?,
        "auto-archive on close" => {
            cfg.auto_archive = yes_no(value)
                .ok_or_else(|| setting(SettingProblem::YesNo(value.to_ascii_lowercase())))?;
        }
        "max revive attempts" => {
            cfg.max_revive_attempts = if value.is_empty() {
                None
            } else {
                Some(
                    value
                        .parse()
                        .map_err(|_| setting(SettingProblem::Number(value.to_string())))?,
                )
            };
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template from seed 003, filled in.
    pub(crate) const FILLED: &str = r#"---
name: Mission Proposal
about: Propose a new Mission Cell — a temporary, isolated collaboration space for agents and humans
title: "[MISSION] Port the watchdog"
labels: mission-proposal
---
## Mission Summary
<!-- One-sentence description of the mission objective -->
Port the nexus watchdog to Rust.

## Objective
<!-- What is the outcome we are driving toward? What does "done" look like? -->
A watchdog binary that passes
the acceptance scenarios.

## Agents Invited
<!-- List agents (or humans) that should be invited into this cell.
Format: @agent-name — role (developer / reviewer / observer / coordinator) -->
- @allegro — developer
- @ezra — reviewer
- @ —

## Scope & Deliverables
- [ ] PR
- [ ]

## Isolation Requirements
- [x] No wizard home-directory access needed
- [x] Read-only access to the following homes: timmy, @bezalel
- [ ] External network access required: no

## Cell Configuration
<!-- Leave blank to use defaults from config/lazarus-pit.toml -->
| Setting | Value |
|--------------------------|-------|
| Max duration | 48h |
| Checkpoint interval | 30m |
| Auto-archive on close | yes |
| Max revive attempts | |

## Related Issues / Context
- Epic: #878
- Depends on: #
- Blocked by: #

## Success Criteria
1. It runs.

## Notes
"#;

    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9 .,]{0,30}[A-Za-z0-9.]"
    }

    fn proposal() -> impl Strategy<Value = Proposal> {
        (
            proptest::option::of("[A-Za-z0-9][A-Za-z0-9 ]{0,20}[A-Za-z0-9]"),
            text(),
            proptest::option::of(text()),
            proptest::collection::btree_map(
                crate::schema::tests::agent_name(),
                proptest::sample::select(Role::ALL.to_vec()),
                0..4,
            ),
            (
                any::<bool>(),
                proptest::collection::vec("[a-z]{1,8}", 0..3),
                proptest::option::of(any::<bool>()),
            ),
            (
                proptest::option::of(1u64..3_000_000_000),
                proptest::option::of(1u64..3_000_000_000),
                proptest::option::of(any::<bool>()),
                proptest::option::of(any::<u32>()),
            ),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |(title, mission, objective, invited, iso, cfg, epic)| Proposal {
                    title,
                    mission,
                    objective,
                    invited: invited
                        .into_iter()
                        .map(|(name, role)| Invitee { name, role })
                        .collect(),
                    isolation: Isolation {
                        no_home_access: iso.0,
                        read_only_homes: iso.1.into_iter().filter(|h| h != "none").collect(),
                        external_network: iso.2,
                    },
                    config: CellConfig {
                        max_duration_seconds: cfg.0,
                        checkpoint_interval_seconds: cfg.1,
                        auto_archive: cfg.2,
                        max_revive_attempts: cfg.3,
                    },
                    epic,
                },
            )
    }

    proptest! {
        #[test]
        fn proposals_round_trip(p in proposal()) {
            let md = p.to_markdown();
            prop_assert_eq!(parse_proposal(&md).unwrap(), p);
        }
    }

    #[test]
    fn parses_the_filled_template() {
        let p = parse_proposal(FILLED).unwrap();
        assert_eq!(p.title.as_deref(), Some("Port the watchdog"));
        assert_eq!(p.mission, "Port the nexus watchdog to Rust.");
        assert_eq!(
            p.objective.as_deref(),
            Some("A watchdog binary that passes the acceptance scenarios.")
        );
        let inv: Vec<(String, Role)> = p
            .invited
            .iter()
            .map(|i| (i.name.to_string(), i.role))
            .collect();
        assert_eq!(
            inv,
            [
                ("allegro".to_string(), Role::Developer),
                ("ezra".to_string(), Role::Reviewer)
            ]
        );
        assert_eq!(
            p.isolation,
            Isolation {
                no_home_access: true,
                read_only_homes: vec!["timmy".into(), "bezalel".into()],
                external_network: Some(false),
            }
        );
        assert_eq!(
            p.config,
            CellConfig {
                max_duration_seconds: Some(48 * 3600),
                checkpoint_interval_seconds: Some(1800),
                auto_archive: Some(true),
                max_revive_attempts: None,
            }
        );
        assert_eq!(p.epic, Some(878));
    }

    #[test]
    fn the_shipped_template_is_the_blank_form() {
        let e = parse_proposal(PROPOSAL_TEMPLATE).unwrap_err();
        assert!(e.reason.to_string().contains("Mission Summary"), "{e}");
        let filled = PROPOSAL_TEMPLATE
            .replace(
                "<!-- One-sentence description of the mission objective -->",
                "Ship it.",
            )
            .replace("- @ —", "- @allegro — coordinator");
        let p = parse_proposal(&filled).unwrap();
        assert_eq!(p.mission, "Ship it.");
        assert_eq!(p.invited.len(), 1);
        assert_eq!(p.title, None);
        assert_eq!(p.config, CellConfig::default());
        assert_eq!(p.isolation, Isolation::default());
    }

    #[test]
    fn the_unfilled_template_has_no_mission() {
        let blank = FILLED
            .replace("Port the nexus watchdog to Rust.\n", "")
            .replace(
                "title: \"[MISSION] Port the watchdog\"",
                "title: \"[MISSION] \"",
            );
        let e = parse_proposal(&blank).unwrap_err();
        assert!(e.reason.to_string().contains("Mission Summary"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let line_of = |needle: &str| FILLED.lines().position(|l| l == needle).unwrap() + 1;
        let bad = FILLED.replace("- @ezra — reviewer", "- @../etc — reviewer");
        let e = parse_proposal(&bad).unwrap_err();
        assert_eq!(e.line, line_of("- @ezra — reviewer"), "{e}");
        assert!(e.reason.to_string().contains("invalid agent name"), "{e}");
        let bad = FILLED.replace("- @ezra — reviewer", "- @ezra — pilot");
        assert!(
            parse_proposal(&bad)
                .unwrap_err()
                .reason
                .to_string()
                .contains("unknown role")
        );
        let bad = FILLED.replace("| Max duration | 48h |", "| Max duration | forever |");
        let e = parse_proposal(&bad).unwrap_err();
        let want = format!(
            "line {}: Max duration: invalid duration",
            line_of("| Max duration | 48h |")
        );
        assert!(e.to_string().starts_with(&want), "{e}");
        let bad = FILLED.replace(
            "| Max revive attempts | |",
            "| Max revive attempts | many |",
        );
        assert!(parse_proposal(&bad).is_err());
        let e = parse_proposal(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "line {}: Max revive attempts: expected a whole number, found \"many\"",
                line_of("| Max revive attempts | |")
            )
        );
        let bad = FILLED.replace(
            "| Auto-archive on close | yes |",
            "| Auto-archive on close | maybe |",
        );
        let e = parse_proposal(&bad).unwrap_err();
        assert_eq!(
            e.reason,
            ProposalProblem::Setting {
                key: "Auto-archive on close".into(),
                why: SettingProblem::YesNo("maybe".into()),
            }
        );
        assert!(
            e.to_string()
                .ends_with("Auto-archive on close: expected yes or no, found \"maybe\""),
            "{e}"
        );
        let bad = FILLED.replace(
            "External network access required: no",
            "External network access required: sometimes",
        );
        let e = parse_proposal(&bad).unwrap_err();
        assert_eq!(
            e.reason.to_string(),
            "expected yes or no, found \"sometimes\""
        );
        let bad = FILLED.replace("- @allegro — developer", "- @allegro");
        let e = parse_proposal(&bad).unwrap_err();
        assert_eq!(
            e.reason.to_string(),
            "no role for @allegro (expected \"- @agent — role\")"
        );
    }

    #[test]
    fn heading_title_and_no_front_matter() {
        let p = parse_proposal("# [MISSION] Fix it\n## Mission Summary\nFix it now.\n").unwrap();
        assert_eq!(p.title.as_deref(), Some("Fix it"));
        assert_eq!(p.mission, "Fix it now.");
        let cell = p.into_new_cell("me".into(), "text");
        assert_eq!(cell.proposal.as_deref(), Some("text"));
    }
}
