// REST per-app rate limits are cluster-wide (max_backend_events_per_second,
// max_read_requests_per_second), refused requests get 429 + Retry-After, and an event naming a
// channel several times is delivered once per channel.
//
// Runs on one node (`npm test`) and on two nodes through Redis (`npm run test:cluster`), where
// requests alternate between the nodes: together they must stay within one budget.
//
// A budget window is one second: of Redis's clock in a cluster (the wall clock of this host),
// of the node's clock since the app's first limited request on a single node. Each burst below
// therefore uses a fresh app (its first request opens a window on a single node) and starts
// early in a wall-clock second (a window in a cluster). A burst that still took so long it may
// have spanned two windows says nothing either way and is retried with the next app.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { signedFetch } from './lib/rest.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const BUDGET = 5;
const BURST = 20;
const ATTEMPTS = 3;
const budgetApps = () => Array.from({ length: ATTEMPTS }, () => makeApp({ max_backend_events_per_second: BUDGET }));
const eventApps = budgetApps();
const unitApps = budgetApps();
const readApps = Array.from({ length: ATTEMPTS }, () => makeApp({ max_read_requests_per_second: BUDGET }));
const dedupApp = makeApp({ max_event_channels_at_once: 2 });
const srv = useServer({ apps: [...eventApps, ...unitApps, ...readApps, dedupApp] });

/** Waits until the wall clock is early in a second. */
async function startOfASecond() {
  const ms = Date.now() % 1000;
  if (ms > 50) await sleep(1000 - ms);
}

/** `BURST` concurrent requests, alternating over every node; {results, tookMs}. */
async function burst(request) {
  await startOfASecond();
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: BURST }, (_, i) => request(srv.nodes[i % srv.nodes.length], i)));
  return { results, tookMs: Date.now() - started };
}

function assertRefusal(res) {
  assert.equal(res.status, 429, res.text);
  assert.ok(res.json && typeof res.json.error === 'string' && res.json.error.length > 0, `error body: ${res.text}`);
  const retryAfter = res.headers.get('retry-after');
  assert.match(retryAfter ?? '', /^[1-9][0-9]*$/, `Retry-After must be whole seconds ≥ 1, got ${retryAfter}`);
  return Number(retryAfter);
}

/** Runs bursts on fresh apps until one fits in a window; asserts its outcome. */
async function assertOneBudgetAcrossNodes(apps, request) {
  for (const app of apps) {
    const { results, tookMs } = await burst((node, i) => request(node, app, i));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.every((s) => s === 200 || s === 429), `only 200/429 expected: ${statuses}`);
    const accepted = statuses.filter((s) => s === 200).length;
    if (accepted > BUDGET && tookMs >= 900) continue; // may have spanned two windows
    assert.equal(accepted, BUDGET, `${BURST} requests over ${srv.nodes.length} node(s) in one window: ${statuses}`);
    const waits = results.filter((r) => r.status === 429).map(assertRefusal);
    // The budget is back after Retry-After.
    await sleep(Math.max(...waits) * 1000);
    const again = await request(srv.nodes[srv.nodes.length - 1], app, BURST);
    assert.equal(again.status, 200, `after Retry-After: ${again.text}`);
    return;
  }
  assert.fail(`no burst of ${BURST} requests fitted in one second in ${apps.length} tries`);
}

describe('REST rate limits are one budget for the whole cluster', () => {
  test(`max_backend_events_per_second=${BUDGET}: a burst through every node gets exactly ${BUDGET} × 200, the rest 429 + Retry-After`, async () => {
    await assertOneBudgetAcrossNodes(eventApps, (node, app, i) =>
      signedFetch(node, app, { path: '/events', body: { name: 'evt', data: String(i), channels: [uid('rl-')] } }),
    );
  });

  test(`max_read_requests_per_second=${BUDGET}: a burst of reads through every node gets exactly ${BUDGET} × 200`, async () => {
    await assertOneBudgetAcrossNodes(readApps, (node, app) => signedFetch(node, app, { method: 'GET', path: '/channels' }));
  });

  test('an event to k channels takes k units; one that does not fit takes nothing', async () => {
    for (const app of unitApps) {
      await startOfASecond();
      const started = Date.now();
      const [first, second] = srv.nodes.length > 1 ? srv.nodes : [srv.nodes[0], srv.nodes[0]];
      const trigger = (node, n) =>
        signedFetch(node, app, { path: '/events', body: { name: 'evt', data: 'x', channels: Array.from({ length: n }, () => uid('k-')) } });
      const three = await trigger(first, 3);
      const tooMany = await trigger(second, 3); // 3 + 3 > 5: refused, nothing taken
      const two = await trigger(second, 2); // 3 + 2 = 5 fits
      const one = await trigger(first, 1);
      if (Date.now() - started >= 900) continue; // may have spanned two windows
      assert.deepEqual([three.status, tooMany.status, two.status, one.status], [200, 429, 200, 429]);
      assertRefusal(tooMany);
      return;
    }
    assert.fail('no run fitted in one second');
  });
});

