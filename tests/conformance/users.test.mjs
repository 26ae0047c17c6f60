// User sign-in, server-to-user events, terminating a user's connections, watchlists and
// authorized connections (protocol reference §6, §9.7, §9.8, §12.3). Topology-independent:
// sockets on `srv.client`, REST on `srv.rest` (two nodes on Redis under `npm run test:cluster`);
// users-cluster.test.mjs always runs the cross-node cases on two nodes.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';

import { sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isPusherError, presenceSubscribeData } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import {
  connectSignedInPusher,
  rawSignedIn,
  rawSignin,
  rawSigninOk,
  signinData,
  waitWatch,
  watchlistChanges,
  watchlistFrames,
} from './lib/users.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';

const QUIET_MS = 300;

async function sendToUser(node, app, userId, event, data) {
  const res = await sdkResult(() => serverSdk(node, app).sendToUser(userId, event, data));
  assert.equal(res.status, 200, `sendToUser ${userId} → ${res.status} ${res.body}`);
  return res;
}

async function terminate(node, app, userId) {
  const res = await sdkResult(() => serverSdk(node, app).terminateUserConnections(userId));
  assert.equal(res.status, 200, `terminate ${userId} → ${res.status} ${res.body}`);
  assert.deepEqual(res.json, {});
  return res;
}

const userEvent = (event, userId) => (f) => f.event === event && f.channel === `#server-to-user-${userId}`;

/** The socket still answers pings, i.e. it is open and usable. */
async function assertUsable(raw, what) {
  assert.equal(raw.closeInfo, undefined, `${what}: socket closed ${JSON.stringify(raw.closeInfo)}`);
  await raw.ping();
}

