// Starting / stopping ferrocast processes for the conformance suite.
//
//   startServer({apps, server, backplane, webhooks, env})  -> one ServerNode (already ready)
//   startCluster(n, {apps, server, backplane, webhooks})   -> { nodes, client, rest, stop() }
//   startSuite(opts)                              -> startCluster(FERROCAST_CONFORMANCE_NODES || 1, opts)
//   useServer(opts)                               -> node:test hooks (before/afterEach/after) around startSuite
//
// Tests that do not depend on a single process (channels, presence, REST, client events) use
// `useServer`/`startSuite` and talk WebSocket to `cluster.client` and HTTP to `cluster.rest`.
// With one node both are the same process; when the cluster issue lands, running the suite with
// FERROCAST_CONFORMANCE_NODES=2 (and a shared backplane, see FERROCAST_CONFORMANCE_BACKPLANE)
// puts the WebSocket clients on node A and the REST publisher on node B without touching tests.
//
// A `{driver: 'redis'}` backplane without a `url` makes startCluster start its own throw-away
// redis-server (lib/redis.mjs), one per cluster, exposed as `cluster.redis` and stopped by
// `cluster.stop()`.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before } from 'node:test';

import { startRedis } from './redis.mjs';
import { startRedisCluster, startSingleNodeCluster } from './redis-cluster.mjs';
import { freePort, sleep } from './util.mjs';

export { freePort };

export const CONFORMANCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(CONFORMANCE_DIR, '..', '..');

/** The query string pusher-js 8 sends. */
export const DEFAULT_WS_QUERY = 'protocol=7&client=js&version=8.4.0&flash=false';

const READY_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 5_000;
const LOG_LIMIT = 256 * 1024;

/** Absolute path of the ferrocast binary; throws (never skips) when it is missing. */
export function binaryPath() {
  const candidate = process.env.FERROCAST_BIN
    ? path.resolve(process.env.FERROCAST_BIN)
    : path.join(REPO_ROOT, 'target', 'release', 'ferrocast');
  if (!existsSync(candidate)) {
    throw new Error(
      `ferrocast binary not found at ${candidate}. ` +
        `Build it first with \`cargo build --release\` at the repository root ` +
        `(or point FERROCAST_BIN at a binary). The conformance suite refuses to skip.`,
    );
  }
  return candidate;
}


// ---------------------------------------------------------------------------------------------
// Config generation

let appCounter = 0;
/**
 * An app definition with unique id/key/secret. Any other config key (enable_client_messages,
 * max_connections, webhooks: [{url, events}], …) can be passed in `overrides`.
 */
export function makeApp(overrides = {}) {
  appCounter += 1;
  const tag = `${process.pid}${appCounter}${Math.floor(Math.random() * 1e6)}`;
  return {
    id: `app-${tag}`,
    key: `key-${tag}`,
    secret: `secret-${tag}-${Math.random().toString(36).slice(2)}`,
    ...overrides,
  };
}

