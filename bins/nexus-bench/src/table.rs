//! The results and their Markdown tables (pasted as is into
//! docs/PERFORMANCE.md).

use std::fmt::Write as _;

use serde::Serialize;

use crate::measure::{Sample, Summary};

/// Did the program see the fleet as generated?
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

/// One program (ours or the seed) on one case.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Side {
    pub(crate) cmd: String,
    pub(crate) summary: Option<Summary>,
    /// Why it was not run.
    pub(crate) skipped: Option<String>,
    /// Checked on the last finished run.
    pub(crate) check: Option<Check>,
    pub(crate) samples: Vec<Sample>,
}

impl Side {
    pub(crate) fn skipped(why: impl Into<String>) -> Side {
        Side {
            skipped: Some(why.into()),
            ..Side::default()
        }
    }
}

/// One case at one size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) size: String,
    pub(crate) ours: Side,
    pub(crate) seed: Side,
}

/// Cost per agent of one cells size, against the floor.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PerAgent {
    pub(crate) agents: usize,
    /// (whole-process wall - empty-root wall) / agents.
    pub(crate) ours_marginal_us: Option<f64>,
    /// The sweep time the pool reports itself / agents.
    pub(crate) ours_sweep_us: Option<f64>,
    pub(crate) seed_marginal_us: Option<f64>,
}

/// The C floor's per-file costs (medians).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Floor {
    pub(crate) files: usize,
    /// open(full path) + read + parse, one core.
    pub(crate) path_us: f64,
    /// A whole tick: readdir + cell.json + openat of every file, one core.
    pub(crate) tick_us: f64,
}

/// `12.3 ms`, `6.90 s`, `-`.
pub(crate) fn secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s.is_finite() && s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) if s.is_finite() => format!("{s:.2} s"),
        _ => "-".to_string(),
    }
}

/// `5.4 MiB`, `-`.
pub(crate) fn mib(kb: Option<u64>) -> String {
    kb.map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// `seed / ours` as `123x` or `1.5x`.
pub(crate) fn ratio(seed: Option<f64>, ours: Option<f64>) -> String {
    match (seed, ours) {
        (Some(s), Some(o)) if o > 0.0 && s.is_finite() && o.is_finite() => {
            let r = s / o;
            if r >= 10.0 {
                format!("{r:.0}x")
            } else {
                format!("{r:.1}x")
            }
        }
        _ => "-".to_string(),
    }
}

/// `/usr/bin/time` counts CPU in 10 ms steps: 0 means under one step.
pub(crate) const CPU_STEP_S: f64 = 0.01;

/// CPU time; `<10 ms` below the resolution of `/usr/bin/time`.
pub(crate) fn cpu(s: Option<f64>) -> String {
    match s {
        Some(s) if s < CPU_STEP_S / 2.0 => "<10 ms".to_string(),
        other => secs(other),
    }
}

/// `seed / ours` CPU; a lower bound (`>42x`) when ours is under one step.
pub(crate) fn cpu_ratio(seed: Option<f64>, ours: Option<f64>) -> String {
    match (seed, ours) {
        (Some(s), Some(o)) if o < CPU_STEP_S / 2.0 && s >= CPU_STEP_S => {
            format!(">{}", ratio(Some(s), Some(CPU_STEP_S)))
        }
        _ => ratio(seed, ours),
    }
}

fn us(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".to_string(), |v| format!("{v:.1} µs"))
}

fn cells(side: &Side) -> [String; 3] {
    match (&side.skipped, &side.summary) {
        (Some(why), _) => [format!("skipped: {why}"), "-".into(), "-".into()],
        (None, Some(s)) if s.n > 0 => [secs(Some(s.wall_s)), cpu(s.cpu_s), mib(s.maxrss_kb)],
        (None, Some(s)) if s.timed_out > 0 => ["timed out".into(), "-".into(), "-".into()],
        _ => ["-".into(), "-".into(), "-".into()],
    }
}

fn finished(side: &Side) -> Option<&Summary> {
    side.summary.as_ref().filter(|s| s.n > 0)
}

/// The main table: one line per case and size.
pub(crate) fn render_main(rows: &[Row]) -> String {
    let mut t = String::new();
    t.push_str("| case | size | ours wall | ours CPU | ours peak RSS | seed wall | seed CPU | seed peak RSS | seed/ours wall | seed/ours CPU |\n");
    t.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in rows {
        let o = cells(&r.ours);
        let s = cells(&r.seed);
        let (fo, fs) = (finished(&r.ours), finished(&r.seed));
        let rw = ratio(fs.map(|s| s.wall_s), fo.map(|o| o.wall_s));
        let rc = cpu_ratio(fs.and_then(|s| s.cpu_s), fo.and_then(|o| o.cpu_s));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {rw} | {rc} |",
            r.case, r.size, o[0], o[1], o[2], s[0], s[1], s[2]
        );
    }
    t
}

/// What each program saw, against what was generated.
pub(crate) fn render_checks(rows: &[Row]) -> String {
    let mut t = String::new();
    for r in rows {
        for (who, side) in [("ours", &r.ours), ("seed", &r.seed)] {
            if let Some(c) = &side.check {
                let mark = if c.ok { "ok" } else { "MISMATCH" };
                let _ = writeln!(t, "- {} {} ({who}): {mark}: {}", r.case, r.size, c.detail);
            }
        }
    }
    t
}

