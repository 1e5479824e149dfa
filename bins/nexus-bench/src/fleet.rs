//! Synthetic fleets, generated exactly as `gen_cells` and `Fleet` in the
//! seed harness's `bench_seed.py` do, so that the seed figures and ours
//! describe the same inputs.
//!
//! * Cells: `<root>/<cell-uuid>/cell.json` and
//!   `<cell>/.lazarus/heartbeats/<agent>.json`; by a running index over all
//!   agents, `idx % 100 == 99` is corrupt JSON (1 %), else `idx % 10 == 9` is
//!   stale, one hour old (9 %), else fresh, 0-29 s old (90 %).
//! * Gateways: listeners on 127.0.0.1 only. Per `i % 10`: 0-6 open, 7-8
//!   closed (bound, never listening: connect() gets RST), 9 closed or, in the
//!   `hung` variant, hung (listen(0) plus one never-accepted connection: the
//!   accept queue is full, further SYNs are dropped and connect() hangs until
//!   the prober's timeout). The pool config is the seed's JSON format.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use serde::Serialize;
use serde_json::json;

/// How many heartbeat files of each kind were written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Mix {
    pub(crate) fresh: usize,
    pub(crate) stale: usize,
    pub(crate) corrupt: usize,
}

impl Mix {
    pub(crate) fn total(&self) -> usize {
        self.fresh + self.stale + self.corrupt
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HbKind {
    Fresh,
    Stale,
    Corrupt,
}

fn hb_kind(idx: usize) -> HbKind {
    if idx % 100 == 99 {
        HbKind::Corrupt
    } else if idx % 10 == 9 {
        HbKind::Stale
    } else {
        HbKind::Fresh
    }
}

/// The seed's cell UUID for cell number `c`.
fn cell_uuid(c: usize) -> String {
    format!("{c:08x}-1234-4b5e-8def-{c:012x}")
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `n_cells` cells of `m_agents` agents each under `root` (created),
/// with heartbeats relative to `now` (Unix seconds).
pub(crate) fn gen_cells(
    root: &Path,
    n_cells: usize,
    m_agents: usize,
    now: f64,
) -> anyhow::Result<Mix> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let mut mix = Mix::default();
    let mut idx = 0usize;
    for c in 0..n_cells {
        let uuid = cell_uuid(c);
        let cell = root.join(&uuid);
        let hb_dir = cell.join(".lazarus").join("heartbeats");
        std::fs::create_dir_all(&hb_dir)
            .with_context(|| format!("cannot create {}", hb_dir.display()))?;
        let agents: Vec<String> = (0..m_agents).map(|a| format!("agent-{a:04}")).collect();
        let manifest = json!({
            "uuid": uuid,
            "name": format!("bench cell {c}"),
            "mission": format!("synthetic mission {c}"),
            "created_at": "2026-04-06T00:00:00Z",
            "created_by": "bench",
            "status": "active",
            "agents": agents.iter().map(|a| json!({
                "name": a,
                "role": "developer",
                "joined_at": "2026-04-06T00:01:00Z",
                "home": format!("/root/wizards/{a}"),
            })).collect::<Vec<_>>(),
            "gitea_issue": 879,
            "repo": "Timmy_Foundation/the-nexus",
        });
        write(
            &cell.join("cell.json"),
            &serde_json::to_string_pretty(&manifest)?,
        )?;
        for a in &agents {
            let p = hb_dir.join(format!("{a}.json"));
            match hb_kind(idx) {
                HbKind::Corrupt => {
                    mix.corrupt += 1;
                    write(&p, &format!("{{\"agent\": \"{a}\", \"timestamp\": 17440"))?;
                }
                kind => {
                    let ts = if kind == HbKind::Fresh {
                        mix.fresh += 1;
                        now - (idx % 30) as f64
                    } else {
                        mix.stale += 1;
                        now - 3600.0
                    };
                    let hb = json!({
                        "agent": a, "pid": 10000 + idx, "timestamp": ts,
                        "cycle": idx % 1000, "model": "claude-opus-4-6",
                        "status": "thinking", "cell_uuid": uuid,
                    });
                    write(&p, &serde_json::to_string_pretty(&hb)?)?;
                }
            }
            idx += 1;
        }
    }
    Ok(mix)
}

/// The seed lazarus-pit's TOML config for a cells root (as bench_seed.py writes it).
pub(crate) fn lazarus_config(path: &Path, cells_root: &Path, workdir: &Path) -> anyhow::Result<()> {
    write(
        path,
        &format!(
            "[daemon]\npid_file = \"{}/lazarus-pit.pid\"\nlog_file = \"-\"\nlog_level = \"INFO\"\n\
             [cells]\nroot = \"{}\"\nheartbeat_stale_threshold = 60\nresurrect_after = 120\n\
             max_revive_attempts = 3\npoll_interval = 15\n",
            workdir.display(),
            cells_root.display()
        ),
    )
}

/// What a gateway's port does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortKind {
    Open,
    Closed,
    Hung,
}

/// The seed harness's port assignment for gateway `i`.
pub(crate) fn port_kind(i: usize, hung_variant: bool) -> PortKind {
    match i % 10 {
        9 if hung_variant => PortKind::Hung,
        7..=9 => PortKind::Closed,
        _ => PortKind::Open,
    }
}

/// The number of hung gateways among `g` in a variant.
pub(crate) fn hung_count(g: usize, hung_variant: bool) -> usize {
    (0..g)
        .filter(|&i| port_kind(i, hung_variant) == PortKind::Hung)
        .count()
}

/// Expected states by the seed's rule: healthy when port, process and
/// heartbeat all pass, dead when none does, degraded otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct States {
    pub(crate) healthy: usize,
    pub(crate) degraded: usize,
    pub(crate) dead: usize,
}

