// Public, private and private-encrypted channels with the official clients, plus raw-frame
// subscription error cases.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isEvent, isPusherError, presenceSubscribeData } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const app = makeApp();
const srv = useServer({ apps: [app] });
const sdk = () => serverSdk(srv.rest, app);

async function trigger(channels, event, data, params) {
  const res = await sdkResult(() => sdk().trigger(channels, event, data, params));
  assert.equal(res.status, 200, `trigger → ${res.status} ${res.body}`);
  return res;
}

/**
 * Positive control: publish `control` on `controlChannel` (which `client` is subscribed to),
 * wait until it arrives, give stragglers a short window, then assert `client` never saw
 * `event` on `channel` at the connection level.
 */
async function assertNotDelivered(client, channel, event, controlChannel) {
  const control = `control-${uid()}`;
  await trigger(controlChannel, control, { control: true });
  await client.waitMessage((m) => m.channel === controlChannel && m.event === control, 5000, 'control event');
  await sleep(300);
  assert.deepEqual(client.messagesFor(channel, event), [], `${event} must not reach this socket on ${channel}`);
}

describe('public channels', () => {
  test('subscribe → pusher:subscription_succeeded; JSON data arrives parsed', async (t) => {
    const ch = uid('pub-');
    const c = await connectPusher(t, srv.client, app);
    await c.subscribe(ch);
    await trigger(ch, 'greeting', { hello: 'world', n: 1 });
    const ev = await c.waitEvent(ch, 'greeting');
    assert.deepEqual(ev.data, { hello: 'world', n: 1 });
  });

  test('data that is not JSON arrives as the raw string', async (t) => {
    const ch = uid('pub-');
    const c = await connectPusher(t, srv.client, app);
    await c.subscribe(ch);
    await trigger(ch, 'plain', 'hello, not json {');
    const ev = await c.waitEvent(ch, 'plain');
    assert.equal(ev.data, 'hello, not json {');
  });

  test('raw frame: application event data is forwarded byte-for-byte as a string', async (t) => {
    const ch = uid('pub-');
    const raw = await connectRaw(t, srv.client, app);
    await raw.subscribeOk(ch);
    const since = raw.mark();
    const payload = '{"b":1,  "a":[1,2,3],"s":"\\u00e9"}';
    await trigger(ch, 'exact', payload);
    const frame = await raw.waitFor(isEvent('exact', ch), { since });
    assert.equal(frame.dataIsString, true);
    assert.equal(frame.rawData, payload);
    assert.equal(frame.json.user_id, undefined);
  });

  test('one trigger to several channels reaches each', async (t) => {
    const chans = [uid('multi-a-'), uid('multi-b-'), uid('multi-c-')];
    const clients = [];
    for (const ch of chans) {
      const c = await connectPusher(t, srv.client, app);
      await c.subscribe(ch);
      clients.push(c);
    }
    const both = await connectPusher(t, srv.client, app);
    await both.subscribe(chans[0]);
    await both.subscribe(chans[1]);
    await trigger(chans, 'fanout', { x: 1 });
    for (const [i, c] of clients.entries()) {
      const ev = await c.waitEvent(chans[i], 'fanout');
      assert.deepEqual(ev.data, { x: 1 });
    }
    await both.waitEvent(chans[0], 'fanout');
    await both.waitEvent(chans[1], 'fanout');
  });

  test('socket_id excludes exactly that connection', async (t) => {
    const ch = uid('excl-');
    const a = await connectPusher(t, srv.client, app);
    const b = await connectPusher(t, srv.client, app);
    await a.subscribe(ch);
    await b.subscribe(ch);
    await trigger(ch, 'excluded', { n: 1 }, { socket_id: a.socketId });
    await b.waitEvent(ch, 'excluded');
    // positive control on the same channel: per-channel order means a would have seen n:1 first
    await trigger(ch, 'after', { n: 2 });
    await a.waitEvent(ch, 'after');
    await b.waitEvent(ch, 'after');
    await sleep(100);
    assert.deepEqual(a.messagesFor(ch, 'excluded'), [], 'excluded socket must not receive the event');
    assert.equal(b.messagesFor(ch, 'excluded').length, 1, 'other socket receives it exactly once');
  });

  test('unsubscribe stops delivery (raw socket)', async (t) => {
    const ch = uid('unsub-');
    const control = uid('unsub-control-');
    const raw = await connectRaw(t, srv.client, app);
    await raw.subscribeOk(ch);
    await raw.subscribeOk(control);
    await raw.unsubscribe(ch); // sends pusher:unsubscribe, then a ping round-trip
    const since = raw.mark();
    await trigger(ch, 'gone', { n: 1 });
    await trigger(control, 'still-here', { n: 2 });
    await raw.waitFor(isEvent('still-here', control), { since });
    await sleep(300);
    assert.equal(raw.find(isEvent('gone'), since), undefined, 'no delivery after unsubscribe');
  });

  test('unsubscribe stops delivery (pusher-js)', async (t) => {
    const ch = uid('unsub-js-');
    const control = uid('unsub-js-control-');
    const c = await connectPusher(t, srv.client, app);
    await c.subscribe(ch);
    await c.subscribe(control);
    c.pusher.unsubscribe(ch);
    // wait until the server has processed it: the channel becomes unoccupied
    const deadline = Date.now() + 5000;
    for (;;) {
      const res = await sdkResult(() => sdk().get({ path: `/channels/${ch}` }));
      if (res.status === 200 && res.json?.occupied === false) break;
      if (Date.now() > deadline) assert.fail(`channel still occupied after unsubscribe: ${res.status} ${res.body}`);
      await sleep(50);
    }
    await trigger(ch, 'gone', { n: 1 });
    await assertNotDelivered(c, ch, 'gone', control);
  });
});

