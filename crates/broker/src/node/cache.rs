//! Cache channels (reference §7): what a new subscriber gets right after its
//! `subscription_succeeded`, and the REST `info=cache` read.
//!
//! The write is in [`Node::publish`](super::Node::publish): a publish naming a cache channel
//! goes through [`crate::Backplane::publish_cached`], which stores the event in the publish's
//! own round trip.

use bytes::Bytes;
use ferrocast_protocol::channel;
use ferrocast_protocol::outbound;
use ferrocast_protocol::webhook::WebhookEvent;
use tracing::warn;

use super::Node;
use crate::app::App;
use crate::cluster::{CachedEvent, MISS_REPORT_HOLD};
use crate::error::BackplaneError;
use crate::frame;
use crate::observer::CacheReplay;

impl Node {
    /// What a new subscriber of a cache channel gets right after its success frame: its cached
    /// event (to this socket only), or `pusher:cache_miss`, reporting the miss (once per channel
    /// per [`MISS_REPORT_HOLD`], cluster-wide). `None` for other channels. The subscriber is
    /// still held, so live events published meanwhile follow this frame, never precede it.
    ///
    /// When the cache cannot be read, nothing is sent: a `cache_miss` would be a lie and a
    /// subscription that already succeeded is not taken back. It is logged.
    pub(super) async fn cache_replay(&self, app_id: &str, channel: &str) -> Option<Bytes> {
        if !channel::is_cache(channel) {
            return None;
        }
        let (outcome, frame) = match self.cluster.cached(app_id, channel).await {
            Ok(Some(cached)) => {
                let json = outbound::channel_event(&cached.event, channel, &cached.data, None);
                (CacheReplay::Hit, Some(frame::text(&json)))
            }
            Ok(None) => {
                self.report_miss(app_id, channel).await;
                (CacheReplay::Miss, Some(frame::text(&outbound::cache_miss(channel))))
            }
            Err(e) => {
                warn!(error = %e, app_id, channel, "cache unavailable: nothing replayed to a new subscriber");
                (CacheReplay::Unavailable, None)
            }
        };
        self.options.observer.cache_replayed(app_id, outcome);
        frame
    }

    /// Fire the `cache_miss` webhook unless another subscriber (on any node) just did.
    async fn report_miss(&self, app_id: &str, channel: &str) {
        if !self.options.webhooks.enabled(app_id) {
            return;
        }
        match self.cluster.claim_miss_report(app_id, channel, MISS_REPORT_HOLD).await {
            Ok(true) => self.report(
                app_id,
                WebhookEvent::CacheMiss {
                    channel: channel.to_owned(),
                },
            ),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, app_id, channel, "cache_miss webhook not decided: cluster state unavailable");
                self.options
                    .webhooks
                    .lost(app_id, "cache_miss", "cluster_state_unavailable");
            }
        }
    }

    /// The cached event of a cache channel (REST `info=cache`).
    pub async fn cached_event(&self, app: &App, channel: &str) -> Result<Option<CachedEvent>, BackplaneError> {
        self.cluster.cached(app.id(), channel).await
    }
}
