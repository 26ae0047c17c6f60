//! What one node registered in one bucket, read before a script rebuilds or removes it
//! (`lua/node_records.lua`): the scripts get every key in `KEYS[]`, so the keys the records
//! lead to are named here, from the records as read, and the script checks that the records
//! did not change in between (else it answers `stale` and the caller reads again). Only the
//! node itself and its reapers write those records, so a retry is rare.

use ferrocast_broker::BackplaneError;
use redis::Value;

use crate::keys::{Bucket, NodeRecord};
use crate::RedisBackplane;

/// How often a script answered `stale` may be run again before the operation fails.
const STALE_RETRIES: usize = 8;

/// A pending leave as listed in a node's records, with the key that says whether it stands.
struct Leave {
    entry: String,
    score: String,
    pending_key: String,
}

/// The four sets and the leaves (entry, score) as Redis answers them.
type RawRecords = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<(String, String)>,
);

/// A node's records in one bucket, as read.
pub(crate) struct Records {
    apps: Vec<String>,
    channels: Vec<(String, String)>,
    members: Vec<(String, String, String)>,
    users: Vec<(String, String)>,
    /// Entries of the leaves' set, malformed ones included (they lead to no key).
    leave_count: usize,
    leaves: Vec<Leave>,
}

/// A bucket script (`bucket_resync`, `bucket_reap`, `bucket_deregister`) to run for one node.
pub(crate) struct BucketRun<'a> {
    pub script: &'a redis::Script,
    pub node: &'a str,
    /// The node's incarnation (resync: this node's; reap: the dead node's as the reap decided).
    pub incarnation: &'a str,
    /// Inherits the node's pending leaves that stand.
    pub heir: &'a str,
    /// The script's own arguments, before the records.
    pub before: Vec<String>,
    /// The script's own keys and arguments, between the records' and the leaves'.
    pub snapshot: Invocation,
}

/// One bucket script's invocation: keys and arguments after the fixed heads.
#[derive(Default)]
pub(crate) struct Invocation {
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

fn split2(member: &str) -> Option<(String, String)> {
    let (a, b) = member.split_once('\n')?;
    Some((a.to_owned(), b.to_owned()))
}

fn split3(member: &str) -> Option<(String, String, String)> {
    let (a, rest) = member.split_once('\n')?;
    let (b, c) = rest.split_once('\n')?;
    Some((a.to_owned(), b.to_owned(), c.to_owned()))
}

impl RedisBackplane {
    /// Read `node`'s records in `bucket` (one pipelined round trip). A member that does not
    /// parse fails the read: the records are ours, so it means another writer's bug.
    pub(crate) async fn read_records(&self, node: &str, bucket: Bucket) -> Result<Records, BackplaneError> {
        let b = self.keys.bucket(bucket);
        let names = [
            NodeRecord::Apps,
            NodeRecord::Channels,
            NodeRecord::Presence,
            NodeRecord::Users,
        ]
        .map(|kind| b.node_record(node, kind));
        let leaves_key = b.node_record(node, NodeRecord::Leaves);
        let (apps, channels, members, users, leaves): RawRecords = self
            .with_conn(|mut conn| async move {
                let mut pipe = redis::pipe();
                for name in &names {
                    pipe.cmd("SMEMBERS").arg(name);
                }
                pipe.cmd("ZRANGE").arg(&leaves_key).arg(0).arg(-1).arg("WITHSCORES");
                pipe.query_async(&mut conn).await
            })
            .await?;
        let bad = || BackplaneError::malformed("node records");
        let leave_count = leaves.len();
        Ok(Records {
            apps,
            channels: channels
                .iter()
                .map(|m| split2(m))
                .collect::<Option<_>>()
                .ok_or_else(bad)?,
            members: members
                .iter()
                .map(|m| split3(m))
                .collect::<Option<_>>()
                .ok_or_else(bad)?,
            users: users.iter().map(|m| split2(m)).collect::<Option<_>>().ok_or_else(bad)?,
            leave_count,
            leaves: leaves
                .into_iter()
                .filter_map(|(entry, score)| {
                    let pending_key = self.pending_key(&entry)?;
                    Some(Leave {
                        entry,
                        score,
                        pending_key,
                    })
                })
                .collect(),
        })
    }

