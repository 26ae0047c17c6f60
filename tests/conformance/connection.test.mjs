// Connection lifecycle: handshake, ping/pong, idle timeout, connect-time rejections, HTTP probes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher } from './lib/clients.mjs';
import { RawClient, SOCKET_ID_RE, connectRaw, isEvent, nextFrame } from './lib/raw.mjs';
import { DEFAULT_WS_QUERY, makeApp, useServer } from './lib/server.mjs';
import { eventually, sleep } from './lib/util.mjs';

const app = makeApp();
const disabledApp = makeApp({ enabled: false });
const quotaApp = makeApp({ max_connections: 2 });
const originApp = makeApp({ allowed_origins: ['http://good.example'] });

/** Opens a raw socket expected to be refused with `code`; returns {errorFrame, close}. */
async function expectRefused(t, url, code, opts = {}) {
  const client = new RawClient(url, opts);
  t.after(() => client.close());
  const close = await client.waitClose(5000);
  const errorFrame = client.find(isEvent('pusher:error'));
  assert.ok(errorFrame, `expected a pusher:error frame before close ${code}; got frames: ${client.frames.map((f) => f.text).join(' | ')}`);
  assert.equal(errorFrame.data?.code, code, `pusher:error code: ${errorFrame.text}`);
  assert.equal(typeof errorFrame.data?.message, 'string', 'pusher:error data.message is a string');
  assert.equal(close.code, code, 'close code');
  assert.equal(
    client.find(isEvent('pusher:connection_established')),
    undefined,
    'no connection_established on a refused connection',
  );
  return { errorFrame, close, client };
}

