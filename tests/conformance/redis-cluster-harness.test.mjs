// Self-test of lib/redis-cluster.mjs, the Redis Cluster harness for the `redis-cluster` backplane
// driver (Redis ≥ 7 sharded pub/sub). It needs no Ferrocast binary. Checks:
//   - keySlot() (CRC16 XMODEM mod 16384 with {hash tag} rules) agrees with CLUSTER KEYSLOT;
//   - a single cluster-enabled node owning every slot refuses cross-slot multi-key commands and
//     scripts (CROSSSLOT), and what it does with keys a script did not declare;
//   - a 3-primary / 1-replica cluster comes up; SSUBSCRIBE / SPUBLISH work on the shard owning the
//     channel's slot, other shards answer -MOVED;
//   - moving a slot sends the shard's subscribers an `sunsubscribe` push for its channels;
//   - failover(kill): the primary's subscribers are disconnected, a replica takes over, without
//     the old primary's subscriptions; restart() brings the old primary back as a replica;
//   - failover(manual): CLUSTER FAILOVER switches roles.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { keySlot, openResp, startRedisCluster, startSingleNodeCluster } from './lib/redis-cluster.mjs';
import { redisCommand } from './lib/redis.mjs';
import { trackFailures } from './lib/server.mjs';
import { sleep } from './lib/util.mjs';

const failures = trackFailures();
const FAILOVER_BOUND_MS = 15_000; // a bound for "it happens", not a speed assertion

let rc;
let single;
const connections = [];

async function connect(port) {
  const conn = await openResp(port);
  connections.push(conn);
  return conn;
}

/** The reply of a command, or the error message without redisCommand's "redis CMD ...: " prefix. */
function attempt(port, args) {
  return redisCommand(port, args).then(
    (value) => ({ value }),
    (err) => ({ error: err.message.slice(err.message.indexOf(': ') + 2) }),
  );
}

/** A channel name (prefix-N) whose slot is owned by primary `port`. */
async function channelOn(port, prefix) {
  for (let i = 0; ; i += 1) {
    const channel = `${prefix}-${i}`;
    if ((await rc.ownerOfKey(channel)) === port) return channel;
  }
}

before(async () => {
  // Both in parallel: a fresh primary only reports cluster_state:ok after ~2 s.
  [rc, single] = await Promise.all([startRedisCluster({ primaries: 3, replicasPerPrimary: 1 }), startSingleNodeCluster()]);
  console.log(`redis-cluster-harness: cluster up (${JSON.stringify(rc.timings)} ms)`);
});

after(async () => {
  for (const conn of connections) conn.close();
  if (failures.failed) console.error(`${rc?.logs() ?? ''}\n${single?.logs() ?? ''}`);
  await rc?.dispose();
  await single?.dispose();
});

describe('keySlot', () => {
  test('agrees with CLUSTER KEYSLOT, hash tags included', async () => {
    const keys = [
      '', 'a', 'b', 'foo', 'bar', '123456789', 'ferrocast:app:1:channel:presence-room',
      // hash tags: only the part between the first '{' and the first '}' after it counts
      '{user1000}.following', '{user1000}.followers', 'x{user1000}y', '{a}', 'a{b}c', '{x}a', '{x}b',
      // empty tag: the whole key is hashed
      '{}', '{}x', 'x{}', 'a{}b', '{}{x}', 'foo{}{bar}',
      // nested / unbalanced braces
      '{{x}}', '{{x}', '{x}}', 'foo{{bar}}zap', 'foo{bar}{zap}', '{a{b}c}', '}{x}', '}{', '{', '}', '{{}}', 'a{b',
      'a}b{c}', '{{}x}', '{ }', '{\u00e9}t\u00e9', 'caf\u00e9', '\u{1f600}', '{\u{1f600}}x', 'ferrocast{#1}:x',
    ];
    for (let i = 0; keys.length < 60; i += 1) keys.push(`k${i}:${Math.random().toString(36).slice(2)}`);
    for (const key of keys) {
      assert.equal(keySlot(key), await redisCommand(single.port, ['CLUSTER', 'KEYSLOT', key]), `key ${JSON.stringify(key)}`);
    }
    // the classic test vector: CRC16-XMODEM("123456789") = 0x31C3
    assert.equal(keySlot('123456789'), 0x31c3 % 16384);
    assert.equal(keySlot('{x}a'), keySlot('x'));
    assert.notEqual(keySlot('{}a'), keySlot('{}b'));
  });
});

