//! Logs: `[log]` (format and filter), the `FERROCAST_LOG` variable, and the subscriber.
//!
//! Two failure modes this module exists to prevent: a filter with a typo that silently hides
//! every line (fatal errors included), and ANSI colour codes written into a log file or a log
//! shipper. An invalid filter is a configuration error (exit 2); colours only go to a terminal.

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// The variable that replaces `[log] filter` (the convention of `RUST_LOG`).
pub const FILTER_ENV: &str = "FERROCAST_LOG";

/// Levels a directive without `=` may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` (one object per line) for log shippers.
    pub format: LogFormat,
    /// Comma-separated directives: a level (`info`), or `target=level`
    /// (`ferrocast_broker=debug`). `FERROCAST_LOG` replaces it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, ...).
    Json,
}

/// Parse a filter, refusing what `EnvFilter` would accept but that hides everything by mistake:
/// an empty filter, and a bare word that is not a level (`verbose`, `INFO:`), which `EnvFilter`
/// reads as a target name and so enables only that (nonexistent) target.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    if filter.trim().is_empty() {
        return Err("is empty: it would hide every log line; use \"off\" to mean that".into());
    }
    for directive in filter.split(',').map(str::trim) {
        if directive.is_empty() {
            return Err(format!("{filter:?} has an empty directive"));
        }
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is neither a level ({}) nor target=level",
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| format!("{filter:?} is not a valid filter: {e}"))
}

/// Install the global subscriber: lines to stdout, colours only when stdout is a terminal.
/// `config.filter` must have passed [`parse_filter`] (config loading checks it).
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = parse_filter(&config.filter)?;
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let installed = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets_are_filters() {
        for ok in [
            "info",
            "WARN",
            "off",
            "ferrocast_broker=debug,info",
            "hyper=warn, debug",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn mistakes_that_would_hide_everything_are_refused() {
        for bad in ["", "  ", "verbose", "info,", "INFO:", "ferrocast=loud"] {
            assert!(parse_filter(bad).is_err(), "{bad:?} accepted");
        }
    }
}
