//! Per-app REST budgets shared by every node.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackplaneError;

/// Which per-app budget a [`RateBudgets::take_rate`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    /// `max_backend_events_per_second`: one unit per (event, channel) published over REST.
    BackendEvents,
    /// `max_read_requests_per_second`: one unit per REST read (channels, channel, users).
    ReadRequests,
}

impl RateKind {
    /// Short name, used in storage keys.
    pub fn label(self) -> &'static str {
        match self {
            RateKind::BackendEvents => "events",
            RateKind::ReadRequests => "reads",
        }
    }
}

/// The answer of [`RateBudgets::take_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// The units were taken. When false nothing was taken.
    pub allowed: bool,
    /// How long until the current one-second window ends and the budget is whole again.
    pub resets_in: Duration,
}

/// Cluster-wide per-second budgets.
#[async_trait]
pub trait RateBudgets: Send + Sync {
    /// Take `units` from the app's cluster-wide `kind` budget of `per_second` units per
    /// one-second window, all or nothing. `per_second` is never 0 here: callers skip
    /// unlimited budgets without asking.
    async fn take_rate(
        &self,
        app_id: &str,
        kind: RateKind,
        units: u64,
        per_second: u64,
    ) -> Result<RateDecision, BackplaneError>;
}
