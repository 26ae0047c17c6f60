//! Dispatch of the `ferrocast` subcommands (see `main.rs` for the layout).

mod api;
mod args;
mod check;
mod keygen;
mod registry;
mod serve;

use std::process::ExitCode;

pub use args::Cli;
use args::Command;

/// A usage or configuration error.
const EXIT_USAGE: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve::run(cli.serve),
        Some(Command::Serve(serve)) => serve::run(serve),
        Some(Command::CheckConfig { file }) => check::run(&file),
        Some(Command::Keygen { toml }) => keygen::run(toml),
        Some(Command::Trigger(args)) => api::trigger(args),
        Some(Command::Channels(args)) => api::channels(args),
        Some(Command::Users(args)) => api::users(args),
        Some(Command::Terminate(args)) => api::terminate(args),
        Some(Command::Migrate(db)) => registry::migrate(&db),
        Some(Command::Apps { command }) => registry::apps(command),
    }
}

/// Print `message` as `ferrocast: message` on stderr and return `code`.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ferrocast: {message}");
    ExitCode::from(code)
}
