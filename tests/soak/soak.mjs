#!/usr/bin/env node
// Chaos soak of a 3-node Ferrocast cluster on one real Redis (see README.md in this directory).
//
//   node soak.mjs            SOAK_MINUTES (default 10) of load with chaos at random intervals
//   node soak.mjs --smoke    ~45 s of load, one chaos action of each kind on a fixed schedule
//
// Load: pusher-js subscribers spread over the nodes (each behind its own small TCP balancer that
// prefers its home node and sends it elsewhere while the home node is down) on public and
// presence channels; one publisher lane per channel triggering numbered events with the `pusher`
// SDK through random nodes, one at a time per channel (so order per channel is well defined);
// presence "churners" joining and leaving presence channels and dropping their connections; a
// webhook receiver recording every request. Chaos: SIGKILL a node and restart it, SIGSTOP Redis
// for 5 s, SIGKILL Redis and restart it on the same port and data dir (AOF, fsync always).
//
// Then four audits (exit 1 if any fails, 2 if the harness itself broke):
//   1. events: every event answered 200 while a subscriber was continuously subscribed (from its
//      subscription_succeeded to its disconnect, with margins) was received exactly once, in order
//   2. presence: no ghost or missing member in any node's REST users list or any client's roster
//   3. webhooks: member_added/removed and channel_occupied/vacated balance (deduplicated by
//      Idempotency-Key), none without the key
//   4. memory: node RSS and Redis used_memory back within tolerance of the warm-up baseline
// A summary table is printed and written as JSON to target/soak/last.json
// (target/soak/last-smoke.json for --smoke; SOAK_OUT overrides).

import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startBalancer } from '../conformance/lib/balancer.mjs';
import { Pusher, PusherServer, sdkAuthorizer } from '../conformance/lib/clients.mjs';
import { startRedis } from '../conformance/lib/redis.mjs';
import { REPO_ROOT, binaryPath, makeApp, makeNode } from '../conformance/lib/server.mjs';
import { sleep } from '../conformance/lib/util.mjs';
import { WebhookReceiver } from '../conformance/lib/webhooks.mjs';

import { fmtInt, fmtS, mib, ranges, redisCommand, redisInfo, rng, rssKiB } from './util.mjs';

// ---------------------------------------------------------------------------------------------
// Settings

