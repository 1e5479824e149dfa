//! A real SMTP server on loopback: Debian's `python3-aiosmtpd` with its
//! `Mailbox` handler (a Maildir the test reads back), with STARTTLS
//! required on a certificate issued by a CA made for the test (the
//! `openssl` CLI), or in plain text.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Where aiosmtpd and openssl come from.
pub const SMTP_INSTALL_HINT: &str =
    "run scripts/test (it installs python3-aiosmtpd and openssl via scripts/setup.d/65-smtp.sh)";

/// A Python 3 that can import `aiosmtpd`: `python3` on `PATH` (which may be
/// a pyenv one without Debian's packages), else Debian's `/usr/bin/python3`.
pub fn aiosmtpd_python() -> Option<PathBuf> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|py| {
            Command::new(py)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// An `aiosmtpd` on 127.0.0.1 writing every message it accepts to a
/// Maildir; killed on drop.
#[derive(Debug)]
pub struct SmtpServer {
    pub port: u16,
    /// The CA that issued the server's certificate (PEM), for `ca_file`;
    /// `None` for a plain-text server.
    pub ca_file: Option<PathBuf>,
    child: Child,
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: cannot run: {e} ({SMTP_INSTALL_HINT})"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it issued for 127.0.0.1 and
/// localhost (`cert.pem`, `key.pem`), in `dir`.
fn make_certs(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=nexus test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-nodes"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "leaf.ext",
        ],
    );
}

impl SmtpServer {
    /// Starts the server: with `starttls`, STARTTLS offered and required
    /// before any mail (aiosmtpd's default with `--tlscert`); without, a
    /// plain-text server that offers no STARTTLS. Panics (a test failure)
    /// when aiosmtpd or openssl is missing.
    pub fn start(starttls: bool) -> SmtpServer {
        let py = aiosmtpd_python()
            .unwrap_or_else(|| panic!("no python3 with the aiosmtpd module: {SMTP_INSTALL_HINT}"));
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&py);
            cmd.args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"));
            let ca_file = if starttls {
                if !dir.path().join("cert.pem").exists() {
                    make_certs(dir.path());
                }
                cmd.arg("--tlscert")
                    .arg(dir.path().join("cert.pem"))
                    .arg("--tlskey")
                    .arg(dir.path().join("key.pem"));
                Some(dir.path().join("ca.pem"))
            } else {
                None
            };
            cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            // Ready when it accepts a connection (bounded).
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SmtpServer {
                        port,
                        ca_file,
                        child,
                        dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("aiosmtpd did not start (3 tries); last output:\n{last}");
    }

    /// The messages delivered so far, raw (headers and body), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("mail/new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(new)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let t = e.metadata().and_then(|m| m.modified()).unwrap();
                (t, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
