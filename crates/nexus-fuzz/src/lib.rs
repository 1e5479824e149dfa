//! Fuzz targets for every parser of the suite: heartbeat and `.last` files,
//! `cell.json`, `events.jsonl`, the TOML configs (watchdog, probes, pool,
//! cron registry), the pool's seed JSON, Telegram updates, Gitea responses,
//! the pool's `/ping` requests and the name validators.
//!
//! A target is a `fn(&[u8]) -> Verdict` in [`TARGETS`]. It feeds the bytes
//! to the real parser (through a file where the product reads a file) and
//! **panics when an invariant breaks**: the parser panicked, an error does
//! not name the file or field, a document that parsed does not survive a
//! write and re-read, a request wrote outside its directory. The same
//! functions run in three places:
//! - `tests/corpus.rs`: every committed file of `fuzz/corpus/<target>/`
//!   (the regression test; `ok-*` files must be accepted, `bad-*` refused);
//! - `tests/proptest.rs`: random bytes and structure-aware mutations of the
//!   corpus ([`mutate`]), a bounded number of cases per target, in CI;
//! - `fuzz/` (cargo-fuzz, nightly, outside the workspace), over the same corpus.
//!
//! # What this crate must never do
//! - Touch anything outside its per-thread scratch directory.
//! - Talk to the network: the `/ping` router is driven in memory.

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub mod mutate;

/// What a parser made of an input (the invariants are asserted inside the
/// target; this only says which way it went).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed (and round-tripped where the format is written back).
    Accepted,
    /// Refused with an error naming the file or field.
    Refused,
}

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the corpus directory and the cargo-fuzz target.
    pub name: &'static str,
    /// Feeds one input; panics when an invariant breaks.
    pub run: fn(&[u8]) -> Verdict,
    /// Which format its inputs are (drives the structure-aware mutations).
    pub format: mutate::Format,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    t("heartbeat", heartbeat, mutate::Format::Json),
    t("cron_last", cron_last, mutate::Format::Json),
    t("cell_json", cell_json, mutate::Format::Json),
    t("events_jsonl", events_jsonl, mutate::Format::JsonLines),
    t("watchdog_toml", watchdog_toml, mutate::Format::Toml),
    t("probe_toml", probe_toml, mutate::Format::Toml),
    t("pool_toml", pool_toml, mutate::Format::Toml),
    t("pool_seed_json", pool_seed_json, mutate::Format::Json),
    t("cron_registry", cron_registry, mutate::Format::Toml),
    t("telegram_updates", telegram_updates, mutate::Format::Json),
    t("gitea_response", gitea_response, mutate::Format::Json),
    t("ping_request", ping_request, mutate::Format::Bytes),
    t("names", names, mutate::Format::Bytes),
];

const fn t(name: &'static str, run: fn(&[u8]) -> Verdict, format: mutate::Format) -> Target {
    Target { name, run, format }
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs the target called `name` (for the cargo-fuzz harness).
pub fn run(name: &str, data: &[u8]) {
    match target(name) {
        Some(t) => {
            (t.run)(data);
        }
        None => panic!("no fuzz target {name:?}"),
    }
}

/// `fuzz/corpus` at the root of the repository.
pub fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// A fresh, empty directory for one input of `target` (per thread, reused).
/// A harness that cannot create it cannot fuzz: that panics, loudly.
fn scratch(target: &str) -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Some(
                tempfile::Builder::new()
                    .prefix("nexus-fuzz")
                    .tempdir()
                    .unwrap_or_else(|e| panic!("fuzz harness: cannot create a scratch dir: {e}")),
            );
        }
        let base = s
            .as_ref()
            .map(|d| d.path().join(target))
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base)
            .unwrap_or_else(|e| panic!("fuzz harness: cannot create {}: {e}", base.display()));
        base
    })
}

fn put(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(path, data)
        .unwrap_or_else(|e| panic!("fuzz harness: cannot write {}: {e}", path.display()));
}

