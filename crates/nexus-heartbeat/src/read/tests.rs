use super::*;
use proptest::prelude::*;
use std::fs;

const NOW: f64 = 1_800_000_000.0;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}

fn state_of(bytes: &[u8], rule: &Rule) -> Classification {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "hb.json", bytes);
    Classification::read(&p, NOW, rule)
}

#[test]
fn fresh_and_exactly_at_threshold_is_fresh() {
    let rule = Rule::fixed(300.0);
    let c = state_of(
        format!(r#"{{"timestamp":{}}}"#, NOW - 300.0).as_bytes(),
        &rule,
    );
    assert_eq!(c.state, State::Fresh, "{c}");
    assert_eq!(c.age_seconds, Some(300.0));
}

#[test]
fn stale_is_strictly_older() {
    let c = state_of(
        format!(r#"{{"timestamp":{}}}"#, NOW - 300.5).as_bytes(),
        &Rule::fixed(300.0),
    );
    assert_eq!(c.state, State::Stale, "{c}");
    assert!(c.reason.contains("5m 0s ago (max 5m 0s)"), "{c}");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = Classification::read(&dir.path().join("nope.json"), NOW, &Rule::default());
    assert_eq!(c.state, State::Missing);
    assert!(c.to_string().contains("nope.json"), "{c}");
}

#[test]
fn unreadable_directory_and_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let c = Classification::read(dir.path(), NOW, &Rule::default());
    assert_eq!(c.state, State::Unreadable, "{c}");

    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if matches!(status, Ok(s) if s.success()) {
        // Must not block: a FIFO has no writer here.
        let c = Classification::read(&fifo, NOW, &Rule::default());
        assert_eq!(c.state, State::Unreadable, "{c}");
    }
}

#[test]
fn unreadable_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "hb.json", br#"{"timestamp":1}"#);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&p).is_ok() {
        // Running as root: permissions do not apply. Use a path under a file.
        let c = Classification::read(&p.join("x"), NOW, &Rule::default());
        assert_eq!(c.state, State::Unreadable, "{c}");
        return;
    }
    let c = Classification::read(&p, NOW, &Rule::default());
    assert_eq!(c.state, State::Unreadable, "{c}");
}

#[test]
fn corrupt_forms_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (b"{not json", "invalid JSON"),
        (b"[1,2]", "array"),
        (br#"{"timestamp":"soon"}"#, "field `timestamp`"),
        (br#"{"timestamp":true}"#, "found a boolean"),
        (
            br#"{"timestamp":1,"interval_seconds":-5}"#,
            "field `interval_seconds`",
        ),
        (br#"{"timestamp":1,"interval":{}}"#, "field `interval`"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"hello", "not JSON"),
        (b"1e999", "not finite"),
        (b"\"yesterday\"", "not an ISO-8601"),
    ];
    for (bytes, needle) in cases {
        let c = state_of(bytes, &Rule::default());
        assert_eq!(c.state, State::Corrupt, "{c}");
        assert!(c.reason.contains(needle), "{needle:?} not in {c}");
    }
}

#[test]
fn huge_file_is_corrupt_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.json");
    let f = fs::File::create(&p).unwrap();
    f.set_len(Observation::MAX_FILE_BYTES * 64).unwrap(); // sparse: 64 MiB, no disk used
    let c = Classification::read(&p, NOW, &Rule::default());
    assert_eq!(c.state, State::Corrupt);
    assert!(c.reason.contains("limit"), "{c}");
}

