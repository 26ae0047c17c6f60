// Rate limits and per-app configurable limits.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isEvent, isPusherError, presenceSubscribeData } from './lib/raw.mjs';
import { signedFetch } from './lib/rest.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const rateApp = makeApp({ enable_client_messages: true, max_client_events_per_second: 10 });
const backendApp = makeApp({ max_backend_events_per_second: 5 });
const readApp = makeApp({ max_read_requests_per_second: 5 });
const presLimitApp = makeApp({ max_presence_members_per_channel: 2 });
const sizeApp = makeApp({ max_presence_member_size_kb: 1 });
const smallApp = makeApp({
  max_channel_name_length: 20,
  max_event_name_length: 10,
  max_event_payload_kb: 1,
  max_event_channels_at_once: 2,
  max_event_batch_size: 2,
});

// Kept on a single node; the REST budgets are cluster-wide and rest-limits.test.mjs checks them
// in both modes.
const srv = useServer({ single: true, apps: [rateApp, backendApp, readApp, presLimitApp, sizeApp, smallApp] });

function assertErrorBody(res) {
  const body = res.json;
  assert.ok(body && typeof body.error === 'string' && body.error.length > 0, `error body must be {"error": "..."}: ${res.body ?? res.text}`);
}

describe('client event rate limit (10/s per connection)', () => {
  test('30 client events in a burst → pusher:error 4301, receiver gets between 10 and 29, socket stays open', async (t) => {
    const ch = uid('private-rate-');
    const sender = await connectRaw(t, srv.client, rateApp);
    await sender.subscribeOk(ch, { auth: channelAuth(rateApp, sender.socketId, ch) });
    const receiver = await connectRaw(t, srv.client, rateApp);
    await receiver.subscribeOk(ch, { auth: channelAuth(rateApp, receiver.socketId, ch) });
    const senderSince = sender.mark();
    const receiverSince = receiver.mark();

    for (let i = 0; i < 30; i += 1) sender.send({ event: 'client-burst', channel: ch, data: { i } });
    const err = await sender.waitFor(isPusherError(4301), { since: senderSince, what: 'pusher:error 4301' });
    assert.equal(typeof err.data.message, 'string');
    await sender.ping(); // all 30 inbound frames processed

    // positive control on the same channel, then count
    const res = await sdkResult(() => serverSdk(srv.rest, rateApp).trigger(ch, 'control', { done: true }));
    assert.equal(res.status, 200, res.body);
    await receiver.waitFor(isEvent('control', ch), { since: receiverSince });
    await sleep(300);
    const got = receiver.filter(isEvent('client-burst', ch), receiverSince).length;
    assert.ok(got >= 10, `receiver got ${got} client events, expected at least 10`);
    assert.ok(got < 30, `receiver got ${got} client events, expected the limiter to drop some`);
    assert.ok(sender.isOpen, 'rate limiting must not close the socket');
    assert.equal(sender.closeInfo, undefined);

    // after the window passes, client events flow again
    await sleep(1100);
    const again = receiver.mark();
    sender.send({ event: 'client-after', channel: ch, data: { ok: true } });
    await receiver.waitFor(isEvent('client-after', ch), { since: again, timeout: 3000 });
  });
});

describe('HTTP rate limits', () => {
  test('max_backend_events_per_second=5: 20 quick triggers → some 429', async () => {
    const s = serverSdk(srv.rest, backendApp);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => sdkResult(() => s.trigger(uid('rl-'), 'evt', { i }))));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.includes(200), `some triggers succeed: ${statuses}`);
    assert.ok(statuses.includes(429), `some triggers are rate limited: ${statuses}`);
    assert.ok(statuses.every((s) => s === 200 || s === 429), `only 200/429 expected: ${statuses}`);
    for (const r of results.filter((x) => x.status === 429)) assertErrorBody(r);
  });

  test('max_read_requests_per_second=5: 20 quick GETs → some 429', async () => {
    const s = serverSdk(srv.rest, readApp);
    const results = await Promise.all(Array.from({ length: 20 }, () => sdkResult(() => s.get({ path: '/channels' }))));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.includes(200), `some reads succeed: ${statuses}`);
    assert.ok(statuses.includes(429), `some reads are rate limited: ${statuses}`);
    assert.ok(statuses.every((s) => s === 200 || s === 429), `only 200/429 expected: ${statuses}`);
    for (const r of results.filter((x) => x.status === 429)) assertErrorBody(r);
  });
});

