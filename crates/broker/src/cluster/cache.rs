//! Cache channels (reference §7): the last event published through the REST API to each
//! `cache-` channel, kept cluster-wide for the app's `cache_ttl_s`.
//!
//! Reads and the miss-report claim are here, on the cluster state. The *write* is not: it is
//! [`crate::Backplane::publish_cached`], because it must go in the same round trip as the
//! PUBLISH of the event (Redis: `SET PX` and `PUBLISH` in one script). Were it a separate call, a
//! subscriber could see the live event and then get an older cached one replayed, or a publish
//! could be acknowledged with its cache write lost.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackplaneError;

/// How long a reported cache miss suppresses further `cache_miss` webhooks for its channel, so
/// a burst of subscribers on an empty channel yields one webhook.
pub const MISS_REPORT_HOLD: Duration = Duration::from_secs(5);

/// The cached event of a channel, as a new subscriber gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEvent {
    pub event: String,
    pub data: String,
    /// Time left before it expires.
    pub ttl: Duration,
}

impl CachedEvent {
    /// Seconds left, rounded up so an entry that is still there never shows 0.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl.as_millis().div_ceil(1000) as u64
    }
}

/// The cluster-wide cache of cache channels.
#[async_trait]
pub trait EventCache: Send + Sync {
    /// The channel's cached event, if one was published within its TTL.
    async fn cached(&self, app_id: &str, channel: &str) -> Result<Option<CachedEvent>, BackplaneError>;

    /// Claim the right to report a cache miss of `channel` (the `cache_miss` webhook): true for
    /// the first caller cluster-wide, then false for every caller until `hold` has passed.
    async fn claim_miss_report(&self, app_id: &str, channel: &str, hold: Duration) -> Result<bool, BackplaneError>;
}
