//! The per-node cache of the `postgres` registry.
//!
//! The node serves from its in-memory app registry only; this keeps it in step with the table:
//! - at start, the pending migrations, then every app (retried with backoff while PostgreSQL is
//!   unreachable: the node is not ready until this first load succeeds);
//! - on every notification of the `ferrocast_apps` trigger (coalesced: a burst of them is one
//!   reload), after every (re)connection of the `LISTEN` connection, and every `refresh_every`
//!   as a safety net for a notification lost in between;
//! - on a key or id the node does not know ([`AppSource::on_miss`]): one bounded lookup (see
//!   `misses`), and a reload when the app exists.
//!
//! Each reload reads the whole table and hands it to the server's [`ApplyApps`], the same code
//! path as a reload of the config file, which diffs it against what runs and acts on the
//! changes only. Reading everything keeps one code path for every trigger and is cheap enough:
//! measured from an SQL `UPDATE` to the new secret accepted, a median of 0.12 s with 5,000 apps
//! (each with a webhook) on a shared 2-core machine, 15 ms with 10 (docs/configuration.md).
//!
//! When PostgreSQL is unreachable the apps already loaded keep being served; the outage shows in
//! [`RegistryStats`] (the server's `ferrocast_registry_*` metrics) and in the log: one ERROR
//! when it starts, a WARN at most every [`WARN_EVERY`] while it lasts, an INFO when it ends.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferrocast_broker::{AppConfig, AppLookup, AppSource};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::listen::{listen, Heard};
use crate::misses::{Admit, Misses};
use crate::{PgUrl, RegistryError, Store};

/// How often a continuing outage is logged again.
pub const WARN_EVERY: Duration = Duration::from_secs(30);
/// A reload (the whole table) must finish within this.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A lookup of an unknown key must finish within this (the client waits for it).
const MISS_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff of the first load while PostgreSQL is unreachable.
const FIRST_LOAD_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// Everything a reload read, for the server to apply.
#[derive(Debug)]
pub struct Loaded {
    /// Every app whose row maps to an app, sorted by id.
    pub apps: Vec<AppConfig>,
    /// Ids of rows that do not map (logged here): the server keeps what it runs for them.
    pub invalid: Vec<String>,
    /// What triggered the reload, for the log.
    pub why: &'static str,
}

/// The server's code path for a new list of apps (validate, `Node::apply_apps`, webhooks);
/// returns how many apps changed.
pub type ApplyApps = Arc<dyn Fn(Loaded) -> usize + Send + Sync>;

/// Settings of the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Full reload interval, the safety net for a lost notification.
    pub refresh_every: Duration,
    /// Apply pending migrations before the first load.
    pub migrate: bool,
}

/// What the registry has done, for metrics (read at scrape time).
#[derive(Debug, Default)]
pub struct RegistryStats {
    /// The last query (or the `LISTEN` connection) succeeded.
    pub up: AtomicBool,
    /// Every app has been loaded at least once.
    pub loaded: AtomicBool,
    /// Failed queries and connections.
    pub errors: AtomicU64,
    /// Reloads of the whole table that succeeded.
    pub reloads: AtomicU64,
    /// Notifications received.
    pub notifications: AtomicU64,
    /// Unix seconds of the last successful reload.
    pub last_reload_unix: AtomicU64,
    /// Apps loaded by the last reload.
    pub apps: AtomicU64,
    /// Lookups of unknown keys and ids, by outcome.
    pub lookups_found: AtomicU64,
    pub lookups_not_found: AtomicU64,
    pub lookups_cached: AtomicU64,
    pub lookups_limited: AtomicU64,
    pub lookups_failed: AtomicU64,
}

/// The `postgres` app source of one node.
pub struct PostgresRegistry {
    store: Store,
    options: RegistryOptions,
    stats: Arc<RegistryStats>,
    misses: Misses,
    apply: std::sync::OnceLock<ApplyApps>,
    /// One reload at a time (the server's apply path must not overlap itself).
    reloading: tokio::sync::Mutex<()>,
    /// When the outage was last logged.
    logged_down: Mutex<Option<Instant>>,
    /// Row errors already logged, so a bad row is reported once, not on every reload.
    logged_rows: Mutex<HashSet<String>>,
}

impl PostgresRegistry {
    /// The registry of `url`; contacts nothing until [`PostgresRegistry::start`].
    pub fn new(url: &PgUrl, options: RegistryOptions) -> Result<Arc<Self>, RegistryError> {
        Ok(Arc::new(Self {
            store: Store::new(url)?,
            options,
            stats: Arc::default(),
            misses: Misses::default(),
            apply: std::sync::OnceLock::new(),
            reloading: tokio::sync::Mutex::new(()),
            logged_down: Mutex::new(None),
            logged_rows: Mutex::new(HashSet::new()),
        }))
    }

    pub fn stats(&self) -> &Arc<RegistryStats> {
        &self.stats
    }

    /// Whether every app has been loaded at least once (a node is not ready before).
    pub fn is_loaded(&self) -> bool {
        self.stats.loaded.load(Ordering::Acquire)
    }