describe('private and private-encrypted channels', () => {
  test('private: correct auth → subscribed, events delivered', async (t) => {
    const ch = uid('private-ok-');
    const c = await connectPusher(t, srv.client, app);
    await c.subscribe(ch);
    await trigger(ch, 'secret-news', { id: 42 });
    const ev = await c.waitEvent(ch, 'secret-news');
    assert.deepEqual(ev.data, { id: 42 });
  });

  test('private-encrypted: pusher-js decrypts what the SDK encrypted; the broker relays the envelope untouched', async (t) => {
    const ch = uid('private-encrypted-ok-');
    const c = await connectPusher(t, srv.client, app);
    await c.subscribe(ch);
    await trigger(ch, 'sealed', { amount: 100, note: 'end-to-end' });
    const ev = await c.waitEvent(ch, 'sealed');
    assert.deepEqual(ev.data, { amount: 100, note: 'end-to-end' });
    const wire = c.messagesFor(ch, 'sealed')[0];
    assert.equal(typeof wire.data.nonce, 'string', 'wire data carries the nonce');
    assert.equal(typeof wire.data.ciphertext, 'string', 'wire data carries the ciphertext');
  });

  test('a single trigger to a private-encrypted channel plus another channel → 400', async () => {
    const body = {
      name: 'mixed',
      data: JSON.stringify({ nonce: 'ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7', ciphertext: 'hU6KWlKz2DFP5xXXnOfdKatj3Z8fRsy2YNph2muj' }),
      channels: [uid('private-encrypted-x-'), uid('other-')],
    };
    const res = await sdkResult(() => sdk().post({ path: '/events', body }));
    assert.equal(res.status, 400, res.body);
    assert.equal(typeof res.json?.error, 'string');
  });

  const failureModes = [
    ['wrong-secret', 'signed with another secret'],
    ['missing', 'empty auth'],
    ['other-socket', 'auth for another socket_id'],
  ];
  for (const prefix of ['private-', 'private-encrypted-']) {
    for (const [mode, label] of failureModes) {
      test(`${prefix}: ${label} → subscription_error AuthError/401; connection and other channels unaffected`, async (t) => {
        const bad = uid(`${prefix}bad-`);
        const good = uid('pub-good-');
        const c = await connectPusher(t, srv.client, app, { mode: (name) => (name === bad ? mode : 'ok') });
        await c.subscribe(good);
        const err = await c.subscribeError(bad);
        assert.equal(err.type, 'AuthError');
        assert.equal(err.status, 401);
        assert.equal(typeof err.error, 'string');
        assert.ok(err.error.length > 0, 'error message is not empty');
        assert.equal(c.state, 'connected');

        await trigger(bad, 'should-not-arrive', { leaked: true });
        await assertNotDelivered(c, bad, 'should-not-arrive', good);
        assert.equal(c.state, 'connected');
      });
    }
  }

  test('raw: private subscribe without auth → subscription_error AuthError/401 and pusher:error code null; socket stays usable', async (t) => {
    const ch = uid('private-noauth-');
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    const frame = await raw.subscribe(ch);
    assert.equal(frame.event, 'pusher:subscription_error', frame.text);
    assert.equal(frame.dataIsString, true, `data is a JSON string: ${frame.text}`);
    assert.equal(frame.data.type, 'AuthError');
    assert.equal(frame.data.status, 401);
    assert.equal(typeof frame.data.error, 'string');
    const err = await raw.waitFor(isPusherError(null), { since, what: 'pusher:error with code null' });
    assert.equal(typeof err.data.message, 'string');
    assert.equal(err.channel, undefined, 'pusher:error is not channel-scoped');
    await raw.ping();
  });

  test('raw: pusher:subscribe whose data is a JSON-encoded string is accepted (reference §1.4)', async (t) => {
    const ch = uid('private-strdata-');
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    raw.send({ event: 'pusher:subscribe', data: JSON.stringify({ channel: ch, auth: channelAuth(app, raw.socketId, ch) }) });
    const frame = await raw.waitFor((f) => f.channel === ch, { since });
    assert.equal(frame.event, 'pusher_internal:subscription_succeeded', frame.text);
  });

  test('raw: correct private auth computed by hand is accepted', async (t) => {
    const ch = uid('private-raw-');
    const raw = await connectRaw(t, srv.client, app);
    const frame = await raw.subscribe(ch, { auth: channelAuth(app, raw.socketId, ch) });
    assert.deepEqual(frame.json, { event: 'pusher_internal:subscription_succeeded', data: '{}', channel: ch });
    // reference §1.4 / checklist 2: members in the order event, data, channel (naive clients match the prefix)
    assert.equal(frame.text, `{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"${ch}"}`);
  });
});

