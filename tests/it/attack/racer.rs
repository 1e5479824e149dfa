//! Issue 16, item 2, through the real watchdog: its disk clean-up runs
//! (a disk probe warning, a `cleanup` recovery on a root) while another
//! thread keeps exchanging a directory under the root with a symlink to a
//! directory of old files outside it (`renameat2(RENAME_EXCHANGE)`). The
//! walk goes by directory descriptor, so nothing outside the root is ever
//! deleted. Bounded: 30 watchdog runs or 20 s, a million exchanges.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use nexus_e2e::{Run, bin};
use rustix::fs::{CWD, Mode, OFlags, RenameFlags, openat, renameat_with};

const MONTH: Duration = Duration::from_secs(30 * 86_400);

/// Creates (or refills) `names` in the directory open as `dir`, a month old.
fn old_files(dir: &impl rustix::fd::AsFd, names: &[String]) {
    for name in names {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW;
        let fd = openat(dir, name.as_str(), flags, Mode::from(0o644)).unwrap();
        std::fs::File::from(fd)
            .set_modified(SystemTime::now() - MONTH)
            .unwrap();
    }
}

fn config(dir: &Path, root: &Path) -> std::path::PathBuf {
    let cfg = dir.join("watchdog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[probe]]\nname = \"disk\"\ndisk = {{ path = \"{root}\", warn_pct = 0.001, crit_pct = 100 }}\n\n\
             [[recovery]]\ncheck = \"disk\"\non = [\"warning\", \"critical\"]\nmax_attempts = 100000\n\
             cleanup = [{{ root = \"{root}\", pattern = \"*.log\", older_than = \"7d\" }}]\n",
            root = root.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn the_watchdogs_clean_up_never_deletes_outside_its_root_while_a_racer_swaps_links_in() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let sub = root.join("sub");
    let outside = tmp.path().join("outside");
    let link = tmp.path().join("link");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("victim-{i}.log")).collect();
    let victims =
        rustix::fs::open(&outside, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    old_files(&victims, &names);
    // The directory under the root, wherever the racer has moved it.
    let inside = rustix::fs::open(&sub, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    let cfg = config(tmp.path(), &root);
    let state = tmp.path().join("state");

    // The clean-up works at all: without a racer it empties the directory.
    old_files(&inside, &names);
    let watchdog = || {
        Command::new(bin("nexus-watchdog"))
            .arg("--config")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&state)
            .arg("--no-self-heartbeat")
            .env("NEXUS_LOG", "error")
            .run()
            .unwrap()
    };
    let o = watchdog();
    assert_eq!(
        o.status.code(),
        Some(1),
        "a warning: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        std::fs::read_dir(&sub).unwrap().count(),
        0,
        "nothing cleaned"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let started = Arc::new(Barrier::new(2));
    let racer = {
        let (stop, swaps, started) = (stop.clone(), swaps.clone(), started.clone());
        let (sub, link) = (sub.clone(), link.clone());
        std::thread::spawn(move || {
            started.wait();
            for _ in 0..1_000_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                renameat_with(CWD, &sub, CWD, &link, RenameFlags::EXCHANGE).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    started.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut runs = 0;
    let outside_left = || std::fs::read_dir(&outside).unwrap().count();
    while runs < 30 && Instant::now() < deadline && outside_left() == names.len() {
        old_files(&inside, &names);
        watchdog();
        runs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();
    // Where the racer left them, the two are one directory and one link.
    if std::fs::symlink_metadata(&sub)
        .unwrap()
        .file_type()
        .is_symlink()
    {
        renameat_with(CWD, &sub, CWD, &link, RenameFlags::EXCHANGE).unwrap();
    }
    let swapped = swaps.load(Ordering::Relaxed);
    assert!(swapped > 0, "the racer never ran");
    assert_eq!(
        outside_left(),
        names.len(),
        "files outside the root deleted in {runs} watchdog run(s) racing {swapped} swaps"
    );
}
