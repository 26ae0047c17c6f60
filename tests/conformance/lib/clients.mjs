// Official clients: pusher-js (browser client, Node build) and the `pusher` server SDK.

import Pusher from 'pusher-js';
import PusherServer from 'pusher';

import { waitFor, waitOnChange, withTimeout } from './util.mjs';

Pusher.logToConsole = false;

export { Pusher, PusherServer };

/** Master key used for private-encrypted- channels (protocol reference §12.4). */
export const MASTER_KEY_BASE64 = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';

/**
 * Server SDK pointed at `node` for `app`.
 *   opts.secret        override the secret (bad-signature tests)
 *   opts.key           override the key
 *   opts.masterKey     encryptionMasterKeyBase64 (defaults to MASTER_KEY_BASE64)
 */
export function serverSdk(node, app, opts = {}) {
  return new PusherServer({
    appId: opts.appId ?? app.id,
    key: opts.key ?? app.key,
    secret: opts.secret ?? app.secret,
    host: node.host,
    port: node.port,
    useTLS: false,
    timeout: 10_000,
    encryptionMasterKeyBase64: opts.masterKey ?? MASTER_KEY_BASE64,
  });
}

/**
 * Runs an SDK call and normalises the outcome to {status, body, json}: 200 responses and
 * RequestErrors (status ≥ 400) alike. Network errors are rethrown.
 */
export async function sdkResult(promiseOrFn) {
  try {
    const res = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
    const body = await res.text();
    return { status: res.status, body, json: parseOrUndefined(body), headers: res.headers };
  } catch (err) {
    if (err && typeof err.status === 'number') {
      return { status: err.status, body: err.body, json: parseOrUndefined(err.body) };
    }
    throw err;
  }
}

