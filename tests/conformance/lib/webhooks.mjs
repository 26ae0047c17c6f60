// A real webhook endpoint for the conformance suite: an HTTP server on 127.0.0.1 (free port)
// that records every request ferrocast POSTs to it and checks it with the official `pusher` SDK
// (`pusher.webhook({headers, rawBody}).isValid()` / `.getEvents()`), against the app whose key
// the request names.
//
//   const recv = new WebhookReceiver();
//   recv.addApp(app);                       // key/secret used to validate requests naming app.key
//   await recv.start();
//   app.webhooks = [{ url: recv.url('/all') }];
//   recv.failNext(2, { path: '/retry' });   // the next 2 requests to /retry get 500
//   recv.always(500, { path: '/dead' });    // every request to /dead gets 500 (until .cancel())
//   const h = recv.hold({ path: '/b' });    // hold the next request to /b; h.release(status)
//   await recv.waitForEvents((evs) => evs.some(...), { channel, path, timeout });
//   await recv.waitEvent('member_removed', { userId, channel, path, timeout });
//   recv.sequence({ channel, path })        // ['channel_occupied', 'member_added u1', ...] (2xx only)
//   recv.events({ channel, path, delivered })   // every event of every matching request, in arrival order
//   await recv.stop();
//
// Each request record: {seq, at, method, path, headers (lowercase names, as node gives them),
// contentType, key, signature, rawBody, body, app, valid, validWithWrongSecret, sdkEvents,
// status (the answer given, once given), respondedAt}. `at` is when the whole body had arrived.
//
// Each flattened event is a shallow copy of the event object from the body (so
// `assert.deepEqual(ev, {name, channel})` compares the wire fields only) with non-enumerable
// `request` (its request record), `at` (the request's `at`) and `position` (index in the body).

import assert from 'node:assert/strict';
import http from 'node:http';

import { after, before } from 'node:test';

import PusherServer from 'pusher';

import { trackFailures } from './server.mjs';
import { waitOnChange } from './util.mjs';

const DEFAULT_TIMEOUT_MS = 5000;

export class WebhookReceiver {
  constructor({ apps = [] } = {}) {
    this.apps = new Map(); // key → app
    for (const app of apps) this.addApp(app);
    this.requests = [];
    this.rules = []; // {path, match, status, remaining, hold}
    this.held = new Set(); // responses being held: {res, record, resolveRelease}
    this._waiters = new Set();
    this._server = undefined;
    this._port = undefined;
    this._seq = 0;
  }

  /** Registers the key/secret requests naming `app.key` are validated against. */
  addApp(app) {
    this.apps.set(app.key, app);
    return app;
  }

  /** Listens on `port` (default: a free one; pass the old port to bring a stopped receiver back). */
  async start({ port = 0 } = {}) {
    if (this._server) return this;
    const server = http.createServer((req, res) => this._onRequest(req, res));
    server.keepAliveTimeout = 5000;
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this._server = server;
    this._port = server.address().port;
    return this;
  }

  get port() {
    if (this._port === undefined) throw new Error('webhook receiver not started');
    return this._port;
  }

  /** URL of `path` on this receiver (the receiver answers every path). */
  url(path = '/') {
    return `http://127.0.0.1:${this.port}${path.startsWith('/') ? path : `/${path}`}`;
  }

  // -------------------------------------------------------------------------------------------
  // Answers. Rules are tried in the order they were added; the first one that matches a request
  // (path and `match(record)`) and still has uses answers it. Without a rule: 200.

  /** The next `n` matching requests are answered `status` (default 500). */
  failNext(n, { status = 500, path, match } = {}) {
    return this._addRule({ path, match, status, remaining: n });
  }

  /** Every matching request is answered `status` until the returned rule is `cancel()`ed. */
  always(status, { path, match } = {}) {
    return this._addRule({ path, match, status, remaining: Infinity });
  }

  /**
   * Holds the response of the next `count` matching requests until `release(status)` (default
   * `status`, 200). The handle's `waitHeld(n, timeout)` waits until `n` requests are being held.
   */
  hold({ path, match, count = 1, status = 200 } = {}) {
    const rule = this._addRule({ path, match, status, remaining: count, hold: true });
    rule.heldRecords = [];
    rule.release = (releaseStatus = status) => {
      rule.cancel();
      rule.releasedWith = releaseStatus;
      for (const h of [...this.held]) {
        if (h.rule === rule) h.answer(releaseStatus);
      }
    };
    rule.waitHeld = (n = 1, timeout = DEFAULT_TIMEOUT_MS) =>
      this._wait(() => rule.heldRecords.length >= n, timeout, `${n} held request(s) on ${path ?? 'any path'}`);
    return rule;
  }

