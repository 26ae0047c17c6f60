//! [`RateBudgets`] in process: on a single node, the node's own limiter is the cluster's.

use async_trait::async_trait;

use crate::cluster::{RateBudgets, RateDecision, RateKind};
use crate::error::BackplaneError;
use crate::rate_limit::SharedLimiter;

use super::MemoryClusterState;

#[async_trait]
impl RateBudgets for MemoryClusterState {
    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError> {
        let key = (app_id.to_owned(), kind);
        if let Some(limiter) = self.rates.get(&key).filter(|l| l.per_second() == per_second) {
            return Ok(limiter.take(units));
        }
        let mut limiter = self.rates.entry(key).or_insert_with(|| SharedLimiter::new(per_second));
        if limiter.per_second() != per_second {
            *limiter = SharedLimiter::new(per_second);
        }
        Ok(limiter.take(units))
    }
}
