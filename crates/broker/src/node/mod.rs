//! The node: what happens when a socket connects, sends a frame or leaves, and when the REST
//! API publishes or reads.
//!
//! - [`subscribe`]: subscriptions, presence joins and leaves.
//! - [`client_event`]: `client-*` events.
//! - [`cluster_link`]: readiness and re-registration after the backplane reconnects.
//! - [`subscription_count`]: coalesced `subscription_count` updates (frame and webhook).
//! - [`webhooks`]: which webhook events happened, each decided once cluster-wide.
//! - [`cache`]: cache channels: replay to new subscribers, `cache_miss`, `info=cache`.
//! - [`users`]: sign-in, server-to-user delivery, terminate, watchlists.

mod cache;
mod client_event;
mod cluster_link;
mod subscribe;
mod subscription_count;
mod users;
mod webhooks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrocast_protocol::inbound::ClientMessage;
use ferrocast_protocol::outbound;
use tracing::warn;

use crate::app::{App, AppChange, AppChangeKind, AppConfig, AppRegistry};
use crate::app_source::{AppLookup, AppSource};
use crate::backplane::{Backplane, ChannelMessage, DeliverySink, Payload};
use crate::backplane::{MEMBER_ADDED, MEMBER_REMOVED, SUBSCRIPTION_COUNT};
use crate::cluster::{ChannelCounts, ClusterState, Dropped, RateDecision, RateKind};
use crate::connection::{ConnectionHandle, ConnectionOutbox};
use crate::error::{BackplaneError, ConnectError, PublishError};
use crate::frame;
use crate::gate::ResyncGate;
use crate::local_channels::{ChannelKey, LocalChannels, MemberChange};
use crate::observer::{unix_micros, Limit, MessageKind, NodeObserver};
use crate::session::Session;
use crate::webhook::WebhookSink;

/// Settings of the node core that do not belong to any app.
#[derive(Clone)]
pub struct NodeOptions {
    /// Where the node reports deliveries and rejections (metrics).
    pub observer: Arc<dyn NodeObserver>,
    /// Frames a socket may have queued before it is closed as a slow consumer.
    pub queue_capacity: usize,
    /// Bytes a socket may have queued before it is closed as a slow consumer; its reader stops
    /// reading input at half of it (backpressure).
    pub queue_bytes: usize,
    /// First half of every socket id this node mints; random per process so ids are unique
    /// across the cluster.
    pub socket_id_prefix: u32,
    /// Where the node reports webhook events.
    pub webhooks: Arc<dyn WebhookSink>,
    /// How long a channel must stay empty (a member away) before `channel_vacated`
    /// (`member_removed`) is reported; a return within it cancels both reports.
    pub leave_delay: Duration,
}

/// The default of [`NodeOptions::queue_bytes`] (`server.max_queued_bytes`): 1 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 1 << 20;

impl NodeOptions {
    /// Defaults for tests and tools: no metrics, no webhooks.
    pub fn new(queue_capacity: usize, socket_id_prefix: u32) -> Self {
        Self {
            observer: Arc::new(crate::observer::NoObserver),
            queue_capacity,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            socket_id_prefix,
            webhooks: Arc::new(crate::webhook::NoWebhooks),
            leave_delay: Duration::from_secs(3),
        }
    }
}

/// An event to publish through the REST API, already validated.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub channels: Vec<String>,
    pub event: String,
    pub data: String,
    pub exclude_socket: Option<String>,
}

/// Hands backplane messages to local subscribers, encoding the frame once.
struct LocalFanOut {
    local: Arc<LocalChannels>,
    observer: Arc<dyn NodeObserver>,
    webhooks: Arc<dyn WebhookSink>,
    /// To announce what a dropped node's registrations held (weak: the backplane owns us).
    backplane: std::sync::Weak<dyn Backplane>,
    /// To confirm the leaves a dropped node left pending (weak: it may be the backplane too).
    cluster: std::sync::Weak<dyn ClusterState>,
    /// The node's pending leaves, which inherited ones join.
    leaves: Arc<webhooks::LeaveQueues>,
    /// See [`NodeOptions::leave_delay`].
    leave_delay: Duration,
}