  _addRule(rule) {
    rule.cancelled = false;
    rule.used = 0;
    rule.cancel = () => {
      rule.cancelled = true;
    };
    this.rules.push(rule);
    return rule;
  }

  _ruleFor(record) {
    for (const rule of this.rules) {
      if (rule.cancelled || rule.used >= rule.remaining) continue;
      if (rule.path !== undefined && rule.path !== record.path) continue;
      if (rule.match && !rule.match(record)) continue;
      rule.used += 1;
      return rule;
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------

  _onRequest(req, res) {
    const seq = ++this._seq;
    const startedAt = Date.now();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const record = this._record(seq, startedAt, req, rawBody);
      this.requests.push(record);
      this.requests.sort((a, b) => a.seq - b.seq);
      const rule = this._ruleFor(record);
      const answer = (status) => {
        if (record.status !== undefined) return;
        record.status = status;
        record.respondedAt = Date.now();
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status >= 200 && status < 300 ? 'ok' : `status ${status}`);
        this._notify();
      };
      if (rule?.hold) {
        const entry = { rule, record, answer: (s) => {
          this.held.delete(entry);
          answer(s);
        } };
        this.held.add(entry);
        rule.heldRecords.push(record);
        record.held = true;
        // a hold released before this request arrived answers at once
        if (rule.releasedWith !== undefined) entry.answer(rule.releasedWith);
        this._notify();
        return;
      }
      answer(rule ? rule.status : 200);
    });
  }

  _record(seq, startedAt, req, rawBody) {
    const headers = { ...req.headers };
    const key = headers['x-pusher-key'];
    const app = key === undefined ? undefined : this.apps.get(key);
    const record = {
      seq,
      startedAt,
      at: Date.now(),
      method: req.method,
      url: req.url,
      path: req.url.split('?')[0],
      headers,
      contentType: headers['content-type'],
      key,
      signature: headers['x-pusher-signature'],
      rawBody,
      body: undefined,
      app,
      valid: false,
      validWithWrongSecret: false,
      sdkEvents: undefined,
      validationError: undefined,
      status: undefined,
      respondedAt: undefined,
    };
    try {
      record.body = JSON.parse(rawBody);
    } catch {
      /* not JSON: stays undefined */
    }
    if (!app) {
      record.validationError = `no registered app with key ${JSON.stringify(key)}`;
      return record;
    }
    try {
      const sdk = new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
      const webhook = sdk.webhook({ headers, rawBody });
      record.valid = webhook.isValid();
      if (record.valid) record.sdkEvents = webhook.getEvents();
      else record.validationError = 'pusher SDK: webhook().isValid() is false';
      // negative control: the same request must not validate against another secret
      const wrong = new PusherServer({ appId: app.id, key: app.key, secret: `${app.secret}-wrong` });
      record.validWithWrongSecret = wrong.webhook({ headers, rawBody }).isValid();
    } catch (err) {
      record.valid = false;
      record.validationError = `pusher SDK threw: ${err.message}`;
    }
    return record;
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  _wait(predicate, timeout, what) {
    return waitOnChange(
      this._waiters,
      predicate,
      timeout,
      () => `timed out after ${timeout} ms waiting for ${what}; webhook requests received:\n${this.describe()}`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Queries

  /**
   * Request records matching the filter, in arrival order.
   *   path       request path
   *   channel    only requests carrying at least one event of this channel
   *   delivered  only requests answered 2xx
   *   since      only requests with seq > since (see mark())
   */
  requestsFor({ path, channel, delivered = false, since = 0 } = {}) {
    return this.requests.filter(
      (r) =>
        r.seq > since &&
        (path === undefined || r.path === path) &&
        (!delivered || (r.status >= 200 && r.status < 300)) &&
        (channel === undefined || eventsOf(r).some((e) => e.channel === channel)),
    );
  }

  /** Current position, for `since`. */
  mark() {
    return this._seq;
  }

  /**
   * Every event of the matching requests flattened in arrival order (a retried request's events
   * appear once per attempt unless `delivered`). Extra filters: `channel`, `name`.
   */
  events({ path, channel, name, delivered = false, since = 0 } = {}) {
    const out = [];
    for (const r of this.requestsFor({ path, delivered, since })) {
      eventsOf(r).forEach((event, position) => {
        if (channel !== undefined && event?.channel !== channel) return;
        if (name !== undefined && event?.name !== name) return;
        const copy = { ...event };
        Object.defineProperties(copy, {
          request: { value: r, enumerable: false },
          at: { value: r.at, enumerable: false },
          position: { value: position, enumerable: false },
        });
        out.push(copy);
      });
    }
    return out;
  }

  /**
   * Waits until `condition` holds for `events(filter)`: a number (at least that many events) or
   * a predicate over the event list returning something truthy (which is returned).
   */
  waitForEvents(condition, { timeout = DEFAULT_TIMEOUT_MS, what, ...filter } = {}) {
    const pred = typeof condition === 'number' ? (evs) => evs.length >= condition && evs : condition;
    const desc = what ?? (typeof condition === 'number' ? `${condition} webhook event(s) ${JSON.stringify(filter)}` : `webhook events ${JSON.stringify(filter)}`);
    return this._wait(() => pred(this.events(filter)), timeout, desc);
  }

  /**
   * Waits for the first event named `name` (and for `userId`, if given) matching `filter`
   * (path, channel, since, delivered) and returns it.
   */
  waitEvent(name, { userId, timeout = DEFAULT_TIMEOUT_MS, ...filter } = {}) {
    const match = (e) => e.name === name && (userId === undefined || e.user_id === userId);
    return this.waitForEvents((list) => list.find(match), {
      timeout,
      what: `${name}${userId === undefined ? '' : ` ${userId}`} ${JSON.stringify(filter)}`,
      ...filter,
    });
  }

  /**
   * `labels()` of the delivered (2xx) events matching `filter`, in arrival order, as a receiver
   * that honours `Idempotency-Key` sees them: a request whose key was already delivered is a
   * duplicate (at-least-once delivery, e.g. a node killed between a 2xx and its acknowledgement)
   * and is left out. `events()` keeps every request.
   */
  sequence(filter = {}) {
    const seen = new Set();
    const firstTime = new Set();
    for (const r of this.requestsFor({ delivered: true })) {
      const key = r.headers['idempotency-key'];
      if (key === undefined || !seen.has(key)) firstTime.add(r);
      if (key !== undefined) seen.add(key);
    }
    return labels(this.events({ ...filter, delivered: true }).filter((e) => firstTime.has(e.request)));
  }

  /** Like waitForEvents, over `requestsFor(filter)`. */
  waitForRequests(condition, { timeout = DEFAULT_TIMEOUT_MS, what, ...filter } = {}) {
    const pred = typeof condition === 'number' ? (rs) => rs.length >= condition && rs : condition;
    const desc = what ?? `webhook requests ${JSON.stringify(filter)}`;
    return this._wait(() => pred(this.requestsFor(filter)), timeout, desc);
  }

  /** One line per request (the last `limit`), for failure messages. */
  describe({ limit = 40, ...filter } = {}) {
    const rs = this.requestsFor(filter).slice(-limit);
    if (rs.length === 0) return '  (none)';
    return rs
      .map(
        (r) =>
          `  #${r.seq} +${r.at % 100000}ms ${r.method} ${r.path} → ${r.status ?? (r.held ? 'held' : '-')} ` +
          `valid=${r.valid} ${r.rawBody.slice(0, 400)}`,
      )
      .join('\n');
  }

  async stop() {
    for (const h of [...this.held]) h.answer(503);
    const server = this._server;
    if (!server) return;
    this._server = undefined;
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** The events array of a request body ([] when it has none). */
export function eventsOf(record) {
  return Array.isArray(record.body?.events) ? record.body.events : [];
}

/** Compact `name[ user_id]` labels, e.g. for deepEqual on a channel's sequence. */
export function labels(events) {
  return events.map((e) => (e.user_id !== undefined && e.name !== 'client_event' ? `${e.name} ${e.user_id}` : e.name));
}

/**
 * Asserts that `seq` (labels) starts with the events `firstSet` in any order (e.g. a channel's
 * channel_occupied and its first member_added, whose relative order is not specified), followed
 * by exactly `rest`.
 */
export function assertSequence(seq, firstSet, rest, what = 'webhook sequence') {
  const head = seq.slice(0, firstSet.length);
  assert.deepEqual([...head].sort(), [...firstSet].sort(), `${what}: first events of ${JSON.stringify(seq)}`);
  assert.deepEqual(seq.slice(firstSet.length), rest, `${what}: whole sequence ${JSON.stringify(seq)}`);
}

/**
 * A receiver started before the file's tests and stopped after them (file-level hooks: they run
 * after the describe-level hooks that stop the servers, whose shutdown still flushes webhooks to
 * it). When a test failed (or FERROCAST_CONFORMANCE_LOGS=1) it prints what it received.
 */
export function useWebhookReceiver() {
  const recv = new WebhookReceiver();
  const state = trackFailures();
  before(() => recv.start());
  after(async () => {
    if (state.failed || process.env.FERROCAST_CONFORMANCE_LOGS === '1') {
      console.error(`--- webhook requests received (${recv.requests.length}) ---\n${recv.describe({ limit: 200 })}`);
    }
    await recv.stop();
  });
  return recv;
}
