// Cache channels (reference §7, §9.6 info=cache, §10.3 cache_miss): the last REST event of a
// cache- channel replayed to each new subscriber right after its subscription_succeeded, or
// pusher:cache_miss plus one de-duplicated cache_miss webhook.
//
// Topology-independent: with FERROCAST_CONFORMANCE_NODES=2 sockets are on node A and REST on
// node B, so every replay reads the cache node B wrote in Redis. Always-two-node behaviour (a
// burst split over both nodes, TTL on Redis) is in cache-cluster.test.mjs.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, serverSdk } from './lib/clients.mjs';
import { cacheMissText, channelInfo, eventText, subscribeForReplay, trigger } from './lib/cache.mjs';
import { isEvent, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';
import { useWebhookReceiver } from './lib/webhooks.mjs';

/** Window after the first cache_miss webhook in which a duplicate would have arrived. */
const QUIET_MS = 1000;
const WEBHOOKS = { leave_delay_ms: 500, retry_backoff_ms: 150, timeout_ms: 2000, flush_timeout_s: 1 };

const recv = useWebhookReceiver();

describe('cache channels', () => {
  const app = recv.addApp(makeApp({ enable_client_messages: true }));
  const shortApp = makeApp({ cache_ttl_s: 2 });
  // info=cache combined with subscription_count needs an app with the counts toggle.
  const countApp = makeApp({ enable_subscription_count: true });
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/cache'), events: ['cache_miss'] }];
    return { apps: [app, shortApp, countApp], webhooks: WEBHOOKS };
  });

  test('a new subscriber gets the last REST event right after subscription_succeeded, to itself only', async (t) => {
    const ch = uid('cache-last-');
    const early = await rawSubscribed(t, srv.client, app, ch);
    const earlyMark = early.mark();
    await trigger(srv.rest, app, ch, 'first', { n: 1 });
    await trigger(srv.rest, app, ch, 'second', { n: 2 });
    await early.waitFor(isEvent('second', ch), { since: earlyMark, what: 'the live second event' });

    const mark = early.mark();
    const { success, next } = await subscribeForReplay(t, srv.client, app, ch);
    assert.equal(success.event, 'pusher_internal:subscription_succeeded');
    assert.equal(next.text, eventText('second', '{"n":2}', ch), 'the last event, as an ordinary channel event');

    // the replay went to the new socket only: the early subscriber got nothing more
    await trigger(srv.rest, app, ch, 'control', {});
    await early.waitFor(isEvent('control', ch), { since: mark, what: 'control' });
    assert.deepEqual(
      early.filter((f) => f.channel === ch, mark).map((f) => f.event),
      ['control'],
    );
  });

  test('batch events are cached too, and a string data is replayed byte for byte', async (t) => {
    const ch = uid('cache-batch-');
    const other = uid('cache-batch-other-');
    const sdk = serverSdk(srv.rest, app);
    const res = await sdk.triggerBatch([
      { channel: ch, name: 'b1', data: 'one' },
      { channel: other, name: 'b2', data: '{"x": [1, 2]}' },
      { channel: ch, name: 'b3', data: 'three \u00e9' },
    ]);
    assert.equal(res.status, 200);
    const a = await subscribeForReplay(t, srv.client, app, ch);
    assert.equal(a.next.text, eventText('b3', 'three \u00e9', ch));
    const b = await subscribeForReplay(t, srv.client, app, other);
    assert.equal(b.next.text, eventText('b2', '{"x": [1, 2]}', other));
  });

  test('an empty cache channel answers pusher:cache_miss after success (pusher-js emits it on the channel)', async (t) => {
    const ch = uid('cache-empty-');
    const { next } = await subscribeForReplay(t, srv.client, app, ch);
    assert.equal(next.text, cacheMissText(ch));

    const client = await connectPusher(t, srv.client, app);
    const ch2 = uid('cache-empty-js-');
    await client.subscribe(ch2);
    await client.waitEvent(ch2, 'pusher:cache_miss');
  });

  test('pusher-js on private-cache-, private-encrypted-cache- and presence-cache- gets the replay', async (t) => {
    const priv = uid('private-cache-js-');
    const enc = uid('private-encrypted-cache-js-');
    const pres = uid('presence-cache-js-');
    await trigger(srv.rest, app, priv, 'p-ev', { p: 1 });
    await trigger(srv.rest, app, enc, 'e-ev', { secret: 42 }); // the SDK encrypts; pusher-js decrypts
    await trigger(srv.rest, app, pres, 'pr-ev', { pr: 1 });
    const client = await connectPusher(t, srv.client, app, {
      presence: (channel, socketId) => ({ user_id: `u-${socketId}`, user_info: { name: 'Ada' } }),
    });
    await client.subscribe(priv);
    await client.subscribe(enc);
    const { channel } = await client.subscribe(pres);
    const got = async (ch, ev) => (await client.waitEvent(ch, ev)).data;
    assert.deepEqual(await got(priv, 'p-ev'), { p: 1 });
    assert.deepEqual(await got(enc, 'e-ev'), { secret: 42 });
    assert.deepEqual(await got(pres, 'pr-ev'), { pr: 1 });
    assert.equal(channel.members.count, 1, 'presence-cache- is a presence channel: roster first');
  });

  test('presence-cache-: the roster in subscription_succeeded, then the cached event', async (t) => {
    const ch = uid('presence-cache-roster-');
    await rawSubscribed(t, srv.client, app, ch, 'first-user');
    await trigger(srv.rest, app, ch, 'pres-ev', { v: 1 });
    const { success, next } = await subscribeForReplay(t, srv.client, app, ch, 'second-user');
    assert.deepEqual(success.data.presence.ids.sort(), ['first-user', 'second-user']);
    assert.equal(next.text, eventText('pres-ev', '{"v":1}', ch));
  });

  test('client events are not cached', async (t) => {
    const ch = uid('private-cache-client-');
    const sender = await rawSubscribed(t, srv.client, app, ch);
    sender.send({ event: 'client-typing', channel: ch, data: { a: 1 } });
    await sender.ping(); // the node has handled the client event
    const peer = await subscribeForReplay(t, srv.client, app, ch);
    assert.equal(peer.next.text, cacheMissText(ch), 'only a client event was sent: still a miss');

    await trigger(srv.rest, app, ch, 'rest-ev', { r: 1 });
    await peer.raw.waitFor(isEvent('rest-ev', ch), { what: 'rest-ev' });
    const mark = peer.raw.mark();
    sender.send({ event: 'client-typing', channel: ch, data: { a: 2 } });
    await peer.raw.waitFor(isEvent('client-typing', ch), { since: mark, what: 'the second client event' });
    const late = await subscribeForReplay(t, srv.client, app, ch);
    assert.equal(late.next.text, eventText('rest-ev', '{"r":1}', ch), 'the REST event, not the later client event');
  });

  test('a repeated subscribe on the same socket does not replay again', async (t) => {
    const ch = uid('cache-resub-');
    await trigger(srv.rest, app, ch, 'once', {});
    const { raw } = await subscribeForReplay(t, srv.client, app, ch);
    const mark = raw.mark();
    await raw.subscribeOk(ch, subscribeExtra(app, raw, ch));
    await raw.ping();
    assert.deepEqual(
      raw.filter((f) => f.channel === ch, mark).map((f) => f.event),
      ['pusher_internal:subscription_succeeded'],
    );
  });

  test('GET /channels/{name}?info=cache: null, then {data, ttl}; 400 on other channels', async () => {
    const ch = uid('cache-info-');
    let res = await channelInfo(srv.rest, app, ch);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, { occupied: false, cache: null });

    await trigger(srv.rest, app, ch, 'info-ev', { i: 1 });
    res = await channelInfo(srv.rest, app, ch, 'cache');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.cache.data, '{"i":1}');

    await trigger(srv.rest, countApp, ch, 'info-ev', { i: 1 });
    res = await channelInfo(srv.rest, countApp, ch, 'cache,subscription_count');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.cache.data, '{"i":1}');
    assert.equal(res.json.cache.event, 'info-ev');
    assert.ok(Number.isInteger(res.json.cache.ttl) && res.json.cache.ttl > 1790 && res.json.cache.ttl <= 1800, res.body);
    assert.equal(res.json.subscription_count, 0);

    for (const plain of [uid('plain-'), uid('private-x-'), uid('presence-x-')]) {
      res = await channelInfo(srv.rest, app, plain);
      assert.equal(res.status, 400, `${plain}: ${res.body}`);
    }
  });

  test('a burst of 5 subscribers on an empty channel: 5 cache_miss frames, one cache_miss webhook', async (t) => {
    const ch = uid('cache-burst-');
    const since = recv.mark();
    const subs = await Promise.all([1, 2, 3, 4, 5].map(() => subscribeForReplay(t, srv.client, app, ch)));
    for (const s of subs) assert.equal(s.next.text, cacheMissText(ch));
    const ev = await recv.waitEvent('cache_miss', { channel: ch, path: '/cache', since, timeout: 5000 });
    assert.deepEqual(ev, { name: 'cache_miss', channel: ch });
    assert.equal(ev.request.valid, true, 'signed like every webhook');
    await sleep(QUIET_MS);
    assert.equal(recv.events({ channel: ch, path: '/cache', since }).length, 1, 'de-duplicated');
  });

  test('cache_ttl_s: the cached event expires (cache_ttl_s = 2)', async (t) => {
    const ch = uid('cache-ttl-');
    await trigger(srv.rest, shortApp, ch, 'soon-gone', {});
    const hit = await subscribeForReplay(t, srv.client, shortApp, ch);
    assert.equal(hit.next.event, 'soon-gone');
    const info = await channelInfo(srv.rest, shortApp, ch);
    assert.ok(info.json.cache === null || [1, 2].includes(info.json.cache.ttl), info.body);
    await sleep(2300);
    const miss = await subscribeForReplay(t, srv.client, shortApp, ch);
    assert.equal(miss.next.text, cacheMissText(ch));
    assert.deepEqual((await channelInfo(srv.rest, shortApp, ch)).json.cache, null);
  });
});
