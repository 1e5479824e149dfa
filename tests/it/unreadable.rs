//! Cells the real resurrection pool cannot read for a while: the cells root
//! moved away and back, a `cell.json` corrupted and restored, a cell set
//! `archived` by hand and back, its directory moved away and back. The
//! agents' records (the restart budget, the escalation) survive, no extra
//! launch happens, and the unreadable cells are shown with their reason.

use std::path::{Path, PathBuf};

use nexus_cell::RevivePolicy;
use nexus_e2e::Run;
use serde_json::Value;

use crate::crash::{agent, start};
use crate::full_disk::health;
use crate::pool::{Fleet, get, wait_for};

/// `esc` never beats: started, revived twice (`max_attempts = 2`), then escalated,
/// the slow lane far away. Returns the daemon's base URL once it is.
fn escalated(f: &Fleet) -> (crate::pool::Daemon, String) {
    f.join("esc", RevivePolicy::Auto, false);
    let cfg = f.config("max_attempts = 2\nslow_lane = 100000");
    let (d, base) = start(f, &cfg, None, &[]);
    wait_for("esc escalated", || {
        agent(&base, "esc")["state"] == "escalated"
    });
    assert_eq!(f.launches("esc"), 3);
    (d, base)
}

fn sweeps(base: &str) -> u64 {
    health(base).0["sweeps"].as_u64().unwrap_or(0)
}

/// Waits for `n` more sweeps, whatever `/health` answers.
fn more_sweeps(base: &str, n: u64) {
    let start = sweeps(base);
    wait_for("more sweeps", || sweeps(base) >= start + n);
}

/// The escalated record of `esc` in the pool state file.
fn record(f: &Fleet) -> Value {
    f.pool_state()["records"][format!("{}/esc", f.cell)].clone()
}

/// While the cell cannot be read: `/health` 503 naming it and `why`, the
/// agent still listed (unknown, its attempts), the metrics and the page
/// showing the cell; the record untouched.
fn shown_unreadable(f: &Fleet, base: &str, cell: &str, why: &str) {
    wait_for("the cell unreadable on /health", || {
        health(base).0["unreadable_cells"].to_string().contains(why)
    });
    more_sweeps(base, 2);
    let (h, ok) = health(base);
    assert!(!ok && h["status"] == "degraded", "503 degraded: {h:#}");
    let listed = &h["unreadable_cells"][0];
    assert_eq!(listed["cell"], cell, "{h:#}");
    assert!(listed["reason"].as_str().unwrap().contains(why), "{h:#}");
    let a = agent(base, "esc");
    assert_eq!(a["state"], "unknown", "{a:#}");
    assert_eq!(a["revive_attempts"], 2, "{a:#}");
    assert!(
        a["last_events"][0]
            .as_str()
            .unwrap()
            .contains("cell unreadable")
    );
    let metrics = get(&format!("{base}/metrics"));
    assert!(metrics.contains("\nnexus_pool_agents 1\n"), "{metrics}");
    assert!(
        metrics.contains(&format!("nexus_pool_cell_unreadable{{cell=\"{cell}\"")),
        "{metrics}"
    );
    let page = get(&format!("{base}/"));
    assert!(
        page.contains("Unreadable cells") && page.contains(cell),
        "{page}"
    );
    let rec = record(f);
    assert_eq!(rec["state"], "escalated", "{rec:#}");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 2, "{rec:#}");
    // `--status` (the state file) says what the page says.
    let o = f
        .cmd(&f.root.join("pool.toml"))
        .args(["--status", "--json"])
        .run()
        .unwrap();
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let key = format!("{}/esc", f.cell);
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == key);
    let row = row.unwrap_or_else(|| panic!("{rows:#}"));
    assert_eq!(row["state"], "unknown", "{row:#}");
    assert!(
        row["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cell cannot be read")),
        "{row:#}"
    );
}

/// Readable again: escalated as before, no launch beyond the budget.
fn back_and_still_escalated(f: &Fleet, base: &str) {
    wait_for("esc escalated again", || {
        health(base).1 && agent(base, "esc")["state"] == "escalated"
    });
    more_sweeps(base, 3);
    assert_eq!(f.launches("esc"), 3, "no launch beyond the budget");
    assert_eq!(record(f)["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(f.events().matches("\"revive_escalated\"").count(), 1);
}

