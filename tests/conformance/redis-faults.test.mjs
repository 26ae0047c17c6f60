// Nothing lost through Redis faults (issue 11): two nodes on a private Redis, a pusher-js
// subscriber on node A, numbered events triggered through node B at 200/s with the `pusher` SDK
// (requests overlap, as with a busy app server). While Redis is SIGKILLed and restarted, SIGSTOPped,
// or node B is SIGKILLed and restarted, every event B answered 200 must reach the subscriber exactly
// once, and in publish order: an event acknowledged before another was sent arrives before it.
// Events answered otherwise (503 while B is not joined, errors) are the publisher's to retry: they
// may arrive (a timed-out publish can still have happened) but at most once and in order.
// Always two nodes on their own Redis, whatever FERROCAST_CONFORMANCE_NODES says.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { killPubsubOf } from './lib/redis.mjs';
import { signedFetch } from './lib/rest.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { metric } from './hostile/lib.mjs';
import { sleep, uid, waitFor } from './lib/util.mjs';

const REDIS = { driver: 'redis' };
const EVENT = 'numbered';
const EVERY_MS = 5; // 200 events/s
const MAX_IN_FLIGHT = 3000;

/** Triggers numbered events on one channel through one node, without waiting for answers. */
class Publisher {
  constructor(node, app, channel) {
    this.sdk = serverSdk(node, app);
    this.channel = channel;
    this.records = []; // {n, sentAt, ackAt, status, error}
    this.inFlight = new Set();
    this.timer = undefined;
  }

  start() {
    this.timer = setInterval(() => {
      if (this.inFlight.size < MAX_IN_FLIGHT) this.send();
    }, EVERY_MS);
  }

  send() {
    const record = { n: this.records.length + 1, sentAt: Date.now() };
    this.records.push(record);
    const done = sdkResult(() => this.sdk.trigger(this.channel, EVENT, { n: record.n }))
      .then(
        (res) => (record.status = res.status),
        (err) => (record.error = String(err?.message ?? err)),
      )
      .finally(() => {
        record.ackAt = Date.now();
        this.inFlight.delete(done);
      });
    this.inFlight.add(done);
  }

  async stop() {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
  }

  get accepted() {
    return this.records.filter((r) => r.status === 200);
  }

  get refused() {
    return this.records.filter((r) => r.status !== 200);
  }
}

/**
 * Runs the publisher around `fault`, then checks what the subscriber got. Returns the publisher
 * and the received numbers for scenario-specific checks.
 */
async function publishThrough(t, { srv, app, fault }) {
  const [A, B] = srv.nodes;
  const channel = uid('faults-');
  const sub = await connectPusher(t, A, app);
  await sub.subscribe(channel);
  const publisher = new Publisher(B, app, channel);
  publisher.start();
  await sleep(1000);
  await fault({ A, B, redis: srv.redis, publisher });
  // Traffic after the fault, until B accepts again for a while.
  await waitFor(() => publisher.records.slice(-50).every((r) => r.status === 200), 30_000, {
    interval: 100,
    message: 'node B accepting publishes again after the fault',
  });
  await sleep(500);
  await publisher.stop();
  const accepted = publisher.accepted;
  assert.ok(accepted.length > 0);
  const last = accepted[accepted.length - 1].n;
  await sub.waitEvent(channel, EVENT, (e) => e.data?.n === last, 15_000);
  await sleep(300); // stragglers (duplicates would show up here)
  const states = sub.states.filter((s) => s !== 'connected');
  assert.deepEqual(states, [], `the subscriber stayed connected (state changes: ${sub.states.join(' → ')})`);
  const received = sub.eventsFor(channel, EVENT).map((e) => e.data.n);
  checkDelivery(publisher, received);
  return { publisher, received };
}

