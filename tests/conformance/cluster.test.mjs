// Multi-node behaviour on the Redis backplane: real `ferrocast` nodes sharing a private
// redis-server (lib/redis.mjs). Always multi-node, whatever FERROCAST_CONFORMANCE_NODES says.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { RawClient, channelAuth, connectRaw, isEvent, isPusherError, presenceSubscribeData } from './lib/raw.mjs';
import { startRedis } from './lib/redis.mjs';
import { freePort, makeApp, makeNode, trackFailures, useServer } from './lib/server.mjs';
import { eventually, sleep, uid, waitFor } from './lib/util.mjs';

const REDIS = { driver: 'redis' };
/** A subscribe during an outage may wait for the node's 5 s Redis subscribe timeout. */
const SUBSCRIBE_WAIT_MS = 8000;

// ---------------------------------------------------------------------------------------------
// helpers

async function trigger(node, app, channels, event, data, params) {
  const res = await sdkResult(() => serverSdk(node, app).trigger(channels, event, data, params));
  assert.equal(res.status, 200, `trigger on ${node.name} → ${res.status} ${res.body}`);
  return res;
}

/** Raw socket on `node` subscribed to `channel` (auth computed for private-/presence-). */
async function rawSubscribed(t, node, app, channel, userId, userInfo) {
  const raw = await connectRaw(t, node, app);
  raw.ok = await raw.subscribeOk(channel, subscribeExtra(app, raw, channel, userId, userInfo));
  return raw;
}

function subscribeExtra(app, raw, channel, userId, userInfo) {
  if (channel.startsWith('presence-')) {
    const member = userInfo === undefined ? { user_id: userId } : { user_id: userId, user_info: userInfo };
    return presenceSubscribeData(app, raw.socketId, channel, member);
  }
  if (channel.startsWith('private-')) return { auth: channelAuth(app, raw.socketId, channel) };
  return {};
}

const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

async function userIds(node, app, channel) {
  const body = await sdkGetJSON(serverSdk(node, app), `/channels/${channel}/users`);
  return body.users.map((u) => u.id).sort();
}

const memberEvents = (raw, event, channel, userId, since = 0) =>
  raw.filter((f) => f.event === event && f.channel === channel && f.data?.user_id === userId, since);

/** Waits until `raw` has seen member_added for each of `userIds` on `channel`. */
async function sawJoins(raw, channel, userIds) {
  for (const id of userIds) {
    await raw.waitFor((f) => f.event === 'pusher_internal:member_added' && f.channel === channel && f.data?.user_id === id, {
      what: `member_added ${id} on ${channel}`,
    });
  }
}

/**
 * Positive control for "must not arrive": publishes a control event on `channel` through
 * REST on `via`, waits until every raw socket in `receivers` got it (same channel, so anything
 * published before it was delivered before it), then leaves a 300 ms window for stragglers.
 */
async function controlRound(via, app, channel, receivers) {
  const name = `control-${uid()}`;
  const since = receivers.map((r) => r.mark());
  await trigger(via, app, channel, name, { control: true });
  await Promise.all(receivers.map((r, i) => r.waitFor(isEvent(name, channel), { since: since[i], what: `${name} on ${channel}` })));
  await sleep(300);
}

/** Opens a raw socket to `node` that must be refused with `code` (pusher:error then close). */
async function expectRefused(t, node, app, code) {
  const client = new RawClient(node.wsUrl(app.key));
  t.after(() => client.close());
  const close = await client.waitClose(5000);
  const err = client.find(isEvent('pusher:error'));
  assert.ok(err, `expected pusher:error ${code} on ${node.name}; frames: ${client.frames.map((f) => f.text).join(' | ')}`);
  assert.equal(err.data?.code, code, err.text);
  assert.equal(close.code, code, `close code on ${node.name}`);
  assert.equal(client.find(isEvent('pusher:connection_established')), undefined);
}

