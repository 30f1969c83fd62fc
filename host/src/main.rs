//! `rbee-host`: parse the command line, run, map the outcome to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match rbee_host::command::run(rbee_host::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rbee-host: {error:#}");
            ExitCode::from(error.exit_code())
        }
    }
}