describe('raw subscription errors', () => {
  /** Subscribes and asserts the subscription_error type/status plus the trailing pusher:error. */
  async function expectSubscriptionError(t, channel, extra, type, status) {
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    const frame = await raw.subscribe(channel, typeof extra === 'function' ? extra(raw) : extra);
    assert.equal(frame.event, 'pusher:subscription_error', frame.text);
    assert.equal(frame.dataIsString, true, `data is a JSON string: ${frame.text}`);
    assert.equal(frame.data.type, type, frame.text);
    assert.equal(frame.data.status, status, frame.text);
    assert.equal(typeof frame.data.error, 'string');
    assert.ok(frame.data.error.length > 0);
    await raw.waitFor(isPusherError(null), { since, what: 'pusher:error with code null' });
    // the connection stays usable
    await raw.ping();
    assert.ok(raw.isOpen);
    return raw;
  }

  test('invalid characters → InvalidChannel/400', async (t) => {
    await expectSubscriptionError(t, 'bad channel!', {}, 'InvalidChannel', 400);
  });

  test('other invalid characters ($, /, *) → InvalidChannel/400', async (t) => {
    await expectSubscriptionError(t, 'bad$chan', {}, 'InvalidChannel', 400);
    await expectSubscriptionError(t, 'bad/chan', {}, 'InvalidChannel', 400);
    await expectSubscriptionError(t, 'bad*chan', {}, 'InvalidChannel', 400);
  });

  test('name longer than max_channel_name_length (164) → InvalidChannel/400; exactly 164 is fine', async (t) => {
    await expectSubscriptionError(t, 'a'.repeat(165), {}, 'InvalidChannel', 400);
    const raw = await connectRaw(t, srv.client, app);
    await raw.subscribeOk(`${'b'.repeat(160)}${String(Date.now() % 10000).padStart(4, '0')}`);
  });

  test('#foo → InvalidChannel/400', async (t) => {
    await expectSubscriptionError(t, '#foo', {}, 'InvalidChannel', 400);
  });

  test('presence without channel_data → InvalidChannelData/400', async (t) => {
    const ch = uid('presence-nodata-');
    await expectSubscriptionError(t, ch, (raw) => ({ auth: channelAuth(app, raw.socketId, ch) }), 'InvalidChannelData', 400);
  });

  test('presence channel_data without user_id → InvalidChannelData/400', async (t) => {
    const ch = uid('presence-nouser-');
    await expectSubscriptionError(
      t,
      ch,
      (raw) => presenceSubscribeData(app, raw.socketId, ch, { user_info: { name: 'nobody' } }),
      'InvalidChannelData',
      400,
    );
  });

  test('after a failed subscribe the channel still works for a correct subscribe', async (t) => {
    const ch = uid('private-retry-');
    const raw = await connectRaw(t, srv.client, app);
    const bad = await raw.subscribe(ch, { auth: `${app.key}:${'0'.repeat(64)}` });
    assert.equal(bad.event, 'pusher:subscription_error');
    const ok = await raw.subscribe(ch, { auth: channelAuth(app, raw.socketId, ch) });
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.text);
    const since = raw.mark();
    await trigger(ch, 'now-ok', { ok: true });
    await raw.waitFor(isEvent('now-ok', ch), { since });
  });
});
