// Prometheus metrics endpoint on metrics_port.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { sdkResult, serverSdk } from './lib/clients.mjs';
import { promtoolCheckMetrics, promtoolPath } from './lib/promtool.mjs';
import { connectRaw, presenceSubscribeData } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, parseMetrics, uid } from './lib/util.mjs';

const app = makeApp();
const srv = useServer({ single: true, apps: [app] });

async function scrape(node = srv.client) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  assert.equal(res.status, 200, `GET /metrics → ${res.status}: ${text.slice(0, 500)}`);
  return { text, samples: parseMetrics(text), contentType: res.headers.get('content-type') };
}

const sum = (samples, name, labelFilter = () => true) =>
  samples.filter((s) => s.name === name && labelFilter(s.labels)).reduce((acc, s) => acc + s.value, 0);

test('GET /metrics → 200 Prometheus text with the ferrocast_* families', async (t) => {
  // generate traffic first so that labelled families have samples
  const c = await connectRaw(t, srv.client, app);
  await c.ping();
  const ok = await sdkResult(() => serverSdk(srv.client, app).trigger(uid('m-'), 'evt', { a: 1 }));
  assert.equal(ok.status, 200, ok.body);
  const bad = await sdkResult(() => serverSdk(srv.client, app, { secret: 'nope' }).trigger(uid('m-'), 'evt', { a: 1 }));
  assert.equal(bad.status, 401, bad.body);

  const { text, contentType } = await scrape();
  assert.match(contentType ?? '', /^text\/plain/, 'Prometheus text exposition content type');
  for (const name of [
    'ferrocast_connections',
    'ferrocast_ws_messages_in_total',
    'ferrocast_ws_messages_out_total',
    'ferrocast_rest_requests_total',
  ]) {
    assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'), `metrics must contain a ${name} sample`);
  }
});

test('ferrocast_connections reflects open connections', async (t) => {
  const baseline = await eventually(async () => {
    const first = sum((await scrape()).samples, 'ferrocast_connections');
    const second = sum((await scrape()).samples, 'ferrocast_connections');
    assert.equal(first, second, 'gauge still settling');
    return first;
  }, 5000);
  const a = await connectRaw(t, srv.client, app);
  const b = await connectRaw(t, srv.client, app);
  await eventually(async () => {
    assert.equal(sum((await scrape()).samples, 'ferrocast_connections'), baseline + 2);
  }, 3000);
  await a.close();
  await b.close();
  await eventually(async () => {
    assert.equal(sum((await scrape()).samples, 'ferrocast_connections'), baseline);
  }, 3000);
});

test('ws message counters increase with traffic', async (t) => {
  const c = await connectRaw(t, srv.client, app);
  const before = (await scrape()).samples;
  const inBefore = sum(before, 'ferrocast_ws_messages_in_total');
  const outBefore = sum(before, 'ferrocast_ws_messages_out_total');
  for (let i = 0; i < 3; i += 1) await c.ping();
  await eventually(async () => {
    const now = (await scrape()).samples;
    assert.ok(sum(now, 'ferrocast_ws_messages_in_total') >= inBefore + 3, 'messages_in grows by the pings');
    assert.ok(sum(now, 'ferrocast_ws_messages_out_total') >= outBefore + 3, 'messages_out grows by the pongs');
  }, 3000);
});

test('ferrocast_rest_requests_total has status="200" and status="401" samples', async () => {
  const ok = await sdkResult(() => serverSdk(srv.client, app).trigger(uid('m-'), 'evt', { a: 1 }));
  assert.equal(ok.status, 200, ok.body);
  const bad = await sdkResult(() => serverSdk(srv.client, app, { secret: 'nope' }).get({ path: '/channels' }));
  assert.equal(bad.status, 401, bad.body);
  await eventually(async () => {
    const { samples } = await scrape();
    assert.ok(sum(samples, 'ferrocast_rest_requests_total', (l) => l.status === '200') >= 1, 'a status="200" sample ≥ 1');
    assert.ok(sum(samples, 'ferrocast_rest_requests_total', (l) => l.status === '401') >= 1, 'a status="401" sample ≥ 1');
  }, 3000);
});

// ---------------------------------------------------------------------------------------------
// `promtool check metrics`: the exposition must pass Prometheus' own linter (metric and label
// names, HELP/TYPE, counter `_total` suffixes, histogram series, units, …), on each backplane
// (the Redis one adds its own families). Missing promtool fails the test.

