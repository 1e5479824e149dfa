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

use crate::dashboard::{HistoryView, Row};
use crate::view::{AgentView, PoolSnapshot};
use nexus_history::{Kind, Uptime};
use nexus_revive::State;

/// The page's style sheet (no external resources: the page works offline
/// and under a strict Content-Security-Policy of `style-src 'unsafe-inline'`).
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222;overflow-wrap:anywhere}\
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
.ack{color:#555;font-size:.85em}\
.bars{display:flex;gap:1em;flex-wrap:wrap;font-size:.8em;color:#555;margin:.3em 0}\
.bar{display:flex;width:14em;max-width:100%;height:.9em;border-radius:3px;overflow:hidden;background:#eee;margin-top:.1em}\
.bar span{display:block;height:100%}.bar .u{background:#2a7}.bar .p{background:#d90}\
.bar .d{background:#c33}.bar .n{background:#ddd}\
.subject{border:1px solid #ddd;border-radius:6px;padding:.4em .6em;margin:.4em 0;background:#fff}\
.subject .name{font-weight:bold}.history-error{color:#a33}";

/// The script that shows every `<time>` in the viewer's zone, labelled
/// (served as `/page.js`; without it the page shows UTC, labelled).
pub(crate) const SCRIPT: &str = r#"(function(){
var zone=Intl.DateTimeFormat().resolvedOptions().timeZone||"local time";
var today=new Date().toDateString();
document.querySelectorAll("time[datetime]").forEach(function(t){
var d=new Date(t.getAttribute("datetime"));if(isNaN(d))return;
var o={hour:"2-digit",minute:"2-digit",second:"2-digit",hour12:false,timeZoneName:"short"};
if(d.toDateString()!==today){o.month="short";o.day="numeric";}
t.textContent=d.toLocaleString([],o);t.title=t.getAttribute("datetime");t.dataset.local="1";});
var z=document.getElementById("zone");
if(z){z.textContent="Times are in your time zone ("+zone+").";z.dataset.local="1";}
})();
"#;

/// Renders the status page of snapshot `s` at epoch time `now`; with
/// `csrf` (the actions' token), with the action buttons; with `history`
/// (`[history]`), with uptime bars and the cron jobs and watchdog checks.
pub fn render(
    s: &PoolSnapshot,
    now: f64,
    csrf: Option<&str>,
    history: Option<&HistoryView>,
) -> String {
    render_with(s, now, csrf, history, true)
}

/// [`render`]; without `refresh`, the page does not reload itself every
/// 5 s (`GET /?refresh=0`: to read it at leisure, or to script it).
pub fn render_with(
    s: &PoolSnapshot,
    now: f64,
    csrf: Option<&str>,
    history: Option<&HistoryView>,
    refresh: bool,
) -> String {
    let unhealthy = s.unhealthy();
    let last_sweep = if s.last_sweep_at > 0.0 {
        html! { (age(Some(now - s.last_sweep_at))) " (" (when(s.last_sweep_at)) ")" }
    } else {
        html! { "pending" }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh {
                    meta http-equiv="refresh" content="5";
                }
                title { "Resurrection pool: " (s.agents.len()) " agent(s), " (unhealthy) " unhealthy" }
                style { (PreEscaped(STYLE)) }
                script src="/page.js" defer {}
            }
            body {
                h1 { "Resurrection pool" }
                p.summary {
                    (s.agents.len()) " agent(s), " (unhealthy) " unhealthy; last sweep " (last_sweep)
                    " (took " (format!("{:.0}", s.last_sweep_seconds * 1000.0)) " ms); "
                    (s.sweeps) " sweep(s)"
                }
                p #zone .zone { "Times are UTC (the pool's clock)." }
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
                @if let Some(e) = history.and_then(|h| h.error.as_deref()) {
                    p.history-error { "history: " (e) }
                }
                @for group in groups(&s.agents) {
                    (heading(group[0]))
                    @for a in group {
                        (agent(a, csrf, history.and_then(|h| h.agents.get(&a.key()))))
                    }
                }
                @if let Some(h) = history {
                    (subjects("Cron jobs", Kind::Cron, &h.cron, now))
                    (subjects("Watchdog checks", Kind::Check, &h.checks, now))
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

fn agent(a: &AgentView, csrf: Option<&str>, row: Option<&Row>) -> Markup {
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
            @if let Some(r) = row {
                (bars(r))
            }
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
                ul.events title="newest first" {
                    @for e in a.last_events.iter().take(5) {
                        li { (when(e.at)) " " (e.text) }
                    }
                }
            }
        }
    }
}

/// A `<time>` of epoch seconds `epoch`: `HH:MM:SS UTC`, turned into the
/// viewer's zone by [`SCRIPT`].
fn when(epoch: f64) -> Markup {
    let iso = nexus_stdx::rfc3339(epoch);
    html! { time datetime=(iso) { (crate::http::clock(epoch)) " UTC" } }
}

/// The 24-hour and 7-day bars of a subject, each with its uptime %.
fn bars(r: &Row) -> Markup {
    html! {
        div.bars {
            (bar("24 h", "day", &r.day))
            (bar("7 d", "week", &r.week))
        }
    }
}

/// One bar: runs of equal buckets as one span each (`u` up, `p` partly,
/// `d` down, `n` unknown), its width the run's length.
fn bar(label: &str, which: &str, u: &Uptime) -> Markup {
    let pct = match u.percent {
        Some(p) => format!("{p:.2} % up"),
        None => "no data".to_string(),
    };
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for b in &u.buckets {
        let class = match b {
            None => "n",
            Some(f) if *f >= 0.999 => "u",
            Some(f) if *f > 0.0 => "p",
            Some(_) => "d",
        };
        match runs.last_mut() {
            Some((c, n)) if *c == class => *n += 1,
            _ => runs.push((class, 1)),
        }
    }
    html! {
        div data-bar=(which) data-percent=[u.percent.map(|p| format!("{p:.2}"))] {
            (label) ": " (pct)
            div.bar title=(format!("{label}: {pct}")) {
                @for (class, n) in runs {
                    span class=(class) style=(format!("flex:{n}")) {}
                }
            }
        }
    }
}

/// The page's class for a cron job's or a check's state.
pub(crate) fn state_class(kind: Kind, state: &str) -> &'static str {
    match (kind, state) {
        (Kind::Cron, "LATE") | (Kind::Check, "WARNING") => "degraded",
        _ => match nexus_history::is_up(kind, state) {
            Some(true) => "healthy",
            Some(false) => "dead",
            None => "unknown",
        },
    }
}

/// The cron jobs or checks of the history, by group (host).
fn subjects(title: &str, kind: Kind, rows: &[Row], now: f64) -> Markup {
    let mut groups: Vec<&[Row]> = Vec::new();
    let mut rest = rows;
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.subject.group == first.subject.group)
            .count();
        groups.push(&rest[..n]);
        rest = &rest[n..];
    }
    html! {
        @for g in groups {
            h2 data-kind=(kind.as_str()) { (title) " on " (g[0].subject.group) }
            @for r in g {
                @let name = display_name(&r.subject.subject, &r.subject.group);
                @let class = state_class(kind, &r.subject.state);
                div.subject data-subject=(r.subject.subject) data-state=(class) {
                    span.name { (name) }
                    span class={ "state " (class) } { (r.subject.state) }
                    div.facts {
                        "since " (when(r.subject.at_ms as f64 / 1000.0))
                        " · checked " (age(Some(now - r.subject.seen_ms as f64 / 1000.0)))
                    }
                    @if !r.subject.reason.is_empty() {
                        div.reason { "why: " (r.subject.reason) }
                    }
                    (bars(r))
                    @if !r.recent.is_empty() {
                        ul.events title="newest first" {
                            @for e in r.recent.iter().take(3) {
                                li {
                                    (when(e.at_ms as f64 / 1000.0)) " "
                                    @if !e.old_state.is_empty() { (e.old_state) " → " }
                                    (e.new_state) ": " (e.reason)
                                    @if !e.actor.is_empty() { " (by " (e.actor) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `job@host` shown as `job` under its host's heading.
fn display_name<'a>(subject: &'a str, group: &str) -> &'a str {
    subject
        .strip_suffix(group)
        .and_then(|s| s.strip_suffix('@'))
        .filter(|s| !s.is_empty())
        .unwrap_or(subject)
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
pub(crate) fn todo(a: &AgentView) -> Option<&'static str> {
    if a.revive_pending {
        return Some(
            "approve or deny the revive in Telegram (the request names this agent); \
             without an answer it expires and the agent stays down",
        );
    }
    match a.state {
        State::Escalated => Some(
            "the pool has spent its revive budget (an `auto` agent is still retried on its slow \
             lane; `ask` and `never` are not); fix what \"why\" names (the agent's output is in its cell's logs/<agent>.log) and it \
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
        let page = render(&s, NOW, None, None);
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
        let page = render(&s, NOW, None, None);
        assert!(!page.contains("n/a"), "{page}");
        assert!(
            page.contains("heartbeat 3s ago · gateway up · process up"),
            "{page}"
        );
        // last sweep 2 s before NOW (1_800_000_000 = 08:00:00 UTC): a
        // labelled UTC time the script turns into the viewer's zone.
        assert!(
            page.contains(
                "last sweep 2s ago (<time datetime=\"2027-01-15T07:59:58Z\">07:59:58 UTC</time>)"
            ),
            "{page}"
        );
        assert!(
            page.contains(
                "<li><time datetime=\"2027-01-15T07:59:00Z\">07:59:00 UTC</time> agent_dead</li>"
            ),
            "{page}"
        );
        assert!(
            page.contains("id=\"zone\">Times are UTC (the pool's clock).</p>"),
            "{page}"
        );
        assert!(page.contains("<script src=\"/page.js\" defer></script>"));
    }

    #[test]
    fn an_agent_that_needs_a_human_says_what_to_do() {
        let mut s = sample(NOW);
        s.agents[1].state = State::Escalated;
        s.agents[2].revive_pending = true;
        let page = render(&s, NOW, None, None);
        assert_eq!(page.matches("class=\"todo\"").count(), 2, "{page}");
        assert!(page.contains("spent its revive budget"), "{page}");
        assert!(
            page.contains("approve or deny the revive in Telegram"),
            "{page}"
        );
        assert!(
            render(&sample(NOW), NOW, None, None)
                .matches("class=\"todo\"")
                .count()
                == 0
        );
    }

    fn row(kind: Kind, group: &str, name: &str, state: &str, day: Vec<Option<f64>>) -> Row {
        let at_ms = (NOW * 1000.0) as i64 - 3_600_000;
        Row {
            subject: nexus_history::Subject {
                kind,
                group: group.into(),
                subject: name.into(),
                state: state.into(),
                reason: "silent for more than 2x <its> interval".into(),
                at_ms,
                seen_ms: at_ms + 3_000_000,
            },
            recent: vec![nexus_history::Event {
                at_ms,
                kind,
                group: group.into(),
                subject: name.into(),
                old_state: "OK".into(),
                new_state: state.into(),
                reason: "went quiet".into(),
                actor: String::new(),
            }],
            day: Uptime {
                buckets: day,
                percent: Some(87.5),
            },
            week: Uptime::default(),
        }
    }

    /// With the history: each agent's bars (runs of equal buckets), and
    /// the cron jobs and checks under their host, named without it.
    #[test]
    fn the_history_adds_bars_jobs_and_checks() {
        let s = sample(NOW);
        let mut h = HistoryView::default();
        let day = vec![Some(1.0), Some(1.0), Some(0.5), Some(0.0), None];
        let mut agent = row(
            Kind::Agent,
            "Operation <Lazarus>",
            "cell-1/bezalel",
            "dead",
            day.clone(),
        );
        agent.week = Uptime {
            buckets: vec![Some(1.0); 3],
            percent: Some(100.0),
        };
        h.agents.insert("cell-1/bezalel".into(), agent);
        h.cron
            .push(row(Kind::Cron, "h1", "backup@h1", "STALE", day.clone()));
        h.checks
            .push(row(Kind::Check, "h1", "disk@h1", "WARNING", day));
        let page = render(&s, NOW, None, Some(&h));
        let card = page
            .split("data-agent=\"bezalel\"")
            .nth(1)
            .unwrap()
            .split("data-agent=")
            .next()
            .unwrap();
        assert!(
            card.contains("<div data-bar=\"day\" data-percent=\"87.50\">24 h: 87.50 % up<div class=\"bar\" title=\"24 h: 87.50 % up\"><span class=\"u\" style=\"flex:2\"></span><span class=\"p\" style=\"flex:1\"></span><span class=\"d\" style=\"flex:1\"></span><span class=\"n\" style=\"flex:1\"></span></div></div>"),
            "{card}"
        );
        assert!(card.contains("7 d: 100.00 % up"), "{card}");
        assert_eq!(page.matches("data-bar=\"day\"").count(), 3, "{page}");
        assert!(
            page.contains("<h2 data-kind=\"cron\">Cron jobs on h1</h2>"),
            "{page}"
        );
        assert!(
            page.contains("<h2 data-kind=\"check\">Watchdog checks on h1</h2>"),
            "{page}"
        );
        assert!(
            page.contains("data-subject=\"backup@h1\" data-state=\"dead\"><span class=\"name\">backup</span><span class=\"state dead\">STALE</span>"),
            "{page}"
        );
        assert!(
            page.contains("data-subject=\"disk@h1\" data-state=\"degraded\""),
            "{page}"
        );
        assert!(
            page.contains("why: silent for more than 2x &lt;its&gt; interval"),
            "{page}"
        );
        assert!(page.contains("UTC</time> OK → STALE: went quiet"), "{page}");
        assert!(page.contains("checked 10m ago"), "{page}");
        // Without the history: none of it.
        let bare = render(&s, NOW, None, None);
        assert!(
            !bare.contains("data-bar") && !bare.contains("Cron jobs"),
            "{bare}"
        );
        // A history file that cannot be read is said.
        h.error = Some("history database /x: not a database".into());
        assert!(
            render(&s, NOW, None, Some(&h))
                .contains("history: history database /x: not a database")
        );
    }

    #[test]
    fn the_page_reloads_itself_unless_asked_not_to() {
        let s = sample(NOW);
        let meta = "<meta http-equiv=\"refresh\" content=\"5\">";
        assert!(render(&s, NOW, None, None).contains(meta));
        assert!(!render_with(&s, NOW, None, None, false).contains(meta));
    }

    #[test]
    fn the_actions_fit_the_state_and_carry_the_token() {
        let mut s = sample(NOW);
        // allegro healthy, bezalel dead, timmy reviving (a gateway).
        s.agents[1].revive_pending = true;
        assert_eq!(
            render(&s, NOW, None, None).matches("<form").count(),
            0,
            "no token, no forms"
        );
        let page = render(&s, NOW, Some("t0k"), None);
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
        let page = render(&s, NOW, Some("t0k"), None);
        assert!(page.contains("acknowledged by ops"), "{page}");
        assert_eq!(page.matches("<form").count(), 1, "retry only: {page}");
    }
}
