//! Pending leaves: the cancellable delay before `channel_vacated` and `member_removed`.

use async_trait::async_trait;

use crate::error::BackplaneError;

/// A leave that can still be taken back: a channel lost its last subscriber, or a user their
/// last connection on a presence channel. Its webhook (`channel_vacated`, `member_removed`)
/// is due only if [`PendingLeaves::confirm_leave`] succeeds after the leave delay; a return in
/// between (a new subscriber, the user rejoining) cancels it, and then no `channel_occupied` /
/// `member_added` is reported either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveToken(pub String);

/// A pending leave whose node died inside the leave delay, handed to the node that reaped it
/// (in [`crate::cluster::Dropped::leaves`]): that node confirms it with
/// [`PendingLeaves::confirm_leave`] once the delay since `left_at_ms` is over, so the webhook
/// still goes out, and goes out once (the token decides, whoever confirms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritedLeave {
    pub app_id: String,
    pub channel: String,
    /// `None` for a channel vacancy, the member for a presence departure.
    pub user_id: Option<String>,
    pub token: LeaveToken,
    /// When the leave happened (Unix ms, the state store's clock): its delay runs from there.
    pub left_at_ms: u64,
}

/// What happens to a leave that empties something (a channel's last subscriber, a user's last
/// socket on a presence channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeavePolicy {
    /// Gone at once (apps without webhooks).
    Immediate,
    /// Kept pending under a [`LeaveToken`] until confirmed after the leave delay, so a return
    /// within it cancels both webhook reports (apps with webhooks).
    Pending,
}

impl LeavePolicy {
    /// `Pending` when the app has webhooks.
    pub fn for_webhooks(enabled: bool) -> Self {
        if enabled {
            LeavePolicy::Pending
        } else {
            LeavePolicy::Immediate
        }
    }
}

/// Confirms pending leaves once their delay is over.
#[async_trait]
pub trait PendingLeaves: Send + Sync {
    /// Whether a leave still stands (nobody returned since): true at most once per token,
    /// whichever node asks (the one that left, or the one that inherited the leave when it
    /// died). `user_id` is `None` for a channel vacancy, the member for a presence departure.
    /// Either way the asking node owes this leave's confirmation no more.
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError>;
}
