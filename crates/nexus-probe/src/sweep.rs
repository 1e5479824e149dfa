//! What the probes of one sweep share: the `/proc` snapshot and the HTTP
//! client, each built at most once, on first use. Its own module so that the
//! runner and the probes that read it (`process`, `heartbeat`) import it
//! without importing each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::process::{ProcError, ProcTable};

/// Why the sweep has no process table.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    /// `/proc` (or the runner's proc root) could not be read.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The blocking scan was cancelled or panicked.
    #[error("process scan of {} did not finish: {source}", root.display())]
    Unfinished {
        root: PathBuf,
        source: tokio::task::JoinError,
    },
}

/// The sweep's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub(crate) struct ClientError(#[source] reqwest::Error);

/// State shared by the probes of one sweep.
#[derive(Debug)]
pub(crate) struct Sweep {
    proc_root: PathBuf,
    procs: OnceCell<Arc<Result<ProcTable, ScanError>>>,
    http: OnceCell<Result<reqwest::Client, ClientError>>,
}

impl Sweep {
    pub(crate) fn new(proc_root: PathBuf) -> Sweep {
        Sweep {
            proc_root,
            procs: OnceCell::new(),
            http: OnceCell::new(),
        }
    }

    pub(crate) fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// The process table, scanned once per sweep (on a blocking thread).
    pub(crate) async fn procs(&self) -> Arc<Result<ProcTable, ScanError>> {
        self.procs
            .get_or_init(|| async {
                let root = self.proc_root.clone();
                let scanned = tokio::task::spawn_blocking(move || {
                    ProcTable::scan_at(&root, std::process::id())
                })
                .await;
                Arc::new(match scanned {
                    Ok(r) => r.map_err(ScanError::from),
                    Err(source) => Err(ScanError::Unfinished {
                        root: self.proc_root.clone(),
                        source,
                    }),
                })
            })
            .await
            .clone()
    }

    /// One HTTP client per sweep: no proxy (probes go straight to the
    /// target), at most 5 redirects.
    pub(crate) async fn http(&self) -> &Result<reqwest::Client, ClientError> {
        self.http
            .get_or_init(|| async {
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::limited(5))
                    .user_agent(concat!("nexus-probe/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(ClientError)
            })
            .await
    }
}
