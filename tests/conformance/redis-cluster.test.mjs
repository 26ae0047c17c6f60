// The `redis-cluster` driver on a real Redis Cluster (lib/redis-cluster.mjs: 3 primaries, 1
// replica each, on loopback ports), two real nodes:
//   - each channel's sharded pub/sub channel (SSUBSCRIBE) is on the shard that owns its bucket's
//     slot, and events cross nodes through it;
//   - a primary SIGKILLed under steady load (numbered events through node B to a subscriber on
//     node A, spread over channels on every shard; presence members on both nodes): its replica
//     takes over, both nodes come back, every event answered 200 once they are ready again is
//     delivered once and in order, and the events answered 200 but lost with the old primary
//     (replication is asynchronous) are counted and printed; presence is whole on both nodes;
//   - a manual failover (CLUSTER FAILOVER on a replica) under load: nothing answered 200 is lost;
//   - a slot moved to another shard under load (resharding): the node gets `sunsubscribe`,
//     subscribes on the new owner and reads what it missed from the log, which moved with the
//     slot: nothing answered 200 is lost, nothing is delivered twice, order holds.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { presenceUserIds, sdkResult, serverSdk } from './lib/clients.mjs';
import { connectRaw, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { keySlot, startRedisCluster } from './lib/redis-cluster.mjs';
import { redisCommand } from './lib/redis.mjs';
import { makeApp, startCluster, trackFailures } from './lib/server.mjs';
import { metricSum, sleep, uid } from './lib/util.mjs';

const failures = trackFailures();
const PREFIX = 'fcrc';
const BUCKETS = 256; // the driver's default
const RATE_MS = 20; // one event every 20 ms, one at a time
const RECOVERY_MS = 30_000; // bound for the failover and the nodes' return (not a speed assertion)

let rc;
let cluster;
const app = makeApp();

before(async () => {
  rc = await startRedisCluster();
  cluster = await startCluster(2, {
    apps: [app],
    backplane: { driver: 'redis-cluster', urls: rc.seeds, prefix: PREFIX, node_ttl_s: 15 },
  });
});

after(async () => {
  if (failures.failed) console.error(`${cluster?.logs() ?? ''}\n${rc?.logs() ?? ''}`);
  await cluster?.stop();
  await rc?.dispose();
});

/** FNV-1a 64 of the parts joined by '\n' (crates/backplane-redis/src/keys.rs), mod buckets. */
function bucketOf(parts) {
  const prime = 0x100000001b3n;
  const mask = (1n << 64n) - 1n;
  let h = 0xcbf29ce484222325n;
  parts.forEach((part, i) => {
    if (i > 0) h = ((h ^ 10n) * prime) & mask;
    for (const byte of Buffer.from(part, 'utf8')) h = ((h ^ BigInt(byte)) * prime) & mask;
  });
  return Number(h % BigInt(BUCKETS));
}

/** The sharded pub/sub channel of an app channel, and its slot. */
function shardChannel(channel) {
  const name = `{${PREFIX}:${bucketOf([app.id, channel])}}:ev:${app.id}:${channel}`;
  return { name, slot: keySlot(name) };
}

/** Subscribers of a sharded channel on the node serving its slot (PUBSUB SHARDNUMSUB). */
async function shardSubscribers(channel) {
  const { name, slot } = shardChannel(channel);
  const owner = await rc.slotOwner(slot);
  const reply = await redisCommand(owner, ['PUBSUB', 'SHARDNUMSUB', name]);
  return Number(reply[1]);
}

async function ready(node) {
  return (await node.probe('/readyz')) === 200;
}

async function bothReady(deadline) {
  while (!((await ready(cluster.nodes[0])) && (await ready(cluster.nodes[1])))) {
    assert.ok(Date.now() < deadline, 'both nodes ready again in time');
    await sleep(100);
  }
  return Date.now();
}

/** Channels whose buckets fall on every shard: at least `perShard` on each primary. */
async function channelsOnEveryShard(prefix, perShard) {
  const primaries = await rc.primaries();
  const byOwner = new Map(primaries.map((p) => [p, []]));
  for (let i = 0; [...byOwner.values()].some((list) => list.length < perShard); i += 1) {
    assert.ok(i < 10_000, 'channels found on every shard');
    const channel = `${prefix}${i}`;
    const owner = await rc.slotOwner(shardChannel(channel).slot);
    const list = byOwner.get(owner);
    if (list.length < perShard) list.push(channel);
  }
  return byOwner;
}

/**
 * Numbered events through node B, round-robin over `channels`, one at a time, until `stop()`.
 * Resolves the answers: n -> {channel, status, at}.
 */
function steadyLoad(channels) {
  const answers = new Map();
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n += 1) {
      const channel = channels[n % channels.length];
      const res = await sdkResult(() => serverSdk(cluster.nodes[1], app).trigger(channel, 'numbered', { n })).catch((e) => ({
        status: e.message,
      }));
      answers.set(n, { channel, status: res.status, at: Date.now() });
      await sleep(RATE_MS);
    }
  })();
  return {
    answers,
    async stop() {
      running = false;
      await done;
      return answers;
    },
  };
}

