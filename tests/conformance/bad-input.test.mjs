// Malformed client input on raw sockets. After every case the same connection must still answer
// pusher:ping (unless the case closes it) and a fresh connection must still work.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sdkResult, serverSdk } from './lib/clients.mjs';
import { connectRaw, isEvent, isPusherError } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const app = makeApp({ enable_client_messages: true });
const srv = useServer({ single: true, apps: [app] });

async function assertFreshConnectionWorks(t) {
  const fresh = await connectRaw(t, srv.client, app);
  await fresh.ping();
  await fresh.close();
}

describe('frames answered with pusher:error (socket stays open)', () => {
  const cases = [
    ['invalid JSON', 'this is {not json'],
    ['a JSON array', '[1,2,3]'],
    ['a JSON string', '"pusher:ping"'],
    ['{"event":5}', '{"event":5,"data":{}}'],
    ['no event member', '{"data":{}}'],
    ['unknown event name "foo"', '{"event":"foo","data":{}}'],
    ['pusher:subscribe with string data that is not a JSON object', '{"event":"pusher:subscribe","data":"just a string"}'],
    ['pusher:subscribe with numeric data', '{"event":"pusher:subscribe","data":42}'],
    ['pusher:subscribe with array data', '{"event":"pusher:subscribe","data":["x"]}'],
  ];
  for (const [label, text] of cases) {
    test(`${label} → pusher:error code null`, async (t) => {
      const c = await connectRaw(t, srv.client, app);
      const since = c.mark();
      c.send(text);
      const err = await c.waitFor(isPusherError(null), { since, what: 'pusher:error with code null' });
      assert.equal(typeof err.data.message, 'string');
      assert.equal(err.json.channel, undefined);
      await c.ping();
      assert.ok(c.isOpen);
      await assertFreshConnectionWorks(t);
    });
  }

  test('unknown pusher:foo is ignored (no error, socket open)', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    const since = c.mark();
    c.send({ event: 'pusher:foo', data: { anything: true } });
    await c.ping();
    await sleep(200);
    assert.equal(c.find(isEvent('pusher:error'), since), undefined, 'no pusher:error for unknown pusher:* events');
    assert.ok(c.isOpen);
    await assertFreshConnectionWorks(t);
  });
});

describe('frames that close the connection', () => {
  test('text frame larger than 64 KiB → close 1009', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    c.send(JSON.stringify({ event: 'client-big', channel: 'private-x', data: 'x'.repeat(70_000) }));
    const close = await c.waitClose(5000);
    assert.equal(close.code, 1009);
    await assertFreshConnectionWorks(t);
  });

  test('binary frame → close 1003', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    c.ws.send(Buffer.from(JSON.stringify({ event: 'pusher:ping', data: {} })), { binary: true });
    const close = await c.waitClose(5000);
    assert.equal(close.code, 1003);
    await assertFreshConnectionWorks(t);
  });

  test('invalid UTF-8 in a text frame → close 1007', async (t) => {
    const c = await connectRaw(t, srv.client, app);
    c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    const close = await c.waitClose(5000);
    assert.equal(close.code, 1007);
    await assertFreshConnectionWorks(t);
  });

  test('abrupt TCP close mid-frame does not affect other connections', async (t) => {
    const ch = uid('survivor-');
    const survivor = await connectRaw(t, srv.client, app);
    await survivor.subscribeOk(ch);
    const victim = await connectRaw(t, srv.client, app);
    await victim.subscribeOk(ch);

    // FIN+text, masked, 16-bit length announced but only half of it sent, then RST/FIN
    const socket = victim.ws._socket;
    socket.write(Buffer.from([0x81, 0xfe, 0x01]));
    await sleep(50);
    socket.destroy();
    await victim.waitClose(5000);

    await survivor.ping();
    const since = survivor.mark();
    const res = await sdkResult(() => serverSdk(srv.rest, app).trigger(ch, 'still-alive', { ok: true }));
    assert.equal(res.status, 200, res.body);
    await survivor.waitFor(isEvent('still-alive', ch), { since });
    await assertFreshConnectionWorks(t);

    const ready = await fetch(`${srv.client.httpUrl}/readyz`);
    await ready.arrayBuffer();
    assert.equal(ready.status, 200);
  });
});
