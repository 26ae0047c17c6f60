// Presence channels: roster, member_added / member_removed semantics (per distinct user_id).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { connectRaw, isEvent, presenceSubscribeData } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const app = makeApp();
const srv = useServer({ apps: [app] });
const sdk = () => serverSdk(srv.rest, app);

async function trigger(channel, event, data) {
  const res = await sdkResult(() => sdk().trigger(channel, event, data));
  assert.equal(res.status, 200, `trigger → ${res.status} ${res.body}`);
}

function membersList(members) {
  const list = [];
  members.each((m) => list.push(m));
  return list.sort((a, b) => (a.id < b.id ? -1 : 1));
}

const presenceAs = (user_id, user_info) => () => (user_info === undefined ? { user_id } : { user_id, user_info });

describe('presence with pusher-js', () => {
  test('roster, member_added, second connection of the same user, member_removed on last leave', async (t) => {
    const ch = uid('presence-room-');

    // 1. A joins alone
    const a = await connectPusher(t, srv.client, app, { presence: presenceAs('u-a', { name: 'Ann' }) });
    const { data: aMembers } = await a.subscribe(ch);
    assert.equal(aMembers.count, 1);
    assert.deepEqual(aMembers.me, { id: 'u-a', info: { name: 'Ann' } });
    assert.deepEqual(membersList(aMembers), [{ id: 'u-a', info: { name: 'Ann' } }]);

    // 2. B joins: A gets member_added, B gets the full roster
    const b = await connectPusher(t, srv.client, app, { presence: presenceAs('u-b', { name: 'Bob' }) });
    const { data: bMembers } = await b.subscribe(ch);
    assert.equal(bMembers.count, 2);
    assert.deepEqual(bMembers.me, { id: 'u-b', info: { name: 'Bob' } });
    assert.deepEqual(membersList(bMembers), [
      { id: 'u-a', info: { name: 'Ann' } },
      { id: 'u-b', info: { name: 'Bob' } },
    ]);
    const added = await a.waitEvent(ch, 'pusher:member_added');
    assert.deepEqual(added.data, { id: 'u-b', info: { name: 'Bob' } });
    assert.equal(aMembers.count, 2);

    // 3. a second connection of u-b: no member_added, count unchanged
    const b2 = await connectPusher(t, srv.client, app, { presence: presenceAs('u-b', { name: 'Bob' }) });
    const { data: b2Members } = await b2.subscribe(ch);
    assert.equal(b2Members.count, 2, 'same user twice counts once');
    await trigger(ch, 'control-1', { step: 3 });
    await a.waitEvent(ch, 'control-1');
    await sleep(300);
    assert.equal(a.messagesFor(ch, 'pusher_internal:member_added').length, 1, 'only one member_added for u-b');
    assert.equal(aMembers.count, 2);
    const info = await sdkGetJSON(sdk(), `/channels/${ch}`, { info: 'user_count' });
    assert.equal(info.user_count, 2);

    // 4. u-b's first connection leaves: no member_removed (u-b still has b2)
    b.disconnect();
    await sleep(500);
    await trigger(ch, 'control-2', { step: 4 });
    await a.waitEvent(ch, 'control-2');
    await sleep(300);
    assert.deepEqual(a.messagesFor(ch, 'pusher_internal:member_removed'), [], 'no member_removed while u-b has another connection');
    assert.equal(aMembers.count, 2);

    // 5. u-b's last connection leaves: member_removed
    b2.disconnect();
    const removed = await a.waitEvent(ch, 'pusher:member_removed');
    assert.deepEqual(removed.data, { id: 'u-b', info: { name: 'Bob' } });
    assert.equal(aMembers.count, 1);
    assert.equal(a.messagesFor(ch, 'pusher_internal:member_removed').length, 1);
  });

  test('presence channel delivers application events with members intact', async (t) => {
    const ch = uid('presence-events-');
    const a = await connectPusher(t, srv.client, app, { presence: presenceAs('ev-1', { n: 1 }) });
    await a.subscribe(ch);
    await trigger(ch, 'announce', { text: 'hi' });
    const ev = await a.waitEvent(ch, 'announce');
    assert.deepEqual(ev.data, { text: 'hi' });
  });
});

