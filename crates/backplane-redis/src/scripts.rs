//! The Lua scripts that change cluster state atomically, publish through the replay logs and
//! read them back, and run the webhook queue. Sources live in `src/lua/`; scripts that remove a
//! node's registrations or leave a pending leave share `common.lua`; the webhook queue's share
//! `wh_common.lua` (its key layout).

use redis::Script;

macro_rules! with_common {
    ($file:literal) => {
        concat!(include_str!("lua/common.lua"), "\n", include_str!($file))
    };
}

macro_rules! with_webhook_common {
    ($file:literal) => {
        concat!(include_str!("lua/wh_common.lua"), "\n", include_str!($file))
    };
}

/// Every script, loaded once (redis-rs retries with EVAL when Redis lost its script cache).
pub struct Scripts {
    pub connect: Script,
    pub disconnect: Script,
    pub sub_add: Script,
    pub sub_remove: Script,
    pub count_changed: Script,
    pub count_due: Script,
    pub presence_join: Script,
    pub presence_leave: Script,
    pub presence_roster: Script,
    pub confirm_leave: Script,
    pub channels: Script,
    pub channel: Script,
    pub heartbeat: Script,
    pub reap: Script,
    pub resync: Script,
    pub deregister: Script,
    pub rate: Script,
    pub user_in: Script,
    pub user_out: Script,
    pub publish: Script,
    pub replay: Script,
    pub wh_enqueue: Script,
    pub wh_claim: Script,
    pub wh_lease: Script,
    pub wh_ack: Script,
    pub wh_dead: Script,
    pub wh_replay: Script,
    pub wh_stats: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            connect: Script::new(include_str!("lua/connect.lua")),
            disconnect: Script::new(include_str!("lua/disconnect.lua")),
            sub_add: Script::new(include_str!("lua/sub_add.lua")),
            sub_remove: Script::new(with_common!("lua/sub_remove.lua")),
            count_changed: Script::new(include_str!("lua/count_changed.lua")),
            count_due: Script::new(include_str!("lua/count_due.lua")),
            presence_join: Script::new(with_common!("lua/presence_join.lua")),
            presence_leave: Script::new(with_common!("lua/presence_leave.lua")),
            presence_roster: Script::new(with_common!("lua/presence_roster.lua")),
            confirm_leave: Script::new(with_common!("lua/confirm_leave.lua")),
            channels: Script::new(include_str!("lua/channels.lua")),
            channel: Script::new(include_str!("lua/channel.lua")),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
            reap: Script::new(with_common!("lua/reap.lua")),
            resync: Script::new(with_common!("lua/resync.lua")),
            deregister: Script::new(with_common!("lua/deregister.lua")),
            rate: Script::new(include_str!("lua/rate.lua")),
            user_in: Script::new(include_str!("lua/user_in.lua")),
            user_out: Script::new(include_str!("lua/user_out.lua")),
            publish: Script::new(include_str!("lua/publish.lua")),
            replay: Script::new(include_str!("lua/replay.lua")),
            wh_enqueue: Script::new(with_webhook_common!("lua/wh_enqueue.lua")),
            wh_claim: Script::new(with_webhook_common!("lua/wh_claim.lua")),
            wh_lease: Script::new(include_str!("lua/wh_lease.lua")),
            wh_ack: Script::new(with_webhook_common!("lua/wh_ack.lua")),
            wh_dead: Script::new(with_webhook_common!("lua/wh_dead.lua")),
            wh_replay: Script::new(with_webhook_common!("lua/wh_replay.lua")),
            wh_stats: Script::new(with_webhook_common!("lua/wh_stats.lua")),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
