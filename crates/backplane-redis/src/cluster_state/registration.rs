//! [`NodeRegistration`] on Redis (`lua/resync.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, NodeRegistration, NodeSnapshot, ResyncOutcome};

use super::{array, int, malformed, rows, standing_leaves, string};
use crate::RedisBackplane;

#[async_trait]
impl NodeRegistration for RedisBackplane {
    async fn resync(&self, snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        let ttl_ms = self.options.node_ttl.as_millis().to_string();
        let known = self.epoch.lock().map(|e| e.clone()).unwrap_or_default();
        let proposal = format!("{}-{:016x}", self.keys.node(), crate::pubsub::rand_nonce());
        let mut args = self.registry_args(self.keys.node());
        args.extend([self.keys.node().to_owned(), ttl_ms, known, proposal]);
        args.push(snapshot.connections.len().to_string());
        for (app, count) in &snapshot.connections {
            args.extend([app.clone(), count.to_string()]);
        }
        args.push(snapshot.subscriptions.len().to_string());
        for (app, channel, count) in &snapshot.subscriptions {
            args.extend([app.clone(), channel.clone(), count.to_string()]);
        }
        args.push(snapshot.presence.len().to_string());
        for (app, channel, user, info, sockets) in &snapshot.presence {
            args.extend([
                app.clone(),
                channel.clone(),
                user.clone(),
                info.clone(),
                sockets.len().to_string(),
            ]);
            args.extend(sockets.iter().cloned());
        }
        args.push(snapshot.users.len().to_string());
        for (app, user, count) in &snapshot.users {
            args.extend([app.clone(), user.clone(), count.to_string()]);
        }
        let reply = self.eval(&self.scripts.resync, Vec::new(), args).await?;
        let parts = array(&reply).ok_or_else(|| malformed("resync"))?;
        let (Some(added), Some(removed), Some(epoch), Some(reset), Some(online), Some(offline)) = (
            parts.first().and_then(rows),
            parts.get(1).and_then(rows),
            parts.get(2).and_then(string),
            parts.get(3).and_then(int),
            parts.get(4).and_then(rows),
            parts.get(5).and_then(rows),
        ) else {
            return Err(malformed("resync"));
        };
        let (Some(occupied), Some(vacated), Some(leaves)) = (
            parts.get(6).and_then(rows),
            parts.get(7).and_then(rows),
            parts.get(8).and_then(rows),
        ) else {
            return Err(malformed("resync"));
        };
        if let Ok(mut known) = self.epoch.lock() {
            *known = epoch;
        }
        Ok(ResyncOutcome {
            store_was_reset: reset == 1,
            added: added
                .into_iter()
                .filter_map(|r| match <[String; 5]>::try_from(r) {
                    Ok([a, c, u, i, s]) => Some((a, c, u, i, s.parse().ok()?)),
                    Err(_) => None,
                })
                .collect(),
            removed: removed
                .into_iter()
                .filter_map(|r| match <[String; 4]>::try_from(r) {
                    Ok([a, c, u, s]) => Some((a, c, u, s.parse().ok()?)),
                    Err(_) => None,
                })
                .collect(),
            users_online: app_users(online),
            users_offline: app_users(offline),
            channels_occupied: app_users(occupied),
            channels_vacated: app_users(vacated),
            leaves: standing_leaves(leaves),
        })
    }
}

/// `{{app, user}, ...}` (or `{{app, channel}, ...}`) rows as pairs (malformed rows skipped).
fn app_users(rows: Vec<Vec<String>>) -> Vec<(String, String)> {
    rows.into_iter()
        .filter_map(|r| <[String; 2]>::try_from(r).ok().map(|[a, u]| (a, u)))
        .collect()
}
