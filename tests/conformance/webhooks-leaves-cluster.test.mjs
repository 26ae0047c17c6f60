// Pending leaves of a node SIGKILLed inside the leave delay: two real nodes on a private Redis
// (always, whatever FERROCAST_CONFORMANCE_NODES says), one webhook endpoint (lib/webhooks.mjs).
//
// A presence user, the channel's last subscriber, leaves on node B (B has processed the
// unsubscribe: the raw client's unsubscribe waits for a ping round-trip), so B holds a pending
// member_removed and channel_vacated; B is SIGKILLed before the leave delay ends. The node that
// reaps B inherits those pending leaves and confirms them when their delay ends: both webhooks
// arrive, once each, sent by A. If the user comes back on A within the delay, neither is sent.
// Without the hand-over nothing at all would arrive: B's registrations no longer held the user,
// so the reap itself reports nothing for them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectRaw, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sdkResult, serverSdk } from './lib/clients.mjs';
import { parseMetrics, sleep, uid } from './lib/util.mjs';
import { useWebhookReceiver } from './lib/webhooks.mjs';

// Long enough that the SIGKILL (and the rejoin) surely fall inside it; node_ttl_s at its minimum.
const LEAVE_DELAY_MS = 2500;
const NODE_TTL_S = 2;
// Generous bound for the reports to arrive: reap (ttl plus one heartbeat period) or the delay,
// whichever is later, plus slack for a loaded machine. Not a speed assertion: only a timeout.
const ARRIVAL_MS = LEAVE_DELAY_MS + NODE_TTL_S * 1000 + 8000;
const QUIET_MS = 500;
const WEBHOOKS = { leave_delay_ms: LEAVE_DELAY_MS, retry_backoff_ms: 150, timeout_ms: 2000, flush_timeout_s: 1 };

const recv = useWebhookReceiver();
const sequence = (channel) => recv.sequence({ channel });

function cluster(path) {
  const app = recv.addApp(makeApp());
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url(path) }];
    return { nodes: 2, backplane: { driver: 'redis', node_ttl_s: NODE_TTL_S }, webhooks: WEBHOOKS, apps: [app] };
  });
  return { app, srv };
}

async function sentBy(node, app, name) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return parseMetrics(await res.text())
    .filter((s) => s.name === 'ferrocast_webhook_events_total' && s.labels.app_id === app.id && s.labels.event === name)
    .reduce((acc, s) => acc + s.value, 0);
}

/** `userId` joins `channel` on `node` (alone) and the join is reported; returns the socket. */
async function joinedAlone(t, node, app, channel, userId) {
  const raw = await rawSubscribed(t, node, app, channel, userId);
  await recv.waitEvent('member_added', { userId, channel, timeout: 5000 });
  return raw;
}

describe(`a node SIGKILLed inside the leave delay (leave_delay_ms = ${LEAVE_DELAY_MS}, node_ttl_s = ${NODE_TTL_S})`, () => {
  const { app, srv } = cluster('/leaves-killed');

  test('its pending member_removed and channel_vacated are confirmed by the survivor, once each', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('presence-whl-killed-');
    const user = await joinedAlone(t, B, app, ch, 'leaver');
    await user.unsubscribe(ch); // processed by B: the leave is pending there
    await B.kill();

    await recv.waitEvent('member_removed', { userId: 'leaver', channel: ch, timeout: ARRIVAL_MS });
    await recv.waitEvent('channel_vacated', { channel: ch, timeout: ARRIVAL_MS });
    await sleep(QUIET_MS + LEAVE_DELAY_MS); // anything sent twice would have arrived by now
    assert.deepEqual(sequence(ch), ['channel_occupied', 'member_added leaver', 'member_removed leaver', 'channel_vacated']);
    assert.ok((await sentBy(A, app, 'member_removed')) >= 1, 'member_removed was sent by the survivor A');
    assert.ok((await sentBy(A, app, 'channel_vacated')) >= 1, 'channel_vacated was sent by the survivor A');
  });
});

describe(`a node SIGKILLed inside the leave delay, the user back on the survivor within it`, () => {
  const { app, srv } = cluster('/leaves-returned');

  test('neither member_removed nor channel_vacated is sent for the leave; the later real leave is', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('presence-whl-back-');
    const user = await joinedAlone(t, B, app, ch, 'returner');
    await user.unsubscribe(ch);
    await B.kill();
    const back = await connectRaw(t, A, app);
    await back.subscribeOk(ch, subscribeExtra(app, back, ch, 'returner')); // within the delay

    // Past the delay and the reap of B: the inherited leaves were confirmed (and found cancelled).
    await sleep(LEAVE_DELAY_MS + NODE_TTL_S * 1000 + 2000);
    assert.deepEqual(sequence(ch), ['channel_occupied', 'member_added returner'], 'nothing reported for the cancelled leave');

    // positive control: the real leave, on A, is reported once
    await back.unsubscribe(ch);
    await recv.waitEvent('channel_vacated', { channel: ch, timeout: ARRIVAL_MS });
    await sleep(QUIET_MS);
    assert.deepEqual(sequence(ch), [
      'channel_occupied',
      'member_added returner',
      'member_removed returner',
      'channel_vacated',
    ]);
  });
});