describe('pusher:signin', () => {
  const app = makeApp();
  const srv = useServer({ apps: [app] });

  test('signin_success echoes the exact user_data string as string data (§6.2)', async (t) => {
    const raw = await connectRaw(t, srv.client, app);
    // Unusual spacing and member order: the broker must sign and echo the string as received.
    const userData = '{ "user_info" : {"name":"Ada Lovelace"},  "id":"u-17", "watchlist":["u-2","u-3"] }';
    const frame = await rawSignin(raw, rawSigned(app, raw.socketId, userData));
    assert.equal(frame.event, 'pusher:signin_success', frame.text);
    assert.equal(frame.dataIsString, true, 'data is a JSON string');
    assert.deepEqual(frame.data, { user_data: userData });
    assert.equal(frame.channel, undefined);
    await assertUsable(raw, 'after signin');
  });

  test('pusher-js signs in and receives sendToUser events on pusher.user', async (t) => {
    const id = uid('ada-');
    const ada = await connectSignedInPusher(t, srv.client, app, { id, user_info: { name: 'Ada' } });
    await ada.until(() => ada.pusher.user.serverToUserChannel?.subscribed, 5000, '#server-to-user subscribed');
    await sendToUser(srv.rest, app, id, 'greeting', { hello: 'ada' });
    await ada.until(() => ada.userEvents.find((e) => e.event === 'greeting'), 5000, 'greeting on pusher.user');
    assert.deepEqual(ada.userEvents.find((e) => e.event === 'greeting').data, { hello: 'ada' });
  });

  test('a server-to-user event reaches every connection of the user and nobody else', async (t) => {
    const id = uid('multi-');
    const other = uid('other-');
    const one = await rawSignedIn(t, srv.client, app, { id });
    const two = await rawSignedIn(t, srv.client, app, { id });
    const stranger = await rawSignedIn(t, srv.client, app, { id: other });
    const anonymous = await connectRaw(t, srv.client, app);
    // Delivery does not depend on the #server-to-user subscribe (one never sends it).
    await two.subscribeOk(`#server-to-user-${id}`);
    await sendToUser(srv.rest, app, id, 'to-user', 'payload');
    for (const raw of [one, two]) {
      const f = await raw.waitFor(userEvent('to-user', id), { what: 'to-user' });
      assert.equal(f.rawData, 'payload');
      assert.equal(f.dataIsString, true);
    }
    // positive control for the others: an event to `other`, then a quiet window
    await sendToUser(srv.rest, app, other, 'control', {});
    await stranger.waitFor(userEvent('control', other));
    await sleep(QUIET_MS);
    assert.equal(stranger.find(userEvent('to-user', id)), undefined);
    assert.equal(anonymous.find((f) => f.event === 'to-user' || f.event === 'control'), undefined);
    assert.equal(one.filter(userEvent('to-user', id)).length, 1, 'delivered once');
    assert.equal(two.filter(userEvent('to-user', id)).length, 1, 'delivered once (subscribed too)');
  });

  test('#server-to-user-{id}: only the signed-in owner may subscribe (§6.3)', async (t) => {
    const id = uid('owner-');
    const anonymous = await connectRaw(t, srv.client, app);
    const refused = await anonymous.subscribe(`#server-to-user-${id}`, { auth: '' });
    assert.equal(refused.event, 'pusher:subscription_error', refused.text);
    const owner = await rawSignedIn(t, srv.client, app, { id });
    const wrong = await owner.subscribe(`#server-to-user-${id}x`, { auth: '' });
    assert.equal(wrong.event, 'pusher:subscription_error', wrong.text);
    const ok = await owner.subscribe(`#server-to-user-${id}`, { auth: '' });
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.text);
    assert.equal(ok.rawData, '{}');
    // the refused subscribe registered nothing: an event to `id` reaches the owner only
    await sendToUser(srv.rest, app, id, 'only-owner', {});
    await owner.waitFor(userEvent('only-owner', id));
    await sleep(QUIET_MS);
    assert.equal(anonymous.find((f) => f.event === 'only-owner'), undefined);
    await assertUsable(anonymous, 'after a refused #server-to-user subscribe');
  });

  test('#server-to-user channels are never listed, counted or reported as occupied', async (t) => {
    const id = uid('hidden-');
    const raw = await rawSignedIn(t, srv.client, app, { id });
    await raw.subscribeOk(`#server-to-user-${id}`);
    const sdk = serverSdk(srv.rest, app);
    const listed = await sdkGetJSON(sdk, '/channels', {});
    assert.deepEqual(
      Object.keys(listed.channels).filter((c) => c.startsWith('#')),
      [],
      `GET /channels lists ${JSON.stringify(listed)}`,
    );
  });

  test('a forged sign-in gets pusher:error code null, is audited, and the socket stays open', async (t) => {
    const raw = await connectRaw(t, srv.client, app);
    const id = uid('forged-');
    const forged = signinData(app, raw.socketId, { id }, { secret: 'not-the-secret' });
    const frame = await rawSignin(raw, forged);
    assert.equal(frame.event, 'pusher:error', frame.text);
    assert.equal(frame.data.code, null);
    await assertUsable(raw, 'after a forged signin');
    // not signed in: no user channel, no delivery
    const sub = await raw.subscribe(`#server-to-user-${id}`, { auth: '' });
    assert.equal(sub.event, 'pusher:subscription_error');
    await eventually(async () => {
      const res = await fetch(`${srv.client.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
      const denied = parseMetrics(await res.text()).filter(
        (s) => s.name === 'ferrocast_auth_denied_total' && s.labels.reason === 'signin_signature',
      );
      assert.ok(denied.length === 1 && denied[0].value >= 1, `audit counter: ${JSON.stringify(denied)}`);
    });
  });

  test('bad sign-ins: other socket id, user_data not JSON or without a valid id → pusher:error, socket open', async (t) => {
    const raw = await connectRaw(t, srv.client, app);
    const otherSocket = raw.socketId === '1234.5678' ? '8765.4321' : '1234.5678';
    const cases = [
      ['signed for another socket id', signinData(app, otherSocket, { id: 'x' })],
      ['user_data not JSON', rawSigned(app, raw.socketId, 'not json')],
      ['user_data a JSON array', rawSigned(app, raw.socketId, '["x"]')],
      ['no id', rawSigned(app, raw.socketId, '{"user_info":{}}')],
      ['numeric id', rawSigned(app, raw.socketId, '{"id":17}')],
      ['empty id', rawSigned(app, raw.socketId, '{"id":""}')],
      ['id with a space', rawSigned(app, raw.socketId, '{"id":"a b"}')],
      ['id longer than 128', rawSigned(app, raw.socketId, JSON.stringify({ id: 'x'.repeat(129) }))],
      ['watchlist not an array', rawSigned(app, raw.socketId, '{"id":"x","watchlist":"y"}')],
      ['missing auth', { user_data: '{"id":"x"}' }],
    ];
    for (const [what, data] of cases) {
      const frame = await rawSignin(raw, data);
      assert.equal(frame.event, 'pusher:error', `${what}: ${frame.text}`);
      assert.equal(frame.data.code, null, `${what}: code null`);
      await assertUsable(raw, what);
    }
    // and then a good sign-in still works on the same socket
    await rawSigninOk(app, raw, { id: uid('finally-') });
  });

  test('a second sign-in with another id is refused; the same id again succeeds', async (t) => {
    const first = uid('first-');
    const second = uid('second-');
    const raw = await rawSignedIn(t, srv.client, app, { id: first });
    const other = await rawSignin(raw, signinData(app, raw.socketId, { id: second }));
    assert.equal(other.event, 'pusher:error', other.text);
    assert.equal(other.data.code, null);
    const again = await rawSignin(raw, signinData(app, raw.socketId, { id: first, user_info: { v: 2 } }));
    assert.equal(again.event, 'pusher:signin_success', again.text);
    // still `first`: events to first arrive, events to second do not
    await sendToUser(srv.rest, app, second, 'not-mine', {});
    await sendToUser(srv.rest, app, first, 'mine', {});
    await raw.waitFor(userEvent('mine', first));
    await sleep(QUIET_MS);
    assert.equal(raw.find((f) => f.event === 'not-mine'), undefined);
    assert.equal(raw.filter(userEvent('mine', first)).length, 1);
  });
  test('presence without channel_data on a signed-in socket uses the signed-in id and user_info (§6.1)', async (t) => {
    const id = uid('pres-');
    const raw = await rawSignedIn(t, srv.client, app, { id, user_info: { name: 'Ada' } });
    const pres = uid('presence-signed-');
    const ok = await raw.subscribeOk(pres, { auth: channelAuth(app, raw.socketId, pres) });
    assert.deepEqual(ok.data.presence.hash, { [id]: { name: 'Ada' } });
    const anonymous = await connectRaw(t, srv.client, app);
    const refused = await anonymous.subscribe(pres, { auth: channelAuth(app, anonymous.socketId, pres) });
    assert.equal(refused.event, 'pusher:subscription_error', 'not signed in: channel_data is required');
  });
});

describe('terminate_connections (§6.5, §9.7)', () => {
  const app = makeApp();
  const srv = useServer({ apps: [app] });

  test('closes every socket signed in as the user with 4009 "terminated by app"; others untouched', async (t) => {
    const id = uid('bye-');
    const one = await rawSignedIn(t, srv.client, app, { id });
    const two = await rawSignedIn(t, srv.client, app, { id });
    const other = await rawSignedIn(t, srv.client, app, { id: uid('stay-') });
    // same id, but only as presence channel_data: not signed in, not terminated
    const member = await connectRaw(t, srv.client, app);
    const pres = uid('presence-term-');
    await member.subscribeOk(pres, presenceSubscribeData(app, member.socketId, pres, { user_id: id }));
    const pusherJs = await connectSignedInPusher(t, srv.client, app, { id });

    await terminate(srv.rest, app, id);
    for (const raw of [one, two]) {
      const closed = await raw.waitClose(5000);
      assert.equal(closed.code, 4009);
      assert.equal(closed.reason, 'terminated by app');
      const err = raw.find(isPusherError(4009));
      assert.ok(err, 'pusher:error 4009 before the close');
    }
    // pusher-js treats 4009 as refused: it goes offline instead of reconnecting in a loop
    await pusherJs.waitState(['disconnected', 'failed', 'unavailable'], 5000);
    await assertUsable(other, 'another user');
    await assertUsable(member, 'presence member with the same user_id');

    // the user may connect and sign in again
    const back = await rawSignedIn(t, srv.client, app, { id });
    await sendToUser(srv.rest, app, id, 'welcome-back', {});
    await back.waitFor(userEvent('welcome-back', id));
  });

  test('an unknown user: {} and nothing closes; an invalid user id: 400', async (t) => {
    const bystander = await rawSignedIn(t, srv.client, app, { id: uid('bystander-') });
    await terminate(srv.rest, app, uid('nobody-'));
    const bad = await sdkResult(() => serverSdk(srv.rest, app).post({ path: '/users/a%20b/terminate_connections', body: {} }));
    assert.equal(bad.status, 400, bad.body);
    const get = await sdkResult(() => serverSdk(srv.rest, app).get({ path: `/users/x/terminate_connections` }));
    assert.equal(get.status, 405, get.body);
    await sleep(QUIET_MS);
    await assertUsable(bystander, 'bystander');
  });

  test('the request is signed like every REST call (wrong secret → 401)', async () => {
    const res = await sdkResult(() => serverSdk(srv.rest, app, { secret: 'wrong' }).terminateUserConnections('x'));
    assert.equal(res.status, 401, res.body);
  });
});

describe('watchlists (§6.4)', () => {
  const app = makeApp();
  const srv = useServer({ apps: [app] });

  test('right after signin_success: one frame with the status of every watched id', async (t) => {
    const on = uid('on-');
    const off1 = uid('off1-');
    const off2 = uid('off2-');
    await rawSignedIn(t, srv.client, app, { id: on });
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    await rawSigninOk(app, raw, { id: uid('w-'), watchlist: [off1, on, off2] });
    const frame = await raw.waitFor((f) => f.event === 'pusher_internal:watchlist_events', { since });
    assert.equal(frame.dataIsString, true);
    assert.equal(frame.channel, undefined, 'not channel-scoped');
    assert.deepEqual(frame.data, {
      events: [
        { name: 'online', user_ids: [on] },
        { name: 'offline', user_ids: [off1, off2] },
      ],
    });
    const successAt = raw.find((f) => f.event === 'pusher:signin_success', since).index;
    assert.equal(frame.index, successAt + 1, 'watchlist frame right after signin_success');
    // nobody watched: no watchlist frame at all
    const plain = await connectRaw(t, srv.client, app);
    await rawSigninOk(app, plain, { id: uid('plain-') });
    await plain.ping();
    assert.deepEqual(watchlistFrames(plain), []);
  });

  test('online on the first sign-in of a watched user, offline after the last leaves, once each', async (t) => {
    const watched = uid('watched-');
    const control = uid('control-');
    const watcher = await rawSignedIn(t, srv.client, app, { id: uid('watcher-'), watchlist: [watched, control] });
    await waitWatch(watcher, 'offline', watched);
    const since = watcher.mark();
    const a = await rawSignedIn(t, srv.client, app, { id: watched });
    await waitWatch(watcher, 'online', watched, { since });
    const b = await rawSignedIn(t, srv.client, app, { id: watched });
    await a.close();
    // control round: a later transition of another watched user, then a quiet window
    const c = await rawSignedIn(t, srv.client, app, { id: control });
    await waitWatch(watcher, 'online', control, { since });
    await sleep(QUIET_MS);
    assert.deepEqual(watchlistChanges(watcher, since), [`online ${watched}`, `online ${control}`]);
    await b.close();
    await waitWatch(watcher, 'offline', watched, { since });
    await c.close();
    await waitWatch(watcher, 'offline', control, { since });
    await sleep(QUIET_MS);
    assert.deepEqual(watchlistChanges(watcher, since), [
      `online ${watched}`,
      `online ${control}`,
      `offline ${watched}`,
      `offline ${control}`,
    ]);
  });

  test('pusher-js emits online/offline on pusher.user.watchlist', async (t) => {
    const friend = uid('friend-');
    const me = await connectSignedInPusher(t, srv.client, app, { id: uid('me-'), watchlist: [friend] });
    await me.until(() => me.watchEvents.find((e) => e.name === 'offline' && e.data.user_ids.includes(friend)));
    const friendClient = await connectSignedInPusher(t, srv.client, app, { id: friend });
    await me.until(() => me.watchEvents.find((e) => e.name === 'online' && e.data.user_ids.includes(friend)));
    friendClient.disconnect();
    await me.until(() => me.watchEvents.filter((e) => e.name === 'offline' && e.data.user_ids.includes(friend)).length === 2);
    assert.deepEqual(me.watchEvents.at(-1), { name: 'offline', data: { name: 'offline', user_ids: [friend] } });
  });

  test('101 watched ids: the first 100 are kept, signin succeeds, pusher:error 4302', async (t) => {
    const ids = Array.from({ length: 101 }, (_, i) => `${uid('many-')}-${i}`);
    const raw = await connectRaw(t, srv.client, app);
    const since = raw.mark();
    await rawSigninOk(app, raw, { id: uid('greedy-'), watchlist: ids });
    const err = await raw.waitFor(isPusherError(4302), { since, what: 'pusher:error 4302' });
    assert.equal(typeof err.data.message, 'string');
    const frame = await raw.waitFor((f) => f.event === 'pusher_internal:watchlist_events', { since });
    assert.deepEqual(frame.data, { events: [{ name: 'offline', user_ids: ids.slice(0, 100) }] });
    // the 101st is not watched: its sign-in is not announced, the 100th's is
    const since2 = raw.mark();
    await rawSignedIn(t, srv.client, app, { id: ids[100] });
    await rawSignedIn(t, srv.client, app, { id: ids[99] });
    await waitWatch(raw, 'online', ids[99], { since: since2 });
    await sleep(QUIET_MS);
    assert.deepEqual(watchlistChanges(raw, since2), [`online ${ids[99]}`]);
    await assertUsable(raw, 'after 4302');
  });
});

describe('authorized connections (enable_user_authentication)', () => {
  const strict = makeApp({ enable_user_authentication: true, user_authentication_timeout_s: 1 });
  const relaxed = makeApp();
  const srv = useServer({ apps: [strict, relaxed] });

  test('a connection not signed in within the timeout gets pusher:error 4009 and close 4009', async (t) => {
    const idle = await connectRaw(t, srv.client, strict);
    const openedAt = Date.now();
    // a private subscription does not count as signing in
    const priv = await connectRaw(t, srv.client, strict);
    await priv.subscribeOk('private-x', { auth: channelAuth(strict, priv.socketId, 'private-x') });
    for (const raw of [idle, priv]) {
      const closed = await raw.waitClose(4000);
      assert.equal(closed.code, 4009);
      assert.ok(raw.find(isPusherError(4009)), 'pusher:error 4009 before the close');
    }
    assert.ok(Date.now() - openedAt >= 900, 'not closed before the timeout');
  });

  test('connections that sign in in time stay; apps without the setting are not affected', async (t) => {
    const signed = await rawSignedIn(t, srv.client, strict, { id: uid('ok-') });
    const pusherJs = await connectSignedInPusher(t, srv.client, strict, { id: uid('pjs-') });
    const anonymous = await connectRaw(t, srv.client, relaxed);
    await sleep(2000);
    await assertUsable(signed, 'signed in');
    await assertUsable(anonymous, 'app without user authentication');
    assert.equal(pusherJs.state, 'connected');
  });

  test('a failed sign-in does not count', async (t) => {
    const raw = await connectRaw(t, srv.client, strict);
    const forged = signinData(strict, raw.socketId, { id: 'x' }, { secret: 'wrong' });
    assert.equal((await rawSignin(raw, forged)).event, 'pusher:error');
    const closed = await raw.waitClose(4000);
    assert.equal(closed.code, 4009);
  });
});

// ---------------------------------------------------------------------------------------------

/** `{auth, user_data}` for an arbitrary user_data string (the SDK signs only what it serialises). */
function rawSigned(app, socketId, userData) {
  return { auth: `${app.key}:${hmac(app.secret, `${socketId}::user::${userData}`)}`, user_data: userData };
}

function hmac(secret, text) {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}
