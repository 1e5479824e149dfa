//! `<bin> --generate <KIND>` (feature `generate`): the binary's man page or
//! a shell completion script, rendered from its clap definition, in the
//! shape of ripgrep's `rg --generate man|complete-bash|...`.
//! `scripts/package` runs it for every shipped binary.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Arg, Command, CommandFactory, ValueEnum, builder::EnumValueParser};
use clap_complete::Shell;

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page, roff for section 1.
    Man,
    /// The bash completion script.
    CompleteBash,
    /// The zsh completion script (`_<bin>`).
    CompleteZsh,
    /// The fish completion script.
    CompleteFish,
}

/// Renders `kind` for `cmd` and writes it to `out` in one piece.
///
/// The text is rendered into memory first: clap_complete panics on a write
/// error, and a release binary aborts on a panic, so `out` (a closed pipe, a
/// full disk) only ever sees a finished buffer and its error is returned.
pub fn generate(kind: Generate, mut cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = Vec::new();
    let shell = match kind {
        Generate::Man => {
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            return out.write_all(&buf);
        }
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    out.write_all(&buf)
}

/// The hidden flag: when the first argument is `--generate` (or
/// `--generate=<KIND>`), prints what it asks for on stdout (through
/// [`stdout`](crate::stdout), so [`finish`](crate::finish) sees a failed
/// write) and returns the exit code: 0, or 2 with clap's message for a
/// missing or unknown kind (`--generate --help` lists the kinds). `None` otherwise: the binary parses its own
/// arguments as before. Call it first thing in `main`:
/// `if let Some(code) = nexus_cli::generate_if_asked::<Cli>() { return code; }`.
///
/// Read before the binary's own parser because several binaries require a
/// subcommand, which clap checks before any flag.
pub fn generate_if_asked<C: CommandFactory>() -> Option<ExitCode> {
    generate_from::<C>(std::env::args_os())
}

fn generate_from<C: CommandFactory>(args: impl IntoIterator<Item = OsString>) -> Option<ExitCode> {
    let args: Vec<OsString> = args.into_iter().collect();
    let first = args.get(1)?.to_str()?;
    if first != "--generate" && !first.starts_with("--generate=") {
        return None;
    }
    let cmd = C::command();
    let parser = Command::new("generate")
        .bin_name(cmd.get_name().to_owned())
        .about("Print the man page or a shell completion script")
        .arg(
            Arg::new("generate")
                .long("generate")
                .value_name("KIND")
                .required(true)
                .value_parser(EnumValueParser::<Generate>::new()),
        );
    let kind = match parser.try_get_matches_from(&args) {
        Ok(m) => m.get_one::<Generate>("generate").copied()?,
        Err(e) => {
            // `--help` goes to stdout with 0, a usage error to stderr with 2.
            if e.use_stderr() {
                crate::err!("{}", e.render());
            } else {
                crate::out!("{}", e.render());
            }
            return Some(ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)));
        }
    };
    let _ = generate(kind, cmd, &mut crate::stdout());
    Some(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    #[command(name = "demo-bin", version, about = "A demo")]
    #[allow(dead_code)]
    struct Cli {
        /// A flag.
        #[arg(long)]
        verbose: bool,
        #[command(subcommand)]
        cmd: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        /// Go.
        Go,
    }

    fn render(kind: Generate) -> String {
        let mut out = Vec::new();
        generate(kind, <Cli as CommandFactory>::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_kind_names_the_binary() {
        let man = render(Generate::Man);
        assert!(man.contains(".TH demo-bin 1"), "{man}");
        assert!(man.contains("\\-\\-verbose"), "{man}");
        let bash = render(Generate::CompleteBash);
        assert!(
            bash.contains("_demo__bin()") && bash.contains("demo-bin"),
            "{bash}"
        );
        assert!(render(Generate::CompleteZsh).starts_with("#compdef demo-bin"));
        assert!(render(Generate::CompleteFish).contains("complete -c demo-bin"));
    }

    #[test]
    fn only_a_leading_generate_is_taken() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(generate_from::<Cli>(args(&["demo-bin", "go"])), None);
        assert_eq!(generate_from::<Cli>(args(&["demo-bin"])), None);
        assert_eq!(
            generate_from::<Cli>(args(&["demo-bin", "go", "--generate", "man"])),
            None
        );
        assert_eq!(
            generate_from::<Cli>(args(&["demo-bin", "--generate", "nroff"])),
            Some(ExitCode::from(2))
        );
        assert_eq!(
            generate_from::<Cli>(args(&["demo-bin", "--generate"])),
            Some(ExitCode::from(2))
        );
    }
}