/** Per channel: what the subscriber received, checked for duplicates and order. */
function receivedByChannel(sub, channels) {
  const byChannel = new Map();
  for (const channel of channels) {
    const got = sub.filter((f) => f.event === 'numbered' && f.channel === channel).map((f) => f.data.n);
    assert.equal(new Set(got).size, got.length, `no event delivered twice on ${channel}`);
    assert.deepEqual(got, [...got].sort((x, y) => x - y), `in order on ${channel}`);
    byChannel.set(channel, new Set(got));
  }
  return byChannel;
}

/**
 * After a load: wait until the subscriber has the last of `answered` (entries [n, answer] with
 * a 200), then tally what every answer became: { accepted, lost, refused, got }.
 */
async function settle(sub, channels, answers, answered = [...answers].filter(([, a]) => a.status === 200)) {
  const [lastN, lastAnswer] = answered[answered.length - 1];
  await sub.waitFor((f) => f.event === 'numbered' && f.channel === lastAnswer.channel && f.data.n === lastN, {
    timeout: 10_000,
    what: `event ${lastN}`,
  });
  await sleep(300);
  const got = receivedByChannel(sub, channels);
  const accepted = [...answers].filter(([, a]) => a.status === 200);
  const lost = accepted.filter(([n, a]) => !got.get(a.channel).has(n));
  const refused = [...answers].filter(([, a]) => a.status !== 200).length;
  return { accepted, lost, refused, got };
}

