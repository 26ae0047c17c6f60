// Durable webhooks: jobs live in the cluster's queue (Redis Streams with two nodes, in process
// on one node) until the endpoint answers 2xx. Every request carries an `Idempotency-Key`
// that stays the same across retries, takeovers and replays.
//
// - crash: a receiver is down while events happen on node B, B is SIGKILLed, the receiver comes
//   up: node A delivers every event, and every event only ever under one key (always two nodes
//   on a private Redis, like webhooks-cluster.test.mjs);
// - dead letters: an endpoint that always answers 500 gets the job moved to the dead letters
//   (retry_window_s = 1), listed and replayed through the signed admin endpoints;
// - cap: a lane at its cap refuses new events, counted as failures_total{reason="queue_full"}.
// The last two run on the suite's topology (memory backplane in `npm test`, two nodes on Redis
// in `npm run test:cluster`).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { rawSubscribed } from './lib/raw.mjs';
import { signedFetch } from './lib/rest.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';
import { WebhookReceiver, useWebhookReceiver } from './lib/webhooks.mjs';

const NODE_TTL_S = 2;
const recv = useWebhookReceiver();

async function scrape(nodes) {
  const samples = [];
  for (const node of nodes) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `GET /metrics on ${node.name}`);
    for (const s of parseMetrics(await res.text())) samples.push({ ...s, node: node.name });
  }
  return samples;
}

const sum = (samples, name, pred = () => true) =>
  samples.filter((s) => s.name === name && pred(s.labels)).reduce((acc, s) => acc + s.value, 0);

/** Every event of `requests` with its request's idempotency key and answer. */
function keyedEvents(receiver, filter) {
  return receiver.events(filter).map((ev) => ({ ev, key: ev.request.headers['idempotency-key'], status: ev.request.status }));
}

// ---------------------------------------------------------------------------------------------