function tomlKey(key) {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

export function tomlValue(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot encode ${value} in TOML`);
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  throw new Error(`unsupported TOML value: ${JSON.stringify(value)}`);
}

function tomlTableBody(obj, skip = []) {
  const lines = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || skip.includes(k)) continue;
    lines.push(`${tomlKey(k)} = ${tomlValue(v)}`);
  }
  return lines;
}

/** Renders the ferrocast TOML config ({server, backplane, webhooks, registry, apps}). */
export function renderConfig({ server = {}, backplane, webhooks, registry, apps = [] }) {
  const out = [];
  out.push('[server]', ...tomlTableBody(server), '');
  if (backplane) out.push('[backplane]', ...tomlTableBody(backplane), '');
  if (webhooks) out.push('[webhooks]', ...tomlTableBody(webhooks), '');
  if (registry) out.push('[registry]', ...tomlTableBody(registry), '');
  for (const app of apps) {
    if (app.id === undefined || app.key === undefined || app.secret === undefined) {
      throw new Error('every app needs id, key and secret');
    }
    out.push('[[apps]]', ...tomlTableBody(app, ['webhooks']), '');
    for (const hook of app.webhooks ?? []) {
      out.push('[[apps.webhooks]]', ...tomlTableBody(hook), '');
    }
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Processes

const liveProcesses = new Set();
process.once('exit', () => {
  for (const child of liveProcesses) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

function appendCapped(buf, chunk) {
  const next = buf + chunk;
  return next.length > LOG_LIMIT ? next.slice(next.length - LOG_LIMIT) : next;
}

/** Spawns the binary with arbitrary args/env and captures output (used directly by config tests). */
export function spawnFerrocast(args, { env = {}, cwd } = {}) {
  const bin = binaryPath();
  // Hermetic environment: drop every inherited FERROCAST_* variable (FERROCAST_BIN and the
  // FERROCAST_CONFORMANCE_* knobs could otherwise be read as config overrides); only the
  // overrides a test passes explicitly reach the server.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERROCAST_')));
  const child = spawn(bin, args, {
    cwd: cwd ?? REPO_ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveProcesses.add(child);
  const state = { stdout: '', stderr: '', exitCode: undefined, signal: undefined, spawnError: undefined };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c) => (state.stdout = appendCapped(state.stdout, c)));
  child.stderr.on('data', (c) => (state.stderr = appendCapped(state.stderr, c)));
  const exited = new Promise((resolve) => {
    child.once('error', (err) => {
      state.spawnError = err;
      liveProcesses.delete(child);
      resolve(state);
    });
    child.once('exit', (code, signal) => {
      state.exitCode = code;
      state.signal = signal;
      liveProcesses.delete(child);
      // give the pipes a moment to drain
      setImmediate(() => resolve(state));
    });
  });
  return { child, state, exited };
}

/** Waits for a spawned process to exit; kills it and throws after `timeoutMs`. */
export async function waitForExit(proc, timeoutMs = 10_000) {
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const result = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') {
    proc.child.kill('SIGKILL');
    await proc.exited;
    throw new Error(
      `ferrocast did not exit within ${timeoutMs} ms\n--- stderr ---\n${proc.state.stderr}\n--- stdout ---\n${proc.state.stdout}`,
    );
  }
  return proc.state;
}

export class ServerNode {
  constructor({ name, config, host, port, metricsPort, apps, env, autoPorts = false }) {
    this.name = name;
    // Ports picked by freePort() may be taken by another process between the pick and the bind;
    // a node whose ports were picked that way, and that never started, may pick them again.
    this.autoPorts = autoPorts;
    this.everStarted = false;
    this.config = config; // the object rendered to TOML
    this.host = host;
    this.port = port;
    this.metricsPort = metricsPort;
    this.apps = apps;
    this.env = env ?? {};
    this.dir = undefined;
    this.configPath = undefined;
    /** Optional `async (node, text) => path`: see start(). */
    this.writeConfig = undefined;
    this.proc = undefined;
  }

  get httpUrl() {
    return `http://${this.host}:${this.port}`;
  }

  get metricsUrl() {
    return `http://${this.host}:${this.metricsPort}`;
  }

  /** ws URL for an app key; `query` may be a string or null (no query string at all). */
  wsUrl(key, query = DEFAULT_WS_QUERY) {
    const q = query === null || query === undefined || query === '' ? '' : `?${query}`;
    return `ws://${this.host}:${this.port}/app/${key}${q}`;
  }

  get stdout() {
    return this.proc?.state.stdout ?? '';
  }

  get stderr() {
    return this.proc?.state.stderr ?? '';
  }

  get running() {
    return this.proc !== undefined && this.proc.state.exitCode === undefined && this.proc.state.signal === undefined;
  }

  logs() {
    return `===== ferrocast ${this.name} (port ${this.port}, metrics ${this.metricsPort}) =====\n` +
      `--- config (${this.configPath}) ---\n${renderConfig(this.config)}\n` +
      (this.previousLogs ?? '') +
      `--- stderr ---\n${this.stderr}\n--- stdout ---\n${this.stdout}\n` +
      `--- exit: ${this.proc ? `${this.proc.state.exitCode ?? ''} ${this.proc.state.signal ?? ''}` : 'not started'} ---`;
  }

  /**
   * Spawns the process (again, after stop()/kill(): same config, ports and node_id) and waits
   * for `GET /readyz` → 200. With `{ready: false}` it only waits until `/healthz` answers 200
   * (for nodes that are expected to stay unready, e.g. while their Redis is down).
   */
  async start({ ready = true } = {}) {
    binaryPath(); // fail loudly before creating anything
    if (this.running) throw new Error(`ferrocast ${this.name} is already running`);
    if (this.proc) {
      // keep the previous run's output for logs()
      this.previousLogs = `${this.previousLogs ?? ''}--- previous run (exit ${this.proc.state.exitCode ?? ''} ${this.proc.state.signal ?? ''}) stderr ---\n${this.stderr}\n--- previous run stdout ---\n${this.stdout}\n`;
    }
    for (let attempt = 1; ; attempt += 1) {
      if (!this.dir) this.dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-conformance-'));
      if (this.writeConfig) {
        // A test's own layout of the config file (e.g. a Kubernetes-style symlinked mount):
        // `writeConfig(node, text)` writes it under node.dir and returns the path to run with.
        this.configPath = await this.writeConfig(this, renderConfig(this.config));
      } else {
        this.configPath = path.join(this.dir, `${this.name}.toml`);
        await writeFile(this.configPath, renderConfig(this.config));
      }
      this.proc = spawnFerrocast(['--config', this.configPath], { env: this.env });
      try {
        await (ready ? this.waitReady() : this.waitReady(READY_TIMEOUT_MS, '/healthz'));
        this.everStarted = true;
        return this;
      } catch (err) {
        await this.stop();
        const portRace = !this.running && /Address already in use/.test(this.stdout + this.stderr);
        if (!(portRace && this.autoPorts && !this.everStarted && attempt < 3)) throw err;
        await this.repickPorts();
      }
    }
  }

  /** New free ports, after losing a race for the previous ones. */
  async repickPorts() {
    this.port = await freePort();
    this.metricsPort = await freePort();
    this.config.server.port = this.port;
    this.config.server.metrics_port = this.metricsPort;
  }

  /** Status code of GET `probe` (/readyz by default), or the network error code. */
  async probe(probe = '/readyz') {
    try {
      const res = await fetch(`${this.httpUrl}${probe}`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status;
    } catch (err) {
      return err.cause?.code ?? err.message;
    }
  }

  async waitReady(timeoutMs = READY_TIMEOUT_MS, probe = '/readyz') {
    const deadline = Date.now() + timeoutMs;
    const url = `${this.httpUrl}${probe}`;
    let last = 'no response yet';
    while (Date.now() < deadline) {
      if (this.proc.state.spawnError) {
        throw new Error(`could not spawn ferrocast: ${this.proc.state.spawnError.message}`);
      }
      if (!this.running) {
        throw new Error(
          `ferrocast ${this.name} exited (code ${this.proc.state.exitCode}, signal ${this.proc.state.signal}) before becoming ready\n` +
            this.logs(),
        );
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = err.cause?.code ?? err.message;
      }
      await sleep(READY_POLL_MS);
    }
    throw new Error(`ferrocast ${this.name} not ready on ${url} after ${timeoutMs} ms (last: ${last})\n${this.logs()}`);
  }

  /** SIGKILL (a crash: no drain, no deregistration) and wait for the exit. Keeps the temp dir. */
  async kill() {
    const proc = this.proc;
    if (proc && this.running) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
  }

  /** SIGTERM, then SIGKILL after 5 s. Idempotent. */
  async stop() {
    const proc = this.proc;
    if (proc && this.running) {
      proc.child.kill('SIGTERM');
      let timer;
      const killed = await Promise.race([
        proc.exited.then(() => false),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
      if (killed) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
    }
    if (this.dir) {
      await rm(this.dir, { recursive: true, force: true });
      this.dir = undefined;
    }
  }
}

const NODE_NAMES = 'abcdefghijklmnopqrstuvwxyz';

/**
 * An unstarted ServerNode named `node-<letter>` (node_id too) for node `index`, with free ports.
 * Call `node.start()` yourself (e.g. `start({ready: false})` for a node that must stay unready).
 */
export async function makeNode(index, { apps, server = {}, backplane, webhooks, registry, env }) {
  const name = `node-${NODE_NAMES[index] ?? index}`;
  const port = server.port ?? (await freePort());
  const metricsPort = server.metrics_port ?? (await freePort());
  const serverSection = {
    host: '127.0.0.1',
    node_id: name,
    // fast shutdown so `after` hooks do not wait for the 10 s default drain
    shutdown_grace_s: 1,
    ...server,
    port,
    metrics_port: metricsPort,
  };
  const config = { server: serverSection, backplane: backplane ?? { driver: 'memory' }, webhooks, registry, apps };
  const autoPorts = server.port === undefined && server.metrics_port === undefined;
  return new ServerNode({ name, config, host: '127.0.0.1', port, metricsPort, apps, env, autoPorts });
}

/** Starts one ferrocast process and waits for /readyz. */
export async function startServer({ apps, server = {}, backplane, webhooks, env } = {}) {
  if (!apps || apps.length === 0) throw new Error('startServer needs at least one app');
  const node = await makeNode(0, { apps, server, backplane, webhooks, env });
  return node.start();
}

/**
 * Starts `n` nodes that share `apps`, `backplane`, `webhooks` (the `[webhooks]` table) and
 * `registry` (the `[registry]` table; its `url` is better passed in `env` as
 * FERROCAST_REGISTRY__URL, out of the config file and logs). Returns
 *   { nodes, client, rest, redis, stop(), logs() }
 * where `client` is the node WebSocket clients should use and `rest` the node REST calls
 * should use (node A and the last node respectively; identical for n = 1).
 * `perNode[i]` may override `server` keys for node i.
 *
 * Backplane: `backplane`, else FERROCAST_CONFORMANCE_BACKPLANE, else `{driver: 'memory'}`.
 * For `{driver: 'redis'}` without a `url` a private redis-server is started for this cluster
 * (`cluster.redis`, see lib/redis.mjs) and stopped in `stop()`. With an explicit `url` and no
 * `prefix`, the cluster gets a unique `prefix` so that clusters of files running in parallel
 * (whose node ids are all node-a, node-b, …) do not share state in that Redis. Other keys
 * (`node_ttl_s`, …) are passed through as given. For `{driver: 'redis-cluster'}` without `urls`
 * a private Redis Cluster (lib/redis-cluster.mjs: 3 primaries, no replicas) is started the same
 * way (`cluster.redis`, with its `migrateSlot`, ...).
 */
export async function startCluster(n, { apps, server = {}, backplane, webhooks, registry, env, perNode = [] } = {}) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`startCluster: invalid node count ${n}`);
  const effectiveBackplane = { ...(backplane ?? envBackplane() ?? { driver: 'memory' }) };
  if (n > 1 && effectiveBackplane.driver === 'memory') {
    throw new Error(
      'startCluster: a multi-node cluster needs a shared backplane; the memory driver is per-process. ' +
        'Pass `backplane` or set FERROCAST_CONFORMANCE_BACKPLANE to a JSON object for the [backplane] table.',
    );
  }
  // FERROCAST_CONFORMANCE_REDIS_DRIVER=redis-cluster: every private Redis becomes a private Redis
  // Cluster, so the Redis tests run on the redis-cluster driver (`npm run test:redis-cluster`).
  const privateRedis = effectiveBackplane.url === undefined && effectiveBackplane.sentinels === undefined;
  if (process.env.FERROCAST_CONFORMANCE_REDIS_DRIVER === 'redis-cluster' && effectiveBackplane.driver === 'redis' && privateRedis) {
    effectiveBackplane.driver = 'redis-cluster';
  }
  let redis;
  if (effectiveBackplane.driver === 'redis-cluster' && effectiveBackplane.urls === undefined) {
    // A private Redis Cluster of 3 primaries for this cluster of nodes (no replicas: the
    // failover tests, redis-cluster.test.mjs, start their own with replicas).
    redis = await startRedisCluster({ replicasPerPrimary: 0 });
    effectiveBackplane.urls = redis.seeds;
  }
  if (effectiveBackplane.driver === 'redis') {
    if (effectiveBackplane.url === undefined) {
      // FERROCAST_CONFORMANCE_REDIS=one-node-cluster: one cluster-enabled redis-server owning
      // every slot, where a script reaching another slot than its KEYS fails (CROSSSLOT).
      redis = process.env.FERROCAST_CONFORMANCE_REDIS === 'one-node-cluster' ? await startSingleNodeCluster() : await startRedis();
      effectiveBackplane.url = redis.url;
    } else if (effectiveBackplane.prefix === undefined) {
      clusterCounter += 1;
      effectiveBackplane.prefix = `fc-${process.pid}-${clusterCounter}-${Math.floor(Math.random() * 1e6)}`;
    }
  }
  const nodes = [];
  for (let i = 0; i < n; i += 1) {
    nodes.push(
      await makeNode(i, { apps, server: { ...server, ...(perNode[i] ?? {}) }, backplane: effectiveBackplane, webhooks, registry, env }),
    );
  }
  const cluster = {
    nodes,
    client: nodes[0],
    rest: nodes[nodes.length - 1],
    apps,
    backplane: effectiveBackplane,
    redis,
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      if (redis) await redis.dispose();
    },
    logs() {
      return [...nodes.map((node) => node.logs()), ...(redis ? [redis.logs()] : [])].join('\n');
    },
  };
  const results = await Promise.allSettled(nodes.map((node) => node.start()));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    const logs = redis ? redis.logs() : '';
    await cluster.stop();
    if (!redis) throw failed.reason;
    throw new Error(`${failed.reason?.message ?? failed.reason}\n${logs}`, { cause: failed.reason });
  }
  return cluster;
}

