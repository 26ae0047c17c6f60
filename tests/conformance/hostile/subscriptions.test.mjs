// Subscription abuse (issue 9, part 3): a cap on subscriptions per connection, a rate limit on
// subscribe requests, duplicate subscribes, and the audit log of denied authentication.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { channelAuth, connectRaw, isEvent, isSubscriptionResult } from '../lib/raw.mjs';
import { signedFetch } from '../lib/rest.mjs';
import { makeApp, startServer } from '../lib/server.mjs';
import { sleep } from '../lib/util.mjs';
import { metric } from './lib.mjs';

const stripAnsi = (text) => text.replace(/\u001b\[[0-9;]*m/g, '');

let node;
const capApp = makeApp(); // defaults: 200 subscriptions, 50 subscribe requests per second
// enable_subscription_count: the duplicate-subscribe test reads info=subscription_count.
const rateApp = makeApp({
  max_subscriptions_per_connection: 20,
  max_subscription_requests_per_second: 5,
  enable_subscription_count: true,
});
before(async () => {
  node = await startServer({ apps: [capApp, rateApp] });
});
after(async () => node?.stop());

const rejections = (app, limit) => metric(node, 'ferrocast_limit_rejections_total', { app_id: app.id, limit });

/** Sends subscribes to `channels` at once and collects each channel's result frame. */
async function subscribeAll(raw, channels) {
  const since = raw.mark();
  for (const channel of channels) raw.send({ event: 'pusher:subscribe', data: { channel } });
  return Promise.all(channels.map((c) => raw.waitFor(isSubscriptionResult(c), { since, timeout: 10_000 })));
}

describe('max_subscriptions_per_connection', () => {
  test('the 201st subscription is refused with LimitReached 403; the socket stays open', async (t) => {
    const raw = await connectRaw(t, node, capApp);
    const before = await rejections(capApp, 'max_subscriptions_per_connection');
    const channels = Array.from({ length: 200 }, (_, i) => `cap-${i}`);
    const results = await subscribeAll(raw, channels);
    assert.ok(results.every((f) => f.event === 'pusher_internal:subscription_succeeded'), 'a burst of 200 is allowed');
    await sleep(100); // let the subscribe bucket refill a token: this is about the cap, not the rate
    const since = raw.mark();
    const refused = await raw.subscribe('cap-200');
    assert.equal(refused.event, 'pusher:subscription_error');
    assert.equal(refused.data.type, 'LimitReached');
    assert.equal(refused.data.status, 403);
    assert.match(refused.data.error, /max_subscriptions_per_connection/);
    await raw.waitFor(isEvent('pusher:error'), { since, what: 'the official-style pusher:error' });
    await raw.ping();
    assert.equal(await rejections(capApp, 'max_subscriptions_per_connection'), before + 1);
    // Leaving a channel frees a slot.
    await raw.unsubscribe('cap-0');
    await sleep(50);
    assert.equal((await raw.subscribe('cap-200')).event, 'pusher_internal:subscription_succeeded');
  });
});

describe('max_subscription_requests_per_second', () => {
  test('a burst beyond the bucket is refused with LimitReached 429, then the rate recovers', async (t) => {
    const raw = await connectRaw(t, node, rateApp);
    const before = await rejections(rateApp, 'max_subscription_requests_per_second');
    const channels = Array.from({ length: 30 }, (_, i) => `rate-${i}`);
    const results = await subscribeAll(raw, channels);
    const ok = results.filter((f) => f.event === 'pusher_internal:subscription_succeeded');
    const limited = results.filter((f) => f.event === 'pusher:subscription_error');
    // Burst 20 (the subscription cap) plus at most a token or two refilled during the burst.
    assert.ok(ok.length >= 20 && ok.length <= 22, `${ok.length} accepted`);
    assert.equal(ok.length + limited.length, 30);
    for (const f of limited) {
      assert.equal(f.data.type, 'LimitReached');
      assert.equal(f.data.status, 429);
      assert.match(f.data.error, /max_subscription_requests_per_second/);
    }
    assert.equal(await rejections(rateApp, 'max_subscription_requests_per_second'), before + limited.length);
    assert.ok(raw.isOpen);
    // Unsubscribes are always honoured, even with an empty bucket.
    for (const f of ok) raw.send({ event: 'pusher:unsubscribe', data: { channel: f.channel } });
    await raw.ping();
    const res = await signedFetch(node, rateApp, { method: 'GET', path: `/channels/${ok[0].channel}` });
    assert.equal(res.json.occupied, false, 'unsubscribed although rate-limited');
    // 5 per second: after 1.1 s there is room again.
    await sleep(1100);
    assert.equal((await raw.subscribe('rate-again')).event, 'pusher_internal:subscription_succeeded');
  });

  test('a duplicate subscribe is answered again, counted once, delivered once', async (t) => {
    const raw = await connectRaw(t, node, rateApp);
    await raw.subscribeOk('dup');
    const again = await raw.subscribe('dup');
    assert.equal(again.event, 'pusher_internal:subscription_succeeded');
    const counts = await signedFetch(node, rateApp, {
      method: 'GET',
      path: '/channels/dup',
      params: { info: 'subscription_count' },
    });
    assert.equal(counts.status, 200);
    assert.equal(counts.json.subscription_count, 1);
    const since = raw.mark();
    const res = await signedFetch(node, rateApp, { path: '/events', body: { name: 'once', channel: 'dup', data: '{}' } });
    assert.equal(res.status, 200);
    await raw.waitFor(isEvent('once', 'dup'), { since });
    await raw.ping();
    assert.equal(raw.filter(isEvent('once', 'dup'), since).length, 1);
  });
});

describe('audit log of denied authentication', () => {
  test('a bad subscription signature: one audit line (no signature), counted by reason', async (t) => {
    const raw = await connectRaw(t, node, capApp);
    const before = await metric(node, 'ferrocast_auth_denied_total', { reason: 'subscription_signature' });
    const auth = channelAuth(capApp, raw.socketId, 'private-audited', undefined, 'wrong-secret');
    const refused = await raw.subscribe('private-audited', { auth });
    assert.equal(refused.data.status, 401);
    assert.equal(await metric(node, 'ferrocast_auth_denied_total', { reason: 'subscription_signature' }), before + 1);
    let line;
    const deadline = Date.now() + 3000;
    while (!line && Date.now() < deadline) {
      line = stripAnsi(node.stdout + node.stderr)
        .split('\n')
        .find((l) => l.includes('authentication denied') && l.includes('private-audited'));
      if (!line) await sleep(50);
    }
    assert.ok(line, `no audit line in:\n${node.stdout.slice(-2000)}`);
    assert.match(line, /WARN/);
    assert.match(line, /subscription_signature/);
    assert.ok(line.includes(raw.socketId), line);
    assert.ok(line.includes(capApp.id), line);
    assert.ok(!line.includes(auth.split(':')[1]), 'never the signature');
    assert.ok(!line.includes(capApp.secret), 'never the secret');
  });

  test('unknown app key and bad REST signatures are audited and counted', async (t) => {
    const unknown = await metric(node, 'ferrocast_auth_denied_total', { reason: 'unknown_app_key' });
    const raw = await connectRaw(t, node, capApp, { key: 'no-such-key', establish: false });
    const { code } = await raw.waitClose();
    assert.equal(code, 4001);
    assert.equal(await metric(node, 'ferrocast_auth_denied_total', { reason: 'unknown_app_key' }), unknown + 1);
    const rest = await metric(node, 'ferrocast_auth_denied_total', { reason: 'rest_signature' });
    const wrong = { ...capApp, secret: 'not-the-secret' };
    const res = await signedFetch(node, wrong, { path: '/events', body: { name: 'x', channel: 'c', data: '{}' } });
    assert.equal(res.status, 401);
    assert.equal(await metric(node, 'ferrocast_auth_denied_total', { reason: 'rest_signature' }), rest + 1);
    const stale = await metric(node, 'ferrocast_auth_denied_total', { reason: 'rest_timestamp' });
    const old = await signedFetch(node, capApp, {
      path: '/events',
      body: { name: 'x', channel: 'c', data: '{}' },
      overrides: { timestamp: Math.floor(Date.now() / 1000) - 3600 },
    });
    assert.equal(old.status, 401);
    assert.equal(await metric(node, 'ferrocast_auth_denied_total', { reason: 'rest_timestamp' }), stale + 1);
  });

  test('a flood of denials is rate-limited in the log but fully counted', async (t) => {
    const raw = await connectRaw(t, node, capApp);
    const before = await metric(node, 'ferrocast_auth_denied_total', { reason: 'subscription_signature' });
    const linesBefore = stripAnsi(node.stdout + node.stderr).split('\n').filter((l) => l.includes('authentication denied')).length;
    const channels = Array.from({ length: 150 }, (_, i) => `private-flood-${i}`);
    const since = raw.mark();
    for (const channel of channels) raw.send({ event: 'pusher:subscribe', data: { channel, auth: `${capApp.key}:00` } });
    await Promise.all(channels.map((c) => raw.waitFor(isSubscriptionResult(c), { since, timeout: 10_000 })));
    assert.equal(await metric(node, 'ferrocast_auth_denied_total', { reason: 'subscription_signature' }), before + 150);
    await sleep(200);
    const lines = stripAnsi(node.stdout + node.stderr).split('\n').filter((l) => l.includes('authentication denied'));
    const written = lines.length - linesBefore;
    // 20 lines per second; the burst took well under 3 s.
    assert.ok(written >= 1 && written <= 60, `${written} audit lines for 150 denials`);
  });
});
