// Raw WebSocket client (the `ws` package) for frame-exact assertions.

import { createHmac } from 'node:crypto';
import WebSocket from 'ws';

import { tryParseJSON } from './util.mjs';

export const SOCKET_ID_RE = /^\d+\.\d+$/;

/** Decodes one text frame the way pusher-js does, keeping the wire form around. */
export function decodeFrame(text, binary = false) {
  const frame = { text, binary, json: undefined, event: undefined, channel: undefined, user_id: undefined };
  try {
    frame.json = JSON.parse(text);
  } catch {
    return frame;
  }
  if (frame.json && typeof frame.json === 'object' && !Array.isArray(frame.json)) {
    frame.event = frame.json.event;
    frame.channel = frame.json.channel;
    frame.user_id = frame.json.user_id;
    frame.rawData = frame.json.data;
    frame.dataIsString = typeof frame.json.data === 'string';
    frame.data = tryParseJSON(frame.json.data);
  }
  return frame;
}

function describeFrames(frames, limit = 20) {
  const shown = frames.slice(-limit).map((f, i) => `  [${frames.length - Math.min(limit, frames.length) + i}] ${f.text.slice(0, 300)}`);
  return shown.length ? shown.join('\n') : '  (none)';
}

/** Predicates */
export const isEvent = (event, channel) => (f) => f.event === event && (channel === undefined || f.channel === channel);
export const isPusherError = (code) => (f) =>
  f.event === 'pusher:error' && (code === undefined || (f.data && typeof f.data === 'object' && f.data.code === code));
export const isSubscriptionResult = (channel) => (f) =>
  f.channel === channel &&
  (f.event === 'pusher_internal:subscription_succeeded' || f.event === 'pusher:subscription_error');

export class RawClient {
  /**
   * @param {string} url
   * @param {object} [opts]
   * @param {object} [opts.headers]   extra request headers
   * @param {string} [opts.origin]    Origin header
   * @param {boolean} [opts.autoPong] answer WebSocket pings automatically (ws default true)
   * @param {string} [opts.localAddress] source address (e.g. 127.0.0.2 for a second client IP)
   */
  constructor(url, { headers, origin, autoPong = true, localAddress } = {}) {
    this.url = url;
    this.frames = [];
    this.cursor = 0;
    this.closeInfo = undefined;
    this.error = undefined;
    this.wsPings = 0; // WebSocket-level pings received from the server
    this.wsPongs = 0; // WebSocket-level pongs received from the server
    this.socketId = undefined;
    this.activityTimeout = undefined;
    this._waiters = new Set();
    this.ws = new WebSocket(url, {
      headers,
      origin,
      autoPong,
      localAddress,
      perMessageDeflate: false,
      handshakeTimeout: 5000,
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('close', () => reject(new Error(`socket closed before open (${url})`)));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        this._notify();
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', (err) => {
      this.error = err;
    });
    this.ws.on('message', (data, isBinary) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data).toString('utf8');
      const frame = decodeFrame(text, isBinary);
      frame.index = this.frames.length;
      frame.at = Date.now();
      this.frames.push(frame);
      this._notify();
    });
    this.ws.on('ping', () => {
      this.wsPings += 1;
      this._notify();
    });
    this.ws.on('pong', () => {
      this.wsPongs += 1;
      this._notify();
    });
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  _notify() {
    for (const waiter of [...this._waiters]) waiter();
  }

  /** Index to pass as `since` to only consider frames received after this point. */
  mark() {
    return this.frames.length;
  }

  find(predicate, since = 0) {
    for (let i = since; i < this.frames.length; i += 1) {
      if (predicate(this.frames[i])) return this.frames[i];
    }
    return undefined;
  }

  filter(predicate, since = 0) {
    return this.frames.slice(since).filter(predicate);
  }

  /**
   * Resolves with the first frame at index >= `since` matching `predicate`; rejects after
   * `timeout` ms or when the socket closes first.
   */
  waitFor(predicate, { timeout = 5000, since = 0, what = 'matching frame' } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const done = (fn, value) => {
        clearTimeout(timer);
        this._waiters.delete(check);
        fn(value);
      };
      const check = () => {
        let frame;
        try {
          frame = this.find(predicate, since);
        } catch (err) {
          // A throwing predicate (an assertion in it) fails this wait; it must not stay
          // registered and throw again on every later frame.
          return done(reject, err);
        }
        if (frame) return done(resolve, frame);
        if (this.closeInfo) {
          return done(
            reject,
            new Error(
              `socket closed (code ${this.closeInfo.code} "${this.closeInfo.reason}") while waiting for ${what}; frames:\n${describeFrames(this.frames)}`,
            ),
          );
        }
        return undefined;
      };
      timer = setTimeout(
        () => done(reject, new Error(`timed out after ${timeout} ms waiting for ${what}; frames:\n${describeFrames(this.frames)}`)),
        timeout,
      );
      this._waiters.add(check);
      check();
    });
  }

  /** Next frame after the internal cursor matching `predicate`; advances the cursor past it. */
  async nextFrame(predicate = () => true, timeout = 5000) {
    const frame = await this.waitFor(predicate, { timeout, since: this.cursor, what: 'next matching frame' });
    this.cursor = frame.index + 1;
    return frame;
  }

  /** Waits until `predicate()` (about client state, e.g. wsPings) holds. */
  waitUntil(predicate, timeout = 5000, what = 'condition') {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        let holds;
        try {
          holds = predicate();
        } catch (err) {
          clearTimeout(timer);
          this._waiters.delete(check);
          reject(err);
          return;
        }
        if (holds) {
          clearTimeout(timer);
          this._waiters.delete(check);
          resolve();
        }
      };
      timer = setTimeout(() => {
        this._waiters.delete(check);
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
      }, timeout);
      this._waiters.add(check);
      check();
    });
  }

  /** Resolves with {code, reason} once closed; rejects after `timeout`. */
  waitClose(timeout = 5000) {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`socket not closed within ${timeout} ms; frames:\n${describeFrames(this.frames)}`)),
        timeout,
      );
      this.closed.then((info) => {
        clearTimeout(timer);
        resolve(info);
      });
    });
  }

  /** Sends an object (JSON-encoded) or a string / Buffer as-is (text frame). */
  send(payload, opts = {}) {
    const data = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
    this.ws.send(data, { binary: false, ...opts });
  }

  /** Waits for pusher:connection_established, records socket_id / activity_timeout. */
  async established(timeout = 5000) {
    const frame = await this.waitFor(isEvent('pusher:connection_established'), { timeout, what: 'pusher:connection_established' });
    this.socketId = frame.data?.socket_id;
    this.activityTimeout = frame.data?.activity_timeout;
    return frame;
  }

  /** Round-trips pusher:ping → pusher:pong; returns the pong frame. */
  async ping(timeout = 5000) {
    const since = this.mark();
    this.send({ event: 'pusher:ping', data: {} });
    return this.waitFor(isEvent('pusher:pong'), { since, timeout, what: 'pusher:pong' });
  }

  /**
   * Sends pusher:subscribe and resolves with the subscription_succeeded or
   * pusher:subscription_error frame for that channel.
   */
  async subscribe(channel, extra = {}, timeout = 5000) {
    const since = this.mark();
    this.send({ event: 'pusher:subscribe', data: { channel, ...extra } });
    return this.waitFor(isSubscriptionResult(channel), { since, timeout, what: `subscription result for ${channel}` });
  }

  /** Subscribes and asserts success; returns the subscription_succeeded frame. */
  async subscribeOk(channel, extra = {}, timeout = 5000) {
    const frame = await this.subscribe(channel, extra, timeout);
    if (frame.event !== 'pusher_internal:subscription_succeeded') {
      throw new Error(`expected subscription to ${channel} to succeed, got ${frame.text}`);
    }
    return frame;
  }

  /** Unsubscribes and waits for a ping round-trip so the server has processed it. */
  async unsubscribe(channel) {
    this.send({ event: 'pusher:unsubscribe', data: { channel } });
    await this.ping();
  }

  async close() {
    if (this.closeInfo) return;
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      try {
        this.ws.close(1000);
      } catch {
        this.ws.terminate();
      }
      const timer = setTimeout(() => this.ws.terminate(), 1000);
      await this.closed;
      clearTimeout(timer);
    } else if (this.ws.readyState === WebSocket.CLOSING) {
      const timer = setTimeout(() => this.ws.terminate(), 1000);
      await this.closed;
      clearTimeout(timer);
    }
  }

  terminate() {
    this.ws.terminate();
  }
}

