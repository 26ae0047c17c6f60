// Subscription counts (reference §3.7, §9.6, §10.3): for apps with enable_subscription_count,
// subscribers of non-presence channels get `pusher_internal:subscription_count` (pusher-js emits
// `pusher:subscription_count` and sets `channel.subscriptionCount`), coalesced: the first change
// after a quiet period is published after ~100 ms, then at most one update per channel per 1 s
// (5 s above 100 subscribers) while subscriptions keep changing, cluster-wide. The same toggle
// drives the `subscription_count` webhook and the `subscription_count` info attribute.
//
// Topology-independent: with FERROCAST_CONFORMANCE_NODES=2 clients are on node A and REST on
// node B. subscription-count-cluster.test.mjs always splits subscribers over two nodes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { connectRaw, isEvent } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';
import { useWebhookReceiver } from './lib/webhooks.mjs';

const COUNT_EVENT = 'pusher_internal:subscription_count';
/** The server's coalescing interval for channels up to 100 subscribers (docs/configuration.md). */
const INTERVAL_MS = 1000;
/** Longer than the first-update delay (100 ms) plus one interval: nothing more is due after it. */
const QUIET_MS = INTERVAL_MS + 500;

const recv = useWebhookReceiver();
const app = recv.addApp(makeApp({ enable_subscription_count: true }));
const plain = makeApp({});
// Started inside the top-level describe, so after the webhook receiver (whose URL it needs).
let srv;

/** The last count pusher-js reported on `channel` for client `c`. */
const lastCount = (c, channel) => c.eventsFor(channel, 'pusher:subscription_count').at(-1)?.data?.subscription_count;

async function subscribedClients(t, a, channel, n) {
  const clients = [];
  for (let i = 0; i < n; i++) {
    const c = await connectPusher(t, srv.client, a);
    await c.subscribe(channel);
    clients.push(c);
  }
  return clients;
}

async function scrape(nodes) {
  const samples = [];
  for (const node of nodes) {
    const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    samples.push(...parseMetrics(await res.text()));
  }
  return samples;
}

