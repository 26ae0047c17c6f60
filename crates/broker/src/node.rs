//! The node: what happens when a socket connects, sends a frame or leaves, and when the REST
//! API publishes or reads.
//!
//! Order matters in two places. A subscribing socket joins the local index (and the backplane
//! interest) before it is told `subscription_succeeded`, so any event published after the
//! client saw success reaches it. A presence join registers membership, then announces
//! `member_added` to the others, then sends the roster to the joiner.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferrocast_protocol::channel::{self, ChannelKind};
use ferrocast_protocol::codes;
use ferrocast_protocol::inbound::{ClientEvent, ClientMessage, Subscribe};
use ferrocast_protocol::outbound::{self, SubscriptionErrorKind};
use ferrocast_protocol::{presence, signature};
use tracing::warn;

use crate::app::{App, AppRegistry};
use crate::backplane::{Backplane, ChannelCounts, ChannelMessage, ClusterState, DeliverySink, PresenceJoin};
use crate::connection::{ConnectionHandle, ConnectionOutbox};
use crate::error::{BackplaneError, ConnectError, PublishError};
use crate::frame;
use crate::local_channels::{ChannelKey, LocalChannels, Occupancy};
use crate::rate_limit::monotonic_seconds;
use crate::session::{Session, Subscription};

/// Settings of the node core that do not belong to any app.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Frames a socket may have queued before it is closed as a slow consumer.
    pub queue_capacity: usize,
    /// First half of every socket id this node mints; random per process so ids are unique
    /// across the cluster.
    pub socket_id_prefix: u32,
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
}

impl DeliverySink for LocalFanOut {
    fn deliver(&self, m: &ChannelMessage) {
        let key = ChannelKey::new(&m.app_id, &m.channel);
        self.local.fan_out_with(&key, m.exclude_socket.as_deref(), || {
            frame::text(&outbound::channel_event(
                &m.event,
                &m.channel,
                &m.data,
                m.user_id.as_deref(),
            ))
        });
    }
}

/// One Ferrocast node.
pub struct Node {
    apps: AppRegistry,
    local: Arc<LocalChannels>,
    backplane: Arc<dyn Backplane>,
    cluster: Arc<dyn ClusterState>,
    options: NodeOptions,
    next_socket: AtomicU64,
}

impl Node {
    pub fn new(
        apps: AppRegistry,
        backplane: Arc<dyn Backplane>,
        cluster: Arc<dyn ClusterState>,
        options: NodeOptions,
    ) -> Arc<Self> {
        let local = Arc::new(LocalChannels::new());
        backplane.set_sink(Arc::new(LocalFanOut { local: local.clone() }));
        Arc::new(Self {
            apps,
            local,
            backplane,
            cluster,
            options,
            next_socket: AtomicU64::new(1),
        })
    }

    pub fn apps(&self) -> &AppRegistry {
        &self.apps
    }

    fn mint_socket_id(&self) -> Arc<str> {
        let n = self.next_socket.fetch_add(1, Ordering::Relaxed);
        format!("{}.{}", self.options.socket_id_prefix, n).into()
    }

    /// Admit a new socket for `app`: refuses disabled apps and apps over `max_connections`
    /// (cluster-wide). The caller sends `connection_established` and runs the socket.
    pub async fn connect(&self, app: Arc<App>) -> Result<(Session, ConnectionOutbox), ConnectError> {
        if !app.config.enabled {
            return Err(ConnectError::AppDisabled);
        }
        if !self
            .cluster
            .connection_opened(app.id(), app.config.max_connections)
            .await?
        {
            return Err(ConnectError::OverQuota);
        }
        let (conn, outbox) = ConnectionHandle::new(self.mint_socket_id(), self.options.queue_capacity);
        Ok((Session::new(app, conn), outbox))
    }

