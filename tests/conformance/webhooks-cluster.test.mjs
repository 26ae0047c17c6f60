// Webhooks in a cluster: two real nodes on a private Redis (always, whatever
// FERROCAST_CONFORMANCE_NODES says, like cluster.test.mjs), one webhook endpoint (lib/webhooks.mjs).
// Every node has the same app config; each webhook event must be sent by exactly one node.
//
// As in webhooks.test.mjs, "must not arrive" checks wait for a later event of the same channel
// (the final channel_vacated) and then compare the channel's whole sequence. Events sent by
// different nodes have no defined relative order at the endpoint, so the sequences compared here
// only order events that one node sends one after the other (or that are seconds apart).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { isEvent, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';
import { assertSequence, useWebhookReceiver } from './lib/webhooks.mjs';

const LEAVE_DELAY_MS = 500;
const SLACK_MS = 30;
const LEAVE_ARRIVAL_MS = LEAVE_DELAY_MS + 3000;
const QUIET_MS = 300;
const NODE_TTL_S = 2;
const WEBHOOKS = { leave_delay_ms: LEAVE_DELAY_MS, retry_backoff_ms: 150, timeout_ms: 2000, flush_timeout_s: 1 };

const recv = useWebhookReceiver();

const waitEvent = (channel, name, { userId, timeout = LEAVE_ARRIVAL_MS } = {}) => recv.waitEvent(name, { userId, timeout, channel });
const sequence = (channel) => recv.sequence({ channel });

async function scrapeAll(nodes) {
  const samples = [];
  for (const node of nodes) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `GET /metrics on ${node.name}`);
    for (const s of parseMetrics(await res.text())) samples.push({ ...s, node: node.name });
  }
  return samples;
}

function assertLeaveTiming(ev, leftAt, what) {
  const waited = ev.at - leftAt;
  assert.ok(waited >= LEAVE_DELAY_MS - SLACK_MS, `${what} arrived ${waited} ms after the leave, before leave_delay_ms = ${LEAVE_DELAY_MS}`);
}

function assertAllValid(app) {
  const mine = recv.requests.filter((r) => r.key === app.key);
  assert.ok(mine.length > 0);
  for (const r of mine) {
    assert.equal(r.valid, true, `#${r.seq}: ${r.validationError} ${r.rawBody.slice(0, 300)}`);
    assert.equal(r.body.events.length, 1, `one event per request: #${r.seq}`);
  }
}

// ---------------------------------------------------------------------------------------------

