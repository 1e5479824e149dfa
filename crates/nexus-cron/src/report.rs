//! The Night Watch report: the Heartbeat Panel, blockers and the last 24 h
//! of state changes, as Markdown, HTML or `+`/`-` morning lines.

use nexus_stdx::escape_html;
use nexus_stdx::format_duration;

use crate::history::Transition;
use crate::{CheckReport, JobReport, JobStatus};

fn age(j: &JobReport) -> String {
    j.age_seconds
        .map_or_else(|| "never".to_string(), format_duration)
}

fn interval(j: &JobReport) -> String {
    match (&j.schedule, j.interval_seconds) {
        (Some(s), _) => format!("`{s}`"),
        (None, Some(i)) => format_duration(i),
        (None, None) => "?".to_string(),
    }
}

fn ratio(j: &JobReport) -> String {
    j.ratio
        .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

fn icon(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Ok => "✅",
        JobStatus::Running => "⏳",
        JobStatus::Late => "⚠️",
        _ => "❌",
    }
}

/// Escapes a table cell: no pipe or newline may break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The blockers: one sentence per failing job.
pub fn blockers(report: &CheckReport) -> Vec<String> {
    report
        .failures()
        .map(|j| match (j.status, j.age_seconds) {
            (JobStatus::Stale, Some(a)) => format!(
                "cron job `{}` has not succeeded for {} (expected every {})",
                j.job,
                format_duration(a),
                interval(j).trim_matches('`')
            ),
            _ => format!("cron job `{}` is {}: {}", j.job, j.status, j.reason),
        })
        .collect()
}

/// `## Heartbeat Panel` with columns job | status | age | interval | ratio.
pub fn panel_markdown(report: &CheckReport) -> String {
    let mut out = String::from(
        "## Heartbeat Panel\n\n| job | status | age | interval | ratio |\n|---|---|---|---|---|\n",
    );
    for j in &report.jobs {
        out.push_str(&format!(
            "| {} | {} {} | {} | {} | {} |\n",
            cell(&j.job),
            icon(j.status),
            j.status,
            age(j),
            cell(&interval(j)),
            ratio(j)
        ));
    }
    if report.nothing_monitored {
        out.push_str("| *(nothing monitored: no heartbeat files and no registry)* | ❌ | | | |\n");
    }
    out
}

/// The top line: "⚠ N blocker(s)" or all clear (with a warning when files
/// were ignored).
pub fn verdict_line(report: &CheckReport) -> String {
    let n = report.failures().count();
    let ignored = report.ignored.len();
    if report.nothing_monitored {
        "⚠ nothing monitored: no heartbeat files and no registry".to_string()
    } else if n > 0 {
        format!("⚠ {n} blocker(s)")
    } else if ignored > 0 {
        format!(
            "⚠ all {} cron job(s) healthy, {ignored} heartbeat file(s) ignored",
            report.jobs.len()
        )
    } else {
        format!("✅ all {} cron job(s) healthy", report.jobs.len())
    }
}

/// One line per ignored `*.last` file: its escaped path and why.
pub fn ignored_lines(report: &CheckReport) -> Vec<String> {
    report
        .ignored
        .iter()
        .map(|i| format!("heartbeat file ignored: {}: {}", i.path, i.reason))
        .collect()
}

/// The whole Night Watch report in Markdown.
pub fn night_watch_markdown(report: &CheckReport, changes: &[Transition], host: &str) -> String {
    let mut out = format!(
        "# Night Watch: {host}, {}\n\n**{}**\n\n",
        report.checked_at,
        verdict_line(report)
    );
    let b = blockers(report);
    if !b.is_empty() {
        out.push_str("## Blockers\n\n");
        for line in b {
            out.push_str(&format!("- {}\n", line.replace('\n', " ")));
        }
        out.push('\n');
    }
    let hints: Vec<String> = report
        .failures()
        .map(|j| format!("- `{}`: {}\n", j.job, crate::alerts::hint(j)))
        .collect();
    if !hints.is_empty() {
        out.push_str("## What to do\n\n");
        out.push_str(&hints.concat());
        out.push('\n');
    }
    out.push_str(&panel_markdown(report));
    out.push_str("\n## Last 24 h\n\n");
    if changes.is_empty() {
        out.push_str("No state changes.\n");
    }
    for t in changes {
        let from = t.from.map_or("new".to_string(), |s| s.to_string());
        out.push_str(&format!(
            "- {} `{}` {from} → {}: {}\n",
            t.at,
            t.job,
            t.to,
            t.reason.replace('\n', " ")
        ));
    }
    for p in &report.dir_problems {
        out.push_str(&format!("\n⚠ heartbeat directory unreadable: {p}\n"));
    }
    for line in ignored_lines(report) {
        out.push_str(&format!("\n⚠ {}\n", cell(&line)));
    }
    out
}

