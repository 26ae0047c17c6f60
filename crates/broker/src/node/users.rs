//! Signed-in users (reference §6): `pusher:signin`, server-to-user delivery, terminating a
//! user's connections, and watchlists.
//!
//! A signed-in socket joins the local channel index under `#server-to-user-{id}` and the node
//! takes backplane interest in that channel, so the REST publish path and the fan-out deliver
//! `sendToUser` events unchanged, and a [`Payload::Terminate`] published on it reaches exactly
//! the nodes holding the user's sockets. `#` channels are never counted as subscriptions in the
//! cluster state: no occupancy, no webhooks, never listed.
//!
//! Whether a user is online is the cluster state's count of their signed-in sockets
//! ([`crate::cluster::UserDirectory`]); the call that changes the count decides the
//! online/offline transition atomically, so exactly one node publishes it, as a
//! [`Payload::WatchlistChange`] on the internal channel `#watch-{id}`. A node holds interest in
//! `#watch-X` (local index key `#watch-X`) while one of its signed-in sockets watches X, and its
//! fan-out turns the message into the watchlist frame. A reaped node's users are turned into
//! `offline` changes by the node that reaped it ([`Dropped::users`](crate::cluster::Dropped)).

use ferrocast_protocol::channel::SERVER_TO_USER_PREFIX;
use ferrocast_protocol::codes::{close, error as error_code};
use ferrocast_protocol::outbound::{self, SubscriptionErrorKind};
use ferrocast_protocol::user::{self, SigninError, WATCH_PREFIX};
use tracing::warn;

use super::Node;
use crate::app::App;
use crate::audit::{self, AuthDenial, Denial};
use crate::backplane::{ChannelMessage, Payload};
use crate::cluster::{UserSocket, UserTransition};
use crate::error::BackplaneError;
use crate::frame;
use crate::local_channels::{ChannelKey, LocalChannels};
use crate::session::{Session, SignedIn};

/// The close reason and `pusher:error` message of a terminated connection.
const TERMINATED: &str = "terminated by app";

/// Whether a local index key belongs to users rather than to a client subscription.
pub(super) fn is_user_channel(channel: &str) -> bool {
    channel.starts_with(SERVER_TO_USER_PREFIX) || channel.starts_with(WATCH_PREFIX)
}

/// The watchlist frame announcing one user's change.
pub(super) fn watch_frame(user_id: &str, online: bool) -> String {
    let id = [user_id];
    if online {
        user::watchlist_events(id, [])
    } else {
        user::watchlist_events([], id)
    }
}

/// Close every local socket signed in as the user of `key` (`#server-to-user-{id}`):
/// `pusher:error` 4009, then close 4009 "terminated by app".
pub(super) fn terminate_local(local: &LocalChannels, key: &ChannelKey) -> usize {
    let conns = local.connections(key);
    if conns.is_empty() {
        return 0;
    }
    let error = frame::text(&outbound::error(Some(close::UNAUTHORIZED), TERMINATED));
    for conn in &conns {
        conn.send(error.clone());
        conn.close(close::UNAUTHORIZED);
    }
    conns.len()
}

/// The watchlist change for (app, user).
fn watch_message(app_id: &str, user_id: &str, online: bool) -> ChannelMessage {
    let payload = Payload::WatchlistChange {
        user_id: user_id.to_owned(),
        online,
    };
    ChannelMessage::new(app_id, &user::watch_channel(user_id), payload)
}

/// The watchlist changes for `(app, user)` pairs.
pub(super) fn watch_messages(users: &[(String, String)], online: bool) -> Vec<ChannelMessage> {
    users
        .iter()
        .map(|(app_id, user_id)| watch_message(app_id, user_id, online))
        .collect()
}

