//! The sweep's memory shapes: views put in place, targets kept in their
//! parts, keys and names shared across sweeps.

use std::sync::{Arc, RwLock};

use nexus_cell::{AgentName, CellStore, Join, NewCell, RevivePolicy, Role};
use nexus_revive::{Policy, State};

use super::*;

fn view(cell: &str, name: &str, state: State) -> AgentView {
    AgentView {
        name: name.into(),
        cell: Some(cell.into()),
        mission: None,
        policy: Policy::Auto,
        state,
        gateway_alive: None,
        process_alive: None,
        heartbeat_age: None,
        revive_attempts: 0,
        last_checked: 0.0,
        first_dead_at: None,
        revive_pending: false,
        acknowledged_by: None,
        waiting: None,
        reason: None,
        last_events: Box::default(),
    }
}

fn shared_with(views: Vec<AgentView>) -> Shared {
    Arc::new(RwLock::new(PoolSnapshot {
        agents: views,
        ..PoolSnapshot::default()
    }))
}

fn names(shared: &Shared) -> Vec<(String, State)> {
    crate::http::with_snapshot(shared, |s| {
        s.agents
            .iter()
            .map(|v| {
                (
                    format!("{}/{}", v.cell.as_deref().unwrap_or(""), v.name),
                    v.state,
                )
            })
            .collect()
    })
}

#[test]
fn an_unchanged_fleet_is_swept_into_the_snapshots_own_views() {
    let old = ["a", "b", "c"].map(|n| view("c1", n, State::Unknown));
    let shared = shared_with(old.to_vec());
    let before = crate::http::with_snapshot(&shared, |s| s.agents.as_ptr());
    let mut sink = ViewSink::new(3);
    sink.put(&shared, vec![view("c1", "a", State::Healthy)]);
    // Readers meanwhile: the first view is new, the others the last sweep's.
    assert_eq!(
        names(&shared),
        [
            ("c1/a".to_string(), State::Healthy),
            ("c1/b".to_string(), State::Unknown),
            ("c1/c".to_string(), State::Unknown)
        ]
    );
    sink.put(
        &shared,
        vec![
            view("c1", "b", State::Dead),
            view("c1", "c", State::Healthy),
        ],
    );
    sink.finish(&mut crate::http::snapshot_mut(&shared));
    let states: Vec<State> = names(&shared).into_iter().map(|(_, s)| s).collect();
    assert_eq!(states, [State::Healthy, State::Dead, State::Healthy]);
    assert_eq!(
        crate::http::with_snapshot(&shared, |s| s.agents.as_ptr()),
        before,
        "the same list, written in place"
    );
}

#[test]
fn a_changed_fleet_gets_a_new_list_in_the_sweeps_order() {
    let shared = shared_with(
        ["a", "b", "c"]
            .map(|n| view("c1", n, State::Unknown))
            .to_vec(),
    );
    let mut sink = ViewSink::new(3);
    sink.put(&shared, vec![view("c1", "a", State::Healthy)]);
    // "b" left, "z" came: from here on, a new list.
    sink.put(
        &shared,
        vec![
            view("c1", "z", State::Dead),
            view("c1", "c", State::Healthy),
        ],
    );
    assert_eq!(sink.len(), 3);
    assert_eq!(
        names(&shared).len(),
        3,
        "the snapshot is whole until the sweep ends"
    );
    sink.finish(&mut crate::http::snapshot_mut(&shared));
    assert_eq!(
        names(&shared),
        [
            ("c1/a".to_string(), State::Healthy),
            ("c1/z".to_string(), State::Dead),
            ("c1/c".to_string(), State::Healthy)
        ]
    );
}

#[test]
fn a_fleet_that_shrank_leaves_no_old_view_behind() {
    let shared = shared_with(
        ["a", "b", "c"]
            .map(|n| view("c1", n, State::Unknown))
            .to_vec(),
    );
    let mut sink = ViewSink::new(2);
    sink.put(
        &shared,
        vec![
            view("c1", "a", State::Healthy),
            view("c1", "b", State::Healthy),
        ],
    );
    sink.put(&shared, Vec::new());
    sink.finish(&mut crate::http::snapshot_mut(&shared));
    assert_eq!(names(&shared).len(), 2);
    // And one that grew past the old list's end.
    let mut sink = ViewSink::new(4);
    sink.put(
        &shared,
        ["a", "b", "c", "d"]
            .map(|n| view("c1", n, State::Dead))
            .to_vec(),
    );
    sink.finish(&mut crate::http::snapshot_mut(&shared));
    assert_eq!(names(&shared).len(), 4);
}

fn target(key: &str) -> Target {
    Target {
        key: key.into(),
        name: key.into(),
        cell: None,
        cell_label: None,
        mission: None,
        policy: Policy::Auto,
        frozen: false,
        gateway: None,
        revive: crate::fleet::ReviveHow::None,
        preflight: None,
        beat: nexus_heartbeat::Glance {
            state: nexus_heartbeat::State::Missing,
            age_seconds: None,
            pid: None,
            reason: None,
        },
    }
}

