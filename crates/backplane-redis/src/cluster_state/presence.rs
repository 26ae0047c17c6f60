//! [`PresenceRoster`] on Redis (`lua/presence_join.lua`, `lua/presence_leave.lua`,
//! `lua/presence_roster.lua`): sockets are tracked per node and socket id, so a repeated or
//! foreign leave changes nothing, and every membership change takes the channel's next
//! presence sequence in the same script.

use async_trait::async_trait;
use ferrocast_broker::{
    BackplaneError, LeaveToken, PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, PresenceRoster,
    Roster,
};

use super::{array, int, malformed, pairs, string};
use crate::keys::NodeRecord;
use crate::RedisBackplane;

fn seq(v: &redis::Value, what: &str) -> Result<u64, BackplaneError> {
    int(v)
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| malformed(what))
}

#[async_trait]
impl PresenceRoster for RedisBackplane {
    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceJoinRequest<'_>,
    ) -> Result<PresenceJoin, BackplaneError> {
        let max = req.max_members.to_string();
        let args = self.args(&[app_id, channel, req.socket_id, req.user_id, req.user_info, &max]);
        let c = self.keys.channel(app_id, channel);
        let node = self.keys.node();
        let keys = vec![
            c.members(),
            c.departure(req.user_id),
            c.node_sockets(node),
            c.member_sockets(),
            c.member_sockets_per_node(),
            c.shared.node_record(node, NodeRecord::Presence),
            c.presence_seq(),
        ];
        let reply = self.eval(&self.scripts().presence_join, keys, args).await?;
        let what = "presence join";
        let items = array(&reply).ok_or_else(|| malformed(what))?;
        match items {
            [status] if int(status) == Some(0) => Ok(PresenceJoin::Full),
            [status, added, roster, returned, s] if int(status) == Some(1) => Ok(PresenceJoin::Joined {
                added: int(added) == Some(1),
                roster: pairs(roster).ok_or_else(|| malformed(what))?,
                returned: int(returned) == Some(1),
                seq: seq(s, what)?,
            }),
            _ => Err(malformed(what)),
        }
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceLeaveRequest<'_>,
    ) -> Result<PresenceLeave, BackplaneError> {
        let token = self.leave_token(req.policy);
        let args = self.args(&[app_id, channel, req.socket_id, req.user_id, &token]);
        let c = self.keys.channel(app_id, channel);
        let node = self.keys.node();
        let keys = vec![
            c.members(),
            c.member_sockets(),
            c.member_sockets_per_node(),
            c.node_sockets(node),
            c.shared.node_record(node, NodeRecord::Presence),
            c.presence_seq(),
            c.departure(req.user_id),
            c.shared.node_record(node, NodeRecord::Leaves),
        ];
        let reply = self.eval(&self.scripts().presence_leave, keys, args).await?;
        let what = "presence leave";
        match array(&reply).ok_or_else(|| malformed(what))? {
            [left] if int(left) == Some(0) => Ok(PresenceLeave::Stayed),
            [left, s] if int(left) == Some(1) => Ok(PresenceLeave::Left {
                token: None,
                seq: seq(s, what)?,
            }),
            [left, s, token] if int(left) == Some(1) => Ok(PresenceLeave::Left {
                token: Some(LeaveToken(string(token).ok_or_else(|| malformed(what))?)),
                seq: seq(s, what)?,
            }),
            _ => Err(malformed(what)),
        }
    }

    async fn presence_roster(&self, app_id: &str, channel: &str) -> Result<Roster, BackplaneError> {
        let c = self.keys.channel(app_id, channel);
        let reply = self
            .eval(
                &self.scripts().presence_roster,
                vec![c.members(), c.presence_seq()],
                Vec::new(),
            )
            .await?;
        let what = "presence roster";
        match array(&reply).ok_or_else(|| malformed(what))? {
            [members, s] => {
                let mut members = pairs(members).ok_or_else(|| malformed(what))?;
                members.sort();
                Ok(Roster {
                    members,
                    seq: seq(s, what)?,
                })
            }
            _ => Err(malformed(what)),
        }
    }
}