/** Polls GET /readyz on every node until all answer `status`; fails after `timeoutMs`. */
async function waitReadyz(nodes, status, timeoutMs) {
  const last = {};
  try {
    await waitFor(
      async () => {
        const codes = await Promise.all(nodes.map((n) => n.probe('/readyz')));
        nodes.forEach((n, i) => (last[n.name] = codes[i]));
        return codes.every((c) => c === status);
      },
      timeoutMs,
      { interval: 50, message: `/readyz ${status} on ${nodes.map((n) => n.name).join(', ')}` },
    );
  } catch (err) {
    throw new Error(`${err.message} (last answers: ${JSON.stringify(last)})`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------

describe('three nodes on one Redis', () => {
  const app = makeApp({ enable_client_messages: true, enable_subscription_count: true });
  const countApp = makeApp({ enable_subscription_count: true });
  const quotaApp = makeApp({ max_connections: 2 });
  const presLimitApp = makeApp({ max_presence_members_per_channel: 2 });
  const srv = useServer({ nodes: 3, backplane: REDIS, apps: [app, countApp, quotaApp, presLimitApp] });
  const node = (i) => srv.nodes[i];

  describe('delivery across nodes', () => {
    test('REST trigger on B reaches pusher-js subscribers on A and C (public and private)', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const pub = uid('x-pub-');
      const priv = uid('private-x-');
      const onA = await connectPusher(t, A, app);
      const onC = await connectPusher(t, C, app);
      for (const c of [onA, onC]) {
        await c.subscribe(pub);
        await c.subscribe(priv);
      }
      await trigger(B, app, [pub, priv], 'news', { from: 'B' });
      for (const c of [onA, onC]) {
        assert.deepEqual((await c.waitEvent(pub, 'news')).data, { from: 'B' });
        assert.deepEqual((await c.waitEvent(priv, 'news')).data, { from: 'B' });
      }
      // and the other way round: a trigger on A reaches C
      await trigger(A, app, pub, 'back', { from: 'A' });
      await onC.waitEvent(pub, 'back');
    });

    test('client event from A reaches subscribers on B and C (and A), never echoed; private: no user_id', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const ch = uid('private-x-chat-');
      const sender = await connectPusher(t, A, app);
      const sameNode = await connectPusher(t, A, app);
      const onB = await connectPusher(t, B, app);
      const onC = await connectPusher(t, C, app);
      const { channel } = await sender.subscribe(ch);
      for (const c of [sameNode, onB, onC]) await c.subscribe(ch);
      assert.equal(channel.trigger('client-typing', { who: 'A' }), true);
      for (const c of [sameNode, onB, onC]) {
        const ev = await c.waitEvent(ch, 'client-typing');
        assert.deepEqual(ev.data, { who: 'A' });
        assert.equal(ev.metadata?.user_id, undefined, 'no user_id on private channels');
      }
      await trigger(B, app, ch, 'control', { n: 1 });
      await Promise.all([sender, sameNode, onB, onC].map((c) => c.waitEvent(ch, 'control')));
      await sleep(300);
      assert.deepEqual(sender.messagesFor(ch, 'client-typing'), [], 'the sender must not receive its own client event');
      for (const c of [sameNode, onB, onC]) assert.equal(c.messagesFor(ch, 'client-typing').length, 1, 'delivered exactly once');
    });

    test('client event on a presence channel carries the sender user_id on other nodes; never echoed', async (t) => {
      const [A, B] = [node(0), node(1)];
      const ch = uid('presence-x-chat-');
      const sender = await connectPusher(t, B, app, { presence: () => ({ user_id: 'sender-on-b', user_info: { n: 1 } }) });
      const receiver = await connectPusher(t, A, app, { presence: () => ({ user_id: 'receiver-on-a' }) });
      const { channel } = await sender.subscribe(ch);
      await receiver.subscribe(ch);
      channel.trigger('client-hello', { text: 'hi' });
      const ev = await receiver.waitEvent(ch, 'client-hello');
      assert.deepEqual(ev.data, { text: 'hi' });
      assert.equal(ev.metadata?.user_id, 'sender-on-b');
      assert.equal(receiver.messagesFor(ch, 'client-hello')[0].user_id, 'sender-on-b');
      await trigger(A, app, ch, 'control', {});
      await sender.waitEvent(ch, 'control');
      await sleep(300);
      assert.deepEqual(sender.messagesFor(ch, 'client-hello'), [], 'no echo to the sender');
    });

    test('raw: presence client event user_id comes from the cluster state, not from the frame', async (t) => {
      const [A, C] = [node(0), node(2)];
      const ch = uid('presence-x-spoof-');
      const sender = await rawSubscribed(t, C, app, ch, 'real-sender');
      const receiver = await rawSubscribed(t, A, app, ch, 'receiver');
      const since = receiver.mark();
      sender.send({ event: 'client-spoof', channel: ch, data: { x: 1 }, user_id: 'someone-else' });
      const frame = await receiver.waitFor(isEvent('client-spoof', ch), { since });
      assert.equal(frame.json.user_id, 'real-sender');
      assert.deepEqual(Object.keys(frame.json), ['event', 'data', 'channel', 'user_id']);
    });

    test('socket_id exclusion works whichever node holds the excluded socket', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const ch = uid('x-excl-');
      const a = await rawSubscribed(t, A, app, ch);
      const b = await rawSubscribed(t, B, app, ch);
      const c = await rawSubscribed(t, C, app, ch);
      const all = [a, b, c];
      const since = all.map((r) => r.mark());
      // REST on B excludes a socket on A, then one on B itself, then one on C
      await trigger(B, app, ch, 'not-for-a', { n: 1 }, { socket_id: a.socketId });
      await trigger(B, app, ch, 'not-for-b', { n: 2 }, { socket_id: b.socketId });
      await trigger(B, app, ch, 'not-for-c', { n: 3 }, { socket_id: c.socketId });
      await controlRound(B, app, ch, all);
      const count = (r, i, ev) => r.filter(isEvent(ev, ch), since[i]).length;
      for (const [i, r] of all.entries()) {
        const name = ['a', 'b', 'c'][i];
        for (const target of ['a', 'b', 'c']) {
          assert.equal(count(r, i, `not-for-${target}`), target === name ? 0 : 1, `${name} / not-for-${target}`);
        }
      }
    });

    test('no lost first message: trigger on B right after subscription_succeeded on A (20 fresh channels)', async (t) => {
      const [A, B] = [node(0), node(1)];
      const raw = await connectRaw(t, A, app);
      const kinds = ['first-', 'private-first-', 'presence-first-'];
      for (let i = 0; i < 20; i += 1) {
        const ch = uid(kinds[i % kinds.length]);
        await raw.subscribeOk(ch, subscribeExtra(app, raw, ch, `u${i}`));
        const since = raw.mark();
        await trigger(B, app, ch, 'first', { i });
        const frame = await raw.waitFor(isEvent('first', ch), { since, timeout: 3000, what: `first event on ${ch} (iteration ${i})` });
        assert.deepEqual(frame.data, { i });
      }
    });

    test('resubscribing after the last local subscriber left still receives (interest 1 → 0 → 1)', async (t) => {
      const [A, B] = [node(0), node(1)];
      const raw = await connectRaw(t, A, app);
      const ch = uid('resub-');
      for (let i = 0; i < 5; i += 1) {
        await raw.subscribeOk(ch);
        const since = raw.mark();
        await trigger(B, app, ch, 'round', { i });
        await raw.waitFor((f) => f.event === 'round' && f.channel === ch && f.data?.i === i, { since, timeout: 3000, what: `round ${i}` });
        await raw.unsubscribe(ch);
      }
    });
  });

  describe('presence across nodes', () => {
    test('same user on A and B: one member_added, count 1; leaving one node: nothing; leaving the last: one member_removed', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const ch = uid('presence-x-dup-');
      const observer = await rawSubscribed(t, C, app, ch, 'observer');
      const since = observer.mark();

      const dupA = await rawSubscribed(t, A, app, ch, 'dup', { name: 'Dup' });
      await observer.waitFor((f) => f.event === 'pusher_internal:member_added' && f.data?.user_id === 'dup', { since });
      const dupB = await rawSubscribed(t, B, app, ch, 'dup', { name: 'Dup' });
      assert.deepEqual([...dupB.ok.data.presence.ids].sort(), ['dup', 'observer']);
      assert.equal(dupB.ok.data.presence.count, 2, 'the second connection of dup does not count twice');

      await controlRound(B, app, ch, [observer, dupA]);
      assert.equal(memberEvents(observer, 'pusher_internal:member_added', ch, 'dup', since).length, 1, 'exactly one member_added for dup');
      assert.equal(memberEvents(dupA, 'pusher_internal:member_added', ch, 'dup').length, 0, 'dup is not told about itself');
      for (const n of [A, B, C]) {
        assert.deepEqual(await sdkGetJSON(serverSdk(n, app), `/channels/${ch}`, { info: 'user_count' }), { occupied: true, user_count: 2 }, n.name);
        assert.deepEqual(await userIds(n, app, ch), ['dup', 'observer'], n.name);
      }

      // a joiner on A sees the roster of all nodes
      const late = await rawSubscribed(t, A, app, ch, 'late', { n: 3 });
      assert.deepEqual(late.ok.data.presence, {
        ids: late.ok.data.presence.ids,
        hash: { dup: { name: 'Dup' }, observer: null, late: { n: 3 } },
        count: 3,
      });
      assert.deepEqual([...late.ok.data.presence.ids].sort(), ['dup', 'late', 'observer']);

      // dup leaves node A: still on B → no member_removed anywhere
      const lateSince = late.mark();
      await dupA.unsubscribe(ch);
      await controlRound(C, app, ch, [observer, late]);
      assert.deepEqual(memberEvents(observer, 'pusher_internal:member_removed', ch, 'dup', since), [], 'no member_removed while dup is on B');
      assert.deepEqual(memberEvents(late, 'pusher_internal:member_removed', ch, 'dup', lateSince), []);
      assert.deepEqual(await userIds(C, app, ch), ['dup', 'late', 'observer']);

      // dup leaves its last node (socket close) → exactly one member_removed for each other member
      await dupB.close();
      await observer.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'dup', { since });
      await late.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'dup', { since: lateSince });
      await controlRound(A, app, ch, [observer, late]);
      assert.equal(memberEvents(observer, 'pusher_internal:member_removed', ch, 'dup', since).length, 1);
      assert.equal(memberEvents(late, 'pusher_internal:member_removed', ch, 'dup', lateSince).length, 1);
      for (const n of [A, B, C]) assert.deepEqual(await userIds(n, app, ch), ['late', 'observer'], n.name);
    });

    test('pusher-js rosters agree across nodes (subscription_succeeded lists members of every node)', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const ch = uid('presence-x-js-');
      const ann = await connectPusher(t, A, app, { presence: () => ({ user_id: 'ann', user_info: { name: 'Ann' } }) });
      const { data: annMembers } = await ann.subscribe(ch);
      const bob = await connectPusher(t, B, app, { presence: () => ({ user_id: 'bob', user_info: { name: 'Bob' } }) });
      const { data: bobMembers } = await bob.subscribe(ch);
      const cid = await connectPusher(t, C, app, { presence: () => ({ user_id: 'cid' }) });
      const { data: cidMembers } = await cid.subscribe(ch);
      const list = (members) => {
        const out = [];
        members.each((m) => out.push(m));
        return out.sort(byId);
      };
      const expected = [
        { id: 'ann', info: { name: 'Ann' } },
        { id: 'bob', info: { name: 'Bob' } },
        { id: 'cid', info: null },
      ];
      assert.deepEqual(list(cidMembers), expected);
      await ann.until(() => annMembers.count === 3, 5000, 'ann sees 3 members');
      await bob.until(() => bobMembers.count === 3, 5000, 'bob sees 3 members');
      assert.deepEqual(list(annMembers), expected);
      assert.deepEqual(list(bobMembers), expected);
      bob.disconnect();
      const removed = await ann.waitEvent(ch, 'pusher:member_removed');
      assert.deepEqual(removed.data, { id: 'bob', info: { name: 'Bob' } });
      await cid.until(() => cidMembers.count === 2, 5000, 'cid sees 2 members');
    });

    test('simultaneous joins / leaves of one user on two nodes → exactly one member_added and one member_removed (5 rounds)', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      for (let round = 0; round < 5; round += 1) {
        const ch = uid('presence-x-race-');
        const observer = await rawSubscribed(t, C, app, ch, 'observer');
        const since = observer.mark();
        const [onA, onB] = await Promise.all([rawSubscribed(t, A, app, ch, 'racer'), rawSubscribed(t, B, app, ch, 'racer')]);
        const counts = [onA.ok.data.presence.count, onB.ok.data.presence.count];
        assert.deepEqual(counts, [2, 2], `round ${round}: both joiners see observer + racer`);
        await controlRound(A, app, ch, [observer]);
        assert.equal(memberEvents(observer, 'pusher_internal:member_added', ch, 'racer', since).length, 1, `round ${round}: member_added once`);
        await Promise.all([onA.unsubscribe(ch), onB.unsubscribe(ch)]);
        await observer.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'racer', { since });
        await controlRound(B, app, ch, [observer]);
        assert.equal(memberEvents(observer, 'pusher_internal:member_removed', ch, 'racer', since).length, 1, `round ${round}: member_removed once`);
        assert.deepEqual(await userIds(A, app, ch), ['observer']);
        await Promise.all([observer.close(), onA.close(), onB.close()]);
      }
    });
  });

  describe('cluster-wide state and limits', () => {
    test('/channels, /channels/{name} counts and /users agree on every node', async (t) => {
      const nodes = [node(0), node(1), node(2)];
      const [A, B, C] = nodes;
      const pub = uid('count-pub-');
      const priv = uid('private-count-');
      const pres = uid('presence-count-');
      const a1 = await rawSubscribed(t, A, countApp, pub);
      await rawSubscribed(t, A, countApp, pub);
      const b1 = await rawSubscribed(t, B, countApp, pub);
      const c1 = await rawSubscribed(t, C, countApp, priv);
      await rawSubscribed(t, A, countApp, pres, 'u1');
      const u2OnB = await rawSubscribed(t, B, countApp, pres, 'u2');
      const u2OnC = await rawSubscribed(t, C, countApp, pres, 'u2');

      const expectEverywhere = async (label, { pubCount, privCount, users }) => {
        for (const n of nodes) {
          const s = serverSdk(n, countApp);
          const at = `${label} on ${n.name}`;
          const channels = {};
          if (pubCount) channels[pub] = {};
          if (privCount) channels[priv] = {};
          if (users.length) channels[pres] = {};
          assert.deepEqual(await sdkGetJSON(s, '/channels'), { channels }, at);
          assert.deepEqual(
            await sdkGetJSON(s, '/channels', { filter_by_prefix: 'presence-', info: 'user_count' }),
            { channels: users.length ? { [pres]: { user_count: users.length } } : {} },
            at,
          );
          const pubInfo = await sdkGetJSON(s, `/channels/${pub}`, { info: 'subscription_count' });
          assert.equal(pubInfo.occupied, pubCount > 0, at);
          if (pubCount) assert.equal(pubInfo.subscription_count, pubCount, at);
          const privInfo = await sdkGetJSON(s, `/channels/${priv}`, { info: 'subscription_count' });
          assert.equal(privInfo.occupied, privCount > 0, at);
          if (privCount) assert.equal(privInfo.subscription_count, privCount, at);
          const presInfo = await sdkGetJSON(s, `/channels/${pres}`, { info: 'user_count' });
          assert.equal(presInfo.occupied, users.length > 0, at);
          if (users.length) {
            assert.equal(presInfo.user_count, users.length, at);
            assert.deepEqual(await userIds(n, countApp, pres), users, at);
          }
        }
      };

      // right after the subscriptions were acknowledged
      await expectEverywhere('initially', { pubCount: 3, privCount: 1, users: ['u1', 'u2'] });
      // trigger with info from each node
      for (const n of nodes) {
        const r = await trigger(n, countApp, pub, 'evt', {}, { info: 'subscription_count' });
        assert.deepEqual(r.json, { channels: { [pub]: { subscription_count: 3 } } }, n.name);
      }

      // u2 leaves B (still on C): user_count unchanged everywhere; B's pub subscriber leaves
      await u2OnB.unsubscribe(pres);
      await b1.unsubscribe(pub);
      await expectEverywhere('after leaves on B', { pubCount: 2, privCount: 1, users: ['u1', 'u2'] });

      // u2's last socket and the private subscriber close; a1 closes
      await Promise.all([u2OnC.close(), c1.close(), a1.close()]);
      await eventually(() => expectEverywhere('after closes', { pubCount: 1, privCount: 0, users: ['u1'] }), 5000, 100);
    });

    test('max_connections = 2 across nodes: one on A, one on B → a third on C or A gets 4004; a close frees one slot', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const onA = await connectRaw(t, A, quotaApp);
      const onB = await connectRaw(t, B, quotaApp);
      await expectRefused(t, C, quotaApp, 4004);
      await expectRefused(t, A, quotaApp, 4004);
      await expectRefused(t, B, quotaApp, 4004);
      await onA.ping();
      await onB.ping();

      await onB.close();
      const replacement = await eventually(async () => {
        const c = new RawClient(C.wsUrl(quotaApp.key));
        t.after(() => c.close());
        try {
          await c.established(3000);
          return c;
        } catch (err) {
          await c.close();
          throw err;
        }
      }, 5000, 100);
      await replacement.ping();
      // refused attempts did not leak: exactly one slot was freed
      await expectRefused(t, B, quotaApp, 4004);
      await onA.ping();
    });

    test('max_presence_members_per_channel = 2 across nodes: a third user is refused on any node', async (t) => {
      const [A, B, C] = [node(0), node(1), node(2)];
      const ch = uid('presence-x-full-');
      const one = await rawSubscribed(t, A, presLimitApp, ch, 'one');
      const two = await rawSubscribed(t, B, presLimitApp, ch, 'two');
      for (const n of [C, A, B]) {
        const raw = await connectRaw(t, n, presLimitApp);
        const since = raw.mark();
        const frame = await raw.subscribe(ch, subscribeExtra(presLimitApp, raw, ch, 'three'));
        assert.equal(frame.event, 'pusher:subscription_error', `${n.name}: ${frame.text}`);
        assert.equal(frame.data.type, 'LimitReached', frame.text);
        assert.equal(frame.data.status, 403, frame.text);
        await raw.waitFor(isPusherError(null), { since, what: 'pusher:error code null' });
        await raw.ping();
      }
      // an existing member may add connections on other nodes
      const oneOnC = await rawSubscribed(t, C, presLimitApp, ch, 'one');
      assert.equal(oneOnC.ok.data.presence.count, 2);
      assert.deepEqual(await userIds(C, presLimitApp, ch), ['one', 'two'], 'refused joins left no trace');

      // once two leaves, three fits
      const since = one.mark();
      await two.close();
      await one.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'two', { since });
      const three = await rawSubscribed(t, C, presLimitApp, ch, 'three');
      assert.deepEqual([...three.ok.data.presence.ids].sort(), ['one', 'three']);
    });
  });
});

