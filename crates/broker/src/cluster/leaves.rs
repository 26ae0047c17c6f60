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

/// Confirms pending leaves once their delay is over.
#[async_trait]
pub trait PendingLeaves: Send + Sync {
    /// Whether a leave still stands (nobody returned since): true at most once per token.
    /// `user_id` is `None` for a channel vacancy, the member for a presence departure.
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError>;
}
