// Subscription counts across two real nodes on a private Redis (always, whatever
// FERROCAST_CONFORMANCE_NODES says, like cluster.test.mjs): subscribers split over both nodes
// see the summed count, and each update is published once cluster-wide.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkGetJSON, serverSdk } from './lib/clients.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';

const app = makeApp({ enable_subscription_count: true });
const srv = useServer({ nodes: 2, backplane: { driver: 'redis' }, apps: [app] });

const lastCount = (c, channel) => c.eventsFor(channel, 'pusher:subscription_count').at(-1)?.data?.subscription_count;

async function updatesPublished() {
  let total = 0;
  for (const node of srv.nodes) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    for (const s of parseMetrics(await res.text())) {
      if (s.name === 'ferrocast_subscription_count_updates_total' && s.labels.app_id === app.id) total += s.value;
    }
  }
  return total;
}

describe('two nodes on one Redis', () => {
  test('subscribers split over both nodes see the summed count', async (t) => {
    const [A, B] = srv.nodes;
    const channel = uid('split-');
    const clients = [];
    for (const node of [A, B, A, B]) {
      const c = await connectPusher(t, node, app);
      await c.subscribe(channel);
      clients.push(c);
    }
    for (const c of clients) await c.until(() => lastCount(c, channel) === 4, 5000, 'count 4 on every node');
    for (const node of [A, B]) {
      assert.deepEqual(await sdkGetJSON(serverSdk(node, app), `/channels/${channel}`, { info: 'subscription_count' }), {
        occupied: true,
        subscription_count: 4,
      });
    }
    clients[1].pusher.unsubscribe(channel);
    for (const c of [clients[0], clients[2], clients[3]]) {
      await c.until(() => lastCount(c, channel) === 3, 5000, 'count 3 after an unsubscribe on node B');
    }
  });

  test('each update is published once cluster-wide, whichever node changed', async (t) => {
    const [A, B] = srv.nodes;
    const channel = uid('once-');
    const observer = await connectPusher(t, A, app);
    await observer.subscribe(channel);
    await observer.until(() => lastCount(observer, channel) === 1, 5000, 'count 1');
    await sleep(1500);
    const before = await updatesPublished();
    const seen = observer.eventsFor(channel, 'pusher:subscription_count').length;
    // Both nodes change the count at once: one claim, one update.
    const [a, b] = await Promise.all([connectPusher(t, A, app), connectPusher(t, B, app)]);
    await Promise.all([a.subscribe(channel), b.subscribe(channel)]);
    await observer.until(() => lastCount(observer, channel) === 3, 5000, 'count 3');
    await sleep(1500);
    const frames = observer.eventsFor(channel, 'pusher:subscription_count').slice(seen);
    assert.ok(frames.length <= 2, `${frames.length} updates for two simultaneous subscribes`);
    await eventually(async () => assert.equal(await updatesPublished() - before, frames.length, 'one publish per update'));
  });

  // Last: it stops node B.
  test('a draining node publishes the counts its closed connections changed before it exits', async (t) => {
    const [A, B] = srv.nodes;
    const channel = uid('drain-');
    const onA = [];
    for (const node of [A, A, B, B]) {
      const c = await connectPusher(t, node, app, { pusherOptions: { activityTimeout: 60_000 } });
      await c.subscribe(channel);
      if (node === A) onA.push(c);
    }
    for (const c of onA) await c.until(() => lastCount(c, channel) === 4, 5000, 'count 4');
    await B.stop();
    // Node B's sockets closed while draining; node A's subscribers hear the new count.
    for (const c of onA) await c.until(() => lastCount(c, channel) === 2, 5000, 'count 2 after node B drained');
  });
});
