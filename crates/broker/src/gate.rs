//! The resync gate: lets a node re-register its whole state atomically without a global lock on
//! the hot path.
//!
//! Every operation that changes this node's registrations in the cluster state (connect,
//! subscribe, presence join/leave, disconnect) holds a shared guard on one shard, chosen by the
//! channel or app it touches, from its local change until the cluster call returns. A resync
//! takes every shard exclusively, so its snapshot and its replacement script see no operation
//! half done. Ordinary operations on different shards never contend.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const SHARDS: usize = 64;

#[derive(Debug)]
pub struct ResyncGate {
    shards: Vec<RwLock<()>>,
}

impl Default for ResyncGate {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(())).collect(),
        }
    }
}

impl ResyncGate {
    /// A shared guard for operations on `key` (a channel or app id).
    pub async fn enter(&self, key: &str) -> RwLockReadGuard<'_, ()> {
        self.shards[crate::shard::shard_of(key, SHARDS)].read().await
    }

    /// Exclusive access to every shard, for a resync.
    pub async fn exclusive(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        let mut guards = Vec::with_capacity(SHARDS);
        for shard in &self.shards {
            guards.push(shard.write().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn exclusive_waits_for_shared_guards_and_blocks_new_ones() {
        let gate = std::sync::Arc::new(ResyncGate::default());
        let shared = gate.enter("chan").await;
        let g2 = gate.clone();
        let resync = tokio::spawn(async move {
            let _all = g2.exclusive().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!resync.is_finished(), "resync must wait for the shared guard");
        drop(shared);
        resync.await.unwrap();
        let _again = gate.enter("chan").await;
    }
}