function parseOrUndefined(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** GET via the SDK; returns the parsed JSON body, throwing on non-200. */
export async function sdkGetJSON(sdk, path, params) {
  const res = await sdkResult(() => sdk.get({ path, params }));
  if (res.status !== 200) {
    throw new Error(`GET ${path} ${JSON.stringify(params ?? {})} → ${res.status} ${res.body}`);
  }
  return res.json;
}

// ---------------------------------------------------------------------------------------------
// Channel authorisation for pusher-js (customHandler)

/**
 * Builds a pusher-js channelAuthorization.customHandler backed by the official SDK.
 *   opts.presence(channelName, socketId) → presence data {user_id, user_info?} (for presence- channels)
 *   opts.mode(channelName) → 'ok' | 'wrong-secret' | 'other-socket' | 'missing'
 */
export function sdkAuthorizer(sdk, { presence, mode } = {}) {
  const wrongSdk = new PusherServer({
    appId: sdk.config.appId,
    key: sdk.config.token.key,
    secret: 'definitely-not-the-secret',
    host: '127.0.0.1',
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
  });
  return ({ socketId, channelName }) => {
    const presenceData = channelName.startsWith('presence-') && presence ? presence(channelName, socketId) : undefined;
    const good = sdk.authorizeChannel(socketId, channelName, presenceData);
    const m = typeof mode === 'function' ? mode(channelName) : mode ?? 'ok';
    switch (m) {
      case 'ok':
        return good;
      case 'wrong-secret':
        return { ...good, auth: wrongSdk.authorizeChannel(socketId, channelName, presenceData).auth };
      case 'other-socket': {
        const other = socketId === '1234.5678' ? '8765.4321' : '1234.5678';
        return { ...good, auth: sdk.authorizeChannel(other, channelName, presenceData).auth };
      }
      case 'missing':
        return { ...good, auth: '' };
      default:
        throw new Error(`unknown auth mode ${m}`);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// pusher-js wrapper

export class PusherClient {
  constructor(pusher) {
    this.pusher = pusher;
    this.messages = []; // every decoded frame seen by the connection (connection 'message' events)
    this.errors = []; // connection 'error' events
    this.states = [];
    this.events = []; // {channel, event, data, metadata} from recorded channels
    this._waiters = new Set();
    pusher.connection.bind('message', (m) => {
      this.messages.push(m);
      this._notify();
    });
    pusher.connection.bind('error', (e) => {
      this.errors.push(e);
      this._notify();
    });
    pusher.connection.bind('state_change', ({ current }) => {
      this.states.push(current);
      this._notify();
    });
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  get state() {
    return this.pusher.connection.state;
  }

  get socketId() {
    return this.pusher.connection.socket_id;
  }

  /** Resolves once `predicate()` is true (re-checked on every client-side event). */
  until(predicate, timeout = 5000, what = 'condition') {
    return waitOnChange(
      this._waiters,
      predicate,
      timeout,
      () =>
        `timed out after ${timeout} ms waiting for ${what}; state=${this.state}; last messages:\n` +
        this.messages
          .slice(-15)
          .map((m) => `  ${JSON.stringify(m).slice(0, 300)}`)
          .join('\n'),
    );
  }

  waitState(states, timeout = 10_000) {
    const wanted = Array.isArray(states) ? states : [states];
    return this.until(() => wanted.includes(this.state), timeout, `connection state in ${wanted.join('/')}`);
  }

  /**
   * Subscribes and resolves with {channel, data} on pusher:subscription_succeeded; rejects with
   * an Error carrying `.subscriptionError` (the event data) on pusher:subscription_error.
   * Every non-internal event on the channel is recorded into `this.events`.
   */
  subscribe(name, timeout = 5000) {
    const channel = this.pusher.subscribe(name);
    this.record(channel);
    return withTimeout(
      new Promise((resolve, reject) => {
        const ok = (data) => {
          cleanup();
          resolve({ channel, data });
        };
        const fail = (data) => {
          cleanup();
          const err = new Error(`subscription to ${name} failed: ${JSON.stringify(data)}`);
          err.subscriptionError = data;
          reject(err);
        };
        const cleanup = () => {
          channel.unbind('pusher:subscription_succeeded', ok);
          channel.unbind('pusher:subscription_error', fail);
        };
        channel.bind('pusher:subscription_succeeded', ok);
        channel.bind('pusher:subscription_error', fail);
      }),
      timeout,
      `subscription result for ${name}`,
    );
  }

  /** Subscribes expecting failure; resolves with the pusher:subscription_error data. */
  async subscribeError(name, timeout = 5000) {
    try {
      await this.subscribe(name, timeout);
    } catch (err) {
      if (err.subscriptionError !== undefined) return err.subscriptionError;
      throw err;
    }
    throw new Error(`subscription to ${name} unexpectedly succeeded`);
  }

  /** Records every event emitted on `channel` (with metadata) into this.events. */
  record(channel) {
    if (channel.__conformanceRecorded) return;
    channel.__conformanceRecorded = true;
    const original = channel.emit.bind(channel);
    channel.emit = (eventName, data, metadata) => {
      this.events.push({ channel: channel.name, event: eventName, data, metadata });
      this._notify();
      return original(eventName, data, metadata);
    };
  }

  /** Waits for a recorded channel event. */
  waitEvent(channelName, eventName, predicate = () => true, timeout = 5000) {
    return this.until(
      () => this.events.find((e) => e.channel === channelName && e.event === eventName && predicate(e)),
      timeout,
      `event ${eventName} on ${channelName}`,
    );
  }

  /** Recorded events matching channel/event. */
  eventsFor(channelName, eventName) {
    return this.events.filter((e) => e.channel === channelName && (eventName === undefined || e.event === eventName));
  }

  /** Raw (connection-level) messages matching channel/event — independent of channel objects. */
  messagesFor(channelName, eventName) {
    return this.messages.filter((m) => m.channel === channelName && (eventName === undefined || m.event === eventName));
  }

  waitMessage(predicate, timeout = 5000, what = 'message') {
    return this.until(() => this.messages.find(predicate), timeout, what);
  }

  disconnect() {
    try {
      this.pusher.disconnect();
    } catch {
      /* ignore */
    }
  }
}

/**
 * Creates a pusher-js client for `app` on `node` and waits until it is connected.
 *   opts.authorize(params) → auth data (default: SDK-signed, see sdkAuthorizer)
 *   opts.presence(channel, socketId) → presence member for the default authorizer
 *   opts.sdk          SDK used by the default authorizer
 *   opts.waitConnected false → return immediately
 * The client is disconnected when test `t` ends.
 */
export async function connectPusher(t, node, app, opts = {}) {
  const sdk = opts.sdk ?? serverSdk(node, app);
  const authorize = opts.authorize ?? sdkAuthorizer(sdk, { presence: opts.presence, mode: opts.mode });
  const pusher = new Pusher(app.key, {
    wsHost: node.host,
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'local',
    disableStats: true,
    channelAuthorization: {
      customHandler: (params, callback) => {
        Promise.resolve()
          .then(() => authorize(params))
          .then(
            (data) => callback(null, data),
            (err) => callback(err instanceof Error ? err : new Error(String(err)), null),
          );
      },
    },
    ...(opts.pusherOptions ?? {}),
  });
  const client = new PusherClient(pusher);
  if (t) t.after(() => client.disconnect());
  if (opts.waitConnected !== false) {
    await client.waitState('connected', opts.timeout ?? 10_000);
  }
  return client;
}

/** Waits until every client has seen a message with `event` on `channel` (positive control). */
export async function allReceived(clients, channel, event, timeout = 5000) {
  await Promise.all(
    clients.map((c) => c.waitMessage((m) => m.channel === channel && m.event === event, timeout, `${event} on ${channel}`)),
  );
}

export { waitFor };

/** The sorted user ids of a presence channel, read through the REST API of `node`. */
export async function presenceUserIds(app, node, channel) {
  const res = await sdkResult(() => serverSdk(node, app).get({ path: `/channels/${channel}/users` }));
  if (res.status !== 200) throw new Error(`GET /channels/${channel}/users answered ${res.status}: ${res.body}`);
  return res.json.users.map((u) => u.id).sort();
}