describe('a node killed with SIGKILL (node_ttl_s = 3)', () => {
  const app = makeApp({ enable_subscription_count: true });
  const srv = useServer({ nodes: 2, backplane: { ...REDIS, node_ttl_s: 3 }, apps: [app] });

  test('its members are removed cluster-wide within ttl + 4 s; the node restarts with the same node_id', async (t) => {
    const [A, B] = srv.nodes;
    const pres = uid('presence-kill-');
    const pub = uid('kill-pub-');
    const observer = await rawSubscribed(t, A, app, pres, 'observer');
    await observer.subscribeOk(pub);
    const bothOnA = await rawSubscribed(t, A, app, pres, 'both');
    const v1 = await rawSubscribed(t, B, app, pres, 'victim-1');
    await v1.subscribeOk(pub);
    await rawSubscribed(t, B, app, pres, 'victim-2');
    await rawSubscribed(t, B, app, pres, 'both');
    await rawSubscribed(t, B, app, pub);
    assert.deepEqual(await userIds(A, app, pres), ['both', 'observer', 'victim-1', 'victim-2']);
    assert.equal((await sdkGetJSON(serverSdk(A, app), `/channels/${pub}`, { info: 'subscription_count' })).subscription_count, 3);

    const since = observer.mark();
    const bothSince = bothOnA.mark();
    const killedAt = Date.now();
    await B.kill();
    const deadline = killedAt + 3000 + 4000;
    const left = () => Math.max(1, deadline - Date.now());
    for (const victim of ['victim-1', 'victim-2']) {
      await observer.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === victim, {
        since,
        timeout: left(),
        what: `member_removed ${victim} within 7 s of the SIGKILL`,
      });
    }
    const tookMs = Date.now() - killedAt;
    await eventually(async () => {
      assert.deepEqual(await userIds(A, app, pres), ['both', 'observer']);
      assert.deepEqual(await sdkGetJSON(serverSdk(A, app), `/channels/${pres}`, { info: 'user_count' }), { occupied: true, user_count: 2 });
      assert.deepEqual(await sdkGetJSON(serverSdk(A, app), `/channels/${pub}`, { info: 'subscription_count' }), {
        occupied: true,
        subscription_count: 1,
      });
    }, left(), 100);

    // 'both' still has a socket on A: never removed; each victim removed exactly once
    await controlRound(A, app, pres, [observer, bothOnA]);
    assert.deepEqual(memberEvents(observer, 'pusher_internal:member_removed', pres, 'both', since), [], 'both is still present via A');
    for (const victim of ['victim-1', 'victim-2']) {
      assert.equal(memberEvents(observer, 'pusher_internal:member_removed', pres, victim, since).length, 1, `${victim} removed once`);
      assert.equal(memberEvents(bothOnA, 'pusher_internal:member_removed', pres, victim, bothSince).length, 1, `${victim} removed once (both)`);
    }
    assert.ok(tookMs <= 7000, `member_removed took ${tookMs} ms`);

    // B comes back with the same node_id and takes part again
    await B.start();
    const backSince = observer.mark();
    const newcomer = await rawSubscribed(t, B, app, pres, 'newcomer');
    assert.deepEqual([...newcomer.ok.data.presence.ids].sort(), ['both', 'newcomer', 'observer']);
    await observer.waitFor((f) => f.event === 'pusher_internal:member_added' && f.data?.user_id === 'newcomer', { since: backSince });
    await trigger(B, app, pub, 'after-restart', { ok: true });
    await observer.waitFor(isEvent('after-restart', pub), { since: backSince });
    const listener = await rawSubscribed(t, B, app, pub);
    const lSince = listener.mark();
    await trigger(A, app, pub, 'to-b', {});
    await listener.waitFor(isEvent('to-b', pub), { since: lSince });
    for (const n of [A, B]) assert.deepEqual(await userIds(n, app, pres), ['both', 'newcomer', 'observer'], n.name);
  });

  for (const [how, label] of [
    ['restart', 'SIGKILL and an immediate restart with the same node_id (before its heartbeat expired)'],
    ['sigterm', 'graceful stop (SIGTERM)'],
  ]) {
    test(`${label}: the node's members are removed exactly once, within ttl + 4 s`, async (t) => {
      const [A, B] = srv.nodes;
      const pres = uid(`presence-${how}-`);
      const pub = uid(`${how}-pub-`);
      const observer = await rawSubscribed(t, A, app, pres, 'observer');
      await observer.subscribeOk(pub);
      await rawSubscribed(t, B, app, pres, 'victim');
      await rawSubscribed(t, B, app, pub);
      await sawJoins(observer, pres, ['victim']);
      const since = observer.mark();
      const startedAt = Date.now();
      if (how === 'restart') {
        await B.kill();
        await B.start();
      } else {
        await B.stop();
      }
      await observer.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'victim', {
        since,
        timeout: Math.max(1, startedAt + 7000 - Date.now()),
        what: 'member_removed victim within 7 s',
      });
      await eventually(async () => {
        assert.deepEqual(await userIds(A, app, pres), ['observer']);
        assert.equal((await sdkGetJSON(serverSdk(A, app), `/channels/${pub}`, { info: 'subscription_count' })).subscription_count, 1);
      }, Math.max(1, startedAt + 7000 - Date.now()), 100);
      await controlRound(A, app, pres, [observer]);
      assert.equal(memberEvents(observer, 'pusher_internal:member_removed', pres, 'victim', since).length, 1, 'member_removed exactly once');
      if (!B.running) await B.start();
      // B serves again
      const back = await rawSubscribed(t, B, app, pres, 'back');
      assert.deepEqual([...back.ok.data.presence.ids].sort(), ['back', 'observer']);
    });
  }
});