describe('a node crashes with undelivered webhooks: another node delivers them', () => {
  const down = new WebhookReceiver();
  after(() => down.stop());
  const app = makeApp();
  const srv = useServer(async () => {
    await down.start();
    down.addApp(app);
    app.webhooks = [{ url: down.url('/durable') }];
    await down.stop();
    return {
      nodes: 2,
      backplane: { driver: 'redis', node_ttl_s: NODE_TTL_S },
      server: { shutdown_grace_s: 1 },
      webhooks: { retry_backoff_ms: 100, retry_window_s: 120, timeout_ms: 1000, flush_timeout_s: 1, leave_delay_ms: 200 },
      apps: [app],
    };
  });

  test('receiver down, events on B, B SIGKILLed, receiver up: A sends each event, each under one key', async (t) => {
    const [A, B] = srv.nodes;
    const port = new URL(app.webhooks[0].url).port;
    // B alone holds the lanes while the events happen: A drains (releasing its leases) and
    // comes back only once B has claimed them.
    await A.stop();
    const channels = [1, 2, 3, 4, 5, 6].map((i) => uid(`whd-crash-${i}-`));
    for (const ch of channels) await rawSubscribed(t, B, app, ch);
    await sleep(500); // B claims the lanes and its first attempts fail (receiver down)
    await A.start();
    await B.kill();
    await down.start({ port: Number(port) });

    await down.waitForEvents(
      (evs) => channels.every((ch) => evs.some((e) => e.channel === ch && e.name === 'channel_occupied' && e.request.status === 200)),
      { timeout: 20_000 },
    );
    for (const ch of channels) {
      const seen = keyedEvents(down, { channel: ch }).filter(({ ev }) => ev.name === 'channel_occupied');
      const keys = new Set(seen.map((s) => s.key));
      assert.equal(keys.size, 1, `${ch}: channel_occupied sent under one Idempotency-Key, got ${[...keys]}`);
      assert.ok([...keys][0], `${ch}: the request carries an Idempotency-Key`);
    }
    const allKeys = channels.map((ch) => keyedEvents(down, { channel: ch }).find(({ ev }) => ev.name === 'channel_occupied').key);
    assert.equal(new Set(allKeys).size, channels.length, 'one key per event');
    for (const r of down.requests) assert.equal(r.valid, true, `#${r.seq}: ${r.validationError}`);

    // A reaps B (node_ttl_s after the kill) and decides B's channel_vacated: delivered through
    // the same queue, each under one key. Waited for here, not only an empty queue (which A may
    // report before the reap): left over, they would sit at the head of the lanes that the next
    // test's always-500 endpoint keeps retrying.
    await down.waitForEvents(
      (evs) => channels.every((ch) => evs.some((e) => e.channel === ch && e.name === 'channel_vacated' && e.request.status === 200)),
      { timeout: 20_000, what: "B's channel_vacated, decided by A's reap of B" },
    );
    for (const ch of channels) {
      const keys = new Set(keyedEvents(down, { channel: ch }).filter(({ ev }) => ev.name === 'channel_vacated').map((s) => s.key));
      assert.equal(keys.size, 1, `${ch}: channel_vacated sent under one Idempotency-Key, got ${[...keys]}`);
    }
    // A says it took lanes over; its queue drains.
    await eventually(async () => {
      const samples = await scrape([A]);
      assert.ok(sum(samples, 'ferrocast_webhook_takeovers_total', (l) => l.app_id === app.id) >= 1, 'takeovers_total ≥ 1 on A');
      assert.equal(sum(samples, 'ferrocast_webhook_queue_depth', (l) => l.app_id === app.id), 0, 'queue drained');
    }, 15_000, 200);
  });

  test('a draining node releases its lanes: the other node sends its failing webhooks, with the same keys', async (t) => {
    const [A, B] = srv.nodes;
    await B.start(); // back after the crash above (same node_id); A holds every lane now
    const failing = down.always(500);
    t.after(() => failing.cancel());
    const channels = [1, 2, 3].map((i) => uid(`whd-drain-${i}-`));
    for (const ch of channels) await rawSubscribed(t, A, app, ch);
    // A is retrying (channels sharing a lane wait behind the first one's failing request)
    await down.waitForEvents((evs) => evs.filter((e) => channels.includes(e.channel) && e.request.status === 500).length >= 2, {
      timeout: 5000,
      what: 'failed attempts from A',
    });
    const keys = new Map();
    for (const { ev, key } of keyedEvents(down, {})) if (channels.includes(ev.channel)) keys.set(ev.channel, key);
    assert.ok(keys.size >= 1);
    const exited = A.proc.exited;
    await A.stop();
    const status = await exited;
    assert.equal(status.exitCode, 0, `A drained and exited by itself (signal ${status.signal})`);
    failing.cancel();

    await down.waitForEvents(
      (evs) => channels.every((ch) => evs.some((e) => e.channel === ch && e.name === 'channel_occupied' && e.request.status === 200)),
      { timeout: 20_000, what: 'channel_occupied delivered by B' },
    );
    for (const ch of channels) {
      const seen = new Set(keyedEvents(down, { channel: ch }).filter(({ ev }) => ev.name === 'channel_occupied').map((s) => s.key));
      assert.equal(seen.size, 1, `${ch}: one Idempotency-Key across A's attempts and B's, got ${[...seen]}`);
      if (keys.has(ch)) assert.deepEqual([...seen], [keys.get(ch)], `${ch}: B sent A's request under A's key`);
    }
    const samples = await scrape([B]);
    assert.ok(sum(samples, 'ferrocast_webhook_takeovers_total', (l) => l.app_id === app.id) >= 1, 'B took the lanes over');
  });
});

// ---------------------------------------------------------------------------------------------

