// Issue 9, part 1: silent sockets, slowloris, stalled bodies and idle keep-alive connections
// are closed by the node's deadlines, counted in ferrocast_http_timeouts_total{phase}, and the
// node keeps serving everyone else.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connectRaw } from '../lib/raw.mjs';
import { makeApp, startServer } from '../lib/server.mjs';
import { sleep } from '../lib/util.mjs';
import { closesWithin, metric, openSocket, parseResponse } from './edge-lib.mjs';

const HEADER_S = 2;
const BODY_S = 2;
const KEEP_ALIVE_S = 5;

const app = makeApp();
let node;

before(async () => {
  node = await startServer({
    apps: [app],
    server: {
      request_header_timeout_s: HEADER_S,
      request_body_timeout_s: BODY_S,
      keep_alive_timeout_s: KEEP_ALIVE_S,
    },
  });
});
after(() => node?.stop());

const timeouts = (phase) => metric(node, 'ferrocast_http_timeouts_total', { phase });

test('silent sockets and a slowloris client are closed by the header deadline, and counted', async (t) => {
  const before = await timeouts('header');
  const silent = await Promise.all(Array.from({ length: 20 }, () => openSocket(node.port)));
  const slow = await openSocket(node.port);
  const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n';
  let sent = 0;
  const drip = setInterval(() => {
    if (!slow.destroyed && sent < request.length) slow.write(request[sent++]);
  }, 300);
  t.after(() => clearInterval(drip));
  // Still served while they wait.
  const client = await connectRaw(t, node, app);
  assert.ok(client.socketId);
  for (const s of [...silent, slow]) {
    assert.ok(await closesWithin(s, HEADER_S * 1000 + 3000), 'socket closed by the header deadline');
    assert.equal(s.received, '', 'closed without a response');
  }
  assert.ok(sent > 3 && sent < request.length, `the slowloris client was still sending (sent ${sent})`);
  assert.equal(await timeouts('header') - before, 21);
});

test('a POST stalled mid-body gets 408 from the body deadline and is closed', async () => {
  const before = await timeouts('body');
  const s = await openSocket(node.port);
  const body = '{"name":"e","channels":["c"],"data":"' + 'x'.repeat(100);
  s.write(
    `POST /apps/${app.id}/events?auth_key=${app.key} HTTP/1.1\r\nHost: x\r\n` +
      `Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n${body}`,
  );
  assert.ok(await closesWithin(s, BODY_S * 1000 + 3000), 'connection closed after the body deadline');
  const res = parseResponse(s.received);
  assert.equal(res.status, 408, s.received);
  assert.equal(res.headers.connection, 'close');
  assert.equal(await timeouts('body') - before, 1);
});

test('an idle keep-alive connection is closed by the keep-alive deadline, not the header one', async () => {
  const before = await timeouts('keep_alive');
  const beforeHeader = await timeouts('header');
  const s = await openSocket(node.port);
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(300);
  assert.match(s.received, /^HTTP\/1\.1 200/);
  // Past the header deadline the idle connection is still open...
  assert.equal(await closesWithin(s, (HEADER_S + 1) * 1000), false, 'idle is not the header phase');
  // ...and a second request on it is still served.
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(300);
  assert.equal(s.received.match(/HTTP\/1\.1 200/g)?.length, 2);
  assert.ok(await closesWithin(s, KEEP_ALIVE_S * 1000 + 3000), 'closed by the keep-alive deadline');
  assert.equal(await timeouts('keep_alive') - before, 1);
  assert.equal(await timeouts('header') - beforeHeader, 0);
});

test('a kept-alive connection that starts a request and stalls gets the header deadline from its first byte', async () => {
  const beforeHeader = await timeouts('header');
  const s = await openSocket(node.port);
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(300);
  s.write('GET /healthz HT');
  const started = Date.now();
  assert.ok(await closesWithin(s, HEADER_S * 1000 + 3000), 'closed by the header deadline');
  assert.ok(Date.now() - started < KEEP_ALIVE_S * 1000, 'before the keep-alive deadline would have');
  assert.equal(await timeouts('header') - beforeHeader, 1);
});