for (const [label, backplane] of [
  ['memory', { driver: 'memory' }],
  ['redis', { driver: 'redis' }],
]) {
  describe(`promtool check metrics (${label} backplane)`, () => {
    // A webhook receiver that accepts everything, so the webhook families have samples too.
    const received = [];
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received.push(req.url);
        res.end('ok');
      });
    });
    const lintApp = makeApp();
    // Registered before useServer's hooks, so the node starts with the receiver's URL.
    before(async () => {
      await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      lintApp.webhooks = [{ url: `http://127.0.0.1:${receiver.address().port}/hook` }];
    });
    after(() => new Promise((resolve) => receiver.close(resolve)));
    const node = useServer({ single: true, backplane, apps: [lintApp] });

    test(`/metrics of a ${label}-backplane node after traffic passes \`promtool check metrics\``, async (t) => {
      promtoolPath(); // fail first, with install instructions, if promtool is missing
      const n = node.client;
      // traffic: a connection, a subscription, a presence join, a REST trigger, a bad-signature call
      const c = await connectRaw(t, n, lintApp);
      const pub = uid('lint-');
      await c.subscribeOk(pub);
      const pres = uid('presence-lint-');
      await c.subscribeOk(pres, presenceSubscribeData(lintApp, c.socketId, pres, { user_id: 'lint-user', user_info: { n: 1 } }));
      const since = c.mark();
      const ok = await sdkResult(() => serverSdk(n, lintApp).trigger([pub, pres], 'evt', { a: 1 }));
      assert.equal(ok.status, 200, ok.body);
      await c.waitFor((f) => f.event === 'evt' && f.channel === pres, { since, what: 'evt on the presence channel' });
      const bad = await sdkResult(() => serverSdk(n, lintApp, { secret: 'nope' }).trigger(pub, 'evt', { a: 1 }));
      assert.equal(bad.status, 401, bad.body);
      await c.ping();

      const { text, samples } = await eventually(async () => {
        const scraped = await scrape(n);
        // the traffic above is visible, so the lint covers the labelled series too
        assert.ok(sum(scraped.samples, 'ferrocast_connections') >= 1, 'ferrocast_connections ≥ 1');
        assert.ok(sum(scraped.samples, 'ferrocast_rest_requests_total', (l) => l.status === '401') >= 1, 'a status="401" sample');
        assert.ok(sum(scraped.samples, 'ferrocast_publish_to_socket_seconds_count') >= 1, 'publish-to-socket latency observed');
        assert.ok(
          sum(scraped.samples, 'ferrocast_webhook_events_total', (l) => l.event === 'channel_occupied') >= 2,
          'channel_occupied webhooks delivered',
        );
        if (label === 'redis') {
          assert.ok(sum(scraped.samples, 'ferrocast_backplane_pubsub_lag_seconds_count') >= 1, 'pub/sub lag observed');
        }
        return scraped;
      }, 5000);
      assert.ok(received.length >= 2, `webhook requests received: ${received.length}`);
      assert.ok(samples.length > 0, 'no samples scraped');
      const result = await promtoolCheckMetrics(text);
      assert.ok(
        result.ok,
        `promtool check metrics (exit ${result.code}) reported problems for the ${label}-backplane node:\n${result.output}\n` +
          `--- scraped /metrics ---\n${text}`,
      );
    });
  });
}

test('close codes a client picks share one `other` series: a client cannot mint label values', async (t) => {
  const closedWith = async (code) => {
    const c = await connectRaw(t, srv.client, app);
    c.ws.close(code);
    await eventually(() => assert.ok(c.closeInfo, `socket closed with ${code}`), 5000);
  };
  const before = sum((await scrape()).samples, 'ferrocast_connections_closed_total', (l) => l.app_id === app.id && l.code === 'other');
  await closedWith(4321);
  await closedWith(3999);
  let samples;
  await eventually(async () => {
    samples = (await scrape()).samples;
    const other = sum(samples, 'ferrocast_connections_closed_total', (l) => l.app_id === app.id && l.code === 'other');
    assert.equal(other, before + 2, 'both closes counted as other');
  }, 5000);
  const codes = new Set(samples.filter((s) => s.name === 'ferrocast_connections_closed_total').map((s) => s.labels.code));
  assert.ok(!codes.has('4321') && !codes.has('3999'), `no per-code series for client-chosen codes: ${[...codes].join(', ')}`);
});
