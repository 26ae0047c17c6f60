//! The schema, as numbered migrations applied in order, each once.
//!
//! `ferrocast_schema_migrations` records the versions applied. Every node runs the pending ones
//! at start (and `ferrocast migrate` does it explicitly), each in its own transaction that first
//! takes a transaction-level advisory lock, so nodes starting together apply each migration once
//! and the others wait, then see it applied. A migration is never edited once released: a change
//! to the schema is a new version.

use tokio_postgres::Client;
use tracing::{info, warn};

use crate::RegistryError;

/// One step of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order (versions strictly increasing; checked by a test).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "apps table and change notifications",
    sql: include_str!("sql/0001_apps.sql"),
}];

/// The advisory lock every migrating node takes (an arbitrary constant: "ferrocast" in ASCII).
const LOCK_ID: i64 = 0x6665_7272_6f63_6173;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS ferrocast_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The migrations not yet in `applied`, in order.
pub fn pending(applied: &[i32]) -> Vec<&'static Migration> {
    MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)).collect()
}

/// Apply every pending migration; returns the versions applied now (empty when up to date).
/// `at` names the server in errors.
pub async fn migrate(client: &mut Client, at: &str) -> Result<Vec<i32>, RegistryError> {
    let pg = |source| RegistryError::Postgres {
        at: at.to_owned(),
        source,
    };
    let mut done = Vec::new();
    for migration in MIGRATIONS {
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ID])
            .await
            .map_err(pg)?;
        tx.batch_execute(CREATE_TABLE).await.map_err(pg)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM ferrocast_schema_migrations", &[])
            .await
            .map_err(pg)?
            .iter()
            .map(|row| row.try_get::<_, i32>(0))
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        if let Some(newest) = applied.iter().max().filter(|v| **v > latest()) {
            warn!(
                schema_version = newest,
                known = latest(),
                "the registry schema is newer than this binary knows; running with it"
            );
        }
        if !pending(&applied).contains(&migration) {
            tx.commit().await.map_err(pg)?;
            continue;
        }
        let failed = |source| RegistryError::Migration {
            at: at.to_owned(),
            version: migration.version,
            name: migration.name,
            source,
        };
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO ferrocast_schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        info!(
            version = migration.version,
            name = migration.name,
            "registry schema migrated"
        );
        done.push(migration.version);
    }
    Ok(done)
}

/// The newest schema version this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_and_increase_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }

    #[test]
    fn pending_keeps_the_order_and_skips_what_is_applied() {
        let all: Vec<i32> = pending(&[]).iter().map(|m| m.version).collect();
        assert_eq!(all, MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());
        assert!(pending(&[1]).iter().all(|m| m.version != 1));
        assert!(pending(&(1..=latest()).collect::<Vec<_>>()).is_empty());
        // A version this binary does not know changes nothing.
        assert_eq!(pending(&[99]).len(), MIGRATIONS.len());
    }

    #[test]
    fn the_first_migration_notifies_on_every_change() {
        let sql = MIGRATIONS[0].sql;
        for needle in [
            "CREATE TABLE ferrocast_apps",
            "pg_notify('ferrocast_apps'",
            "AFTER INSERT OR UPDATE OR DELETE",
            "AFTER TRUNCATE",
        ] {
            assert!(sql.contains(needle), "{needle}");
        }
        assert_eq!(crate::CHANNEL, "ferrocast_apps");
    }
}
