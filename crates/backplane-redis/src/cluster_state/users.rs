//! [`UserDirectory`] on Redis (`lua/user_in.lua`, `lua/user_out.lua`; keys `P:ut:a`, `P:uc:a`
//! and `P:node:n:users`, see `lua/common.lua`).

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, UserDirectory, UserSocket, UserStatus, UserTransition};
use redis::Value;

use super::{array, int, malformed};
use crate::keys::NodeRecord;
use crate::RedisBackplane;

impl RedisBackplane {
    /// The keys of `lua/user_in.lua` and `lua/user_out.lua` (the user's bucket).
    fn user_keys(&self, socket: &UserSocket<'_>) -> Vec<String> {
        let bucket = self.keys.bucket(self.keys.user_bucket(socket.app_id, socket.user_id));
        vec![
            bucket.users_per_node(socket.app_id),
            bucket.node_record(self.keys.node(), NodeRecord::Users),
            bucket.users_total(socket.app_id),
        ]
    }
}

fn transition(reply: &Value, what: &str) -> Result<UserTransition, BackplaneError> {
    match int(reply).ok_or_else(|| malformed(what))? {
        1 => Ok(UserTransition::Changed),
        _ => Ok(UserTransition::Unchanged),
    }
}

#[async_trait]
impl UserDirectory for RedisBackplane {
    async fn user_signed_in(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        let args = self.args(&[socket.app_id, socket.user_id]);
        let keys = self.user_keys(&socket);
        transition(&self.eval(&self.scripts().user_in, keys, args).await?, "user sign-in")
    }

    async fn user_signed_out(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        let args = self.args(&[socket.app_id, socket.user_id]);
        let keys = self.user_keys(&socket);
        transition(&self.eval(&self.scripts().user_out, keys, args).await?, "user sign-out")
    }

    async fn user_status(&self, app_id: &str, user_ids: &[String]) -> Result<UserStatus, BackplaneError> {
        if user_ids.is_empty() {
            return Ok(UserStatus::default());
        }
        // One HGET per user (each in its bucket), in one round trip.
        let keys: Vec<String> = user_ids
            .iter()
            .map(|u| self.keys.bucket(self.keys.user_bucket(app_id, u)).users_total(app_id))
            .collect();
        let commands = keys
            .iter()
            .zip(user_ids)
            .map(|(key, id)| {
                let mut cmd = redis::cmd("HGET");
                cmd.arg(key).arg(id);
                cmd
            })
            .collect();
        let reply = Value::Array(self.query_all(commands).await?);
        let counts = array(&reply).ok_or_else(|| malformed("user status"))?;
        if counts.len() != user_ids.len() {
            return Err(malformed("user status"));
        }
        let mut status = UserStatus::default();
        for (id, count) in user_ids.iter().zip(counts) {
            if int(count).is_some_and(|c| c > 0) {
                status.online.push(id.clone());
            } else {
                status.offline.push(id.clone());
            }
        }
        Ok(status)
    }
}
