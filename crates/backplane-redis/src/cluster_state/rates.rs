//! [`RateBudgets`] on Redis (`lua/rate.lua`, on the Redis clock).

use async_trait::async_trait;
use std::time::Duration;

use ferrocast_broker::{BackplaneError, RateBudgets, RateDecision, RateKind};
use redis::Value;

use super::{array, int, malformed};
use crate::RedisBackplane;

#[async_trait]
impl RateBudgets for RedisBackplane {
    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError> {
        // One round trip of `lua/rate.lua`.
        let key = self.keys.rate(app_id, kind.label());
        let script = &self.scripts().rate;
        let reply = self
            .with_conn(|mut conn| async move {
                script
                    .key(key)
                    .arg(units)
                    .arg(per_second)
                    .invoke_async::<Value>(&mut conn)
                    .await
            })
            .await?;
        match array(&reply).ok_or_else(|| malformed("rate"))? {
            [allowed, resets_ms] => {
                let resets_ms = int(resets_ms).ok_or_else(|| malformed("rate"))?;
                Ok(RateDecision {
                    allowed: int(allowed) == Some(1),
                    resets_in: Duration::from_millis(resets_ms.clamp(0, 1000) as u64),
                })
            }
            _ => Err(malformed("rate")),
        }
    }
}
