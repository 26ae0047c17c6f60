//! The `file` app source: the `[[apps]]` of the config file, reloaded without a restart on
//! SIGHUP and when the file changes.
//!
//! A change is noticed by polling what the config path resolves to (every second): the
//! resolved path, its inode, size, modification time and a hash of its bytes. A Kubernetes
//! ConfigMap or Secret update swaps the `..data` symlink of the mounted directory, which changes
//! the resolved path, so it is seen like an edit in place.
//!
//! A reload runs the full [`config::load`] again on the same file and environment. A file that
//! does not load or validate is refused: one ERROR line naming the key (never a secret), the
//! `ferrocast_config_reloads_total{result="refused"}` counter, and the running apps unchanged.
//! Only `[[apps]]` applies live (through [`crate::apps::apply`], the code path every app source
//! takes); a change to another section is logged as needing a restart. With the `postgres`
//! registry the file holds no apps: a reload only checks it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::state::ServerState;

/// How often the config file is checked for a change.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Where the running configuration came from, to load it again the same way.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `--config`; `None` runs the embedded demo app, which never changes.
    pub file: Option<String>,
    /// The environment at start (overrides and `secret_env`).
    pub env: Vec<(String, String)>,
}

/// What the config path resolves to, to notice an edit or a swapped symlink.
type Fingerprint = Option<(PathBuf, SystemTime, u64, u64, u64)>;

fn fingerprint(path: &str) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let resolved = std::fs::canonicalize(Path::new(path)).ok()?;
    let meta = std::fs::metadata(&resolved).ok()?;
    let bytes = std::fs::read(&resolved).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some((resolved, meta.modified().ok()?, meta.len(), meta.ino(), hasher.finish()))
}

/// Reloads the apps of a running node; one reload at a time.
pub struct Reloader {
    source: ConfigSource,
    /// The file as last loaded (or tried).
    seen: Mutex<Fingerprint>,
    /// The configuration last applied, to tell which other sections changed.
    running: Mutex<Config>,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Refused,
    /// No config file (the demo app): nothing to reload.
    NoFile,
}

impl Reloader {
    /// `running` is the configuration the node started with (as loaded, before any
    /// command-line override).
    pub fn new(source: ConfigSource, running: Config) -> Self {
        let seen = source.file.as_deref().and_then(fingerprint);
        Self {
            source,
            seen: Mutex::new(seen),
            running: Mutex::new(running),
        }
    }

    /// Whether the file changed since it was last loaded.
    fn changed(&self) -> bool {
        let Some(file) = self.source.file.as_deref() else {
            return false;
        };
        let now = fingerprint(file);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // A file missing for a moment (mid-swap) is not a change to act on: it is looked at
        // again on the next poll.
        if now.is_none() || *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    /// Load the file again and apply its apps; `why` names the trigger in the log.
    pub fn reload(&self, state: &ServerState, why: &str) -> Outcome {
        let Some(file) = self.source.file.as_deref() else {
            info!(why, "no --config file: no apps to reload");
            return Outcome::NoFile;
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint(file);
        let edge = &state.metrics.edge;
        let config = match config::load(Some(file), self.source.env.iter().cloned()) {
            Ok(config) => config,
            Err(e) => {
                edge.config_reload_refused.inc();
                error!(why, file, error = %e, "configuration reload refused; the running apps are kept");
                return Outcome::Refused;
            }
        };
        for warning in config::warnings(&config, true) {
            warn!("configuration: {warning}");
        }
        let restart: Vec<&str> = [
            ("server", running.server != config.server),
            ("backplane", running.backplane != config.backplane),
            ("webhooks", running.webhooks != config.webhooks),
            ("log", running.log != config.log),
            ("registry", running.registry != config.registry),
        ]
        .into_iter()
        .filter_map(|(section, changed)| changed.then_some(section))
        .collect();
        if !restart.is_empty() {
            warn!(
                why,
                sections = restart.join(","),
                "configuration reload: these sections changed and apply only after a restart; only [[apps]] is applied now"
            );
        }
        if state.registry.is_some() || config.registry.is_postgres() {
            // The apps are in PostgreSQL (and `[[apps]]` is empty): nothing of the file applies.
            edge.config_reload_ok.inc();
            info!(
                why,
                file, "configuration checked; the apps come from PostgreSQL ([registry])"
            );
            return Outcome::Applied;
        }
        let changes = crate::apps::apply(state, config.apps.clone(), why);
        edge.config_reload_ok.inc();
        edge.config_last_success.set(ferrocast_broker::unix_seconds() as i64);
        info!(
            why,
            file,
            apps = config.apps.len(),
            changed = changes.len(),
            "configuration reloaded"
        );
        // Keep the sections that need a restart as they run, so the warning repeats until then.
        running.apps = config.apps;
        Outcome::Applied
    }

    /// Reload whenever the file changes, until the task is aborted.
    pub async fn watch(state: Arc<ServerState>) {
        if state.reloader.source.file.is_none() {
            return std::future::pending().await;
        }
        let mut every = tokio::time::interval(POLL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if state.reloader.changed() {
                state.reloader.reload(&state, "file changed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_and_a_symlink_swap_change_the_fingerprint() {
        let dir = std::env::temp_dir().join(format!("ferrocast-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        std::fs::create_dir_all(dir.join("v2")).unwrap();
        std::fs::write(dir.join("v1/f.toml"), "a = 1\n").unwrap();
        std::fs::write(dir.join("v2/f.toml"), "a = 1\n").unwrap();
        std::os::unix::fs::symlink("v1", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/f.toml", dir.join("f.toml")).unwrap();
        let path = dir.join("f.toml").to_string_lossy().into_owned();
        let first = fingerprint(&path);
        assert!(first.is_some());
        assert_eq!(first, fingerprint(&path));
        // The Kubernetes swap: a new `..data` link renamed over the old one.
        std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let swapped = fingerprint(&path);
        assert_ne!(first, swapped);
        // An edit in place that keeps the size.
        std::fs::write(dir.join("v2/f.toml"), "a = 2\n").unwrap();
        assert_ne!(swapped, fingerprint(&path));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(fingerprint(&path), None);
    }
}
