// Cache channels across nodes: two real nodes on a private Redis (always, whatever
// FERROCAST_CONFORMANCE_NODES says, like cluster.test.mjs). The cache is written by the node
// that took the REST request, in the same atomic publish script as its PUBLISH, and read by the node of the
// subscriber; a miss is reported once cluster-wide.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { cacheMissText, channelInfo, eventText, monitorRedis, subscribeForReplay, trigger } from './lib/cache.mjs';
import { isEvent, rawSubscribed } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid, waitFor } from './lib/util.mjs';
import { useWebhookReceiver } from './lib/webhooks.mjs';

const QUIET_MS = 1000;
const WEBHOOKS = { leave_delay_ms: 500, retry_backoff_ms: 150, timeout_ms: 2000, flush_timeout_s: 1 };

const recv = useWebhookReceiver();

describe('cache channels on two nodes and Redis', () => {
  const app = recv.addApp(makeApp({ enable_client_messages: true }));
  const shortApp = makeApp({ cache_ttl_s: 2 });
  const srv = useServer(async () => {
    app.webhooks = [{ url: recv.url('/cache-cluster'), events: ['cache_miss'] }];
    return { nodes: 2, backplane: { driver: 'redis' }, webhooks: WEBHOOKS, apps: [app, shortApp] };
  });

  test('published via B, a new subscriber on A gets the replay right after its success (raw and pusher-js)', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('cache-ab-');
    await trigger(B, app, ch, 'from-b', { node: 'B' });
    const { success, next } = await subscribeForReplay(t, A, app, ch);
    assert.equal(success.event, 'pusher_internal:subscription_succeeded');
    assert.equal(next.text, eventText('from-b', '{"node":"B"}', ch));

    const client = await connectPusher(t, A, app);
    await client.subscribe(ch);
    const ev = await client.waitEvent(ch, 'from-b');
    assert.deepEqual(ev.data, { node: 'B' });
    const order = client.messages.filter((m) => m.channel === ch).map((m) => m.event);
    assert.deepEqual(order, ['pusher_internal:subscription_succeeded', 'from-b'], 'success, then the replay');
  });

  test('the last event wins whichever node took it; info=cache agrees on both nodes', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('cache-last-ab-');
    await trigger(A, app, ch, 'one', { n: 1 });
    await trigger(B, app, ch, 'two', { n: 2 });
    for (const node of [A, B]) {
      const { next } = await subscribeForReplay(t, node, app, ch);
      assert.equal(next.text, eventText('two', '{"n":2}', ch), node.name);
      const info = await channelInfo(node, app, ch);
      assert.equal(info.status, 200, info.body);
      assert.equal(info.json.cache.data, '{"n":2}');
      assert.ok(info.json.cache.ttl > 1790 && info.json.cache.ttl <= 1800, info.body);
    }
  });

  test('presence-cache-: roster across nodes, then the replay', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('presence-cache-ab-');
    await rawSubscribed(t, B, app, ch, 'on-b');
    await trigger(B, app, ch, 'pres-ev', { p: true });
    const { success, next } = await subscribeForReplay(t, A, app, ch, 'on-a');
    assert.deepEqual(success.data.presence.ids.sort(), ['on-a', 'on-b']);
    assert.equal(next.text, eventText('pres-ev', '{"p":true}', ch));
  });

  test('a client event relayed through Redis is not cached', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('private-cache-client-ab-');
    const sender = await rawSubscribed(t, B, app, ch);
    const peer = await rawSubscribed(t, A, app, ch);
    const mark = peer.mark();
    sender.send({ event: 'client-x', channel: ch, data: { c: 1 } });
    await peer.waitFor(isEvent('client-x', ch), { since: mark, what: 'the relayed client event' });
    const { next } = await subscribeForReplay(t, A, app, ch);
    assert.equal(next.text, cacheMissText(ch));
  });

  test('a burst of 5 subscribers over both nodes on an empty channel: one cache_miss webhook', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('cache-burst-ab-');
    const since = recv.mark();
    const subs = await Promise.all([A, B, A, B, A].map((node) => subscribeForReplay(t, node, app, ch)));
    for (const s of subs) assert.equal(s.next.text, cacheMissText(ch));
    const ev = await recv.waitEvent('cache_miss', { channel: ch, path: '/cache-cluster', since, timeout: 5000 });
    assert.deepEqual(ev, { name: 'cache_miss', channel: ch });
    await sleep(QUIET_MS);
    assert.equal(recv.events({ channel: ch, path: '/cache-cluster', since }).length, 1, 'one webhook cluster-wide');
  });

  test('the TTL is kept by Redis (cache_ttl_s = 2)', async (t) => {
    const [A, B] = srv.nodes;
    const ch = uid('cache-ttl-ab-');
    await trigger(B, shortApp, ch, 'brief', {});
    const hit = await subscribeForReplay(t, A, shortApp, ch);
    assert.equal(hit.next.event, 'brief');
    await sleep(2300);
    const miss = await subscribeForReplay(t, A, shortApp, ch);
    assert.equal(miss.next.text, cacheMissText(ch));
    assert.equal((await channelInfo(B, shortApp, ch)).json.cache, null);
  });

  test('the cache write goes in the atomic publish script, before the PUBLISH (Redis MONITOR)', async () => {
    const [, B] = srv.nodes;
    const ch = uid('cache-multi-');
    const plain = uid('plain-multi-');
    const monitor = await monitorRedis(srv.redis.port);
    const isSet = (l) => l.args[0] === 'SET' && l.args[1]?.endsWith(`:cache:${app.id}:${ch}`);
    const published = (channel) => (l) => l.args[0] === 'PUBLISH' && l.args[1]?.endsWith(`:ev:${app.id}:${channel}`);
    try {
      await trigger(B, app, ch, 'watched', {});
      await trigger(B, app, plain, 'not-cached', {});
      await waitFor(() => monitor.lines.some(published(plain)), 5000, { message: 'both PUBLISHes seen by MONITOR' });
    } finally {
      monitor.close();
    }
    const lines = monitor.lines;
    const set = lines.find(isSet);
    assert.ok(set, `no SET of the cache key; saw:\n${lines.map((l) => l.args.slice(0, 2).join(' ')).join('\n')}`);
    assert.deepEqual(set.args.slice(3), ['PX', '1800000'], 'TTL = cache_ttl_s in ms');
    // MONITOR lists a script's commands (client "lua") right after the EVALSHA that ran it, and
    // nothing runs in between: the SET, the log append and the PUBLISH are one atomic step.
    const at = lines.indexOf(set);
    assert.equal(set.client, 'lua', 'the SET runs inside the publish script');
    let call = at - 1;
    while (call >= 0 && lines[call].client === 'lua') call -= 1;
    assert.match(lines[call]?.args[0] ?? '', /^EVAL/i, 'the script call');
    let end = at;
    while (end + 1 < lines.length && lines[end + 1].client === 'lua') end += 1;
    const script = lines.slice(call + 1, end + 1);
    assert.deepEqual(
      script.map((l) => l.args[0]),
      ['SET', 'INCR', 'PEXPIRE', 'XADD', 'XTRIM', 'PEXPIRE', 'PUBLISH'],
      'one script: cache SET, replay log numbering and append, PUBLISH',
    );
    assert.ok(published(ch)(script[6]), script[6].args.join(' '));
    // a publish to a non-cache channel writes no cache entry
    assert.equal(lines.filter((l) => l.args[0] === 'SET' && l.args[1]?.includes(plain)).length, 0);
  });

  test('with Redis down a publish to a cache channel fails (503), never 200', async () => {
    const [, B] = srv.nodes;
    const ch = uid('cache-down-');
    await srv.redis.restart({
      whileDown: async () => {
        const res = await sdkResult(() => serverSdk(B, app).trigger(ch, 'lost', {}));
        assert.equal(res.status, 503, `${res.status} ${res.body}`);
      },
    });
  });
});
