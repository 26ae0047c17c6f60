// A real Redis Cluster on loopback ports (Redis ≥ 7: sharded pub/sub, SSUBSCRIBE/SPUBLISH), for
// the `redis-cluster` backplane driver. Nodes are lib/redis.mjs RedisServers started with
// `--cluster-enabled yes` (nodes-PORT.conf in each node's own temp dir, so a killed node that is
// started again keeps its node id and rejoins); the cluster is formed with
// `redis-cli --cluster create`.
//
//   const rc = await startRedisCluster();       // 3 primaries, 1 replica each; waits until every
//                                               // node says cluster_state:ok, all 16384 slots are
//                                               // covered, every replica is linked and all nodes
//                                               // agree on the topology
//   const rc = await startRedisCluster({ primaries: 3, replicasPerPrimary: 0 })
//   rc.seeds                                    // ['redis://127.0.0.1:P', ...]: every primary (as last seen)
//   rc.urls                                     // every node
//   rc.nodes                                    // RedisServers ({port, url, running, logs(), ...})
//   await rc.topology()                         // [{port, id, role: 'primary'|'replica', primaryPort, slots: [[a, b]], flags}]
//   await rc.primaries()                        // ports of the primaries, by first slot
//   await rc.replicasOf(primaryPort)            // ports
//   await rc.slotOwner(slot) / rc.ownerOfKey(key) // port of the primary serving it
//   await rc.failover(port, { how: 'kill' })    // SIGKILL the primary, wait until a replica took
//                                               // over and the cluster is ok: {port, ms}
//   await rc.failover(port, { how: 'manual' })  // CLUSTER FAILOVER on one of its replicas: {port, ms}
//   await rc.restart(port)                      // start a killed node again; it rejoins as a replica
//   await rc.migrateSlot(slot, toPort)          // SETSLOT IMPORTING/MIGRATING, MIGRATE its keys, SETSLOT NODE
//   rc.pause(port) / rc.resume(port)            // SIGSTOP / SIGCONT
//   await rc.settle(what, check?)               // wait until the live nodes are ok and agree again
//   rc.timings                                  // {started, created, settled}: ms the start took
//   await rc.dispose(); rc.logs()
//
//   const one = await startSingleNodeCluster()  // ONE cluster-enabled node owning every slot:
//                                               // multi-key commands / scripts across slots fail
//                                               // with CROSSSLOT, as they would on a real cluster
//
//   keySlot(key)                                // CRC16 (XMODEM) of the key or its {hash tag}, mod 16384
//   const conn = await openResp(port)           // a raw RESP2 connection: send(args), next(pred),
//                                               // frames, raw (bytes received), closed
//
// Failure detection is fast for tests: cluster-node-timeout 1000 ms, so a SIGKILLed primary is
// replaced in about 2-3 s. The cluster bus listens on port + 10000: ports are chosen so that both
// are free. `redis-server` and `redis-cli` must be on PATH (FERROCAST_REDIS_SERVER,
// FERROCAST_REDIS_CLI); the suite refuses to skip.

import { execFile } from 'node:child_process';
import net from 'node:net';

import { RedisServer, parseReply, redisCommand, redisServerPath } from './redis.mjs';
import { executablePath, sleep } from './util.mjs';

export const SLOTS = 16384;
const NODE_TIMEOUT_MS = 1000;
const READY_TIMEOUT_MS = 30_000;

const CLI_HINT =
  'The Redis Cluster tests need `redis-cli` on PATH (Redis ≥ 7, for sharded pub/sub); it comes ' +
  'with `apt-get install redis-server` (Debian/Ubuntu, package redis-tools), `brew install redis` ' +
  '(macOS) or `dnf install redis` (Fedora); or point FERROCAST_REDIS_CLI at the binary. ' +
  'The conformance suite refuses to skip.';

/** Absolute path of redis-cli (FERROCAST_REDIS_CLI or PATH); throws with install instructions. */
export function redisCliPath() {
  return executablePath('redis-cli', 'FERROCAST_REDIS_CLI', CLI_HINT);
}

// ---------------------------------------------------------------------------------------------
// Hash slots

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i += 1) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0) of a byte sequence. */
export function crc16(bytes) {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc;
}

