//! The one code path every app source applies a new list of apps through: the `file` source
//! (a reload of the config file, see [`crate::reload`]) and the `postgres` one (see
//! [`ferrocast_registry_postgres`]). It reconfigures the webhook dispatcher, hands the list to
//! [`ferrocast_broker::Node::apply_apps`] (which closes the sockets of removed and disabled
//! apps), starts the metric series of new apps and logs each change (never a secret).

use std::sync::Arc;

use ferrocast_broker::{AppChange, AppChangeKind, AppConfig};
use ferrocast_registry_postgres::Loaded;
use tracing::{error, info};

use crate::state::ServerState;

/// Apply `apps` (validated: unique ids and keys, each app valid); `source` names the trigger in
/// the log. One list at a time: concurrent callers wait.
pub fn apply(state: &ServerState, apps: Vec<AppConfig>, source: &str) -> Vec<AppChange> {
    let _one = state.applying.lock().unwrap_or_else(|p| p.into_inner());
    state.webhooks.reconfigure(&apps);
    let changes = state.node.apply_apps(apps);
    for change in &changes {
        if change.has(AppChangeKind::Added) {
            state.metrics.start_app(&change.id);
        }
        info!(source, app_id = %change.id, changed = %change.describe(), "app reloaded");
    }
    changes
}

/// Apply what the postgres registry read. Each app is checked like an `[[apps]]` entry; one
/// that fails (a row edited by hand into something invalid), and one whose row did not map,
/// keeps the configuration the node runs for it, or stays absent if it runs none. Returns how
/// many apps changed.
pub fn apply_loaded(state: &ServerState, loaded: Loaded) -> usize {
    let running = state.node.apps();
    let mut apps = Vec::with_capacity(loaded.apps.len());
    let mut keys = std::collections::HashSet::new();
    for app in loaded.apps {
        match crate::config::validate_app(&format!("app {:?}", app.id), &app) {
            Ok(()) => apps.push(app),
            Err(e) => {
                error!(error = %e, "registry: an app is invalid; the node keeps what it runs for it (if anything)");
                if let Some(current) = running.by_id(&app.id) {
                    apps.push((*current.config()).clone());
                }
            }
        }
    }
    for id in &loaded.invalid {
        if let Some(current) = running.by_id(id) {
            apps.push((*current.config()).clone());
        }
    }
    // A kept configuration may hold a key another app has taken since: the newer row wins.
    apps.retain(|app| keys.insert(app.key.clone()));
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    let count = apps.len();
    let changes = apply(state, apps, loaded.why);
    if !changes.is_empty() {
        info!(
            why = loaded.why,
            apps = count,
            changed = changes.len(),
            "registry: apps applied"
        );
    }
    changes.len()
}

/// The postgres registry's view of the node: applies through [`apply_loaded`]. Holds the state
/// weakly (the state holds the registry).
pub fn postgres_applier(state: &Arc<ServerState>) -> ferrocast_registry_postgres::ApplyApps {
    let weak = Arc::downgrade(state);
    Arc::new(move |loaded| match weak.upgrade() {
        Some(state) => apply_loaded(&state, loaded),
        None => 0,
    })
}