/// Cases during which other processes used more than `threshold` cores.
pub(crate) fn render_contention(rows: &[Row], threshold: f64) -> String {
    let mut t = String::new();
    for r in rows {
        for (who, side) in [("ours", &r.ours), ("seed", &r.seed)] {
            if let Some(o) = side.summary.as_ref().and_then(|s| s.other_cores_max)
                && o > threshold
            {
                let _ = writeln!(
                    t,
                    "- {} {} ({who}): other processes used up to {o:.2} cores",
                    r.case, r.size
                );
            }
        }
    }
    t
}

/// Cost per agent per sweep, against the C floor's cost per file.
pub(crate) fn render_per_agent(items: &[PerAgent], floor: Option<&Floor>) -> String {
    let mut t = String::new();
    t.push_str("| agents | ours, whole process (µs/agent) | ours, in-sweep (µs/agent) | seed, whole process (µs/agent) | floor tick (µs/file, 1 core) | floor path (µs/file, 1 core) | ours in-sweep / floor tick |\n");
    t.push_str("|--:|--:|--:|--:|--:|--:|--:|\n");
    for p in items {
        let ft = floor.map(|f| f.tick_us);
        let fp = floor.map(|f| f.path_us);
        let r = match (p.ours_sweep_us, ft) {
            (Some(o), Some(f)) if f > 0.0 => format!("{:.2}", o / f),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {r} |",
            p.agents,
            us(p.ours_marginal_us),
            us(p.ours_sweep_us),
            us(p.seed_marginal_us),
            us(ft),
            us(fp),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(wall: f64, cpu: f64, rss: u64) -> Side {
        Side {
            summary: Some(Summary {
                n: 3,
                timed_out: 0,
                wall_s: wall,
                wall_min_s: wall,
                wall_max_s: wall,
                cpu_s: Some(cpu),
                maxrss_kb: Some(rss),
                other_cores_max: None,
            }),
            ..Side::default()
        }
    }

    #[test]
    fn units_and_ratios() {
        assert_eq!(secs(Some(0.0123)), "12.3 ms");
        assert_eq!(secs(Some(6.9)), "6.90 s");
        assert_eq!(secs(None), "-");
        assert_eq!(mib(Some(20_000)), "19.5 MiB");
        assert_eq!(ratio(Some(6.9), Some(0.05)), "138x");
        assert_eq!(ratio(Some(0.06), Some(0.04)), "1.5x");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
        assert_eq!(ratio(None, Some(1.0)), "-");
        assert_eq!(cpu(Some(0.0)), "<10 ms");
        assert_eq!(cpu(Some(0.02)), "20.0 ms");
        assert_eq!(cpu_ratio(Some(0.42), Some(0.0)), ">42x");
        assert_eq!(cpu_ratio(Some(0.42), Some(0.02)), "21x");
        assert_eq!(cpu_ratio(Some(0.0), Some(0.0)), "-");
    }

    #[test]
    fn rows_render_measured_and_skipped() {
        let rows = vec![
            Row {
                case: "pool".into(),
                size: "1000 gateways".into(),
                ours: side(0.05, 0.04, 8192),
                seed: side(6.9, 6.8, 25_000),
            },
            Row {
                case: "pool, 10 % hung".into(),
                size: "1000 gateways".into(),
                ours: side(5.2, 0.05, 8192),
                seed: Side::skipped("predicted >= 500 s > limit 120 s"),
            },
        ];
        let t = render_main(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| pool | 1000 gateways | 50.0 ms | 40.0 ms | 8.0 MiB | 6.90 s | 6.80 s | 24.4 MiB | 138x | 170x |"
        );
        assert_eq!(
            lines[3],
            "| pool, 10 % hung | 1000 gateways | 5.20 s | 50.0 ms | 8.0 MiB | skipped: predicted >= 500 s > limit 120 s | - | - | - | - |"
        );
        // Every line has the header's column count.
        let cols = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cols(l) == cols(lines[0])));
    }

    #[test]
    fn timed_out_and_mismatches_are_visible() {
        let mut ours = side(1.0, 1.0, 1);
        ours.summary.as_mut().unwrap().n = 0;
        ours.summary.as_mut().unwrap().timed_out = 1;
        ours.check = Some(Check {
            ok: false,
            detail: "expected 10 unhealthy, saw 9".into(),
        });
        let rows = vec![Row {
            case: "cells".into(),
            size: "100 agents".into(),
            ours,
            seed: Side::default(),
        }];
        assert!(render_main(&rows).contains("| timed out | - | - |"));
        assert_eq!(render_contention(&rows, 0.25), "");
        let mut busy = rows[0].clone();
        busy.seed = side(1.0, 1.0, 1);
        busy.seed.summary.as_mut().unwrap().other_cores_max = Some(0.8);
        assert_eq!(
            render_contention(&[busy], 0.25),
            "- cells 100 agents (seed): other processes used up to 0.80 cores\n"
        );
        assert_eq!(
            render_checks(&rows),
            "- cells 100 agents (ours): MISMATCH: expected 10 unhealthy, saw 9\n"
        );
    }

    #[test]
    fn per_agent_against_the_floor() {
        let t = render_per_agent(
            &[PerAgent {
                agents: 10_000,
                ours_marginal_us: Some(3.0),
                ours_sweep_us: Some(6.0),
                seed_marginal_us: Some(40.0),
            }],
            Some(&Floor {
                files: 10_000,
                path_us: 5.0,
                tick_us: 6.0,
            }),
        );
        assert!(
            t.ends_with("| 10000 | 3.0 µs | 6.0 µs | 40.0 µs | 6.0 µs | 5.0 µs | 1.00 |\n"),
            "{t}"
        );
    }
}
