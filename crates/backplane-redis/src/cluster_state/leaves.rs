//! [`PendingLeaves`] on Redis (`lua/confirm_leave.lua`): the node id goes along, so the
//! confirming node's record of what it owes (`P:node:n:leaves`) loses the entry.

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, InheritedLeave, LeaveToken, PendingLeaves};
use tracing::warn;

use super::{int, malformed};
use crate::keys::NodeRecord;
use crate::RedisBackplane;

#[async_trait]
impl PendingLeaves for RedisBackplane {
    async fn confirm_leave(
        &self,
        app_id: &str,
        channel: &str,
        user_id: Option<&str>,
        token: &LeaveToken,
    ) -> Result<bool, BackplaneError> {
        let mut args = vec![app_id.to_owned(), channel.to_owned(), token.0.clone()];
        args.extend(user_id.map(str::to_owned));
        let c = self.keys.channel(app_id, channel);
        let pending = match user_id {
            Some(user) => c.departure(user),
            None => c.vacancy(),
        };
        let keys = vec![c.shared.node_record(self.keys.node(), NodeRecord::Leaves), pending];
        let reply = self.eval(&self.scripts().confirm_leave, keys, args).await?;
        Ok(int(&reply).ok_or_else(|| malformed("confirm leave"))? == 1)
    }
}

/// The `{entry, ms}` rows of pending leaves that still stand (from `hand_over_leaves` in
/// `lua/common.lua`, run by a reap or a resync). A malformed row is skipped and logged: the
/// script already ran, so the rest is still worth reporting.
pub(crate) fn standing_leaves(rows: Vec<Vec<String>>) -> Vec<InheritedLeave> {
    let mut leaves = Vec::with_capacity(rows.len());
    for row in rows {
        let leave = <[String; 2]>::try_from(row)
            .ok()
            .and_then(|[entry, ms]| leave_entry(&entry, score_ms(&ms)?));
        match leave {
            Some(leave) => leaves.push(leave),
            None => warn!("skipped a malformed pending leave"),
        }
    }
    leaves
}

/// A sorted-set score (Unix ms) as Redis prints it (an integer, or a float if it chose to).
fn score_ms(score: &str) -> Option<u64> {
    score.parse::<u64>().ok().or_else(|| {
        let v = score.parse::<f64>().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v as u64)
    })
}

/// An entry of `P:node:n:leaves` (see `lua/common.lua`): `v\ntoken\napp\nchannel` for a
/// vacancy, `d\ntoken\napp\nchannel\nuser` for a departure (the user last: it may hold anything).
fn leave_entry(entry: &str, left_at_ms: u64) -> Option<InheritedLeave> {
    let mut parts = entry.splitn(5, '\n');
    let kind = parts.next()?;
    let token = LeaveToken(parts.next()?.to_owned());
    let app_id = parts.next()?.to_owned();
    let channel = parts.next()?.to_owned();
    let user_id = match kind {
        "v" => None,
        "d" => Some(parts.next()?.to_owned()),
        _ => return None,
    };
    Some(InheritedLeave {
        app_id,
        channel,
        user_id,
        token,
        left_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_entries_parse_with_any_user_id() {
        let v = leave_entry("v\nnode-a:1\napp\npresence-x", 5).unwrap();
        assert_eq!(v.user_id, None);
        assert_eq!(v.token, LeaveToken("node-a:1".into()));
        assert_eq!(
            (v.app_id.as_str(), v.channel.as_str(), v.left_at_ms),
            ("app", "presence-x", 5)
        );
        let d = leave_entry("d\nnode-a:2\napp\npresence-x\nweird\nuser", 6).unwrap();
        assert_eq!(d.user_id.as_deref(), Some("weird\nuser"));
        assert!(leave_entry("x\nt\na\nc", 1).is_none());
        assert!(leave_entry("d\nt\na\nc", 1).is_none(), "a departure names its user");
    }

    #[test]
    fn malformed_rows_are_skipped_and_scores_may_be_floats() {
        let rows = vec![
            vec!["v\nt\na\nc".to_owned(), "7".to_owned()],
            vec!["bogus".to_owned()],
            vec!["d\nt\na\nc\nu".to_owned(), "8.0".to_owned()],
        ];
        let leaves = standing_leaves(rows);
        assert_eq!(leaves.len(), 2);
        assert_eq!((leaves[0].left_at_ms, leaves[1].left_at_ms), (7, 8));
    }
}
