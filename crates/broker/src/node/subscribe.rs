//! Subscriptions and presence.
//!
//! A subscribing socket joins the local index (held: see `local_channels`) and the backplane
//! interest before anything else, so no event published after its registration can miss it.
//! A presence join registers membership and reads the roster with its presence sequence in one
//! atomic step, then announces `member_added` (with the sequence) to the others. Last, the
//! socket is activated: `subscription_succeeded` (with the roster) goes out first, then what
//! arrived meanwhile, minus member events the roster already reflects. Any membership change
//! after the roster read has a higher sequence and is published after the read, so after the
//! interest: it reaches the socket, after its success frame. Every registration happens under the resync gate of its
//! channel and is rolled back in full if any step fails.

use std::sync::Arc;

use ferrocast_protocol::channel::{self, ChannelKind};
use ferrocast_protocol::inbound::Subscribe;
use ferrocast_protocol::outbound::{self, SubscriptionErrorKind};
use ferrocast_protocol::{presence, signature};
use tracing::warn;

use ferrocast_protocol::webhook::WebhookEvent;

use super::webhooks::PendingLeave;
use super::Node;
use crate::app::App;
use crate::audit::{self, AuthDenial, Denial};
use crate::backplane::{ChannelMessage, Payload};
use crate::cluster::{
    LeavePolicy, LeaveToken, PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, Roster,
};
use crate::connection::ConnectionHandle;
use crate::frame;
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

/// What a successful registration changed cluster-wide.
struct Registered {
    /// The channel went from no subscriber to one.
    occupied: bool,
    /// On presence channels: the roster JSON, and whether a `member_added` is due to the other
    /// subscribers (`announce`) and to webhooks (`report`).
    presence: Option<PresenceJoined>,
}

struct PresenceJoined {
    roster: String,
    /// The roster's member ids and the presence sequence it reflects.
    ids: Vec<String>,
    seq: u64,
    announce: bool,
    report: bool,
}

fn roster_json(roster: &[(String, String)]) -> String {
    presence::roster_json(roster.iter().map(|(id, info)| (id.as_str(), info.as_str())))
}

