//! `client-*` events: sent by a socket to the other subscribers of a private or presence
//! channel, never echoed to the sender, with the sender's presence `user_id` attached, and
//! reported to the app's `client_event` webhooks once accepted.

use ferrocast_protocol::channel::{self, ChannelKind};
use ferrocast_protocol::codes;
use ferrocast_protocol::inbound::ClientEvent;
use ferrocast_protocol::webhook::WebhookEvent;
use tracing::warn;

use super::Node;
use crate::backplane::{ChannelMessage, Payload};
use crate::observer::Limit;
use crate::rate_limit::monotonic_seconds;
use crate::session::Session;

impl Node {
    pub(super) async fn client_event(&self, session: &mut Session, event: ClientEvent) {
        let config = session.app.config();
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
            self.options.observer.limit_rejected(&config.id, Limit::ClientEventSize);
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
            self.options.observer.limit_rejected(&config.id, Limit::ClientEventRate);
            return session.send_error(
                Some(codes::error::CLIENT_EVENT_RATE_LIMIT),
                "client event rate limit exceeded",
            );
        }
        let socket_id = session.socket_id().to_owned();
        let webhook = self
            .options
            .webhooks
            .enabled(&config.id)
            .then(|| WebhookEvent::ClientEvent {
                channel: event.channel.clone(),
                event: event.event.clone(),
                data: event.data.clone(),
                socket_id: socket_id.clone(),
                user_id: user_id.clone(),
            });
        let payload = Payload::Event {
            event: event.event,
            data: event.data,
            user_id,
        };
        let message = ChannelMessage::new(&config.id, &event.channel, payload).excluding(Some(&socket_id));
        if let Err(e) = self.backplane.publish(message).await {
            warn!(error = %e, "client event could not be published");
            return session.send_error(None, "client event could not be delivered, try again");
        }
        if let Some(webhook) = webhook {
            self.report(session.app.id(), webhook);
        }
    }
}
