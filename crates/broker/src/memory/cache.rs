//! [`EventCache`] in process. The store is shared by the [`MemoryBackplane`](super::MemoryBackplane)
//! (which writes it as it publishes, like Redis does in the PUBLISH's round trip) and the
//! [`MemoryClusterState`] (which reads it): build the pair with
//! [`MemoryClusterState::backplane`].
//!
//! Entries expire on read; expired ones are swept every [`SWEEP_EVERY`] writes so channels
//! published once and never read do not accumulate. Miss claims are made by subscribers, so
//! they are swept the same way and each lives only [`crate::MISS_REPORT_HOLD`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;

use super::MemoryClusterState;
use crate::backplane::ChannelMessage;
use crate::cluster::{CachedEvent, EventCache};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;

/// Writes (or claims) between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 1024;

struct Entry {
    event: String,
    data: String,
    expires: Instant,
}

/// The cached events and miss-report claims of one single-node cluster.
#[derive(Default)]
pub struct MemoryEventCache {
    events: DashMap<ChannelKey, Entry>,
    /// Until when a reported miss suppresses further reports, per channel.
    claims: DashMap<ChannelKey, Instant>,
    writes: AtomicU64,
}

impl std::fmt::Debug for MemoryEventCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEventCache")
            .field("events", &self.events.len())
            .field("claims", &self.claims.len())
            .finish()
    }
}

impl MemoryEventCache {
    /// Keep every cacheable message of `messages` (see [`ChannelMessage::cache_entry`]).
    pub(crate) fn store(&self, messages: &[ChannelMessage], ttl: Duration) {
        let expires = Instant::now() + ttl;
        for m in messages {
            if let Some((event, data)) = m.cache_entry() {
                let entry = Entry {
                    event: event.to_owned(),
                    data: data.to_owned(),
                    expires,
                };
                self.events.insert(ChannelKey::new(&m.app_id, &m.channel), entry);
                self.maybe_sweep();
            }
        }
    }

    fn maybe_sweep(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.events.retain(|_, e| e.expires > now);
            self.claims.retain(|_, until| *until > now);
        }
    }
}

#[async_trait]
impl EventCache for MemoryClusterState {
    async fn cached(&self, app_id: &str, channel: &str) -> Result<Option<CachedEvent>, BackplaneError> {
        let key = ChannelKey::new(app_id, channel);
        let now = Instant::now();
        Ok(self.cache.events.get(&key).and_then(|e| {
            (e.expires > now).then(|| CachedEvent {
                event: e.event.clone(),
                data: e.data.clone(),
                ttl: e.expires - now,
            })
        }))
    }

    async fn claim_miss_report(&self, app_id: &str, channel: &str, hold: Duration) -> Result<bool, BackplaneError> {
        let now = Instant::now();
        self.cache.maybe_sweep();
        let mut until = self.cache.claims.entry(ChannelKey::new(app_id, channel)).or_insert(now);
        if *until > now {
            return Ok(false);
        }
        *until = now + hold;
        Ok(true)
    }
}
