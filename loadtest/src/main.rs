//! `ferrocast-loadtest`: a load tester for Pusher Channels (protocol v7) servers.
//!
//! It speaks only the public protocol (WebSocket + signed REST), so it runs against any
//! Pusher-compatible server. Everything runs on one single-threaded tokio runtime: per-connection
//! state is a task with its WebSocket, and shared counters need no atomics. The tester reports
//! its own CPU use and event-loop lag so a saturated tester is never mistaken for a slow server.
//!
//! Layout:
//! - [`cli`]: options and subcommands.
//! - [`net`]: endpoints, dialing from spread source addresses, the signed REST client.
//! - [`pusher`]: the WebSocket client handshake and the Pusher client protocol.
//! - [`report`]: histograms, counters, CPU/lag windows and the report printed at the end.
//! - [`sys`]: rlimits, rusage, /proc readings.
//! - [`scenarios`]: fanout/cluster, idle, churn, connect.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod net;
mod pusher;
mod report;
mod scenarios;
mod sys;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.common.json;
    let strict = cli.common.strict;
    let fd_limit = sys::raise_nofile_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrocast-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, scenarios::run(cli, fd_limit));
    // Tasks still running (connections being closed) are dropped with the runtime.
    drop(local);
    drop(runtime);
    match result {
        Ok(mut report) => {
            report.print(json);
            if strict && !report.failures.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("ferrocast-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}
