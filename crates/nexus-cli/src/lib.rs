//! What every binary does at its edge, once: writing to stdout and stderr
//! without ever panicking, and the exit code that follows from it.
//!
//! `println!` panics when stdout cannot be written (`>/dev/full`,
//! `| head -c 10`), and release builds abort on a panic (exit 134), so a
//! checker that prints before its side effects would stop before writing
//! its alert markers or filing its incident. Binaries print through
//! [`outln!`], [`out!`], [`errln!`] and [`err!`] (or the [`stdout`] and
//! [`stderr`] writers) instead, and end with [`finish`]:
//! - a closed pipe (`EPIPE`) ends the output quietly: the reader has all it
//!   wanted; nothing more is written to that stream and the exit code is
//!   what the work decided;
//! - any other write error (a full disk) is remembered; [`finish`] names it on
//!   stderr (if stderr can take it) and turns a success into 1, "failed"
//!   in the suite's exit-code contract (0 healthy, 1 unhealthy or failed,
//!   2 usage or configuration error);
//! - stderr's own failures are dropped: there is nowhere left to report
//!   them.
//!
//! An error a binary stops on is a [`Fail`]: its message and its
//! [`ExitKind`] (1 failure, 2 usage or configuration). A library error
//! that implements [`HasExitKind`] becomes one with `?`; anything else (an
//! `anyhow` chain) is given its kind, and [`Fail::report`] prints
//! `<program>: <message>` and returns the code: the one mapping from
//! errors to exit codes.
//!
//! It also installs the one log subscriber every binary uses
//! ([`init_logging`]: `NEXUS_LOG`, stderr only), and holds the argument
//! parsers the binaries share ([`duration_arg`], [`listen_arg`] for clap's
//! `value_parser`).
//! With the `generate` feature (every shipped binary turns it on), the
//! hidden `<bin> --generate man|complete-bash|complete-zsh|complete-fish`
//! ([`generate_if_asked`], [`generate`], [`Generate`]): the man page and
//! completions the Debian package ships.
//!
//! It must never panic, block on a reader that went away, or depend on
//! anything but std, `nexus-stdx` and `tracing-subscriber` (the heartbeat
//! CLI links it; `scripts/check-deps`), and clap, clap_complete and
//! clap_mangen behind the optional `generate` feature only. Only binaries
//! depend on it.

mod arg;
#[cfg(feature = "generate")]
mod generate;
mod log;

pub use arg::{DurationError, ListenError, duration_arg, listen_arg};
#[cfg(feature = "generate")]
pub use generate::{Generate, generate, generate_if_asked};
pub use log::{DAEMON, LOG_ENV, ONE_SHOT, init_logging};

/// The variable a scheduled run is told to write its binary's own cron
/// heartbeat by (`NEXUS_SELF_HEARTBEAT=1`, set by the shipped systemd
/// units; the flag `--self-heartbeat` is the same switch): a one-shot run
/// by hand is not a scheduled job and leaves no `.last` behind. Daemons
/// always write theirs. Binaries read it through clap's `env`, at their
/// edge.
pub const SELF_HEARTBEAT_ENV: &str = "NEXUS_SELF_HEARTBEAT";

/// `check-config`'s ending, the same for every binary: each warning and
/// error of `found` on stderr (`<program>: warning: ...`,
/// `<program>: error: ...`), then `<file>: valid (<summary>)` and 0, or
/// `<file>: not usable: N error(s)` and 2.
pub fn report_findings(
    program: &str,
    file: &std::path::Path,
    found: &nexus_stdx::Findings,
    summary: &str,
) -> ExitCode {
    for w in &found.warnings {
        errln!("{program}: warning: {w}");
    }
    for e in &found.errors {
        errln!("{program}: error: {e}");
    }
    if found.usable() {
        let warned = match found.warnings.len() {
            0 => String::new(),
            n => format!(", {n} warning(s)"),
        };
        outln!("{}: valid ({summary}{warned})", file.display());
        ExitCode::SUCCESS
    } else {
        errln!(
            "{program}: {}: not usable: {} error(s)",
            file.display(),
            found.errors.len()
        );
        ExitCode::from(ExitKind::Config.code())
    }
}
pub use nexus_stdx::{ExitKind, HasExitKind};

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
    /// Another write error, kept for [`finish`]: its kind, and the OS's
    /// error number when there is one (for the OS's own words).
    Failed(io::ErrorKind, Option<i32>),
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
                kind => Health::Failed(kind, e.raw_os_error()),
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

/// A writer for stdout that never fails and never panics (a report built
/// through `write!`, a JSON serialiser): what it could not write is
/// handled as [`outln!`] handles it.
pub fn stdout() -> impl Write {
    struct Quiet;
    impl Write for Quiet {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            STDOUT.write(|| io::stdout().lock().write_all(buf));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            STDOUT.write(|| io::stdout().lock().flush());
            Ok(())
        }
    }
    Quiet
}

