//! `subscription_count` updates (reference §3.7, §10.3): for apps with
//! `enable_subscription_count`, the subscribers of every non-presence channel (never `#`
//! channels) are told the channel's cluster-wide count when it changes, and the
//! `subscription_count` webhook reports it, both coalesced cluster-wide.
//!
//! Coalescing rides on the channel's claim ([`CountUpdates`]): every change records itself;
//! the change that created the claim makes its node the publisher. The publisher waits
//! [`PROMPT`] (so a burst of subscribes is one update and a new subscriber soon sees a count
//! that includes itself), then reads the count and publishes it once to the channel, then
//! every [`interval`] asks again and publishes only if changes happened meanwhile; the first ask
//! that finds none releases the claim. So while a channel churns it costs one count read and
//! one publish per interval cluster-wide (1 s, 5 s above 100 subscribers, as the reference),
//! and the losers of the claim cost one cheap script each. The last count is always
//! published, 0 included (the webhook reports it; no socket is left to tell).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrocast_protocol::channel::ChannelKind;
use ferrocast_protocol::webhook::WebhookEvent;
use tokio::sync::Notify;
use tracing::warn;

use super::Node;
use crate::backplane::{Backplane, ChannelMessage, Payload};
use crate::cluster::ClusterState;
use crate::local_channels::ChannelKey;
use crate::observer::NodeObserver;
use crate::webhook::{unix_millis, WebhookSink};

/// How long the publisher waits before its first read: coalesces a burst, short enough that a
/// new subscriber sees its own subscription counted at once.
pub const PROMPT: Duration = Duration::from_millis(100);
/// The least time between two updates of a channel with up to [`LARGE_CHANNEL`] subscribers.
pub const SMALL_INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two updates of a larger channel (the reference's 5 s).
pub const LARGE_INTERVAL: Duration = Duration::from_secs(5);
/// Above this many subscribers a channel is updated every [`LARGE_INTERVAL`].
pub const LARGE_CHANNEL: u64 = 100;
/// How long a claim outlives its holder's last ask: beyond the longest interval plus a slow
/// read, so a live holder keeps it, and a dead one frees the channel soon.
const HOLD: Duration = Duration::from_secs(15);

/// The least time before the update after one that published `count`.
pub fn interval(count: u64) -> Duration {
    if count > LARGE_CHANNEL {
        LARGE_INTERVAL
    } else {
        SMALL_INTERVAL
    }
}

/// Whether the channel's subscribers get counts: the app's toggle, and not presence (members
/// are counted there) or `#` channels.
fn counted(enabled: bool, channel: &str) -> bool {
    enabled
        && !matches!(
            ChannelKind::of(channel),
            ChannelKind::Presence | ChannelKind::ServerToUser
        )
}

/// The publishers running on this node, so a draining node lets them publish the counts its
/// closed connections changed before it leaves (otherwise the other nodes' subscribers would
/// keep a stale count until the next change).
#[derive(Default)]
pub(super) struct Publishers {
    running: AtomicUsize,
    none_left: Notify,
}

/// One running publisher; counted down when its task ends, however it ends.
struct Running(Arc<Publishers>);

impl Running {
    fn start(publishers: &Arc<Publishers>) -> Self {
        publishers.running.fetch_add(1, Ordering::AcqRel);
        Self(publishers.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

impl Publishers {
    /// Resolves once no publisher runs on this node.
    async fn settled(&self) {
        loop {
            let notified = self.none_left.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// What the publisher of one channel needs, detached from the node's lifetime.
struct Publisher {
    cluster: Arc<dyn ClusterState>,
    backplane: Arc<dyn Backplane>,
    webhooks: Arc<dyn WebhookSink>,
    observer: Arc<dyn NodeObserver>,
    app_id: String,
    channel: String,
    _running: Running,
}

impl Node {
    /// Wait until this node's publishers released their claims (a draining node, after its
    /// connections closed; bound it: a channel that keeps changing elsewhere keeps its
    /// publisher going).
    pub async fn settle_subscription_counts(&self) {
        self.count_publishers.settled().await;
    }

    /// The channel's subscription count just changed (a subscribe or unsubscribe registered in
    /// the cluster state): record it, and become the channel's publisher if nobody is.
    pub(super) async fn subscription_count_changed(&self, key: &ChannelKey) {
        let enabled = self
            .apps
            .by_id(&key.app_id)
            .is_some_and(|app| app.config().enable_subscription_count);
        if !counted(enabled, &key.channel) {
            return;
        }
        match self.cluster.count_changed(&key.app_id, &key.channel, HOLD).await {
            Ok(true) => {
                let publisher = Publisher {
                    cluster: self.cluster.clone(),
                    backplane: self.backplane.clone(),
                    webhooks: self.options.webhooks.clone(),
                    observer: self.options.observer.clone(),
                    app_id: key.app_id.to_string(),
                    channel: key.channel.to_string(),
                    _running: Running::start(&self.count_publishers),
                };
                tokio::spawn(publisher.run());
            }
            Ok(false) => {}
            Err(e) => {
                // The next change (or, if a holder exists, its next ask) publishes it.
                warn!(error = %e, channel = %key.channel, "subscription count change not recorded");
            }
        }
    }
}

impl Publisher {
    /// Publish the channel's count while it keeps changing, at most once per interval.
    async fn run(self) {
        tokio::time::sleep(PROMPT).await;
        loop {
            let due = self.cluster.count_update_due(&self.app_id, &self.channel, HOLD).await;
            let count = match due {
                Ok(Some(count)) => count,
                Ok(None) => return,
                Err(e) => {
                    // The claim expires after HOLD; the next change after that claims afresh.
                    return warn!(error = %e, channel = %self.channel, "subscription count update lost");
                }
            };
            self.publish(count).await;
            tokio::time::sleep(interval(count)).await;
        }
    }

    async fn publish(&self, count: u64) {
        let message = ChannelMessage::new(&self.app_id, &self.channel, Payload::SubscriptionCount { count });
        match self.backplane.publish(message).await {
            Ok(()) => self.observer.subscription_count_published(&self.app_id),
            Err(e) => warn!(error = %e, channel = %self.channel, "subscription_count frame lost"),
        }
        if self.webhooks.enabled(&self.app_id) {
            let event = WebhookEvent::SubscriptionCount {
                channel: self.channel.clone(),
                subscription_count: count,
            };
            self.webhooks.emit(&self.app_id, event, unix_millis());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_and_server_to_user_channels_are_never_counted() {
        assert!(counted(true, "chat"));
        assert!(counted(true, "private-encrypted-x"));
        assert!(counted(true, "cache-x"));
        assert!(!counted(false, "chat"));
        assert!(!counted(true, "presence-room"));
        assert!(!counted(true, "presence-cache-room"));
        assert!(!counted(true, "#server-to-user-1"));
    }

    #[test]
    fn large_channels_wait_longer() {
        assert_eq!(interval(100), SMALL_INTERVAL);
        assert_eq!(interval(101), LARGE_INTERVAL);
    }
}