describe('Redis stalled (SIGSTOP) when a pending leave falls due', () => {
  const app = recv.addApp(makeApp());
  // node_ttl_s well above the stall: this is about the confirmation, not about reaping.
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/leaves-stalled') }];
    return { nodes: 2, backplane: { driver: 'redis', node_ttl_s: 15 }, webhooks: WEBHOOKS, apps: [app] };
  });

  test('the confirmation is retried until Redis answers: member_removed and channel_vacated arrive once each', async (t) => {
    const [, B] = srv.nodes;
    const ch = uid('presence-whl-stalled-');
    const user = await joinedAlone(t, B, app, ch, 'staller');
    await user.unsubscribe(ch);
    srv.redis.pause(); // due after LEAVE_DELAY_MS, inside the stall
    try {
      await sleep(LEAVE_DELAY_MS + 2500);
      assert.deepEqual(sequence(ch), ['channel_occupied', 'member_added staller'], 'nothing decided while Redis hangs');
    } finally {
      srv.redis.resume();
    }
    await recv.waitEvent('member_removed', { userId: 'staller', channel: ch, timeout: ARRIVAL_MS });
    await recv.waitEvent('channel_vacated', { channel: ch, timeout: ARRIVAL_MS });
    await sleep(QUIET_MS);
    assert.deepEqual(sequence(ch), ['channel_occupied', 'member_added staller', 'member_removed staller', 'channel_vacated']);
  });
});

describe('a node SIGKILLed inside the leave delay and restarted at once (same node_id: never reaped)', () => {
  const app = recv.addApp(makeApp());
  // node_ttl_s far above the restart: no peer reaps B, so only B's next process can confirm.
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/leaves-restarted') }];
    return { nodes: 2, backplane: { driver: 'redis', node_ttl_s: 15 }, webhooks: WEBHOOKS, apps: [app] };
  });

  test('the restarted node confirms its predecessor’s pending leaves: member_removed and channel_vacated once each', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('presence-whl-restarted-');
    const user = await joinedAlone(t, B, app, ch, 'restarter');
    await user.unsubscribe(ch);
    await B.kill();
    await B.start();

    await recv.waitEvent('member_removed', { userId: 'restarter', channel: ch, timeout: ARRIVAL_MS });
    await recv.waitEvent('channel_vacated', { channel: ch, timeout: ARRIVAL_MS });
    await sleep(QUIET_MS + LEAVE_DELAY_MS);
    assert.deepEqual(sequence(ch), ['channel_occupied', 'member_added restarter', 'member_removed restarter', 'channel_vacated']);
    // Not through a reap (the webhook itself may be sent by either node: the queue is shared).
    const res = await fetch(`${A.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    const reaped = parseMetrics(await res.text()).find((s) => s.name === 'ferrocast_node_reaped_total');
    assert.equal(reaped?.value, 0, 'B was never reaped: its restarted process confirmed the leaves');
  });
});

describe('Redis stalled (SIGSTOP) while the last subscribers leave (a stall too short to reap anyone)', () => {
  const app = recv.addApp(makeApp());
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/leaves-unknown') }];
    return { nodes: 2, backplane: { driver: 'redis', node_ttl_s: 15 }, webhooks: WEBHOOKS, apps: [app] };
  });

  async function counters(node) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseMetrics(await res.text());
  }

  test('the writes that timed out are settled by a resync: leaves reported once each, counts right, rejoin balanced', async (t) => {
    const [A, B] = srv.nodes;
    const presence = uid('presence-whl-unknown-');
    const pub = uid('whl-unknown-');
    const member = await joinedAlone(t, B, app, presence, 'unknown');
    const watcher = await connectRaw(t, B, app);
    await watcher.subscribeOk(pub, {});
    await recv.waitEvent('channel_occupied', { channel: pub, timeout: 5000 });

    srv.redis.pause();
    try {
      // Sent raw: B's replies wait for Redis (its writes time out after 3 s).
      member.send({ event: 'pusher:unsubscribe', data: { channel: presence } });
      watcher.send({ event: 'pusher:unsubscribe', data: { channel: pub } });
      await sleep(5000);
    } finally {
      srv.redis.resume();
    }

    await recv.waitEvent('member_removed', { userId: 'unknown', channel: presence, timeout: ARRIVAL_MS });
    await recv.waitEvent('channel_vacated', { channel: presence, timeout: ARRIVAL_MS });
    await recv.waitEvent('channel_vacated', { channel: pub, timeout: ARRIVAL_MS });
    await sleep(QUIET_MS + LEAVE_DELAY_MS);
    assert.deepEqual(sequence(presence), ['channel_occupied', 'member_added unknown', 'member_removed unknown', 'channel_vacated']);
    assert.deepEqual(sequence(pub), ['channel_occupied', 'channel_vacated']);
    for (const ch of [presence, pub]) {
      const info = await sdkResult(() => serverSdk(A, app).get({ path: `/channels/${ch}` }));
      assert.equal(info.status, 200, info.body);
      assert.equal(info.json.occupied, false, `${ch} is empty cluster-wide: ${info.body}`);
    }
    const repairs = (await counters(B)).find((s) => s.name === 'ferrocast_registration_repairs_total');
    assert.ok(repairs && repairs.value >= 1, `B resynced after its failed writes: ${JSON.stringify(repairs)}`);

    // The same user back and gone again: one member_added, one member_removed, nothing stale.
    const again = await connectRaw(t, B, app);
    await again.subscribeOk(presence, subscribeExtra(app, again, presence, 'unknown'));
    await recv.waitForEvents(2, { channel: presence, name: 'member_added', timeout: 5000 });
    await again.unsubscribe(presence);
    await recv.waitForEvents(2, { channel: presence, name: 'channel_vacated', timeout: ARRIVAL_MS });
    await sleep(QUIET_MS + LEAVE_DELAY_MS);
    assert.deepEqual(sequence(presence), [
      'channel_occupied',
      'member_added unknown',
      'member_removed unknown',
      'channel_vacated',
      'channel_occupied',
      'member_added unknown',
      'member_removed unknown',
      'channel_vacated',
    ]);
  });
});
