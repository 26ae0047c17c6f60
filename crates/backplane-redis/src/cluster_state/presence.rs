//! [`PresenceRoster`] on Redis (`lua/presence_join.lua`, `lua/presence_leave.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, PresenceJoin, PresenceLeave, PresenceRoster};
use redis::Value;

use super::{array, int, malformed, pairs, pending_leave, string};
use crate::RedisBackplane;

#[async_trait]
impl PresenceRoster for RedisBackplane {
    async fn presence_join(
        &self,
        app_id: &str,
        channel: &str,
        _socket_id: &str,
        user_id: &str,
        user_info: &str,
        max_members: u64,
    ) -> Result<PresenceJoin, BackplaneError> {
        let args = self.args(&[app_id, channel, user_id, user_info, &max_members.to_string()]);
        let reply = self.eval(&self.scripts.presence_join, args).await?;
        let items = array(&reply).ok_or_else(|| malformed("presence join"))?;
        match items {
            [status] if int(status) == Some(0) => Ok(PresenceJoin::Full),
            [status, added, roster, returned] if int(status) == Some(1) => Ok(PresenceJoin::Joined {
                added: int(added) == Some(1),
                roster: pairs(roster).ok_or_else(|| malformed("presence join"))?,
                returned: int(returned) == Some(1),
            }),
            _ => Err(malformed("presence join")),
        }
    }

    async fn presence_leave(
        &self,
        app_id: &str,
        channel: &str,
        _socket_id: &str,
        user_id: &str,
        pending: bool,
    ) -> Result<PresenceLeave, BackplaneError> {
        let token = self.leave_token(pending);
        let reply = self
            .eval(
                &self.scripts.presence_leave,
                self.args(&[app_id, channel, user_id, &token]),
            )
            .await?;
        match array(&reply).ok_or_else(|| malformed("presence leave"))? {
            [left, ..] if int(left) == Some(1) => Ok(PresenceLeave::Left(pending_leave(&reply, "presence leave")?)),
            _ => Ok(PresenceLeave::Stayed),
        }
    }

    async fn presence_members(&self, app_id: &str, channel: &str) -> Result<Vec<(String, String)>, BackplaneError> {
        let key = format!("{}:pm:{}:{}", self.keys.prefix(), app_id, channel);
        let reply = self
            .with_conn(|mut conn| async move { redis::cmd("HGETALL").arg(key).query_async::<Value>(&mut conn).await })
            .await?;
        let mut members = match &reply {
            Value::Map(map) => map.iter().filter_map(|(k, v)| Some((string(k)?, string(v)?))).collect(),
            other => pairs(other).ok_or_else(|| malformed("presence members"))?,
        };
        members.sort();
        Ok(members)
    }
}