/// An escalated agent whose cells root is moved away for a few sweeps,
/// then whose `cell.json` holds `{` for a few sweeps: kept, shown, never
/// relaunched.
#[test]
fn a_root_moved_away_or_a_corrupt_cell_json_keeps_the_budget_and_the_escalation() {
    let f = Fleet::new();
    let (_d, base) = escalated(&f);
    let root = f.root.join("cells");
    let away = f.root.join("cells.away");
    std::fs::rename(&root, &away).unwrap();
    shown_unreadable(&f, &base, &root.display().to_string(), "does not exist");
    std::fs::rename(&away, &root).unwrap();
    back_and_still_escalated(&f, &base);

    let manifest = f.store.open(&f.cell).unwrap().manifest_path();
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"{").unwrap();
    shown_unreadable(&f, &base, &f.cell.to_string(), "cell.json");
    std::fs::write(&manifest, &good).unwrap();
    back_and_still_escalated(&f, &base);
}

/// Sets the cell's manifest `status` by hand, as an agent that can write
/// its own `cell.json` could.
fn set_status(manifest: &Path, status: &str) {
    let mut m: Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    m["status"] = Value::from(status);
    std::fs::write(manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// A cell that really leaves the fleet (archived by hand, or its directory
/// moved away from a readable root) and comes back gets its agents'
/// records back: leaving never resets a restart budget.
#[test]
fn a_cell_that_leaves_and_comes_back_gets_no_fresh_budget() {
    let f = Fleet::new();
    let (_d, base) = escalated(&f);
    let dir: PathBuf = f.store.open(&f.cell).unwrap().dir().to_path_buf();
    let manifest = dir.join("cell.json");
    let gone = || {
        wait_for("esc out of the fleet", || {
            let v: Value = serde_json::from_str(&get(&format!("{base}/api/agents"))).unwrap();
            v.as_array().unwrap().is_empty()
        });
        more_sweeps(&base, 2);
        let st = f.pool_state();
        let kept = &st["retired"][format!("{}/esc", f.cell)]["record"];
        assert_eq!(kept["state"], "escalated", "{st:#}");
        assert!(health(&base).1, "a cell that left is not an unreadable one");
    };
    set_status(&manifest, "archived");
    gone();
    set_status(&manifest, "active");
    back_and_still_escalated(&f, &base);

    let away = f.root.join("away");
    std::fs::rename(&dir, &away).unwrap();
    gone();
    std::fs::rename(&away, &dir).unwrap();
    back_and_still_escalated(&f, &base);
    assert!(
        f.pool_state().get("retired").is_none(),
        "restored, not copied"
    );
}

/// Every cell unreadable: `--once` says which and why and exits non-zero
/// (2, as for an empty fleet, unless `--allow-empty`: then 1), keeping the
/// records; the daemon refuses to start the same way.
#[test]
fn with_every_cell_unreadable_once_and_the_daemon_say_why_and_keep_the_records() {
    let f = Fleet::new();
    f.join("esc", RevivePolicy::Auto, false);
    let cfg = f.config("max_attempts = 2\nslow_lane = 100000");
    for _ in 0..4 {
        f.cmd(&cfg).arg("--once").run().unwrap();
    }
    assert_eq!(record(&f)["state"], "escalated");
    let manifest = f.store.open(&f.cell).unwrap().manifest_path();
    std::fs::write(&manifest, b"{").unwrap();
    let cell = f.cell.to_string();

    let o = f.cmd(&cfg).arg("--once").run().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no cell could be read") && err.contains(&cell),
        "{err}"
    );
    assert!(err.contains("cell.json"), "{err}");

    let o = f.cmd(&cfg).args(["--once", "--allow-empty"]).run().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("unreadable cell {cell}: ")), "{out}");
    assert!(
        out.contains("1 agent(s), 1 unhealthy, 1 unreadable cell(s)"),
        "{out}"
    );
    assert!(
        out.contains("unknown    esc"),
        "the kept agent is listed: {out}"
    );
    let rec = record(&f);
    assert_eq!(rec["state"], "escalated", "{rec:#}");
    assert_eq!(f.launches("esc"), 3);

    let o = f.cmd(&cfg).args(["--listen", "127.0.0.1:0"]).run().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "the daemon refuses: {err}");
    assert!(
        err.contains("no cell could be read") && err.contains(&cell),
        "{err}"
    );
    assert_eq!(record(&f)["state"], "escalated");
    assert_eq!(f.launches("esc"), 3);
}
