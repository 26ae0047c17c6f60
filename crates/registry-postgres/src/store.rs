//! The queries of the registry and of `ferrocast apps`, over a small connection pool.
//!
//! Every change is one statement (autocommit), so the `ferrocast_apps` trigger notifies every
//! node as soon as it commits.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::row::{AppRow, COLUMNS};
use crate::{PgUrl, RegistryError};

/// Connections a node keeps: one for refreshes, one for lookups of unknown keys, one spare (the
/// `LISTEN` connection is separate).
const POOL_SIZE: usize = 3;
/// How long a query may wait for a connection (or for one to be made).
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A connection pool to the registry's database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    url: PgUrl,
}

impl Store {
    /// A pool that connects lazily (nothing is contacted here).
    pub fn new(url: &PgUrl) -> Result<Self, RegistryError> {
        let manager = Manager::from_config(
            url.config().clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| RegistryError::Pool {
                at: url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self { pool, url: url.clone() })
    }

    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    fn pg(&self, source: tokio_postgres::Error) -> RegistryError {
        RegistryError::Postgres {
            at: self.url.to_string(),
            source,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, RegistryError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(source) => self.pg(source),
            other => RegistryError::Pool {
                at: self.url.to_string(),
                message: other.to_string(),
            },
        })
    }

    /// Apply the pending migrations (see [`crate::migrate`]).
    pub async fn migrate(&self) -> Result<Vec<i32>, RegistryError> {
        let mut client = self.client().await?;
        crate::migrate(&mut client, &self.url.to_string()).await
    }

    /// Every app, sorted by id.
    pub async fn all(&self) -> Result<Vec<AppRow>, RegistryError> {
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM ferrocast_apps ORDER BY id");
        let rows = client.query(&sql, &[]).await.map_err(|e| self.pg(e))?;
        rows.iter()
            .map(|r| AppRow::from_row(r).map_err(|e| self.pg(e)))
            .collect()
    }

    /// Whether an app with this id (`by_key` false) or key exists.
    pub async fn exists(&self, value: &str, by_key: bool) -> Result<bool, RegistryError> {
        let client = self.client().await?;
        let sql = if by_key {
            "SELECT 1 FROM ferrocast_apps WHERE key = $1"
        } else {
            "SELECT 1 FROM ferrocast_apps WHERE id = $1"
        };
        let row = client.query_opt(sql, &[&value]).await.map_err(|e| self.pg(e))?;
        Ok(row.is_some())
    }

    /// The app with this id, if any.
    pub async fn get(&self, id: &str) -> Result<Option<AppRow>, RegistryError> {
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM ferrocast_apps WHERE id = $1");
        let row = client.query_opt(&sql, &[&id]).await.map_err(|e| self.pg(e))?;
        row.map(|r| AppRow::from_row(&r).map_err(|e| self.pg(e))).transpose()
    }

    /// Insert a new app; an id or key already taken is a [`RegistryError::Conflict`].
    pub async fn insert(&self, row: &AppRow) -> Result<(), RegistryError> {
        let client = self.client().await?;
        let sql = "INSERT INTO ferrocast_apps (id, key, secret, previous_secret, previous_secret_expires_at, enabled, limits, webhooks) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        client
            .execute(sql, &row.params())
            .await
            .map(drop)
            .map_err(|e| self.conflict(e, row))
    }

    /// Replace every column of app `row.id`.
    pub async fn update(&self, row: &AppRow) -> Result<(), RegistryError> {
        let client = self.client().await?;
        let sql =
            "UPDATE ferrocast_apps SET key = $2, secret = $3, previous_secret = $4, previous_secret_expires_at = $5, \
                   enabled = $6, limits = $7, webhooks = $8 WHERE id = $1";
        match client.execute(sql, &row.params()).await {
            Ok(0) => Err(RegistryError::NoSuchApp(row.id.clone())),
            Ok(_) => Ok(()),
            Err(e) => Err(self.conflict(e, row)),
        }
    }

    /// Delete an app.
    pub async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        let client = self.client().await?;
        match client.execute("DELETE FROM ferrocast_apps WHERE id = $1", &[&id]).await {
            Ok(0) => Err(RegistryError::NoSuchApp(id.to_owned())),
            Ok(_) => Ok(()),
            Err(e) => Err(self.pg(e)),
        }
    }

    /// A unique or check violation as a refused change naming the constraint, anything else as
    /// a PostgreSQL error.
    fn conflict(&self, e: tokio_postgres::Error, row: &AppRow) -> RegistryError {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
                let what = match e.as_db_error().and_then(|d| d.constraint()) {
                    Some(c) if c.ends_with("_key_key") => format!("the key {:?} is taken by another app", row.key),
                    _ => format!("an app with id {:?} already exists", row.id),
                };
                RegistryError::Conflict(what)
            }
            // Any other integrity violation (class 23): the server's message only. Its DETAIL
            // ("Failing row contains (...)") would quote the row, secret included.
            Some(code) if code.code().starts_with("23") => {
                let message = e.as_db_error().map_or("refused by the database", |d| d.message());
                RegistryError::Conflict(format!("refused by the database: {message}"))
            }
            _ => self.pg(e),
        }
    }
}