/// The same report as a standalone HTML page.
pub fn night_watch_html(report: &CheckReport, changes: &[Transition], host: &str) -> String {
    let mut rows = String::new();
    for j in &report.jobs {
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            j.status.as_str().to_lowercase(),
            escape_html(&j.job),
            icon(j.status),
            j.status,
            escape_html(&age(j)),
            escape_html(interval(j).trim_matches('`')),
            escape_html(&ratio(j)),
            escape_html(&j.reason)
        ));
    }
    let blockers: String = blockers(report)
        .iter()
        .map(|b| format!("<li>{}</li>\n", escape_html(b)))
        .collect();
    let ignored: String = ignored_lines(report)
        .iter()
        .map(|l| format!("<p>⚠ {}</p>\n", escape_html(l)))
        .collect();
    let changes: String = changes
        .iter()
        .map(|t| {
            format!(
                "<li>{} <code>{}</code> {} → {}</li>\n",
                escape_html(&t.at),
                escape_html(&t.job),
                t.from.map_or("new".to_string(), |s| s.to_string()),
                t.to
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Night Watch: {h}</title>\
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}\
tr.ok td,tr.running td{{color:#161}}tr.late td{{color:#a60}}tr:not(.ok):not(.running):not(.late) td{{color:#b00}}</style>\
</head><body>\n<h1>Night Watch: {h}, {at}</h1>\n<p><strong>{verdict}</strong></p>\n\
<h2>Blockers</h2>\n<ul>\n{blockers}</ul>\n\
<h2>Heartbeat Panel</h2>\n<table>\n<tr><th>job</th><th>status</th><th>age</th><th>interval</th><th>ratio</th><th>reason</th></tr>\n{rows}</table>\n\
<h2>Last 24 h</h2>\n<ul>\n{changes}</ul>\n{ignored}</body></html>\n",
        h = escape_html(host),
        at = escape_html(&report.checked_at),
        verdict = escape_html(&verdict_line(report)),
    )
}

/// The morning-report layout: `+ job age interval` for healthy jobs, `-`
/// for the rest and for each ignored file.
pub fn morning_lines(report: &CheckReport) -> String {
    let jobs = report.jobs.iter().map(|j| {
        let sign = if j.status.is_healthy() { '+' } else { '-' };
        format!(
            "{sign} {} {} {} {}\n",
            j.job,
            j.status,
            age(j),
            interval(j).trim_matches('`')
        )
    });
    let ignored = ignored_lines(report)
        .into_iter()
        .map(|l| format!("- {l}\n"));
    jobs.chain(ignored).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Found, Registry, Scan, evaluate};
    use nexus_heartbeat::Observation;

    const NOW: f64 = 1_800_000_000.0;

    fn sample() -> CheckReport {
        let reg =
            Registry::parse("[jobs.db_backup]\ninterval = \"1d\"", "r.toml".as_ref()).unwrap();
        let mut scan = Scan::default();
        for (job, age) in [("nightly_watch", 100.0), ("runner_health", 5000.0)] {
            let text = format!(r#"{{"timestamp":{},"interval_seconds":900}}"#, NOW - age);
            scan.jobs.insert(
                job.into(),
                Found {
                    path: format!("/hb/{job}.last").into(),
                    observed: Observation::parse(text.as_bytes(), None).map_err(|reason| {
                        nexus_heartbeat::Problem {
                            state: nexus_heartbeat::State::Corrupt,
                            reason: reason.to_string(),
                        }
                    }),
                    shadowed: vec![],
                },
            );
        }
        evaluate(&reg, &scan, NOW)
    }

    #[test]
    fn panel_lists_failing_first_with_human_durations() {
        let md = panel_markdown(&sample());
        let rows: Vec<_> = md.lines().skip(4).collect();
        assert!(
            rows[0].starts_with("| db_backup | ❌ MISSING | never | 1d 0h | - |"),
            "{md}"
        );
        assert!(
            rows[1].starts_with("| runner_health | ❌ STALE | 1h 23m | 15m 0s | 5.56 |"),
            "{md}"
        );
        assert!(
            rows[2].starts_with("| nightly_watch | ✅ OK | 1m 40s | 15m 0s | 0.11 |"),
            "{md}"
        );
    }

    #[test]
    fn night_watch_has_verdict_blockers_panel_and_history() {
        let r = sample();
        let t = Transition {
            at: r.checked_at.clone(),
            epoch: NOW,
            job: "runner_health".into(),
            from: Some(JobStatus::Ok),
            to: JobStatus::Stale,
            reason: "x".into(),
        };
        let md = night_watch_markdown(&r, std::slice::from_ref(&t), "bezalel");
        assert!(md.contains("**⚠ 2 blocker(s)**"), "{md}");
        assert!(
            md.contains(
                "- cron job `runner_health` has not succeeded for 1h 23m (expected every 15m 0s)"
            ),
            "{md}"
        );
        // Issue 18 item 3: the hint the Telegram message carries too.
        assert!(
            md.contains("## What to do\n\n- `db_backup`: the job never reported")
                && md.contains("\n- `runner_health`: read the job's log"),
            "{md}"
        );
        assert!(md.contains("## Heartbeat Panel"));
        assert!(md.contains("`runner_health` OK → STALE"), "{md}");
        let html = night_watch_html(&r, &[t], "<host>");
        assert!(html.contains("&lt;host&gt;") && !html.contains("<host>"));
        assert!(html.contains("<tr class=\"stale\">"));
    }

    #[test]
    fn morning_lines_use_plus_and_minus() {
        let lines = morning_lines(&sample());
        assert!(
            lines.contains("- runner_health STALE 1h 23m 15m 0s\n"),
            "{lines}"
        );
        assert!(
            lines.contains("+ nightly_watch OK 1m 40s 15m 0s\n"),
            "{lines}"
        );
    }

    #[test]
    fn table_cells_cannot_break_rows() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
