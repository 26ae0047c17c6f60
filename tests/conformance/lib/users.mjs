// User sign-in helpers (protocol reference §6): signing with the official server SDK's
// `authenticateUser`, raw `pusher:signin` frames, and pusher-js clients that sign in.

import { Pusher, PusherClient, serverSdk } from './clients.mjs';
import { connectRaw } from './raw.mjs';

/** `{auth, user_data}` for `userData` (an object), signed by the official SDK for `socketId`. */
export function signinData(app, socketId, userData, { secret } = {}) {
  return serverSdk({ host: '127.0.0.1', port: 1 }, app, { secret }).authenticateUser(socketId, userData);
}

/** The frame that answers a sign-in: `pusher:signin_success` or `pusher:error`. */
export const isSigninResult = (f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error';

/**
 * Sends `pusher:signin` on a raw socket and resolves with the answer (signin_success or
 * pusher:error frame). `data` is `{auth, user_data}` as sent (see signinData).
 */
export async function rawSignin(raw, data, timeout = 5000) {
  const since = raw.mark();
  raw.send({ event: 'pusher:signin', data });
  return raw.waitFor(isSigninResult, { since, timeout, what: 'pusher:signin_success or pusher:error' });
}

/**
 * Signs `raw` in as `userData` and asserts success; returns the signin_success frame. With a
 * non-empty watchlist it also waits for the initial watchlist frame, so a later `raw.mark()`
 * only sees changes.
 */
export async function rawSigninOk(app, raw, userData) {
  const frame = await rawSignin(raw, signinData(app, raw.socketId, userData));
  if (frame.event !== 'pusher:signin_success') {
    throw new Error(`expected signin_success for ${JSON.stringify(userData)}, got ${frame.text}`);
  }
  if (userData.watchlist?.length) {
    await raw.waitFor((f) => f.event === 'pusher_internal:watchlist_events', {
      since: frame.index + 1,
      what: 'the initial watchlist frame',
    });
  }
  return frame;
}

/** A raw socket on `node`, signed in as `userData` (an object with at least `id`). */
export async function rawSignedIn(t, node, app, userData) {
  const raw = await connectRaw(t, node, app);
  raw.signin = await rawSigninOk(app, raw, userData);
  return raw;
}

/** `pusher_internal:watchlist_events` frames received at or after `since`. */
export function watchlistFrames(raw, since = 0) {
  return raw.filter((f) => f.event === 'pusher_internal:watchlist_events', since);
}

/** Every `{name, id}` watchlist change received at or after `since`, in order. */
export function watchlistChanges(raw, since = 0) {
  const out = [];
  for (const f of watchlistFrames(raw, since)) {
    for (const e of f.data?.events ?? []) for (const id of e.user_ids ?? []) out.push(`${e.name} ${id}`);
  }
  return out;
}

/** Waits for a watchlist frame announcing `name` (online/offline) for `id`. */
export function waitWatch(raw, name, id, { since = 0, timeout = 5000 } = {}) {
  return raw.waitFor(
    (f) => f.event === 'pusher_internal:watchlist_events' && (f.data?.events ?? []).some((e) => e.name === name && (e.user_ids ?? []).includes(id)),
    { since, timeout, what: `watchlist ${name} ${id}` },
  );
}

/**
 * A pusher-js client for `app` on `node` that signs in as `userData` (via
 * userAuthentication.customHandler backed by the SDK) and waits until signin is done.
 * `client.userEvents` records events emitted on `pusher.user`; `client.watchEvents` those on
 * `pusher.user.watchlist`.
 */
export async function connectSignedInPusher(t, node, app, userData, { timeout = 10_000 } = {}) {
  const sdk = serverSdk(node, app);
  const pusher = new Pusher(app.key, {
    wsHost: node.host,
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'local',
    disableStats: true,
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        try {
          callback(null, sdk.authenticateUser(socketId, userData));
        } catch (err) {
          callback(err, null);
        }
      },
    },
  });
  const client = new PusherClient(pusher);
  client.userEvents = [];
  client.watchEvents = [];
  pusher.user.bind_global((event, data) => {
    client.userEvents.push({ event, data });
    client._notify();
  });
  for (const name of ['online', 'offline']) {
    pusher.user.watchlist.bind(name, (data) => {
      client.watchEvents.push({ name, data });
      client._notify();
    });
  }
  if (t) t.after(() => client.disconnect());
  pusher.signin();
  await client.waitState('connected', timeout);
  await client.until(() => pusher.user.user_data?.id === userData.id, timeout, `signin as ${userData.id}`);
  return client;
}
