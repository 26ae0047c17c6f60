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

macro_rules! with_node_records {
    ($file:literal) => {
        concat!(
            include_str!("lua/common.lua"),
            "\n",
            include_str!("lua/node_records.lua"),
            "\n",
            include_str!($file)
        )
    };
}

macro_rules! with_webhook_common {
    ($file:literal) => {
        concat!(include_str!("lua/wh_common.lua"), "\n", include_str!($file))
    };
}

/// Every script, loaded once (redis-rs retries with EVAL when Redis lost its script cache).
///
/// On Redis 7 and later each script starts with `#!lua`: a script so declared is refused, as a
/// whole and before it runs, if it reaches a key of another slot than its `KEYS[]` (Redis 7.0
/// checks that only for scripts with a shebang, or in a real multi-node cluster), and if it
/// would write while Redis is out of memory. Redis 6 does not know the shebang.
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
    pub register: Script,
    pub reap_claim: Script,
    pub deregister: Script,
    pub reap: Script,
    pub resync: Script,
    pub bucket_deregister: Script,
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
}

/// How the scripts are written for the Redis they run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptForm {
    /// Redis 6: plain Lua.
    Plain,
    /// Redis 7 and later: declared with `#!lua`.
    Declared,
    /// A Redis Cluster (7 and later): declared, and publishing with `SPUBLISH`, so a message
    /// goes only to the shard that owns its channel's slot.
    Sharded,
}

impl Scripts {
    pub fn new(form: ScriptForm) -> Self {
        let lua = |source: &str| match form {
            ScriptForm::Plain => Script::new(source),
            ScriptForm::Declared => Script::new(&format!("#!lua\n{source}")),
            ScriptForm::Sharded => Script::new(&format!("#!lua\n{}", source.replace("'PUBLISH'", "'SPUBLISH'"))),
        };
        Self {
            connect: lua(include_str!("lua/connect.lua")),
            disconnect: lua(include_str!("lua/disconnect.lua")),
            sub_add: lua(include_str!("lua/sub_add.lua")),
            sub_remove: lua(with_common!("lua/sub_remove.lua")),
            count_changed: lua(include_str!("lua/count_changed.lua")),
            count_due: lua(include_str!("lua/count_due.lua")),
            presence_join: lua(with_common!("lua/presence_join.lua")),
            presence_leave: lua(with_common!("lua/presence_leave.lua")),
            presence_roster: lua(with_common!("lua/presence_roster.lua")),
            confirm_leave: lua(with_common!("lua/confirm_leave.lua")),
            channels: lua(include_str!("lua/channels.lua")),
            channel: lua(include_str!("lua/channel.lua")),
            heartbeat: lua(include_str!("lua/heartbeat.lua")),
            register: lua(include_str!("lua/register.lua")),
            reap_claim: lua(include_str!("lua/reap_claim.lua")),
            deregister: lua(include_str!("lua/deregister.lua")),
            reap: lua(with_node_records!("lua/bucket_reap.lua")),
            resync: lua(with_node_records!("lua/bucket_resync.lua")),
            bucket_deregister: lua(with_node_records!("lua/bucket_deregister.lua")),
            rate: lua(include_str!("lua/rate.lua")),
            user_in: lua(include_str!("lua/user_in.lua")),
            user_out: lua(include_str!("lua/user_out.lua")),
            publish: lua(include_str!("lua/publish.lua")),
            replay: lua(include_str!("lua/replay.lua")),
            wh_enqueue: lua(with_webhook_common!("lua/wh_enqueue.lua")),
            wh_claim: lua(with_webhook_common!("lua/wh_claim.lua")),
            wh_lease: lua(include_str!("lua/wh_lease.lua")),
            wh_ack: lua(with_webhook_common!("lua/wh_ack.lua")),
            wh_dead: lua(with_webhook_common!("lua/wh_dead.lua")),
            wh_replay: lua(with_webhook_common!("lua/wh_replay.lua")),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new(ScriptForm::Plain)
    }
}