describe('Redis restarted mid-test (state lost)', () => {
  const app = makeApp({ enable_subscription_count: true, enable_client_messages: true });
  const quotaApp = makeApp({ max_connections: 2 });
  const srv = useServer({ nodes: 2, backplane: REDIS, apps: [app, quotaApp] });

  test('sockets stay open, /readyz 503 then 200, then delivery, presence and counts are consistent again', async (t) => {
    const [A, B] = srv.nodes;
    const redis = srv.redis;
    const pres = uid('presence-outage-');
    const pub = uid('outage-pub-');
    const pa = await rawSubscribed(t, A, app, pres, 'pa');
    await pa.subscribeOk(pub);
    const pb = await rawSubscribed(t, B, app, pres, 'pb');
    await pb.subscribeOk(pub);
    const js = await connectPusher(t, A, app, { presence: () => ({ user_id: 'pjs' }) });
    const { data: jsMembers } = await js.subscribe(pres);
    await js.subscribe(pub);
    assert.equal(jsMembers.count, 3);
    const statesBefore = js.states.length;
    // quotaApp (max_connections = 2) is full: one socket on each node
    const qa = await connectRaw(t, A, quotaApp);
    const qb = await connectRaw(t, B, quotaApp);
    const raws = [pa, pb, qa, qb];
    assert.deepEqual(await userIds(B, app, pres), ['pa', 'pb', 'pjs']);

    await redis.restart({
      whileDown: async () => {
        await waitReadyz([A, B], 503, 5000);
        for (const n of [A, B]) assert.equal(await n.probe('/healthz'), 200, `${n.name} /healthz during the outage`);
        // new subscriptions fail with ServerError/503 (the node may wait up to its 5 s
        // subscribe timeout for Redis to come back first); the sockets stay usable
        const [frame, err] = await Promise.all([
          pa.subscribe(uid('during-outage-'), {}, SUBSCRIBE_WAIT_MS),
          js.subscribeError(uid('private-during-outage-'), SUBSCRIBE_WAIT_MS),
        ]);
        assert.equal(frame.event, 'pusher:subscription_error', frame.text);
        assert.equal(frame.data.type, 'ServerError', frame.text);
        assert.equal(frame.data.status, 503, frame.text);
        assert.equal(err.type, 'ServerError');
        assert.equal(err.status, 503);
        await pa.ping();
        // REST calls that need Redis → 503 {"error": …}
        const res = await sdkResult(() => serverSdk(B, app).trigger(pub, 'lost', {}));
        assert.equal(res.status, 503, res.body);
        assert.equal(typeof res.json?.error, 'string', res.body);
        const get = await sdkResult(() => serverSdk(A, app).get({ path: '/channels' }));
        assert.equal(get.status, 503, get.body);
        assert.equal(typeof get.json?.error, 'string', get.body);
      },
    });
    await waitReadyz([A, B], 200, 15_000);

    // nobody was disconnected
    for (const r of raws) {
      assert.equal(r.closeInfo, undefined, `raw socket closed: ${JSON.stringify(r.closeInfo)}`);
      await r.ping();
    }
    assert.deepEqual(js.states.slice(statesBefore), [], `pusher-js state changes during the outage: ${js.states.join(' → ')}`);
    assert.equal(js.state, 'connected');

    // delivery: REST on B reaches clients on A (and B)
    const since = raws.map((r) => r.mark());
    await trigger(B, app, pub, 'after-outage', { n: 1 });
    await js.waitEvent(pub, 'after-outage');
    await pa.waitFor(isEvent('after-outage', pub), { since: since[0] });
    await pb.waitFor(isEvent('after-outage', pub), { since: since[1] });

    // state was rebuilt: members and counts from both nodes, on both nodes
    for (const n of [A, B]) {
      assert.deepEqual(await userIds(n, app, pres), ['pa', 'pb', 'pjs'], `/users on ${n.name}`);
      assert.deepEqual(await sdkGetJSON(serverSdk(n, app), `/channels/${pub}`, { info: 'subscription_count' }), {
        occupied: true,
        subscription_count: 3,
      }, `subscription_count on ${n.name}`);
      assert.deepEqual(await sdkGetJSON(serverSdk(n, app), '/channels'), { channels: { [pres]: {}, [pub]: {} } }, `/channels on ${n.name}`);
    }
    assert.equal(jsMembers.count, 3, 'pusher-js roster unchanged');
    // connection counts were re-registered too: quotaApp is still full on both nodes
    await expectRefused(t, A, quotaApp, 4004);
    await expectRefused(t, B, quotaApp, 4004);

    // new subscriptions work again, across nodes
    const fresh = uid('after-outage-');
    await pa.subscribeOk(fresh);
    const freshSince = pa.mark();
    await trigger(B, app, fresh, 'fresh', {});
    await pa.waitFor(isEvent('fresh', fresh), { since: freshSince });
    const lateSince = pa.mark();
    const late = await rawSubscribed(t, B, app, pres, 'late');
    assert.deepEqual([...late.ok.data.presence.ids].sort(), ['late', 'pa', 'pb', 'pjs']);
    await pa.waitFor((f) => f.event === 'pusher_internal:member_added' && f.data?.user_id === 'late', { since: lateSince });
    await js.until(() => jsMembers.count === 4, 5000, 'pusher-js roster gains late');
  });

  test('members that stayed connected through a Redis restart are not announced again (no member_added, not even to themselves)', async (t) => {
    const [A, B] = srv.nodes;
    const pres = uid('presence-reannounce-');
    const pa = await rawSubscribed(t, A, app, pres, 'pa');
    const pb = await rawSubscribed(t, B, app, pres, 'pb');
    const js = await connectPusher(t, A, app, { presence: () => ({ user_id: 'pjs' }) });
    const { data: jsMembers } = await js.subscribe(pres);
    await sawJoins(pa, pres, ['pb', 'pjs']);
    await sawJoins(pb, pres, ['pjs']);
    const since = [pa.mark(), pb.mark()];
    const jsSince = js.events.length;

    await srv.redis.restart({ whileDown: () => waitReadyz([A, B], 503, 5000) });
    await waitReadyz([A, B], 200, 15_000);
    assert.deepEqual(await userIds(B, app, pres), ['pa', 'pb', 'pjs']);

    await controlRound(B, app, pres, [pa, pb]);
    for (const [i, r] of [pa, pb].entries()) {
      const memberFrames = r.filter((f) => f.channel === pres && f.event?.startsWith('pusher_internal:member_'), since[i]);
      assert.deepEqual(
        memberFrames.map((f) => f.text),
        [],
        `${['pa', 'pb'][i]} must get no member_added / member_removed: membership did not change`,
      );
    }
    const jsMemberEvents = js.events.slice(jsSince).filter((e) => e.channel === pres && e.event.startsWith('pusher:member_'));
    assert.deepEqual(jsMemberEvents.map((e) => `${e.event} ${JSON.stringify(e.data)}`), [], 'pusher-js app code sees no member events');
    assert.equal(jsMembers.count, 3);
  });

  test('a member whose last socket closed during the outage is removed exactly once after recovery; one still on another node is not', async (t) => {
    const [A, B] = srv.nodes;
    const pres = uid('presence-departed-');
    const pa = await rawSubscribed(t, A, app, pres, 'pa');
    const gone = await rawSubscribed(t, B, app, pres, 'gone');
    const splitOnB = await rawSubscribed(t, B, app, pres, 'split');
    await rawSubscribed(t, A, app, pres, 'split');
    const js = await connectPusher(t, A, app, { presence: () => ({ user_id: 'pjs' }) });
    const { data: jsMembers } = await js.subscribe(pres);
    await sawJoins(pa, pres, ['gone', 'split', 'pjs']);
    const since = pa.mark();

    await srv.redis.restart({
      whileDown: async () => {
        await waitReadyz([A, B], 503, 5000);
        await Promise.all([gone.close(), splitOnB.close()]);
      },
    });
    await waitReadyz([A, B], 200, 15_000);
    const readyAt = Date.now();
    // the node re-checks departures a few seconds after re-registering
    await pa.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'gone', {
      since,
      timeout: 8000,
      what: 'member_removed gone within 8 s of /readyz 200',
    });
    await js.waitEvent(pres, 'pusher:member_removed', (e) => e.data?.id === 'gone', Math.max(1, readyAt + 8000 - Date.now()));
    await controlRound(B, app, pres, [pa]);
    assert.equal(memberEvents(pa, 'pusher_internal:member_removed', pres, 'gone', since).length, 1, 'gone removed exactly once');
    assert.deepEqual(memberEvents(pa, 'pusher_internal:member_removed', pres, 'split', since), [], 'split is still a member through A');
    assert.equal(jsMembers.count, 3, 'pusher-js roster: pa, split, pjs');
    for (const n of [A, B]) assert.deepEqual(await userIds(n, app, pres), ['pa', 'pjs', 'split'], `/users on ${n.name}`);
  });
});

