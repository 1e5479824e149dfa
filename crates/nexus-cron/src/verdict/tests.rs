use super::*;
use crate::registry::Registry;
use nexus_heartbeat::{Observation, Problem, State};
use std::path::Path;

const NOW: f64 = 1_800_000_000.0; // 2027-01-15T08:00:00Z

fn found(text: &str) -> Found {
    Found {
        path: PathBuf::from("/hb/job.last"),
        observed: Observation::parse(text.as_bytes(), Some(NOW - 10.0)).map_err(|reason| Problem {
            state: State::Corrupt,
            reason: reason.to_string(),
        }),
        shadowed: vec![],
    }
}

fn registry(toml: &str) -> Registry {
    Registry::parse(toml, Path::new("reg.toml")).unwrap()
}

fn judge_at(reg: &Registry, name: &str, text: Option<&str>, now: f64) -> JobReport {
    let f = text.map(found);
    evaluate_job(
        name,
        reg.jobs.get(name),
        f.as_ref(),
        &reg.settings,
        &[PathBuf::from("/hb")],
        now,
    )
}

fn record(age: f64, interval: u64) -> String {
    format!(
        r#"{{"job":"job","timestamp":{},"interval_seconds":{interval},"status":"ok"}}"#,
        NOW - age
    )
}

#[test]
fn twice_the_interval_is_the_boundary() {
    let reg = Registry::default();
    let ok = judge_at(&reg, "job", Some(&record(590.0, 300)), NOW);
    assert_eq!(ok.status, JobStatus::Ok, "{}", ok.reason);
    assert_eq!(ok.ratio, Some(590.0 / 300.0));
    let edge = judge_at(&reg, "job", Some(&record(600.0, 300)), NOW);
    assert_eq!(edge.status, JobStatus::Ok, "exactly 2x is still fresh");
    let stale = judge_at(&reg, "job", Some(&record(610.0, 300)), NOW);
    assert_eq!(stale.status, JobStatus::Stale, "{}", stale.reason);
    assert!(
        stale.reason.contains("10m 10s ago") && stale.reason.contains("ratio 2.03"),
        "{}",
        stale.reason
    );
}

#[test]
fn grace_makes_it_late_first() {
    let reg = registry("[defaults]\ngrace = \"60s\"");
    assert_eq!(
        judge_at(&reg, "job", Some(&record(650.0, 300)), NOW).status,
        JobStatus::Late
    );
    assert_eq!(
        judge_at(&reg, "job", Some(&record(661.0, 300)), NOW).status,
        JobStatus::Stale
    );
}

#[test]
fn registry_interval_wins_over_the_file() {
    let reg = registry("[jobs.job]\ninterval = \"1h\"");
    let r = judge_at(&reg, "job", Some(&record(610.0, 300)), NOW);
    assert_eq!(
        (r.status, r.interval_seconds),
        (JobStatus::Ok, Some(3600.0))
    );
}

#[test]
fn missing_error_and_skew() {
    let reg = registry("[jobs.job]\ninterval = 60");
    let r = judge_at(&reg, "job", None, NOW);
    assert_eq!(r.status, JobStatus::Missing);
    assert!(r.reason.contains("job.last in /hb"), "{}", r.reason);

    let mut f = found("{");
    f.observed = Err(Problem {
        state: State::Corrupt,
        reason: "invalid JSON: EOF".into(),
    });
    let r = evaluate_job("job", None, Some(&f), &reg.settings, &[], NOW);
    assert_eq!(r.status, JobStatus::Error);
    assert!(
        r.reason.contains("/hb/job.last corrupt: invalid JSON"),
        "{}",
        r.reason
    );

    let r = judge_at(&reg, "job", Some(&record(-400.0, 60)), NOW);
    assert_eq!(r.status, JobStatus::Skew, "{}", r.reason);
}

#[test]
fn failed_and_running_and_hung() {
    let reg = Registry::default();
    let failed = format!(
        r#"{{"job":"job","timestamp":{},"interval_seconds":3600,"status":"failed","exit_code":2,"finished_at":{}}}"#,
        NOW - 100.0,
        NOW - 5.0
    );
    let r = judge_at(&reg, "job", Some(&failed), NOW);
    assert_eq!((r.status, r.exit_code), (JobStatus::Failed, Some(2)));
    assert!(r.reason.contains("exited with code 2"), "{}", r.reason);

    let running = |started_ago: f64| {
        format!(
            r#"{{"job":"job","timestamp":{},"interval_seconds":3600,"status":"running","started_at":{}}}"#,
            NOW - 4000.0,
            NOW - started_ago
        )
    };
    assert_eq!(
        judge_at(&reg, "job", Some(&running(60.0)), NOW).status,
        JobStatus::Running
    );
    let hung = judge_at(&reg, "job", Some(&running(3601.0)), NOW);
    assert_eq!(hung.status, JobStatus::Failed);
    assert!(hung.reason.contains("never finished"), "{}", hung.reason);
}

