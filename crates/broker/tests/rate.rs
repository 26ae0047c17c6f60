//! The node's REST budgets: an unlimited app never asks the cluster state (no Redis round trip),
//! a limited one asks with its configured budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ferrocast_broker::{
    AppConfig, AppRegistry, BackplaneError, CachedEvent, ChannelCounts, ChannelOccupancy, ConnectionQuota,
    CountUpdates, EventCache, LeavePolicy, LeaveToken, MemoryBackplane, MemoryClusterState, Node, NodeOptions,
    NodeRegistration, NodeSnapshot, PendingLeaves, PresenceJoin, PresenceLeave, PresenceRoster, RateBudgets,
    RateDecision, RateKind, ResyncOutcome, UserDirectory, UserSocket, UserStatus, UserTransition,
};

/// The in-memory cluster state, counting the budget questions it is asked.
#[derive(Default)]
struct Counting {
    inner: MemoryClusterState,
    asked: AtomicU64,
}

#[async_trait]
impl ConnectionQuota for Counting {
    async fn connection_opened(&self, a: &str, max: u64) -> Result<bool, BackplaneError> {
        self.inner.connection_opened(a, max).await
    }
    async fn connection_closed(&self, a: &str) -> Result<(), BackplaneError> {
        self.inner.connection_closed(a).await
    }
}

#[async_trait]
impl ChannelOccupancy for Counting {
    async fn subscription_added(&self, a: &str, c: &str) -> Result<bool, BackplaneError> {
        self.inner.subscription_added(a, c).await
    }
    async fn subscription_removed(
        &self,
        a: &str,
        c: &str,
        p: LeavePolicy,
    ) -> Result<Option<LeaveToken>, BackplaneError> {
        self.inner.subscription_removed(a, c, p).await
    }
    async fn channels(&self, a: &str, p: &str) -> Result<Vec<(String, ChannelCounts)>, BackplaneError> {
        self.inner.channels(a, p).await
    }
    async fn channel(&self, a: &str, c: &str) -> Result<ChannelCounts, BackplaneError> {
        self.inner.channel(a, c).await
    }
}

#[async_trait]
impl CountUpdates for Counting {
    async fn count_changed(&self, a: &str, c: &str, hold: std::time::Duration) -> Result<bool, BackplaneError> {
        self.inner.count_changed(a, c, hold).await
    }
    async fn count_update_due(
        &self,
        a: &str,
        c: &str,
        hold: std::time::Duration,
    ) -> Result<Option<u64>, BackplaneError> {
        self.inner.count_update_due(a, c, hold).await
    }
}

#[async_trait]
impl PresenceRoster for Counting {
    async fn presence_join(
        &self,
        a: &str,
        c: &str,
        r: &ferrocast_broker::PresenceJoinRequest<'_>,
    ) -> Result<PresenceJoin, BackplaneError> {
        self.inner.presence_join(a, c, r).await
    }
    async fn presence_leave(
        &self,
        a: &str,
        c: &str,
        r: &ferrocast_broker::PresenceLeaveRequest<'_>,
    ) -> Result<PresenceLeave, BackplaneError> {
        self.inner.presence_leave(a, c, r).await
    }
    async fn presence_members(&self, a: &str, c: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        self.inner.presence_members(a, c).await
    }
    async fn presence_roster(&self, a: &str, c: &str) -> Result<ferrocast_broker::Roster, BackplaneError> {
        self.inner.presence_roster(a, c).await
    }
}

#[async_trait]
impl PendingLeaves for Counting {
    async fn confirm_leave(&self, a: &str, c: &str, u: Option<&str>, t: &LeaveToken) -> Result<bool, BackplaneError> {
        self.inner.confirm_leave(a, c, u, t).await
    }
}

#[async_trait]
impl NodeRegistration for Counting {
    async fn resync(&self, s: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        self.inner.resync(s).await
    }
}

#[async_trait]
impl EventCache for Counting {
    async fn cached(&self, a: &str, c: &str) -> Result<Option<CachedEvent>, BackplaneError> {
        self.inner.cached(a, c).await
    }
    async fn claim_miss_report(&self, a: &str, c: &str, hold: std::time::Duration) -> Result<bool, BackplaneError> {
        self.inner.claim_miss_report(a, c, hold).await
    }
}

#[async_trait]
impl RateBudgets for Counting {
    async fn take_rate(&self, a: &str, k: RateKind, n: u64, per: u64) -> Result<RateDecision, BackplaneError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.inner.take_rate(a, k, n, per).await
    }
}

#[async_trait]
impl UserDirectory for Counting {
    async fn user_signed_in(&self, s: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        self.inner.user_signed_in(s).await
    }
    async fn user_signed_out(&self, s: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        self.inner.user_signed_out(s).await
    }
    async fn user_status(&self, a: &str, ids: &[String]) -> Result<UserStatus, BackplaneError> {
        self.inner.user_status(a, ids).await
    }
}

fn app(id: &str, events: u64, reads: u64) -> AppConfig {
    AppConfig {
        id: id.into(),
        key: format!("{id}-key"),
        secret: "secret".into(),
        max_backend_events_per_second: events,
        max_read_requests_per_second: reads,
        ..AppConfig::default()
    }
}

#[tokio::test]
async fn unlimited_budgets_never_ask_the_cluster_state() {
    let cluster = Arc::new(Counting::default());
    let node = Node::new(
        AppRegistry::new([app("free", 0, 0), app("limited", 3, 0)]),
        Arc::new(MemoryBackplane::new()),
        cluster.clone(),
        NodeOptions::new(64, 7),
    );
    let free = node.apps().by_id("free").unwrap();
    for kind in [RateKind::BackendEvents, RateKind::ReadRequests] {
        for _ in 0..100 {
            assert!(node.take_rate(&free, kind, 1_000).await.unwrap().allowed);
        }
    }
    assert_eq!(
        cluster.asked.load(Ordering::Relaxed),
        0,
        "no round trip for unlimited budgets"
    );

    let limited = node.apps().by_id("limited").unwrap();
    assert!(
        node.take_rate(&limited, RateKind::ReadRequests, 1)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(cluster.asked.load(Ordering::Relaxed), 0, "its read budget is unlimited");
    // The window opens with the first question, so these fall in one.
    assert!(
        node.take_rate(&limited, RateKind::BackendEvents, 2)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !node
            .take_rate(&limited, RateKind::BackendEvents, 2)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        node.take_rate(&limited, RateKind::BackendEvents, 1)
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(cluster.asked.load(Ordering::Relaxed), 3);
}
