//! The status page (`GET /`), server-rendered with maud: every value is
//! escaped by the template engine, never by hand. Agents are grouped by
//! mission, named by its label (the cell's uuid stays a small, shortened
//! detail); facts that do not apply to an agent (no gateway, no process to
//! watch) are left out rather than shown as "n/a"; every clock time is
//! labelled with its zone (UTC, the pool's clock); an agent that waits for
//! a human says what to do, and offers the actions that fit ([`crate::actions`]:
//! approve or deny a revive request, retry now, acknowledge) when the page
//! is served with them (on loopback, each form carrying the CSRF token).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::view::{AgentView, PoolSnapshot};
use nexus_revive::State;

/// The page's style sheet (no external resources: the page works offline
/// and under a strict Content-Security-Policy of `style-src 'unsafe-inline'`).
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
h2 .cell{font-weight:normal;color:#777;font-size:.8em;margin-left:.5em}\
.agent{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.5em 0;background:#fff}\
.agent .name{font-weight:bold;font-size:1.1em}\
.state{display:inline-block;padding:.1em .5em;border-radius:4px;color:#fff;margin-left:.5em}\
.healthy{background:#2a7}.degraded{background:#d90}.dead{background:#c33}\
.reviving{background:#36c}.escalated{background:#808}.unknown{background:#888}\
.facts{color:#555;font-size:.9em;margin:.3em 0}.waiting{color:#8a5a00;font-size:.9em}\
.todo{background:#fff4e0;border-left:3px solid #d90;padding:.2em .5em;font-size:.9em;margin:.3em 0}\
ul.events{margin:.2em 0;padding-left:1.2em;font-size:.85em;color:#444}\
.zone{color:#777;font-size:.85em}\
form.act{display:inline;margin-right:.4em}form.act button{font-size:.85em;padding:.15em .6em;cursor:pointer}\
.ack{color:#555;font-size:.85em}";

/// Renders the status page of snapshot `s` at epoch time `now`; with
/// `csrf` (the actions' token), with the action buttons.
pub(crate) fn render(s: &PoolSnapshot, now: f64, csrf: Option<&str>) -> String {
    let unhealthy = s.unhealthy();
    let last_sweep = if s.last_sweep_at > 0.0 {
        format!(
            "{} ({} UTC)",
            age(Some(now - s.last_sweep_at)),
            crate::http::clock(s.last_sweep_at)
        )
    } else {
        "pending".to_string()
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content="5";
                title { "Resurrection pool: " (s.agents.len()) " agent(s), " (unhealthy) " unhealthy" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Resurrection pool" }
                p.summary {
                    (s.agents.len()) " agent(s), " (unhealthy) " unhealthy; last sweep " (last_sweep)
                    " (took " (format!("{:.0}", s.last_sweep_seconds * 1000.0)) " ms); "
                    (s.sweeps) " sweep(s)"
                }
                p.zone { "Times are the pool's clock in UTC." }
                @for line in crate::http::channel_lines(s) {
                    p.channel { (line) }
                }
                @if !s.unreadable_cells.is_empty() {
                    h2 { "Unreadable cells" }
                    ul.unreadable {
                        @for c in &s.unreadable_cells {
                            li { span.name { (c.cell) } " " (c.reason) }
                        }
                    }
                    p { "Their agents keep their records (attempts, escalation) and are shown as unknown until the cell can be read again." }
                }
                @if s.agents.is_empty() {
                    p { "No agents are configured." }
                }
                @for group in groups(&s.agents) {
                    (heading(group[0]))
                    @for a in group {
                        (agent(a, csrf))
                    }
                }
            }
        }
    }
    .into_string()
}

/// The agents in runs of one cell each (the snapshot lists them by cell,
/// then name).
fn groups(agents: &[AgentView]) -> Vec<Vec<&AgentView>> {
    let mut out: Vec<Vec<&AgentView>> = Vec::new();
    for a in agents {
        match out.last_mut() {
            Some(g) if g[0].cell == a.cell => g.push(a),
            _ => out.push(vec![a]),
        }
    }
    out
}

/// A group's heading: the mission's label, else "Cell" and its short id;
/// agents outside cells are the gateways.
fn heading(first: &AgentView) -> Markup {
    let Some(cell) = first.cell.as_deref() else {
        return html! { h2 { "Gateways" } };
    };
    let short: String = cell.chars().take(8).collect();
    html! {
        h2 data-cell=(cell) {
            @match first.mission.as_deref() {
                Some(m) => { (m) span.cell title=(cell) { "cell " (short) } },
                None => { "Cell " span.cell title=(cell) { (short) } },
            }
        }
    }
}

fn agent(a: &AgentView, csrf: Option<&str>) -> Markup {
    let st = a.state.as_str();
    let mut facts = vec![format!("heartbeat {}", age(a.heartbeat_age))];
    if let Some(g) = a.gateway_alive {
        facts.push(format!("gateway {}", up(g)));
    }
    if let Some(p) = a.process_alive {
        facts.push(format!("process {}", up(p)));
    }
    facts.push(format!("attempts {}", a.revive_attempts));
    facts.push(format!("policy {}", a.policy));
    if a.revive_pending && a.waiting.is_none() {
        facts.push("awaiting approval".to_string());
    }
    html! {
        div.agent data-agent=(a.name) data-state=(st) {
            span.name { (a.name) }
            span class={ "state " (st) } { (st) }
            div.facts { (facts.join(" · ")) }
            @if let Some(r) = &a.reason {
                div.reason { "why: " (r) }
            }
            @if let Some(w) = &a.waiting {
                div.waiting { "waiting: " (w) }
            }
            @if let Some(t) = todo(a) {
                div.todo { "what to do: " (t) }
            }
            @if let Some(by) = &a.acknowledged_by {
                div.ack { "acknowledged by " (by) }
            }
            @if let Some(csrf) = csrf {
                @let acts = actions(a);
                @if !acts.is_empty() {
                    div.actions {
                        @for (what, label) in acts {
                            form.act method="post" action="/action" {
                                input type="hidden" name="agent" value=(a.key());
                                input type="hidden" name="do" value=(what);
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" data-do=(what) { (label) }
                            }
                        }
                    }
                }
            }
            @if !a.last_events.is_empty() {
                ul.events title="newest first; times UTC" {
                    @for e in a.last_events.iter().take(5) {
                        li { (e) }
                    }
                }
            }
        }
    }
}

/// The actions that fit `a`'s state: (the form's `do`, the button's label).
fn actions(a: &AgentView) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if a.revive_pending {
        out.push(("approve", "Approve revive"));
        out.push(("deny", "Deny"));
    }
    if matches!(a.state, State::Dead | State::Escalated) {
        out.push(("retry", "Retry now"));
    }
    if !matches!(a.state, State::Healthy | State::Unknown | State::Reviving)
        && a.acknowledged_by.is_none()
    {
        out.push(("acknowledge", "Acknowledge"));
    }
    out
}

/// What a human can do about an agent the pool will not fix alone.
fn todo(a: &AgentView) -> Option<&'static str> {
    if a.revive_pending {
        return Some(
            "approve or deny the revive in Telegram (the request names this agent); \
             without an answer it expires and the agent stays down",
        );
    }
    match a.state {
        State::Escalated => Some(
            "the pool has spent its revive budget and now retries only on its slow lane; fix \
             what \"why\" names (the agent's output is in its cell's logs/<agent>.log) and it \
             turns healthy at its next beat, or restart it yourself",
        ),
        _ => None,
    }
}

fn up(v: bool) -> &'static str {
    if v { "up" } else { "down" }
}

/// "12s ago", "5m ago", "1.5h ago", or "never".
pub(crate) fn age(secs: Option<f64>) -> String {
    match secs {
        None => "never".to_string(),
        Some(s) if s < 90.0 => format!("{s:.0}s ago"),
        Some(s) if s < 5400.0 => format!("{:.0}m ago", s / 60.0),
        Some(s) => format!("{:.1}h ago", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::sample;

    const NOW: f64 = 1_800_000_000.0;

    #[test]
    fn groups_are_headed_by_the_mission_and_hostile_text_is_escaped() {
        let mut s = sample(NOW);
        s.agents[0].name = "<script>x</script>".into();
        let page = render(&s, NOW, None);
        assert!(
            page.contains("<h2 data-cell=\"cell-1\">Operation &lt;Lazarus&gt;<span class=\"cell\" title=\"cell-1\">cell cell-1</span></h2>"),
            "{page}"
        );
        assert!(page.contains("<h2>Gateways</h2>"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"), "{page}");
        // One heading per cell, in the snapshot's order.
        assert_eq!(page.matches("<h2").count(), 2, "{page}");
    }

    #[test]
    fn facts_that_do_not_apply_are_left_out_and_times_say_their_zone() {
        let mut s = sample(NOW);
        s.agents[2].gateway_alive = None;
        s.agents[2].process_alive = None;
        let page = render(&s, NOW, None);
        assert!(!page.contains("n/a"), "{page}");
        assert!(
            page.contains("heartbeat 3s ago · gateway up · process up"),
            "{page}"
        );
        // last sweep 2 s before NOW (1_800_000_000 = 08:00:00 UTC).
        assert!(page.contains("last sweep 2s ago (07:59:58 UTC)"), "{page}");
        assert!(
            page.contains("Times are the pool's clock in UTC."),
            "{page}"
        );
    }

    #[test]
    fn an_agent_that_needs_a_human_says_what_to_do() {
        let mut s = sample(NOW);
        s.agents[1].state = State::Escalated;
        s.agents[2].revive_pending = true;
        let page = render(&s, NOW, None);
        assert_eq!(page.matches("class=\"todo\"").count(), 2, "{page}");
        assert!(page.contains("spent its revive budget"), "{page}");
        assert!(
            page.contains("approve or deny the revive in Telegram"),
            "{page}"
        );
        assert!(
            render(&sample(NOW), NOW, None)
                .matches("class=\"todo\"")
                .count()
                == 0
        );
    }

    #[test]
    fn the_actions_fit_the_state_and_carry_the_token() {
        let mut s = sample(NOW);
        // allegro healthy, bezalel dead, timmy reviving (a gateway).
        s.agents[1].revive_pending = true;
        assert_eq!(
            render(&s, NOW, None).matches("<form").count(),
            0,
            "no token, no forms"
        );
        let page = render(&s, NOW, Some("t0k"));
        let forms: Vec<&str> = page.split("<form").skip(1).collect();
        assert_eq!(forms.len(), 4, "{page}");
        for (form, what) in forms
            .iter()
            .zip(["approve", "deny", "retry", "acknowledge"])
        {
            assert!(
                form.contains("name=\"agent\" value=\"cell-1/bezalel\""),
                "{form}"
            );
            assert!(
                form.contains(&format!("name=\"do\" value=\"{what}\"")),
                "{form}"
            );
            assert!(form.contains("name=\"csrf\" value=\"t0k\""), "{form}");
        }
        s.agents[1].acknowledged_by = Some("ops".into());
        s.agents[1].revive_pending = false;
        let page = render(&s, NOW, Some("t0k"));
        assert!(page.contains("acknowledged by ops"), "{page}");
        assert_eq!(page.matches("<form").count(), 1, "retry only: {page}");
    }
}
