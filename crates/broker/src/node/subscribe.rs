//! Subscriptions and presence.
//!
//! A subscribing socket joins the local index and the backplane interest before it is told
//! `subscription_succeeded`, so any event published after the client saw success reaches it.
//! A presence join registers membership, then announces `member_added` to the others, then
//! sends the roster to the joiner. Every registration happens under the resync gate of its
//! channel and is rolled back in full if any step fails.

use std::sync::Arc;

use ferrocast_protocol::channel::{self, ChannelKind};
use ferrocast_protocol::inbound::Subscribe;
use ferrocast_protocol::outbound::{self, SubscriptionErrorKind};
use ferrocast_protocol::{presence, signature};
use tracing::warn;

use super::Node;
use crate::app::App;
use crate::backplane::PresenceJoin;
use crate::connection::ConnectionHandle;
use crate::local_channels::{ChannelKey, LocalMember};
use crate::observer::Limit;
use crate::session::{Session, Subscription};

type Refusal = (SubscriptionErrorKind, String);

fn unavailable(what: &str) -> Refusal {
    (
        SubscriptionErrorKind::Unavailable,
        format!("{what} could not be registered, try again"),
    )
}

fn roster_json(roster: &[(String, String)]) -> String {
    presence::roster_json(roster.iter().map(|(id, info)| (id.as_str(), info.as_str())))
}

impl Node {
    pub(super) async fn subscribe(&self, session: &mut Session, req: Subscribe) {
        let config = &session.app.config;
        let kind = match channel::validate_channel_name(&req.channel, config.max_channel_name_length) {
            Ok(ChannelKind::ServerToUser) => {
                let msg = "#server-to-user- channels need a signed-in connection (user authentication)";
                return session.send_subscription_error(&req.channel, SubscriptionErrorKind::InvalidChannel, msg);
            }
            Ok(kind) => kind,
            Err(e) => {
                let msg = e.to_string();
                return session.send_subscription_error(&req.channel, SubscriptionErrorKind::InvalidChannel, &msg);
            }
        };
        if session.subscriptions.contains_key(&req.channel) {
            return self.resend_success(session, &req.channel, kind).await;
        }
        let member = match authorize(session, &req, kind) {
            Ok(member) => member.map(|m| {
                Arc::new(LocalMember {
                    user_id: m.user_id,
                    user_info: m.user_info,
                })
            }),
            Err((kind, msg)) => {
                if kind == SubscriptionErrorKind::LimitReached {
                    self.options
                        .observer
                        .limit_rejected(session.app.id(), Limit::PresenceMemberSize);
                }
                return session.send_subscription_error(&req.channel, kind, &msg);
            }
        };
        let key = ChannelKey::new(session.app.id(), &req.channel);
        let joined = {
            let _gate = self.gate.enter(&req.channel).await;
            self.register(session, &key, member.clone()).await
        };
        let roster = match joined {
            Ok(roster) => roster,
            Err((kind, msg)) => return session.send_subscription_error(&req.channel, kind, &msg),
        };
        if let (Some(member), Some((true, _))) = (&member, &roster) {
            let data = outbound::member_added_data(&member.user_id, &member.user_info);
            let app_id = session.app.id();
            self.publish_internal(
                app_id,
                &req.channel,
                "pusher_internal:member_added",
                data,
                Some(session.socket_id()),
            )
            .await;
        }
        let presence_user = member.map(|m| m.user_id.clone());
        session
            .subscriptions
            .insert(req.channel.clone(), Subscription { presence_user });
        let data = roster.map(|(_, json)| json).unwrap_or_else(|| "{}".to_owned());
        session.send_json(&outbound::subscription_succeeded(&req.channel, &data));
    }

