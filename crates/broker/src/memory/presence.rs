//! [`PresenceRoster`] in process.

use async_trait::async_trait;

use std::collections::HashSet;

use crate::cluster::{
    LeavePolicy, PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, PresenceRoster, Roster,
};
use crate::error::BackplaneError;
use crate::local_channels::ChannelKey;

use super::{leave_key, MemoryClusterState};

#[async_trait]
impl PresenceRoster for MemoryClusterState {
    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceJoinRequest<'_>,
    ) -> Result<PresenceJoin, BackplaneError> {
        let PresenceJoinRequest {
            socket_id,
            user_id,
            user_info,
            max_members,
        } = *req;
        let mut ch = self.presence.entry(ChannelKey::new(app_id, channel)).or_default();
        let is_new = !ch.members.contains_key(user_id);
        if is_new && max_members > 0 && ch.members.len() as u64 >= max_members {
            return Ok(PresenceJoin::Full);
        }
        let member = ch
            .members
            .entry(user_id.to_owned())
            .or_insert_with(|| (user_info.to_owned(), HashSet::new()));
        member.1.insert(socket_id.to_owned());
        if is_new {
            ch.seq += 1;
        }
        let roster = ch
            .members
            .iter()
            .map(|(id, (info, _))| (id.clone(), info.clone()))
            .collect();
        let returned = is_new && self.leaves.remove(&leave_key(app_id, channel, Some(user_id))).is_some();
        Ok(PresenceJoin::Joined {
            added: is_new,
            roster,
            returned,
            seq: ch.seq,
        })
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        req: &PresenceLeaveRequest<'_>,
    ) -> Result<PresenceLeave, BackplaneError> {
        let PresenceLeaveRequest {
            socket_id,
            user_id,
            policy,
        } = *req;
        let pending = policy == LeavePolicy::Pending;
        let key = ChannelKey::new(app_id, channel);
        let (token, seq) = {
            let Some(mut ch) = self.presence.get_mut(&key) else {
                return Ok(PresenceLeave::Stayed);
            };
            let Some(member) = ch.members.get_mut(user_id) else {
                return Ok(PresenceLeave::Stayed);
            };
            if !member.1.remove(socket_id) || !member.1.is_empty() {
                return Ok(PresenceLeave::Stayed);
            }
            ch.members.remove(user_id);
            ch.seq += 1;
            let token = pending.then(|| self.pending_leave(leave_key(app_id, channel, Some(user_id))));
            (token, ch.seq)
        };
        self.presence.remove_if(&key, |_, ch| ch.members.is_empty());
        Ok(PresenceLeave::Left { token, seq })
    }

    async fn presence_roster(&self, app_id: &str, channel: &str) -> Result<Roster, BackplaneError> {
        Ok(self
            .presence
            .get(&ChannelKey::new(app_id, channel))
            .map(|ch| Roster {
                members: ch
                    .members
                    .iter()
                    .map(|(id, (info, _))| (id.clone(), info.clone()))
                    .collect(),
                seq: ch.seq,
            })
            .unwrap_or_default())
    }
}
