//! Presence membership, cluster-wide: who is on a presence channel, once per user.
//!
//! Every change of a channel's membership (a user added or removed, by a join, a leave, a reap
//! or a resync) takes the next value of the channel's *presence sequence*, atomically with the
//! change, and every roster is returned with the sequence it reflects. Nodes use it to order
//! member events and to drop those a subscriber's roster already reflects (see
//! `local_channels`). Sequences only grow while a channel has members; a channel whose last
//! member left restarts from the store's clock in microseconds, so a new sequence is still
//! above any old one a node may remember (unless the channel changed more than a million times
//! a second on average).

use async_trait::async_trait;

use super::{LeavePolicy, LeaveToken};
use crate::error::BackplaneError;

/// Result of a presence join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceJoin {
    /// Joined; `added` when this was the user's first connection anywhere. `roster` is the
    /// member list (user id, user_info JSON) after the join, the joiner included. `returned`
    /// when the user had left within the leave delay: that pending leave is cancelled, so
    /// neither `member_removed` nor `member_added` is reported to webhooks.
    Joined {
        added: bool,
        roster: Vec<(String, String)>,
        returned: bool,
        /// The presence sequence `roster` reflects (this join's own, when `added`).
        seq: u64,
    },
    /// The channel already has the maximum number of distinct members.
    Full,
}

/// Result of a presence leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceLeave {
    /// The user still has a connection on the channel (or the socket was not theirs).
    Stayed,
    /// That was the user's last connection: a member no more. The token of the pending
    /// departure, when one was asked for, and the presence sequence of the removal.
    Left { token: Option<LeaveToken>, seq: u64 },
}

/// A socket joining a presence channel as a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceJoinRequest<'a> {
    pub socket_id: &'a str,
    pub user_id: &'a str,
    /// The user's `user_info` JSON, as the roster will carry it.
    pub user_info: &'a str,
    /// Refuse a new distinct member past this many (0 = unlimited).
    pub max_members: u64,
}

/// A socket leaving a presence channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLeaveRequest<'a> {
    /// Only this socket is removed: a repeated or foreign leave changes nothing.
    pub socket_id: &'a str,
    pub user_id: &'a str,
    pub policy: LeavePolicy,
}

/// A presence roster with the presence sequence it reflects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// (user id, user_info JSON), sorted by user id.
    pub members: Vec<(String, String)>,
    /// Every membership change up to this sequence is reflected, none after it.
    pub seq: u64,
}

impl PresenceLeave {
    /// Whether the user is a member no more.
    pub fn left(&self) -> bool {
        matches!(self, PresenceLeave::Left { .. })
    }

    /// The token of the pending departure, if the user left and one was asked for.
    pub fn into_token(self) -> Option<LeaveToken> {
        match self {
            PresenceLeave::Left { token, .. } => token,
            PresenceLeave::Stayed => None,
        }
    }
}

/// Presence members per channel across every node.
#[async_trait]
pub trait PresenceRoster: Send + Sync {
    /// Add the request's socket as a connection of its user, refusing a new distinct member
    /// past `max_members`; returns the roster with the presence sequence it reflects.
    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceJoinRequest<'_>,
    ) -> Result<PresenceJoin, BackplaneError>;

    /// Remove the request's socket from its user. When that was the user's last connection,
    /// the departure follows the request's [`LeavePolicy`].
    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceLeaveRequest<'_>,
    ) -> Result<PresenceLeave, BackplaneError>;

    /// Distinct members of a presence channel: (user id, user_info JSON).
    async fn presence_members(&self, app_id: &str, channel: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        Ok(self.presence_roster(app_id, channel).await?.members)
    }

    /// The members with the presence sequence they reflect, read atomically.
    async fn presence_roster(&self, app_id: &str, channel: &str) -> Result<Roster, BackplaneError>;
}