    /// Keep the cache in step with the table until the task is aborted: `apply` receives every
    /// reload. Call once.
    pub async fn run(self: Arc<Self>, apply: ApplyApps) {
        let _ = self.apply.set(apply);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let listener = tokio::spawn(listen(self.store.url().clone(), events_tx));
        self.first_load().await;
        let mut every = tokio::time::interval(self.options.refresh_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                heard = events.recv() => {
                    let Some(heard) = heard else { break };
                    let mut why = self.heard(heard);
                    // Coalesce a burst: everything already queued is one reload.
                    while let Ok(more) = events.try_recv() {
                        why = why.or(self.heard(more));
                    }
                    if let Some(why) = why {
                        let _ = self.reload(why).await;
                    }
                }
                _ = every.tick() => {
                    let _ = self.reload("periodic").await;
                }
            }
        }
        listener.abort();
    }

    /// Act on one event of the listener; `Some` when it calls for a reload.
    fn heard(&self, heard: Heard) -> Option<&'static str> {
        match heard {
            Heard::Listening => Some("listening"),
            Heard::Changed(id) => {
                debug!(app_id = %id, "registry: change notified");
                self.stats.notifications.fetch_add(1, Ordering::Relaxed);
                Some("notified")
            }
            Heard::Lost(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Migrate (if asked) and load every app, retrying with backoff until it works.
    async fn first_load(&self) {
        let (mut backoff, max) = FIRST_LOAD_BACKOFF;
        loop {
            let migrated = if self.options.migrate {
                match tokio::time::timeout(RELOAD_TIMEOUT, self.store.migrate()).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        self.failed(&e.to_string());
                        false
                    }
                    Err(_) => {
                        self.failed(&format!("PostgreSQL at {}: migrations timed out", self.store.url()));
                        false
                    }
                }
            } else {
                true
            };
            if migrated && self.reload("start").await.is_ok() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    }

    /// Read every app and apply them.
    async fn reload(&self, why: &'static str) -> Result<(), ()> {
        let _one = self.reloading.lock().await;
        let rows = match tokio::time::timeout(RELOAD_TIMEOUT, self.store.all()).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                return Err(());
            }
            Err(_) => {
                self.failed(&format!(
                    "PostgreSQL at {}: reading the apps timed out",
                    self.store.url()
                ));
                return Err(());
            }
        };
        self.succeeded();
        let mut apps = Vec::with_capacity(rows.len());
        let mut invalid = Vec::new();
        let mut errors = HashSet::new();
        for row in &rows {
            match row.to_config() {
                Ok(app) => apps.push(app),
                Err(e) => {
                    invalid.push(row.id.clone());
                    errors.insert(e.to_string());
                }
            }
        }
        self.log_row_errors(errors);
        let count = apps.len() as u64;
        let changed = match self.apply.get() {
            Some(apply) => apply(Loaded { apps, invalid, why }),
            None => 0,
        };
        if changed > 0 {
            self.misses.forget();
        }
        self.stats.apps.store(count, Ordering::Relaxed);
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_reload_unix
            .store(ferrocast_broker::unix_seconds(), Ordering::Relaxed);
        self.stats.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Log the row errors not logged yet (and forget those that were fixed).
    fn log_row_errors(&self, now: HashSet<String>) {
        let mut logged = self.logged_rows.lock().unwrap_or_else(|p| p.into_inner());
        for e in now.difference(&logged) {
            error!(error = %e, "registry: an app row is invalid; the node keeps what it runs for that app (if anything)");
        }
        *logged = now;
    }

    fn succeeded(&self) {
        if !self.stats.up.swap(true, Ordering::AcqRel) && self.stats.loaded.load(Ordering::Acquire) {
            info!(url = %self.store.url(), "registry: PostgreSQL reachable again");
        }
        *self.logged_down.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Count and log (rate-limited) a failure; the cached apps stay.
    fn failed(&self, e: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let was_up = self.stats.up.swap(false, Ordering::AcqRel);
        let mut logged = self.logged_down.lock().unwrap_or_else(|p| p.into_inner());
        let due = logged.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if was_up {
            error!(error = %e, "registry: PostgreSQL unavailable; serving the apps already loaded");
        } else if due {
            warn!(error = %e, loaded = self.is_loaded(), "registry: PostgreSQL still unavailable");
        } else {
            return;
        }
        *logged = Some(Instant::now());
    }
}

#[async_trait]
impl AppSource for PostgresRegistry {
    async fn on_miss(&self, lookup: AppLookup<'_>) {
        let (what, value, by_key) = match lookup {
            AppLookup::Key(k) => (format!("k:{k}"), k, true),
            AppLookup::Id(i) => (format!("i:{i}"), i, false),
        };
        let count = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        match self.misses.admit(&what, Instant::now()) {
            Admit::Query => {}
            Admit::KnownMissing => return count(&self.stats.lookups_cached),
            Admit::Limited => return count(&self.stats.lookups_limited),
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(MISS_TIMEOUT, self.misses.concurrent.acquire()).await else {
            return count(&self.stats.lookups_limited);
        };
        match tokio::time::timeout(MISS_TIMEOUT, self.store.exists(value, by_key)).await {
            Ok(Ok(true)) => {
                count(&self.stats.lookups_found);
                self.succeeded();
                let _ = self.reload("lookup").await;
            }
            Ok(Ok(false)) => {
                count(&self.stats.lookups_not_found);
                self.succeeded();
                self.misses.not_found(&what, Instant::now());
            }
            Ok(Err(e)) => {
                count(&self.stats.lookups_failed);
                self.failed(&e.to_string());
            }
            Err(_) => {
                count(&self.stats.lookups_failed);
                self.failed(&format!("PostgreSQL at {}: lookup timed out", self.store.url()));
            }
        }
    }
}
