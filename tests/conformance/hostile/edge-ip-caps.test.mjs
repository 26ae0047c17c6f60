// Issue 9, part 1: one IP may not hold or open unbounded connections. Over
// server.max_connections_per_ip or server.max_connection_rate_per_ip the client gets HTTP 429
// with Retry-After before any upgrade, counted in ferrocast_connections_refused_total{reason};
// other addresses are unaffected. Behind proxies the cap applies to the X-Forwarded-For client
// (trusted_proxy_hops) or the PROXY protocol v2 source (proxy_protocol).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { connectRaw, RawClient } from '../lib/raw.mjs';
import { makeApp, makeNode } from '../lib/server.mjs';
import { sleep } from '../lib/util.mjs';
import { metric, openSocket, proxyV2, rawRequest, upgradeRequest } from './edge-lib.mjs';

const nodes = [];
after(() => Promise.all(nodes.map((n) => n.stop())));

async function start(server) {
  const app = makeApp();
  const node = await makeNode(0, { apps: [app], server });
  // Probe readiness on the metrics port: behind proxy_protocol the client port needs a header.
  Object.defineProperty(node, 'httpUrl', { get: () => node.metricsUrl });
  nodes.push(node);
  await node.start();
  return { app, node };
}

const refused = (node, reason) => metric(node, 'ferrocast_connections_refused_total', { reason });

/** A WebSocket from `localAddress` that completed its handshake (status 101). */
async function webSocket(t, node, app, localAddress, headers) {
  const ws = new RawClient(node.wsUrl(app.key), { headers, localAddress });
  t.after(() => ws.close());
  await ws.established();
  return ws;
}

test('the (N+1)th concurrent connection of an IP gets 429 with Retry-After; another IP does not', async (t) => {
  const { app, node } = await start({ max_connections_per_ip: 3, max_connection_rate_per_ip: 0 });
  const held = [];
  const localAddress = '127.0.0.3';
  for (let i = 0; i < 3; i += 1) held.push(await connectRaw(t, node, app, { localAddress }));
  const over = await rawRequest(node.port, upgradeRequest(app), { localAddress });
  assert.equal(over.status, 429, over.text);
  assert.ok(Number(over.headers['retry-after']) >= 1, 'Retry-After');
  assert.ok(over.socket.closedAt, 'the connection is closed');
  assert.equal(await refused(node, 'ip_connections'), 1);
  // Another address is unaffected.
  const other = await rawRequest(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', {
    localAddress: '127.0.0.2',
  });
  assert.equal(other.status, 200);
  // A slot is freed when its WebSocket closes.
  held[0].close();
  await sleep(300);
  const again = await connectRaw(t, node, app, { localAddress });
  assert.ok(again.socketId);
});

test('new WebSockets over the per-IP rate get 429 with Retry-After, counted; plain requests are not rate-limited', async (t) => {
  const { app, node } = await start({ max_connections_per_ip: 0, max_connection_rate_per_ip: 5 });
  // REST calls and probes on fresh connections (the official server SDKs often open one per
  // request) are not a connection storm: none of them is refused.
  for (let i = 0; i < 30; i += 1) {
    const res = await rawRequest(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 200, `plain request ${i}: ${res.text}`);
  }
  assert.equal(await refused(node, 'ip_rate'), 0);
  // 12 at once: even straddling a one-second window boundary, at most 2 × 5 are admitted.
  const responses = await Promise.all(
    Array.from({ length: 12 }, () => rawRequest(node.port, upgradeRequest(app))),
  );
  const statuses = responses.map((res) => res.status);
  for (const res of responses) {
    if (res.status === 429) assert.equal(res.headers['retry-after'], '1');
    res.socket.destroy();
  }
  assert.ok(statuses.includes(429), `some refused: ${statuses}`);
  assert.ok(statuses.includes(101), `some admitted: ${statuses}`);
  assert.ok(await refused(node, 'ip_rate') >= 1);
  const other = await webSocket(t, node, app, '127.0.0.2');
  assert.ok(other.socketId, 'another IP is unaffected');
});

test('with trusted_proxy_hops = 1 the cap applies to the X-Forwarded-For client', async (t) => {
  const { app, node } = await start({ max_connections_per_ip: 2, max_connection_rate_per_ip: 0, trusted_proxy_hops: 1 });
  // All from 127.0.0.1 (the "proxy"): two clients of 198.51.100.7 fill its cap.
  const xff = (ip) => ({ 'X-Forwarded-For': `203.0.113.99, ${ip}` });
  await webSocket(t, node, app, '127.0.0.1', xff('198.51.100.7'));
  await webSocket(t, node, app, '127.0.0.1', xff('198.51.100.7'));
  const over = await rawRequest(node.port, upgradeRequest(app, 'X-Forwarded-For: 198.51.100.7\r\n'));
  assert.equal(over.status, 429, over.text);
  assert.ok(over.headers['retry-after']);
  // The spoofable left part does not count; another forwarded client gets in.
  await webSocket(t, node, app, '127.0.0.1', xff('198.51.100.8'));
  assert.equal(await refused(node, 'ip_connections'), 1);
  // Garbage where the proxy's entry should be is refused.
  const bad = await rawRequest(node.port, upgradeRequest(app, 'X-Forwarded-For: not-an-ip\r\n'));
  assert.equal(bad.status, 400);
});

test('with proxy_protocol = true the cap applies to the PROXY v2 source address', async (t) => {
  const { app, node } = await start({ max_connections_per_ip: 1, max_connection_rate_per_ip: 0, proxy_protocol: true });
  const first = await openSocket(node.port);
  t.after(() => first.destroy());
  first.write(Buffer.concat([proxyV2('192.0.2.10'), Buffer.from(upgradeRequest(app))]));
  await sleep(300);
  assert.match(first.received, /^HTTP\/1\.1 101/, first.received);
  const over = await rawRequest(node.port, upgradeRequest(app), { prefix: proxyV2('192.0.2.10') });
  assert.equal(over.status, 429, over.text);
  const other = await rawRequest(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', {
    prefix: proxyV2('192.0.2.11'),
  });
  assert.equal(other.status, 200, 'another PROXY source is unaffected');
  assert.equal(await refused(node, 'ip_connections'), 1);
  // Without a PROXY header the connection is dropped.
  const none = await rawRequest(node.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(none.status, undefined);
  assert.ok(none.socket.closedAt);
});
