//! The suite's exit-code contract, as the libraries' errors state it: 0
//! healthy, 1 a check failed or the work failed, 2 usage or configuration
//! error. A library error implements [`HasExitKind`]; the binaries' edge
//! (`nexus-cli`) turns it into the process's exit code.

use std::process::ExitCode;

/// Why a run did not succeed, as its exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// A check failed, or the work failed at run time: exit code 1.
    Failure,
    /// The command line asks for something impossible: exit code 2.
    Usage,
    /// A configuration file or setting that cannot be used, or something
    /// else a person must fix before the program can run (another
    /// instance holds the lock): exit code 2.
    Config,
}

impl ExitKind {
    /// The exit code: 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failure => 1,
            ExitKind::Usage | ExitKind::Config => 2,
        }
    }

    /// [`ExitKind::Config`] when `config` holds, else [`ExitKind::Failure`].
    pub fn config_if(config: bool) -> ExitKind {
        if config {
            ExitKind::Config
        } else {
            ExitKind::Failure
        }
    }
}

impl From<ExitKind> for ExitCode {
    fn from(kind: ExitKind) -> ExitCode {
        ExitCode::from(kind.code())
    }
}

/// An error that knows which exit code it leads to.
pub trait HasExitKind {
    /// Which of the contract's failures this error is.
    fn exit_kind(&self) -> ExitKind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_config_are_2_and_failure_is_1() {
        assert_eq!(ExitKind::Failure.code(), 1);
        assert_eq!(ExitKind::Usage.code(), 2);
        assert_eq!(ExitKind::Config.code(), 2);
        assert_eq!(ExitKind::config_if(true), ExitKind::Config);
        assert_eq!(ExitKind::config_if(false), ExitKind::Failure);
        assert_eq!(ExitCode::from(ExitKind::Usage), ExitCode::from(2));
    }
}