    /// The key that holds a pending leave's token while it stands: `v\ntoken\na\nc` (a
    /// vacancy) or `d\ntoken\na\nc\nu` (a departure).
    fn pending_key(&self, entry: &str) -> Option<String> {
        let (kind, rest) = entry.split_once('\n')?;
        let (_token, rest) = rest.split_once('\n')?;
        let (app, rest) = rest.split_once('\n')?;
        match kind {
            "v" => Some(self.keys.channel(app, rest).vacancy()),
            "d" => {
                let (channel, user) = rest.split_once('\n')?;
                Some(self.keys.channel(app, channel).departure(user))
            }
            _ => None,
        }
    }

    /// Run a bucket script for `run.node` in `bucket`: read its records, then run the script
    /// with their keys, again while it answers `stale`. Returns the reply after its status, or
    /// `None` for `skip`.
    pub(crate) async fn run_bucket_script(
        &self,
        run: &BucketRun<'_>,
        bucket: Bucket,
    ) -> Result<Option<Vec<Value>>, BackplaneError> {
        let BucketRun {
            script,
            node,
            incarnation,
            heir,
            before,
            snapshot,
        } = run;
        for _ in 0..STALE_RETRIES {
            let records = self.read_records(node, bucket).await?;
            let mut keys = self.head_keys(bucket, node, heir);
            let mut args = vec![(*node).to_owned(), (*incarnation).to_owned()];
            args.extend(before.iter().cloned());
            records.push_args(&mut args);
            records.push_drop_keys(self, bucket, node, &mut keys);
            keys.extend(snapshot.keys.iter().cloned());
            args.extend(snapshot.args.iter().cloned());
            keys.extend(records.leaves.iter().map(|l| l.pending_key.clone()));
            let reply = self.eval(script, keys, args).await?;
            let Value::Array(mut parts) = reply else {
                return Err(BackplaneError::malformed("bucket script"));
            };
            let status = parts.first().and_then(super::string).unwrap_or_default();
            match status.as_str() {
                "ok" => {
                    parts.remove(0);
                    return Ok(Some(parts));
                }
                "skip" => return Ok(None),
                "stale" => continue,
                _ => return Err(BackplaneError::malformed("bucket script")),
            }
        }
        Err(BackplaneError::malformed("node records kept changing"))
    }

    /// `KEYS[1..8]` of a bucket script (see `lua/node_records.lua`).
    fn head_keys(&self, bucket: Bucket, node: &str, heir: &str) -> Vec<String> {
        let b = self.keys.bucket(bucket);
        let mut keys = vec![b.epoch()];
        keys.extend(
            [
                NodeRecord::Apps,
                NodeRecord::Channels,
                NodeRecord::Presence,
                NodeRecord::Users,
                NodeRecord::Leaves,
                NodeRecord::Incarnation,
            ]
            .map(|kind| b.node_record(node, kind)),
        );
        keys.push(b.node_record(heir, NodeRecord::Leaves));
        keys
    }
}

impl Records {
    /// The records as `read_records` in `lua/node_records.lua` takes them.
    fn push_args(&self, args: &mut Vec<String>) {
        args.push(self.apps.len().to_string());
        args.extend(self.apps.iter().cloned());
        args.push(self.channels.len().to_string());
        for (a, c) in &self.channels {
            args.extend([a.clone(), c.clone()]);
        }
        args.push(self.members.len().to_string());
        for (a, c, u) in &self.members {
            args.extend([a.clone(), c.clone(), u.clone()]);
        }
        args.push(self.users.len().to_string());
        for (a, u) in &self.users {
            args.extend([a.clone(), u.clone()]);
        }
        args.push(self.leave_count.to_string());
        args.push(self.leaves.len().to_string());
        for leave in &self.leaves {
            args.extend([leave.entry.clone(), leave.score.clone()]);
        }
    }

    /// The keys `drop_node` and `drop_node_users` take, in their order. App-wide keys are
    /// named in this bucket: a record is kept in the bucket of what it names.
    fn push_drop_keys(&self, backplane: &RedisBackplane, bucket: Bucket, node: &str, keys: &mut Vec<String>) {
        let b = backplane.keys.bucket(bucket);
        keys.extend(self.apps.iter().map(|a| b.connections(a)));
        for (a, c) in &self.channels {
            keys.extend([backplane.keys.channel(a, c).subscriptions(), b.channel_index(a)]);
        }
        for (a, c, _) in &self.members {
            let ck = backplane.keys.channel(a, c);
            keys.extend([
                ck.members(),
                ck.member_sockets(),
                ck.member_sockets_per_node(),
                ck.node_sockets(node),
                ck.presence_seq(),
            ]);
        }
        for (a, _) in &self.users {
            keys.extend([b.users_per_node(a), b.users_total(a)]);
        }
    }
}
