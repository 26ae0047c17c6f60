//! [`NodeRegistration`] on Redis: register in the node registry (`lua/register.lua`), then
//! replace what this node holds, bucket by bucket (`lua/bucket_resync.lua`), each bucket in one
//! atomic step.

use async_trait::async_trait;
use ferrocast_broker::{BackplaneError, NodeRegistration, NodeSnapshot, ResyncOutcome};
use redis::Value;

use super::node_records::{BucketRun, Invocation};
use super::{int, malformed, rows, standing_leaves, string};
use crate::keys::Bucket;
use crate::RedisBackplane;

#[async_trait]
impl NodeRegistration for RedisBackplane {
    async fn resync(&self, snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        let incarnation = self.register().await?;
        let proposal = format!("{}-{:016x}", self.keys.node(), crate::pubsub::rand_nonce());
        let mut parts = self.split_snapshot(snapshot);
        let mut outcome = ResyncOutcome::default();
        for (bucket, part) in self.keys.all_buckets().zip(parts.iter_mut()) {
            let run = BucketRun {
                script: &self.scripts().resync,
                node: self.keys.node(),
                incarnation: &incarnation,
                heir: self.keys.node(),
                before: vec![self.known_epoch(bucket), proposal.clone()],
                snapshot: std::mem::take(part),
            };
            let reply = self
                .run_bucket_script(&run, bucket)
                .await?
                .ok_or_else(|| malformed("resync"))?;
            self.merge_bucket_outcome(bucket, &reply, &mut outcome)?;
        }
        Ok(outcome)
    }
}

impl RedisBackplane {
    /// Register this node (before its buckets are resynced, so no peer reaps it half-way);
    /// returns its incarnation.
    async fn register(&self) -> Result<String, BackplaneError> {
        let node = self.keys.node();
        let keys = vec![self.keys.nodes(), self.keys.heartbeat(node), self.keys.incarnations()];
        let fresh = format!("{node}-{:016x}", crate::pubsub::rand_nonce());
        let ttl_ms = self.options.node_ttl.as_millis().to_string();
        let reply = self
            .eval(&self.scripts().register, keys, vec![node.to_owned(), ttl_ms, fresh])
            .await?;
        string(&reply).ok_or_else(|| malformed("register"))
    }

    /// The epoch of `bucket` this node last resynced under ('' if none).
    pub(crate) fn known_epoch(&self, bucket: Bucket) -> String {
        self.epoch
            .lock()
            .ok()
            .and_then(|known| known.get(bucket.0 as usize).cloned())
            .unwrap_or_default()
    }

    /// The snapshot's entries of each bucket, as `bucket_resync.lua` takes them.
    fn split_snapshot(&self, snapshot: &NodeSnapshot) -> Vec<Invocation> {
        let count = self.keys.bucket_count() as usize;
        let mut conns = vec![Section::default(); count];
        let mut subs = vec![Section::default(); count];
        let mut pres = vec![Section::default(); count];
        let mut users = vec![Section::default(); count];
        for (app, n) in &snapshot.connections {
            let bucket = self.keys.app_bucket(app);
            let part = &mut conns[bucket.0 as usize];
            part.count += 1;
            part.keys.push(self.keys.bucket(bucket).connections(app));
            part.args.extend([app.clone(), n.to_string()]);
        }
        for (app, channel, n) in &snapshot.subscriptions {
            let c = self.keys.channel(app, channel);
            let part = &mut subs[self.keys.channel_bucket(app, channel).0 as usize];
            part.count += 1;
            part.keys
                .extend([c.subscriptions(), c.shared.channel_index(app), c.vacancy()]);
            part.args.extend([app.clone(), channel.clone(), n.to_string()]);
        }
        for (app, channel, user, info, sockets) in &snapshot.presence {
            let c = self.keys.channel(app, channel);
            let part = &mut pres[self.keys.channel_bucket(app, channel).0 as usize];
            part.count += 1;
            part.keys.extend([
                c.members(),
                c.node_sockets(self.keys.node()),
                c.member_sockets(),
                c.member_sockets_per_node(),
                c.presence_seq(),
            ]);
            part.args.extend([
                app.clone(),
                channel.clone(),
                user.clone(),
                info.clone(),
                sockets.len().to_string(),
            ]);
            part.args.extend(sockets.iter().cloned());
        }
        for (app, user, n) in &snapshot.users {
            let bucket = self.keys.user_bucket(app, user);
            let b = self.keys.bucket(bucket);
            let part = &mut users[bucket.0 as usize];
            part.count += 1;
            part.keys.extend([b.users_total(app), b.users_per_node(app)]);
            part.args.extend([app.clone(), user.clone(), n.to_string()]);
        }
        (0..count)
            .map(|i| {
                let mut part = Invocation::default();
                for section in [&mut conns, &mut subs, &mut pres, &mut users] {
                    let section = &mut section[i];
                    part.args.push(section.count.to_string());
                    part.args.append(&mut section.args);
                    part.keys.append(&mut section.keys);
                }
                part
            })
            .collect()
    }

    /// Add one bucket's reply to the outcome. Where the bucket lost its data (its epoch
    /// changed), every member, channel and user re-registered looks new: those are left out.
    fn merge_bucket_outcome(
        &self,
        bucket: Bucket,
        parts: &[Value],
        outcome: &mut ResyncOutcome,
    ) -> Result<(), BackplaneError> {
        let bad = || malformed("resync");
        let [added, removed, epoch, reset, online, offline, occupied, vacated, leaves] = parts else {
            return Err(bad());
        };
        let epoch = string(epoch).ok_or_else(bad)?;
        let reset = int(reset).ok_or_else(bad)? == 1;
        let row = |v: &Value| rows(v).ok_or_else(bad);
        if !reset {
            outcome.added.extend(
                row(added)?
                    .into_iter()
                    .filter_map(|r| match <[String; 5]>::try_from(r) {
                        Ok([a, c, u, i, s]) => Some((a, c, u, i, s.parse().ok()?)),
                        Err(_) => None,
                    }),
            );
            outcome.users_online.extend(pairs_of(row(online)?));
            outcome.channels_occupied.extend(pairs_of(row(occupied)?));
        }
        outcome.removed.extend(
            row(removed)?
                .into_iter()
                .filter_map(|r| match <[String; 4]>::try_from(r) {
                    Ok([a, c, u, s]) => Some((a, c, u, s.parse().ok()?)),
                    Err(_) => None,
                }),
        );
        outcome.users_offline.extend(pairs_of(row(offline)?));
        outcome.channels_vacated.extend(pairs_of(row(vacated)?));
        outcome.leaves.extend(standing_leaves(row(leaves)?));
        outcome.store_was_reset |= reset;
        if let Ok(mut known) = self.epoch.lock() {
            if let Some(slot) = known.get_mut(bucket.0 as usize) {
                *slot = epoch;
            }
        }
        Ok(())
    }
}

/// One section of a bucket's snapshot (connections, subscriptions, members or users).
#[derive(Clone, Default)]
struct Section {
    count: usize,
    keys: Vec<String>,
    args: Vec<String>,
}

/// `{{app, user}, ...}` (or `{{app, channel}, ...}`) rows as pairs (malformed rows skipped).
fn pairs_of(rows: Vec<Vec<String>>) -> Vec<(String, String)> {
    rows.into_iter()
        .filter_map(|r| <[String; 2]>::try_from(r).ok().map(|[a, u]| (a, u)))
        .collect()
}
