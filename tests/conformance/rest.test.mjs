// HTTP API: request signing, error statuses and bodies, channel queries, trigger/batch info.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { PusherServer, connectPusher, sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isEvent, presenceSubscribeData } from './lib/raw.mjs';
import { md5, nowSeconds, signRequest, signedFetch } from './lib/rest.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { eventually, uid } from './lib/util.mjs';

const app = makeApp({ enable_subscription_count: true });
const disabledApp = makeApp({ enabled: false });
const queryApp = makeApp({ enable_subscription_count: true });
const srv = useServer({ apps: [app, disabledApp, queryApp] });
const sdk = (a = app, opts) => serverSdk(srv.rest, a, opts);

/** Asserts `res` has `status` and a JSON body {"error": "<non-empty string>"}. */
function assertError(res, status, label = '') {
  assert.equal(res.status, status, `${label} expected ${status}, got ${res.status}: ${res.text ?? res.body}`);
  const body = res.json;
  assert.ok(body && typeof body === 'object' && !Array.isArray(body), `${label} error body must be a JSON object: ${res.text ?? res.body}`);
  assert.equal(typeof body.error, 'string', `${label} error body needs a string "error": ${res.text ?? res.body}`);
  assert.ok(body.error.length > 0, `${label} "error" must not be empty`);
}

const event = (overrides = {}) => ({ name: 'evt', data: '{"ok":true}', channels: [uid('rest-')], ...overrides });

describe('request signing helper (offline, protocol reference §12.5)', () => {
  const vApp = { id: '451', key: '3f6a2c9b81e04d7d5a10', secret: '9e1d7b4c2a85f03e6b12' };

  test('trigger vector (a)', () => {
    const body = '{"name":"order-shipped","channels":["private-orders-42","orders"],"data":"{\\"id\\":42}","socket_id":"98765.4321"}';
    assert.equal(body.length, 112);
    assert.equal(md5(body), 'a964fe9d991556d4478d3941d1bc811f');
    const { stringToSign, signature } = signRequest({
      method: 'POST', path: '/apps/451/events', body, key: vApp.key, secret: vApp.secret, overrides: { timestamp: 1700000000 },
    });
    assert.equal(
      stringToSign,
      'POST\n/apps/451/events\nauth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&body_md5=a964fe9d991556d4478d3941d1bc811f',
    );
    assert.equal(signature, '0eac098bdfea34f8c328dac5ded85f32c06aa3319d873b6c081a0a66e773fcb4');
  });

  test('list-channels vector (b)', () => {
    const { signature } = signRequest({
      method: 'GET', path: '/apps/451/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' },
      key: vApp.key, secret: vApp.secret, overrides: { timestamp: 1700000000 },
    });
    assert.equal(signature, 'ba9e9826f04e2a8384d5597efa132f756bd1b3b9fd912ce3c44c0f72befb29a1');
  });

  test('agrees with the official SDK', () => {
    const s = new PusherServer({ appId: vApp.id, key: vApp.key, secret: vApp.secret, host: '127.0.0.1', useTLS: false });
    const params = { info: 'user_count,subscription_count', filter_by_prefix: 'presence-' };
    const qs = s.createSignedQueryString({ method: 'GET', path: '/apps/451/channels', params });
    const ts = Number(new URLSearchParams(qs).get('auth_timestamp'));
    const mine = signRequest({ method: 'GET', path: '/apps/451/channels', params, key: vApp.key, secret: vApp.secret, overrides: { timestamp: ts } });
    assert.equal(mine.signature, new URLSearchParams(qs).get('auth_signature'));
  });
});