impl Node {
    /// `pusher:signin`: verify (constant time, over the exact `user_data`), register, answer
    /// `signin_success`, then the watchlist status, then `pusher:error` 4302 when the watchlist
    /// was cut to 100 ids. Any refusal is a `pusher:error` with a null code; the socket stays.
    pub(super) async fn signin(&self, session: &mut Session, auth: &str, user_data: &str) {
        let config = session.app.config();
        let signed = ferrocast_protocol::signature::user_string_to_sign(session.socket_id(), user_data);
        let verified = config
            .verify_signed(crate::clock::unix_seconds(), |secret| {
                ferrocast_protocol::signature::verify_auth(&config.key, secret, &signed, Some(auth))
            })
            .map_err(SigninError::from)
            .and_then(|()| user::parse_user_data(user_data, config.max_member_bytes()).map_err(SigninError::from));
        let data = match verified {
            Ok(data) => data,
            Err(e) => {
                if matches!(e, SigninError::Auth(_)) {
                    let mut denial = Denial::new(AuthDenial::SigninSignature);
                    denial.app_id = Some(session.app.id());
                    denial.socket_id = Some(session.socket_id());
                    audit::denied(self.options.observer.as_ref(), &denial);
                }
                return session.send_error(None, &e.to_string());
            }
        };
        let old_watchlist = match session.user.take() {
            Some(signed) if signed.id != data.id => {
                let msg = format!(
                    "signin refused: this connection is already signed in as {:?}",
                    signed.id
                );
                session.user = Some(signed);
                return session.send_error(None, &msg);
            }
            // The same id again: user_info and watchlist are replaced.
            Some(signed) => signed.watchlist,
            None => {
                if let Err(e) = self.register_user(session, &data.id).await {
                    warn!(error = %e, "signin could not be registered");
                    return session.send_error(None, "signin could not be registered, try again");
                }
                Vec::new()
            }
        };
        let watchlist = self.rewatch(session, &old_watchlist, &data.watchlist).await;
        session.user = Some(Box::new(SignedIn {
            id: data.id,
            user_info: data.user_info,
            watchlist,
        }));
        session.send_json(&user::signin_success(user_data));
        self.send_watchlist_status(session).await;
        if data.watchlist_truncated {
            session.send_error(
                Some(error_code::WATCHLIST_OVER_LIMIT),
                "watchlist over limit: kept the first 100 ids",
            );
        }
    }

    /// Local index and backplane interest under `#server-to-user-{id}`, then the cluster count
    /// (announcing `online` if this was the user's first socket). Rolled back on failure.
    async fn register_user(&self, session: &Session, user_id: &str) -> Result<(), BackplaneError> {
        let app_id = session.app.id();
        let channel = user::server_to_user_channel(user_id);
        let key = ChannelKey::new(app_id, &channel);
        let transition = {
            let _gate = self.gate.enter(&channel).await;
            // Internal channels have no success frame to wait for: active at once.
            if self.local.add(&key, &session.conn, None) {
                self.local.activate(&key, session.socket_id(), Vec::new(), 0, []);
            }
            if let Err(e) = self.backplane.subscribe(app_id, &channel).await {
                self.local.remove(&key, session.socket_id());
                return Err(e);
            }
            match self.cluster.user_signed_in(UserSocket { app_id, user_id }).await {
                Ok(transition) => transition,
                Err(e) => {
                    self.cluster_write_failed();
                    self.local.remove(&key, session.socket_id());
                    self.unwatch_backplane(app_id, &channel).await;
                    return Err(e);
                }
            }
        };
        if transition == UserTransition::Changed {
            self.publish_internal(watch_message(app_id, user_id, true)).await;
        }
        Ok(())
    }

    /// Forget the socket's sign-in (it is leaving): its watch interests, its user channel, and
    /// its count (announcing `offline` if it was the user's last socket anywhere).
    pub(super) async fn sign_out(&self, session: &mut Session) {
        let Some(signed) = session.user.take() else {
            return;
        };
        self.rewatch(session, &signed.watchlist, &[]).await;
        let app_id = session.app.id();
        let channel = user::server_to_user_channel(&signed.id);
        let key = ChannelKey::new(app_id, &channel);
        let transition = {
            let _gate = self.gate.enter(&channel).await;
            if !self.local.remove(&key, session.socket_id()) {
                return;
            }
            self.unwatch_backplane(app_id, &channel).await;
            let socket = UserSocket {
                app_id,
                user_id: &signed.id,
            };
            match self.cluster.user_signed_out(socket).await {
                Ok(transition) => transition,
                Err(e) => {
                    // The repair resync re-registers this node without the socket and reports
                    // the user offline then if this was their last.
                    warn!(error = %e, user_id = signed.id, "sign-out not registered; resyncing");
                    self.cluster_write_failed();
                    return;
                }
            }
        };
        if transition == UserTransition::Changed {
            self.publish_internal(watch_message(app_id, &signed.id, false)).await;
        }
    }

