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

use ferrocast_protocol::webhook::WebhookEvent;
use tracing::{info, warn};

use super::{webhooks, Node};
use crate::backplane::{ChannelMessage, DeliverySink, Link, Payload};
use crate::cluster::NodeSnapshot;
use crate::local_channels::ChannelKey;

/// A protocol message for this node's sockets only.
fn local_message(key: &ChannelKey, payload: Payload) -> ChannelMessage {
    ChannelMessage::new(&key.app_id, &key.channel, payload)
}

/// A presence member whose last socket on this node left: (app, channel, user).
pub type Departure = (String, String, String);

/// How long after re-registering before unaccounted departures are checked: long enough for
/// the other nodes to re-register after Redis lost its data.
const DEPARTURE_CHECK_DELAY: Duration = Duration::from_secs(3);

/// How long a repair waits after a failed write before resyncing: failures come in bursts
/// while Redis is away, and one resync settles them all.
const REPAIR_SETTLE: Duration = Duration::from_millis(500);

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
                    if let Some(pending) = self.resync_until_done(&link).await {
                        done_generation = Some(generation);
                        self.registered.store(true, Ordering::Release);
                        info!(generation, "node registered in the cluster");
                        tokio::spawn(self.clone().after_resync(generation, pending.0, pending.1));
                    }
                    continue;
                }
                Link::Up { .. } => {}
            }
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = self.repair.notified(), if done_generation.is_some() => {
                    self.repair_registrations(&link).await;
                }
            }
        }
    }

    /// A cluster-state write failed or timed out. Whether it took effect is unknown (a timed-out
    /// script may still run when Redis resumes), so the node's registrations may now differ
    /// from its local state, and no outage may follow to resync them: ask for a resync now.
    pub(super) fn cluster_write_failed(&self) {
        self.repair.notify_one();
    }

    /// Resync after failed writes, once the cluster state answers again: the whole local state
    /// replaces the node's registrations, which settles every write whose outcome was unknown
    /// and reports what changed. A resync that itself waited long may have overtaken a late
    /// write (both queued in a stalled Redis): it is followed by one more.
    async fn repair_registrations(self: &Arc<Self>, link: &tokio::sync::watch::Receiver<Link>) {
        tokio::time::sleep(REPAIR_SETTLE).await;
        let Link::Up { generation } = *link.borrow() else {
            return;
        };
        let started = std::time::Instant::now();
        let Some((pending, reset)) = self.resync_until_done(link).await else {
            return;
        };
        self.options.observer.registrations_repaired();
        info!(generation, "registrations repaired after a failed cluster-state write");
        tokio::spawn(self.clone().after_resync(generation, pending, reset));
        if started.elapsed() > REPAIR_SETTLE {
            self.repair.notify_one();
        }
    }

    /// Retry the resync with backoff while the link stays on the same state; `None` if the
    /// link changed meanwhile (the caller re-evaluates). Returns the departures to verify.
    async fn resync_until_done(&self, link: &tokio::sync::watch::Receiver<Link>) -> Option<(Vec<Departure>, bool)> {
        let mut delay = Duration::from_millis(100);
        loop {
            if link.has_changed().unwrap_or(true) {
                return None;
            }
            match self.resync().await {
                Ok(pending) => return Some(pending),
                Err(e) => warn!(error = %e, "re-registering local state failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Replace this node's registrations in the cluster state with its local state and
    /// announce the resulting presence changes. Returns the departures the cluster state could
    /// not account for, and whether the store was reset (then the other nodes may not have
    /// re-registered yet, so the check waits a little).
    pub async fn resync(&self) -> Result<(Vec<Departure>, bool), crate::error::BackplaneError> {
        let outcome = {
            let _all = self.gate.exclusive().await;
            let snapshot = self.snapshot();
            self.cluster.resync(&snapshot).await?
        };
        // After the store lost its data every member, channel and user re-registered would look
        // new: the store leaves those out (see `ResyncOutcome::store_was_reset`), so what is
        // listed is news. What really changed where the data was lost is found by the
        // reconciliation that follows, once the other nodes re-registered.
        for (app_id, channel) in outcome.channels_occupied {
            self.report(&app_id, WebhookEvent::ChannelOccupied { channel });
        }
        for (app_id, channel, user_id, user_info, seq) in outcome.added {
            let payload = Payload::MemberAdded {
                user_id: user_id.clone(),
                user_info,
                seq,
            };
            self.publish_internal(ChannelMessage::new(&app_id, &channel, payload))
                .await;
            self.report(&app_id, WebhookEvent::MemberAdded { channel, user_id });
        }
        let mut pending = std::mem::take(&mut *self.pending_departures.lock().unwrap_or_else(|e| e.into_inner()));
        // A departure the resync removed is announced below; one whose leave did take effect
        // (after this node gave up waiting) is confirmed and reported through its standing leave.
        pending.retain(|(a, c, u)| !outcome.removed.iter().any(|(ra, rc, ru, _)| (ra, rc, ru) == (a, c, u)));
        pending.retain(|(a, c, u)| {
            !outcome
                .leaves
                .iter()
                .any(|l| (&l.app_id, &l.channel, l.user_id.as_ref()) == (a, c, Some(u)))
        });
        for (app_id, channel, user_id, seq) in outcome.removed {
            let payload = Payload::MemberRemoved {
                user_id: user_id.clone(),
                seq,
            };
            self.publish_internal(ChannelMessage::new(&app_id, &channel, payload))
                .await;
            self.report(&app_id, WebhookEvent::MemberRemoved { channel, user_id });
        }
        for (app_id, channel) in outcome.channels_vacated {
            self.report(&app_id, WebhookEvent::ChannelVacated { channel });
        }
        webhooks::inherit_leaves(
            &self.leaves,
            &self.cluster,
            &self.options.webhooks,
            self.options.leave_delay,
            &outcome.leaves,
        );
        self.announce_users(&outcome.users_online, &outcome.users_offline).await;
        Ok((pending, outcome.store_was_reset))
    }

    pub(super) fn remember_departure(&self, app_id: &str, channel: &str, user_id: &str) {
        let departure = (app_id.to_owned(), channel.to_owned(), user_id.to_owned());
        let mut pending = self.pending_departures.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.contains(&departure) {
            pending.push(departure);
        }
    }

    pub(super) fn forget_departure(&self, app_id: &str, channel: &str, user_id: &str) {
        let mut pending = self.pending_departures.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|(a, c, u)| (a.as_str(), c.as_str(), u.as_str()) != (app_id, channel, user_id));
    }

    /// After re-registering: bring local presence views in line with the cluster and announce
    /// departures that happened during the outage. If the store was reset, first give the other
    /// nodes time to re-register.
    async fn after_resync(self: Arc<Self>, generation: u64, pending: Vec<Departure>, store_was_reset: bool) {
        if store_was_reset {
            tokio::time::sleep(DEPARTURE_CHECK_DELAY).await;
        }
        // A later outage makes this pass stale: the resync after it schedules its own.
        let current = *self.backplane.link().borrow() == Link::Up { generation };
        if !current || !self.registered.load(Ordering::Acquire) {
            for (app_id, channel, user_id) in pending {
                self.remember_departure(&app_id, &channel, &user_id);
            }
            return;
        }
        self.reconcile_presence().await;
        self.announce_departures(pending).await;
    }

    /// Presence events lost while this node was cut off (Redis pub/sub does not replay them)
    /// left its sockets' rosters stale: tell them, locally, what changed, stamped with the
    /// sequence of the roster read (sockets whose roster or events are newer drop them).
    async fn reconcile_presence(&self) {
        for (key, believed) in self.local.presence_beliefs() {
            let roster = match self.cluster.presence_roster(&key.app_id, &key.channel).await {
                Ok(roster) => roster,
                Err(e) => {
                    warn!(error = %e, channel = %key.channel, "presence reconciliation skipped");
                    continue;
                }
            };
            let ids: std::collections::HashSet<&str> = roster.members.iter().map(|(id, _)| id.as_str()).collect();
            for user_id in believed.iter().filter(|id| !ids.contains(id.as_str())) {
                let payload = Payload::MemberRemoved {
                    user_id: user_id.clone(),
                    seq: roster.seq,
                };
                self.fan_out.deliver(&local_message(&key, payload));
            }
            let believed: std::collections::HashSet<&str> = believed.iter().map(String::as_str).collect();
            for (user_id, info) in roster.members.iter().filter(|(id, _)| !believed.contains(id.as_str())) {
                let payload = Payload::MemberAdded {
                    user_id: user_id.clone(),
                    user_info: info.clone(),
                    seq: roster.seq,
                };
                self.fan_out.deliver(&local_message(&key, payload));
            }
        }
    }

    /// Announce `member_removed` for departures that are not members (a user may have sockets
    /// on other nodes).
    async fn announce_departures(&self, pending: Vec<Departure>) {
        for (app_id, channel, user_id) in pending {
            match self.cluster.presence_roster(&app_id, &channel).await {
                Ok(roster) if roster.members.iter().any(|(id, _)| *id == user_id) => {}
                Ok(roster) => {
                    let payload = Payload::MemberRemoved {
                        user_id: user_id.clone(),
                        seq: roster.seq,
                    };
                    self.publish_internal(ChannelMessage::new(&app_id, &channel, payload))
                        .await;
                    self.report(&app_id, WebhookEvent::MemberRemoved { channel, user_id });
                }
                Err(e) => {
                    warn!(error = %e, channel, user_id, "departure check failed; retried after the next resync");
                    self.remember_departure(&app_id, &channel, &user_id);
                }
            }
        }
    }

    /// Everything this node holds locally.
    pub fn snapshot(&self) -> NodeSnapshot {
        let mut snapshot = NodeSnapshot::default();
        for app in self.apps.snapshot().iter() {
            let open = app.local_connections.load(Ordering::Acquire);
            if open > 0 {
                snapshot.connections.push((app.id().to_owned(), open));
            }
        }
        for (key, subscribers, members) in self.local.snapshot() {
            // Signed-in users are registered as users, never as subscriptions.
            if let Some(user_id) = ferrocast_protocol::user::server_to_user_id(&key.channel) {
                snapshot
                    .users
                    .push((key.app_id.to_string(), user_id.to_owned(), subscribers));
                continue;
            }
            if super::users::is_user_channel(&key.channel) {
                continue;
            }
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