describe('dead letters and the queue cap', () => {
  const dead = recv.addApp(makeApp());
  const full = recv.addApp(makeApp());
  const srv = useServer(async () => {
    dead.webhooks = [{ url: recv.url('/dead') }];
    full.webhooks = [{ url: recv.url('/full') }];
    return {
      apps: [dead, full],
      webhooks: { retry_backoff_ms: 100, retry_window_s: 1, timeout_ms: 1000, queue_capacity: 4, flush_timeout_s: 1 },
    };
  });

  test('an endpoint that always answers 500: the job ends in the dead letters, and a replay delivers it with its key', async (t) => {
    const rule = recv.always(500, { path: '/dead' });
    t.after(() => rule.cancel());
    const ch = uid('whd-dead-');
    await rawSubscribed(t, srv.client, dead, ch);
    const isApp = (l) => l.app_id === dead.id;

    let letter;
    await eventually(async () => {
      const res = await signedFetch(srv.rest, dead, { method: 'GET', path: '/webhooks/dead_letters' });
      assert.equal(res.status, 200, res.text);
      letter = res.json.dead_letters.find((d) => d.event.channel === ch);
      assert.ok(letter, `dead letter for ${ch}: ${res.text}`);
    }, 8000, 200);
    assert.equal(letter.event.name, 'channel_occupied');
    assert.equal(letter.reason, 'expired');
    assert.equal(letter.url, recv.url('/dead'));
    const failed = recv.requestsFor({ path: '/dead', channel: ch });
    assert.ok(failed.length >= 2, 'retried before giving up');
    for (const r of failed) assert.equal(r.headers['idempotency-key'], letter.idempotency_key, 'same key on every attempt');
    await eventually(async () => {
      const samples = await scrape(srv.nodes);
      assert.ok(sum(samples, 'ferrocast_webhook_dead_letters_total', isApp) >= 1, 'dead_letters_total ≥ 1');
      assert.ok(sum(samples, 'ferrocast_webhook_dead_letter_depth', isApp) >= 1, 'dead_letter_depth ≥ 1');
    }, 3000, 100);

    // unsigned: refused
    const unsigned = await fetch(`${srv.rest.httpUrl}/apps/${dead.id}/webhooks/dead_letters`);
    assert.equal(unsigned.status, 401);

    rule.cancel();
    const since = recv.mark();
    const res = await signedFetch(srv.rest, dead, { path: '/webhooks/dead_letters/replay', body: { ids: [letter.id] } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { replayed: 1, refused: 0 });
    await recv.waitForEvents((evs) => evs.some((e) => e.channel === ch && e.request.seq > since && e.request.status === 200), {
      path: '/dead',
      timeout: 5000,
    });
    const replayed = recv.requestsFor({ path: '/dead', channel: ch, since, delivered: true });
    assert.equal(replayed.length, 1, 'delivered once');
    assert.equal(replayed[0].headers['idempotency-key'], letter.idempotency_key, 'replayed under its original key');
    const after = await signedFetch(srv.rest, dead, { method: 'GET', path: '/webhooks/dead_letters' });
    assert.equal(after.json.dead_letters.filter((d) => d.event.channel === ch).length, 0, 'no longer a dead letter');
  });

  test('a lane at its cap refuses new events: counted as failures_total{reason="queue_full"}', async (t) => {
    // queue_capacity = 4 → 1 job per lane: while the first event of a channel is in flight
    // (held), the channel's next event is refused.
    const held = recv.hold({ path: '/full', count: 1 });
    t.after(() => held.release(200));
    const ch = uid('presence-whd-full-');
    await rawSubscribed(t, srv.client, full, ch, 'u1');
    await held.waitHeld(1, 5000);
    await rawSubscribed(t, srv.client, full, ch, 'u2');
    await eventually(async () => {
      const samples = await scrape(srv.nodes);
      assert.ok(
        sum(samples, 'ferrocast_webhook_failures_total', (l) => l.app_id === full.id && l.reason === 'queue_full') >= 1,
        'failures_total{reason="queue_full"} ≥ 1',
      );
    }, 5000, 100);
    held.release(200);
    await recv.waitForEvents((evs) => evs.some((e) => e.channel === ch && e.name === 'channel_occupied' && e.request.status === 200), {
      path: '/full',
      timeout: 5000,
    });
  });
});
