//! `ferrocast check-config FILE`: everything a node would refuse at start, without starting
//! one, so a deploy pipeline can stop a bad config before it reaches a rolling restart.

use std::process::ExitCode;

use ferrocast_server::{config, run};

use super::{fail, EXIT_USAGE};

pub fn run(file: &str) -> ExitCode {
    let config = match config::load(Some(file), std::env::vars()) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_USAGE, format_args!("{file}: {e}")),
    };
    if let Err(e) = run::check(&config) {
        return fail(EXIT_USAGE, format_args!("{file}: {e}"));
    }
    for warning in config::warnings(&config, true) {
        eprintln!("ferrocast: warning: {file}: {warning}");
    }
    let server = &config.server;
    let apps = if config.registry.is_postgres() {
        "apps from PostgreSQL".to_owned()
    } else {
        format!("{} app(s)", config.apps.len())
    };
    println!(
        "{file}: valid: {apps}, backplane {}, listening on {}:{} (metrics on port {})",
        config.backplane.driver, server.host, server.port, server.metrics_port
    );
    ExitCode::SUCCESS
}
