//! What every binary does at its edge, once: writing to stdout and stderr
//! without ever panicking, and the exit code that follows from it.
//!
//! `println!` panics when stdout cannot be written (`>/dev/full`,
//! `| head -c 10`), and release builds abort on a panic (exit 134), so a
//! checker that prints before its side effects would stop before writing
//! its alert markers or filing its incident. Binaries print through
//! [`outln!`], [`out!`], [`errln!`] and [`err!`] instead, and end with
//! [`exit`]:
//! - a closed pipe (`EPIPE`) ends the output quietly: the reader has all it
//!   wanted; nothing more is written to that stream and the exit code is
//!   what the work decided;
//! - any other write error (a full disk) is remembered; [`exit`] names it on
//!   stderr (if stderr can take it) and turns a success into 1, "failed"
//!   in the suite's exit-code contract (0 healthy, 1 unhealthy or failed,
//!   2 usage or configuration error);
//! - stderr's own failures are dropped: there is nowhere left to report
//!   them.
//!
//! It must never panic, block on a reader that went away, or depend on
//! anything but std (the heartbeat CLI links it; `scripts/check-deps`).
//! Only binaries depend on it.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Mutex;

/// What happened to one output stream so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Open,
    /// The reader went away (`EPIPE`): stop writing, quietly.
    Closed,
    /// Another write error, kept for [`exit`].
    Failed(io::ErrorKind),
}

struct Stream {
    health: Mutex<Health>,
}

impl Stream {
    const fn new() -> Stream {
        Stream {
            health: Mutex::new(Health::Open),
        }
    }

    fn health(&self) -> Health {
        *self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `write` unless the stream is already closed or failed, and
    /// records how it went.
    fn write(&self, write: impl FnOnce() -> io::Result<()>) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if *h != Health::Open {
            return;
        }
        if let Err(e) = write() {
            *h = match e.kind() {
                io::ErrorKind::BrokenPipe => Health::Closed,
                kind => Health::Failed(kind),
            };
        }
    }
}

static STDOUT: Stream = Stream::new();
static STDERR: Stream = Stream::new();

/// Writes to stdout; never panics (the [`outln!`] and [`out!`] macros).
pub fn write_stdout(args: fmt::Arguments<'_>, newline: bool) {
    STDOUT.write(|| {
        let mut o = io::stdout().lock();
        o.write_fmt(args)?;
        if newline {
            o.write_all(b"\n")?;
        }
        Ok(())
    });
}

/// Writes to stderr; never panics (the [`errln!`] and [`err!`] macros).
pub fn write_stderr(args: fmt::Arguments<'_>, newline: bool) {
    STDERR.write(|| {
        let mut o = io::stderr().lock();
        o.write_fmt(args)?;
        if newline {
            o.write_all(b"\n")?;
        }
        Ok(())
    });
}

/// Writes bytes to stdout as they are (a JSON document, a report built in
/// memory); never panics.
pub fn write_stdout_bytes(bytes: &[u8]) {
    STDOUT.write(|| io::stdout().lock().write_all(bytes));
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::write_stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), true) };
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), false) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    () => { $crate::write_stderr(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::write_stderr(format_args!($($arg)*), true) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::write_stderr(format_args!($($arg)*), false) };
}

/// A writer for stderr that never fails and never panics: for a logging
/// subscriber (`tracing_subscriber::fmt().with_writer(nexus_cli::stderr)`),
/// which would otherwise report its own write errors with `eprintln!`.
pub fn stderr() -> impl Write {
    struct Quiet;
    impl Write for Quiet {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            STDERR.write(|| io::stderr().lock().write_all(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    Quiet
}

/// The process's exit code for the work's own `code`, once stdout is
/// flushed: a failed stdout (not a closed pipe) is named on stderr as
/// `<program>: cannot write the output: <error>` and makes a success 1.
pub fn exit(program: &str, code: u8) -> ExitCode {
    STDOUT.write(|| io::stdout().lock().flush());
    ExitCode::from(exit_code(program, code))
}

fn exit_code(program: &str, code: u8) -> u8 {
    match STDOUT.health() {
        Health::Failed(kind) => {
            errln!(
                "{program}: cannot write the output: {}",
                io::Error::from(kind)
            );
            code.max(1)
        }
        Health::Open | Health::Closed => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(kind: io::ErrorKind) -> impl FnOnce() -> io::Result<()> {
        move || Err(io::Error::from(kind))
    }

    #[test]
    fn a_closed_pipe_stops_the_stream_quietly_and_keeps_the_code() {
        let s = Stream::new();
        s.write(failing(io::ErrorKind::BrokenPipe));
        assert_eq!(s.health(), Health::Closed);
        let mut wrote = false;
        s.write(|| {
            wrote = true;
            Ok(())
        });
        assert!(!wrote, "nothing is written after the reader went away");
    }

    #[test]
    fn another_error_is_kept_and_only_the_first_counts() {
        let s = Stream::new();
        s.write(|| Ok(()));
        assert_eq!(s.health(), Health::Open);
        s.write(failing(io::ErrorKind::StorageFull));
        s.write(failing(io::ErrorKind::BrokenPipe));
        assert_eq!(s.health(), Health::Failed(io::ErrorKind::StorageFull));
    }

    #[test]
    fn the_exit_code_follows_stdout() {
        // The process's own stdout is the test harness's: it is open.
        assert_eq!(exit_code("t", 0), 0);
        assert_eq!(exit_code("t", 2), 2);
        *STDOUT.health.lock().unwrap() = Health::Closed;
        assert_eq!(exit_code("t", 0), 0, "a closed pipe is not a failure");
        *STDOUT.health.lock().unwrap() = Health::Failed(io::ErrorKind::StorageFull);
        assert_eq!(exit_code("t", 0), 1, "a full disk is");
        assert_eq!(exit_code("t", 2), 2, "a worse code stays");
        *STDOUT.health.lock().unwrap() = Health::Open;
    }

    #[test]
    fn the_macros_take_every_form() {
        outln!();
        outln!("{} {x}", 1, x = 2);
        out!("no newline ");
        errln!("to stderr {}", 3);
        err!("");
        stderr().write_all(b"through the writer\n").unwrap();
    }
}