const env = process.env;
const SMOKE = process.argv.includes('--smoke') || env.SOAK_SMOKE === '1';
const num = (name, dflt) => {
  if (env[name] === undefined || env[name] === '') return dflt;
  const v = Number(env[name]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}=${env[name]} is not a non-negative number`);
  return v;
};

const LOAD_MS = SMOKE ? num('SOAK_SMOKE_SECONDS', 45) * 1000 : num('SOAK_MINUTES', 10) * 60_000;
const RATE = num('SOAK_RATE', 200); // events/s, all channels together
const SEED = num('SOAK_SEED', SMOKE ? 1 : Math.floor(Math.random() * 2 ** 31));
const WARMUP_MS = SMOKE ? 4000 : Math.min(30_000, LOAD_MS / 10);
const PUBLIC_CHANNELS = 4;
const PRESENCE_CHANNELS = 2;
const SUBSCRIBERS = num('SOAK_SUBSCRIBERS', 12); // spread over the 3 nodes
const CHURNERS = num('SOAK_CHURNERS', 6);
const NODES = 3;
/** Chaos gap range (full run), seconds: uniform between the two. */
const [GAP_MIN_S, GAP_MAX_S] = (env.SOAK_CHAOS_GAP_S ?? '10-30').split('-').map(Number);

// node configuration: dead nodes reaped fast, leaves confirmed fast, no per-IP caps.
// node_ttl_s must outlast a 5 s Redis SIGSTOP plus one heartbeat period (ttl / 3): Redis expires
// keys on its own clock, so on SIGCONT every heartbeat older than the TTL is gone at once and the
// nodes reap each other (spurious channel_vacated / member_removed while every client stays
// connected). With 10 s the last heartbeat before the stop is at most 3.3 s old, so it survives.
const NODE_TTL_S = 10;
const LEAVE_DELAY_MS = 1000;
const WEBHOOKS = { leave_delay_ms: LEAVE_DELAY_MS, retry_backoff_ms: 200, timeout_ms: 2000, flush_timeout_s: 1 };
const SERVER = { shutdown_grace_s: 1, max_connections_per_ip: 0, max_connection_rate_per_ip: 0 };

// audit margins
/** An event must be sent at least this long after the subscriber's subscription_succeeded... */
const START_MARGIN_MS = num('SOAK_START_MARGIN_MS', 50);
/** ...and answered at least this long before its disconnect to be demanded. */
const END_MARGIN_MS = num('SOAK_END_MARGIN_MS', 250);
/**
 * After the load stops: time for leaves and webhooks to settle before the audits. No chaos action
 * starts in the last CHAOS_QUIET_MS of the load, so a killed node has been reaped (node_ttl_s +
 * a heartbeat period) or replaced by its restart by then.
 */
const SETTLE_MS = LEAVE_DELAY_MS + 2000;
const CHAOS_QUIET_MS = 25_000;
/** How long a converging audit (rosters, webhook balance) may keep polling. */
const CONVERGE_MS = 8000;
/** Same for the webhook balance (requests are retried every 200 ms or so). */
const WEBHOOK_CONVERGE_MS = 5000;

// memory tolerance (see README.md, "Memory")
const RSS_TOL_PCT = num('SOAK_RSS_TOLERANCE_PCT', 25);
const RSS_SLACK_KIB = num('SOAK_RSS_SLACK_KIB', 8 * 1024);
const REDIS_TOL_PCT = num('SOAK_REDIS_TOLERANCE_PCT', 50);
const REDIS_SLACK_KIB = num('SOAK_REDIS_SLACK_KIB', 8 * 1024);

const OUT = env.SOAK_OUT ? path.resolve(env.SOAK_OUT) : path.join(REPO_ROOT, 'target', 'soak', SMOKE ? 'last-smoke.json' : 'last.json');
const LOG_DIR = path.join(path.dirname(OUT), SMOKE ? 'logs-smoke' : 'logs');

const EVENT = 'soak-event';
const SUBSCRIBED = 'pusher_internal:subscription_succeeded';

const rand = rng(SEED);
const T0 = Date.now();
let loadStart = T0;
const rel = (at) => {
  if (at === undefined) return '-';
  const s = (at - loadStart) / 1000;
  return `${s < 0 ? '−' : '+'}${Math.abs(s).toFixed(1)}s`;
};
const log = (...args) => console.log(`[soak ${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s]`, ...args);

// ---------------------------------------------------------------------------------------------
// Clients

function newPusher(app, lb, sdk, userId) {
  return new Pusher(app.key, {
    wsHost: lb.host,
    wsPort: lb.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'local',
    disableStats: true,
    channelAuthorization: {
      customHandler: (params, callback) => {
        try {
          callback(null, sdkAuthorizer(sdk, { presence: () => ({ user_id: userId }) })(params));
        } catch (err) {
          callback(err, null);
        }
      },
    },
  });
}

/** Names the node behind each balanced connection: the one the balancer routed to last. */
const nodeNameAt = (lb, at) => lb.nodeAt(at)?.name;

/**
 * A pusher-js client subscribed to fixed channels for the whole run. Per channel it keeps a list
 * of windows: {start (subscription_succeeded), end (left `connected`), node, seqs (received)}.
 */
class Subscriber {
  constructor({ id, home, nodes, app, sdk, channels }) {
    Object.assign(this, { id, home, nodes, app, sdk, channels });
    this.userId = `sub-${id}`;
    this.windows = new Map(channels.map((c) => [c, []]));
    this.open = new Map();
    this.outside = 0; // soak events received on a channel with no open window
    this.subscriptionErrors = 0;
    this.disconnects = []; // {at, node, state}
  }

  async start() {
    this.lb = await startBalancer({ nodes: this.nodes, home: this.home, isLive: (n) => n.running });
    this.pusher = newPusher(this.app, this.lb, this.sdk, this.userId);
    const conn = this.pusher.connection;
    // After an unclean close pusher-js stays `connected` until its 1 s retry timer fires; it emits
    // `connecting_in` at once, so that is when the socket is known to be gone.
    conn.bind('connecting_in', () => this.closeWindows('closed'));
    conn.bind('state_change', ({ previous, current }) => {
      if (previous === 'connected' && current !== 'connected') this.closeWindows(current);
      if (current === 'connected') {
        this.connectedNode = nodeNameAt(this.lb, Date.now());
        this.socketOpen = true;
      }
    });
    conn.bind('message', (m) => {
      if (!this.socketOpen) return;
      if (m.event === EVENT) {
        const w = this.open.get(m.channel);
        if (w) w.seqs.push(m.data?.seq);
        else this.outside += 1;
      } else if (m.event === SUBSCRIBED && this.windows.has(m.channel)) {
        const at = Date.now();
        const previous = this.open.get(m.channel);
        if (previous) {
          previous.end = at;
          previous.endReason = 'resubscribed';
        }
        const w = { start: at, end: undefined, endReason: undefined, node: this.connectedNode, seqs: [] };
        this.windows.get(m.channel).push(w);
        this.open.set(m.channel, w);
      }
    });
    for (const name of this.channels) {
      const ch = this.pusher.subscribe(name);
      ch.bind('pusher:subscription_error', () => {
        this.subscriptionErrors += 1;
      });
    }
    // a subscribe refused while Redis is away (subscription_error) is not retried by pusher-js
    this.watchdog = setInterval(() => this.resubscribe(), 1000);
  }

  closeWindows(reason) {
    if (!this.socketOpen) return;
    this.socketOpen = false;
    const at = Date.now();
    this.disconnects.push({ at, node: this.connectedNode, state: reason });
    for (const w of this.open.values()) {
      w.end = at;
      w.endReason = reason;
    }
    this.open.clear();
  }

  resubscribe() {
    if (this.pusher.connection.state !== 'connected') return;
    for (const name of this.channels) {
      const ch = this.pusher.channel(name);
      if (!ch || (!ch.subscribed && !ch.subscriptionPending)) this.pusher.subscribe(name);
    }
  }

  waitSubscribed(timeout) {
    return waitUntil(() => this.channels.every((c) => this.open.has(c)), timeout);
  }

  get connected() {
    return this.pusher.connection.state === 'connected';
  }

  async stop() {
    clearInterval(this.watchdog);
    this.pusher.disconnect();
    await this.lb.close();
  }
}

/** A presence member that keeps joining and leaving presence channels, sometimes dropping its connection. */
class Churner {
  constructor({ id, home, nodes, app, sdk, channels, rand: r }) {
    Object.assign(this, { id, home, nodes, app, sdk, channels, rand: r });
    this.userId = `churn-${id}`;
    this.stopping = false;
    this.stats = { joins: 0, leaves: 0, drops: 0, failed: 0 };
    this.history = []; // {at, what, channel, node}
  }

  note(what, channel) {
    this.history.push({ at: Date.now(), what, channel, node: this.node });
  }

  async start() {
    this.lb = await startBalancer({ nodes: this.nodes, home: this.home, isLive: (n) => n.running });
    this.pusher = newPusher(this.app, this.lb, this.sdk, this.userId);
    this.pusher.connection.bind('state_change', ({ current }) => {
      if (current === 'connected') this.node = nodeNameAt(this.lb, Date.now());
    });
    this.pusher.connection.bind('connecting_in', () => this.note('socket closed'));
    this.loop = this.run().catch((err) => {
      this.error = err;
    });
  }

  async pause(ms) {
    const until = Date.now() + ms;
    while (!this.stopping && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
  }

  subscribeOnce(name, timeout) {
    return new Promise((resolve) => {
      const ch = this.pusher.subscribe(name);
      const done = (ok) => {
        clearTimeout(timer);
        ch.unbind('pusher:subscription_succeeded', yes);
        ch.unbind('pusher:subscription_error', no);
        resolve(ok);
      };
      const yes = () => done(true);
      const no = () => done(false);
      const timer = setTimeout(() => done(false), timeout);
      ch.bind('pusher:subscription_succeeded', yes);
      ch.bind('pusher:subscription_error', no);
      if (ch.subscribed) done(true);
    });
  }

  async run() {
    while (!this.stopping) {
      if (this.pusher.connection.state !== 'connected') {
        await waitUntil(() => this.stopping || this.pusher.connection.state === 'connected', 15_000).catch(() => {});
        if (this.stopping) break;
        if (this.pusher.connection.state !== 'connected') continue;
      }
      const name = this.rand.pick(this.channels);
      if (!(await this.subscribeOnce(name, 5000))) {
        this.stats.failed += 1;
        this.pusher.unsubscribe(name);
        await this.pause(500);
        continue;
      }
      this.stats.joins += 1;
      this.note('joined', name);
      await this.pause(this.rand.between(1000, 4000));
      if (this.stopping) break; // stays a member
      if (this.rand() < 0.25) {
        this.stats.drops += 1;
        this.note('dropped connection', name);
        this.pusher.disconnect();
        this.pusher.unsubscribe(name);
        await this.pause(this.rand.between(500, 2000));
        if (this.stopping) break; // stays away
        this.pusher.connect();
      } else {
        this.stats.leaves += 1;
        this.note('unsubscribed', name);
        this.pusher.unsubscribe(name);
        await this.pause(this.rand.between(300, 1500));
      }
    }
  }

  async stopLoop() {
    this.stopping = true;
    await this.loop;
  }

  async stop() {
    this.stopping = true;
    this.pusher.disconnect();
    await this.lb.close();
  }
}

async function waitUntil(pred, timeout, interval = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= deadline) throw new Error('timeout');
    await sleep(interval);
  }
}

/** Presence user ids a pusher-js client's channel object lists (sorted), or undefined. */
function rosterOf(pusher, name) {
  const ch = pusher.channel(name);
  if (!ch || !ch.subscribed) return undefined;
  const ids = [];
  ch.members.each((m) => ids.push(String(m.id)));
  return ids.sort();
}

// ---------------------------------------------------------------------------------------------
// Publisher: one lane per channel, one trigger at a time

function errorCode(err) {
  return err?.error?.code ?? err?.error?.cause?.code ?? err?.code ?? err?.error?.type ?? err?.error?.name ?? String(err?.message ?? err);
}

class Lane {
  constructor({ channel, nodes, sdks, intervalMs, rand: r }) {
    Object.assign(this, { channel, nodes, sdks, intervalMs, rand: r });
    this.name = `lane-${channel}`;
    this.attempts = []; // index seq-1: {seq, node, sentAt, ackAt, outcome, status, detail}
    this.stopping = false;
  }

  start() {
    this.done = this.run();
    return this;
  }

  async run() {
    let next = Date.now() + this.rand() * this.intervalMs;
    while (!this.stopping) {
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.stopping) break;
      next = Math.max(next + this.intervalMs, Date.now()); // no catch-up burst after a stall
      const running = this.nodes.filter((n) => n.running);
      const node = this.rand.pick(running.length ? running : this.nodes);
      const seq = this.attempts.length + 1;
      const a = { seq, node: node.name, sentAt: Date.now(), ackAt: undefined, outcome: undefined, status: undefined, detail: undefined };
      this.attempts.push(a);
      try {
        await this.sdks.get(node).trigger(this.channel, EVENT, { channel: this.channel, seq, publisher: this.name, sentAt: a.sentAt });
        a.outcome = 'accepted';
        a.status = 200;
      } catch (err) {
        if (typeof err?.status === 'number') {
          a.outcome = 'refused';
          a.status = err.status;
          a.detail = String(err.body ?? '').slice(0, 120);
        } else {
          const code = errorCode(err);
          // ECONNREFUSED: nothing reached a server. Anything else (reset, timeout) may have been published.
          a.outcome = code === 'ECONNREFUSED' ? 'unsent' : 'ambiguous';
          a.detail = code;
        }
      }
      a.ackAt = Date.now();
    }
  }

  async stop() {
    this.stopping = true;
    await this.done;
  }
}

// ---------------------------------------------------------------------------------------------
// Chaos

async function waitClusterReady(nodes, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const statuses = await Promise.all(nodes.map((n) => n.probe('/readyz')));
    if (statuses.every((s) => s === 200)) return Date.now();
    await sleep(100);
  }
  return undefined;
}

async function perform(action, { nodes, redis }) {
  const rec = { ...action, startAt: Date.now() };
  log(`chaos: ${describeAction(action)}`);
  try {
    if (action.kind === 'node-kill') {
      const node = nodes.find((n) => n.name === action.target);
      await node.kill();
      rec.killedAt = Date.now();
      await sleep(action.downMs);
      await node.start();
      rec.nodeReadyAt = Date.now();
    } else if (action.kind === 'redis-stop') {
      redis.pause();
      await sleep(action.downMs);
      redis.resume();
    } else if (action.kind === 'redis-kill') {
      await redis.kill();
      rec.killedAt = Date.now();
      await sleep(action.downMs);
      await redis.start();
    } else {
      throw new Error(`unknown chaos kind ${action.kind}`);
    }
  } catch (err) {
    rec.error = err.message.split('\n')[0];
    log(`chaos action failed: ${err.message}`);
  }
  rec.faultEndAt = Date.now();
  rec.recoveredAt = await waitClusterReady(nodes);
  if (rec.recoveredAt === undefined) log('cluster not ready 30 s after the fault ended');
  else log(`  cluster ready ${rec.recoveredAt - rec.faultEndAt} ms after the fault ended`);
  return rec;
}

function describeAction(a) {
  if (a.kind === 'node-kill') return `SIGKILL ${a.target}, restart after ${fmtS(a.downMs)}`;
  if (a.kind === 'redis-stop') return `SIGSTOP redis for ${fmtS(a.downMs)}, then SIGCONT`;
  return `SIGKILL redis, restart after ${fmtS(a.downMs)} (same port, same AOF)`;
}

/** Smoke: one of each, fixed times (ms after the load started). */
function smokeSchedule() {
  return [
    { at: 5000, kind: 'node-kill', target: 'node-b', downMs: 1000 },
    { at: 15_000, kind: 'redis-stop', downMs: 5000 },
    { at: 27_000, kind: 'redis-kill', downMs: 3000 },
  ];
}

/** Full run: random gaps, kinds drawn from shuffled bags (each kind once per three actions). */
function randomSchedule(nodeNames) {
  const out = [];
  let at = WARMUP_MS;
  let bag = [];
  for (;;) {
    at += rand.between(GAP_MIN_S, GAP_MAX_S) * 1000;
    if (at > LOAD_MS - CHAOS_QUIET_MS) break;
    if (bag.length === 0) bag = rand.shuffle(['node-kill', 'redis-stop', 'redis-kill']);
    const kind = bag.pop();
    if (kind === 'node-kill') out.push({ at, kind, target: rand.pick(nodeNames), downMs: Math.round(rand.between(500, 3000)) });
    else if (kind === 'redis-stop') out.push({ at, kind, downMs: 5000 });
    else out.push({ at, kind, downMs: Math.round(rand.between(1000, 5000)) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Audits

/** The chaos action an instant belongs to (from 1 s before it to 5 s after the cluster was ready). */
function chaosAt(chaos, at) {
  return chaos.find((c) => at >= c.startAt - 1000 && at <= (c.recoveredAt ?? c.faultEndAt) + 5000);
}
const chaosLabel = (c) => (c ? `#${c.index} ${c.kind}${c.target ? ` ${c.target}` : ''} at ${rel(c.startAt)}` : 'no chaos nearby');

function auditEvents(subscribers, lanes, auditEnd, chaos) {
  const laneOf = new Map(lanes.map((l) => [l.channel, l]));
  const attempts = { total: 0, accepted: 0, refused503: 0, refusedOther: 0, unsent: 0, ambiguous: 0 };
  const refusedStatuses = {};
  for (const l of lanes) {
    for (const a of l.attempts) {
      attempts.total += 1;
      if (a.outcome === 'accepted') attempts.accepted += 1;
      else if (a.outcome === 'refused' && a.status === 503) attempts.refused503 += 1;
      else if (a.outcome === 'refused') attempts.refusedOther += 1;
      else if (a.outcome === 'unsent') attempts.unsent += 1;
      else attempts.ambiguous += 1;
      if (a.outcome === 'refused') refusedStatuses[a.status] = (refusedStatuses[a.status] ?? 0) + 1;
    }
  }
  const f = { windows: 0, demanded: 0, delivered: 0, lost: 0, duplicates: 0, outOfOrder: 0, refusedButDelivered: 0, outsideWindow: 0 };
  const lostEvents = new Set();
  const problems = [];
  const lostByChaos = {};
  for (const s of subscribers) {
    f.outsideWindow += s.outside;
    for (const channel of s.channels) {
      const lane = laneOf.get(channel);
      const seen = new Set();
      for (const [wi, w] of s.windows.get(channel).entries()) {
        f.windows += 1;
        const where = `${s.userId} on ${channel} window #${wi} (${w.node ?? '?'}, ${rel(w.start)}..${w.end ? rel(w.end) : 'end'})`;
        let max = 0;
        const dups = [];
        const disorder = [];
        for (const seq of w.seqs) {
          f.delivered += 1;
          const a = lane.attempts[seq - 1];
          if (!a) {
            problems.push(`${where}: received seq ${seq} that was never sent`);
            continue;
          }
          if (seen.has(seq)) dups.push(seq);
          else seen.add(seq);
          if (a.outcome === 'refused' || a.outcome === 'unsent') f.refusedButDelivered += 1;
          if (a.outcome !== 'ambiguous') {
            if (seq < max) disorder.push(seq);
            max = Math.max(max, seq);
          }
        }
        f.duplicates += dups.length;
        f.outOfOrder += disorder.length;
        if (dups.length) problems.push(`${where}: ${dups.length} duplicate(s): ${ranges(dups)}`);
        if (disorder.length) problems.push(`${where}: ${disorder.length} out of order: ${ranges(disorder)}`);
        // demanded: accepted, sent after the window opened and answered before it closed (margins)
        const lo = w.start + START_MARGIN_MS;
        const hi = (w.end ?? auditEnd) - END_MARGIN_MS;
        if (hi <= lo) continue;
        const received = new Set(w.seqs);
        const lost = [];
        let k = firstSentAtOrAfter(lane.attempts, lo);
        for (; k < lane.attempts.length; k += 1) {
          const a = lane.attempts[k];
          if (a.sentAt > hi) break;
          if (a.outcome !== 'accepted' || a.ackAt > hi) continue;
          f.demanded += 1;
          if (!received.has(a.seq)) lost.push(a);
        }
        if (lost.length) {
          f.lost += lost.length;
          const byChaos = {};
          for (const a of lost) {
            lostEvents.add(`${channel}#${a.seq}`);
            const label = chaosLabel(chaosAt(chaos, a.sentAt));
            byChaos[label] = (byChaos[label] ?? 0) + 1;
            lostByChaos[label] = (lostByChaos[label] ?? 0) + 1;
          }
          const via = countBy(lost.map((a) => a.node));
          problems.push(
            `${where}: lost ${lost.length} of the events answered 200 while it was subscribed: seq ${ranges(lost.map((a) => a.seq), 6)} ` +
              `(sent ${rel(lost[0].sentAt)}..${rel(lost[lost.length - 1].sentAt)}, via ${JSON.stringify(via)}; ${JSON.stringify(byChaos)})`,
          );
        }
      }
      if (!s.open.has(channel)) problems.push(`${s.userId}: not subscribed to ${channel} at the end (connection ${s.pusher.connection.state})`);
    }
  }
  if (f.outsideWindow) problems.push(`${f.outsideWindow} soak event(s) arrived on a channel with no open subscription window`);
  if (f.refusedButDelivered) problems.push(`${f.refusedButDelivered} deliveries of events whose trigger was refused (or never connected): a retrying publisher would duplicate them`);
  const unexpectedDisconnects = [];
  for (const s of subscribers) {
    for (const d of s.disconnects) {
      const c = chaos.find((x) => x.kind === 'node-kill' && x.target === d.node && d.at >= x.startAt - 100 && d.at <= (x.killedAt ?? x.faultEndAt) + 1000);
      if (!c) unexpectedDisconnects.push(`${s.userId} left ${d.node} (${d.state}) at ${rel(d.at)}`);
    }
  }
  const failed = f.lost > 0 || f.duplicates > 0 || f.outOfOrder > 0 || problems.some((p) => p.includes('never sent') || p.includes('not subscribed'));
  return {
    ok: !failed,
    attempts,
    refusedStatuses,
    ...f,
    lostDistinctEvents: lostEvents.size,
    lostByChaos,
    unexpectedDisconnects,
    problems,
  };
}

function firstSentAtOrAfter(attempts, at) {
  let lo = 0;
  let hi = attempts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (attempts[mid].sentAt < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function countBy(list) {
  const out = {};
  for (const x of list) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** Who should be on each presence channel now: users with a connected client subscribed to it. */
function expectedPresence(clients, presenceChannels) {
  const out = new Map(presenceChannels.map((c) => [c, new Set()]));
  for (const c of clients) {
    if (c.pusher.connection.state !== 'connected') continue;
    for (const name of presenceChannels) if (c.pusher.channel(name)?.subscribed) out.get(name).add(c.userId);
  }
  return out;
}

async function auditPresence(nodes, sdks, clients, presenceChannels) {
  const snapshot = async () => {
    const expected = expectedPresence(clients, presenceChannels);
    const problems = [];
    const perChannel = {};
    const ghostSet = new Set(); // channel + user listed by a node or a roster but not connected
    for (const ch of presenceChannels) {
      const want = [...expected.get(ch)].sort();
      perChannel[ch] = { expected: want.length };
      for (const n of nodes) {
        let got;
        try {
          const res = await sdks.get(n).get({ path: `/channels/${ch}/users` });
          got = (await res.json()).users.map((u) => String(u.id)).sort();
        } catch (err) {
          problems.push(`${ch}: GET users on ${n.name} failed: ${err.status ?? ''} ${err.message}`);
          continue;
        }
        perChannel[ch][n.name] = got.length;
        const ghosts = got.filter((u) => !want.includes(u));
        const missing = want.filter((u) => !got.includes(u));
        for (const u of ghosts) ghostSet.add(`${ch} ${u}`);
        if (ghosts.length) problems.push(`${ch}: ${n.name} lists ghost member(s) ${ghosts.join(', ')}`);
        if (missing.length) problems.push(`${ch}: ${n.name} misses connected member(s) ${missing.join(', ')}`);
      }
      let rosters = 0;
      for (const c of clients) {
        if (c.pusher.connection.state !== 'connected') continue;
        const roster = rosterOf(c.pusher, ch);
        if (roster === undefined) continue;
        rosters += 1;
        if (JSON.stringify(roster) !== JSON.stringify(want)) {
          const ghosts = roster.filter((u) => !want.includes(u));
          const missing = want.filter((u) => !roster.includes(u));
          for (const u of ghosts) ghostSet.add(`${ch} ${u}`);
          problems.push(`${ch}: pusher-js roster of ${c.userId} has ghost(s) [${ghosts.join(', ')}] and misses [${missing.join(', ')}]`);
        }
      }
      perChannel[ch].clientRosters = rosters;
    }
    return { problems, perChannel, expected, ghosts: ghostSet };
  };
  const started = Date.now();
  let snap = await snapshot();
  while (snap.problems.length && Date.now() - started < CONVERGE_MS) {
    await sleep(250);
    snap = await snapshot();
  }
  const ghostMembers = snap.ghosts.size;
  return { ok: snap.problems.length === 0, convergedAfterMs: Date.now() - started, ghostMembers, perChannel: snap.perChannel, problems: snap.problems, expected: snap.expected };
}

/**
 * Webhooks of `app` received so far, deduplicated by Idempotency-Key, checked against the
 * occupancy and membership that should hold now.
 */
function webhookBalance(recv, app, expectedMembers, expectedOccupied, histories = new Map()) {
  const requests = recv.requests.filter((r) => r.key === app.key);
  const delivered = requests.filter((r) => r.status >= 200 && r.status < 300);
  const byKey = new Map();
  let missingKey = 0;
  let duplicateRequests = 0;
  let keyConflicts = 0;
  const events = [];
  for (const r of delivered) {
    const key = r.headers['idempotency-key'];
    const evs = Array.isArray(r.body?.events) ? r.body.events : [];
    for (const e of evs) Object.defineProperty(e, 'at', { value: r.body?.time_ms ?? r.at, enumerable: false, configurable: true });
    if (!key) {
      missingKey += 1;
      events.push(...evs);
      continue;
    }
    const body = JSON.stringify(evs);
    if (byKey.has(key)) {
      duplicateRequests += 1;
      if (byKey.get(key) !== body) keyConflicts += 1;
      continue;
    }
    byKey.set(key, body);
    events.push(...evs);
  }
  const occ = new Map();
  const mem = new Map();
  const counts = {};
  const seenFor = new Map(); // channel or channel\nuser → ['name@+t', ...]
  const trace = (k, e) => {
    if (!seenFor.has(k)) seenFor.set(k, []);
    seenFor.get(k).push(`${e.name.replace('channel_', '').replace('member_', '')}@${rel(e.at)}`);
  };
  for (const e of events) {
    trace(e.user_id === undefined ? e.channel : `${e.channel}\n${e.user_id}`, e);
    counts[e.name] = (counts[e.name] ?? 0) + 1;
    if (e.name === 'channel_occupied' || e.name === 'channel_vacated') {
      occ.set(e.channel, (occ.get(e.channel) ?? 0) + (e.name === 'channel_occupied' ? 1 : -1));
    } else if (e.name === 'member_added' || e.name === 'member_removed') {
      const k = `${e.channel}\n${e.user_id}`;
      mem.set(k, (mem.get(k) ?? 0) + (e.name === 'member_added' ? 1 : -1));
    }
  }
  const problems = [];
  for (const ch of new Set([...occ.keys(), ...expectedOccupied])) {
    const net = occ.get(ch) ?? 0;
    const want = expectedOccupied.has(ch) ? 1 : 0;
    if (net === want) continue;
    const what =
      want === 0 && net > 0
        ? `${ch}: channel_occupied without its channel_vacated (occupied − vacated = ${net}, channel is empty)`
        : `${ch}: occupied − vacated = ${net}, expected ${want}`;
    problems.push(`${what}; webhooks [${(seenFor.get(ch) ?? []).slice(-6).join(' ')}]`);
  }
  for (const [ch, users] of expectedMembers) for (const u of users) if (!mem.has(`${ch}\n${u}`)) mem.set(`${ch}\n${u}`, 0);
  for (const [k, net] of mem) {
    const [ch, u] = k.split('\n');
    const want = expectedMembers.get(ch)?.has(u) ? 1 : 0;
    if (net === want) continue;
    const what =
      want === 0 && net > 0
        ? `${ch}: member_added ${u} without its member_removed (user left; added − removed = ${net})`
        : `${ch}: member ${u}: added − removed = ${net}, expected ${want}`;
    const did = histories.has(u) ? `; ${u} did: ${histories.get(u)(ch)}` : '';
    problems.push(`${what}; webhooks [${(seenFor.get(k) ?? []).slice(-6).join(' ')}]${did}`);
  }
  return {
    requests: requests.length,
    delivered: delivered.length,
    invalidSignatures: requests.filter((r) => !r.valid).length,
    uniqueKeys: byKey.size,
    missingKey,
    duplicateRequests,
    keyConflicts,
    counts,
    problems,
  };
}

async function auditWebhooks(recv, app, expectedMembers, expectedOccupied, label, histories) {
  const started = Date.now();
  let b = webhookBalance(recv, app, expectedMembers, expectedOccupied, histories);
  while (b.problems.length && Date.now() - started < WEBHOOK_CONVERGE_MS) {
    await sleep(250);
    b = webhookBalance(recv, app, expectedMembers, expectedOccupied, histories);
  }
  return { checkpoint: label, convergedAfterMs: Date.now() - started, ...b };
}

// ---------------------------------------------------------------------------------------------
// Memory

async function memorySample(nodes, redis) {
  const out = { at: Date.now(), nodes: {}, redis: {} };
  for (const n of nodes) out.nodes[n.name] = n.running ? rssKiB(n.proc.child.pid) : undefined;
  try {
    const info = await redisInfo(redis.port, 'memory');
    out.redis.usedMemoryKiB = Math.round(info.used_memory / 1024);
    out.redis.rssKiB = rssKiB(redis.child.pid);
    out.redis.keys = await redisCommand(redis.port, ['DBSIZE']);
  } catch (err) {
    out.redis.error = err.message;
  }
  return out;
}

/** Keys left in Redis grouped by their first two `:` segments (what kind of state is left). */
async function redisKeyGroups(redis) {
  try {
    const keys = await redisCommand(redis.port, ['KEYS', '*'], 5000);
    return countBy(keys.map((k) => k.split(':').slice(0, 2).join(':')));
  } catch (err) {
    return { error: err.message };
  }
}

function auditMemory(baseline, final) {
  const rows = [];
  const allowed = (base, pct, slack) => base + Math.max((base * pct) / 100, slack);
  for (const name of Object.keys(baseline.nodes)) {
    const b = baseline.nodes[name];
    const f = final.nodes[name];
    const limit = b === undefined ? undefined : allowed(b, RSS_TOL_PCT, RSS_SLACK_KIB);
    rows.push({ what: `${name} RSS`, baselineKiB: b, finalKiB: f, limitKiB: limit, ok: b !== undefined && f !== undefined && f <= limit });
  }
  const b = baseline.redis.usedMemoryKiB;
  const f = final.redis.usedMemoryKiB;
  const limit = b === undefined ? undefined : allowed(b, REDIS_TOL_PCT, REDIS_SLACK_KIB);
  rows.push({ what: 'redis used_memory', baselineKiB: b, finalKiB: f, limitKiB: limit, ok: b !== undefined && f !== undefined && f <= limit });
  return {
    ok: rows.every((r) => r.ok),
    tolerance: {
      nodeRss: `final ≤ baseline + max(${RSS_TOL_PCT}%, ${RSS_SLACK_KIB} KiB)`,
      redisUsedMemory: `final ≤ baseline + max(${REDIS_TOL_PCT}%, ${REDIS_SLACK_KIB} KiB)`,
    },
    rows,
    problems: rows.filter((r) => !r.ok).map((r) => `${r.what}: ${mib(r.finalKiB)} after the run, baseline ${mib(r.baselineKiB)}, allowed ${mib(r.limitKiB)}`),
  };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  binaryPath(); // fail loudly before starting anything
  const started = Date.now();
  const cleanups = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
    cleanups.length = 0;
  };
  process.once('SIGINT', () => {
    log('interrupted');
    process.exit(130); // the libraries SIGKILL their children on exit
  });

  log(`${SMOKE ? 'smoke' : 'full'} run: ${fmtS(LOAD_MS)} of load at ${RATE} events/s, seed ${SEED}`);
  const redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  cleanups.push(() => redis.dispose());
  const recv = new WebhookReceiver();
  await recv.start();
  cleanups.push(() => recv.stop());

  const app = makeApp({ max_presence_members_per_channel: 1000 });
  app.webhooks = [{ url: recv.url('/soak') }];
  recv.addApp(app);
  const backplane = { driver: 'redis', url: redis.url, node_ttl_s: NODE_TTL_S };
  const nodes = [];
  for (let i = 0; i < NODES; i += 1) nodes.push(await makeNode(i, { apps: [app], server: SERVER, backplane, webhooks: WEBHOOKS }));
  cleanups.push(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });
  await Promise.all(nodes.map((n) => n.start()));
  log(`redis ${redis.url} (AOF, appendfsync always), nodes ${nodes.map((n) => `${n.name}:${n.port}`).join(' ')}, webhooks → ${recv.url('/soak')}`);

  // keep-alive SDKs per node: publishing opens no connection per event
  const sdks = new Map(
    nodes.map((n) => [
      n,
      new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: n.host, port: n.port, useTLS: false, timeout: 15_000, agent: new http.Agent({ keepAlive: true, maxSockets: 16 }) }),
    ]),
  );
  const signer = sdks.get(nodes[0]); // signs channel auth locally

  const tag = Math.random().toString(36).slice(2, 8);
  const publicChannels = Array.from({ length: PUBLIC_CHANNELS }, (_, i) => `soak-${tag}-${i}`);
  const presenceChannels = Array.from({ length: PRESENCE_CHANNELS }, (_, i) => `presence-soak-${tag}-${i}`);
  const channels = [...publicChannels, ...presenceChannels];

  // subscribers: two public channels and one presence channel each, homes spread over the nodes
  const subscribers = [];
  for (let i = 0; i < SUBSCRIBERS; i += 1) {
    const mine = [publicChannels[i % PUBLIC_CHANNELS], publicChannels[(i + 1) % PUBLIC_CHANNELS], presenceChannels[i % PRESENCE_CHANNELS]];
    subscribers.push(new Subscriber({ id: i, home: nodes[i % NODES], nodes, app, sdk: signer, channels: mine }));
  }
  cleanups.push(async () => {
    await Promise.all(subscribers.map((s) => s.stop()));
  });
  await Promise.all(subscribers.map((s) => s.start()));
  try {
    await Promise.all(subscribers.map((s) => s.waitSubscribed(15_000)));
  } catch {
    throw new Error(`subscribers not all subscribed 15 s after connecting: ${subscribers.filter((s) => s.open.size < s.channels.length).map((s) => s.userId).join(', ')}`);
  }
  const churners = [];
  for (let i = 0; i < CHURNERS; i += 1) {
    churners.push(new Churner({ id: i, home: nodes[(i + 1) % NODES], nodes, app, sdk: signer, channels: presenceChannels, rand: rng(SEED + 1000 + i) }));
  }
  cleanups.push(async () => {
    await Promise.all(churners.map((c) => c.stop()));
  });
  await Promise.all(churners.map((c) => c.start()));
  log(`${SUBSCRIBERS} subscribers and ${CHURNERS} presence churners connected (through per-client balancers) on ${channels.length} channels`);

  // --- load ---------------------------------------------------------------------------------
  loadStart = Date.now();
  const intervalMs = (1000 * channels.length) / RATE;
  const lanes = channels.map((channel, i) => new Lane({ channel, nodes, sdks, intervalMs, rand: rng(SEED + 2000 + i) }).start());
  cleanups.push(async () => {
    await Promise.all(lanes.map((l) => l.stop()));
  });
  const peak = { nodes: {}, redisUsedKiB: 0 };
  const sampler = setInterval(async () => {
    const s = await memorySample(nodes, redis).catch(() => undefined);
    if (!s) return;
    for (const [k, v] of Object.entries(s.nodes)) if (v !== undefined) peak.nodes[k] = Math.max(peak.nodes[k] ?? 0, v);
    if (s.redis.usedMemoryKiB) peak.redisUsedKiB = Math.max(peak.redisUsedKiB, s.redis.usedMemoryKiB);
  }, 2000);
  cleanups.push(async () => clearInterval(sampler));

  const progress = setInterval(() => {
    const acc = lanes.reduce((n, l) => n + l.attempts.filter((a) => a.outcome === 'accepted').length, 0);
    log(`load ${rel(Date.now())}: ${acc} events accepted, ${subscribers.filter((s) => s.connected).length}/${SUBSCRIBERS} subscribers connected`);
  }, SMOKE ? 10_000 : 60_000);
  cleanups.push(async () => clearInterval(progress));

  await sleep(WARMUP_MS);
  const baseline = await memorySample(nodes, redis);
  log(`baseline after ${fmtS(WARMUP_MS)} warm-up: ${Object.entries(baseline.nodes).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}, redis used_memory ${mib(baseline.redis.usedMemoryKiB)}`);

  const schedule = env.SOAK_CHAOS === '0' ? [] : SMOKE ? smokeSchedule() : randomSchedule(nodes.map((n) => n.name));
  const chaos = [];
  for (const [index, action] of schedule.entries()) {
    const wait = loadStart + action.at - Date.now();
    if (wait > 0) await sleep(wait);
    if (Date.now() > loadStart + LOAD_MS) break;
    chaos.push({ index, ...(await perform(action, { nodes, redis })) });
  }
  const remaining = loadStart + LOAD_MS - Date.now();
  if (remaining > 0) await sleep(remaining);

  // --- stop the load, settle ------------------------------------------------------------------
  const churnersStopped = Promise.all(churners.map((c) => c.stopLoop()));
  await Promise.all(lanes.map((l) => l.stop()));
  const loadEnd = Date.now();
  await churnersStopped;
  clearInterval(progress);
  log(`load stopped at ${rel(loadEnd)}; settling ${fmtS(SETTLE_MS)} (leave delay + 2 s)`);
  await sleep(SETTLE_MS);
  const clients = [...subscribers, ...churners];

  // --- audits with the clients still connected ----------------------------------------------
  const presence = await auditPresence(nodes, sdks, clients, presenceChannels);
  const occupiedNow = new Set(channels.filter((ch) => (ch.startsWith('presence-') ? presence.expected.get(ch).size > 0 : subscribers.some((s) => s.open.has(ch)))));
  // what a churner did last on a channel, to judge a webhook imbalance
  const histories = new Map(
    churners.map((c) => [
      c.userId,
      (ch) =>
        c.history
          .filter((h) => h.channel === ch || h.channel === undefined)
          .slice(-4)
          .map((h) => `${h.what}${h.node ? ` on ${h.node}` : ''} ${rel(h.at)}`)
          .join(', '),
    ]),
  );
  const hooksConnected = await auditWebhooks(recv, app, presence.expected, occupiedNow, 'clients connected', histories);
  const auditEnd = Date.now();
  const events = auditEvents(subscribers, lanes, auditEnd, chaos);

  // --- everyone leaves --------------------------------------------------------------------------
  await Promise.all(clients.map((c) => c.stop()));
  await sleep(LEAVE_DELAY_MS + 500);
  const hooksEmpty = await auditWebhooks(recv, app, new Map(), new Set(), 'everyone left', histories);
  await sleep(1000);
  const final = await memorySample(nodes, redis);
  const keyGroups = await redisKeyGroups(redis);
  const memory = auditMemory(baseline, final);
  const webhookProblems = [...hooksConnected.problems.map((p) => `[clients connected] ${p}`), ...hooksEmpty.problems.map((p) => `[everyone left] ${p}`)];
  if (hooksEmpty.missingKey) webhookProblems.unshift(`${hooksEmpty.missingKey} of ${hooksEmpty.delivered} delivered webhook requests carry no Idempotency-Key header (a receiver cannot drop duplicates)`);
  if (hooksEmpty.keyConflicts) webhookProblems.unshift(`${hooksEmpty.keyConflicts} Idempotency-Key(s) reused for different events`);
  if (hooksEmpty.invalidSignatures) webhookProblems.unshift(`${hooksEmpty.invalidSignatures} webhook request(s) with an invalid signature`);
  const webhooks = { ok: webhookProblems.length === 0, connected: hooksConnected, empty: hooksEmpty, problems: webhookProblems };

  // --- report -----------------------------------------------------------------------------------
  const loadSeconds = (loadEnd - loadStart) / 1000;
  const summary = {
    mode: SMOKE ? 'smoke' : 'full',
    commit: env.SOAK_COMMIT ?? undefined,
    startedAt: new Date(started).toISOString(),
    seed: SEED,
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    loadSeconds: Math.round(loadSeconds * 10) / 10,
    nodes: NODES,
    subscribers: SUBSCRIBERS,
    churners: CHURNERS,
    channels: { public: PUBLIC_CHANNELS, presence: PRESENCE_CHANNELS },
    targetRate: RATE,
    acceptedRate: Math.round((events.attempts.accepted / loadSeconds) * 10) / 10,
    config: { node_ttl_s: NODE_TTL_S, webhooks: WEBHOOKS, startMarginMs: START_MARGIN_MS, endMarginMs: END_MARGIN_MS },
    chaos: chaos.map((c) => ({
      kind: c.kind,
      target: c.target,
      at: Math.round((c.startAt - loadStart) / 100) / 10,
      downMs: c.downMs,
      recoveryMs: c.recoveredAt === undefined ? null : c.recoveredAt - c.faultEndAt,
      error: c.error,
    })),
    chaosCounts: countBy(chaos.map((c) => c.kind)),
    churn: churners.reduce((acc, c) => {
      for (const [k, v] of Object.entries(c.stats)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    checks: {
      events: { ok: events.ok, ...omit(events, ['ok', 'problems']), problems: events.problems.slice(0, 500) },
      presence: { ok: presence.ok, convergedAfterMs: presence.convergedAfterMs, ghostMembers: presence.ghostMembers, perChannel: presence.perChannel, problems: presence.problems.slice(0, 50) },
      webhooks: {
        ok: webhooks.ok,
        requests: hooksEmpty.requests,
        delivered: hooksEmpty.delivered,
        uniqueKeys: hooksEmpty.uniqueKeys,
        missingKey: hooksEmpty.missingKey,
        duplicatesByKey: hooksEmpty.duplicateRequests,
        keyConflicts: hooksEmpty.keyConflicts,
        invalidSignatures: hooksEmpty.invalidSignatures,
        events: hooksEmpty.counts,
        unbalancedWhileConnected: hooksConnected.problems.length,
        unbalancedAfterAllLeft: hooksEmpty.problems.length,
        problems: webhookProblems.slice(0, 50),
      },
      memory: { ...memory, peak, redisKeysLeft: keyGroups },
    },
  };
  const ok = events.ok && presence.ok && webhooks.ok && memory.ok;
  summary.ok = ok;

  mkdirSync(LOG_DIR, { recursive: true });
  await cleanup();
  for (const n of nodes) writeFileSync(path.join(LOG_DIR, `${n.name}.log`), n.logs());
  writeFileSync(path.join(LOG_DIR, 'redis.log'), redis.logs());
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(summary, null, 2)}\n`);
  printReport(summary, { events, presence, webhooks, memory });
  console.log(`\nJSON: ${path.relative(process.cwd(), OUT) || OUT}   node and redis logs: ${path.relative(process.cwd(), LOG_DIR)}/`);
  console.log(ok ? '\nSOAK PASSED' : '\nSOAK FAILED (see the problems above)');
  return ok ? 0 : 1;
}

function omit(obj, keys) {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}

function printReport(s, { events, presence, webhooks, memory }) {
  const line = (k, v) => console.log(`  ${k.padEnd(34)} ${v}`);
  const status = (ok) => (ok ? 'PASS' : 'FAIL');
  console.log(`\n===== soak summary (${s.mode}, seed ${s.seed}) =====`);
  line('duration', `${s.loadSeconds} s of load, ${s.wallSeconds} s wall`);
  line('cluster', `${s.nodes} nodes, 1 redis (AOF, appendfsync always), node_ttl_s ${NODE_TTL_S}, leave_delay_ms ${LEAVE_DELAY_MS}`);
  line('clients', `${s.subscribers} subscribers, ${s.churners} presence churners (${s.churn.joins ?? 0} joins, ${s.churn.leaves ?? 0} leaves, ${s.churn.drops ?? 0} dropped connections, ${s.churn.failed ?? 0} refused joins)`);
  line('event rate', `${s.targetRate}/s target, ${s.acceptedRate}/s accepted, over ${s.channels.public + s.channels.presence} channels`);
  line('chaos actions', Object.entries(s.chaosCounts).map(([k, v]) => `${k} × ${v}`).join(', ') || 'none');
  for (const c of s.chaos) line('', `+${c.at}s ${c.kind}${c.target ? ` ${c.target}` : ''} (fault ${fmtS(c.downMs)}; cluster ready ${c.recoveryMs === null ? 'NEVER' : `${c.recoveryMs} ms`} after)${c.error ? ` error: ${c.error}` : ''}`);
  console.log('');
  const a = events.attempts;
  line(`1. events                  ${status(events.ok)}`, '');
  line('   triggers', `${fmtInt(a.total)}: accepted ${fmtInt(a.accepted)}, refused 503 ${fmtInt(a.refused503)}, refused other ${fmtInt(a.refusedOther)} ${JSON.stringify(events.refusedStatuses)}, not sent (refused connection) ${fmtInt(a.unsent)}, unknown outcome ${fmtInt(a.ambiguous)}`);
  line('   deliveries', `demanded ${fmtInt(events.demanded)} over ${events.windows} subscription windows, delivered ${fmtInt(events.delivered)}`);
  line('   lost', `${fmtInt(events.lost)} deliveries (${fmtInt(events.lostDistinctEvents)} distinct events)${Object.keys(events.lostByChaos).length ? ` by chaos: ${JSON.stringify(events.lostByChaos)}` : ''}`);
  line('   duplicates / out of order', `${fmtInt(events.duplicates)} / ${fmtInt(events.outOfOrder)}`);
  line('   refused but delivered', fmtInt(events.refusedButDelivered));
  line('   disconnects not caused by a kill', events.unexpectedDisconnects.length ? events.unexpectedDisconnects.slice(0, 5).join('; ') : '0');
  line(`2. presence (no ghosts)    ${status(presence.ok)}`, '');
  for (const [ch, v] of Object.entries(presence.perChannel)) line(`   ${ch}`, JSON.stringify(v));
  line('   ghost members', `${presence.ghostMembers} (channel, user) pairs; ${presence.problems.length} problems (checked ${presence.convergedAfterMs} ms after the first look)`);
  line(`3. webhooks                ${status(webhooks.ok)}`, '');
  line('   requests', `${webhooks.empty.requests} (${webhooks.empty.delivered} answered 2xx), events ${JSON.stringify(webhooks.empty.counts)}`);
  line('   Idempotency-Key', `${webhooks.empty.uniqueKeys} distinct, ${webhooks.empty.duplicateRequests} duplicate requests by key (allowed), ${webhooks.empty.missingKey} requests without the header, ${webhooks.empty.keyConflicts} conflicts`);
  line('   unbalanced (lost)', `${webhooks.connected.problems.length} while clients connected, ${webhooks.empty.problems.length} after everyone left`);
  line(`4. memory                  ${status(memory.ok)}`, '');
  for (const r of memory.rows) line(`   ${r.what}`, `baseline ${mib(r.baselineKiB)}, final ${mib(r.finalKiB)}, limit ${mib(r.limitKiB)}${r.ok ? '' : '  ← over'}`);
  line('   peak during the run', `${Object.entries(s.checks.memory.peak.nodes).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}, redis ${mib(s.checks.memory.peak.redisUsedKiB)}`);
  line('   redis keys left', JSON.stringify(s.checks.memory.redisKeysLeft));
  // at most 25 lines per check, so one noisy check does not hide the others
  const sections = [
    ['events', events.problems],
    ['presence', presence.problems],
    ['webhooks', webhooks.problems],
    ['memory', memory.problems],
  ].filter(([, list]) => list.length);
  if (sections.length) console.log('\n----- problems -----');
  for (const [name, list] of sections) {
    for (const p of list.slice(0, 25)) console.log(`  [${name}] ${p}`);
    if (list.length > 25) console.log(`  [${name}] … ${list.length - 25} more (all in the JSON file)`);
  }
}

// The audits are exported for checks of the harness itself; the soak runs only when this file is
// the program.
export { auditEvents, webhookBalance };

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`soak harness error: ${err.stack ?? err}`);
      process.exit(2);
    },
  );
}
