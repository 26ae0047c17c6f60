// Hostile REST callers (issue 9): an app flooding the HTTP API, and events that name one channel
// thousands of times. The node answers them with 429 + Retry-After or one delivery, counts the
// refusals in ferrocast_limit_rejections_total, and keeps serving every other app.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from '../lib/clients.mjs';
import { signedFetch } from '../lib/rest.mjs';
import { makeApp, useServer } from '../lib/server.mjs';
import { parseMetrics, uid } from '../lib/util.mjs';

const flooder = makeApp({ max_backend_events_per_second: 20, max_read_requests_per_second: 20 });
const bystander = makeApp({ max_backend_events_per_second: 20 });
const srv = useServer({ single: true, apps: [flooder, bystander] });

async function rejections(app, limit) {
  const res = await fetch(`${srv.client.metricsUrl}/metrics`);
  const samples = parseMetrics(await res.text());
  const match = samples.find(
    (s) => s.name === 'ferrocast_limit_rejections_total' && s.labels.app_id === app.id && s.labels.limit === limit,
  );
  return match ? match.value : 0;
}

test('a flood of 400 publishes and 400 reads from one app: refusals are 429 + Retry-After and counted; another app is served throughout', async (t) => {
  const events0 = await rejections(flooder, 'max_backend_events_per_second');
  const reads0 = await rejections(flooder, 'max_read_requests_per_second');
  const ch = uid('bystander-');
  const client = await connectPusher(t, srv.client, bystander);
  await client.subscribe(ch);

  const started = Date.now();
  const flood = [];
  for (let i = 0; i < 400; i += 1) {
    flood.push(signedFetch(srv.rest, flooder, { path: '/events', body: { name: 'e', data: 'x', channels: [uid('f-')] } }));
    flood.push(signedFetch(srv.rest, flooder, { method: 'GET', path: '/channels' }));
  }
  // Meanwhile the other app publishes and is delivered.
  const sdk = serverSdk(srv.rest, bystander);
  const during = await sdkResult(() => sdk.trigger(ch, 'during', { ok: true }));
  const results = await Promise.all(flood);
  const windows = Math.ceil((Date.now() - started) / 1000) + 1; // one-second windows the flood touched
  assert.equal(during.status, 200, during.body);
  await client.waitEvent(ch, 'during');

  const refused = results.filter((r) => r.status === 429);
  assert.ok(results.every((r) => r.status === 200 || r.status === 429), `only 200/429: ${[...new Set(results.map((r) => r.status))]}`);
  for (const r of refused) {
    assert.match(r.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
    assert.equal(typeof r.json?.error, 'string');
  }
  const eventsRefused = results.filter((r, i) => i % 2 === 0 && r.status === 429).length;
  const readsRefused = results.filter((r, i) => i % 2 === 1 && r.status === 429).length;
  // At most the budget (20) per window was accepted, of each kind.
  assert.ok(400 - eventsRefused <= 20 * windows, `${400 - eventsRefused} publishes accepted in ${windows} windows`);
  assert.ok(400 - readsRefused <= 20 * windows, `${400 - readsRefused} reads accepted in ${windows} windows`);
  assert.equal((await rejections(flooder, 'max_backend_events_per_second')) - events0, eventsRefused);
  assert.equal((await rejections(flooder, 'max_read_requests_per_second')) - reads0, readsRefused);
});

test('an event naming one channel over 10 000 times (a 300 KB body) is accepted once and delivered once', async (t) => {
  const ch = uid('many-');
  const client = await connectPusher(t, srv.client, bystander);
  await client.subscribe(ch);
  const times = Math.floor(300_000 / (ch.length + 3));
  assert.ok(times > 10_000);
  const before = Date.now();
  const res = await signedFetch(srv.rest, bystander, {
    path: '/events',
    body: { name: 'once', data: '{}', channels: Array.from({ length: times }, () => ch) },
  });
  assert.equal(res.status, 200, res.text);
  const sdk = serverSdk(srv.rest, bystander);
  assert.equal((await sdkResult(() => sdk.trigger(ch, 'control', {}))).status, 200);
  await client.waitEvent(ch, 'control');
  assert.equal(client.eventsFor(ch, 'once').length, 1);
  t.diagnostic(`${times} repeated channels: answered in ${Date.now() - before} ms`);
});
