// Cache channels (reference §7): helpers shared by cache.test.mjs and cache-cluster.test.mjs.

import assert from 'node:assert/strict';
import net from 'node:net';

import { sdkResult, serverSdk } from './clients.mjs';
import { connectRaw, subscribeExtra } from './raw.mjs';

/** REST trigger through the official SDK on `node`; asserts 200. */
export async function trigger(node, app, channels, event, data, params) {
  const res = await sdkResult(() => serverSdk(node, app).trigger(channels, event, data, params));
  assert.equal(res.status, 200, `trigger on ${node.name} → ${res.status} ${res.body}`);
  return res;
}

/** `GET /channels/{channel}?info=…` through the SDK on `node`: {status, json, body}. */
export function channelInfo(node, app, channel, info = 'cache') {
  return sdkResult(() => serverSdk(node, app).get({ path: `/channels/${channel}`, params: { info } }));
}

/**
 * Opens a raw socket on `node`, subscribes to `channel` (signed as needed; `userId` on presence
 * channels) and returns {raw, success, next}: the success frame and the first frame on the
 * channel after it (the replayed event or pusher:cache_miss). Asserts the success comes first.
 */
export async function subscribeForReplay(t, node, app, channel, userId) {
  const raw = await connectRaw(t, node, app);
  const since = raw.mark();
  const success = await raw.subscribeOk(channel, subscribeExtra(app, raw, channel, userId));
  const next = await raw.waitFor((f) => f.channel === channel && f.index > success.index, {
    since,
    what: `the frame after subscription_succeeded on ${channel}`,
  });
  const before = raw.filter((f) => f.channel === channel && f.index < success.index, since);
  assert.deepEqual(before.map((f) => f.text), [], `nothing on ${channel} before its subscription_succeeded`);
  return { raw, success, next };
}

/** The exact frame a cache miss is (with the recommended `"data":"{}"`). */
export const cacheMissText = (channel) => JSON.stringify({ event: 'pusher:cache_miss', data: '{}', channel });

/** The exact frame of a replayed event: an ordinary channel event. */
export const eventText = (event, data, channel) => JSON.stringify({ event, data, channel });

/**
 * Watches every command a Redis executes (`MONITOR` on a raw connection) until `close()`.
 * `lines` holds {client, args} per command, in execution order (`client` is the address of the
 * connection that sent it; args are unquoted but keep MONITOR's escapes for binary bytes).
 */
export async function monitorRedis(port, host = '127.0.0.1') {
  const socket = net.connect(port, host);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const monitor = { lines: [], close: () => socket.destroy() };
  let buffer = '';
  let started;
  const ready = new Promise((resolve) => (started = resolve));
  socket.setEncoding('latin1');
  socket.on('data', (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (line === '+OK') {
        started();
        continue;
      }
      const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
      if (!m) continue;
      const args = [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => a[1]);
      monitor.lines.push({ client: m[1], args });
    }
  });
  socket.on('error', () => {});
  socket.write('MONITOR\r\n');
  await ready;
  return monitor;
}