describe('the redis-cluster driver on a 3-primary Redis Cluster', () => {
  test('each channel is subscribed on the shard that owns its bucket, and events cross nodes', async (t) => {
    const [A] = cluster.nodes;
    const byOwner = await channelsOnEveryShard(uid('rc-plain-'), 1);
    const channels = [...byOwner.values()].flat();
    const sub = await connectRaw(t, A, app);
    for (const channel of channels) await sub.subscribeOk(channel, {});
    for (const channel of channels) assert.equal(await shardSubscribers(channel), 1, `${channel}: one SSUBSCRIBE on its shard`);
    for (const [i, channel] of channels.entries()) {
      const res = await sdkResult(() => serverSdk(cluster.nodes[1], app).trigger(channel, 'numbered', { n: i }));
      assert.equal(res.status, 200, res.body);
    }
    for (const [i, channel] of channels.entries()) {
      await sub.waitFor((f) => f.event === 'numbered' && f.channel === channel && f.data.n === i, {
        timeout: 5000,
        what: `event ${i} on ${channel}`,
      });
    }
    await sub.close();
    for (const channel of channels) {
      const deadline = Date.now() + 5000;
      while ((await shardSubscribers(channel)) !== 0) {
        assert.ok(Date.now() < deadline, `${channel}: SUNSUBSCRIBEd after its last subscriber left`);
        await sleep(50);
      }
    }
  });

  test('a primary SIGKILLed under load: its replica takes over, delivery and presence recover', async (t) => {
    const [A, B] = cluster.nodes;
    const byOwner = await channelsOnEveryShard(uid('rc-kill-'), 2);
    const channels = [...byOwner.values()].flat();
    const victim = [...byOwner.keys()][0];
    const victimChannels = byOwner.get(victim);
    const sub = await connectRaw(t, A, app);
    for (const channel of channels) await sub.subscribeOk(channel, {});
    const pch = uid('presence-rc-');
    await rawSubscribed(t, A, app, pch, 'member-a');
    await rawSubscribed(t, B, app, pch, 'member-b');
    assert.deepEqual(await presenceUserIds(app, A, pch), ['member-a', 'member-b']);
    const reconnectsBefore = await metricSum(A, 'ferrocast_backplane_reconnects_total');

    const load = steadyLoad(channels);
    await sleep(1500);
    const killedAt = Date.now();
    const promoted = await rc.failover(victim, { how: 'kill' });
    const readyAgainAt = await bothReady(killedAt + RECOVERY_MS);
    await sleep(3000); // load through the new topology
    const answers = await load.stop();

    const afterRecovery = [...answers].filter(([, a]) => a.status === 200 && a.at > readyAgainAt);
    assert.ok(afterRecovery.length > 50, `events went through after the recovery: ${afterRecovery.length}`);
    const { accepted, lost, refused, got } = await settle(sub, channels, answers, afterRecovery);
    for (const [n, a] of afterRecovery) assert.ok(got.get(a.channel).has(n), `event ${n} on ${a.channel}, answered 200 after the recovery, was delivered`);
    console.log(
      `# failover of ${victim} (replica ${promoted.port} promoted in ${promoted.ms} ms): ${answers.size} triggers over ` +
        `${channels.length} channels (${victimChannels.length} on the killed shard), ${accepted.length} answered 200, ` +
        `${refused} refused, ${lost.length} answered 200 and lost ${JSON.stringify(lost.map(([n, a]) => [n, a.channel]))}; ` +
        `nodes ready ${readyAgainAt - killedAt} ms after the kill`,
    );
    // A 200 can only be lost on the killed shard, taken by the old primary just before it died.
    for (const [n, a] of lost) {
      assert.ok(victimChannels.includes(a.channel), `event ${n} lost on ${a.channel}, which is not on the killed shard`);
      assert.ok(a.at <= killedAt + 1000, `event ${n} lost although answered after the kill`);
    }
    for (const channel of channels) assert.equal(await shardSubscribers(channel), 1, `${channel}: subscribed again on its shard`);

    assert.deepEqual(await presenceUserIds(app, A, pch), ['member-a', 'member-b']);
    assert.deepEqual(await presenceUserIds(app, B, pch), ['member-a', 'member-b']);
    const watcher = await connectRaw(t, B, app);
    await watcher.subscribeOk(pch, subscribeExtra(app, watcher, pch, 'watcher-b'));
    await rawSubscribed(t, A, app, pch, 'late-a');
    await watcher.waitFor((f) => f.event === 'pusher_internal:member_added' && f.data.user_id === 'late-a', {
      timeout: 5000,
      what: 'member_added for a join on A after the failover',
    });
    assert.ok((await metricSum(A, 'ferrocast_backplane_reconnects_total')) > reconnectsBefore, 'A reconnected');
  });

  test('a manual failover (CLUSTER FAILOVER) under load: nothing answered 200 is lost or doubled', async (t) => {
    const [A] = cluster.nodes;
    const byOwner = await channelsOnEveryShard(uid('rc-manual-'), 2);
    const channels = [...byOwner.values()].flat();
    let victim;
    for (const p of byOwner.keys()) if (!victim && (await rc.replicasOf(p)).length > 0) victim = p;
    assert.ok(victim, 'a primary with a replica');
    const sub = await connectRaw(t, A, app);
    for (const channel of channels) await sub.subscribeOk(channel, {});

    const load = steadyLoad(channels);
    await sleep(1000);
    const promoted = await rc.failover(victim, { how: 'manual' });
    await bothReady(Date.now() + RECOVERY_MS);
    await sleep(2000);
    const answers = await load.stop();

    const { accepted, lost, refused } = await settle(sub, channels, answers);
    console.log(
      `# manual failover of ${victim} to ${promoted.port} (${promoted.ms} ms): ${answers.size} triggers, ` +
        `${accepted.length} answered 200, ${refused} refused`,
    );
    // A manual failover waits for the replica to catch up before it takes over: nothing is lost.
    assert.deepEqual(lost.map(([n]) => n), [], 'every event answered 200 was delivered');
    for (const channel of channels) assert.equal(await shardSubscribers(channel), 1, `${channel}: subscribed on its shard`);
  });

  test('a slot moved to another shard under load: nothing answered 200 is lost or doubled', async (t) => {
    const [A] = cluster.nodes;
    const byOwner = await channelsOnEveryShard(uid('rc-move-'), 1);
    const channels = [...byOwner.values()].flat();
    const [moving] = channels;
    const { slot } = shardChannel(moving);
    const from = await rc.slotOwner(slot);
    const to = (await rc.primaries()).find((p) => p !== from);
    const sub = await connectRaw(t, A, app);
    for (const channel of channels) await sub.subscribeOk(channel, {});
    const resubscribedBefore = await metricSum(A, 'ferrocast_backplane_resubscribed_total');

    const load = steadyLoad(channels);
    await sleep(1000);
    await rc.migrateSlot(slot, to);
    assert.equal(await rc.slotOwner(slot), to, 'the slot moved');
    await sleep(2000);
    const answers = await load.stop();

    const { accepted, lost, refused } = await settle(sub, channels, answers);
    console.log(`# slot ${slot} moved ${from} -> ${to}: ${answers.size} triggers, ${accepted.length} answered 200, ${refused} refused`);
    assert.deepEqual(lost.map(([n]) => n), [], 'every event answered 200 was delivered');
    assert.ok(accepted.filter(([, a]) => a.channel === moving).length > 20, 'events went to the moving channel');
    assert.ok((await metricSum(A, 'ferrocast_backplane_resubscribed_total')) > resubscribedBefore, 'A subscribed again after the move');
    assert.equal(await shardSubscribers(moving), 1, 'subscribed on the new owner');
  });
});
