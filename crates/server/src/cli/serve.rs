//! `ferrocast [serve] [--config FILE]`: run a node until SIGTERM/SIGINT.

use std::process::ExitCode;

use ferrocast_server::logging::{self, LogFormat};
use ferrocast_server::reload::ConfigSource;
use ferrocast_server::{config, run};
use tracing::{error, info, warn};

use super::args::{LogFormatArg, ServeArgs};
use super::{fail, EXIT_USAGE};

pub fn run(args: ServeArgs) -> ExitCode {
    let file = args.config.as_deref();
    let source = ConfigSource {
        file: file.map(str::to_owned),
        env: std::env::vars().collect(),
    };
    let mut config = match config::load(file, source.env.iter().cloned()) {
        Ok(config) => config,
        Err(e) => return fail(EXIT_USAGE, format_args!("invalid configuration: {e}")),
    };
    let as_loaded = config.clone();
    if let Some(format) = args.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if let Err(e) = logging::init(&config.log) {
        return fail(EXIT_USAGE, e);
    }
    info!(
        version = ferrocast_server::VERSION,
        commit = ferrocast_server::COMMIT,
        "ferrocast"
    );
    if file.is_none() && !config.registry.is_postgres() {
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
        Err(e) => return fail(1, format_args!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(serve(config, source, as_loaded))
}

async fn serve(config: config::Config, source: ConfigSource, as_loaded: config::Config) -> ExitCode {
    let (state, listener, metrics_listener) = match run::start(config, source, as_loaded).await {
        Ok(started) => started,
        Err(e) if e.is_config() => {
            error!("{e}");
            return fail(EXIT_USAGE, format_args!("invalid configuration: {e}"));
        }
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let server = &state.config.server;
    let (ws, http) = if state.edge.tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    info!(
        "ferrocast listening on {ws}://{host}:{port}/app/{{key}} and {http}://{host}:{port}/apps/{{id}}; metrics, /healthz and /readyz on http://{host}:{metrics}",
        host = server.host,
        port = server.port,
        metrics = server.metrics_port
    );
    run::run(state, listener, metrics_listener).await;
    ExitCode::SUCCESS
}