describe('Redis stalls (SIGSTOP) without losing state', () => {
  const app = makeApp({ enable_subscription_count: true });
  const srv = useServer({ nodes: 2, backplane: REDIS, apps: [app] });

  test('a hung Redis turns /readyz 503 within ~2 s (pub/sub pinged every second); sockets stay open; 200 after it resumes', async (t) => {
    const nodes = srv.nodes;
    const ch = uid('stall-');
    const raws = [await rawSubscribed(t, nodes[0], app, ch), await rawSubscribed(t, nodes[1], app, ch)];
    const stoppedAt = Date.now();
    srv.redis.pause();
    let took;
    try {
      await waitReadyz(nodes, 503, 10_000);
      took = Date.now() - stoppedAt;
      for (const n of nodes) assert.equal(await n.probe('/healthz'), 200, `${n.name} /healthz while Redis hangs`);
    } finally {
      srv.redis.resume();
    }
    await waitReadyz(nodes, 200, 15_000);
    for (const r of raws) {
      assert.equal(r.closeInfo, undefined, `socket closed: ${JSON.stringify(r.closeInfo)}`);
      await r.ping();
    }
    const since = raws.map((r) => r.mark());
    await trigger(nodes[1], app, ch, 'after-stall', {});
    await Promise.all(raws.map((r, i) => r.waitFor(isEvent('after-stall', ch), { since: since[i] })));
    assert.ok(took <= 2500, `/readyz turned 503 ${took} ms after Redis stopped answering; expected within ~1–2 s`);
  });

  test('after a stall: a member that left meanwhile is removed exactly once; the others are not re-announced; counts right', async (t) => {
    const [A, B] = srv.nodes;
    const pres = uid('presence-stall-');
    const pub = uid('stall-pub-');
    const pa = await rawSubscribed(t, A, app, pres, 'pa');
    await pa.subscribeOk(pub);
    const pb = await rawSubscribed(t, B, app, pres, 'pb');
    await pb.subscribeOk(pub);
    const gone = await rawSubscribed(t, B, app, pres, 'gone');
    await gone.subscribeOk(pub);
    const js = await connectPusher(t, A, app, { presence: () => ({ user_id: 'pjs' }) });
    const { data: jsMembers } = await js.subscribe(pres);
    await sawJoins(pa, pres, ['pb', 'gone', 'pjs']);
    await sawJoins(pb, pres, ['gone', 'pjs']);
    const since = [pa.mark(), pb.mark()];
    const jsSince = js.events.length;

    srv.redis.pause();
    try {
      await waitReadyz([A, B], 503, 10_000);
      await gone.close();
    } finally {
      srv.redis.resume();
    }
    await waitReadyz([A, B], 200, 15_000);

    for (const [i, r] of [pa, pb].entries()) {
      await r.waitFor((f) => f.event === 'pusher_internal:member_removed' && f.data?.user_id === 'gone', { since: since[i] });
    }
    await js.waitEvent(pres, 'pusher:member_removed', (e) => e.data?.id === 'gone');
    await controlRound(B, app, pres, [pa, pb]);
    for (const [i, r] of [pa, pb].entries()) {
      const who = ['pa', 'pb'][i];
      const memberFrames = r.filter((f) => f.channel === pres && f.event?.startsWith('pusher_internal:member_'), since[i]);
      assert.deepEqual(
        memberFrames.map((f) => `${f.event} ${f.data?.user_id}`),
        ['pusher_internal:member_removed gone'],
        `${who}: only gone's removal after the stall`,
      );
    }
    const jsMemberEvents = js.events.slice(jsSince).filter((e) => e.channel === pres && e.event.startsWith('pusher:member_'));
    assert.deepEqual(jsMemberEvents.map((e) => `${e.event} ${e.data?.id}`), ['pusher:member_removed gone']);
    assert.equal(jsMembers.count, 3);
    for (const n of [A, B]) {
      assert.deepEqual(await userIds(n, app, pres), ['pa', 'pb', 'pjs'], `/users on ${n.name}`);
      assert.equal((await sdkGetJSON(serverSdk(n, app), `/channels/${pub}`, { info: 'subscription_count' })).subscription_count, 2, n.name);
    }
  });
});