describe('single-node cluster', () => {
  test('owns every slot', async () => {
    const info = await redisCommand(single.port, ['CLUSTER', 'INFO']);
    assert.match(info, /cluster_state:ok/);
    assert.match(info, /cluster_slots_assigned:16384/);
    assert.equal(await redisCommand(single.port, ['SET', 'any-key', '1']), 'OK');
  });

  test('refuses multi-key commands across slots (CROSSSLOT)', async () => {
    assert.notEqual(keySlot('a'), keySlot('b'));
    assert.deepEqual(await attempt(single.port, ['MSET', 'a', '1', 'b', '2']), {
      error: "CROSSSLOT Keys in request don't hash to the same slot",
    });
    assert.deepEqual(await attempt(single.port, ['MSET', '{x}a', '1', '{x}b', '2']), { value: 'OK' });
  });

  test('refuses scripts whose declared keys are in different slots', async () => {
    const script = "redis.call('SET', KEYS[1], '1'); return redis.call('SET', KEYS[2], '2')";
    const cross = await attempt(single.port, ['EVAL', script, 2, 'a', 'b']);
    assert.match(cross.error ?? '', /^CROSSSLOT .*same slot/);
    assert.deepEqual(await attempt(single.port, ['EVAL', script, 2, '{x}a', '{x}b']), { value: 'OK' });
  });

  test('undeclared keys: refused across slots only for scripts with a #!lua shebang (Redis 7.0)', async () => {
    // Same slot as the declared key: allowed, with or without shebang.
    assert.deepEqual(await attempt(single.port, ['EVAL', "return redis.call('SET', '{x}undeclared', '1')", 1, '{x}a']), { value: 'OK' });
    assert.deepEqual(await attempt(single.port, ['EVAL', "#!lua\nreturn redis.call('SET', '{x}undeclared', '1')", 1, '{x}a']), { value: 'OK' });
    // Another slot, shebang (new-style script flags): refused.
    const strict = await attempt(single.port, ['EVAL', "#!lua\nreturn redis.call('SET', 'b', '1')", 1, 'a']);
    assert.match(strict.error ?? '', /^ERR Script attempted to access keys that do not hash to the same slot/);
    // Another slot, no shebang: eval scripts keep the pre-7.0 behaviour (allow-cross-slot-keys);
    // a single node owning every slot lets it through. A real cluster only refuses it when the
    // other slot lives on another node (see the cluster test below).
    const legacy = await attempt(single.port, ['EVAL', "return redis.call('SET', 'b', '1')", 1, 'a']);
    const version = /redis_version:(\d+)\.(\d+)/.exec(await redisCommand(single.port, ['INFO', 'server']));
    if (version && Number(version[1]) === 7 && Number(version[2]) === 0) assert.deepEqual(legacy, { value: 'OK' });
    console.log(`redis-cluster-harness: undeclared cross-slot key, no shebang, one node: ${JSON.stringify(legacy)}`);
  });
});

