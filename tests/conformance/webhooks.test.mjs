// Webhooks (reference §10): what ferrocast POSTs to an app's `[[apps.webhooks]]` URLs, checked
// at a real HTTP endpoint (lib/webhooks.mjs) with the official `pusher` SDK's webhook API.
//
// Topology-independent: with FERROCAST_CONFORMANCE_NODES=2 every socket is on node A and REST on
// node B, so every event is decided through the Redis cluster state. Metrics are summed over the
// nodes (whichever node decided an event sends it). Multi-node specifics (exactly once across
// nodes, a rejoin on another node, a killed node) are in webhooks-cluster.test.mjs.
//
// "Must not arrive" checks rely on per-channel ordering at an endpoint: the check waits for a
// later event of the same channel (usually the final channel_vacated), so anything the server
// wrongly sent before it would already have arrived; then it allows a short window and compares
// the channel's whole sequence.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isEvent, isPusherError, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { freePort, makeApp, startCluster, trackFailures, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';
import { assertSequence, labels, useWebhookReceiver } from './lib/webhooks.mjs';

const LEAVE_DELAY_MS = 500;
const BACKOFF_MS = 150;
const MAX_BATCH = 3;
/** Timer and millisecond-rounding slack for "not before the delay" checks. */
const SLACK_MS = 30;
/** How long after a leave its delayed webhook must have arrived. */
const LEAVE_ARRIVAL_MS = LEAVE_DELAY_MS + 3000;
/** Window for stragglers after a positive control. */
const QUIET_MS = 300;

const WEBHOOKS = {
  leave_delay_ms: LEAVE_DELAY_MS,
  retry_backoff_ms: BACKOFF_MS,
  timeout_ms: 2000,
  max_batch_size: MAX_BATCH,
  flush_timeout_s: 1,
};

const recv = useWebhookReceiver();
const state = trackFailures();

// ---------------------------------------------------------------------------------------------
// helpers

async function trigger(node, app, channel, event, data) {
  const res = await sdkResult(() => serverSdk(node, app).trigger(channel, event, data));
  assert.equal(res.status, 200, `trigger on ${node.name} → ${res.status} ${res.body}`);
}

async function scrapeAll(nodes) {
  const samples = [];
  for (const node of nodes) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    assert.equal(res.status, 200, `GET /metrics on ${node.name} → ${res.status}`);
    samples.push(...parseMetrics(text));
  }
  return samples;
}

const metricSum = (samples, name, labelFilter = () => true) =>
  samples.filter((s) => s.name === name && labelFilter(s.labels)).reduce((acc, s) => acc + s.value, 0);

/** Waits for the channel's `name` event (optionally for `userId`) on `path`; returns it. */
const waitEvent = (path, channel, name, { userId, timeout = LEAVE_ARRIVAL_MS, since = 0 } = {}) =>
  recv.waitEvent(name, { userId, timeout, path, channel, since });

/** Event labels on `channel` at `path` (every request answered 2xx). */
const sequence = (path, channel) => recv.sequence({ path, channel });

function assertLeaveTiming(ev, leftAt, what) {
  const waited = ev.at - leftAt;
  assert.ok(waited >= LEAVE_DELAY_MS - SLACK_MS, `${what} arrived ${waited} ms after the leave, before leave_delay_ms = ${LEAVE_DELAY_MS}`);
}

