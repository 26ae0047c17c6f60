//! Readiness and re-registration.
//!
//! A node is ready only while its backplane link is up *and* its local state is registered for
//! the link's current generation. Each new generation (first connect, reconnect after an
//! outage, or a peer having reaped this node) triggers a resync: under the exclusive resync
//! gate, the node's whole local state replaces whatever the cluster state holds for it, and
//! the presence members that appeared or vanished as a result are announced.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferrocast_protocol::outbound;
use tracing::{info, warn};

use super::Node;
use crate::backplane::{Link, NodeSnapshot};

impl Node {
    /// Whether this node is joined to the cluster and may take traffic.
    pub fn is_ready(&self) -> bool {
        self.registered.load(Ordering::Acquire) && matches!(*self.backplane.link().borrow(), Link::Up { .. })
    }

    /// Watch the backplane link for as long as the node runs, re-registering on each new
    /// generation. Spawn it once after [`Node::new`].
    pub async fn maintain_cluster_link(self: Arc<Self>) {
        let mut link = self.backplane.link();
        let mut done_generation = None;
        loop {
            let state = *link.borrow_and_update();
            match state {
                Link::Down => self.registered.store(false, Ordering::Release),
                Link::Up { generation } if done_generation != Some(generation) => {
                    self.registered.store(false, Ordering::Release);
                    if self.resync_until_done(&link).await {
                        done_generation = Some(generation);
                        self.registered.store(true, Ordering::Release);
                        info!(generation, "node registered in the cluster");
                    }
                    continue;
                }
                Link::Up { .. } => {}
            }
            if link.changed().await.is_err() {
                return;
            }
        }
    }

    /// Retry the resync with backoff while the link stays on the same state; false if the
    /// link changed meanwhile (the caller re-evaluates).
    async fn resync_until_done(&self, link: &tokio::sync::watch::Receiver<Link>) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            if link.has_changed().unwrap_or(true) {
                return false;
            }
            match self.resync().await {
                Ok(()) => return true,
                Err(e) => warn!(error = %e, "re-registering local state failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Replace this node's registrations in the cluster state with its local state and
    /// announce the resulting presence changes.
    pub async fn resync(&self) -> Result<(), crate::error::BackplaneError> {
        let outcome = {
            let _all = self.gate.exclusive().await;
            let snapshot = self.snapshot();
            self.cluster.resync(&snapshot).await?
        };
        for (app_id, channel, user_id, user_info) in outcome.added {
            let data = outbound::member_added_data(&user_id, &user_info);
            self.publish_internal(&app_id, &channel, "pusher_internal:member_added", data, None)
                .await;
        }
        for (app_id, channel, user_id) in outcome.removed {
            let data = outbound::member_removed_data(&user_id);
            self.publish_internal(&app_id, &channel, "pusher_internal:member_removed", data, None)
                .await;
        }
        Ok(())
    }

    /// Everything this node holds locally.
    pub fn snapshot(&self) -> NodeSnapshot {
        let mut snapshot = NodeSnapshot::default();
        for app in self.apps.iter() {
            let open = app.local_connections.load(Ordering::Acquire);
            if open > 0 {
                snapshot.connections.push((app.id().to_owned(), open));
            }
        }
        for (key, subscribers, members) in self.local.snapshot() {
            let (app_id, channel) = (key.app_id.to_string(), key.channel.to_string());
            for (member, sockets) in members {
                snapshot.presence.push((
                    app_id.clone(),
                    channel.clone(),
                    member.user_id,
                    member.user_info,
                    sockets,
                ));
            }
            snapshot.subscriptions.push((app_id, channel, subscribers));
        }
        snapshot
    }
}