/** Exactly once for every 200, at most once for the rest, and in publish order. */
function checkDelivery(publisher, received) {
  const seen = new Map();
  for (const n of received) seen.set(n, (seen.get(n) ?? 0) + 1);
  const duplicates = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  const lost = publisher.accepted.filter((r) => !seen.has(r.n)).map((r) => r.n);
  const summary = `${publisher.records.length} sent, ${publisher.accepted.length} answered 200, ${publisher.refused.length} not (${[
    ...new Set(publisher.refused.map((r) => r.status ?? r.error)),
  ].join(', ')}), ${received.length} received`;
  assert.deepEqual(lost, [], `events answered 200 but never delivered (${summary})`);
  assert.deepEqual(duplicates, [], `events delivered twice (${summary})`);
  // Order: if m was acknowledged before n was sent, m must arrive before n.
  const byN = new Map(publisher.records.map((r) => [r.n, r]));
  const position = new Map(received.map((n, i) => [n, i]));
  const inversions = [];
  for (const m of publisher.records) {
    if (!position.has(m.n)) continue;
    for (const n of publisher.records) {
      if (n.sentAt > m.ackAt && position.has(n.n) && position.get(n.n) < position.get(m.n)) {
        inversions.push(`${n.n} before ${m.n}`);
      }
    }
  }
  assert.deepEqual(inversions.slice(0, 10), [], `events out of publish order (${summary})`);
  assert.ok(byN.size === publisher.records.length);
}

async function waitReady(node, timeoutMs = 20_000) {
  await waitFor(async () => (await node.probe('/readyz')) === 200, timeoutMs, {
    interval: 50,
    message: `${node.name} /readyz 200`,
  });
}

describe('events through Redis faults: every 200 delivered once, in order', () => {
  const app = makeApp({ max_backend_events_per_second: 0 });
  const srv = useServer({ nodes: 2, backplane: REDIS, apps: [app] });

  test('a node that is not joined answers 503 (Retry-After), never 200', async () => {
    const [, B] = srv.nodes;
    srv.redis.pause();
    try {
      await waitFor(async () => (await B.probe('/readyz')) === 503, 10_000, { interval: 50, message: 'B /readyz 503' });
      const res = await sdkResult(() => serverSdk(B, app).trigger(uid('refused-'), EVENT, { n: 0 }));
      assert.equal(res.status, 503, res.body);
      assert.match(res.body, /not joined to the cluster/);
      const batch = await signedFetch(B, app, {
        path: '/batch_events',
        body: { batch: [{ name: EVENT, channel: uid('refused-'), data: '{}' }] },
      });
      assert.equal(batch.status, 503, batch.text);
      assert.equal(batch.headers.get('retry-after'), '1');
    } finally {
      srv.redis.resume();
    }
    await waitReady(B);
  });

  test("node A's pub/sub connection killed: what was published meanwhile is replayed from the log", async (t) => {
    const [A] = srv.nodes;
    const before = await metric(A, 'ferrocast_backplane_replayed_total');
    const { received } = await publishThrough(t, {
      srv,
      app,
      fault: async ({ redis, A: nodeA, publisher }) => {
        // Only node A's pub/sub connection: A resubscribes after its reconnect backoff (at least
        // 100 ms) while B stays joined and accepts publishes, so without the log these are lost.
        assert.equal(await killPubsubOf(redis, nodeA.proc.child.pid), 1, "node A's pub/sub connection killed");
        for (let i = 0; i < 20; i += 1) publisher.send();
      },
    });
    assert.ok(received.length > 0);
    assert.ok((await metric(A, 'ferrocast_backplane_replayed_total')) > before, 'node A replayed from the logs');
  });

  test('Redis SIGSTOPped for 5 s', async (t) => {
    await publishThrough(t, {
      srv,
      app,
      fault: async ({ redis }) => {
        redis.pause();
        try {
          await sleep(5000);
        } finally {
          redis.resume();
        }
      },
    });
  });

  test('Redis SIGKILLed, down 5 s, restarted (empty)', async (t) => {
    const { publisher } = await publishThrough(t, {
      srv,
      app,
      fault: async ({ redis, A, B }) => {
        await redis.restart({ crash: true, whileDown: () => sleep(5000) });
        await Promise.all([waitReady(A), waitReady(B)]);
      },
    });
    assert.ok(
      publisher.refused.some((r) => r.status === 503),
      'publishes while Redis was down were refused with 503',
    );
  });

  test('node B (the publisher’s) SIGKILLed and restarted', async (t) => {
    await publishThrough(t, {
      srv,
      app,
      fault: async ({ B }) => {
        await B.kill();
        await sleep(1000);
        await B.start();
        await waitReady(B);
      },
    });
  });
});