impl LocalFanOut {
    /// Report a message queued to `recipients` local sockets.
    fn delivered(&self, m: &ChannelMessage, recipients: usize) {
        if recipients > 0 {
            let latency_s = unix_micros().saturating_sub(m.published_at_us) as f64 / 1e6;
            self.observer
                .delivered(&m.app_id, MessageKind::of(m.event_name()), recipients, latency_s);
        }
    }
}

impl DeliverySink for LocalFanOut {
    fn deliver(&self, m: &ChannelMessage) {
        let exclude = m.exclude_socket.as_deref();
        let at = m.published_at_us;
        // Events, nearly every message, look their channel up without building a key.
        if let Payload::Event { event, data, user_id } = &m.payload {
            let recipients = self.local.fan_out_published_to(&m.app_id, &m.channel, exclude, at, || {
                frame::text(&outbound::channel_event(event, &m.channel, data, user_id.as_deref()))
            });
            self.delivered(m, recipients);
            return;
        }
        let key = ChannelKey::new(&m.app_id, &m.channel);
        if let Payload::Terminate { .. } = m.payload {
            users::terminate_local(&self.local, &key);
            return;
        }
        let recipients = match &m.payload {
            // Handled above.
            Payload::Event { .. } => 0,
            Payload::MemberAdded {
                user_id,
                user_info,
                seq,
            } => {
                let change = MemberChange {
                    user_id,
                    seq: *seq,
                    added: true,
                    exclude,
                };
                self.local.fan_out_member(&key, change, at, || {
                    let data = outbound::member_added_data(user_id, user_info);
                    frame::text(&outbound::channel_event(MEMBER_ADDED, &m.channel, &data, None))
                })
            }
            Payload::MemberRemoved { user_id, seq } => {
                let change = MemberChange {
                    user_id,
                    seq: *seq,
                    added: false,
                    exclude,
                };
                self.local.fan_out_member(&key, change, at, || {
                    let data = outbound::member_removed_data(user_id);
                    frame::text(&outbound::channel_event(MEMBER_REMOVED, &m.channel, &data, None))
                })
            }
            Payload::SubscriptionCount { count } => self.local.fan_out_published(&key, exclude, at, || {
                let data = outbound::subscription_count_data(*count);
                frame::text(&outbound::channel_event(SUBSCRIPTION_COUNT, &m.channel, &data, None))
            }),
            Payload::WatchlistChange { user_id, online } => self
                .local
                .fan_out_published(&key, exclude, at, || frame::text(&users::watch_frame(user_id, *online))),
            // Handled above: it closes sockets rather than sending a frame.
            Payload::Terminate { .. } => 0,
        };
        self.delivered(m, recipients);
    }

    /// Announce the members that vanished with a dropped node (the node that dropped them is the
    /// only one told, so each is announced once), then report them to webhooks; queue the
    /// leaves it left pending, to confirm when their delay ends.
    fn dropped(&self, dropped: &Dropped) {
        webhooks::report_dropped(&self.webhooks, dropped);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return warn!("dropped registrations outside a runtime: member_removed not announced");
        };
        if !dropped.leaves.is_empty() {
            match self.cluster.upgrade() {
                Some(cluster) => {
                    let _entered = runtime.enter();
                    webhooks::inherit_leaves(
                        &self.leaves,
                        &cluster,
                        &self.webhooks,
                        self.leave_delay,
                        &dropped.leaves,
                    );
                }
                None => warn!(
                    leaves = dropped.leaves.len(),
                    "a dropped node's pending leaves arrived after shutdown: not reported"
                ),
            }
        }
        let Some(backplane) = self.backplane.upgrade() else {
            return;
        };
        let messages: Vec<ChannelMessage> = dropped
            .members
            .iter()
            .map(|(app_id, channel, user_id, seq)| {
                ChannelMessage::new(
                    app_id,
                    channel,
                    Payload::MemberRemoved {
                        user_id: user_id.clone(),
                        seq: *seq,
                    },
                )
            })
            .chain(users::watch_messages(&dropped.users, false))
            .collect();
        if messages.is_empty() {
            return;
        }
        runtime.spawn(async move {
            if let Err(e) = backplane.publish_many(messages).await {
                warn!(error = %e, "member_removed for a dropped node could not be published");
            }
        });
    }
}