describe('authentication and errors', () => {
  test('SDK trigger with a good signature → 200 {}', async () => {
    const res = await sdkResult(() => sdk().trigger(uid('rest-ok-'), 'evt', { a: 1 }));
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, {});
  });

  test('hand-signed trigger → 200 {}', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event() });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {});
  });

  test('hand-signed trigger with the single "channel" field → 200', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: { name: 'evt', data: 'x', channel: uid('single-') } });
    assert.equal(res.status, 200, res.text);
  });

  test('wrong secret (SDK) → 401', async () => {
    const res = await sdkResult(() => sdk(app, { secret: 'wrong-secret' }).trigger(uid('rest-'), 'evt', {}));
    assertError(res, 401);
    const get = await sdkResult(() => sdk(app, { secret: 'wrong-secret' }).get({ path: '/channels' }));
    assertError(get, 401, 'GET');
  });

  test('stale auth_timestamp (now − 700) → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { timestamp: nowSeconds() - 700 } });
    assertError(res, 401);
  });

  test('auth_timestamp too far in the future (now + 700) → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { timestamp: nowSeconds() + 700 } });
    assertError(res, 401);
  });

  test('body_md5 mismatch (but correctly signed) → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { bodyMd5: md5('something else') } });
    assertError(res, 401);
  });

  test('missing body_md5 with a non-empty body → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { omit: ['body_md5'] } });
    assertError(res, 401);
  });

  test('missing auth_signature → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { omit: ['auth_signature'] } });
    assertError(res, 401);
  });

  test('missing auth_key / auth_timestamp → 401', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { omit: ['auth_key'] } }), 401, 'no auth_key');
    assertError(
      await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { omit: ['auth_timestamp'] } }),
      401,
      'no auth_timestamp',
    );
  });

  test('wrong auth_key (signed with the right secret) → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { key: queryApp.key } });
    assertError(res, 401);
  });

  test('auth_version other than 1.0 → 401', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { authVersion: '2.0' } });
    assertError(res, 401);
  });

  test('unknown app id → 404', async () => {
    const res = await signedFetch(srv.rest, app, { path: '/events', body: event(), overrides: { appId: 'no-such-app-999' } });
    assertError(res, 404);
  });

  test('disabled app → 403', async () => {
    const res = await signedFetch(srv.rest, disabledApp, { path: '/events', body: event() });
    assertError(res, 403);
  });

  test('unknown route /apps/{id}/nope → 404', async () => {
    assertError(await signedFetch(srv.rest, app, { method: 'GET', path: '/nope' }), 404, 'GET');
    assertError(await signedFetch(srv.rest, app, { method: 'POST', path: '/nope', body: '{}' }), 404, 'POST');
  });

  test('malformed JSON body (correctly signed) → 400', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: '{"name":"evt",' }), 400, 'truncated');
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: '[1,2,3]' }), 400, 'array');
    assertError(await signedFetch(srv.rest, app, { path: '/batch_events', body: 'not json' }), 400, 'batch');
  });

  test('missing name / data / channels → 400', async () => {
    const { name, ...noName } = event();
    const { data, ...noData } = event();
    const { channels, ...noChannels } = event();
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: noName }), 400, 'no name');
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: noData }), 400, 'no data');
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: noChannels }), 400, 'no channels');
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ channels: [] }) }), 400, 'empty channels');
  });

  test('data larger than max_event_payload_kb (10 KiB) → 413; exactly 10240 bytes → 200', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ data: 'x'.repeat(10 * 1024 + 1) }) }), 413);
    const ok = await signedFetch(srv.rest, app, { path: '/events', body: event({ data: 'x'.repeat(10 * 1024) }) });
    assert.equal(ok.status, 200, ok.text);
  });

  test('data over the limit inside a batch → 413', async () => {
    const batch = [
      { channel: uid('b-'), name: 'a', data: 'small' },
      { channel: uid('b-'), name: 'b', data: 'y'.repeat(10 * 1024 + 1) },
    ];
    assertError(await signedFetch(srv.rest, app, { path: '/batch_events', body: { batch } }), 413);
  });

  test('more than max_event_channels_at_once (100) channels → 400; 100 → 200', async () => {
    const many = (n) => Array.from({ length: n }, (_, i) => `many-${i}-${uid()}`);
    assertError(await sdkResult(() => sdk().post({ path: '/events', body: event({ channels: many(101) }) })), 400);
    const ok = await sdkResult(() => sdk().post({ path: '/events', body: event({ channels: many(100) }) }));
    assert.equal(ok.status, 200, ok.body);
  });

  test('batch larger than max_event_batch_size (10) → 400; 10 → 200', async () => {
    const batch = (n) => Array.from({ length: n }, (_, i) => ({ channel: uid(`batch-${i}-`), name: 'evt', data: String(i) }));
    assertError(await sdkResult(() => sdk().post({ path: '/batch_events', body: { batch: batch(11) } })), 400);
    const ok = await sdkResult(() => sdk().post({ path: '/batch_events', body: { batch: batch(10) } }));
    assert.equal(ok.status, 200, ok.body);
    assert.deepEqual(ok.json, {});
  });

  test('event name longer than max_event_name_length (200) → 400; 200 → 200', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ name: 'n'.repeat(201) }) }), 400);
    const ok = await signedFetch(srv.rest, app, { path: '/events', body: event({ name: 'n'.repeat(200) }) });
    assert.equal(ok.status, 200, ok.text);
  });

  test('invalid channel name → 400', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ channels: ['bad channel!'] }) }), 400, 'chars');
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ channels: ['c'.repeat(165)] }) }), 400, 'length');
  });

  test('invalid socket_id ("1.2.3") → 400', async () => {
    assertError(await signedFetch(srv.rest, app, { path: '/events', body: event({ socket_id: '1.2.3' }) }), 400);
  });
});

