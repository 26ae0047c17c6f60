//! [`EventCache`] on Redis. The entry of a channel is one string key written by
//! `Backplane::publish_cached` in the same atomic step as its PUBLISH (`SET PX` in the publish
//! script, or in a MULTI with the replay logs off; Redis expires it),
//! holding the MessagePack pair `(event, data)`. A miss report is claimed with `SET NX PX`.

use std::time::Duration;

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, CachedEvent, EventCache};
use redis::Value;

use super::{array, int, malformed};
use crate::RedisBackplane;

/// The stored form of a cached event.
pub(crate) fn encode_cached(event: &str, data: &str) -> Vec<u8> {
    // Serializing two strings into a Vec cannot fail.
    rmp_serde::to_vec(&(event, data)).unwrap_or_default()
}

fn decode_cached(bytes: &[u8]) -> Result<(String, String), BackplaneError> {
    rmp_serde::from_slice(bytes).map_err(|_| malformed("cached event"))
}

#[async_trait]
impl EventCache for RedisBackplane {
    /// `GET` and `PTTL` in one MULTI, so the TTL is that of the value read.
    async fn cached(&self, app_id: &str, channel: &str) -> Result<Option<CachedEvent>, BackplaneError> {
        let key = self.keys.channel(app_id, channel).cache();
        let reply = self
            .with_conn(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        match array(&reply).ok_or_else(|| malformed("cache read"))? {
            [Value::Nil, _] => Ok(None),
            [Value::BulkString(bytes), pttl] => {
                let pttl = int(pttl).ok_or_else(|| malformed("cache ttl"))?;
                if pttl < 0 {
                    // -1: no expiry (never written so by us); -2: gone. Neither is a live entry.
                    return Ok(None);
                }
                let (event, data) = decode_cached(bytes)?;
                Ok(Some(CachedEvent {
                    event,
                    data,
                    ttl: Duration::from_millis(pttl as u64),
                }))
            }
            _ => Err(malformed("cache read")),
        }
    }

    async fn claim_miss_report(&self, app_id: &str, channel: &str, hold: Duration) -> Result<bool, BackplaneError> {
        let key = self.keys.channel(app_id, channel).cache_miss();
        let hold_ms = hold.as_millis().clamp(1, u64::MAX as u128) as u64;
        let reply = self
            .with_conn(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(hold_ms)
                    .query_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        Ok(matches!(reply, Value::Okay | Value::SimpleString(_)))
    }
}