describe('3 primaries, 1 replica each', () => {
  test('comes up with every slot covered and every replica linked', async () => {
    const topology = await rc.topology();
    const primaries = topology.filter((n) => n.role === 'primary');
    assert.equal(primaries.length, 3);
    assert.equal(topology.length, 6);
    const covered = primaries.flatMap((p) => p.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0);
    assert.equal(covered, 16384);
    assert.deepEqual(rc.seeds.sort(), primaries.map((p) => `redis://127.0.0.1:${p.port}`).sort());
    assert.equal(rc.urls.length, 6);
    for (const p of primaries) {
      const replicas = await rc.replicasOf(p.port);
      assert.equal(replicas.length, 1, `replicas of ${p.port}`);
      const role = await redisCommand(replicas[0], ['ROLE']);
      assert.deepEqual(role.slice(0, 4), ['slave', '127.0.0.1', p.port, 'connected']);
      assert.match(await redisCommand(p.port, ['CLUSTER', 'INFO']), /cluster_state:ok/);
    }
    for (const slot of [0, 5460, 5461, 16383]) {
      const owner = await rc.slotOwner(slot);
      assert.ok(primaries.some((p) => p.port === owner && p.slots.some(([a, b]) => a <= slot && slot <= b)));
    }
  });

  test('SPUBLISH reaches an SSUBSCRIBE on the shard owning the slot; other shards answer MOVED', async () => {
    const channel = 'harness-news';
    const owner = await rc.ownerOfKey(channel);
    const sub = await connect(owner);
    sub.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await sub.next(), ['ssubscribe', channel, 1]);
    assert.equal(await redisCommand(owner, ['SPUBLISH', channel, 'hello']), 1);
    assert.deepEqual(await sub.next(), ['smessage', channel, 'hello']);

    const other = (await rc.primaries()).find((p) => p !== owner);
    const moved = `MOVED ${keySlot(channel)} 127.0.0.1:${owner}`;
    const elsewhere = await connect(other);
    elsewhere.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await elsewhere.next(), { error: moved });
    assert.deepEqual(await attempt(other, ['SPUBLISH', channel, 'x']), { error: moved });
    // A replica of the owner accepts SSUBSCRIBE (no READONLY needed) and gets the messages too.
    const [replica] = await rc.replicasOf(owner);
    const onReplica = await connect(replica);
    onReplica.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await onReplica.next(), ['ssubscribe', channel, 1]);
    assert.equal(await redisCommand(owner, ['SPUBLISH', channel, 'again']), 1); // counts local receivers only
    assert.deepEqual(await sub.next(), ['smessage', channel, 'again']);
    assert.deepEqual(await onReplica.next(), ['smessage', channel, 'again']);
  });

  test('a slot that moves unsubscribes its channels (sunsubscribe push)', async () => {
    const [from, to] = await rc.primaries();
    const channel = await channelOn(from, 'harness-move');
    const slot = keySlot(channel);
    await redisCommand(from, ['SET', `{${channel}}key`, 'v']); // a key to MIGRATE along
    const sub = await connect(from);
    sub.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await sub.next(), ['ssubscribe', channel, 1]);
    const mark = sub.raw.length;
    await rc.migrateSlot(slot, to);
    assert.equal(await rc.slotOwner(slot), to);
    assert.deepEqual(await sub.next(), ['sunsubscribe', channel, 0]);
    assert.equal(sub.raw.slice(mark), `*3\r\n$12\r\nsunsubscribe\r\n$${channel.length}\r\n${channel}\r\n:0\r\n`);
    assert.equal(sub.isClosed, false);
    assert.equal(await redisCommand(to, ['GET', `{${channel}}key`]), 'v');
    assert.deepEqual(await attempt(from, ['SPUBLISH', channel, 'x']), { error: `MOVED ${slot} 127.0.0.1:${to}` });
    const again = await connect(to);
    again.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await again.next(), ['ssubscribe', channel, 1]);
    assert.equal(await redisCommand(to, ['SPUBLISH', channel, 'moved']), 1);
    assert.deepEqual(await again.next(), ['smessage', channel, 'moved']);
  });

  test('a script touching a key on another node fails (non local key)', async () => {
    const [first, second] = await rc.primaries();
    const here = await channelOn(first, 'harness-here');
    const there = await channelOn(second, 'harness-there');
    const res = await attempt(first, ['EVAL', `return redis.call('SET', '${there}', '1')`, 1, here]);
    assert.match(res.error ?? '', /^ERR Script attempted to access a non local key in a cluster node/);
  });

  let killed;
  let promoted;
  test('failover(kill): subscribers lose their connection, a replica takes over without them', async () => {
    const [, , victim] = await rc.primaries();
    const [replica] = await rc.replicasOf(victim);
    const channel = await channelOn(victim, 'harness-kill');
    const sub = await connect(victim);
    sub.send(['SSUBSCRIBE', channel]);
    assert.deepEqual(await sub.next(), ['ssubscribe', channel, 1]);
    const result = await rc.failover(victim, { how: 'kill' });
    killed = victim;
    promoted = result.port;
    console.log(`redis-cluster-harness: failover(kill) of ${victim}: ${replica} promoted in ${result.ms} ms`);
    assert.equal(result.port, replica);
    assert.ok(result.ms < FAILOVER_BOUND_MS, `${result.ms} ms`);
    const closed = await Promise.race([sub.closed, sleep(2000).then(() => 'still open')]);
    assert.notEqual(closed, 'still open');
    assert.equal((await redisCommand(replica, ['ROLE']))[0], 'master');
    assert.match(await redisCommand(replica, ['CLUSTER', 'INFO']), /cluster_state:ok/);
    assert.equal(await rc.ownerOfKey(channel), replica);
    // Subscriptions live in the connection: none were carried over to the new primary.
    assert.deepEqual(await redisCommand(replica, ['PUBSUB', 'SHARDNUMSUB', channel]), [channel, 0]);
    assert.equal(await redisCommand(replica, ['SPUBLISH', channel, 'after']), 0);
    assert.ok(!rc.seeds.includes(`redis://127.0.0.1:${victim}`));
    assert.ok(rc.seeds.includes(`redis://127.0.0.1:${replica}`));
  });

  test('restart(): the killed primary rejoins as a replica of the new one', async () => {
    assert.ok(killed, 'needs the failover(kill) test');
    await rc.restart(killed);
    const role = await redisCommand(killed, ['ROLE']);
    assert.deepEqual(role.slice(0, 4), ['slave', '127.0.0.1', promoted, 'connected']);
    assert.deepEqual(await rc.replicasOf(promoted), [killed]);
  });

  test('failover(manual): CLUSTER FAILOVER switches roles', async () => {
    const [victim] = await rc.primaries();
    const [replica] = await rc.replicasOf(victim);
    const result = await rc.failover(victim, { how: 'manual' });
    console.log(`redis-cluster-harness: failover(manual) of ${victim}: ${replica} promoted in ${result.ms} ms`);
    assert.equal(result.port, replica);
    assert.equal((await redisCommand(replica, ['ROLE']))[0], 'master');
    assert.deepEqual((await redisCommand(victim, ['ROLE'])).slice(0, 4), ['slave', '127.0.0.1', replica, 'connected']);
    assert.deepEqual(await rc.replicasOf(replica), [victim]);
    assert.equal((await rc.primaries()).length, 3);
  });
});
