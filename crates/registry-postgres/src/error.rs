//! What can go wrong talking to PostgreSQL. Messages name the server (without its password),
//! never a secret: `tokio_postgres` errors name options and SQL states, not values.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    /// The URL does not parse or asks for something this build cannot do.
    #[error("{0}")]
    Url(String),
    /// Connecting or a query failed (server down, refused, SQL error).
    #[error("PostgreSQL at {at}: {}", describe(.source))]
    Postgres {
        at: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be had from the pool in time.
    #[error("PostgreSQL at {at}: {message}")]
    Pool { at: String, message: String },
    /// A migration failed; the transaction was rolled back.
    #[error("PostgreSQL at {at}: migration {version} ({name}) failed: {}", describe(.source))]
    Migration {
        at: String,
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A row of `ferrocast_apps` is not a valid app.
    #[error(transparent)]
    Row(#[from] crate::row::RowError),
    /// `ferrocast apps update|remove|...` named an app that does not exist.
    #[error("no app with id {0:?}")]
    NoSuchApp(String),
    /// `ferrocast apps add` named an id or key already taken.
    #[error("{0}")]
    Conflict(String),
}

impl RegistryError {
    /// Whether the server could not be reached or used (as opposed to a refused change).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Postgres { .. } | Self::Pool { .. })
    }
}

/// A `tokio_postgres` error on one line: a server error as its SQL state and message (never its
/// DETAIL, which can quote a row, secret included), any other with its causes ("error
/// connecting to server: Connection refused").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