describe('presence limits', () => {
  async function presenceSubscribe(t, app, ch, member) {
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    const frame = await raw.subscribe(ch, presenceSubscribeData(app, raw.socketId, ch, member));
    return { raw, frame, since };
  }

  test('max_presence_members_per_channel=2: third distinct user → LimitReached/403; extra connection of a member still succeeds', async (t) => {
    const ch = uid('presence-full-');
    const a = await presenceSubscribe(t, presLimitApp, ch, { user_id: 'one' });
    assert.equal(a.frame.event, 'pusher_internal:subscription_succeeded', a.frame.text);
    const b = await presenceSubscribe(t, presLimitApp, ch, { user_id: 'two' });
    assert.equal(b.frame.event, 'pusher_internal:subscription_succeeded', b.frame.text);

    const c = await presenceSubscribe(t, presLimitApp, ch, { user_id: 'three' });
    assert.equal(c.frame.event, 'pusher:subscription_error', c.frame.text);
    assert.equal(c.frame.data.type, 'LimitReached');
    assert.equal(c.frame.data.status, 403);
    assert.equal(typeof c.frame.data.error, 'string');
    await c.raw.waitFor(isPusherError(null), { since: c.since, what: 'pusher:error code null' });
    await c.raw.ping();

    const a2 = await presenceSubscribe(t, presLimitApp, ch, { user_id: 'one' });
    assert.equal(a2.frame.event, 'pusher_internal:subscription_succeeded', a2.frame.text);
    assert.equal(a2.frame.data.presence.count, 2);
  });

  test('max_presence_member_size_kb=1: user_info over 1024 bytes → LimitReached; smaller is fine', async (t) => {
    const ch = uid('presence-big-');
    const big = await presenceSubscribe(t, sizeApp, ch, { user_id: 'big', user_info: { blob: 'x'.repeat(1100) } });
    assert.equal(big.frame.event, 'pusher:subscription_error', big.frame.text);
    assert.equal(big.frame.data.type, 'LimitReached');
    assert.equal(typeof big.frame.data.status, 'number');
    await big.raw.ping();

    const small = await presenceSubscribe(t, sizeApp, ch, { user_id: 'small', user_info: { blob: 'x'.repeat(900) } });
    assert.equal(small.frame.event, 'pusher_internal:subscription_succeeded', small.frame.text);
  });
});

describe('configured (non-default) limits are honoured', () => {
  test('max_channel_name_length=20 for subscriptions', async (t) => {
    const raw = await connectRaw(t, srv.client, smallApp);
    const tooLong = await raw.subscribe('c'.repeat(21));
    assert.equal(tooLong.event, 'pusher:subscription_error', tooLong.text);
    assert.equal(tooLong.data.type, 'InvalidChannel');
    const ok = await raw.subscribe('d'.repeat(20));
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.text);
  });

  test('REST limits: event name 10, payload 1 KiB, 2 channels, batch of 2', async () => {
    const post = (path, body) => signedFetch(srv.rest, smallApp, { path, body });
    const ev = (o) => ({ name: 'evt', data: 'x', channels: ['a'], ...o });
    assert.equal((await post('/events', ev({ name: 'n'.repeat(11) }))).status, 400, 'event name 11 > 10');
    assert.equal((await post('/events', ev({ name: 'n'.repeat(10) }))).status, 200, 'event name 10');
    assert.equal((await post('/events', ev({ data: 'x'.repeat(1025) }))).status, 413, 'payload 1025 > 1024');
    assert.equal((await post('/events', ev({ data: 'x'.repeat(1024) }))).status, 200, 'payload 1024');
    assert.equal((await post('/events', ev({ channels: ['a', 'b', 'c'] }))).status, 400, '3 channels > 2');
    assert.equal((await post('/events', ev({ channels: ['a', 'b'] }))).status, 200, '2 channels');
    const item = (c) => ({ channel: c, name: 'evt', data: 'x' });
    assert.equal((await post('/batch_events', { batch: [item('a'), item('b'), item('c')] })).status, 400, 'batch 3 > 2');
    assert.equal((await post('/batch_events', { batch: [item('a'), item('b')] })).status, 200, 'batch 2');
    assert.equal((await post('/events', ev({ channels: ['c'.repeat(21)] }))).status, 400, 'channel name 21 > 20');
  });
});
