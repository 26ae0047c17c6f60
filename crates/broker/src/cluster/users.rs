//! Signed-in users, cluster-wide: who is online (has at least one socket signed in with
//! `pusher:signin`, on any node), for watchlists (reference §6.4).

use async_trait::async_trait;

use crate::error::BackplaneError;

/// One socket of a user, signed in (or signing out) on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSocket<'a> {
    pub app_id: &'a str,
    pub user_id: &'a str,
}

/// Whether a sign-in or sign-out changed the user's online status cluster-wide. Decided by the
/// same atomic step that changes the count, so exactly one caller sees each transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTransition {
    /// First signed-in socket anywhere (sign-in) or last one gone (sign-out).
    Changed,
    /// The user was already online (sign-in) or still has sockets (sign-out); also a sign-out
    /// of a socket that was not registered (a reap or resync dropped it meanwhile: whoever
    /// dropped it reported the transition).
    Unchanged,
}

/// The online status of some users of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserStatus {
    /// Asked-for ids with at least one signed-in socket, in the order asked.
    pub online: Vec<String>,
    /// The others, in the order asked.
    pub offline: Vec<String>,
}

/// Signed-in sockets per user, counted per node (so a dead node's can be dropped).
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// One more signed-in socket of the user on this node.
    async fn user_signed_in(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError>;
    /// One less signed-in socket of the user on this node.
    async fn user_signed_out(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError>;
    /// Which of `user_ids` (of `app_id`) are online.
    async fn user_status(&self, app_id: &str, user_ids: &[String]) -> Result<UserStatus, BackplaneError>;
}
