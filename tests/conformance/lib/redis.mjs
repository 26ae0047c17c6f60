// A throw-away Redis for cluster tests: `redis-server` from PATH, no persistence, 127.0.0.1 only.
//
//   const redis = await startRedis();          // free port
//   const redis = await startRedis({ port });  // a given port (e.g. one a node already points at)
//   redis.url                                  // redis://127.0.0.1:PORT
//   await redis.restart({ whileDown })         // stop, run whileDown(), start a fresh (empty) one on the same port
//   await redis.kill() / redis.stop() / redis.start()
//   redis.pause() / redis.resume()             // SIGSTOP / SIGCONT: a hung Redis that keeps its state
//   await startRedis({ args: ['--appendonly', 'yes'] })  // extra redis-server arguments (they win
//                                              // over the defaults above); the working dir is kept
//                                              // across kill()/start(), so an AOF survives a crash
//
// No npm Redis client is needed: readiness is checked with a raw `PING\r\n` over TCP.

import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { executablePath, freePort, sleep } from './util.mjs';

const STOP_GRACE_MS = 5_000;
const READY_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 64 * 1024;

const liveRedis = new Set();
process.once('exit', () => {
  for (const child of liveRedis) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

const INSTALL_HINT =
  'The cluster tests need a local `redis-server` on PATH (any version ≥ 6). Install it with ' +
  '`apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS) or ' +
  '`dnf install redis` (Fedora), or point FERROCAST_REDIS_SERVER at the binary. ' +
  'The conformance suite refuses to skip.';

/** Absolute path of redis-server (FERROCAST_REDIS_SERVER or PATH); throws with install instructions. */
export function redisServerPath() {
  return executablePath('redis-server', 'FERROCAST_REDIS_SERVER', INSTALL_HINT);
}


/**
 * One round-trip `PING\r\n` → `+PONG\r\n` on a fresh TCP connection. Resolves true/false (never
 * throws): false when nothing listens, the reply is something else (e.g. -LOADING) or it takes
 * longer than `timeoutMs`.
 */
export function pingRedis(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    let reply = '';
    let settled = false;
    const socket = net.connect({ host, port });
    const finish = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

export class RedisServer {
  constructor(port, { args = [] } = {}) {
    this.port = port;
    this.extraArgs = args;
    this.host = '127.0.0.1';
    this.child = undefined;
    this.exited = undefined;
    this.dir = undefined;
    this.log = '';
    this.paused = false;
    this.generation = 0; // how many times a redis-server was started on this port
  }

  get url() {
    return `redis://${this.host}:${this.port}`;
  }

  get running() {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  logs() {
    return `===== redis-server 127.0.0.1:${this.port} (generation ${this.generation}, ${this.running ? 'running' : 'stopped'}) =====\n${this.log}`;
  }

  /** Starts redis-server on `this.port` and waits until it answers PING. */
  async start() {
    if (this.running) throw new Error(`redis on port ${this.port} is already running`);
    const bin = redisServerPath();
    // An empty working dir: with --save '' and --appendonly no nothing is written, but redis
    // still wants a dir it may write to.
    if (!this.dir) this.dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-redis-'));
    this.generation += 1;
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--logfile', '',
      ...this.extraArgs,
    ];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    this.child = child;
    liveRedis.add(child);
    const append = (chunk) => {
      const next = this.log + chunk;
      this.log = next.length > LOG_LIMIT ? next.slice(next.length - LOG_LIMIT) : next;
    };
    append(`--- start #${this.generation}: ${bin} ${args.map((a) => (a === '' ? "''" : a)).join(' ')} ---\n`);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    let spawnError;
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        spawnError = err;
        liveRedis.delete(child);
        resolve();
      });
      child.once('exit', (code, signal) => {
        append(`--- exit: code ${code} signal ${signal} ---\n`);
        liveRedis.delete(child);
        resolve();
      });
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new Error(`could not spawn ${bin}: ${spawnError.message}. ${INSTALL_HINT}`);
      if (!this.running) {
        throw new Error(`redis-server on port ${this.port} exited before answering PING\n${this.logs()}`);
      }
      if (await pingRedis(this.port)) return this;
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`redis-server on port ${this.port} did not answer PING within ${READY_TIMEOUT_MS} ms\n${this.logs()}`);
      }
      await sleep(25);
    }
  }

  /** SIGTERM (SIGKILL after 5 s) and wait for the exit. Idempotent. */
  async stop() {
    if (!this.running) return;
    this.resume(); // a stopped process would not handle SIGTERM
    this.child.kill('SIGTERM');
    let timer;
    const late = await Promise.race([
      this.exited.then(() => false),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (late) await this.kill();
  }

  /** SIGKILL (a crash) and wait for the exit. Idempotent. */
  async kill() {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /**
   * SIGSTOP: Redis hangs (connections stay open, nothing is answered) until resume(); its
   * state is kept. Models a stalled Redis or a network partition rather than a crash.
   */
  pause() {
    if (!this.running) throw new Error(`redis on port ${this.port} is not running`);
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT after pause(). */
  resume() {
    if (this.running && this.paused) this.child.kill('SIGCONT');
    this.paused = false;
  }

  /**
   * Stops this Redis and starts a fresh, empty one on the same port (state is lost, like a crash
   * of a Redis without persistence).
   *   opts.crash    SIGKILL instead of SIGTERM
   *   opts.whileDown async callback run while nothing listens on the port (e.g. to assert
   *                 that nodes report /readyz 503); Redis is started again even if it throws,
   *                 and its error is rethrown afterwards
   */
  async restart({ crash = false, whileDown } = {}) {
    if (crash) await this.kill();
    else await this.stop();
    let failure;
    if (whileDown) {
      try {
        await whileDown();
      } catch (err) {
        failure = err;
      }
    }
    await this.start();
    if (failure) throw failure;
    return this;
  }

  /** Stops Redis and removes its working directory. */
  async dispose() {
    await this.stop();
    if (this.dir) {
      await rm(this.dir, { recursive: true, force: true });
      this.dir = undefined;
    }
  }
}

/**
 * Starts a fresh redis-server on `port` (default: a free port) and waits until it answers PING.
 * `args` are extra redis-server arguments, appended after the defaults (so `--appendonly yes`
 * overrides `--appendonly no`). Returns the RedisServer: { port, url, stop(), kill(), restart(),
 * start(), pause(), resume(), dispose(), logs() }.
 */
export async function startRedis({ port, args } = {}) {
  redisServerPath(); // fail loudly before anything else
  const redis = new RedisServer(port ?? (await freePort()), { args });
  try {
    await redis.start();
  } catch (err) {
    await redis.dispose();
    throw err;
  }
  return redis;
}

/**
 * One RESP2 reply parsed from `buf` at `at`: {value, next} (next = offset after it), or undefined
 * while incomplete. Errors become `{error: message}` values.
 */
export function parseReply(buf, at = 0) {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const head = buf.subarray(at, nl).toString('utf8');
  const rest = head.slice(1);
  const next = nl + 2;
  switch (head[0]) {
    case '+':
      return { value: rest, next };
    case ':':
      return { value: Number(rest), next };
    case '-':
      return { value: { error: rest }, next };
    case '$': {
      const len = Number(rest);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.subarray(next, next + len).toString('utf8'), next: next + len + 2 };
    }
    case '*': {
      const count = Number(rest);
      if (count < 0) return { value: null, next };
      const items = [];
      let offset = next;
      for (let i = 0; i < count; i += 1) {
        const item = parseReply(buf, offset);
        if (!item) return undefined;
        items.push(item.value);
        offset = item.next;
      }
      return { value: items, next: offset };
    }
    default:
      return { value: { error: `unexpected reply ${head}` }, next };
  }
}

/**
 * Sends one command to Redis on a fresh connection and resolves with its reply: a number for
 * integers, a string for simple and bulk strings, null for nil, an array for arrays; an error
 * reply rejects. For fault injection such as `CLIENT KILL`, and for Sentinel queries.
 */
export function redisCommand(port, args, host = '127.0.0.1', timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let reply = Buffer.alloc(0);
    const finish = (err, value) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`redis ${args.join(' ')}: no reply within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => {
      const parts = args.map((a) => String(a));
      socket.write(`*${parts.length}\r\n${parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (chunk) => {
      reply = Buffer.concat([reply, chunk]);
      const parsed = parseReply(reply);
      if (!parsed) return undefined;
      const { value } = parsed;
      if (value && typeof value === 'object' && !Array.isArray(value) && 'error' in value) {
        return finish(new Error(`redis ${args.join(' ')}: ${value.error}`));
      }
      return finish(undefined, value);
    });
    socket.on('error', (err) => finish(err));
  });
}

/** Local TCP ports of the sockets process `pid` has open to `remotePort` (Linux /proc). */
function tcpPortsTo(pid, remotePort) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports = new Set();
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9])) continue;
    if (parseInt(f[2].split(':')[1], 16) === remotePort) ports.add(parseInt(f[1].split(':')[1], 16));
  }
  return ports;
}

/**
 * Kills the pub/sub connection(s) process `pid` holds to `redis` (CLIENT KILL ID), leaving its
 * other connections and every other process's alone. Resolves with how many were killed.
 */
export async function killPubsubOf(redis, pid) {
  const ports = tcpPortsTo(pid, redis.port);
  const list = await redisCommand(redis.port, ['CLIENT', 'LIST', 'TYPE', 'pubsub']);
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    const port = Number(/(?:^| )addr=[^ ]*:(\d+)/.exec(line)?.[1]);
    if (id && ports.has(port)) killed += await redisCommand(redis.port, ['CLIENT', 'KILL', 'ID', id]);
  }
  return killed;
}
