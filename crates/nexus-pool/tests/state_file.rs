//! What the pool finds at its state path when it starts: a FIFO, a
//! truncated file, a `NaN`, a symbolic link, a directory, a file too big to
//! be one. Each is named, set aside as `<name>.corrupt-<UTC time>` in the
//! same directory (a link as a link: its target is never read or moved),
//! and the pool starts with an empty state that it then saves, private.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nexus_pool::{Error, Pool, PoolConfig, PoolOptions, PoolState};

fn config(root: &Path) -> PoolConfig {
    PoolConfig::parse(
        &format!(
            "[pool]\npoll_interval = \"1s\"\nallow_empty = true\n[cells]\nroot = \"{}\"\n",
            root.display()
        ),
        "test",
    )
    .unwrap()
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// Runs `f` on its own thread, so a FIFO that hangs it fails the test
/// (after 5 s) instead of hanging it.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("hung on the state file")
}

fn start(cfg: PoolConfig, state_file: PathBuf, dry_run: bool) -> Result<Pool, Error> {
    bounded(move || {
        Pool::new(
            cfg,
            PoolOptions {
                state_file,
                cells_root: None,
                dry_run,
            },
        )
    })
}

/// The files in `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_state_file_is_named_set_aside_and_the_pool_starts_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cells");
    std::fs::create_dir(&root).unwrap();
    let secret = tmp.path().join("secret.json");
    // A link to a file that even parses as a state: never followed.
    std::fs::write(&secret, br#"{"records": {}}"#).unwrap();
    type Plant = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Plant, &str)> = vec![
        ("fifo", Box::new(mkfifo), "not a regular file (a FIFO)"),
        (
            "truncated",
            Box::new(|p| std::fs::write(p, br#"{"records": {"c/a": {"state": "dea"#).unwrap()),
            "EOF while parsing",
        ),
        (
            "nan",
            Box::new(|p| {
                std::fs::write(
                    p,
                    br#"{"records": {}, "unsent": [{"text": "x", "not_before": NaN}]}"#,
                )
                .unwrap()
            }),
            "expected value",
        ),
        (
            "symlink",
            Box::new({
                let secret = secret.clone();
                move |p| std::os::unix::fs::symlink(&secret, p).unwrap()
            }),
            "a symbolic link, not followed",
        ),
        (
            "directory",
            Box::new(|p| std::fs::create_dir(p).unwrap()),
            "not a regular file (a directory)",
        ),
        (
            "huge",
            Box::new(|p| {
                std::fs::File::create(p)
                    .unwrap()
                    .set_len(nexus_pool::files::MAX_STATE_BYTES + 1)
                    .unwrap()
            }),
            "larger than the 64 MiB limit",
        ),
    ];
    for (what, plant, reason) in cases {
        let dir = tmp.path().join(what);
        std::fs::create_dir(&dir).unwrap();
        let state = dir.join("pool-state.json");
        plant(&state);
        // `--status` and anyone else loading it: an error naming the file.
        let s = state.clone();
        let e = bounded(move || PoolState::load(&s)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::State { .. }), "{what}: {msg}");
        assert!(
            msg.contains(&*state.to_string_lossy()) && msg.contains(reason),
            "{what}: {msg}"
        );
        assert!(!msg.contains("config"), "{what}: {msg}");
        // A dry run leaves it where it is.
        let pool = start(config(&root), state.clone(), true).unwrap();
        drop(pool);
        assert!(
            state.symlink_metadata().is_ok(),
            "{what}: moved in a dry run"
        );
        assert!(named(&dir, "pool-state.json.corrupt-").is_empty(), "{what}");
        // The pool: set aside, empty, then saved as a private file.
        let mut pool = start(config(&root), state.clone(), false)
            .unwrap_or_else(|e| panic!("{what}: the pool did not start: {e}"));
        assert!(pool.state().records.is_empty(), "{what}");
        let aside = named(&dir, "pool-state.json.corrupt-");
        assert_eq!(aside.len(), 1, "{what}: {aside:?}");
        pool.sweep().await;
        let meta = std::fs::symlink_metadata(&state).unwrap();
        assert!(meta.is_file(), "{what}: a new state file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{what}");
        if what == "symlink" {
            assert_eq!(std::fs::read_link(&aside[0]).unwrap(), secret);
        }
    }
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        br#"{"records": {}}"#,
        "a link's target is never touched"
    );
}

/// A second bad file in the same second does not replace the first one
/// set aside.
#[test]
fn setting_aside_never_replaces_an_earlier_file() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("s.json");
    for n in 0..3 {
        std::fs::write(&state, format!("bad {n}")).unwrap();
        nexus_pool::files::set_aside(&state).unwrap();
    }
    let aside = named(tmp.path(), "s.json.corrupt-");
    assert_eq!(aside.len(), 3, "{aside:?}");
    let mut all: Vec<String> = aside
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    all.sort();
    assert_eq!(all, ["bad 0", "bad 1", "bad 2"]);
}

/// A FIFO or a link in place of the launch journal neither hangs the pool
/// nor is written through.
#[test]
fn the_launch_journal_is_never_a_fifo_or_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("s.json");
    let journal = nexus_pool::intent::journal_path(&state);
    mkfifo(&journal);
    let j = journal.clone();
    assert!(bounded(move || nexus_pool::intent::journal_read(&j)).is_empty());
    std::fs::remove_file(&journal).unwrap();
    let target = tmp.path().join("target");
    std::fs::write(&target, b"untouched").unwrap();
    std::os::unix::fs::symlink(&target, &journal).unwrap();
    let entry = nexus_pool::intent::JournalEntry {
        key: "c/a".into(),
        intent: nexus_pool::intent::LaunchIntent::new("c/a", 1.0, 1),
        record: Default::default(),
    };
    let e = nexus_pool::intent::journal_append(&journal, &entry).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
}