/**
 * Free-function form of RawClient#nextFrame: the next frame after the client's cursor that
 * matches `predicate` (advances the cursor). Rejects after `timeoutMs` or on close.
 */
export function nextFrame(client, predicate = () => true, timeoutMs = 5000) {
  return client.nextFrame(predicate, timeoutMs);
}

/** Channel auth string `{key}:{hmac}` computed locally (for raw sockets). */
export function channelAuth(app, socketId, channel, channelData, secret = app.secret) {
  const toSign = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return `${app.key}:${createHmac('sha256', secret).update(toSign, 'utf8').digest('hex')}`;
}

/** Data for a signed presence subscribe: {auth, channel_data}. */
export function presenceSubscribeData(app, socketId, channel, member) {
  const channelData = typeof member === 'string' ? member : JSON.stringify(member);
  return { auth: channelAuth(app, socketId, channel, channelData), channel_data: channelData };
}

/**
 * Opens a raw socket to `node` for `app` and (by default) waits for connection_established.
 * The socket is closed automatically when test `t` ends.
 *   opts.query    query string (default pusher-js's); null → none
 *   opts.key      override the app key in the path
 *   opts.path     full path override (e.g. '/nope')
 *   opts.establish false → do not wait for connection_established
 */
export async function connectRaw(t, node, app, opts = {}) {
  const { query, key, path, establish = true, ...wsOpts } = opts;
  let url = node.wsUrl(key ?? app.key, query);
  if (path) url = `ws://${node.host}:${node.port}${path}`;
  const client = new RawClient(url, wsOpts);
  if (t) t.after(() => client.close());
  if (establish) {
    await client.established();
    if (!SOCKET_ID_RE.test(client.socketId ?? '')) {
      throw new Error(`connection_established carried an invalid socket_id: ${client.frames[0]?.text}`);
    }
  }
  return client;
}

/**
 * What `subscribeOk` needs besides the channel: a presence member `{user_id: userId}` (default
 * 'anon') with its auth on presence- channels, the auth on private- channels, nothing otherwise.
 */
export function subscribeExtra(app, raw, channel, userId) {
  if (channel.startsWith('presence-')) return presenceSubscribeData(app, raw.socketId, channel, { user_id: userId ?? 'anon' });
  if (channel.startsWith('private-')) return { auth: channelAuth(app, raw.socketId, channel) };
  return {};
}

/** A raw socket on `node`, subscribed to `channel` (signed as `subscribeExtra` does). */
export async function rawSubscribed(t, node, app, channel, userId) {
  const raw = await connectRaw(t, node, app);
  await raw.subscribeOk(channel, subscribeExtra(app, raw, channel, userId));
  return raw;
}