describe('channel queries', () => {
  // queryApp is only used here; every test closes its sockets, and exact listings are polled
  // because vacating after a close is asynchronous.
  const qsdk = () => sdk(queryApp);

  async function occupy(t, channel, userId) {
    const raw = await connectRaw(t, srv.client, queryApp);
    let extra = {};
    if (channel.startsWith('presence-')) extra = presenceSubscribeData(queryApp, raw.socketId, channel, { user_id: userId });
    else if (channel.startsWith('private-')) extra = { auth: channelAuth(queryApp, raw.socketId, channel) };
    await raw.subscribeOk(channel, extra);
    return raw;
  }

  test('GET /channels lists only occupied channels; filter_by_prefix; user_count', async (t) => {
    const pub = uid('pub-');
    const priv = uid('private-');
    const pres = uid('presence-');
    await occupy(t, pub);
    await occupy(t, priv);
    await occupy(t, pres, 'u1');
    await occupy(t, pres, 'u2');
    await occupy(t, pres, 'u2'); // same user twice
    const gone = await occupy(t, uid('vacated-'));
    await gone.close();

    await eventually(async () => {
      assert.deepEqual(await sdkGetJSON(qsdk(), '/channels'), { channels: { [pub]: {}, [priv]: {}, [pres]: {} } });
    });
    assert.deepEqual(await sdkGetJSON(qsdk(), '/channels', { filter_by_prefix: 'presence-' }), { channels: { [pres]: {} } });
    assert.deepEqual(await sdkGetJSON(qsdk(), '/channels', { filter_by_prefix: 'private-' }), { channels: { [priv]: {} } });
    assert.deepEqual(await sdkGetJSON(qsdk(), '/channels', { filter_by_prefix: 'presence-', info: 'user_count' }), {
      channels: { [pres]: { user_count: 2 } },
    });
  });

  test('GET /channels info=user_count without a presence- prefix → 400', async () => {
    assertError(await sdkResult(() => qsdk().get({ path: '/channels', params: { info: 'user_count' } })), 400, 'no prefix');
    assertError(
      await sdkResult(() => qsdk().get({ path: '/channels', params: { info: 'user_count', filter_by_prefix: 'private-' } })),
      400,
      'private- prefix',
    );
  });

  test('GET /channels/{name}?info=subscription_count on public and private channels', async (t) => {
    const pub = uid('count-pub-');
    const priv = uid('private-count-');
    await occupy(t, pub);
    await occupy(t, pub);
    await occupy(t, priv);
    assert.deepEqual(await sdkGetJSON(qsdk(), `/channels/${pub}`, { info: 'subscription_count' }), { occupied: true, subscription_count: 2 });
    assert.deepEqual(await sdkGetJSON(qsdk(), `/channels/${priv}`, { info: 'subscription_count' }), { occupied: true, subscription_count: 1 });
  });

  test('GET /channels/{name} for an unoccupied channel → occupied:false', async () => {
    const body = await sdkGetJSON(qsdk(), `/channels/${uid('empty-')}`, { info: 'subscription_count' });
    assert.equal(body.occupied, false);
    if ('subscription_count' in body) assert.equal(body.subscription_count, 0);
    const plain = await sdkGetJSON(qsdk(), `/channels/${uid('empty-')}`);
    assert.equal(plain.occupied, false);
  });

  test('presence channel: info=user_count counts distinct users; subscription_count → 400', async (t) => {
    const pres = uid('presence-users-');
    await occupy(t, pres, 'alice');
    await occupy(t, pres, 'bob');
    await occupy(t, pres, 'bob');
    assert.deepEqual(await sdkGetJSON(qsdk(), `/channels/${pres}`, { info: 'user_count' }), { occupied: true, user_count: 2 });
    assertError(await sdkResult(() => qsdk().get({ path: `/channels/${pres}`, params: { info: 'subscription_count' } })), 400);
  });

  test('user_count on a non-presence channel → 400', async (t) => {
    const pub = uid('pub-uc-');
    await occupy(t, pub);
    assertError(await sdkResult(() => qsdk().get({ path: `/channels/${pub}`, params: { info: 'user_count' } })), 400);
  });

  test('GET /channels/{presence}/users lists distinct users; non-presence → 400', async (t) => {
    const pres = uid('presence-list-');
    await occupy(t, pres, 'alice');
    await occupy(t, pres, 'bob');
    await occupy(t, pres, 'bob');
    const body = await sdkGetJSON(qsdk(), `/channels/${pres}/users`);
    assert.deepEqual(Object.keys(body), ['users']);
    assert.deepEqual([...body.users].sort((a, b) => (a.id < b.id ? -1 : 1)), [{ id: 'alice' }, { id: 'bob' }]);
    const pub = uid('pub-users-');
    await occupy(t, pub);
    assertError(await sdkResult(() => qsdk().get({ path: `/channels/${pub}/users` })), 400);
  });

  test('POST /events with info returns per-channel counts', async (t) => {
    const pres = uid('presence-info-');
    const pub = uid('pub-info-');
    await occupy(t, pres, 'p1');
    await occupy(t, pres, 'p2');
    await occupy(t, pub);
    await occupy(t, pub);
    await occupy(t, pub);
    const r1 = await sdkResult(() => qsdk().trigger(pres, 'evt', { a: 1 }, { info: 'user_count' }));
    assert.equal(r1.status, 200, r1.body);
    assert.deepEqual(r1.json, { channels: { [pres]: { user_count: 2 } } });
    const r2 = await sdkResult(() => qsdk().trigger(pub, 'evt', { a: 1 }, { info: 'subscription_count' }));
    assert.equal(r2.status, 200, r2.body);
    assert.deepEqual(r2.json, { channels: { [pub]: { subscription_count: 3 } } });
  });

  test('batch_events delivers each item to its channel; info on one item → {"batch":[{}, {...}]}', async (t) => {
    const a = uid('batch-a-');
    const pres = uid('presence-batch-');
    const ca = await connectPusher(t, srv.client, queryApp);
    await ca.subscribe(a);
    const rawA = await occupy(t, pres, 'm1');
    await occupy(t, pres, 'm2');
    const since = rawA.mark();

    const r = await sdkResult(() =>
      qsdk().triggerBatch([
        { channel: a, name: 'first', data: { n: 1 } },
        { channel: pres, name: 'second', data: { n: 2 }, info: 'user_count' },
      ]),
    );
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { batch: [{}, { user_count: 2 }] });
    const ev = await ca.waitEvent(a, 'first');
    assert.deepEqual(ev.data, { n: 1 });
    const frame = await rawA.waitFor(isEvent('second', pres), { since });
    assert.deepEqual(frame.data, { n: 2 });

    const plain = await sdkResult(() => qsdk().triggerBatch([{ channel: a, name: 'third', data: 'x' }]));
    assert.equal(plain.status, 200, plain.body);
    assert.deepEqual(plain.json, {});
    await ca.waitEvent(a, 'third');
  });
});
