//! Which of `n` shards a key belongs to: the one hash used to spread channels and apps over
//! locks, queues and webhook lanes, so the same key always lands in the same place.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The shard of `key` among `shards` (at least 1).
pub fn shard_of(key: &str, shards: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_in_range_and_spread() {
        assert_eq!(shard_of("presence-x", 16), shard_of("presence-x", 16));
        assert_eq!(shard_of("anything", 0), 0);
        let used: std::collections::HashSet<_> = (0..200).map(|i| shard_of(&format!("c{i}"), 8)).collect();
        assert_eq!(used.len(), 8, "200 keys reach every one of 8 shards");
    }
}
