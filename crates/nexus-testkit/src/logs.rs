//! Log lines captured as the binaries print them: a `tracing` fmt
//! subscriber (no colours) writing to a buffer, the default of this thread
//! while the guard lives (a `#[tokio::test]` runs every task on it).

use std::io;
use std::sync::{Arc, Mutex};

/// The captured lines; capturing stops when it is dropped.
#[derive(Debug)]
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts capturing every event of this thread, at every level.
pub fn capture() -> Logs {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Sink(b.clone()))
        .finish();
    Logs {
        buf,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}