/// How many ports of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Ports {
    pub(crate) open: usize,
    pub(crate) closed: usize,
    pub(crate) hung: usize,
}

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A socket bound to 127.0.0.1 on a free port, `listen(backlog)` if given.
fn raw_socket(backlog: Option<i32>) -> anyhow::Result<(OwnedFd, u16)> {
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("socket()")?;
    rustix::net::bind(&fd, &SocketAddrV4::new(LOOPBACK, 0)).context("bind(127.0.0.1:0)")?;
    if let Some(b) = backlog {
        rustix::net::listen(&fd, b).context("listen()")?;
    }
    let addr = rustix::net::getsockname(&fd).context("getsockname()")?;
    let v4 = SocketAddrV4::try_from(addr).context("getsockname(): not an IPv4 address")?;
    Ok((fd, v4.port()))
}

/// Every socket of a gateway fleet, and its seed-format config. Dropping it
/// closes them all.
#[derive(Debug)]
pub(crate) struct GatewayFleet {
    open: Vec<TcpListener>,
    closed: Vec<OwnedFd>,
    hung: Vec<(OwnedFd, u16)>,
    fillers: Vec<TcpStream>,
    pub(crate) config: PathBuf,
    pub(crate) expected: States,
    pub(crate) ports: Ports,
}

