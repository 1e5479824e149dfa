//! The checker's Prometheus metrics, written after every check to a file for
//! node_exporter's textfile collector (`--metrics-file`): one series per
//! job and status, the last success and the allowed age, so a dashboard or
//! a rule (docs/prometheus/rules.yml) sees a stale job even when the
//! checker's own alerts cannot get out.

use nexus_metrics::{Exposition, Kind};

use crate::{CheckReport, JobStatus};

const STATUSES: [JobStatus; 8] = [
    JobStatus::Ok,
    JobStatus::Running,
    JobStatus::Late,
    JobStatus::Stale,
    JobStatus::Failed,
    JobStatus::Missing,
    JobStatus::Error,
    JobStatus::Skew,
];

impl CheckReport {
    /// The report in the Prometheus text format, every series labelled with
    /// `host`.
    pub fn metrics(&self, host: &str) -> String {
        let mut e = Exposition::new();
        e.family(
            "nexus_cron_job_status",
            Kind::Gauge,
            "1 for the job's current status, 0 for the others.",
        );
        for j in &self.jobs {
            for st in STATUSES {
                let name = st.as_str().to_lowercase();
                let labels = [("job", j.job.as_str()), ("host", host), ("status", &name)];
                e.sample(
                    "nexus_cron_job_status",
                    &labels,
                    f64::from(u8::from(j.status == st)),
                );
            }
        }
        e.family(
            "nexus_cron_job_last_success_timestamp_seconds",
            Kind::Gauge,
            "When the job last succeeded (epoch seconds; absent: never).",
        );
        for j in &self.jobs {
            if let Some(age) = j.age_seconds {
                e.sample(
                    "nexus_cron_job_last_success_timestamp_seconds",
                    &[("job", j.job.as_str()), ("host", host)],
                    self.checked_at_epoch - age,
                );
            }
        }
        e.family(
            "nexus_cron_job_interval_seconds",
            Kind::Gauge,
            "The job's expected interval (absent: unknown).",
        );
        for j in &self.jobs {
            if let Some(i) = j.interval_seconds {
                e.sample(
                    "nexus_cron_job_interval_seconds",
                    &[("job", j.job.as_str()), ("host", host)],
                    i,
                );
            }
        }
        e.family(
            "nexus_cron_check_last_run_timestamp_seconds",
            Kind::Gauge,
            "When the checker last ran (epoch seconds).",
        )
        .sample(
            "nexus_cron_check_last_run_timestamp_seconds",
            &[("host", host)],
            self.checked_at_epoch,
        )
        .family(
            "nexus_cron_jobs_failing",
            Kind::Gauge,
            "Jobs whose status raises an alert.",
        )
        .sample(
            "nexus_cron_jobs_failing",
            &[("host", host)],
            self.jobs.iter().filter(|j| j.status.is_failure()).count() as f64,
        )
        .family(
            "nexus_cron_ignored_files",
            Kind::Gauge,
            "Files named *.last that cannot be a job's record (a name that is not UTF-8 or not a job name).",
        )
        .sample(
            "nexus_cron_ignored_files",
            &[("host", host)],
            self.ignored.len() as f64,
        );
        e.into_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckReport, JobReport, JobStatus};

    fn job(name: &str, status: JobStatus, age: Option<f64>) -> JobReport {
        JobReport {
            job: name.to_string(),
            status,
            reason: String::new(),
            age_seconds: age,
            interval_seconds: Some(3600.0),
            ratio: None,
            path: None,
            last_run_iso: None,
            exit_code: None,
            schedule: None,
            registered: true,
        }
    }

    #[test]
    fn one_series_per_job_and_status_and_promtool_accepts_them() {
        let report = CheckReport {
            checked_at: String::new(),
            checked_at_epoch: 10_000.0,
            jobs: vec![
                job("nightly", JobStatus::Stale, Some(9000.0)),
                job("never", JobStatus::Missing, None),
            ],
            stale: vec!["nightly".into(), "never".into()],
            dirs: vec![],
            dir_problems: vec![],
            ignored: vec![crate::Ignored {
                path: "/hb/bad\\xff.last".into(),
                reason: "its name is not UTF-8".into(),
            }],
            nothing_monitored: false,
        };
        let text = report.metrics("h1");
        for line in [
            "nexus_cron_job_status{job=\"nightly\",host=\"h1\",status=\"stale\"} 1",
            "nexus_cron_job_status{job=\"nightly\",host=\"h1\",status=\"ok\"} 0",
            "nexus_cron_job_status{job=\"never\",host=\"h1\",status=\"missing\"} 1",
            "nexus_cron_job_last_success_timestamp_seconds{job=\"nightly\",host=\"h1\"} 1000",
            "nexus_cron_job_interval_seconds{job=\"never\",host=\"h1\"} 3600",
            "nexus_cron_check_last_run_timestamp_seconds{host=\"h1\"} 10000",
            "nexus_cron_jobs_failing{host=\"h1\"} 2",
            "nexus_cron_ignored_files{host=\"h1\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(
            !text.contains("last_success_timestamp_seconds{job=\"never\""),
            "a job that never succeeded has no last success"
        );
        nexus_testkit::promtool_check_metrics(&text);
    }
}