/**
 * The cluster hash slot of a key (string: its UTF-8 bytes, or a Buffer), per the Redis Cluster
 * spec: if the key has a '{' followed later by a '}' with at least one byte between the first '{'
 * and the first '}' after it, only those bytes are hashed; otherwise the whole key.
 */
export function keySlot(key) {
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(String(key), 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

// ---------------------------------------------------------------------------------------------
// Raw RESP connection (pub/sub pushes, MOVED replies, ...)

/**
 * A raw RESP2 connection that keeps every reply / push it receives, in order.
 *   conn.send(['SSUBSCRIBE', 'ch'])        // write one command (no waiting)
 *   await conn.next(pred, timeoutMs)        // the first frame from `conn.cursor` on matching pred;
 *                                           // the cursor moves past it
 *   conn.frames                             // parsed frames; errors are {error: 'MOVED ...'}
 *   conn.raw                                // every byte received, as a latin1 string
 *   await conn.closed                       // resolves {error} when the server closes / resets
 *   conn.close()
 */
export class RespConnection {
  constructor(socket) {
    this.socket = socket;
    this.frames = [];
    this.cursor = 0;
    this.raw = '';
    this.buffer = Buffer.alloc(0);
    this.waiters = new Set();
    this.isClosed = false;
    this.closed = new Promise((resolve) => {
      let error;
      socket.on('error', (err) => {
        error = err;
      });
      socket.on('close', () => {
        this.isClosed = true;
        resolve({ error });
        for (const w of this.waiters) w();
      });
    });
    socket.on('data', (chunk) => {
      this.raw += chunk.toString('latin1');
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const parsed = parseReply(this.buffer);
        if (!parsed) break;
        this.frames.push(parsed.value);
        this.buffer = this.buffer.subarray(parsed.next);
      }
      for (const w of this.waiters) w();
    });
  }

  send(args) {
    const parts = args.map((a) => String(a));
    this.socket.write(`*${parts.length}\r\n${parts.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  }

  /** Sends a command and resolves with the next frame (use only when no pushes are expected). */
  async command(args, timeoutMs = 2000) {
    this.send(args);
    return this.next(() => true, timeoutMs);
  }

  next(predicate = () => true, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.cursor; i < this.frames.length; i += 1) {
          if (predicate(this.frames[i])) {
            this.cursor = i + 1;
            done();
            resolve(this.frames[i]);
            return;
          }
        }
        if (this.isClosed) {
          done();
          reject(new Error(`connection closed; frames: ${JSON.stringify(this.frames)}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching frame within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames)}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close() {
    this.socket.destroy();
  }
}

/** Opens a RespConnection to 127.0.0.1:port. */
export function openResp(port, host = '127.0.0.1', timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`could not connect to ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      resolve(new RespConnection(socket));
    });
    const fail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', fail);
  });
}

// ---------------------------------------------------------------------------------------------
// Ports and topology

/** True when 127.0.0.1:port can be bound right now. */
function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * `count` distinct ports p with p and p + 10000 (the cluster bus) both free, picked at random in
 * 20000..49999 (so p + 10000 < 65536; a port taken meanwhile by someone else makes start fail loudly).
 */
async function clusterPorts(count) {
  const ports = [];
  for (let attempt = 0; ports.length < count; attempt += 1) {
    if (attempt > 1000) throw new Error('could not find free port pairs (p, p + 10000) on 127.0.0.1');
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const taken = ports.some((p) => p === port || Math.abs(p - port) === 10_000);
    if (!taken && (await portFree(port)) && (await portFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

function clusterArgs(port) {
  return [
    '--cluster-enabled', 'yes',
    // Relative: redis-server chdirs to its --dir (the node's own temp dir) first.
    '--cluster-config-file', `nodes-${port}.conf`,
    '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
    // Topology stays as the tests make it: no replica wanders to an orphaned primary.
    '--cluster-allow-replica-migration', 'no',
    // A replica (new, or a restarted old primary) syncs at once instead of after the default 5 s.
    '--repl-diskless-sync-delay', '0',
  ];
}

/** `CLUSTER NODES` of one node, parsed: [{id, port, flags, role, primaryId, linkState, slots, myself, failing}]. */
export async function clusterNodes(port) {
  const text = await redisCommand(port, ['CLUSTER', 'NODES']);
  return String(text)
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const f = line.trim().split(' ');
      const flags = f[2].split(',');
      const slots = [];
      for (const s of f.slice(8)) {
        if (s.startsWith('[')) continue; // [slot->-id] migrating / importing markers
        const [a, b] = s.split('-').map(Number);
        slots.push([a, b ?? a]);
      }
      return {
        id: f[0],
        port: Number(/:(\d+)@/.exec(f[1])?.[1]),
        flags,
        role: flags.includes('master') ? 'primary' : flags.includes('slave') ? 'replica' : 'unknown',
        primaryId: f[3] === '-' ? undefined : f[3],
        linkState: f[7],
        slots,
        myself: flags.includes('myself'),
        failing: flags.includes('fail') || flags.includes('fail?'),
      };
    });
}

/** `CLUSTER INFO` of one node as an object of strings. */
export async function clusterInfo(port) {
  const text = await redisCommand(port, ['CLUSTER', 'INFO']);
  return Object.fromEntries(
    String(text)
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

/** Topology from one node's view: [{port, id, role, primaryPort, slots, flags}], primaries first. */
function toTopology(view) {
  const byId = new Map(view.map((n) => [n.id, n]));
  return view
    .map((n) => ({
      port: n.port,
      id: n.id,
      role: n.role,
      primaryPort: n.primaryId ? byId.get(n.primaryId)?.port : undefined,
      slots: n.slots,
      flags: n.flags.filter((x) => x !== 'myself'),
    }))
    .sort((a, b) => (a.role === b.role ? (a.slots[0]?.[0] ?? SLOTS) - (b.slots[0]?.[0] ?? SLOTS) || a.port - b.port : a.role === 'primary' ? -1 : 1));
}

/** A primary that owns slots and is not flagged as failing (a killed primary keeps role master). */
const servingPrimary = (n) => n.role === 'primary' && n.slots.length > 0 && !n.flags.includes('fail') && !n.flags.includes('fail?');

async function waitUntil(what, check, timeoutMs = READY_TIMEOUT_MS, interval = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last === true) return;
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await sleep(interval);
  }
}

function runCli(args, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    execFile(redisCliPath(), args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The cluster

class RedisCluster {
  constructor(nodes) {
    this.nodes = nodes;
    this.cliLog = '';
    this.lastTopology = [];
    this.timings = {}; // ms since startRedisCluster began: started (processes up), created (redis-cli done), settled
  }

  node(port) {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  }

  /** Nodes that run and are not paused. */
  live() {
    return this.nodes.filter((n) => n.running && !n.paused);
  }

  get urls() {
    return this.nodes.map((n) => n.url);
  }

  /** Every primary serving slots, as last seen by a settle (start, failover, restart, migrateSlot). */
  get seeds() {
    return this.lastTopology.filter(servingPrimary).map((n) => `redis://127.0.0.1:${n.port}`);
  }

  /** The topology as seen by the first live node. */
  async topology() {
    const [first] = this.live();
    if (!first) throw new Error('no live cluster node');
    return toTopology(await clusterNodes(first.port));
  }

  /** Ports of the primaries that own slots, by first slot. */
  async primaries() {
    return (await this.topology()).filter(servingPrimary).map((n) => n.port);
  }

  async replicasOf(primaryPort) {
    return (await this.topology()).filter((n) => n.role === 'replica' && n.primaryPort === primaryPort).map((n) => n.port);
  }

  async slotOwner(slot) {
    const owner = (await this.topology()).find((n) => n.role === 'primary' && n.slots.some(([a, b]) => a <= slot && slot <= b));
    return owner?.port;
  }

  async ownerOfKey(key) {
    return this.slotOwner(keySlot(key));
  }

  /**
   * Waits until every live node reports cluster_state:ok with all slots ok, every live replica is
   * linked to its primary (ROLE ... connected) and all live nodes agree on roles, primaries and
   * slot owners. `check(topology)` may add a condition. Returns the agreed topology.
   */
  async settle(what, check = () => true, timeoutMs = READY_TIMEOUT_MS) {
    let agreed;
    await waitUntil(what, async () => {
      const live = this.live();
      const views = [];
      for (const node of live) {
        const info = await clusterInfo(node.port);
        if (info.cluster_state !== 'ok') return `${node.port}: cluster_state ${info.cluster_state}`;
        if (info.cluster_slots_ok !== String(SLOTS)) return `${node.port}: cluster_slots_ok ${info.cluster_slots_ok}`;
        const role = await redisCommand(node.port, ['ROLE']);
        if (role[0] === 'slave' && role[3] !== 'connected') return `${node.port}: replica link ${role[3]}`;
        const view = toTopology(await clusterNodes(node.port));
        const me = view.find((n) => n.port === node.port);
        if ((role[0] === 'master') !== (me?.role === 'primary')) return `${node.port}: ROLE ${role[0]} but CLUSTER NODES says ${me?.role}`;
        views.push(view);
      }
      const livePorts = new Set(live.map((n) => n.port));
      const summary = (view) =>
        JSON.stringify(view.filter((n) => livePorts.has(n.port)).map((n) => [n.port, n.role, n.primaryPort, n.slots]));
      const first = summary(views[0]);
      const other = views.find((v) => summary(v) !== first);
      if (other) return `views differ: ${first} vs ${summary(other)}`;
      const verdict = await check(views[0]);
      if (verdict !== true) return verdict || 'check failed';
      agreed = views[0];
      return true;
    }, timeoutMs);
    this.lastTopology = agreed;
    return agreed;
  }

  /**
   * Replaces primary `port` by one of its replicas.
   *   how 'kill'   SIGKILL it; the replicas notice after cluster-node-timeout and one is elected
   *   how 'manual' CLUSTER FAILOVER on its first replica (the old primary becomes its replica)
   * Resolves {port (the new primary), ms (from the kill / the command until the cluster is settled
   * with the new primary owning the slots)}.
   */
  async failover(port, { how = 'kill' } = {}) {
    const before = await this.topology();
    const old = before.find((n) => n.port === port);
    if (!old || old.role !== 'primary') throw new Error(`${port} is not a primary`);
    const replicas = before.filter((n) => n.role === 'replica' && n.primaryPort === port).map((n) => n.port);
    if (!replicas.length) throw new Error(`primary ${port} has no replica to fail over to`);
    const slots = JSON.stringify(old.slots);
    const started = Date.now();
    if (how === 'kill') {
      await this.node(port).kill();
    } else if (how === 'manual') {
      await redisCommand(replicas[0], ['CLUSTER', 'FAILOVER']);
    } else {
      throw new Error(`unknown failover kind ${how}`);
    }
    let promoted;
    await this.settle(`a replica of ${port} to take over (${how})`, (view) => {
      promoted = view.find((n) => replicas.includes(n.port) && n.role === 'primary' && JSON.stringify(n.slots) === slots);
      if (!promoted) return 'no replica promoted yet';
      if (how === 'manual') {
        const demoted = view.find((n) => n.port === port);
        if (demoted?.role !== 'replica' || demoted.primaryPort !== promoted.port) return `${port} not a replica of ${promoted.port} yet`;
      }
      return true;
    });
    return { port: promoted.port, ms: Date.now() - started };
  }

  /** Starts a killed / stopped node again (same port, same nodes.conf); waits until it is back in. */
  async restart(port) {
    const node = this.node(port);
    await node.start();
    await this.settle(`${port} to rejoin`, (view) => {
      const me = view.find((n) => n.port === port);
      return me && !me.flags.includes('fail') && !me.flags.includes('fail?') ? true : `${port} still flagged ${me?.flags}`;
    });
    return node;
  }

  /**
   * Moves one slot to primary `toPort` the way redis-cli --cluster reshard does: IMPORTING on the
   * target, MIGRATING on the source, MIGRATE of its keys, then SETSLOT NODE on both (and on the
   * other primaries). Waits until every node agrees.
   */
  async migrateSlot(slot, toPort) {
    const view = await this.topology();
    const from = view.find((n) => n.role === 'primary' && n.slots.some(([a, b]) => a <= slot && slot <= b));
    const to = view.find((n) => n.port === toPort);
    if (!from) throw new Error(`slot ${slot} has no owner`);
    if (!to || to.role !== 'primary') throw new Error(`${toPort} is not a primary`);
    if (from.port === toPort) return;
    await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id]);
    await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id]);
    for (;;) {
      const keys = await redisCommand(from.port, ['CLUSTER', 'GETKEYSINSLOT', slot, 100]);
      if (!keys.length) break;
      await redisCommand(from.port, ['MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys], '127.0.0.1', 10_000);
    }
    await redisCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    await redisCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    for (const other of view.filter((n) => n.role === 'primary' && n.port !== from.port && n.port !== to.port)) {
      await redisCommand(other.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]).catch(() => {});
    }
    await this.settle(`slot ${slot} to move to ${toPort}`, (v) =>
      v.find((n) => n.port === toPort)?.slots.some(([a, b]) => a <= slot && slot <= b) ? true : 'not moved yet',
    );
  }

  pause(port) {
    this.node(port).pause();
  }

  resume(port) {
    this.node(port).resume();
  }

  logs() {
    return [`===== redis-cli =====\n${this.cliLog}`, ...this.nodes.map((n) => n.logs())].join('\n');
  }

  async dispose() {
    await Promise.all(this.nodes.map((n) => n.dispose()));
  }
}