impl GatewayFleet {
    /// `g` gateways whose heartbeat files and `pool.json` go under `dir`;
    /// `marker` names the helper process the alive gateways' pattern matches.
    pub(crate) fn build(
        g: usize,
        hung_variant: bool,
        dir: &Path,
        marker: &str,
        now: f64,
    ) -> anyhow::Result<GatewayFleet> {
        let hb_dir = dir.join("heartbeats");
        std::fs::create_dir_all(&hb_dir)
            .with_context(|| format!("cannot create {}", hb_dir.display()))?;
        let mut fleet = GatewayFleet {
            open: Vec::new(),
            closed: Vec::new(),
            hung: Vec::new(),
            fillers: Vec::new(),
            config: dir.join("pool.json"),
            expected: States::default(),
            ports: Ports::default(),
        };
        let mut gateways = Vec::with_capacity(g);
        let mut names = Vec::with_capacity(g);
        for i in 0..g {
            let kind = port_kind(i, hung_variant);
            let port = match kind {
                PortKind::Open => fleet.open_listener()?,
                PortKind::Closed => fleet.closed_port()?,
                PortKind::Hung => fleet.hung_listener()?,
            };
            let open = kind == PortKind::Open;
            let proc_alive = open && i % 20 != 0;
            let corrupt = i % 100 == 50;
            let fresh = !corrupt && open;
            let name = format!("gw-{i:05}");
            let hb_path = hb_dir.join(format!("{name}.json"));
            if corrupt {
                write(&hb_path, "{\"pid\": 1, \"timestamp\": 17440")?;
            } else {
                let ts = if fresh {
                    now - (i % 30) as f64
                } else {
                    now - 3600.0
                };
                let hb = json!({"pid": 20000 + i, "timestamp": ts, "cycle": i,
                                "model": "timmy:v0.1", "status": "thinking"});
                write(&hb_path, &hb.to_string())?;
            }
            match usize::from(open) + usize::from(proc_alive) + usize::from(fresh) {
                3 => fleet.expected.healthy += 1,
                0 => fleet.expected.dead += 1,
                _ => fleet.expected.degraded += 1,
            }
            let pattern = if proc_alive {
                format!("{marker}-alive")
            } else {
                format!("{marker}-absent-{i}")
            };
            gateways.push(json!({
                "name": name,
                "host": LOOPBACK.to_string(),
                "port": port,
                "heartbeat_path": hb_path,
                "process_pattern": pattern,
                "revive_cmd": ["true"],
            }));
            names.push(name);
        }
        let policies = ["auto", "ask", "never"];
        let per = (g / 10).max(1);
        let mut missions = BTreeMap::new();
        for (m, chunk) in names.chunks(per).enumerate() {
            missions.insert(
                format!("mission-{m:03}"),
                json!({"label": format!("bench mission {m}"), "agents": chunk,
                       "revive_policy": policies[m % 3]}),
            );
        }
        let cfg = json!({"poll_interval": 60, "dead_threshold": 300, "approval_timeout": 300,
                         "gateways": gateways, "missions": missions});
        write(&fleet.config, &serde_json::to_string_pretty(&cfg)?)?;
        Ok(fleet)
    }

    fn open_listener(&mut self) -> anyhow::Result<u16> {
        let l = TcpListener::bind((LOOPBACK, 0)).context("bind an open listener")?;
        l.set_nonblocking(true)?;
        let port = l.local_addr()?.port();
        self.open.push(l);
        self.ports.open += 1;
        Ok(port)
    }

    fn closed_port(&mut self) -> anyhow::Result<u16> {
        // Bound, never listening: the port stays reserved and connect() gets RST.
        let (fd, port) = raw_socket(None)?;
        self.closed.push(fd);
        self.ports.closed += 1;
        Ok(port)
    }

