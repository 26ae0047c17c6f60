//! `ferrocast`: the node and an operator's command line.
//!
//! With no arguments, one node on the in-process backplane with a demo app; with `--config FILE`
//! (or `serve --config FILE`), a node configured from the file and `FERROCAST_*__*` variables.
//! The other subcommands (see `ferrocast --help`) check a config, make credentials, and call a
//! running cluster's HTTP API through the SDK. Layout, under `src/cli/` (binary only):
//! - `args`: the command line (clap) and its help text;
//! - `serve`: running a node;
//! - `check`: `check-config`;
//! - `keygen`: `keygen`;
//! - `api`: `trigger`, `channels`, `users`, `terminate`.
//!
//! Exit codes: 0 success, 1 a failure at run time (a node that stopped on an error, an HTTP API
//! call that failed), 2 a usage or configuration error.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