describe('presence raw frames', () => {
  test('subscription_succeeded roster format; user_info absent → null; member frames never go to the actor', async (t) => {
    const ch = uid('presence-raw-');
    const x = await connectRaw(t, srv.client, app);
    const xOk = await x.subscribe(ch, presenceSubscribeData(app, x.socketId, ch, { user_id: 'u-x', user_info: { a: 1 } }));
    assert.equal(xOk.event, 'pusher_internal:subscription_succeeded', xOk.text);
    assert.equal(xOk.dataIsString, true, 'data is a JSON-encoded string');
    assert.deepEqual(xOk.data, { presence: { ids: ['u-x'], hash: { 'u-x': { a: 1 } }, count: 1 } });

    const xSince = x.mark();
    const y = await connectRaw(t, srv.client, app);
    const ySince = y.mark();
    const yOk = await y.subscribe(ch, presenceSubscribeData(app, y.socketId, ch, { user_id: 'u-y' }));
    assert.equal(yOk.event, 'pusher_internal:subscription_succeeded', yOk.text);
    assert.deepEqual(Object.keys(yOk.data), ['presence']);
    assert.deepEqual(Object.keys(yOk.data.presence).sort(), ['count', 'hash', 'ids']);
    assert.deepEqual([...yOk.data.presence.ids].sort(), ['u-x', 'u-y']);
    assert.deepEqual(yOk.data.presence.hash, { 'u-x': { a: 1 }, 'u-y': null });
    assert.equal(yOk.data.presence.count, 2);

    // x is told about y
    const added = await x.waitFor(isEvent('pusher_internal:member_added', ch), { since: xSince });
    assert.equal(added.dataIsString, true);
    assert.equal(added.data.user_id, 'u-y');

    // y is not told about itself
    await trigger(ch, 'control', { n: 1 });
    await y.waitFor(isEvent('control', ch), { since: ySince });
    await sleep(300);
    assert.equal(y.find(isEvent('pusher_internal:member_added'), ySince), undefined, 'joiner gets no member_added');

    // y leaves: x gets member_removed, y does not
    const yLeaveSince = y.mark();
    const xLeaveSince = x.mark();
    await y.unsubscribe(ch);
    const removed = await x.waitFor(isEvent('pusher_internal:member_removed', ch), { since: xLeaveSince });
    assert.equal(removed.dataIsString, true);
    assert.deepEqual(removed.data, { user_id: 'u-y' });
    await sleep(300);
    assert.equal(y.find(isEvent('pusher_internal:member_removed'), yLeaveSince), undefined, 'leaver gets no member_removed');
  });

  test('numeric user_id 10 is normalised to "10"', async (t) => {
    const ch = uid('presence-num-');
    const observer = await connectRaw(t, srv.client, app);
    await observer.subscribeOk(ch, presenceSubscribeData(app, observer.socketId, ch, { user_id: 'observer' }));
    const since = observer.mark();

    const n = await connectRaw(t, srv.client, app);
    const ok = await n.subscribeOk(ch, presenceSubscribeData(app, n.socketId, ch, '{"user_id":10,"user_info":{"name":"ten"}}'));
    assert.deepEqual([...ok.data.presence.ids].sort(), ['10', 'observer']);
    assert.deepEqual(ok.data.presence.hash['10'], { name: 'ten' });
    assert.equal(ok.data.presence.count, 2);

    const added = await observer.waitFor(isEvent('pusher_internal:member_added', ch), { since });
    assert.equal(added.data.user_id, '10', `user_id is a string: ${added.text}`);
    assert.deepEqual(added.data.user_info, { name: 'ten' });

    await n.unsubscribe(ch);
    const removed = await observer.waitFor(isEvent('pusher_internal:member_removed', ch), { since });
    assert.deepEqual(removed.data, { user_id: '10' });
  });

  test('socket close counts as leaving (last connection → member_removed)', async (t) => {
    const ch = uid('presence-close-');
    const observer = await connectRaw(t, srv.client, app);
    await observer.subscribeOk(ch, presenceSubscribeData(app, observer.socketId, ch, { user_id: 'stay' }));
    const leaver = await connectRaw(t, srv.client, app);
    await leaver.subscribeOk(ch, presenceSubscribeData(app, leaver.socketId, ch, { user_id: 'go' }));
    const since = observer.mark();
    await leaver.close();
    const removed = await observer.waitFor(isEvent('pusher_internal:member_removed', ch), { since, timeout: 5000 });
    assert.deepEqual(removed.data, { user_id: 'go' });
  });
});
