//! [`UserDirectory`] in process.

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;

use crate::cluster::{UserDirectory, UserSocket, UserStatus, UserTransition};
use crate::error::BackplaneError;

use super::MemoryClusterState;

/// `app\nuser`: the key of a user's signed-in socket count.
fn user_key(app_id: &str, user_id: &str) -> String {
    format!("{app_id}\n{user_id}")
}

#[async_trait]
impl UserDirectory for MemoryClusterState {
    async fn user_signed_in(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        let mut count = self.users.entry(user_key(socket.app_id, socket.user_id)).or_insert(0);
        *count += 1;
        Ok(if *count == 1 {
            UserTransition::Changed
        } else {
            UserTransition::Unchanged
        })
    }

    async fn user_signed_out(&self, socket: UserSocket<'_>) -> Result<UserTransition, BackplaneError> {
        // The entry holds its shard's lock: decrement and removal are one step.
        match self.users.entry(user_key(socket.app_id, socket.user_id)) {
            Entry::Occupied(mut entry) if *entry.get() > 1 => {
                *entry.get_mut() -= 1;
                Ok(UserTransition::Unchanged)
            }
            Entry::Occupied(entry) => {
                entry.remove();
                Ok(UserTransition::Changed)
            }
            Entry::Vacant(_) => Ok(UserTransition::Unchanged),
        }
    }

    async fn user_status(&self, app_id: &str, user_ids: &[String]) -> Result<UserStatus, BackplaneError> {
        let mut status = UserStatus::default();
        for id in user_ids {
            if self.users.contains_key(&user_key(app_id, id)) {
                status.online.push(id.clone());
            } else {
                status.offline.push(id.clone());
            }
        }
        Ok(status)
    }
}