/**
 * Starts primaries × (1 + replicasPerPrimary) cluster-enabled redis-servers on 127.0.0.1 and forms
 * a cluster with `redis-cli --cluster create`. Resolves once it is settled (see the top).
 */
export async function startRedisCluster({ primaries = 3, replicasPerPrimary = 1 } = {}) {
  redisServerPath(); // fail loudly before anything else
  redisCliPath();
  if (primaries < 3) throw new Error('redis-cli --cluster create needs at least 3 primaries');
  const ports = await clusterPorts(primaries * (1 + replicasPerPrimary));
  const begun = Date.now();
  const cluster = new RedisCluster(ports.map((port) => new RedisServer(port, { args: clusterArgs(port) })));
  try {
    await Promise.all(cluster.nodes.map((n) => n.start()));
    cluster.timings.started = Date.now() - begun;
    cluster.cliLog = await runCli([
      '--cluster', 'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', String(replicasPerPrimary),
      '--cluster-yes',
    ]);
    cluster.timings.created = Date.now() - begun;
    await cluster.settle('the cluster to form', (view) => {
      const prim = view.filter((n) => n.role === 'primary');
      const repl = view.filter((n) => n.role === 'replica');
      if (view.length !== ports.length) return `${view.length} of ${ports.length} nodes known`;
      if (prim.length !== primaries) return `${prim.length} primaries`;
      for (const p of prim) {
        const n = repl.filter((r) => r.primaryPort === p.port).length;
        if (n !== replicasPerPrimary) return `${p.port} has ${n} replicas`;
      }
      return true;
    });
    cluster.timings.settled = Date.now() - begun;
  } catch (err) {
    const logs = cluster.logs();
    await cluster.dispose();
    throw new Error(`${err.message}\n${logs}`);
  }
  return cluster;
}

/**
 * ONE cluster-enabled redis-server that owns all 16384 slots (CLUSTER ADDSLOTSRANGE 0 16383):
 * every key is served, but multi-key commands and scripts whose keys hash to different slots fail
 * with CROSSSLOT, as on a real cluster. Resolves the RedisServer (port, url, dispose(), logs(), ...).
 */
export async function startSingleNodeCluster() {
  redisServerPath();
  const [port] = await clusterPorts(1);
  const node = new RedisServer(port, { args: clusterArgs(port) });
  try {
    await node.start();
    await redisCommand(port, ['CLUSTER', 'ADDSLOTSRANGE', 0, SLOTS - 1]);
    await waitUntil('the single-node cluster to be ok', async () => {
      const info = await clusterInfo(port);
      return info.cluster_state === 'ok' && info.cluster_slots_ok === String(SLOTS) ? true : `cluster_state ${info.cluster_state}`;
    });
  } catch (err) {
    const logs = node.logs();
    await node.dispose();
    throw new Error(`${err.message}\n${logs}`);
  }
  return node;
}
