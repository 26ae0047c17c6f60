//! `ferrocast`: with no arguments, one node on the in-process backplane with a demo app;
//! with `--config FILE`, a node configured from the file (and `FERROCAST_*__*` variables).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use ferrocast_server::{config, run};
use tracing::{error, info, warn};

const USAGE: &str = "usage: ferrocast [--config FILE.toml]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--config" => Some(path.clone()),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("ferrocast: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match config::load(file.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ferrocast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    if file.is_none() {
        warn!("no --config given: running the demo app (id app-id, key app-key, secret app-secret); do not use these credentials in production");
    }
    for warning in config::warnings(&config, file.is_some()) {
        warn!("configuration: {warning}");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrocast: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (state, listener, metrics_listener) = match run::start(config).await {
            Ok(started) => started,
            Err(e) if e.is_config() => {
                eprintln!("ferrocast: invalid configuration: {e}");
                error!("{e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let server = &state.config.server;
        let (ws, http) = if state.edge.tls.is_some() { ("wss", "https") } else { ("ws", "http") };
        info!(
            "ferrocast listening on {ws}://{host}:{port}/app/{{key}} and {http}://{host}:{port}/apps/{{id}}; metrics, /healthz and /readyz on http://{host}:{metrics}",
            host = server.host,
            port = server.port,
            metrics = server.metrics_port
        );
        run::run(state, listener, metrics_listener).await;
        ExitCode::SUCCESS
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}