describe('connection', () => {
  const srv = useServer({
    single: true,
    server: { activity_timeout_s: 120 },
    apps: [app, disabledApp, quotaApp, originApp],
  });

  test('first frame is pusher:connection_established with string data, socket_id and activity_timeout', async (t) => {
    const a = await connectRaw(t, srv.client, app);
    const first = await nextFrame(a); // the very first frame, whatever it is
    assert.equal(first.event, 'pusher:connection_established');
    assert.equal(first.dataIsString, true, `data must be a JSON-encoded string: ${first.text}`);
    assert.deepEqual(Object.keys(first.json).sort(), ['data', 'event']);
    assert.match(first.data.socket_id, SOCKET_ID_RE);
    assert.equal(first.data.activity_timeout, 120);

    const b = await connectRaw(t, srv.client, app);
    assert.match(b.socketId, SOCKET_ID_RE);
    assert.notEqual(a.socketId, b.socketId, 'socket ids differ per connection');
  });

  test('pusher-js connects with the official client', async (t) => {
    const c = await connectPusher(t, srv.client, app);
    assert.equal(c.state, 'connected');
    assert.match(c.socketId, SOCKET_ID_RE);
  });

  test('pusher:ping is answered with pusher:pong {"data":"{}"}', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    const pong = await c.ping();
    assert.deepEqual(pong.json, { event: 'pusher:pong', data: '{}' });
    // and again: the connection keeps answering
    const pong2 = await c.ping();
    assert.equal(pong2.event, 'pusher:pong');
  });

  test('WebSocket-level ping is answered with a WebSocket pong', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    c.ws.ping(Buffer.from('conformance'));
    await c.waitUntil(() => c.wsPongs >= 1, 5000, 'WebSocket pong');
    assert.ok(c.isOpen);
  });

  for (const protocol of [5, 6, 7]) {
    test(`protocol=${protocol} is accepted`, async (t) => {
      const c = await connectRaw(t, srv.client, app, { query: `protocol=${protocol}&client=js&version=8.4.0&flash=false` });
      assert.match(c.socketId, SOCKET_ID_RE);
      await c.ping();
    });
  }

  test('unknown app key → pusher:error 4001 and close 4001', async (t) => {
    await expectRefused(t, srv.client.wsUrl('no-such-key'), 4001);
  });

  test('pusher-js with an unknown key does not connect (ends disconnected/unavailable)', async (t) => {
    const c = await connectPusher(t, srv.client, { ...app, key: 'no-such-key-pusher-js' }, { waitConnected: false });
    await c.waitState(['disconnected', 'unavailable', 'failed'], 15_000);
    assert.ok(!c.states.includes('connected'), `states seen: ${c.states.join(' → ')}`);
  });

  test('disabled app → 4003', async (t) => {
    await expectRefused(t, srv.client.wsUrl(disabledApp.key), 4003);
  });

  test('missing protocol parameter → 4008', async (t) => {
    await expectRefused(t, srv.client.wsUrl(app.key, 'client=js&version=8.4.0&flash=false'), 4008);
  });

  test('protocol=3 → 4007', async (t) => {
    await expectRefused(t, srv.client.wsUrl(app.key, 'protocol=3&client=js&version=8.4.0&flash=false'), 4007);
  });

  test('max_connections=2: third connection → 4004; a slot frees up after a close', async (t) => {
    const first = await connectRaw(t, srv.client, quotaApp);
    const second = await connectRaw(t, srv.client, quotaApp);
    await expectRefused(t, srv.client.wsUrl(quotaApp.key), 4004);

    // the first two are unaffected
    await first.ping();
    await second.ping();

    await first.close();
    // the server processes the close asynchronously: retry (bounded) until a connection is admitted
    const replacement = await eventually(async () => {
      const c = new RawClient(srv.client.wsUrl(quotaApp.key));
      t.after(() => c.close());
      try {
        await c.established(3000);
        return c;
      } catch (err) {
        await c.close();
        throw err;
      }
    }, 5000, 100);
    await replacement.ping();
    await second.ping();
  });

  test('allowed_origins: foreign Origin → 4009, listed Origin accepted', async (t) => {
    await expectRefused(t, srv.client.wsUrl(originApp.key), 4009, { origin: 'http://evil.example' });
    const good = await connectRaw(t, srv.client, originApp, { origin: 'http://good.example' });
    await good.ping();
  });

  test('HTTP: /healthz and /readyz → 200, unknown paths → 404', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const res = await fetch(`${srv.client.httpUrl}${p}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, p);
    }
    for (const p of ['/nope', '/definitely/not/here']) {
      const res = await fetch(`${srv.client.httpUrl}${p}`);
      await res.arrayBuffer();
      assert.equal(res.status, 404, p);
    }
  });
});

describe('idle timeout (activity_timeout_s = 1)', () => {
  const idleApp = makeApp();
  const srv = useServer({ single: true, server: { activity_timeout_s: 1 }, apps: [idleApp] });

  test('silent socket gets pusher:ping after ~1 s, then close 4201', async (t) => {
    const started = Date.now();
    // autoPong: false so not even a WebSocket-level pong leaves this socket
    const c = await connectRaw(t, srv.client, idleApp, { autoPong: false });
    assert.equal(c.activityTimeout, 1, 'handshake advertises the configured activity_timeout');
    const ping = await c.waitFor(isEvent('pusher:ping'), { timeout: 5000, what: 'server pusher:ping' });
    const pingAfter = ping.at - started;
    assert.deepEqual(ping.json, { event: 'pusher:ping', data: '{}' });
    assert.ok(pingAfter >= 700, `ping came too early (${pingAfter} ms after connect)`);
    const close = await c.waitClose(8000);
    assert.equal(close.code, 4201, `close code (reason "${close.reason}")`);
    assert.ok(close.at - started <= 8000, `closed ${close.at - started} ms after connect`);
    assert.ok(close.at >= ping.at, 'close comes after the ping');
  });

  test('socket answering pusher:ping with pusher:pong stays open', async (t) => {
    const c = await connectRaw(t, srv.client, idleApp);
    let answered = 0;
    c.ws.on('message', (data) => {
      try {
        if (JSON.parse(data.toString()).event === 'pusher:ping') {
          answered += 1;
          c.send({ event: 'pusher:pong', data: {} });
        }
      } catch {
        /* ignore */
      }
    });
    await sleep(4500);
    assert.equal(c.closeInfo, undefined, `socket was closed: ${JSON.stringify(c.closeInfo)}`);
    assert.ok(c.isOpen);
    assert.ok(answered >= 1, 'the server probed the idle socket at least once');
    await c.ping();
  });
});

// Keep the default query exported by the helper aligned with what pusher-js 8 sends.
test('helper sends the pusher-js query string', () => {
  assert.equal(DEFAULT_WS_QUERY, 'protocol=7&client=js&version=8.4.0&flash=false');
});