/** Every request in `requests` is a valid single-event webhook of `app`. */
function assertValidRequests(requests, app, { batched = false } = {}) {
  assert.ok(requests.length > 0, 'no webhook requests to check');
  for (const r of requests) {
    const where = `request #${r.seq} ${r.path} ${r.rawBody.slice(0, 300)}`;
    assert.equal(r.method, 'POST', where);
    assert.equal(r.contentType, 'application/json', `exact Content-Type: ${where}`);
    assert.equal(r.key, app.key, `X-Pusher-Key: ${where}`);
    assert.match(r.signature ?? '', /^[0-9a-f]{64}$/, `X-Pusher-Signature is lowercase hex HMAC-SHA256: ${where}`);
    assert.equal(r.valid, true, `pusher SDK webhook().isValid(): ${r.validationError} — ${where}`);
    assert.equal(r.validWithWrongSecret, false, `must not validate with another secret: ${where}`);
    assert.deepEqual(r.sdkEvents, r.body.events, `getEvents() is the body's events: ${where}`);
    assert.deepEqual(Object.keys(r.body).sort(), ['events', 'time_ms'], where);
    assert.ok(Number.isInteger(r.body.time_ms), `time_ms is an integer: ${where}`);
    assert.ok(r.body.time_ms <= r.at + 5, `time_ms ${r.body.time_ms} is after the arrival ${r.at}: ${where}`);
    assert.ok(r.at - r.body.time_ms < 5000, `time_ms ${r.body.time_ms} is ${r.at - r.body.time_ms} ms before the arrival: ${where}`);
    if (batched) {
      assert.ok(r.body.events.length >= 1 && r.body.events.length <= MAX_BATCH, `1..${MAX_BATCH} events: ${where}`);
    } else {
      assert.equal(r.body.events.length, 1, `one event per request without batching: ${where}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

describe('webhooks', () => {
  const app = recv.addApp(makeApp({ enable_client_messages: true }));
  const retryApp = recv.addApp(makeApp());
  const batchApp = recv.addApp(makeApp({ enable_webhook_batching: true }));
  const deadApp = recv.addApp(makeApp({ enable_client_messages: true }));
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/all') }, { url: recv.url('/members'), events: ['member_added'] }];
    retryApp.webhooks = [{ url: recv.url('/retry') }];
    batchApp.webhooks = [{ url: recv.url('/batch') }];
    // nothing listens there: every request fails with "connection refused"
    deadApp.webhooks = [{ url: `http://127.0.0.1:${await freePort()}/refused` }];
    return { apps: [app, retryApp, batchApp, deadApp], webhooks: WEBHOOKS };
  });

  test('requests: POST, exact Content-Type, X-Pusher-Key, valid per the SDK, one event each, plausible time_ms', async (t) => {
    const pub = uid('wh-req-');
    const pres = uid('presence-wh-req-');
    const since = recv.mark();
    const a = await rawSubscribed(t, srv.client, app, pub);
    await a.subscribeOk(pres, subscribeExtra(app, a, pres, 'req-user'));
    a.send({ event: 'client-ping', channel: pres, data: { n: 1 } });
    await waitEvent('/all', pres, 'client_event', { since });
    await a.close();
    await waitEvent('/all', pub, 'channel_vacated', { since });
    await waitEvent('/all', pres, 'channel_vacated', { since });

    const mine = recv.requestsFor({ since }).filter((r) => r.body?.events?.some((e) => e.channel === pub || e.channel === pres));
    assertValidRequests(mine, app);
    assert.deepEqual(new Set(mine.map((r) => r.path)), new Set(['/all', '/members']));
    assert.deepEqual(sequence('/all', pub), ['channel_occupied', 'channel_vacated']);
    assertSequence(
      sequence('/all', pres),
      ['channel_occupied', 'member_added req-user'],
      ['client_event', 'member_removed req-user', 'channel_vacated'],
      pres,
    );
    // the delayed leave events carry when they were created, not when they were sent
    for (const ev of recv.events({ path: '/all', channel: pub, since, name: 'channel_vacated' })) {
      assert.ok(ev.request.body.time_ms <= ev.at, `time_ms ${ev.request.body.time_ms} ≤ arrival ${ev.at}`);
    }
  });

  test('channel_occupied once for two subscribers; channel_vacated only once both left, not before leave_delay_ms', async (t) => {
    const ch = uid('wh-occ-');
    const a = await rawSubscribed(t, srv.client, app, ch);
    await waitEvent('/all', ch, 'channel_occupied', { timeout: 3000 });
    const b = await rawSubscribed(t, srv.client, app, ch);

    await a.unsubscribe(ch);
    // b is still subscribed: the channel is not vacated, however long we wait
    await sleep(LEAVE_DELAY_MS + 300);
    assert.deepEqual(sequence('/all', ch), ['channel_occupied'], 'nothing while b is still subscribed');

    const leftAt = Date.now();
    await b.unsubscribe(ch);
    const vacated = await waitEvent('/all', ch, 'channel_vacated');
    assertLeaveTiming(vacated, leftAt, 'channel_vacated');
    await sleep(QUIET_MS);
    assert.deepEqual(sequence('/all', ch), ['channel_occupied', 'channel_vacated']);
  });

  for (const how of ['unsubscribe and resubscribe', 'disconnect and reconnect']) {
    test(`a quick return within the delay (${how}): neither channel_vacated nor a second channel_occupied`, async (t) => {
      const ch = uid('wh-back-');
      let a = await rawSubscribed(t, srv.client, app, ch);
      await waitEvent('/all', ch, 'channel_occupied', { timeout: 3000 });
      if (how === 'unsubscribe and resubscribe') {
        a.send({ event: 'pusher:unsubscribe', data: { channel: ch } });
        await a.subscribeOk(ch);
      } else {
        await a.close();
        a = await rawSubscribed(t, srv.client, app, ch);
      }
      await sleep(LEAVE_DELAY_MS + 300);
      assert.deepEqual(sequence('/all', ch), ['channel_occupied'], 'the quick return cancels the leave');

      // positive control: the real leave is reported (after the delay), and nothing before it
      const leftAt = Date.now();
      await a.close();
      const vacated = await waitEvent('/all', ch, 'channel_vacated');
      assertLeaveTiming(vacated, leftAt, 'channel_vacated');
      await sleep(QUIET_MS);
      assert.deepEqual(sequence('/all', ch), ['channel_occupied', 'channel_vacated']);
    });
  }

  test('presence: a quick rejoin suppresses member_removed / member_added; a real leave gives member_removed then channel_vacated', async (t) => {
    const ch = uid('presence-wh-rejoin-');
    const obs = await rawSubscribed(t, srv.client, app, ch, 'obs');
    const u1 = await rawSubscribed(t, srv.client, app, ch, 'u');
    await waitEvent('/all', ch, 'member_added', { userId: 'u', timeout: 3000 });

    // u drops its connection and is back on a new one at once
    await u1.close();
    const u2 = await rawSubscribed(t, srv.client, app, ch, 'u');
    await sleep(LEAVE_DELAY_MS + 300);
    assertSequence(sequence('/all', ch), ['channel_occupied', 'member_added obs'], ['member_added u'], 'after the quick rejoin');

    // u really leaves
    let leftAt = Date.now();
    await u2.close();
    const removed = await waitEvent('/all', ch, 'member_removed', { userId: 'u' });
    assertLeaveTiming(removed, leftAt, 'member_removed u');

    // the last member leaves: member_removed, then channel_vacated
    leftAt = Date.now();
    await obs.close();
    const vacated = await waitEvent('/all', ch, 'channel_vacated');
    assertLeaveTiming(vacated, leftAt, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(
      sequence('/all', ch),
      ['channel_occupied', 'member_added obs'],
      ['member_added u', 'member_removed u', 'member_removed obs', 'channel_vacated'],
      ch,
    );
  });

  test('member_added / member_removed per user, not per connection', async (t) => {
    const ch = uid('presence-wh-dup-');
    const s1 = await rawSubscribed(t, srv.client, app, ch, 'dup');
    await waitEvent('/all', ch, 'member_added', { userId: 'dup', timeout: 3000 });
    const s2 = await rawSubscribed(t, srv.client, app, ch, 'dup');
    await s1.close();
    // dup is still connected through s2: no member_removed, however long we wait
    await sleep(LEAVE_DELAY_MS + 300);
    assertSequence(sequence('/all', ch), ['channel_occupied', 'member_added dup'], [], 'while s2 is connected');

    const leftAt = Date.now();
    await s2.close();
    const removed = await waitEvent('/all', ch, 'member_removed', { userId: 'dup' });
    assertLeaveTiming(removed, leftAt, 'member_removed dup');
    await waitEvent('/all', ch, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(sequence('/all', ch), ['channel_occupied', 'member_added dup'], ['member_removed dup', 'channel_vacated'], ch);
  });

  test('leaves of one channel are reported in the order they happened, channel_vacated last', async (t) => {
    const ch = uid('presence-wh-order-');
    const users = ['l1', 'l2', 'l3', 'l4', 'l5', 'l6'];
    const sockets = [];
    for (const u of users) sockets.push(await rawSubscribed(t, srv.client, app, ch, u));
    await waitEvent('/all', ch, 'member_added', { userId: 'l6', timeout: 3000 });
    // one after the other: each unsubscribe is processed (a ping round trip after it on the same
    // socket) before the next one is sent, so the leaves have a definite order
    for (const s of sockets) await s.unsubscribe(ch);
    await waitEvent('/all', ch, 'channel_vacated');
    await sleep(QUIET_MS);
    const leaves = recv.events({ path: '/all', channel: ch, delivered: true }).filter((e) => e.name !== 'channel_occupied' && e.name !== 'member_added');
    assert.deepEqual(
      labels(leaves),
      [...users.map((u) => `member_removed ${u}`), 'channel_vacated'],
      `leave webhooks in arrival order (time_ms: ${leaves.map((e) => e.request.body.time_ms).join(', ')})`,
    );
  });

  test('client_event: exact fields (data as on the wire, sender socket_id, user_id on presence only)', async (t) => {
    const priv = uid('private-wh-ce-');
    const pres = uid('presence-wh-ce-');
    const sender = await rawSubscribed(t, srv.client, app, priv);
    await sender.subscribeOk(pres, subscribeExtra(app, sender, pres, 'ce-sender'));
    const receiver = await rawSubscribed(t, srv.client, app, priv);
    await receiver.subscribeOk(pres, subscribeExtra(app, receiver, pres, 'ce-receiver'));
    const since = receiver.mark();

    sender.send({ event: 'client-obj', channel: priv, data: { a: 1, b: 'x' } });
    sender.send({ event: 'client-str', channel: priv, data: 'plain text' });
    sender.send({ event: 'client-pres', channel: pres, data: { hello: true } });
    const wire = {};
    for (const [ev, ch] of [['client-obj', priv], ['client-str', priv], ['client-pres', pres]]) {
      wire[ev] = await receiver.waitFor(isEvent(ev, ch), { since, what: `${ev} relayed` });
    }
    const wireData = (frame) => (typeof frame.json.data === 'string' ? frame.json.data : JSON.stringify(frame.json.data));

    const privEvents = await recv.waitForEvents(
      (evs) => {
        const ces = evs.filter((e) => e.name === 'client_event');
        return ces.length >= 2 && ces;
      },
      { path: '/all', channel: priv, delivered: true, what: 'two client_event on the private channel' },
    );
    assert.deepEqual(privEvents, [
      { name: 'client_event', channel: priv, event: 'client-obj', data: wireData(wire['client-obj']), socket_id: sender.socketId },
      { name: 'client_event', channel: priv, event: 'client-str', data: 'plain text', socket_id: sender.socketId },
    ]);
    assert.equal(typeof privEvents[0].data, 'string', 'data is a string');
    assert.deepEqual(JSON.parse(privEvents[0].data), { a: 1, b: 'x' });

    const presEvent = await waitEvent('/all', pres, 'client_event', { timeout: 3000 });
    assert.deepEqual(presEvent, {
      name: 'client_event',
      channel: pres,
      event: 'client-pres',
      data: wireData(wire['client-pres']),
      socket_id: sender.socketId,
      user_id: 'ce-sender',
    });
    assert.deepEqual(JSON.parse(presEvent.data), { hello: true });
    assertValidRequests(recv.requestsFor({ path: '/all', channel: priv }), app);
  });

  test('refused client events produce no webhook (not subscribed, public channel)', async (t) => {
    const priv = uid('private-wh-refused-');
    const pub = uid('wh-refused-pub-');
    const sender = await connectRaw(t, srv.client, app);
    const other = await rawSubscribed(t, srv.client, app, priv);
    await other.subscribeOk(pub);
    await sender.subscribeOk(pub);

    // on a private channel the sender is not subscribed to
    let since = sender.mark();
    sender.send({ event: 'client-not-subscribed', channel: priv, data: { n: 1 } });
    await sender.waitFor(isPusherError(), { since, what: 'pusher:error for a client event on an unsubscribed channel' });
    // on a public channel
    since = sender.mark();
    sender.send({ event: 'client-public', channel: pub, data: { n: 2 } });
    await sender.waitFor(isPusherError(), { since, what: 'pusher:error for a client event on a public channel' });

    // positive control, same channels: an accepted client event, then both channels vacated
    await sender.subscribeOk(priv, { auth: channelAuth(app, sender.socketId, priv) });
    sender.send({ event: 'client-accepted', channel: priv, data: { n: 3 } });
    await waitEvent('/all', priv, 'client_event', { timeout: 3000 });
    await sender.close();
    await other.close();
    await waitEvent('/all', priv, 'channel_vacated');
    await waitEvent('/all', pub, 'channel_vacated');
    await sleep(QUIET_MS);
    assert.deepEqual(
      recv.events({ path: '/all', channel: priv }).filter((e) => e.name === 'client_event').map((e) => e.event),
      ['client-accepted'],
    );
    assert.deepEqual(sequence('/all', pub), ['channel_occupied', 'channel_vacated'], 'no client_event on the public channel');
  });

  test('events filter: the ["member_added"] URL gets only member_added, the unfiltered one everything', async (t) => {
    const ch = uid('presence-wh-filter-');
    const since = recv.mark();
    const x = await rawSubscribed(t, srv.client, app, ch, 'fx');
    const y = await rawSubscribed(t, srv.client, app, ch, 'fy');
    y.send({ event: 'client-f', channel: ch, data: {} });
    await waitEvent('/members', ch, 'member_added', { userId: 'fy', timeout: 3000 });
    await y.close();
    await waitEvent('/all', ch, 'member_removed', { userId: 'fy' });
    await x.close();
    await waitEvent('/all', ch, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(
      sequence('/all', ch),
      ['channel_occupied', 'member_added fx'],
      ['member_added fy', 'client_event', 'member_removed fy', 'member_removed fx', 'channel_vacated'],
      '/all',
    );
    assert.deepEqual(sequence('/members', ch), ['member_added fx', 'member_added fy'], '/members');
    assertValidRequests(recv.requestsFor({ path: '/members', since }), app);
    // and over everything this file sent to /members so far
    const names = new Set(recv.events({ path: '/members' }).map((e) => e.name));
    assert.deepEqual([...names], ['member_added'], 'the filtered URL only ever got member_added');
  });

  test('retries: two 500s, then the event is delivered (3 requests, same body and Idempotency-Key, jittered backoff); later events of the channel follow in order', async (t) => {
    const ch = uid('presence-wh-retry-');
    const since = recv.mark();
    recv.failNext(2, { path: '/retry', status: 500 });
    const s1 = await rawSubscribed(t, srv.client, retryApp, ch, 'r1');
    const s2 = await rawSubscribed(t, srv.client, retryApp, ch, 'r2');
    await recv.waitForEvents(
      (evs) => evs.some((e) => e.name === 'member_added' && e.user_id === 'r2'),
      { path: '/retry', channel: ch, delivered: true, timeout: 5000, what: 'member_added r2 delivered after the retries' },
    );
    const reqs = recv.requestsFor({ path: '/retry', since });
    assert.ok(reqs.length >= 5, `requests:\n${recv.describe({ path: '/retry', since })}`);
    const [first, second, third] = reqs;
    assert.deepEqual([first.status, second.status, third.status], [500, 500, 200], 'statuses of the first three requests');
    assert.equal(second.rawBody, first.rawBody, 'a retry resends the same body');
    assert.equal(third.rawBody, first.rawBody, 'a retry resends the same body');
    assert.equal(second.signature, first.signature);
    const gap1 = second.at - first.respondedAt;
    const gap2 = third.at - second.respondedAt;
    assert.ok(gap1 >= BACKOFF_MS - SLACK_MS, `first retry ${gap1} ms after the failure (retry_backoff_ms ${BACKOFF_MS})`);
    // decorrelated jitter: the second delay is drawn between retry_backoff_ms and three times the first
    assert.ok(gap2 >= BACKOFF_MS - SLACK_MS, `second retry ${gap2} ms after the failure (at least retry_backoff_ms ${BACKOFF_MS})`);
    assert.ok(gap2 < 3 * BACKOFF_MS + 1500, `second retry took ${gap2} ms`);
    const key = first.headers['idempotency-key'];
    assert.ok(key, 'the request carries an Idempotency-Key');
    assert.ok([second, third].every((r) => r.headers['idempotency-key'] === key), 'the same Idempotency-Key on every retry');
    assert.ok(reqs.slice(3).every((r) => r.headers['idempotency-key'] !== key), 'later events have keys of their own');
    for (const later of reqs.slice(3)) {
      assert.ok(later.seq > third.seq && later.at >= third.respondedAt, `request #${later.seq} was sent before the retried event was delivered`);
    }
    assertValidRequests(reqs, retryApp);

    // nothing lost, nothing duplicated, in order
    await s2.close();
    await waitEvent('/retry', ch, 'member_removed', { userId: 'r2' });
    await s1.close();
    await waitEvent('/retry', ch, 'channel_vacated');
    await sleep(QUIET_MS);
    assertSequence(
      sequence('/retry', ch),
      ['channel_occupied', 'member_added r1'],
      ['member_added r2', 'member_removed r2', 'member_removed r1', 'channel_vacated'],
      ch,
    );

    // metrics (summed over nodes: the node that decided an event sends it)
    const isApp = (l) => l.app_id === retryApp.id;
    await eventually(async () => {
      const samples = await scrapeAll(srv.nodes);
      assert.equal(metricSum(samples, 'ferrocast_webhook_retries_total', isApp), 2, 'ferrocast_webhook_retries_total');
      const ok = recv.requestsFor({ path: '/retry', delivered: true }).length;
      assert.equal(metricSum(samples, 'ferrocast_webhook_deliveries_total', isApp), ok, 'deliveries_total = 2xx requests');
      for (const name of ['channel_occupied', 'member_added', 'member_removed', 'channel_vacated']) {
        const n = recv.events({ path: '/retry', delivered: true, name }).length;
        assert.equal(
          metricSum(samples, 'ferrocast_webhook_events_total', (l) => isApp(l) && l.event === name),
          n,
          `ferrocast_webhook_events_total{event="${name}"}`,
        );
      }
      assert.equal(metricSum(samples, 'ferrocast_webhook_queue_depth', isApp), 0, 'queue drained');
      assert.equal(metricSum(samples, 'ferrocast_webhook_failures_total', isApp), 0, 'no failures');
      assert.ok(
        metricSum(samples, 'ferrocast_webhook_request_duration_seconds_count') >= reqs.length,
        'request duration histogram counts the requests',
      );
    }, 3000, 100);
  });

  test('batching: events queued while a request fails go out together (≤ max_batch_size, in order, valid)', async (t) => {
    const ch = uid('presence-wh-batch-');
    const since = recv.mark();
    const held = recv.hold({ path: '/batch' });
    const first = await rawSubscribed(t, srv.client, batchApp, ch, 'b0');
    await held.waitHeld(1, 3000);
    // the first request is in flight (held): everything from now on queues in the same lane
    const beforeB1 = Date.now();
    const joiners = [];
    let afterB1;
    for (let i = 1; i <= 6; i += 1) {
      joiners.push(await rawSubscribed(t, srv.client, batchApp, ch, `b${i}`));
      if (i === 1) afterB1 = Date.now();
    }
    await sleep(100);
    assert.equal(recv.requestsFor({ path: '/batch', since }).length, 1, 'one request at a time per lane');
    const releasedAt = Date.now();
    held.release(500); // fails: retried after the backoff, then the queued events follow
    await recv.waitForEvents(
      (evs) => evs.some((e) => e.name === 'member_added' && e.user_id === 'b6'),
      { path: '/batch', channel: ch, delivered: true, timeout: 5000, what: 'member_added b6' },
    );
    const reqs = recv.requestsFor({ path: '/batch', since });
    assertValidRequests(reqs, batchApp, { batched: true });
    assert.equal(reqs[0].status, 500);
    assert.equal(reqs[1].rawBody, reqs[0].rawBody, 'the retry resends the same batch');
    const delivered = reqs.filter((r) => r.status === 200);
    const sizes = delivered.map((r) => r.body.events.length);
    assert.ok(sizes.some((n) => n === MAX_BATCH), `a request with ${MAX_BATCH} events (max_batch_size); sizes ${JSON.stringify(sizes)}`);
    assert.ok(delivered.length <= 4, `7–8 events in at most 4 requests; sizes ${JSON.stringify(sizes)}`);
    assertSequence(
      sequence('/batch', ch),
      ['channel_occupied', 'member_added b0'],
      ['b1', 'b2', 'b3', 'b4', 'b5', 'b6'].map((u) => `member_added ${u}`),
      ch,
    );
    // time_ms of a batch is its first event's creation time
    const withB1 = delivered.find((r) => r.body.events.some((e) => e.user_id === 'b1'));
    if (withB1.body.events[0].user_id === 'b1') {
      assert.ok(
        withB1.body.time_ms >= beforeB1 - 5 && withB1.body.time_ms < releasedAt,
        `time_ms ${withB1.body.time_ms} is when member_added b1 (its first event) happened (joined ${beforeB1}..${afterB1}), not when sent (after ${releasedAt})`,
      );
    } else {
      assert.ok(withB1.body.time_ms <= beforeB1 + 5, `time_ms ${withB1.body.time_ms} is its first event's, from before b1 joined (${beforeB1})`);
    }
    for (const j of joiners) await j.close();
    await first.close();
    await waitEvent('/batch', ch, 'channel_vacated');
  });

  test('an unreachable webhook URL does not affect clients: subscribe, client events and REST publish still work', async (t) => {
    const ch = uid('presence-wh-dead-');
    const a = await rawSubscribed(t, srv.client, deadApp, ch, 'd1');
    const b = await rawSubscribed(t, srv.client, deadApp, ch, 'd2');
    const since = b.mark();
    await trigger(srv.rest, deadApp, ch, 'news', { n: 1 });
    await b.waitFor(isEvent('news', ch), { since });
    a.send({ event: 'client-x', channel: ch, data: { n: 2 } });
    await b.waitFor(isEvent('client-x', ch), { since });
    // the node keeps trying in the background
    await eventually(async () => {
      const samples = await scrapeAll(srv.nodes);
      assert.ok(metricSum(samples, 'ferrocast_webhook_retries_total', (l) => l.app_id === deadApp.id) >= 1, 'retries_total ≥ 1');
    }, 3000, 100);
    await a.close();
    const c = await rawSubscribed(t, srv.client, deadApp, ch, 'd3');
    const cSince = c.mark();
    await trigger(srv.rest, deadApp, ch, 'news', { n: 3 });
    await c.waitFor(isEvent('news', ch), { since: cSince });
    await b.waitFor(isEvent('news', ch), { since });
  });
});

describe('webhooks: retry window (retry_window_s = 1)', () => {
  const app = recv.addApp(makeApp());
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/expire') }];
    return {
      single: true,
      apps: [app],
      webhooks: { leave_delay_ms: LEAVE_DELAY_MS, retry_backoff_ms: 100, retry_window_s: 1, flush_timeout_s: 1 },
    };
  });

  test('an endpoint that always fails: the event is abandoned (failures_total{reason="expired"}) and the node keeps serving', async (t) => {
    const rule = recv.always(500, { path: '/expire' });
    t.after(() => rule.cancel());
    const ch = uid('wh-expire-');
    const startedAt = Date.now();
    await rawSubscribed(t, srv.client, app, ch);
    const isApp = (l) => l.app_id === app.id;
    await eventually(async () => {
      const samples = await scrapeAll(srv.nodes);
      assert.ok(
        metricSum(samples, 'ferrocast_webhook_failures_total', (l) => isApp(l) && l.reason === 'expired') >= 1,
        'ferrocast_webhook_failures_total{reason="expired"} ≥ 1',
      );
    }, 4000, 100);
    const tookMs = Date.now() - startedAt;
    const reqs = recv.requestsFor({ path: '/expire', channel: ch });
    assert.ok(reqs.length >= 2, `retried before giving up:\n${recv.describe({ path: '/expire' })}`);
    assert.ok(reqs.every((r) => r.rawBody === reqs[0].rawBody), 'the same webhook each time');
    const created = reqs[0].body.time_ms;
    for (const r of reqs) {
      assert.ok(r.at <= created + 1000 + 200, `request #${r.seq} ${r.at - created} ms after creation, past retry_window_s = 1`);
    }
    assert.ok(tookMs < 3500, `abandoned after ${tookMs} ms`);
    // no further attempts
    const count = recv.requestsFor({ path: '/expire', channel: ch }).length;
    await sleep(2 * QUIET_MS);
    assert.equal(recv.requestsFor({ path: '/expire', channel: ch }).length, count, 'no attempt after abandoning');
    const samples = await scrapeAll(srv.nodes);
    assert.equal(metricSum(samples, 'ferrocast_webhook_queue_depth', isApp), 0);
    assert.equal(metricSum(samples, 'ferrocast_webhook_deliveries_total', isApp), 0);

    // the node still serves
    rule.cancel();
    const fresh = uid('wh-expire-fresh-');
    const c = await rawSubscribed(t, srv.client, app, fresh);
    const since = c.mark();
    await trigger(srv.rest, app, fresh, 'still-here', {});
    await c.waitFor(isEvent('still-here', fresh), { since });
  });
});

describe('webhooks at shutdown (SIGTERM)', () => {
  test('a client subscribed at SIGTERM: its member_removed and channel_vacated arrive before the process exits with 0', async (t) => {
    const app = recv.addApp(makeApp());
    app.webhooks = [{ url: recv.url('/flush') }];
    const cluster = await startCluster(1, {
      apps: [app],
      server: { shutdown_grace_s: 1 },
      webhooks: { leave_delay_ms: LEAVE_DELAY_MS, retry_backoff_ms: BACKOFF_MS, flush_timeout_s: 5 },
    });
    const node = cluster.client;
    t.after(async () => {
      if (state.failed || process.env.FERROCAST_CONFORMANCE_LOGS === '1') console.error(cluster.logs());
      await cluster.stop();
    });
    try {
      const pub = uid('wh-flush-');
      const pres = uid('presence-wh-flush-');
      const c = await rawSubscribed(t, node, app, pub);
      await c.subscribeOk(pres, subscribeExtra(app, c, pres, 'staying'));
      await waitEvent('/flush', pres, 'member_added', { userId: 'staying', timeout: 3000 });
      await waitEvent('/flush', pub, 'channel_occupied', { timeout: 3000 });

      const proc = node.proc;
      let exitedAt;
      const exited = proc.exited.then((s) => {
        exitedAt = Date.now();
        return s;
      });
      const termAt = Date.now();
      proc.child.kill('SIGTERM');
      const close = await c.waitClose(5000);
      assert.equal(close.code, 4200, 'drained with 4200');
      const status = await Promise.race([exited, sleep(15_000).then(() => 'timeout')]);
      assert.notEqual(status, 'timeout', 'ferrocast did not exit within 15 s of SIGTERM');
      assert.equal(status.exitCode, 0, `exit code (signal ${status.signal})`);

      for (const [ch, name, userId] of [
        [pres, 'member_removed', 'staying'],
        [pres, 'channel_vacated'],
        [pub, 'channel_vacated'],
      ]) {
        const ev = recv.events({ path: '/flush', channel: ch, name, delivered: true }).find((e) => userId === undefined || e.user_id === userId);
        assert.ok(ev, `${name} ${ch} received before exit (${exitedAt - termAt} ms after SIGTERM); requests:\n${recv.describe({ path: '/flush' })}`);
        assert.ok(ev.request.respondedAt <= exitedAt, `${name} answered before the exit`);
      }
      assertSequence(
        sequence('/flush', pres),
        ['channel_occupied', 'member_added staying'],
        ['member_removed staying', 'channel_vacated'],
        pres,
      );
      assert.deepEqual(sequence('/flush', pub), ['channel_occupied', 'channel_vacated']);
    } catch (err) {
      state.failed = true;
      throw err;
    }
  });
});

test('every webhook request this file received is valid per the pusher SDK', () => {
  assert.ok(recv.requests.length > 0);
  for (const r of recv.requests) {
    assert.equal(r.valid, true, `#${r.seq} ${r.path}: ${r.validationError} ${r.rawBody.slice(0, 300)}`);
    assert.equal(r.contentType, 'application/json');
  }
});