    /// Move the socket's watch interests from `old` to `new`; returns the ids now watched (an
    /// id whose interest could not be taken is left out, and logged).
    async fn rewatch(&self, session: &Session, old: &[String], new: &[String]) -> Vec<String> {
        let app_id = session.app.id();
        for id in old.iter().filter(|id| !new.contains(id)) {
            let channel = user::watch_channel(id);
            if self
                .local
                .remove(&ChannelKey::new(app_id, &channel), session.socket_id())
            {
                self.unwatch_backplane(app_id, &channel).await;
            }
        }
        let mut watched = Vec::with_capacity(new.len());
        for id in new {
            let channel = user::watch_channel(id);
            let key = ChannelKey::new(app_id, &channel);
            if self.local.add(&key, &session.conn, None) {
                self.local.activate(&key, session.socket_id(), Vec::new(), 0, []);
                if let Err(e) = self.backplane.subscribe(app_id, &channel).await {
                    warn!(error = %e, user_id = %id, "watchlist interest could not be taken: not watched");
                    self.local.remove(&key, session.socket_id());
                    continue;
                }
            }
            watched.push(id.clone());
        }
        watched
    }

    async fn unwatch_backplane(&self, app_id: &str, channel: &str) {
        if let Err(e) = self.backplane.unsubscribe(app_id, channel).await {
            warn!(error = %e, channel, "backplane unsubscribe failed");
        }
    }

    /// The `watchlist_events` frame with the status of every watched id (none without a
    /// watchlist). Sent after the interest is taken, so no later change is missed.
    async fn send_watchlist_status(&self, session: &Session) {
        let Some(signed) = session.user.as_ref().filter(|u| !u.watchlist.is_empty()) else {
            return;
        };
        match self.cluster.user_status(session.app.id(), &signed.watchlist).await {
            Ok(status) => {
                let frame = user::watchlist_events(
                    status.online.iter().map(String::as_str),
                    status.offline.iter().map(String::as_str),
                );
                session.send_json(&frame);
            }
            Err(e) => {
                warn!(error = %e, "watchlist status unavailable");
                session.send_error(None, "watchlist status unavailable; changes will still be sent");
            }
        }
    }

    /// A client's own `pusher:subscribe` to `#server-to-user-{id}`: succeeds ("{}") only for
    /// the signed-in owner; never registered as a subscription (delivery never depended on it).
    pub(super) fn subscribe_server_to_user(&self, session: &Session, channel: &str) {
        if session.user_id().is_some() && session.user_id() == user::server_to_user_id(channel) {
            session.send_json(&outbound::subscription_succeeded(channel, "{}"));
        } else {
            let msg = "#server-to-user- channels are only for the connection signed in as that user";
            session.send_subscription_error(channel, SubscriptionErrorKind::Auth, msg);
        }
    }

    /// Close every connection signed in as `user_id`, on every node: a terminate message on
    /// the user's channel. Errors when it cannot be published.
    pub async fn terminate_user(&self, app: &App, user_id: &str) -> Result<(), BackplaneError> {
        let payload = Payload::Terminate {
            user_id: user_id.to_owned(),
        };
        let channel = user::server_to_user_channel(user_id);
        self.backplane
            .publish(ChannelMessage::new(app.id(), &channel, payload))
            .await
    }

    /// Announce watchlist changes found by a resync.
    pub(super) async fn announce_users(&self, online: &[(String, String)], offline: &[(String, String)]) {
        let messages: Vec<ChannelMessage> = watch_messages(online, true)
            .into_iter()
            .chain(watch_messages(offline, false))
            .collect();
        if messages.is_empty() {
            return;
        }
        if let Err(e) = self.backplane.publish_many(messages).await {
            warn!(error = %e, "watchlist changes after a resync could not be published");
        }
    }
}