let clusterCounter = 0;

function envBackplane() {
  const raw = process.env.FERROCAST_CONFORMANCE_BACKPLANE;
  if (!raw) return undefined;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new Error(`FERROCAST_CONFORMANCE_BACKPLANE is not valid JSON: ${err.message}`);
  }
}

/** Node count for topology-independent tests (FERROCAST_CONFORMANCE_NODES, default 1). */
export function suiteNodeCount() {
  const n = Number(process.env.FERROCAST_CONFORMANCE_NODES ?? '1');
  if (!Number.isInteger(n) || n < 1) throw new Error(`invalid FERROCAST_CONFORMANCE_NODES=${process.env.FERROCAST_CONFORMANCE_NODES}`);
  return n;
}

export function startSuite(opts) {
  return startCluster(suiteNodeCount(), opts);
}

/**
 * A temp dir for the config files of the enclosing file or describe (created in `before`,
 * removed in `after`): `const configs = useConfigDir('cli'); await configs.write('a.toml', text)`
 * returns the file's path.
 */
export function useConfigDir(name) {
  let dir;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), `ferrocast-${name}-test-`));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      if (!dir) throw new Error('config dir not created yet (used outside a test?)');
      return dir;
    },
    async write(file, text) {
      const full = path.join(dir, file);
      await writeFile(full, text);
      return full;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// node:test integration

const fileState = { failed: false };

// Registered in the current node:test scope (file or describe); harmless if repeated.
function installFailureTracking() {
  afterEach((t) => {
    if (t.passed === false || t.error) fileState.failed = true;
  });
}

/**
 * Registers before/after hooks that start a cluster (see startSuite) for the enclosing
 * file/describe and stop it afterwards, dumping its logs if anything in the file failed.
 * Returns a handle whose `cluster`, `client` and `rest` properties are set once `before` ran.
 *
 *   const srv = useServer({ apps: [app] });
 *   test('x', async (t) => { connectRaw(t, srv.client, app) ... });
 *
 * `opts.single = true` always starts exactly one node (for process-level behaviour such as
 * connection quotas, metrics or idle timeouts); `opts.nodes = n` always starts `n` nodes
 * (cluster tests, with their own `backplane`).
 */
export function useServer(opts) {
  installFailureTracking();
  const handle = {
    cluster: undefined,
    get client() {
      if (!handle.cluster) throw new Error('server not started (did the before hook fail?)');
      return handle.cluster.client;
    },
    get rest() {
      if (!handle.cluster) throw new Error('server not started (did the before hook fail?)');
      return handle.cluster.rest;
    },
    get nodes() {
      return handle.cluster?.nodes ?? [];
    },
    get redis() {
      return handle.cluster?.redis;
    },
  };
  before(async () => {
    const resolved = typeof opts === 'function' ? await opts() : opts;
    if (resolved.single) handle.cluster = await startCluster(1, resolved);
    else if (resolved.nodes !== undefined) handle.cluster = await startCluster(resolved.nodes, resolved);
    else handle.cluster = await startSuite(resolved);
  });
  after(async () => {
    if (!handle.cluster) return;
    if (fileState.failed || process.env.FERROCAST_CONFORMANCE_LOGS === '1') {
      console.error(handle.cluster.logs());
    }
    await handle.cluster.stop();
  });
  return handle;
}

/** Marks the file as failed (logs get dumped) — for tests that manage their own processes. */
export function trackFailures() {
  installFailureTracking();
  return fileState;
}