describe('an event naming a channel more than once', () => {
  test("trigger(['a','a','a']) is delivered once (pusher SDK → pusher-js)", async (t) => {
    const ch = uid('dup-');
    const client = await connectPusher(t, srv.client, dedupApp);
    await client.subscribe(ch);
    const sdk = serverSdk(srv.rest, dedupApp);
    const res = await sdkResult(() => sdk.trigger([ch, ch, ch], 'once', { n: 1 }));
    assert.equal(res.status, 200, res.body);
    // A later event on the same channel proves anything sent before it has arrived.
    assert.equal((await sdkResult(() => sdk.trigger(ch, 'control', {}))).status, 200);
    await client.waitEvent(ch, 'control');
    assert.equal(client.eventsFor(ch, 'once').length, 1, JSON.stringify(client.eventsFor(ch)));
  });

  test('max_event_channels_at_once counts distinct channels: [a, a, b] with a limit of 2 → 200, each once', async (t) => {
    const [a, b] = [uid('dup-a-'), uid('dup-b-')];
    const client = await connectPusher(t, srv.client, dedupApp);
    await client.subscribe(a);
    await client.subscribe(b);
    const sdk = serverSdk(srv.rest, dedupApp);
    const res = await sdkResult(() => sdk.trigger([a, a, b], 'once', {}));
    assert.equal(res.status, 200, res.body);
    const three = await sdkResult(() => sdk.trigger([a, b, uid('dup-c-')], 'over', {}));
    assert.equal(three.status, 400, `three distinct channels over a limit of 2: ${three.body}`);
    for (const ch of [a, b]) {
      assert.equal((await sdkResult(() => sdk.trigger(ch, 'control', {}))).status, 200);
      await client.waitEvent(ch, 'control');
      assert.equal(client.eventsFor(ch, 'once').length, 1, `${ch}: ${JSON.stringify(client.eventsFor(ch))}`);
      assert.equal(client.eventsFor(ch, 'over').length, 0);
    }
  });
});

describe('limited apps while Redis is down (two nodes through Redis, in both modes)', () => {
  const app = makeApp({ max_backend_events_per_second: 100, max_read_requests_per_second: 100 });
  const down = useServer({ nodes: 2, backplane: { driver: 'redis' }, apps: [app] });

  test('REST calls of a rate-limited app get 503, never 200 and never unlimited; 200 once Redis is back', async () => {
    const [a, b] = down.nodes;
    const event = () => ({ name: 'evt', data: '{}', channels: [uid('down-')] });
    assert.equal((await signedFetch(a, app, { path: '/events', body: event() })).status, 200);
    await down.cluster.redis.restart({
      crash: true,
      whileDown: async () => {
        for (const node of [a, b]) {
          const publish = await signedFetch(node, app, { path: '/events', body: event() });
          assert.equal(publish.status, 503, `publish on ${node.name}: ${publish.text}`);
          assert.equal(typeof publish.json?.error, 'string', publish.text);
          const read = await signedFetch(node, app, { method: 'GET', path: '/channels' });
          assert.equal(read.status, 503, `read on ${node.name}: ${read.text}`);
        }
        // An outage does not flood the log: every failed call is answered 503, but node A logs
        // at most one line a second about them, with the number it did not log.
        const logged = () => (a.stdout + a.stderr).split('\n').filter((l) => l.includes('REST request failed on the backplane'));
        const before = logged().length;
        const started = Date.now();
        const flood = await Promise.all(
          Array.from({ length: 60 }, () => signedFetch(a, app, { path: '/events', body: event() })),
        );
        assert.deepEqual([...new Set(flood.map((r) => r.status))], [503]);
        await sleep(100);
        const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
        const lines = logged().length - before;
        assert.ok(lines <= seconds, `${lines} log lines for 60 failed calls in under ${seconds} s`);
        assert.ok(logged().length >= 1, 'the outage is logged');
      },
    });
    const deadline = Date.now() + 20_000;
    let last;
    while (Date.now() < deadline) {
      last = await signedFetch(b, app, { path: '/events', body: event() });
      if (last.status === 200) return;
      await sleep(200);
    }
    assert.fail(`no 200 after Redis came back: ${last?.status} ${last?.text}`);
  });
});
