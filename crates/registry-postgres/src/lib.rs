//! The `postgres` app registry: apps kept in PostgreSQL, cached by every node, changes pushed
//! to every node at once through `LISTEN`/`NOTIFY`.
//!
//! The broker knows nothing of PostgreSQL: a node reads its apps from its in-memory
//! [`ferrocast_broker::AppRegistry`] only. This crate fills it, through a callback the server
//! gives it (the same code path as a reload of the config file), and answers the node's
//! [`ferrocast_broker::AppSource`] hook on an unknown key or id.
//!
//! Layout (modules private, what the server uses re-exported here):
//! - `url`: the connection URL, checked, and its form without the password for logs.
//! - `migrate`: the versioned schema (`ferrocast_schema_migrations`, `ferrocast_apps`, the
//!   trigger that notifies `ferrocast_apps`), applied in order under an advisory lock.
//! - `row`: one row of `ferrocast_apps` and its mapping to and from an [`AppConfig`].
//! - `store`: the queries (a small connection pool): load, look up, add, update, remove.
//! - `listen`: the dedicated `LISTEN` connection, reconnecting with backoff.
//! - `misses`: the bound on lookups of unknown keys and ids (rate, one at a time, negative cache).
//! - `registry`: the per-node cache: first load, full refreshes on notification and every
//!   `refresh_s`, outage tracking, the [`ferrocast_broker::AppSource`] implementation.
//! - `error`: typed errors, none of which carries a password or a secret.
//!
//! [`AppConfig`]: ferrocast_broker::AppConfig

#![forbid(unsafe_code)]

mod error;
mod listen;
mod migrate;
mod misses;
mod registry;
mod row;
mod store;
mod url;

pub use error::RegistryError;
pub use migrate::{migrate, Migration, MIGRATIONS};
pub use registry::{ApplyApps, Loaded, PostgresRegistry, RegistryOptions, RegistryStats};
pub use row::{AppRow, RowError, RESERVED_LIMIT_KEYS};
pub use store::Store;
pub use url::PgUrl;

/// The `NOTIFY` channel the `ferrocast_apps` trigger signals on, with the app id as payload.
pub const CHANNEL: &str = "ferrocast_apps";
