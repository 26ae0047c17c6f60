// Client events (client-* frames relayed by the broker).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isEvent, isPusherError, presenceSubscribeData } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const ceApp = makeApp({ enable_client_messages: true });
const noCeApp = makeApp({ enable_client_messages: false });
const srv = useServer({ apps: [ceApp, noCeApp] });

async function trigger(app, channel, event, data) {
  const res = await sdkResult(() => serverSdk(srv.rest, app).trigger(channel, event, data));
  assert.equal(res.status, 200, `trigger → ${res.status} ${res.body}`);
}

/** Raw socket subscribed to `channel` (auth computed for private-/presence- names). */
async function rawSubscribed(t, app, channel, userId = 'raw-user') {
  const raw = await connectRaw(t, srv.client, app);
  let extra = {};
  if (channel.startsWith('presence-')) extra = presenceSubscribeData(app, raw.socketId, channel, { user_id: userId });
  else if (channel.startsWith('private-')) extra = { auth: channelAuth(app, raw.socketId, channel) };
  await raw.subscribeOk(channel, extra);
  return raw;
}

/**
 * `receiver` must not get `event` on `channel`: publish a control event via REST on the same
 * channel (per-channel ordering), wait for it, then check.
 */
async function assertRawNotDelivered(app, receiver, channel, event, since) {
  const control = `control-${uid()}`;
  await trigger(app, channel, control, { control: true });
  await receiver.waitFor(isEvent(control, channel), { since, what: 'control event' });
  await sleep(300);
  assert.equal(receiver.find(isEvent(event, channel), since), undefined, `${event} must not be delivered on ${channel}`);
}

describe('accepted client events', () => {
  test('private channel: reaches other subscribers, never echoed to the sender (pusher-js)', async (t) => {
    const ch = uid('private-chat-');
    const a = await connectPusher(t, srv.client, ceApp);
    const b = await connectPusher(t, srv.client, ceApp);
    const { channel: aChannel } = await a.subscribe(ch);
    await b.subscribe(ch);
    assert.equal(aChannel.trigger('client-typing', { active: true }), true);
    const ev = await b.waitEvent(ch, 'client-typing');
    assert.deepEqual(ev.data, { active: true });
    assert.equal(ev.metadata?.user_id, undefined, 'no user_id on private channels');

    await trigger(ceApp, ch, 'control', { n: 1 });
    await a.waitEvent(ch, 'control');
    await sleep(300);
    assert.deepEqual(a.messagesFor(ch, 'client-typing'), [], 'sender must not receive its own client event');
    assert.equal(b.messagesFor(ch, 'client-typing').length, 1);
  });

  test('presence channel: receiver gets metadata.user_id of the sender (pusher-js)', async (t) => {
    const ch = uid('presence-chat-');
    const a = await connectPusher(t, srv.client, ceApp, { presence: () => ({ user_id: 'sender-1', user_info: { n: 'S' } }) });
    const b = await connectPusher(t, srv.client, ceApp, { presence: () => ({ user_id: 'receiver-2' }) });
    const { channel: aChannel } = await a.subscribe(ch);
    await b.subscribe(ch);
    aChannel.trigger('client-hello', { text: 'hi' });
    const ev = await b.waitEvent(ch, 'client-hello');
    assert.deepEqual(ev.data, { text: 'hi' });
    assert.equal(ev.metadata?.user_id, 'sender-1');
    const wire = b.messagesFor(ch, 'client-hello')[0];
    assert.equal(wire.user_id, 'sender-1');
  });

  test('raw: user_id on presence comes from broker state, not from the sender frame', async (t) => {
    const ch = uid('presence-spoof-');
    const sender = await rawSubscribed(t, ceApp, ch, 'real-sender');
    const receiver = await rawSubscribed(t, ceApp, ch, 'receiver');
    const since = receiver.mark();
    sender.send({ event: 'client-spoof', channel: ch, data: { x: 1 }, user_id: 'someone-else' });
    const frame = await receiver.waitFor(isEvent('client-spoof', ch), { since });
    assert.equal(frame.json.user_id, 'real-sender');
    assert.deepEqual(frame.data, { x: 1 });
    // reference §1.4: member order event, data, channel, user_id; data relayed as a string
    assert.deepEqual(Object.keys(frame.json), ['event', 'data', 'channel', 'user_id']);
    assert.equal(frame.dataIsString, true);
  });

  test('raw: object data is relayed intact on a private channel', async (t) => {
    const ch = uid('private-relay-');
    const sender = await rawSubscribed(t, ceApp, ch);
    const receiver = await rawSubscribed(t, ceApp, ch);
    const since = receiver.mark();
    sender.send({ event: 'client-obj', channel: ch, data: { nested: { list: [1, 'two', null] }, ok: true } });
    const frame = await receiver.waitFor(isEvent('client-obj', ch), { since });
    assert.deepEqual(frame.data, { nested: { list: [1, 'two', null] }, ok: true });
    assert.equal(frame.channel, ch);
    assert.equal(frame.json.user_id, undefined);
  });
});

describe('rejected client events', () => {
  async function expectRejected(t, app, ch, { subscribeSender = true } = {}) {
    const receiver = await rawSubscribed(t, app, ch, 'rx');
    const sender = subscribeSender ? await rawSubscribed(t, app, ch, 'tx') : await connectRaw(t, srv.client, app);
    const senderSince = sender.mark();
    const receiverSince = receiver.mark();
    sender.send({ event: 'client-nope', channel: ch, data: { x: 1 } });
    const err = await sender.waitFor(isPusherError(null), { since: senderSince, what: 'pusher:error with code null' });
    assert.equal(typeof err.data.message, 'string');
    await assertRawNotDelivered(app, receiver, ch, 'client-nope', receiverSince);
    await sender.ping(); // socket stays open
    assert.ok(sender.isOpen);
  }

  test('public channel → pusher:error (code null), not delivered', async (t) => {
    await expectRejected(t, ceApp, uid('public-chat-'));
  });

  test('private-encrypted channel → pusher:error, not delivered', async (t) => {
    await expectRejected(t, ceApp, uid('private-encrypted-chat-'));
  });

  test('channel the sender is not subscribed to → pusher:error, not delivered', async (t) => {
    await expectRejected(t, ceApp, uid('private-unsubscribed-'), { subscribeSender: false });
  });

  test('app with enable_client_messages=false → pusher:error, not delivered', async (t) => {
    await expectRejected(t, noCeApp, uid('private-disabled-'));
  });

  test('app with enable_client_messages=false, presence channel → pusher:error, not delivered', async (t) => {
    await expectRejected(t, noCeApp, uid('presence-disabled-'));
  });
});