fn verdict<T, E>(r: &Result<T, E>) -> Verdict {
    if r.is_ok() {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

/// An error message must say which file it is about.
fn names_origin(message: &str, origin: &str, what: &str) {
    assert!(
        message.contains(origin),
        "{what}: the error does not name {origin:?}: {message}"
    );
}

// ----------------------------------------------------------------- heartbeats

/// An agent heartbeat or any legacy form (bare epoch, ISO time, empty file).
fn heartbeat(data: &[u8]) -> Verdict {
    use nexus_heartbeat::{Form, Observation};
    let mut out = Verdict::Refused;
    for mtime in [None, Some(1.7e9)] {
        match Observation::parse(data, mtime) {
            Ok(obs) => {
                out = Verdict::Accepted;
                if let Some(t) = obs.timestamp {
                    assert!(t.is_finite(), "heartbeat: timestamp {t} accepted");
                }
                if let Some(i) = obs.interval_seconds {
                    assert!(i.is_finite() && i > 0.0, "heartbeat: interval {i} accepted");
                }
                let _ = nexus_heartbeat::Progress::between(&obs, &obs);
                if obs.form == Form::Json {
                    let again = serde_json::to_vec(&obs.fields)
                        .map_err(|e| e.to_string())
                        .and_then(|b| Observation::parse(&b, mtime).map_err(|e| e.to_string()))
                        .unwrap_or_else(|e| panic!("heartbeat: rewritten form refused: {e}"));
                    assert_eq!(again, obs, "heartbeat: a rewrite changed the document");
                }
            }
            Err(reason) => assert!(!reason.to_string().is_empty(), "heartbeat: empty reason"),
        }
    }
    // Through a file: the same answer, never a panic.
    let dir = scratch("heartbeat");
    let path = dir.join("agent.json");
    put(&path, data);
    let file = nexus_heartbeat::Observation::read(&path);
    if let Err(p) = &file {
        assert!(!p.reason.is_empty(), "heartbeat file: empty reason");
    }
    out
}

/// A cron job's `<job>.last` record, through the checker's scan and verdict.
fn cron_last(data: &[u8]) -> Verdict {
    let dir = scratch("cron_last");
    put(&dir.join("nightly_backup.last"), data);
    let scan = nexus_cron::scan(std::slice::from_ref(&dir));
    let registry = nexus_cron::Registry::default();
    let report = nexus_cron::evaluate(&registry, &scan, 1.7e9);
    let found = scan
        .jobs
        .get("nightly_backup")
        .unwrap_or_else(|| panic!("cron_last: the record was not found by the scan"));
    assert!(
        !report.jobs.is_empty(),
        "cron_last: a found job is missing from the report"
    );
    verdict(&found.observed)
}

// ---------------------------------------------------------------- mission cell

/// The cell id every `cell_json` seed uses (the directory name must match).
pub const FUZZ_CELL_ID: &str = "0e5c6b1a-3f7d-4c1e-9a2b-5d6e7f8a9b0c";

/// `cell.json`, opened through the store; a manifest that opens must
/// survive the store's own rewrite unchanged.
fn cell_json(data: &[u8]) -> Verdict {
    use nexus_cell::{CellId, CellManifest, CellStore};
    let root = scratch("cell_json");
    let id = CellId::parse(FUZZ_CELL_ID).unwrap_or_else(|e| panic!("fuzz harness: {e}"));
    let store = CellStore::new(&root);
    let path = store.cell_dir(&id).join("cell.json");
    put(&path, data);
    let opened = store.open(&id);
    match &opened {
        Ok(cell) => {
            let m = cell.manifest();
            let bytes = serde_json::to_vec_pretty(m)
                .unwrap_or_else(|e| panic!("cell.json: cannot serialise an opened manifest: {e}"));
            let again: CellManifest = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("cell.json: rewritten manifest refused: {e}"));
            assert_eq!(&again, m, "cell.json: a rewrite changed the manifest");
            again
                .validate(&path)
                .unwrap_or_else(|e| panic!("cell.json: rewritten manifest invalid: {e}"));
        }
        Err(e) => names_origin(&e.to_string(), &root.display().to_string(), "cell.json"),
    }
    verdict(&opened)
}

/// `events.jsonl`: never an error for content, every kept line round-trips,
/// every skipped line has a reason and a real line number.
fn events_jsonl(data: &[u8]) -> Verdict {
    use nexus_cell::{Event, EventLog};
    let dir = scratch("events_jsonl");
    let path = dir.join("events.jsonl");
    put(&path, data);
    let log = EventLog::read(&path)
        .unwrap_or_else(|e| panic!("events.jsonl: content made the read fail: {e}"));
    let lines = data.split(|b| *b == b'\n').count();
    for (n, ev) in &log.events {
        assert!(*n >= 1 && *n <= lines, "events.jsonl: line {n} of {lines}");
        let bytes = serde_json::to_vec(ev)
            .unwrap_or_else(|e| panic!("events.jsonl: cannot serialise line {n}: {e}"));
        let again = Event::parse(&bytes)
            .unwrap_or_else(|e| panic!("events.jsonl: line {n} rewritten is refused: {e}"));
        assert_eq!(&again, ev, "events.jsonl: line {n} changed on rewrite");
    }
    for s in &log.skipped {
        assert!(
            s.line >= 1 && s.line <= lines,
            "events.jsonl: skipped line {}",
            s.line
        );
        assert!(
            !s.reason.is_empty(),
            "events.jsonl: skipped without a reason"
        );
    }
    if log.skipped.is_empty() {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

// --------------------------------------------------------------------- configs

/// Writes `data` as `name` and loads it with `load`; an error names the file.
fn config<T, E: std::fmt::Display>(
    target: &str,
    name: &str,
    data: &[u8],
    load: impl Fn(&Path) -> Result<T, E>,
) -> Verdict {
    let path = scratch(target).join(name);
    put(&path, data);
    let r = load(&path);
    if let Err(e) = &r {
        names_origin(&e.to_string(), &path.display().to_string(), target);
    }
    verdict(&r)
}

fn text(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|b| {
            String::from_utf8(b).map_err(|e| format!("{}: not UTF-8: {e}", path.display()))
        })
}

/// `watchdog.toml`.
fn watchdog_toml(data: &[u8]) -> Verdict {
    config("watchdog_toml", "watchdog.toml", data, |p| {
        nexus_watch::WatchdogFile::load(p).map(|_| ())
    })
}

/// A probe file (`[[probe]]` tables).
fn probe_toml(data: &[u8]) -> Verdict {
    config("probe_toml", "probes.toml", data, |p| {
        nexus_probe::ProbeFile::load(p).map(|_| ())
    })
}

fn pool_toml(data: &[u8]) -> Verdict {
    config("pool_toml", "pool.toml", data, |p| {
        nexus_pool::PoolConfig::load(p).map(|_| ())
    })
}

/// The seed's `resurrection_pool.json`.
fn pool_seed_json(data: &[u8]) -> Verdict {
    config("pool_seed_json", "resurrection_pool.json", data, |p| {
        let s = text(p)?;
        nexus_pool::PoolConfig::from_seed_json(&s, &p.display().to_string())
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn cron_registry(data: &[u8]) -> Verdict {
    config("cron_registry", "cron-registry.toml", data, |p| {
        nexus_cron::Registry::load(p).map(|_| ())
    })
}

// ------------------------------------------------------------ remote replies

/// A `getUpdates` result (the array the Bot API envelope carries) or one update.
fn telegram_updates(data: &[u8]) -> Verdict {
    use nexus_notify::Update;
    let many = serde_json::from_slice::<Vec<Update>>(data);
    let one = serde_json::from_slice::<Update>(data);
    if many.is_ok() || one.is_ok() {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

/// Gitea replies: an issue list or an issue (the verdict), and comments
/// and labels from the same bytes (no panic).
fn gitea_response(data: &[u8]) -> Verdict {
    use nexus_gitea::{Comment, Issue, Label};
    let list = serde_json::from_slice::<Vec<Issue>>(data);
    let one = serde_json::from_slice::<Issue>(data);
    let _ = serde_json::from_slice::<Vec<Comment>>(data);
    let _ = serde_json::from_slice::<Vec<Label>>(data);
    if list.is_ok() || one.is_ok() {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

// ------------------------------------------------------------------ /ping

/// The token the `ping_request` target's router expects.
pub const PING_TOKEN: &str = "fuzz-ping-token-0123456789";

thread_local! {
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok();
}

/// One request to the pool's `/ping` routes. Input layout: byte 0 picks
/// the method, byte 1 the token (none, right, wrong, right with spaces),
/// then the request target up to the first `\n`, then the body. Never a
/// 5xx, never a file outside the ping directory, never the token echoed.
fn ping_request(data: &[u8]) -> Verdict {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    let base = scratch("ping_request");
    let dir = base.join("in");
    let _ = std::fs::create_dir_all(&dir);
    let method = match data.first().map(|b| b % 5) {
        Some(0) | None => Method::POST,
        Some(1) => Method::GET,
        Some(2) => Method::PUT,
        Some(3) => Method::DELETE,
        _ => Method::HEAD,
    };
    let token = match data.get(1).map(|b| b % 4) {
        Some(0) | None => None,
        Some(1) => Some(PING_TOKEN.to_string()),
        Some(2) => Some("wrong-token-wrong-token".to_string()),
        _ => Some(format!("  {PING_TOKEN} ")),
    };
    let rest = data.get(2..).unwrap_or_default();
    let (uri, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let uri = String::from_utf8_lossy(uri);
    let mut req = Request::builder().method(method).uri(uri.as_ref());
    if let Some(t) = &token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    // A target the HTTP layer cannot even represent never reaches the pool.
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return Verdict::Refused;
    };
    let app = nexus_pool::ping::router(nexus_pool::ping::PingIngest {
        dir: dir.clone(),
        token: PING_TOKEN.into(),
        default_interval: Duration::from_secs(3600),
        max_body: 1024,
        rate_limit: nexus_pool::ratelimit::RateLimit {
            burst: u32::MAX,
            per_minute: u32::MAX,
        },
        dry_run: false,
    });
    let (status, text) = RUNTIME.with(|rt| {
        let rt = rt
            .as_ref()
            .unwrap_or_else(|| panic!("fuzz harness: no tokio runtime"));
        rt.block_on(async move {
            let resp = app
                .oneshot(req)
                .await
                .unwrap_or_else(|e| panic!("ping: the router failed: {e}"));
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        })
    });
    assert!(
        !status.is_server_error(),
        "ping: {status} for {uri:?}: {text}"
    );
    // The reply may quote the request's own target (a bad job name), so it
    // holds the token only when the sender put it there itself (found by
    // cargo-fuzz: corpus/ping_request/crash-token-in-job-name).
    let sent = [uri.as_bytes(), body, &percent_decode(uri.as_bytes())].concat();
    let echoed = sent
        .windows(PING_TOKEN.len())
        .any(|w| w == PING_TOKEN.as_bytes());
    assert!(
        echoed || !text.contains(PING_TOKEN),
        "ping: the reply shows the token"
    );
    // Nothing outside `in/`, and inside only `<valid job>.last` records.
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        assert_eq!(entry.file_name(), "in", "ping: wrote {:?}", entry.path());
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let job = name
            .strip_suffix(".last")
            .unwrap_or_else(|| panic!("ping: wrote {name:?}, not a .last record"));
        assert!(
            nexus_heartbeat::CronDirs::validate_record_name(job).is_ok() && job.contains('@'),
            "ping: wrote a record for the invalid name {job:?}"
        );
    }
    if status == StatusCode::OK {
        assert!(token.is_some(), "ping: accepted without a token");
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (
            s[i],
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

// ------------------------------------------------------------------ names

/// A name every validator accepted must be exactly one normal path
/// component: no `/`, `..`, `.`, NUL, and not longer than a file name.
fn names(data: &[u8]) -> Verdict {
    let s = String::from_utf8_lossy(data);
    let checks: [(&str, bool); 6] = [
        (
            "job",
            nexus_heartbeat::CronDirs::validate_job_name(&s).is_ok(),
        ),
        (
            "host",
            nexus_stdx::validate_name("host name", &s, 64).is_ok(),
        ),
        (
            "record",
            nexus_heartbeat::CronDirs::validate_record_name(&s).is_ok(),
        ),
        ("agent", nexus_cell::AgentName::new(&s).is_ok()),
        ("cell id", nexus_cell::CellId::parse(&s).is_ok()),
        (
            "checkpoint",
            nexus_cell::validate_checkpoint_name(&s).is_ok(),
        ),
    ];
    let mut out = Verdict::Refused;
    for (what, ok) in checks {
        if !ok {
            continue;
        }
        out = Verdict::Accepted;
        let mut parts = Path::new(s.as_ref()).components();
        assert!(
            matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none(),
            "{what} name {s:?} accepted but is not one path component"
        );
        assert!(
            !s.contains('\0') && !s.contains('/'),
            "{what} name {s:?} accepted"
        );
        assert!(s.len() <= 255, "{what} name of {} bytes accepted", s.len());
        assert!(
            !s.chars().any(char::is_control),
            "{what} name {s:?} with a control character accepted"
        );
    }
    out
}