/// Why a socket of `app` may not connect now.
fn refused(app: &App) -> Result<(), ConnectError> {
    if app.is_removed() {
        return Err(ConnectError::AppRemoved);
    }
    if !app.config().enabled {
        return Err(ConnectError::AppDisabled);
    }
    Ok(())
}

/// Local counts of one app, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalStats {
    pub subscriptions: u64,
    pub channels: u64,
    pub presence_members: u64,
}

/// One Ferrocast node.
pub struct Node {
    apps: AppRegistry,
    local: Arc<LocalChannels>,
    backplane: Arc<dyn Backplane>,
    cluster: Arc<dyn ClusterState>,
    options: NodeOptions,
    next_socket: AtomicU64,
    gate: ResyncGate,
    /// Local delivery, also used directly to correct local presence views.
    fan_out: Arc<LocalFanOut>,
    /// Registered in the cluster state for the backplane's current link generation.
    registered: AtomicBool,
    /// Presence members whose last local socket left while the cluster state could not be
    /// told: (app, channel, user). Checked and announced after the next resync.
    pending_departures: std::sync::Mutex<Vec<(String, String, String)>>,
    /// Signalled when a cluster-state write failed: whether it took effect is unknown, so the
    /// node's registrations may differ from its local state until a resync replaces them (see
    /// [`Node::cluster_write_failed`]).
    repair: tokio::sync::Notify,
    /// Pending leaves waiting for their delay (see [`webhooks`]), shared with `fan_out`, which
    /// adds those inherited from a dead node.
    leaves: Arc<webhooks::LeaveQueues>,
    /// Running `subscription_count` publishers (see [`subscription_count`]).
    count_publishers: Arc<subscription_count::Publishers>,
    /// Asked about keys and ids the registry does not have (set once, by a source that keeps
    /// its apps outside the node: see [`AppSource`]).
    source: std::sync::OnceLock<Arc<dyn AppSource>>,
}

impl Node {
    pub fn new(
        apps: AppRegistry,
        backplane: Arc<dyn Backplane>,
        cluster: Arc<dyn ClusterState>,
        options: NodeOptions,
    ) -> Arc<Self> {
        let local = Arc::new(LocalChannels::with_hold_limit(options.queue_capacity));
        let observer = options.observer.clone();
        let leaves = Arc::new(webhooks::LeaveQueues::default());
        let fan_out = Arc::new(LocalFanOut {
            local: local.clone(),
            observer,
            webhooks: options.webhooks.clone(),
            backplane: Arc::downgrade(&backplane),
            cluster: Arc::downgrade(&cluster),
            leaves: leaves.clone(),
            leave_delay: options.leave_delay,
        });
        backplane.set_sink(fan_out.clone());
        Arc::new(Self {
            apps,
            local,
            backplane,
            cluster,
            options,
            next_socket: AtomicU64::new(1),
            gate: ResyncGate::default(),
            fan_out,
            registered: AtomicBool::new(false),
            pending_departures: std::sync::Mutex::new(Vec::new()),
            repair: tokio::sync::Notify::new(),
            leaves,
            count_publishers: Arc::default(),
            source: std::sync::OnceLock::new(),
        })
    }

    pub fn apps(&self) -> &AppRegistry {
        &self.apps
    }

    /// Consult `source` on every key or id the registry does not know; the first call wins
    /// (a node has one app source for its life).
    pub fn set_app_source(&self, source: Arc<dyn AppSource>) {
        let _ = self.source.set(source);
    }