describe('readiness follows Redis', () => {
  const state = trackFailures();
  const app = makeApp();

  test('a node started while Redis is down: /healthz 200, /readyz 503; Redis comes up → /readyz 200', async (t) => {
    const port = await freePort();
    const node = await makeNode(0, { apps: [app], backplane: { ...REDIS, url: `redis://127.0.0.1:${port}` } });
    let redis;
    t.after(async () => {
      if (state.failed || process.env.FERROCAST_CONFORMANCE_LOGS === '1') {
        console.error(`${node.logs()}\n${redis?.logs() ?? '(redis never started)'}`);
      }
      await node.stop();
      await redis?.dispose();
    });
    try {
      await node.start({ ready: false });
      assert.equal(await node.probe('/healthz'), 200);
      // it stays unready while nothing listens on the Redis port
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        assert.equal(await node.probe('/readyz'), 503, '/readyz while Redis is down');
        await sleep(100);
      }
      redis = await startRedis({ port });
      const started = Date.now();
      await node.waitReady(7000);
      const took = Date.now() - started;
      assert.ok(took <= 7000, `ready ${took} ms after Redis came up`);

      // and it works
      const ch = uid('ready-');
      const raw = await rawSubscribed(t, node, app, ch);
      const since = raw.mark();
      await trigger(node, app, ch, 'hello', {});
      await raw.waitFor(isEvent('hello', ch), { since });
    } catch (err) {
      state.failed = true;
      throw err;
    }
  });
});