describe('subscription counts', () => {
  srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/counts'), events: ['subscription_count'] }];
    return { apps: [app, plain], webhooks: { retry_backoff_ms: 150, timeout_ms: 2000, flush_timeout_s: 1 } };
  });

  describe('subscription_count frames (pusher-js)', () => {
    test('three subscribers see the count reach 3, and 2 after an unsubscribe', async (t) => {
      const channel = uid('count-');
      const clients = await subscribedClients(t, app, channel, 3);
      for (const c of clients) {
        await c.until(() => lastCount(c, channel) === 3, 5000, `count 3 on ${channel}`);
        assert.equal(c.pusher.channel(channel).subscriptionCount, 3, 'channel.subscriptionCount');
      }
      // The wire frame: data is a JSON string.
      const frame = clients[0].messagesFor(channel, COUNT_EVENT).at(-1);
      assert.deepEqual(frame.data, { subscription_count: 3 });
      clients[2].pusher.unsubscribe(channel);
      for (const c of clients.slice(0, 2)) {
        await c.until(() => lastCount(c, channel) === 2, 5000, `count 2 on ${channel}`);
      }
      await eventually(async () => {
        const sent = (await scrape(srv.nodes)).filter(
          (s) => s.name === 'ferrocast_subscription_count_updates_total' && s.labels.app_id === app.id,
        );
        assert.ok(sent.reduce((n, s) => n + s.value, 0) >= 2, 'updates counted in metrics');
      });
    });

    test('private channels are counted too', async (t) => {
      const channel = uid('private-count-');
      const clients = await subscribedClients(t, app, channel, 2);
      for (const c of clients) await c.until(() => lastCount(c, channel) === 2, 5000, `count 2 on ${channel}`);
    });

    test('presence channels get no subscription_count', async (t) => {
      const pres = uid('presence-count-');
      const pub = uid('count-control-');
      const clients = [];
      for (const user of ['u1', 'u2']) {
        const c = await connectPusher(t, srv.client, app, { presence: () => ({ user_id: user }) });
        await c.subscribe(pres);
        clients.push(c);
      }
      // Positive control, subscribed after the presence channel: its count arrives later than a
      // presence count would have.
      for (const c of clients) await c.subscribe(pub);
      for (const c of clients) await c.until(() => lastCount(c, pub) === 2, 5000, 'control count');
      await sleep(300);
      for (const c of clients) assert.deepEqual(c.messagesFor(pres, COUNT_EVENT), [], 'no count on presence');
    });

    test('apps without enable_subscription_count get none', async (t) => {
      const channel = uid('uncounted-');
      const clients = await subscribedClients(t, plain, channel, 2);
      // Any count would be published within 100 ms; then a control event the server sends later.
      await sleep(500);
      const res = await sdkResult(() => serverSdk(srv.rest, plain).trigger(channel, 'control', { n: 1 }));
      assert.equal(res.status, 200);
      for (const c of clients) {
        await c.waitMessage((m) => m.channel === channel && m.event === 'control', 5000, 'control event');
        assert.deepEqual(c.messagesFor(channel, COUNT_EVENT), []);
      }
    });

    test('a burst of 50 subscribes yields a few coalesced updates, ending at 51', async (t) => {
      const channel = uid('burst-');
      const observer = await connectRaw(t, srv.client, app);
      await observer.subscribeOk(channel, {});
      await observer.waitFor(isEvent(COUNT_EVENT, channel), { what: 'count 1' });
      const since = observer.mark();
      const started = Date.now();
      const sockets = await Promise.all(Array.from({ length: 50 }, () => connectRaw(t, srv.client, app)));
      await Promise.all(sockets.map((s) => s.subscribeOk(channel, {})));
      await observer.waitFor((f) => isEvent(COUNT_EVENT, channel)(f) && f.data?.subscription_count === 51, {
        since,
        timeout: 10_000,
        what: 'count 51',
      });
      await sleep(QUIET_MS);
      const elapsed = Date.now() - started;
      const frames = observer.filter(isEvent(COUNT_EVENT, channel), since);
      // One prompt update, then at most one per interval while the burst lasted, plus the one
      // that may be due when it ended.
      const bound = 2 + Math.ceil(elapsed / INTERVAL_MS);
      assert.ok(frames.length <= bound, `${frames.length} count frames for 50 subscribes in ${elapsed} ms (bound ${bound})`);
      assert.ok(frames.length < 50);
      assert.equal(frames.at(-1).data.subscription_count, 51, 'the last update is the final count');
      for (const s of sockets.slice(0, 3)) {
        await s.waitFor((f) => isEvent(COUNT_EVENT, channel)(f) && f.data?.subscription_count === 51, { what: 'count 51' });
      }
    });
  });

  describe('subscription_count webhook', () => {
    test('fires with the final count, 0 after the last subscriber left', async (t) => {
      const channel = uid('hook-');
      const clients = await subscribedClients(t, app, channel, 2);
      const two = await recv.waitForEvents((evs) => evs.find((e) => e.subscription_count === 2), {
        channel,
        what: 'subscription_count 2',
      });
      assert.deepEqual(two, { name: 'subscription_count', channel, subscription_count: 2 });
      for (const c of clients) c.disconnect();
      await recv.waitForEvents((evs) => evs.at(-1)?.subscription_count === 0 && evs, { channel, what: 'final count 0' });
      const mine = recv.requests.filter((r) => r.key === app.key);
      for (const r of mine) assert.equal(r.valid, true, `#${r.seq}: ${r.validationError}`);
    });
  });

  describe('info=subscription_count (REST)', () => {
    const sdk = (a = app) => serverSdk(srv.rest, a);

    test('GET /channels/{name} on public and private channels, and an unoccupied one', async (t) => {
      const pub = uid('info-');
      await subscribedClients(t, app, pub, 2);
      assert.deepEqual(await sdkGetJSON(sdk(), `/channels/${pub}`, { info: 'subscription_count' }), {
        occupied: true,
        subscription_count: 2,
      });
      assert.deepEqual(await sdkGetJSON(sdk(), `/channels/${uid('empty-')}`, { info: 'subscription_count' }), {
        occupied: false,
        subscription_count: 0,
      });
    });

    test('an app without the toggle → 400 naming enable_subscription_count', async () => {
      const get = await sdkResult(() => sdk(plain).get({ path: `/channels/${uid('x-')}`, params: { info: 'subscription_count' } }));
      assert.equal(get.status, 400);
      assert.match(get.body, /enable_subscription_count/);
      const trig = await sdkResult(() => sdk(plain).trigger(uid('x-'), 'evt', {}, { info: 'subscription_count' }));
      assert.equal(trig.status, 400);
      assert.match(trig.body, /enable_subscription_count/);
    });

    test('presence channels: user_count, and 400 for subscription_count', async () => {
      const pres = uid('presence-info-');
      assert.deepEqual(await sdkGetJSON(sdk(), `/channels/${pres}`, { info: 'user_count' }), { occupied: false, user_count: 0 });
      const res = await sdkResult(() => sdk().get({ path: `/channels/${pres}`, params: { info: 'subscription_count' } }));
      assert.equal(res.status, 400);
    });

    test('GET /channels?info=subscription_count → 400 (the listing documents user_count only)', async () => {
      const res = await sdkResult(() => sdk().get({ path: '/channels', params: { info: 'subscription_count' } }));
      assert.equal(res.status, 400);
    });

    test('trigger info=subscription_count reports the count', async (t) => {
      const pub = uid('trig-');
      await subscribedClients(t, app, pub, 3);
      const res = await sdkResult(() => sdk().trigger(pub, 'evt', {}, { info: 'subscription_count' }));
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { channels: { [pub]: { subscription_count: 3 } } });
    });
  });
});