/// The process's exit code once the work decided `code`: stdout is
/// flushed; if it failed (not a closed pipe), the failure is named on
/// stderr as `<program>: cannot write the output: <error>` and a success
/// becomes a failure (1). `fn main() -> ExitCode { nexus_cli::finish("x", work()) }`.
pub fn finish(program: &str, code: ExitCode) -> ExitCode {
    STDOUT.write(|| io::stdout().lock().flush());
    match stdout_failure(program) {
        Some(()) if code == ExitCode::SUCCESS => ExitCode::FAILURE,
        _ => code,
    }
}

/// An error a binary stops on: the message it prints and the exit code it
/// leads to. `?` turns a library error that implements [`HasExitKind`]
/// into one; anything else gets its kind by name:
/// `Fail::chain(ExitKind::Config, &*e)` for an `anyhow` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    kind: ExitKind,
    message: String,
}

impl Fail {
    /// A failure of `kind`, printed as `message`.
    pub fn new(kind: ExitKind, message: impl fmt::Display) -> Fail {
        Fail {
            kind,
            message: message.to_string(),
        }
    }

    /// A failure of `kind` printed as the error and its sources on one line
    /// (`a: b: c`, [`nexus_stdx::error_chain`]), each cause once: an error
    /// whose message already holds its source (`#[error("…: {source}")]`)
    /// does not print it again, as anyhow's `{e:#}` would.
    pub fn chain(kind: ExitKind, e: &(dyn std::error::Error + 'static)) -> Fail {
        Fail::new(kind, nexus_stdx::error_chain(e))
    }

    /// A command line that asks for something impossible (exit code 2).
    pub fn usage(message: impl fmt::Display) -> Fail {
        Fail::new(ExitKind::Usage, message)
    }

    /// A configuration that cannot be used (exit code 2).
    pub fn config(message: impl fmt::Display) -> Fail {
        Fail::new(ExitKind::Config, message)
    }

    /// A check or the work failed (exit code 1).
    pub fn failure(message: impl fmt::Display) -> Fail {
        Fail::new(ExitKind::Failure, message)
    }

    /// Which failure it is.
    pub fn kind(&self) -> ExitKind {
        self.kind
    }

    /// Names the failure on stderr as `<program>: <message>`; returns the
    /// exit code it leads to.
    pub fn report(&self, program: &str) -> ExitCode {
        errln!("{program}: {}", self.message);
        self.kind.into()
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

impl<E: HasExitKind + fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail::new(e.exit_kind(), e)
    }
}

/// Names a failed stdout on stderr; `Some` if it failed.
fn stdout_failure(program: &str) -> Option<()> {
    match STDOUT.health() {
        Health::Failed(kind, errno) => {
            let e = errno.map_or_else(|| io::Error::from(kind), io::Error::from_raw_os_error);
            errln!("{program}: cannot write the output: {e}");
            Some(())
        }
        Health::Open | Health::Closed => None,
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
        assert_eq!(s.health(), Health::Failed(io::ErrorKind::StorageFull, None));
    }

    #[test]
    fn the_exit_code_follows_stdout() {
        // The process's own stdout is the test harness's: it is open.
        assert_eq!(finish("t", ExitCode::SUCCESS), ExitCode::SUCCESS);
        assert_eq!(finish("t", ExitCode::from(2)), ExitCode::from(2));
        *STDOUT.health.lock().unwrap() = Health::Closed;
        assert_eq!(
            finish("t", ExitCode::SUCCESS),
            ExitCode::SUCCESS,
            "a closed pipe is not a failure"
        );
        *STDOUT.health.lock().unwrap() = Health::Failed(io::ErrorKind::StorageFull, None);
        assert_eq!(
            finish("t", ExitCode::SUCCESS),
            ExitCode::FAILURE,
            "a full disk is"
        );
        assert_eq!(
            finish("t", ExitCode::from(2)),
            ExitCode::from(2),
            "a worse code stays"
        );
        *STDOUT.health.lock().unwrap() = Health::Open;
    }

    #[derive(Debug)]
    struct BadKey(&'static str);
    impl fmt::Display for BadKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "x.toml: unknown key {}", self.0)
        }
    }
    impl HasExitKind for BadKey {
        fn exit_kind(&self) -> ExitKind {
            ExitKind::Config
        }
    }

    #[test]
    fn a_library_error_keeps_its_kind_and_message() {
        fn load() -> Result<(), Fail> {
            Err(BadKey("colour"))?;
            Ok(())
        }
        let f = load().unwrap_err();
        assert_eq!(f.kind(), ExitKind::Config);
        assert_eq!(f.to_string(), "x.toml: unknown key colour");
        assert_eq!(f.report("t"), ExitCode::from(2));
        assert_eq!(Fail::failure("down").report("t"), ExitCode::from(1));
        assert_eq!(Fail::usage("no such flag").kind().code(), 2);
        assert_eq!(
            Fail::config(format_args!("{}: {}", "a", "b")).to_string(),
            "a: b"
        );
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot read config x.toml: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        let e = Outer(io::Error::from_raw_os_error(2));
        let f = Fail::chain(ExitKind::Config, &e);
        let cause = io::Error::from_raw_os_error(2).to_string();
        assert_eq!(f.to_string(), format!("cannot read config x.toml: {cause}"));
        assert_eq!(f.kind(), ExitKind::Config);
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