    /// Forget a socket: leaves every channel (announcing presence departures) and releases its
    /// connection slot.
    pub async fn disconnect(&self, mut session: Session) {
        let subscriptions: Vec<_> = session.subscriptions.drain().collect();
        for (channel, sub) in subscriptions {
            self.leave(&session.app, &session.conn, &channel, sub).await;
        }
        if let Err(e) = self.cluster.connection_closed(session.app.id()).await {
            warn!(error = %e, app_id = session.app.id(), "could not release connection slot");
        }
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
            ClientMessage::Signin { .. } => {
                session.send_error(
                    None,
                    "user authentication (pusher:signin) is not enabled on this server yet",
                );
            }
            ClientMessage::ClientEvent(event) => self.client_event(session, event).await,
        }
    }

    async fn subscribe(&self, session: &mut Session, req: Subscribe) {
        let config = &session.app.config;
        let kind = match channel::validate_channel_name(&req.channel, config.max_channel_name_length) {
            Ok(ChannelKind::ServerToUser) => {
                let msg = "#server-to-user- channels need a signed-in connection (user authentication)";
                return session.send_subscription_error(&req.channel, SubscriptionErrorKind::InvalidChannel, msg);
            }
            Ok(kind) => kind,
            Err(e) => {
                return session.send_subscription_error(
                    &req.channel,
                    SubscriptionErrorKind::InvalidChannel,
                    &e.to_string(),
                )
            }
        };
        if session.subscriptions.contains_key(&req.channel) {
            return self.resend_success(session, &req.channel, kind).await;
        }
        let member = match self.authorize(session, &req, kind) {
            Ok(member) => member,
            Err((kind, msg)) => return session.send_subscription_error(&req.channel, kind, &msg),
        };
        let key = ChannelKey::new(session.app.id(), &req.channel);
        if let Err(e) = self.join_local(session, &key).await {
            warn!(error = %e, channel = %req.channel, "subscribe failed on the backplane");
            return session.send_subscription_error(
                &req.channel,
                SubscriptionErrorKind::Unavailable,
                "subscription could not be registered, try again",
            );
        }
        let roster = match &member {
            None => None,
            Some(member) => match self.join_presence(session, &req.channel, member).await {
                Ok(roster) => Some(roster),
                Err((kind, msg)) => {
                    self.leave_local(&session.app, session.socket_id(), &key).await;
                    return session.send_subscription_error(&req.channel, kind, &msg);
                }
            },
        };
        let presence_user = member.map(|m| m.user_id);
        session
            .subscriptions
            .insert(req.channel.clone(), Subscription { presence_user });
        let data = roster.unwrap_or_else(|| "{}".to_owned());
        session.send_json(&outbound::subscription_succeeded(&req.channel, &data));
    }

    /// Check the subscription's signature and, on presence channels, its member data.
    fn authorize(
        &self,
        session: &Session,
        req: &Subscribe,
        kind: ChannelKind,
    ) -> Result<Option<presence::Member>, (SubscriptionErrorKind, String)> {
        if !kind.requires_auth() {
            return Ok(None);
        }
        let config = &session.app.config;
        let channel_data = match kind {
            ChannelKind::Presence => match req.channel_data.as_deref() {
                Some(data) => Some(data),
                None => {
                    return Err((
                        SubscriptionErrorKind::InvalidChannelData,
                        "presence channels need channel_data".into(),
                    ))
                }
            },
            _ => None,
        };
        let signed = signature::channel_string_to_sign(session.socket_id(), &req.channel, channel_data);
        signature::verify_auth(&config.key, &config.secret, &signed, req.auth.as_deref())
            .map_err(|e| (SubscriptionErrorKind::Auth, e.to_string()))?;
        let Some(data) = channel_data else {
            return Ok(None);
        };
        presence::parse_channel_data(data, config.max_member_bytes())
            .map(Some)
            .map_err(|e| {
                let kind = match e {
                    presence::ChannelDataError::UserInfoTooLarge { .. } => SubscriptionErrorKind::LimitReached,
                    _ => SubscriptionErrorKind::InvalidChannelData,
                };
                (kind, e.to_string())
            })
    }

    /// Add the socket to the local index, gaining backplane interest on the first one.
    async fn join_local(&self, session: &Session, key: &ChannelKey) -> Result<(), BackplaneError> {
        if self.local.add(key, &session.conn) == Some(Occupancy::First) {
            if let Err(e) = self.backplane.subscribe(&key.app_id, &key.channel).await {
                self.local.remove(key, session.socket_id());
                return Err(e);
            }
        }
        if let Err(e) = self.cluster.subscription_added(&key.app_id, &key.channel).await {
            self.leave_local_index(key, session.socket_id()).await;
            return Err(e);
        }
        Ok(())
    }

    /// Register a presence member; returns the roster JSON for `subscription_succeeded`.
    async fn join_presence(
        &self,
        session: &Session,
        channel: &str,
        member: &presence::Member,
    ) -> Result<String, (SubscriptionErrorKind, String)> {
        let config = &session.app.config;
        let joined = self
            .cluster
            .presence_join(
                config.id.as_str(),
                channel,
                session.socket_id(),
                &member.user_id,
                &member.user_info,
                config.max_presence_members_per_channel,
            )
            .await;
        match joined {
            Ok(PresenceJoin::Joined { added, roster }) => {
                if added {
                    let data = outbound::member_added_data(&member.user_id, &member.user_info);
                    self.publish_internal(
                        config.id.as_str(),
                        channel,
                        "pusher_internal:member_added",
                        data,
                        Some(session.socket_id()),
                    )
                    .await;
                }
                Ok(presence::roster_json(
                    roster.iter().map(|(id, info)| (id.as_str(), info.as_str())),
                ))
            }
            Ok(PresenceJoin::Full) => Err((
                SubscriptionErrorKind::LimitReached,
                format!(
                    "presence channel is full ({} members)",
                    config.max_presence_members_per_channel
                ),
            )),
            Err(e) => {
                warn!(error = %e, channel, "presence join failed");
                Err((
                    SubscriptionErrorKind::Unavailable,
                    "presence could not be registered, try again".into(),
                ))
            }
        }
    }

    async fn resend_success(&self, session: &Session, channel: &str, kind: ChannelKind) {
        let data = if kind == ChannelKind::Presence {
            match self.cluster.presence_members(session.app.id(), channel).await {
                Ok(roster) => presence::roster_json(roster.iter().map(|(id, info)| (id.as_str(), info.as_str()))),
                Err(e) => {
                    warn!(error = %e, channel, "presence roster unavailable");
                    return session.send_subscription_error(
                        channel,
                        SubscriptionErrorKind::Unavailable,
                        "presence roster unavailable, try again",
                    );
                }
            }
        } else {
            "{}".to_owned()
        };
        session.send_json(&outbound::subscription_succeeded(channel, &data));
    }

    /// Undo a subscription: local index, counts, and presence (announcing `member_removed`).
    async fn leave(&self, app: &App, conn: &ConnectionHandle, channel: &str, sub: Subscription) {
        let key = ChannelKey::new(app.id(), channel);
        self.leave_local(app, conn.socket_id(), &key).await;
        let Some(user_id) = sub.presence_user else {
            return;
        };
        match self
            .cluster
            .presence_leave(app.id(), channel, conn.socket_id(), &user_id)
            .await
        {
            Ok(true) => {
                let data = outbound::member_removed_data(&user_id);
                self.publish_internal(app.id(), channel, "pusher_internal:member_removed", data, None)
                    .await;
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, channel, user_id, "presence leave failed; member_removed not sent"),
        }
    }

    async fn leave_local(&self, app: &App, socket_id: &str, key: &ChannelKey) {
        if self.leave_local_index(key, socket_id).await {
            if let Err(e) = self.cluster.subscription_removed(app.id(), &key.channel).await {
                warn!(error = %e, channel = %key.channel, "could not decrement subscription count");
            }
        }
    }

    /// Remove from the local index, dropping backplane interest after the last local socket.
    /// Returns whether the socket was subscribed.
    async fn leave_local_index(&self, key: &ChannelKey, socket_id: &str) -> bool {
        match self.local.remove(key, socket_id) {
            None => false,
            Some(Occupancy::Last) => {
                if let Err(e) = self.backplane.unsubscribe(&key.app_id, &key.channel).await {
                    warn!(error = %e, channel = %key.channel, "backplane unsubscribe failed");
                }
                true
            }
            Some(_) => true,
        }
    }

    async fn client_event(&self, session: &mut Session, event: ClientEvent) {
        let config = &session.app.config;
        if !config.enable_client_messages {
            return session.send_error(None, "client events are not enabled for this app");
        }
        if let Err(e) = channel::validate_event_name(&event.event, config.max_event_name_length) {
            return session.send_error(None, &format!("client event refused: {e}"));
        }
        if !ChannelKind::of(&event.channel).allows_client_events() {
            return session.send_error(
                None,
                "client events are only allowed on private and presence channels (not encrypted ones)",
            );
        }
        let Some(sub) = session.subscriptions.get(&event.channel) else {
            return session.send_error(
                None,
                &format!("client event refused: not subscribed to {}", event.channel),
            );
        };
        if event.data.len() > config.max_payload_bytes() {
            return session.send_error(
                None,
                &format!(
                    "client event refused: data is larger than {} KB",
                    config.max_event_payload_kb
                ),
            );
        }
        let user_id = sub.presence_user.clone();
        if !session.client_events.try_take(monotonic_seconds(session.epoch)) {
            return session.send_error(
                Some(codes::error::CLIENT_EVENT_RATE_LIMIT),
                "client event rate limit exceeded",
            );
        }
        let message = ChannelMessage {
            app_id: config.id.clone(),
            channel: event.channel,
            event: event.event,
            data: event.data,
            user_id,
            exclude_socket: Some(session.socket_id().to_owned()),
        };
        if let Err(e) = self.backplane.publish(message).await {
            warn!(error = %e, "client event could not be published");
            session.send_error(None, "client event could not be delivered, try again");
        }
    }

    /// Publish a protocol event (member_added/removed) to a channel; failures are logged.
    async fn publish_internal(&self, app_id: &str, channel: &str, event: &str, data: String, exclude: Option<&str>) {
        let message = ChannelMessage {
            app_id: app_id.to_owned(),
            channel: channel.to_owned(),
            event: event.to_owned(),
            data,
            user_id: None,
            exclude_socket: exclude.map(str::to_owned),
        };
        if let Err(e) = self.backplane.publish(message).await {
            warn!(error = %e, channel, event, "protocol event lost: backplane publish failed");
        }
    }

    /// Publish an application event to each of its channels.
    pub async fn publish(&self, app: &App, req: PublishRequest) -> Result<(), PublishError> {
        for channel in req.channels {
            let message = ChannelMessage {
                app_id: app.id().to_owned(),
                channel,
                event: req.event.clone(),
                data: req.data.clone(),
                user_id: None,
                exclude_socket: req.exclude_socket.clone(),
            };
            self.backplane.publish(message).await?;
        }
        Ok(())
    }

    /// Occupied channels of an app starting with `prefix` (never `#` channels).
    pub async fn channels(&self, app: &App, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        let mut list = self.cluster.channels(app.id(), prefix).await?;
        list.retain(|(name, _)| !name.starts_with('#'));
        Ok(list)
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