describe('two nodes on one Redis: each webhook event is sent once', () => {
  const app = recv.addApp(makeApp({ enable_client_messages: true }));
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/cluster') }];
    return { nodes: 2, backplane: { driver: 'redis' }, webhooks: WEBHOOKS, apps: [app] };
  });

  test('simultaneous subscribes on A and B → one channel_occupied; simultaneous leaves → one channel_vacated', async (t) => {
    const [A, B] = srv.nodes;
    const channels = [1, 2, 3, 4].map((i) => uid(`whc-occ-${i}-`));
    const pairs = await Promise.all(
      channels.map(async (ch) => Promise.all([rawSubscribed(t, A, app, ch), rawSubscribed(t, B, app, ch)])),
    );
    await Promise.all(channels.map((ch) => waitEvent(ch, 'channel_occupied', { timeout: 3000 })));
    await Promise.all(pairs.flat().map((s) => s.close()));
    await Promise.all(channels.map((ch) => waitEvent(ch, 'channel_vacated')));
    await sleep(QUIET_MS);
    for (const ch of channels) assert.deepEqual(sequence(ch), ['channel_occupied', 'channel_vacated'], ch);

    // what the nodes say they delivered is what arrived: no node sent anything twice
    await eventually(async () => {
      const samples = await scrapeAll(srv.nodes);
      for (const name of ['channel_occupied', 'channel_vacated']) {
        const sent = samples
          .filter((s) => s.name === 'ferrocast_webhook_events_total' && s.labels.app_id === app.id && s.labels.event === name)
          .reduce((acc, s) => acc + s.value, 0);
        assert.equal(sent, recv.events({ name, delivered: true }).filter((e) => e.request.key === app.key).length, name);
      }
    }, 3000, 100);
  });

  test('presence: a user on both nodes is added once and removed once (when its last connection leaves); client_event once', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('presence-whc-both-');
    const [u1a, u1b] = await Promise.all([rawSubscribed(t, A, app, ch, 'u1'), rawSubscribed(t, B, app, ch, 'u1')]);
    await waitEvent(ch, 'member_added', { userId: 'u1', timeout: 3000 });
    const u2 = await rawSubscribed(t, B, app, ch, 'u2');
    await waitEvent(ch, 'member_added', { userId: 'u2', timeout: 3000 });

    // a client event from A, with subscribers on both nodes: one client_event webhook
    const since = u2.mark();
    u1a.send({ event: 'client-hi', channel: ch, data: { from: 'A' } });
    await u2.waitFor(isEvent('client-hi', ch), { since });
    const ce = await waitEvent(ch, 'client_event', { timeout: 3000 });
    assert.deepEqual(ce, {
      name: 'client_event',
      channel: ch,
      event: 'client-hi',
      data: JSON.stringify({ from: 'A' }),
      socket_id: u1a.socketId,
      user_id: 'u1',
    });

    // u1 leaves A but is still on B: nothing
    await u1a.close();
    await sleep(LEAVE_DELAY_MS + 300);
    assertSequence(sequence(ch), ['channel_occupied', 'member_added u1'], ['member_added u2', 'client_event'], 'u1 still on B');

    // u1's last connection leaves, then u2 (the last subscriber)
    let leftAt = Date.now();
    await u1b.close();
    assertLeaveTiming(await waitEvent(ch, 'member_removed', { userId: 'u1' }), leftAt, 'member_removed u1');
    leftAt = Date.now();
    await u2.close();
    assertLeaveTiming(await waitEvent(ch, 'channel_vacated'), leftAt, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(
      sequence(ch),
      ['channel_occupied', 'member_added u1'],
      ['member_added u2', 'client_event', 'member_removed u1', 'member_removed u2', 'channel_vacated'],
      ch,
    );
    assertAllValid(app);
  });

  for (const [from, to] of [
    [0, 1],
    [1, 0],
  ]) {
    test(`leave on node ${'AB'[from]} and rejoin on node ${'AB'[to]} within the delay: nothing is reported`, async (t) => {
      const first = srv.nodes[from];
      const second = srv.nodes[to];
      const pres = uid('presence-whc-move-');
      const pub = uid('whc-move-');
      const s1 = await rawSubscribed(t, first, app, pres, 'mover');
      await s1.subscribeOk(pub);
      await waitEvent(pres, 'member_added', { userId: 'mover', timeout: 3000 });
      await waitEvent(pub, 'channel_occupied', { timeout: 3000 });

      await s1.close();
      const s2 = await rawSubscribed(t, second, app, pres, 'mover');
      await s2.subscribeOk(pub);
      await sleep(LEAVE_DELAY_MS + 300);
      assertSequence(sequence(pres), ['channel_occupied', 'member_added mover'], [], 'after the move');
      assert.deepEqual(sequence(pub), ['channel_occupied'], 'after the move');

      const leftAt = Date.now();
      await s2.close();
      assertLeaveTiming(await waitEvent(pres, 'channel_vacated'), leftAt, 'channel_vacated');
      await waitEvent(pub, 'channel_vacated');
      await sleep(QUIET_MS);
      assertSequence(sequence(pres), ['channel_occupied', 'member_added mover'], ['member_removed mover', 'channel_vacated'], pres);
      assert.deepEqual(sequence(pub), ['channel_occupied', 'channel_vacated'], pub);
    });
  }
});