    fn hung_listener(&mut self) -> anyhow::Result<u16> {
        let (fd, port) = raw_socket(Some(0))?;
        let addr = SocketAddr::from((LOOPBACK, port));
        let filler = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("cannot fill the accept queue of {addr}"))?;
        self.fillers.push(filler);
        self.hung.push((fd, port));
        self.ports.hung += 1;
        Ok(port)
    }

    /// True when a connect to the first hung port does not complete within
    /// 300 ms (true as well when there is none).
    pub(crate) fn verify_hung(&self) -> bool {
        self.hung.first().is_none_or(|(_, port)| {
            let addr = SocketAddr::from((LOOPBACK, *port));
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
        })
    }

    /// Accepts and closes every pending connection on the open listeners, so
    /// that their queues never fill up over repeated runs.
    pub(crate) fn drain(&self) {
        for l in &self.open {
            loop {
                match l.accept() {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// A `sleep` process whose argv[0] is `<marker>-alive`: the process the alive
/// gateways' `process_pattern` matches. Killed (by its PID) on drop.
#[derive(Debug)]
pub(crate) struct AliveHelper {
    child: Child,
}

impl AliveHelper {
    pub(crate) fn start(marker: &str, lifetime: Duration) -> anyhow::Result<AliveHelper> {
        let child = Command::new("sleep")
            .arg0(format!("{marker}-alive"))
            .arg(lifetime.as_secs().max(1).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start the helper process (sleep)")?;
        // spawn() returns before the kernel has set up the new argv (vfork):
        // wait, bounded, until a process scan would see the marker.
        let path = format!("/proc/{}/cmdline", child.id());
        let want = format!("{marker}-alive\0");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !std::fs::read(&path).is_ok_and(|c| c.starts_with(want.as_bytes()))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(AliveHelper { child })
    }
}

impl Drop for AliveHelper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn cells_have_the_seed_mix_and_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let mix = gen_cells(tmp.path(), 100, 10, now()).unwrap();
        assert_eq!(
            mix,
            Mix {
                fresh: 900,
                stale: 90,
                corrupt: 10
            }
        );
        let cells = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(cells, 100);
        let cell = tmp.path().join(cell_uuid(0));
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cell.join("cell.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["status"], "active");
        assert_eq!(manifest["agents"].as_array().unwrap().len(), 10);
        let hb_dir = cell.join(".lazarus/heartbeats");
        assert_eq!(std::fs::read_dir(&hb_dir).unwrap().count(), 10);
        // idx 9 is stale, idx 99 (cell 9, agent 9) corrupt.
        let stale: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(hb_dir.join("agent-0009.json")).unwrap())
                .unwrap();
        assert!(now() - stale["timestamp"].as_f64().unwrap() > 3000.0);
        let corrupt = tmp
            .path()
            .join(cell_uuid(9))
            .join(".lazarus/heartbeats/agent-0009.json");
        let text = std::fs::read_to_string(corrupt).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }

    #[test]
    fn port_mix_and_expected_states_match_the_seed_harness() {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = GatewayFleet::build(100, true, tmp.path(), "lzbench-test", now()).unwrap();
        assert_eq!(
            fleet.ports,
            Ports {
                open: 70,
                closed: 20,
                hung: 10
            }
        );
        // open: 70, of which i%20==0 (4 of them: 0,20,40,60... only those
        // with i%10<7) lack the process; gw-00050 has a corrupt heartbeat.
        assert_eq!(fleet.expected.healthy + fleet.expected.degraded, 70);
        assert_eq!(fleet.expected.dead, 30);
        assert_eq!(fleet.expected.degraded, 5 + 1);
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&fleet.config).unwrap()).unwrap();
        assert_eq!(cfg["gateways"].as_array().unwrap().len(), 100);
        assert_eq!(cfg["missions"].as_object().unwrap().len(), 10);
        assert_eq!(cfg["gateways"][0]["host"], "127.0.0.1");
        assert_eq!(hung_count(1000, true), 100);
        assert_eq!(hung_count(1000, false), 0);
    }

    #[test]
    fn ports_behave_as_their_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = GatewayFleet::build(10, true, tmp.path(), "lzbench-test", now()).unwrap();
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&fleet.config).unwrap()).unwrap();
        let port = |i: usize| cfg["gateways"][i]["port"].as_u64().unwrap() as u16;
        let t = Duration::from_millis(300);
        let at = |p: u16| SocketAddr::from((LOOPBACK, p));
        TcpStream::connect_timeout(&at(port(0)), t).expect("open port accepts");
        let closed = TcpStream::connect_timeout(&at(port(7)), t).unwrap_err();
        assert_eq!(closed.kind(), ErrorKind::ConnectionRefused);
        let hung = TcpStream::connect_timeout(&at(port(9)), t).unwrap_err();
        assert_eq!(hung.kind(), ErrorKind::TimedOut, "hung port: {hung}");
        assert!(fleet.verify_hung());
        fleet.drain();
    }

    #[test]
    fn helper_process_carries_the_marker() {
        let h = AliveHelper::start("lzbench-unit", Duration::from_secs(30)).unwrap();
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", h.child.id())).unwrap();
        assert!(
            cmdline.starts_with(b"lzbench-unit-alive\0"),
            "{}",
            String::from_utf8_lossy(&cmdline)
        );
    }
}