#[test]
fn from_the_future_beyond_tolerance() {
    let rule = Rule::fixed(300.0);
    let c = state_of(
        format!(r#"{{"timestamp":{}}}"#, NOW + 301.0).as_bytes(),
        &rule,
    );
    assert_eq!(c.state, State::FromTheFuture, "{c}");
    assert!(c.reason.contains("clock skew"));
    // Within tolerance it is fresh.
    let c = state_of(
        format!(r#"{{"timestamp":{}}}"#, NOW + 299.0).as_bytes(),
        &rule,
    );
    assert_eq!(c.state, State::Fresh, "{c}");
}

#[test]
fn missing_timestamp_is_epoch_zero_stale() {
    let c = state_of(br#"{"pid":1,"cycle":2}"#, &Rule::default());
    assert_eq!(c.state, State::Stale);
    assert_eq!(c.age_seconds, Some(NOW));
    assert!(c.reason.contains("`timestamp`"), "{c}");
}

#[test]
fn legacy_forms() {
    let rule = Rule::fixed(60.0);
    let c = state_of(format!("{}\n", NOW - 10.0).as_bytes(), &rule);
    assert_eq!(
        (c.state, c.observation.unwrap().form),
        (State::Fresh, Form::BareNumber)
    );

    let c = state_of(b"2027-01-15T08:00:00Z", &rule);
    assert_eq!(c.observation.as_ref().unwrap().form, Form::IsoString);
    assert_eq!(c.observation.unwrap().timestamp, Some(1_800_000_000.0));

    let c = state_of(b"\"2027-01-15 08:00:00\"", &rule);
    assert_eq!(c.observation.unwrap().form, Form::IsoString);

    let c = state_of(
        br#"{"timestamp":"2027-01-15T08:00:00+00:00","interval":3600}"#,
        &rule,
    );
    let obs = c.observation.unwrap();
    assert_eq!(obs.interval_seconds, Some(3600.0));
    assert_eq!(obs.timestamp, parse_iso("2027-01-15T08:00:00Z"));

    // Empty touch file: the mtime is the beat.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "job.last", b"");
    let c = Classification::read(&p, nexus_stdx::now_epoch(), &rule);
    assert_eq!(c.state, State::Fresh, "{c}");
    assert_eq!(c.observation.unwrap().form, Form::Empty);
}

#[test]
fn iso_parsing() {
    assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(parse_iso("1970-01-01T01:00:00+01:00"), Some(0.0));
    assert_eq!(parse_iso("1970-01-01T00:01:00"), Some(60.0));
    assert_eq!(parse_iso("1970-01-01 00:00:01.5Z"), Some(1.5));
    assert_eq!(parse_iso("1970-01-01"), None);
    assert_eq!(parse_iso("ééééééééééé"), None);
}

#[test]
fn cron_interval_doubles() {
    let rule = Rule::default();
    let doc = |age: f64| {
        format!(
            r#"{{"job":"j","timestamp":{},"interval_seconds":60}}"#,
            NOW - age
        )
    };
    assert_eq!(state_of(doc(120.0).as_bytes(), &rule).state, State::Fresh);
    let c = state_of(doc(121.0).as_bytes(), &rule);
    assert_eq!((c.state, c.max_age_seconds), (State::Stale, 120.0));
}

#[test]
fn failed_runs_are_explained() {
    let c = state_of(
        br#"{"job":"j","interval_seconds":60,"status":"failed","exit_code":3}"#,
        &Rule::default(),
    );
    assert_eq!(c.state, State::Stale);
    assert!(
        c.reason.contains("never succeeded") && c.reason.contains("exit code 3"),
        "{c}"
    );
}

#[test]
fn many_keeps_order_and_answers_for_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..1000 {
        let body = match i % 3 {
            0 => format!(r#"{{"timestamp":{}}}"#, NOW - i as f64),
            1 => "junk".to_string(),
            _ => continue,
        };
        paths.push(write(dir.path(), &format!("{i}.json"), body.as_bytes()));
    }
    paths.push(dir.path().join("missing.json"));
    let out = Classification::read_many(&paths, NOW, &Rule::fixed(500.0));
    assert_eq!(out.len(), paths.len());
    for (p, c) in paths.iter().zip(&out) {
        assert_eq!(&c.path, p);
    }
    assert_eq!(out.last().unwrap().state, State::Missing);
    let fresh = out.iter().filter(|c| c.state == State::Fresh).count();
    assert_eq!(fresh, (0..=500).filter(|i| i % 3 == 0).count());
}

#[test]
fn progress_between_observations() {
    let obs = |seq: Option<u64>, boot: &str| {
        let mut fields = Map::new();
        if let Some(s) = seq {
            fields.insert("seq".into(), s.into());
        }
        fields.insert("boot_id".into(), boot.into());
        Observation {
            form: Form::Json,
            timestamp: Some(1.0),
            interval_seconds: None,
            mtime: None,
            fields,
        }
    };
    assert_eq!(
        Progress::between(&obs(Some(1), "a"), &obs(Some(4), "a")),
        Progress::Advanced { writes: 3 }
    );
    assert_eq!(
        Progress::between(&obs(Some(4), "a"), &obs(Some(4), "a")),
        Progress::Unchanged
    );
    assert_eq!(
        Progress::between(&obs(Some(4), "a"), &obs(Some(5), "b")),
        Progress::Rebooted
    );
    assert_eq!(
        Progress::between(&obs(Some(4), "a"), &obs(Some(2), "a")),
        Progress::Regressed
    );
    assert_eq!(
        Progress::between(&obs(None, "a"), &obs(Some(2), "a")),
        Progress::Unknown
    );
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Observation::parse(&bytes, Some(1.0));
    }

    #[test]
    fn parse_never_panics_on_jsonish(text in r#"[\{\}\[\]":,0-9a-z .eE+-]{0,64}"#) {
        let _ = Observation::parse(text.as_bytes(), None);
    }

    #[test]
    fn classify_is_total(ts in proptest::option::of(-1e12f64..1e12), max in 0f64..1e6) {
        let obs = Observation { form: Form::Json, timestamp: ts, interval_seconds: None, mtime: None, fields: Map::new() };
        let c = Classification::of(Path::new("x"), Ok(obs), NOW, &Rule::fixed(max));
        prop_assert!(c.age_seconds.is_some());
    }
}

#[test]
fn read_bounded_reads_whole_files_of_any_size() {
    let dir = tempfile::tempdir().unwrap();
    for len in [
        0,
        1,
        FIRST_READ - 1,
        FIRST_READ,
        FIRST_READ + 1,
        3 * FIRST_READ + 7,
    ] {
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let p = write(dir.path(), &format!("f{len}"), &body);
        let mut f = fs::File::open(&p).unwrap();
        let mut buf = b"leftover from a previous file".to_vec();
        let n = read_bounded(&mut f, &mut buf).unwrap();
        assert_eq!(&buf[..n], &body[..], "len {len}");
    }
}

#[test]
fn endless_devices_are_not_files() {
    let c = Classification::read(Path::new("/dev/zero"), NOW, &Rule::default());
    assert_eq!(c.state, State::Unreadable, "{c}");
    let c = Classification::read(Path::new("/dev/null"), NOW, &Rule::default());
    assert_eq!(c.state, State::Unreadable, "{c}");
}

/// A secret an attacker would like to see quoted in a report or an issue.
const SECRET: &str = "GITEA_TOKEN=s3cr3t-canary-0123456789";

fn no_secret(what: &str, text: &str) {
    assert!(!text.contains("s3cr3t"), "{what} quotes the secret: {text}");
}

#[test]
fn a_symlinked_heartbeat_is_reported_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = write(dir.path(), "secrets.env", SECRET.as_bytes());
    // A target that would even pass as a fresh heartbeat.
    let valid = write(
        dir.path(),
        "valid.json",
        format!(r#"{{"timestamp": {NOW}, "model": "{SECRET}"}}"#).as_bytes(),
    );
    for (name, target) in [
        ("secret.json", secrets.as_path()),
        ("valid.json.link", valid.as_path()),
        ("dangling.json", Path::new("/nonexistent/heartbeat.json")),
    ] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let c = Classification::read(&link, NOW, &Rule::default());
        assert_eq!(c.state, State::Unreadable, "{c}");
        assert!(c.reason.contains("symbolic link, not followed"), "{c}");
        assert!(c.observation.is_none());
        no_secret("classify_file", &c.to_string());
        let g = Glance::read(&link, NOW, &Rule::default());
        assert_eq!((g.state, g.pid), (State::Unreadable, None), "{g:?}");
        no_secret("glance_path", &format!("{g:?}"));
        let many = Classification::read_many(&[&link], NOW, &Rule::default());
        assert_eq!(many[0].state, State::Unreadable);
        no_secret("classify_many", &many[0].to_string());
    }
    // The fallback for targets whose O_NOFOLLOW is unknown says the same.
    let link = dir.path().join("secret.json");
    let p = open_heartbeat_with(&link, None).unwrap_err();
    assert_eq!(p.state, State::Unreadable);
    assert!(p.reason.contains("symbolic link, not followed"), "{p:?}");
}

#[test]
fn an_invalid_file_is_quoted_by_a_short_sanitised_sample_at_most() {
    let dir = tempfile::tempdir().unwrap();
    // A value that used to be quoted whole, the secret past the sample.
    let long = format!(
        r#"{{"timestamp": 1, "interval": "every {}{SECRET}"}}"#,
        "x".repeat(40)
    );
    let c = state_of(long.as_bytes(), &Rule::default());
    assert_eq!(c.state, State::Corrupt, "{c}");
    assert!(c.reason.contains("field `interval`"), "{c}");
    assert!(
        c.reason
            .contains(r#"starts with "{\"timestamp\": 1, \"interval\": \"ev""#),
        "{c}"
    );
    no_secret("the reason", &c.reason);
    // Not JSON at all: only the sample, and only up to the first
    // character that is not printable ASCII (an escape sequence, a newline).
    let c = state_of(format!("hello\x1b[2J{SECRET}").as_bytes(), &Rule::default());
    assert_eq!(c.state, State::Corrupt, "{c}");
    assert!(c.reason.ends_with(r#"; starts with "hello""#), "{c}");
    let c = state_of(b"\xff\xfe binary", &Rule::default());
    assert!(!c.reason.contains("starts with"), "{c}");
    // Parsing bytes (no file, no owner to check) never quotes them.
    let e = Observation::parse(format!("nope {SECRET}").as_bytes(), None).unwrap_err();
    assert_eq!(e, ParseError::UnknownForm);
    assert!(!e.to_string().contains("nope"), "{e}");
    let e = Observation::parse(format!("\"{SECRET}\"").as_bytes(), None).unwrap_err();
    no_secret("a parse error", &e.to_string());
    let e =
        Observation::parse(format!(r#"{{"timestamp": "{SECRET}"}}"#).as_bytes(), None).unwrap_err();
    assert_eq!(
        e,
        ParseError::Field {
            field: "timestamp",
            problem: FieldProblem::NotATime
        }
    );
    no_secret("a parse error", &e.to_string());
    let _ = dir;
}

#[test]
fn content_of_a_file_not_owned_as_expected_is_never_quoted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{SECRET} and more");
    let quoted = |p: &Path| {
        let c = Classification::read(p, NOW, &Rule::default());
        assert_eq!(c.state, State::Corrupt, "{c}");
        c.reason.contains("GITEA_TOKEN=s3cr3t")
    };
    let plain = write(dir.path(), "plain.json", body.as_bytes());
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(quoted(&plain), "the owner's own world-readable file");
    // Readable by its owner only: whatever it holds is not for a report.
    let private = write(dir.path(), "private.json", body.as_bytes());
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!quoted(&private));
    // A second name for a file that lives elsewhere.
    let linked = dir.path().join("hardlink.json");
    fs::hard_link(&plain, &linked).unwrap();
    assert!(!quoted(&linked));
    assert!(!quoted(&plain), "it has two names now");
    // Owned by someone other than its directory's owner.
    let other = write(dir.path(), "other.json", body.as_bytes());
    fs::set_permissions(&other, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&other, Some(65534), Some(65534))
        .expect("chown to nobody (the tests run as root)");
    assert!(!quoted(&other));
    // A file opened by the caller: its directory is unknown, so no sample.
    let mut f = fs::File::open(write(dir.path(), "opened.json", body.as_bytes())).unwrap();
    let p = Observation::of_file(&mut f).unwrap_err();
    assert_eq!(p.state, State::Corrupt);
    no_secret("a file opened by the caller", &p.reason);
}

#[test]
fn a_fifo_is_never_read_as_content_or_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hb.json");
    mkfifo(&fifo);
    // Held open read-write, so what is written waits in the pipe for the
    // checker's read.
    let mut pipe = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    std::io::Write::write_all(&mut pipe, SECRET.as_bytes()).unwrap();
    let c = Classification::read(&fifo, NOW, &Rule::default());
    assert_eq!(c.state, State::Unreadable, "{c}");
    assert!(c.reason.contains("not a regular file (a FIFO)"), "{c}");
    no_secret("a FIFO's verdict", &c.reason);
    let g = Glance::read(&fifo, NOW, &Rule::default());
    assert_eq!(g.state, State::Unreadable, "{g:?}");
    drop(pipe);
}

#[test]
fn the_open_without_known_flags_checks_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "hb.json",
        format!(r#"{{"timestamp":{NOW}}}"#).as_bytes(),
    );
    let mut f = open_heartbeat_with(&p, None).unwrap();
    assert!(Observation::of_file(&mut f).is_ok());
    let p = open_heartbeat_with(dir.path(), None).unwrap_err();
    assert_eq!(
        (p.state, p.reason.as_str()),
        (State::Unreadable, "not a regular file")
    );
    let p = open_heartbeat_with(&dir.path().join("none"), None).unwrap_err();
    assert_eq!(p.state, State::Missing);
}
