//! The subcommands other than `run`, each a short path from its flags to what it prints or
//! writes, ending in an exit code or a [`Failure`]: `status` reads a run directory's state,
//! `export` writes its results as a table, `report` compares runs, `merge` joins shards'
//! run directories, `cancel` stops a run's batch jobs, `prices` lists the price table, and
//! `local-server` serves Bedrock on this machine.

pub mod cancel;
pub mod export;
pub mod local_server;
pub mod merge;
pub mod prices;
pub mod report;
pub mod status;

use std::error::Error;

use crate::exit;

/// A failure that ends a command: its exit code and the error, with its causes kept for
/// `main` to print.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: Box<dyn Error + Send + Sync>,
}

impl Failure {
    /// A usage error (exit 2) told in one message.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            error: message.into().into(),
        }
    }

    /// A usage error (exit 2) that keeps `error`'s causes.
    pub fn usage_error(error: impl Error + Send + Sync + 'static) -> Failure {
        Failure {
            code: exit::USAGE,
            error: Box::new(error),
        }
    }
}

/// Prints `text` on stdout; a closed pipe counts as success.
pub fn emit(text: &str) -> Result<u8, Failure> {
    crate::report::print_stdout(text)
        .map(|()| exit::OK)
        .map_err(|err| Failure::usage(format!("cannot write to stdout: {err}")))
}
