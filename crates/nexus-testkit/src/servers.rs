//! Real WebSocket, Redis and PostgreSQL servers on loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{INSTALL_HINT, free_port};

/// A WebSocket echo server; stopped on drop.
#[derive(Debug)]
pub struct WsServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsServer {
    /// Echoes every text and binary message.
    pub async fn echo() -> WsServer {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WsServer { addr, task }
    }

    /// `ws://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

/// Finds a program on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Waits (bounded) for a line containing `needle` from a child's output.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
) -> Result<(), Vec<String>> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(()),
            Ok(line) => seen.push(line),
            Err(_) => return Err(seen),
        }
    }
}

/// A `redis-server` on 127.0.0.1, no persistence, in a temp dir; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server; `maxmemory` in bytes (0 = unlimited);
    /// `password` enables `requirepass`.
    pub fn start(maxmemory: u64, password: Option<&str>) -> RedisServer {
        let bin = on_path("redis-server")
            .unwrap_or_else(|| panic!("redis-server not found on PATH: {INSTALL_HINT}"));
        let mut last = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "notice",
            ])
            .args(["--maxmemory", &maxmemory.to_string()])
            .arg("--dir")
            .arg(dir.path());
            if let Some(pw) = password {
                cmd.args(["--requirepass", pw]);
            }
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let (tx, rx) = mpsc::channel();
            let out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            match wait_for_line(&rx, "Ready to accept connections", Duration::from_secs(15)) {
                Ok(()) => {
                    return RedisServer {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                Err(seen) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = seen;
                }
            }
        }
        panic!(
            "redis-server did not start (3 tries); last output:\n{}",
            last.join("\n")
        );
    }

    /// `redis://[:pw@]127.0.0.1:<port>/0`.
    pub fn url(&self, password: Option<&str>) -> String {
        match password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL cluster in a temp dir on 127.0.0.1 (trust auth, user
/// `postgres`); stopped on drop. As root, `initdb` and `pg_ctl` run as the
/// `postgres` user via `runuser` (PostgreSQL refuses to run as root).
#[derive(Debug)]
pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `pg_ctl`: `PATH`, then Debian's
/// `/usr/lib/postgresql/<newest>/bin`.
fn pg_bin_dir() -> PathBuf {
    if let Some(p) = on_path("initdb").and_then(|p| std::fs::canonicalize(p).ok())
        && let Some(d) = p.parent()
        && d.join("pg_ctl").is_file()
    {
        return d.to_path_buf();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("PostgreSQL (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql: {INSTALL_HINT}"))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Runs a PostgreSQL tool, as `postgres` when we are root.
fn pg_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn run(mut cmd: Command, what: &str, log: Option<&Path>) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e} ({INSTALL_HINT})"));
    if !out.status.success() {
        let log = log
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default();
        panic!(
            "{what} failed ({}):\n{}\n{}\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl PostgresServer {
    /// Creates a cluster and starts it on a free port (a few seconds).
    pub fn start() -> PostgresServer {
        let bin = pg_bin_dir();
        // As root the cluster belongs to `postgres`, which must reach the
        // directory: use /tmp, not a $TMPDIR that may sit under /root.
        let parent = if is_root() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("nexus-pg-")
            .tempdir_in(parent)
            .unwrap();
        if is_root() {
            let (uid, gid) = user_ids("postgres").unwrap_or_else(|| {
                panic!("no `postgres` user to run PostgreSQL as: {INSTALL_HINT}")
            });
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb", None);
        let log = dir.path().join("server.log");
        let mut last_port = 0;
        for _ in 0..3 {
            let port = free_port();
            last_port = port;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                dir.path().display()
            );
            let mut start = pg_command(&bin, "pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "30", "-o", &opts, "start"]);
            let ok = start
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return PostgresServer { port, bin, dir };
            }
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("PostgreSQL did not start (last port {last_port}):\n{log}");
    }

    /// A libpq key/value connection string.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Runs SQL through `psql` (ON_ERROR_STOP); panics with its output on failure.
    pub fn psql(&self, sql: &str) {
        let mut c = Command::new(self.bin.join("psql"));
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &self.conninfo(),
            "-c",
            sql,
        ]);
        run(c, "psql", None);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let mut stop = pg_command(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