#[test]
fn targets_are_numbered_across_their_parts() {
    let mut t = Targets::default();
    assert_eq!((t.len(), t.get(0).is_none()), (0, true));
    t.push(vec![target("g1"), target("g2")]);
    t.push(Vec::new());
    t.push(vec![target("c1/a")]);
    t.push(vec![target("c2/a"), target("c2/b")]);
    assert_eq!(t.len(), 5);
    let keys: Vec<&str> = (0..6).filter_map(|n| t.get(n)).map(|t| &*t.key).collect();
    assert_eq!(keys, ["g1", "g2", "c1/a", "c2/a", "c2/b"]);
    assert_eq!(t.iter().count(), 5);
}

/// A new cell for `mission` holding `agents`, none ever revived.
fn cell_with(store: &CellStore, mission: &str, agents: &[&str]) -> CellId {
    let cell = store
        .provision(NewCell {
            mission: mission.into(),
            created_by: "tests".into(),
            ..NewCell::default()
        })
        .unwrap()
        .id();
    for agent in agents {
        store
            .join(
                &cell,
                Join {
                    agent: AgentName::new(agent).unwrap(),
                    role: Role::Developer,
                    home: None,
                    revive_cmd: None,
                    revive_policy: Some(RevivePolicy::Never),
                },
            )
            .unwrap();
    }
    cell
}

/// A second sweep of the same fleet allocates no key and no name: the
/// survey shares those of the records and of the first sweep.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_sweep_shares_the_first_ones_keys_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cells");
    std::fs::create_dir_all(&root).unwrap();
    let store = CellStore::new(&root);
    let mut cells = Vec::new();
    for mission in ["one", "two"] {
        cells.push(cell_with(&store, mission, &["scout", "smith"]));
    }
    let cfg =
        PoolConfig::parse(&format!("[cells]\nroot = \"{}\"\n", root.display()), "test").unwrap();
    let mut pool = Pool::new(
        cfg,
        PoolOptions {
            state_file: tmp.path().join("state.json"),
            cells_root: None,
            dry_run: true,
        },
    )
    .unwrap();
    pool.sweep().await;
    let first: Vec<(Arc<str>, Arc<str>)> = pool
        .targets
        .iter()
        .map(|t| (t.key.clone(), t.name.clone()))
        .collect();
    assert_eq!(first.len(), 4);
    pool.sweep().await;
    let second: Vec<&Target> = pool.targets.iter().collect();
    assert_eq!(second.len(), 4);
    for (t, (key, _)) in second.iter().zip(&first) {
        assert!(Arc::ptr_eq(&t.key, key), "{} allocated again", t.key);
    }
    // Names: the first cell's, shared by the second.
    for (i, t) in second.iter().enumerate() {
        let same = second.iter().filter(|o| o.name == t.name);
        assert!(
            same.clone().all(|o| Arc::ptr_eq(&o.name, &t.name)),
            "{}",
            t.name
        );
        assert!(
            first[..2].iter().any(|(_, n)| Arc::ptr_eq(n, &t.name)),
            "{} ({i}) allocated again",
            t.name
        );
    }
    assert!(Arc::ptr_eq(
        pool.state.records.key(&first[0].0).unwrap(),
        &first[0].0
    ));
    drop(cells);
}

/// `[history]` on: an agent's state change becomes a row in the SQLite file.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_change_is_recorded_in_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cells");
    std::fs::create_dir_all(&root).unwrap();
    let store = CellStore::new(&root);
    let _cell = cell_with(&store, "orbit", &["scout"]);
    let db = tmp.path().join("h.sqlite");
    let cfg = PoolConfig::parse(
        &format!(
            "[cells]\nroot = \"{}\"\n[history]\npath = \"{}\"\nretention = \"7d\"\n",
            root.display(),
            db.display()
        ),
        "test",
    )
    .unwrap();
    let mut pool = Pool::new(
        cfg,
        PoolOptions {
            state_file: tmp.path().join("state.json"),
            cells_root: None,
            dry_run: false,
        },
    )
    .unwrap();
    pool.sweep().await;
    pool.history.as_ref().unwrap().flush();
    let reader = nexus_history::Reader::open(&db).unwrap();
    let subjects = reader.subjects().unwrap();
    // The subject is the agent's key (names repeat across cells), the
    // group its mission.
    let scout = subjects
        .iter()
        .find(|s| s.subject.ends_with("/scout"))
        .unwrap();
    assert_eq!(scout.group, "orbit", "{scout:?}");
    assert_ne!(scout.state, "healthy", "{scout:?}");
    let events = reader
        .last_events(nexus_history::Kind::Agent, &scout.subject, 10)
        .unwrap();
    assert!(!events.is_empty());
    assert_ne!(events[0].old_state, events[0].new_state);
}