describe(`a node killed with SIGKILL (node_ttl_s = ${NODE_TTL_S})`, () => {
  const app = recv.addApp(makeApp());
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/reaped') }];
    return { nodes: 2, backplane: { driver: 'redis', node_ttl_s: NODE_TTL_S }, webhooks: WEBHOOKS, apps: [app] };
  });

  test('the survivor reports what vanished with it, once: member_removed (then channel_vacated where it was alone)', async (t) => {
    const [A, B] = srv.nodes;
    const shared = uid('presence-whc-shared-');
    const alone = uid('presence-whc-alone-');
    const alonePub = uid('whc-alone-');
    const obs = await rawSubscribed(t, A, app, shared, 'obs');
    await waitEvent(shared, 'member_added', { userId: 'obs', timeout: 3000 });
    const bothOnA = await rawSubscribed(t, A, app, shared, 'both');
    await waitEvent(shared, 'member_added', { userId: 'both', timeout: 3000 });
    await rawSubscribed(t, B, app, shared, 'both'); // 'both' also on B: stays present via A
    const victim = await rawSubscribed(t, B, app, shared, 'victim');
    await victim.subscribeOk(alone, subscribeExtra(app, victim, alone, 'victim'));
    await victim.subscribeOk(alonePub);
    await waitEvent(shared, 'member_added', { userId: 'victim', timeout: 3000 });
    await waitEvent(alone, 'member_added', { userId: 'victim', timeout: 3000 });
    await waitEvent(alonePub, 'channel_occupied', { timeout: 3000 });

    const killedAt = Date.now();
    await B.kill();
    const deadline = killedAt + NODE_TTL_S * 1000 + 4000;
    const left = () => Math.max(1, deadline - Date.now());
    const arrivals = {};
    for (const [ch, name, userId] of [
      [shared, 'member_removed', 'victim'],
      [alone, 'member_removed', 'victim'],
      [alone, 'channel_vacated'],
      [alonePub, 'channel_vacated'],
    ]) {
      const ev = await recv.waitEvent(name, { userId, channel: ch, timeout: left() });
      arrivals[`${name} ${ch}`] = ev.at - killedAt;
    }
    assert.ok(
      Object.values(arrivals).every((ms) => ms <= NODE_TTL_S * 1000 + 4000),
      `reaped within ttl + 4 s: ${JSON.stringify(arrivals)}`,
    );

    // positive control on the shared channel: the members still on A leave for real
    await sleep(QUIET_MS);
    await bothOnA.close();
    await waitEvent(shared, 'member_removed', { userId: 'both' });
    await obs.close();
    await waitEvent(shared, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(
      sequence(shared),
      ['channel_occupied', 'member_added obs'],
      ['member_added both', 'member_added victim', 'member_removed victim', 'member_removed both', 'member_removed obs', 'channel_vacated'],
      `${shared} (arrivals after the SIGKILL: ${JSON.stringify(arrivals)})`,
    );
    assertSequence(sequence(alone), ['channel_occupied', 'member_added victim'], ['member_removed victim', 'channel_vacated'], alone);
    assert.deepEqual(sequence(alonePub), ['channel_occupied', 'channel_vacated'], alonePub);
    // the survivor sent them (and counts them)
    const samples = await scrapeAll([A]);
    const sentByA = (name) =>
      samples
        .filter((s) => s.name === 'ferrocast_webhook_events_total' && s.labels.app_id === app.id && s.labels.event === name)
        .reduce((acc, s) => acc + s.value, 0);
    assert.ok(sentByA('member_removed') >= 4, `member_removed sent by A: ${sentByA('member_removed')}`);
    assert.ok(sentByA('channel_vacated') >= 3, `channel_vacated sent by A: ${sentByA('channel_vacated')}`);
    assertAllValid(app);
  });
});