    /// The app with WebSocket key `key`: the registry's, or, when it has none, whatever the app
    /// source (if any) found and applied. A known key never reaches the source.
    pub async fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        if let Some(app) = self.apps.by_key(key) {
            return Some(app);
        }
        self.source.get()?.on_miss(AppLookup::Key(key)).await;
        self.apps.by_key(key)
    }

    /// The app with id `id` (REST), like [`Node::app_by_key`].
    pub async fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        if let Some(app) = self.apps.by_id(id) {
            return Some(app);
        }
        self.source.get()?.on_miss(AppLookup::Id(id)).await;
        self.apps.by_id(id)
    }

    fn mint_socket_id(&self) -> Arc<str> {
        let n = self.next_socket.fetch_add(1, Ordering::Relaxed);
        format!("{}.{}", self.options.socket_id_prefix, n).into()
    }

    /// Admit a new socket for `app`: refuses disabled apps, apps a reload removed and apps over
    /// `max_connections` (cluster-wide). The caller sends `connection_established` and runs the socket.
    pub async fn connect(&self, app: Arc<App>) -> Result<(Session, ConnectionOutbox), ConnectError> {
        refused(&app)?;
        let _gate = self.gate.enter(app.id()).await;
        let admitted = self
            .cluster
            .connection_opened(app.id(), app.config().max_connections)
            .await
            .inspect_err(|_| self.cluster_write_failed())?;
        if !admitted {
            self.options.observer.limit_rejected(app.id(), Limit::ConnectionQuota);
            return Err(ConnectError::OverQuota);
        }
        app.local_connections.fetch_add(1, Ordering::AcqRel);
        let (conn, outbox) = ConnectionHandle::bounded(
            self.mint_socket_id(),
            self.options.queue_capacity,
            self.options.queue_bytes,
        );
        app.track(&conn);
        // A reload that disabled or removed the app since the check above closed the sockets it
        // saw; this one may not have been among them, so it is checked again now that it is
        // tracked, and refused (its slot given back) if so.
        let session = Session::new(app, conn);
        if let Err(e) = refused(&session.app) {
            session.app.untrack(&session.conn);
            self.release_slot(&session.app).await;
            return Err(e);
        }
        Ok((session, outbox))
    }

    /// Give back the connection slot of a socket that was admitted and then refused.
    async fn release_slot(&self, app: &App) {
        app.local_connections.fetch_sub(1, Ordering::AcqRel);
        if let Err(e) = self.cluster.connection_closed(app.id()).await {
            warn!(error = %e, app_id = app.id(), "could not release connection slot; resyncing");
            self.cluster_write_failed();
        }
    }

    /// Replace the apps with `apps` (validated: unique ids and keys) and act on what changed:
    /// the sockets of removed apps are closed with 4001, those of disabled apps with 4003; a
    /// new app is usable at once; new secrets and limits apply to the next action of every
    /// socket (open sockets over a lower `max_connections` stay). Returns what changed, per
    /// app, sorted by id; nothing in it is a secret. Calls must not overlap (an app source
    /// applies one list at a time).
    pub fn apply_apps(&self, apps: Vec<AppConfig>) -> Vec<AppChange> {
        let (changes, removed) = self.apps.replace(apps);
        for app in &removed {
            app.close_sockets(
                ferrocast_protocol::codes::close::UNKNOWN_APP,
                "app removed from the configuration",
            );
        }
        for change in changes.iter().filter(|c| c.has(AppChangeKind::Disabled)) {
            if let Some(app) = self.apps.by_id(&change.id) {
                app.close_sockets(ferrocast_protocol::codes::close::APP_DISABLED, "app is disabled");
            }
        }
        changes
    }

    /// Forget a socket: leaves every channel (announcing presence departures) and releases its
    /// connection slot.
    pub async fn disconnect(&self, mut session: Session) {
        let subscriptions: Vec<_> = session.subscriptions.drain().collect();
        for (channel, sub) in subscriptions {
            self.leave(&session.app, &session.conn, &channel, sub).await;
        }
        self.sign_out(&mut session).await;
        let app = &session.app;
        app.untrack(&session.conn);
        let _gate = self.gate.enter(app.id()).await;
        self.release_slot(app).await;
    }

    /// Act on one parsed client frame.
    pub async fn handle(&self, session: &mut Session, message: ClientMessage) {
        match message {
            ClientMessage::Ping => {
                session.send_json(&outbound::pong());
            }
            ClientMessage::Pong | ClientMessage::IgnoredPusherEvent(_) => {}
            ClientMessage::Subscribe(req) => self.subscribe(session, req).await,
            ClientMessage::Unsubscribe { channel } => {
                if let Some(sub) = session.subscriptions.remove(&channel) {
                    self.leave(&session.app, &session.conn, &channel, sub).await;
                }
            }
            ClientMessage::Signin { auth, user_data } => self.signin(session, &auth, &user_data).await,
            ClientMessage::ClientEvent(event) => self.client_event(session, event).await,
        }
    }

    /// Publish a protocol message (member_added/removed, ...); failures are logged.
    async fn publish_internal(&self, message: ChannelMessage) {
        if let Err(e) = self.backplane.publish(message).await {
            warn!(error = %e, "protocol message lost: backplane publish failed");
        }
    }

    /// Publish application events (each to each of its channels) in one backplane round trip,
    /// in order. Events to cache channels are also kept as their channel's cached event, in
    /// that same round trip; if that fails the publish fails.
    /// Refused while the node is not joined to the cluster: never accepted and lost.
    pub async fn publish(&self, app: &App, requests: Vec<PublishRequest>) -> Result<(), PublishError> {
        if !self.is_ready() {
            return Err(PublishError::NotJoined);
        }
        let mut messages = Vec::with_capacity(requests.iter().map(|r| r.channels.len()).sum());
        let mut caches = false;
        for mut req in requests {
            let last = req.channels.len().saturating_sub(1);
            for (i, channel) in req.channels.into_iter().enumerate() {
                // The one channel-name check per publish: only publishes naming a cache channel
                // take the caching path.
                caches |= ferrocast_protocol::channel::is_cache(&channel);
                // The last channel takes the strings, the others copies.
                let (event, data) = match i == last {
                    true => (std::mem::take(&mut req.event), std::mem::take(&mut req.data)),
                    false => (req.event.clone(), req.data.clone()),
                };
                let payload = Payload::Event {
                    event,
                    data,
                    user_id: None,
                };
                messages
                    .push(ChannelMessage::new(app.id(), &channel, payload).excluding(req.exclude_socket.as_deref()));
            }
        }
        match messages.len() {
            0 => Ok(()),
            _ if caches => Ok(self
                .backplane
                .publish_cached(messages, app.config().cache_ttl())
                .await?),
            1 => Ok(self.backplane.publish(messages.remove(0)).await?),
            _ => Ok(self.backplane.publish_many(messages).await?),
        }
    }

    /// This node's subscriptions, occupied channels and presence members, per app id.
    pub fn local_stats(&self) -> std::collections::HashMap<String, LocalStats> {
        let mut stats: std::collections::HashMap<String, LocalStats> = std::collections::HashMap::new();
        for (key, subscriptions, members) in self.local.snapshot() {
            if users::is_user_channel(&key.channel) {
                continue;
            }
            let entry = stats.entry(key.app_id.to_string()).or_default();
            entry.subscriptions += subscriptions;
            entry.channels += 1;
            entry.presence_members += members.len() as u64;
        }
        stats
    }

    /// Where this node reports its measurements.
    pub fn observer(&self) -> &Arc<dyn NodeObserver> {
        &self.options.observer
    }

    /// Occupied channels of an app starting with `prefix` (never `#` channels).
    pub async fn channels(&self, app: &App, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let mut list = self.cluster.channels(app.id(), prefix).await?;
        list.retain(|(name, _)| !name.starts_with('#'));
        Ok(list)
    }

    /// Take `units` from one of the app's cluster-wide REST budgets. An unlimited budget (0) is
    /// allowed without asking the cluster state, so unlimited apps cost no round trip.
    pub async fn take_rate(&self, app: &App, kind: RateKind, units: u64) -> Result<RateDecision, BackplaneError> {
        let config = app.config();
        let per_second = match kind {
            RateKind::BackendEvents => config.max_backend_events_per_second,
            RateKind::ReadRequests => config.max_read_requests_per_second,
        };
        if per_second == 0 {
            return Ok(RateDecision {
                allowed: true,
                resets_in: Duration::ZERO,
            });
        }
        self.cluster.take_rate(app.id(), kind, units, per_second).await
    }

    /// Counts of one channel.
    pub async fn channel(&self, app: &App, channel: &str) -> Result<ChannelCounts, BackplaneError> {
        self.cluster.channel(app.id(), channel).await
    }

    /// Distinct user ids of a presence channel.
    pub async fn users(&self, app: &App, channel: &str) -> Result<Vec<String>, BackplaneError> {
        Ok(self
            .cluster
            .presence_members(app.id(), channel)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }
}
