//! `GET /badge/<name>.svg`: a status badge per agent, and per cron job
//! or watchdog check the history holds (`backup` or `backup@host`), in the flat style
//! shields.io, healthchecks and Gatus users embed in READMEs and wikis
//! (label on grey, state on its colour). Several agents of one name (one
//! per cell) share a badge that shows the worst of their states; an
//! unknown name is a 404 with a grey "not found" badge, so an embedded
//! image never breaks. Rendered with maud: a name is escaped like any text.

use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::http::{Shared, with_snapshot};
use crate::view::PoolSnapshot;
use nexus_revive::State;

/// A name longer than this is cut (with "…") on the badge.
const MAX_LABEL: usize = 40;

pub(crate) async fn badge(
    AxState(shared): AxState<Shared>,
    Path(file): Path<String>,
    history: Option<axum::Extension<crate::dashboard::HistoryFeed>>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return (StatusCode::NOT_FOUND, "badges are /badge/<name>.svg\n").into_response();
    };
    let agent = with_snapshot(&shared, |s| worst_state(s, name));
    let (code, svg) = match agent {
        Some(st) => (StatusCode::OK, render(name, st.as_str(), colour(st))),
        None => match history.and_then(|h| job_state(&h.current(), name)) {
            Some((state, fill)) => (StatusCode::OK, render(name, &state, fill)),
            None => (StatusCode::NOT_FOUND, render(name, "not found", GREY)),
        },
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            // Image proxies (GitHub's camo) fetch it again each time.
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        svg.into_string(),
    )
        .into_response()
}

/// A cron job's or check's state and colour from the history (`[history]`),
/// by its full name (`backup@host`) or its name alone when one host has it.
fn job_state(h: &crate::dashboard::HistoryView, name: &str) -> Option<(String, &'static str)> {
    let rows = h.cron.iter().map(|r| (nexus_history::Kind::Cron, r));
    let rows = rows.chain(h.checks.iter().map(|r| (nexus_history::Kind::Check, r)));
    let found: Vec<_> = rows
        .filter(|(_, r)| {
            r.subject.subject == name
                || r.subject.subject.strip_suffix(&r.subject.group) == Some(&format!("{name}@"))
        })
        .collect();
    let (kind, row) = match found.as_slice() {
        [one] => *one,
        _ => found
            .iter()
            .find(|(_, r)| r.subject.subject == name)
            .copied()?,
    };
    let fill = match crate::page::state_class(kind, &row.subject.state) {
        "healthy" => colour(State::Healthy),
        "degraded" => colour(State::Degraded),
        "dead" => colour(State::Dead),
        _ => colour(State::Unknown),
    };
    Some((row.subject.state.clone(), fill))
}

/// The worst state among the agents called `name`, if any.
fn worst_state(s: &PoolSnapshot, name: &str) -> Option<State> {
    s.agents
        .iter()
        .filter(|a| &*a.name == name)
        .map(|a| a.state)
        .max_by_key(|&st| severity(st))
}

fn severity(st: State) -> u8 {
    match st {
        State::Healthy => 0,
        State::Unknown => 1,
        State::Reviving => 2,
        State::Degraded => 3,
        State::Dead => 4,
        State::Escalated => 5,
    }
}

const GREY: &str = "#9f9f9f";

/// The status page's colours (page.rs), so a badge and a card agree.
fn colour(st: State) -> &'static str {
    match st {
        State::Healthy => "#2a7",
        State::Degraded => "#d90",
        State::Dead => "#c33",
        State::Reviving => "#36c",
        State::Escalated => "#808",
        State::Unknown => "#888",
    }
}

/// Text width in pixels at 11 px Verdana, estimated per character (wide
/// letters count more), as shields.io's badges are laid out.
fn width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' => 4,
            'm' | 'w' | 'M' | 'W' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum()
}

/// A flat badge: `label` on grey, `message` on `fill`.
fn render(label: &str, message: &str, fill: &str) -> Markup {
    let label: String = if label.chars().count() > MAX_LABEL {
        label.chars().take(MAX_LABEL - 1).chain(['…']).collect()
    } else {
        label.to_string()
    };
    let lw = width(&label) + 10;
    let mw = width(message) + 10;
    let total = lw + mw;
    let title = format!("{label}: {message}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(total) height="20" role="img" aria-label=(title) {
            title { (title) }
            linearGradient id="s" x2="0" y2="100%" {
                stop offset="0" stop-color="#bbb" stop-opacity=".1" {}
                stop offset="1" stop-opacity=".1" {}
            }
            clipPath id="r" { rect width=(total) height="20" rx="3" fill="#fff" {} }
            g clip-path="url(#r)" {
                rect width=(lw) height="20" fill="#555" {}
                rect x=(lw) width=(mw) height="20" fill=(fill) {}
                rect width=(total) height="20" fill="url(#s)" {}
            }
            g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11" {
                text x=(lw / 2) y="14" { (label) }
                text x=(lw + mw / 2) y="14" class="message" { (message) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::sample;

    #[test]
    fn a_badge_shows_the_worst_state_of_agents_of_that_name() {
        let mut s = sample(1_800_000_000.0);
        assert_eq!(worst_state(&s, "allegro"), Some(State::Healthy));
        s.agents[2].name = "allegro".into();
        assert_eq!(worst_state(&s, "allegro"), Some(State::Reviving));
        assert_eq!(worst_state(&s, "nobody"), None);
    }

    #[test]
    fn a_job_badge_comes_from_the_history_by_either_name() {
        let mut h = crate::dashboard::HistoryView::default();
        let row = |name: &str, group: &str, state: &str| crate::dashboard::Row {
            subject: nexus_history::Subject {
                kind: nexus_history::Kind::Cron,
                group: group.into(),
                subject: name.into(),
                state: state.into(),
                reason: String::new(),
                at_ms: 0,
                seen_ms: 0,
            },
            recent: Vec::new(),
            day: Default::default(),
            week: Default::default(),
        };
        h.cron.push(row("backup@h1", "h1", "STALE"));
        h.cron.push(row("sync@h1", "h1", "OK"));
        h.cron.push(row("sync@h2", "h2", "LATE"));
        assert_eq!(job_state(&h, "backup"), Some(("STALE".into(), "#c33")));
        assert_eq!(job_state(&h, "backup@h1"), Some(("STALE".into(), "#c33")));
        // Two hosts have `sync`: only the full name says which.
        assert_eq!(job_state(&h, "sync"), None);
        assert_eq!(job_state(&h, "sync@h2"), Some(("LATE".into(), "#d90")));
        assert_eq!(job_state(&h, "nobody"), None);
    }

    #[test]
    fn the_svg_is_escaped_sized_and_coloured() {
        let svg = render("<x&y>", "dead", colour(State::Dead)).into_string();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(
            svg.contains("&lt;x&amp;y&gt;") && !svg.contains("<x&"),
            "{svg}"
        );
        assert!(svg.contains("fill=\"#c33\""), "{svg}");
        // Widths add up: label 5 chars, message "dead".
        let lw = width("<x&y>") + 10;
        let total = lw + width("dead") + 10;
        assert!(
            svg.contains(&format!("width=\"{total}\" height=\"20\"")),
            "{svg}"
        );
        let long = "a".repeat(100);
        let svg = render(&long, "healthy", colour(State::Healthy)).into_string();
        assert!(
            svg.contains(&format!("{}…", "a".repeat(MAX_LABEL - 1))),
            "{svg}"
        );
        assert!(!svg.contains(&"a".repeat(MAX_LABEL + 1)));
    }
}