    /// Local index, backplane interest, subscription count and presence membership. Returns,
    /// on presence channels, whether the member was added and the roster JSON.
    async fn register(
        &self,
        session: &Session,
        key: &ChannelKey,
        member: Option<Arc<LocalMember>>,
    ) -> Result<Option<(bool, String)>, Refusal> {
        let socket_id = session.socket_id();
        self.local.add(key, &session.conn, member.clone());
        if let Err(e) = self.backplane.subscribe(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "backplane subscribe failed");
            self.local.remove(key, socket_id);
            return Err(unavailable("subscription"));
        }
        if let Err(e) = self.cluster.subscription_added(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "subscription count failed");
            self.local.remove(key, socket_id);
            self.unsubscribe_backplane(key).await;
            return Err(unavailable("subscription"));
        }
        let Some(member) = member else {
            return Ok(None);
        };
        let max = session.app.config.max_presence_members_per_channel;
        let joined = self
            .cluster
            .presence_join(
                &key.app_id,
                &key.channel,
                socket_id,
                &member.user_id,
                &member.user_info,
                max,
            )
            .await;
        match joined {
            Ok(PresenceJoin::Joined { added, roster }) => {
                self.local.learn_roster(key, roster.iter().map(|(id, _)| id.as_str()));
                Ok(Some((added, roster_json(&roster))))
            }
            Ok(PresenceJoin::Full) => {
                self.options
                    .observer
                    .limit_rejected(&key.app_id, Limit::PresenceMembers);
                self.unregister(key, socket_id).await;
                Err((
                    SubscriptionErrorKind::LimitReached,
                    format!("presence channel is full ({max} members)"),
                ))
            }
            Err(e) => {
                warn!(error = %e, channel = %key.channel, "presence join failed");
                self.unregister(key, socket_id).await;
                Err(unavailable("presence membership"))
            }
        }
    }

    /// Undo the subscription part of [`register`](Self::register) (not presence).
    async fn unregister(&self, key: &ChannelKey, socket_id: &str) {
        if self.local.remove(key, socket_id).is_none() {
            return;
        }
        self.unsubscribe_backplane(key).await;
        if let Err(e) = self.cluster.subscription_removed(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "could not decrement subscription count; the next resync will");
        }
    }

    async fn unsubscribe_backplane(&self, key: &ChannelKey) {
        if let Err(e) = self.backplane.unsubscribe(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "backplane unsubscribe failed");
        }
    }

    async fn resend_success(&self, session: &Session, channel: &str, kind: ChannelKind) {
        let data = if kind == ChannelKind::Presence {
            match self.cluster.presence_members(session.app.id(), channel).await {
                Ok(roster) => roster_json(&roster),
                Err(e) => {
                    warn!(error = %e, channel, "presence roster unavailable");
                    let (kind, msg) = unavailable("presence roster");
                    return session.send_subscription_error(channel, kind, &msg);
                }
            }
        } else {
            "{}".to_owned()
        };
        session.send_json(&outbound::subscription_succeeded(channel, &data));
    }

    /// Undo a subscription: local index, counts, and presence (announcing `member_removed`).
    pub(super) async fn leave(&self, app: &App, conn: &ConnectionHandle, channel: &str, sub: Subscription) {
        let key = ChannelKey::new(app.id(), channel);
        let removed = {
            let _gate = self.gate.enter(channel).await;
            self.unregister(&key, conn.socket_id()).await;
            match &sub.presence_user {
                None => false,
                Some(user_id) => match self
                    .cluster
                    .presence_leave(app.id(), channel, conn.socket_id(), user_id)
                    .await
                {
                    Ok(removed) => removed,
                    Err(e) => {
                        warn!(error = %e, channel, user_id, "presence leave failed; announced after the next resync");
                        if !self.local.has_member(&key, user_id) {
                            self.remember_departure(app.id(), channel, user_id);
                        }
                        false
                    }
                },
            }
        };
        if let (true, Some(user_id)) = (removed, sub.presence_user) {
            let data = outbound::member_removed_data(&user_id);
            self.publish_internal(app.id(), channel, "pusher_internal:member_removed", data, None)
                .await;
        }
    }
}

/// Check the subscription's signature and, on presence channels, its member data.
fn authorize(session: &Session, req: &Subscribe, kind: ChannelKind) -> Result<Option<presence::Member>, Refusal> {
    if !kind.requires_auth() {
        return Ok(None);
    }
    let config = &session.app.config;
    let channel_data = match (kind, req.channel_data.as_deref()) {
        (ChannelKind::Presence, Some(data)) => Some(data),
        (ChannelKind::Presence, None) => {
            return Err((
                SubscriptionErrorKind::InvalidChannelData,
                "presence channels need channel_data".into(),
            ))
        }
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