impl Node {
    pub(super) async fn subscribe(&self, session: &mut Session, req: Subscribe) {
        if let Err(limit) = self.admit_subscribe(session, &req.channel) {
            self.options.observer.limit_rejected(session.app.id(), limit);
            return;
        }
        let config = session.app.config();
        let kind = match channel::validate_channel_name(&req.channel, config.max_channel_name_length) {
            Ok(ChannelKind::ServerToUser) => return self.subscribe_server_to_user(session, &req.channel),
            Ok(kind) => kind,
            Err(e) => {
                let msg = e.to_string();
                return session.send_subscription_error(&req.channel, SubscriptionErrorKind::InvalidChannel, &msg);
            }
        };
        if session.subscriptions.contains_key(&req.channel) {
            return self.resend_success(session, &req.channel, kind).await;
        }
        let max = config.max_subscriptions_per_connection;
        if session.subscriptions.len() >= max {
            self.options
                .observer
                .limit_rejected(session.app.id(), Limit::SubscriptionsPerConnection);
            let msg = format!(
                "this connection is subscribed to {max} channels, the most allowed (max_subscriptions_per_connection)"
            );
            return session.send_subscription_error(&req.channel, SubscriptionErrorKind::LimitReached, &msg);
        }
        let member = match authorize(session, &req, kind) {
            Ok(member) => member.map(|m| {
                Arc::new(LocalMember {
                    user_id: m.user_id,
                    user_info: m.user_info,
                })
            }),
            Err((kind, msg)) => {
                if kind == SubscriptionErrorKind::Auth {
                    let mut denial = Denial::new(AuthDenial::SubscriptionSignature);
                    denial.app_id = Some(session.app.id());
                    denial.socket_id = Some(session.socket_id());
                    denial.channel = Some(&req.channel);
                    audit::denied(self.options.observer.as_ref(), &denial);
                }
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
        let registered = match joined {
            Ok(registered) => registered,
            Err((kind, msg)) => return session.send_subscription_error(&req.channel, kind, &msg),
        };
        let app_id = session.app.id();
        if registered.occupied {
            let channel = req.channel.clone();
            self.report(app_id, WebhookEvent::ChannelOccupied { channel });
        }
        if let (Some(member), Some(joined)) = (&member, &registered.presence) {
            if joined.announce {
                let payload = Payload::MemberAdded {
                    user_id: member.user_id.clone(),
                    user_info: member.user_info.clone(),
                    seq: joined.seq,
                };
                let message = ChannelMessage::new(app_id, &req.channel, payload).excluding(Some(session.socket_id()));
                self.publish_internal(message).await;
            }
            if joined.report {
                let (channel, user_id) = (req.channel.clone(), member.user_id.clone());
                self.report(app_id, WebhookEvent::MemberAdded { channel, user_id });
            }
        }
        let presence_user = member.map(|m| m.user_id.clone());
        session
            .subscriptions
            .insert(req.channel.clone(), Subscription { presence_user });
        let (data, seq, ids) = match registered.presence {
            Some(p) => (p.roster, p.seq, p.ids),
            None => ("{}".to_owned(), 0, Vec::new()),
        };
        let mut first = vec![frame::text(&outbound::subscription_succeeded(&req.channel, &data))];
        first.extend(self.cache_replay(session.app.id(), &req.channel).await);
        let ids = ids.iter().map(String::as_str);
        self.local.activate(&key, session.socket_id(), first, seq, ids);
        self.subscription_count_changed(&key).await;
    }

    /// The per-socket subscribe rate (token bucket): every `pusher:subscribe` takes a token,
    /// whatever its outcome, before any other work. Refused with 429 `LimitReached`.
    fn admit_subscribe(&self, session: &mut Session, channel: &str) -> Result<(), Limit> {
        let now_ms = session.epoch.elapsed().as_millis() as u64;
        if session.subscribe_requests.try_take(now_ms) {
            return Ok(());
        }
        let rate = session.app.config().max_subscription_requests_per_second;
        let msg = format!("over {rate} subscribe requests per second (max_subscription_requests_per_second)");
        session.send_subscription_error(channel, SubscriptionErrorKind::RateLimited, &msg);
        Err(Limit::SubscriptionRate)
    }

    /// Local index, backplane interest, subscription count and presence membership, rolled
    /// back in full when a step fails.
    async fn register(
        &self,
        session: &Session,
        key: &ChannelKey,
        member: Option<Arc<LocalMember>>,
    ) -> Result<Registered, Refusal> {
        let socket_id = session.socket_id();
        self.local.add(key, &session.conn, member.clone());
        if let Err(e) = self.backplane.subscribe(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "backplane subscribe failed");
            self.local.remove(key, socket_id);
            return Err(unavailable("subscription"));
        }
        let occupied = match self.cluster.subscription_added(&key.app_id, &key.channel).await {
            Ok(occupied) => occupied,
            Err(e) => {
                warn!(error = %e, channel = %key.channel, "subscription count failed");
                self.cluster_write_failed();
                self.local.remove(key, socket_id);
                self.unsubscribe_backplane(key).await;
                return Err(unavailable("subscription"));
            }
        };
        let Some(member) = member else {
            return Ok(Registered {
                occupied,
                presence: None,
            });
        };
        let max = session.app.config().max_presence_members_per_channel;
        let joined = self
            .cluster
            .presence_join(
                &key.app_id,
                &key.channel,
                &PresenceJoinRequest {
                    socket_id,
                    user_id: &member.user_id,
                    user_info: &member.user_info,
                    max_members: max,
                },
            )
            .await;
        let refusal = match joined {
            Ok(PresenceJoin::Joined {
                added,
                roster,
                returned,
                seq,
            }) => {
                // A departure of this user that could not be registered is moot: the user is a
                // member again, as the cluster state says (reported or not, per `added`).
                self.forget_departure(&key.app_id, &key.channel, &member.user_id);
                let presence = PresenceJoined {
                    roster: roster_json(&roster),
                    ids: roster.into_iter().map(|(id, _)| id).collect(),
                    seq,
                    announce: added,
                    report: added && !returned,
                };
                return Ok(Registered {
                    occupied,
                    presence: Some(presence),
                });
            }
            Ok(PresenceJoin::Full) => {
                self.options
                    .observer
                    .limit_rejected(&key.app_id, Limit::PresenceMembers);
                (
                    SubscriptionErrorKind::LimitReached,
                    format!("presence channel is full ({max} members)"),
                )
            }
            Err(e) => {
                warn!(error = %e, channel = %key.channel, "presence join failed");
                self.cluster_write_failed();
                unavailable("presence membership")
            }
        };
        let vacancy = self.unregister(key, socket_id).await;
        self.roll_back_vacancy(key, occupied, vacancy).await;
        Err(refusal)
    }

    /// A rolled-back registration emptied the channel again. If its occupancy was reported by
    /// nobody (it was ours), the vacancy is not reported either; otherwise it is a real leave.
    async fn roll_back_vacancy(&self, key: &ChannelKey, occupied: bool, vacancy: Option<LeaveToken>) {
        match vacancy {
            Some(token) if occupied => self.discard_vacancy(&key.app_id, &key.channel, &token).await,
            vacancy => self.schedule_leave(PendingLeave {
                app_id: key.app_id.to_string(),
                channel: key.channel.to_string(),
                vacancy,
                departure: None,
            }),
        }
    }

    /// Undo the subscription part of [`register`](Self::register) (not presence). Returns the
    /// pending vacancy when this emptied the channel cluster-wide.
    async fn unregister(&self, key: &ChannelKey, socket_id: &str) -> Option<LeaveToken> {
        if !self.local.remove(key, socket_id) {
            return None;
        }
        self.unsubscribe_backplane(key).await;
        let policy = LeavePolicy::for_webhooks(self.options.webhooks.enabled(&key.app_id));
        match self
            .cluster
            .subscription_removed(&key.app_id, &key.channel, policy)
            .await
        {
            Ok(vacancy) => vacancy,
            Err(e) => {
                // The repair resync drops the count and reports the vacancy if this emptied it.
                warn!(error = %e, channel = %key.channel, "could not decrement subscription count; resyncing");
                self.cluster_write_failed();
                None
            }
        }
    }

    async fn unsubscribe_backplane(&self, key: &ChannelKey) {
        if let Err(e) = self.backplane.unsubscribe(&key.app_id, &key.channel).await {
            warn!(error = %e, channel = %key.channel, "backplane unsubscribe failed");
        }
    }

    /// A repeated subscribe: the socket gets a fresh `subscription_succeeded` (pusher-js resets
    /// its roster on it), so its frames are held again while the roster is read, as on a first
    /// subscribe.
    async fn resend_success(&self, session: &Session, channel: &str, kind: ChannelKind) {
        let key = ChannelKey::new(session.app.id(), channel);
        self.local.hold(&key, session.socket_id());
        let roster = if kind == ChannelKind::Presence {
            match self.cluster.presence_roster(session.app.id(), channel).await {
                Ok(roster) => roster,
                Err(e) => {
                    warn!(error = %e, channel, "presence roster unavailable");
                    let (kind, msg) = unavailable("presence roster");
                    session.send_subscription_error(channel, kind, &msg);
                    // Still subscribed with the roster it had: let its events through again.
                    self.local.activate(&key, session.socket_id(), Vec::new(), 0, []);
                    return;
                }
            }
        } else {
            Roster::default()
        };
        let data = if kind == ChannelKind::Presence {
            roster_json(&roster.members)
        } else {
            "{}".to_owned()
        };
        let success = frame::text(&outbound::subscription_succeeded(channel, &data));
        let ids = roster.members.iter().map(|(id, _)| id.as_str());
        self.local
            .activate(&key, session.socket_id(), vec![success], roster.seq, ids);
    }

    /// Undo a subscription: local index, counts, and presence (announcing `member_removed`).
    pub(super) async fn leave(&self, app: &App, conn: &ConnectionHandle, channel: &str, sub: Subscription) {
        let key = ChannelKey::new(app.id(), channel);
        let (vacancy, departure) = {
            let _gate = self.gate.enter(channel).await;
            let vacancy = self.unregister(&key, conn.socket_id()).await;
            let policy = LeavePolicy::for_webhooks(self.options.webhooks.enabled(app.id()));
            let departure = match sub.presence_user {
                None => None,
                Some(user_id) => match self
                    .cluster
                    .presence_leave(
                        app.id(),
                        channel,
                        &PresenceLeaveRequest {
                            socket_id: conn.socket_id(),
                            user_id: &user_id,
                            policy,
                        },
                    )
                    .await
                {
                    Ok(PresenceLeave::Left { token, seq }) => Some((user_id, token, seq)),
                    Ok(PresenceLeave::Stayed) => None,
                    Err(e) => {
                        warn!(error = %e, channel, user_id, "presence leave failed; announced after a resync");
                        self.cluster_write_failed();
                        if !self.local.has_member(&key, &user_id) {
                            self.remember_departure(app.id(), channel, &user_id);
                        }
                        None
                    }
                },
            };
            (vacancy, departure)
        };
        self.subscription_count_changed(&key).await;
        if let Some((user_id, _, seq)) = &departure {
            let payload = Payload::MemberRemoved {
                user_id: user_id.clone(),
                seq: *seq,
            };
            self.publish_internal(ChannelMessage::new(app.id(), channel, payload))
                .await;
        }
        self.schedule_leave(PendingLeave {
            app_id: app.id().to_owned(),
            channel: channel.to_owned(),
            vacancy,
            departure: departure.and_then(|(user_id, token, _)| Some((user_id, token?))),
        });
    }
}

/// Check the subscription's signature and, on presence channels, its member data.
fn authorize(session: &Session, req: &Subscribe, kind: ChannelKind) -> Result<Option<presence::Member>, Refusal> {
    if !kind.requires_auth() {
        return Ok(None);
    }
    let config = session.app.config();
    let channel_data = match (kind, req.channel_data.as_deref()) {
        (ChannelKind::Presence, Some(data)) => Some(data),
        // Reference §6.1: a signed-in socket may omit channel_data; its signed-in id and
        // user_info (already size-checked at sign-in) are the member, `auth` signs `socket:channel`.
        (ChannelKind::Presence, None) if session.user.is_some() => {
            let signed = signature::channel_string_to_sign(session.socket_id(), &req.channel, None);
            config
                .verify_signed(crate::clock::unix_seconds(), |secret| {
                    signature::verify_auth(&config.key, secret, &signed, req.auth.as_deref())
                })
                .map_err(|e| (SubscriptionErrorKind::Auth, e.to_string()))?;
            return Ok(session.user.as_ref().map(|u| presence::Member {
                user_id: u.id.clone(),
                user_info: u.user_info.clone(),
            }));
        }
        (ChannelKind::Presence, None) => {
            return Err((
                SubscriptionErrorKind::InvalidChannelData,
                "presence channels need channel_data".into(),
            ))
        }
        _ => None,
    };
    let signed = signature::channel_string_to_sign(session.socket_id(), &req.channel, channel_data);
    config
        .verify_signed(crate::clock::unix_seconds(), |secret| {
            signature::verify_auth(&config.key, secret, &signed, req.auth.as_deref())
        })
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
