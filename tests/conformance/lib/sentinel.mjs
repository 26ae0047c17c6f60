// A Redis Sentinel deployment on loopback ports for failover tests: a primary and a replica
// (lib/redis.mjs) watched by three sentinels (`redis-server <conf> --sentinel`, the same binary).
//
//   const ha = await startSentinelGroup();   // waits until the sentinels see each other and the replica
//   ha.urls                                   // ['redis://127.0.0.1:S1', ...]: backplane.sentinels
//   ha.master                                 // 'ferrocast' : backplane.sentinel_master
//   await ha.primaryPort()                    // the port the sentinels name now
//   await ha.dispose()
//
// Failure detection is fast for tests: down-after-milliseconds 1000, failover-timeout 5000.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { pingRedis, redisCommand, redisServerPath, startRedis } from './redis.mjs';
import { freePort } from './server.mjs';
import { sleep } from './util.mjs';

export const MASTER_NAME = 'ferrocast';
const READY_TIMEOUT_MS = 20_000;
const LOG_LIMIT = 32 * 1024;

class SentinelProcess {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
    this.log = '';
  }

  async start(primaryPort) {
    const conf = path.join(this.dir, `sentinel-${this.port}.conf`);
    await writeFile(
      conf,
      [
        `port ${this.port}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        '',
      ].join('\n'),
    );
    this.child = spawn(redisServerPath(), [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk) => {
      const next = this.log + chunk;
      this.log = next.length > LOG_LIMIT ? next.slice(next.length - LOG_LIMIT) : next;
    };
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', append);
    this.child.stderr.on('data', append);
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await pingRedis(this.port))) {
      if (this.child.exitCode !== null) throw new Error(`sentinel on ${this.port} exited\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`sentinel on ${this.port} did not answer PING\n${this.log}`);
      await sleep(50);
    }
  }

  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** `SENTINEL get-master-addr-by-name` as a port (undefined while unknown). */
async function namedPrimary(port) {
  const reply = await redisCommand(port, ['SENTINEL', 'get-master-addr-by-name', MASTER_NAME]).catch(() => null);
  return Array.isArray(reply) ? Number(reply[1]) : undefined;
}

async function waitUntil(what, check, timeoutMs = READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export async function startSentinelGroup() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-sentinel-'));
  const primary = await startRedis();
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
  const sentinels = [];
  const group = {
    primary,
    replica,
    sentinels,
    master: MASTER_NAME,
    get urls() {
      return sentinels.map((s) => `redis://127.0.0.1:${s.port}`);
    },
    async primaryPort() {
      return namedPrimary(sentinels[0].port);
    },
    logs() {
      return [primary.logs(), replica.logs(), ...sentinels.map((s) => `===== sentinel ${s.port} =====\n${s.log}`)].join('\n');
    },
    async dispose() {
      await Promise.all(sentinels.map((s) => s.stop()));
      await primary.dispose();
      await replica.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil('the replica to sync', async () =>
      /master_link_status:up/.test(String(await redisCommand(replica.port, ['INFO', 'replication']).catch(() => ''))),
    );
    for (let i = 0; i < 3; i += 1) {
      const s = new SentinelProcess(await freePort(), dir);
      sentinels.push(s);
      await s.start(primary.port);
    }
    // Each sentinel must know the other two and the replica before a failover can happen.
    await waitUntil('the sentinels to see each other and the replica', async () => {
      for (const s of sentinels) {
        const quorum = await redisCommand(s.port, ['SENTINEL', 'ckquorum', MASTER_NAME]).catch(() => '');
        if (!/^OK 3 usable/.test(String(quorum))) return false;
        const replicas = await redisCommand(s.port, ['SENTINEL', 'replicas', MASTER_NAME]).catch(() => null);
        if (!Array.isArray(replicas) || replicas.length < 1) return false;
      }
      return true;
    });
  } catch (err) {
    const logs = group.logs();
    await group.dispose();
    throw new Error(`${err.message}\n${logs}`);
  }
  return group;
}