#[test]
fn legacy_files_use_the_default_interval() {
    let reg = Registry::default();
    // Empty touch file: its mtime (NOW - 10 here) is the beat.
    let r = judge_at(&reg, "job", Some(""), NOW);
    assert_eq!(
        (r.status, r.interval_seconds),
        (JobStatus::Ok, Some(86_400.0))
    );
    assert!(r.reason.contains("default interval"), "{}", r.reason);
    let r = judge_at(&reg, "job", Some(&format!("{}", NOW - 200_000.0)), NOW);
    assert_eq!(r.status, JobStatus::Stale);
}

#[test]
fn a_scheduled_job_that_missed_its_0300_run() {
    let reg = registry(
        "[jobs.job]\nschedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\nmax_run_time = \"1h\"",
    );
    // 2027-01-15 03:00 Berlin is 02:00Z = NOW - 6h. Last success: the day before, 03:10 Berlin.
    let yesterday = NOW - 6.0 * 3600.0 - 86_400.0 + 600.0;
    let text = format!(r#"{{"job":"job","timestamp":{yesterday},"status":"ok"}}"#);
    let r = judge_at(&reg, "job", Some(&text), NOW);
    assert_eq!(r.status, JobStatus::Stale, "{}", r.reason);
    assert!(
        r.reason
            .contains("missed its scheduled run at 2027-01-15T02:00:00Z"),
        "{}",
        r.reason
    );
    assert_eq!(r.interval_seconds, Some(86_400.0));
    // At 03:30 Berlin the 03:00 run may still be running: OK.
    let r = judge_at(&reg, "job", Some(&text), NOW - 6.0 * 3600.0 + 1800.0);
    assert_eq!(r.status, JobStatus::Ok, "{}", r.reason);
    // Today's run reported at 03:20 Berlin: OK.
    let text = format!(
        r#"{{"job":"job","timestamp":{},"status":"ok"}}"#,
        NOW - 6.0 * 3600.0 + 1200.0
    );
    assert_eq!(
        judge_at(&reg, "job", Some(&text), NOW).status,
        JobStatus::Ok
    );
}

#[test]
fn a_job_whose_file_names_another_job_is_flagged() {
    let r = judge_at(&Registry::default(), "a", Some(&record(10.0, 60)), NOW);
    assert!(
        r.reason.contains(r#"the file says job "job""#),
        "{}",
        r.reason
    );
}

#[test]
fn report_sorts_failing_first_and_never_reads_empty_as_healthy() {
    let reg = registry("[jobs.zz_missing]\ninterval = 60");
    let mut scan = Scan::default();
    scan.jobs.insert("aa_ok".into(), found(&record(1.0, 60)));
    scan.jobs
        .insert("mm_stale".into(), found(&record(1000.0, 60)));
    let r = evaluate(&reg, &scan, NOW);
    let order: Vec<_> = r.jobs.iter().map(|j| (j.job.as_str(), j.status)).collect();
    assert_eq!(
        order,
        [
            ("mm_stale", JobStatus::Stale),
            ("zz_missing", JobStatus::Missing),
            ("aa_ok", JobStatus::Ok)
        ]
    );
    assert_eq!(r.stale, ["mm_stale", "zz_missing"]);
    assert!(!r.healthy());

    let empty = evaluate(&Registry::default(), &Scan::default(), NOW);
    assert!(empty.nothing_monitored && !empty.healthy());
}

#[test]
fn rfc3339_matches_jiff() {
    for epoch in [
        0.0,
        1.5,
        951_782_400.0,
        1_800_000_000.0,
        4_102_444_799.9,
        221_845_391_999.0,
        221_845_392_000.0,
    ] {
        let want = Timestamp::from_second(epoch as i64).unwrap().to_string();
        assert_eq!(nexus_stdx::rfc3339(epoch), want, "{epoch}");
    }
    assert_eq!(nexus_stdx::rfc3339(-1.0), "1969-12-31T23:59:59Z");
}
