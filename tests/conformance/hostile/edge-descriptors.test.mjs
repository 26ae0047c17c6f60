// Issue 9, part 1: a flood of silent sockets past the node's open-file limit. The node caps
// client connections at the limit minus server.reserved_file_descriptors (closing the excess at
// once), so /healthz on the metrics port keeps answering during the flood, and once the flood's
// sockets hit the header deadline a new client is served.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { connectRaw } from '../lib/raw.mjs';
import { binaryPath, makeNode, renderConfig } from '../lib/server.mjs';
import { sleep, waitFor } from '../lib/util.mjs';
import { metric, openSocket, plain } from './edge-lib.mjs';

const NOFILE = 1024;
const RESERVED = 256;
const FLOOD = 1100; // past the open-file limit itself
const HEADER_S = 3;

const app = { id: 'fd-app', key: 'fd-key', secret: 'fd-secret-0123456789' };
const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

async function health(node) {
  try {
    const res = await fetch(`${node.metricsUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
    return res.status;
  } catch (err) {
    return err.cause?.code ?? err.message;
  }
}

test('a descriptor flood from two addresses leaves /healthz answering, and new clients are served after it', async (t) => {
  const node = await makeNode(0, {
    apps: [app],
    server: {
      request_header_timeout_s: HEADER_S,
      reserved_file_descriptors: RESERVED,
      max_connections_per_ip: 0,
      max_connection_rate_per_ip: 0,
    },
  });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-fd-'));
  const config = path.join(dir, 'node.toml');
  await writeFile(config, renderConfig(node.config));
  let log = '';
  const child = spawn('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, binaryPath(), '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  cleanup.push(async () => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor(async () => (await health(node)) === 200, 20_000, { message: 'node up' });
  assert.match(plain(log), /max_client_connections=768/, 'the cap is logged at start');

  const sockets = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < FLOOD; i += 1) {
    const localAddress = i % 2 === 0 ? '127.0.0.1' : '127.0.0.2';
    sockets.push(await openSocket(node.port, { localAddress }).catch(() => null));
  }
  // During the flood: health and metrics answer on the metrics port.
  assert.equal(await health(node), 200);
  await waitFor(async () => (await metric(node, 'ferrocast_connections_refused_total', { reason: 'node_full' })) > 0, 5000);
  assert.ok((await metric(node, 'ferrocast_open_tcp_connections')) <= NOFILE - RESERVED);
  assert.equal(child.exitCode, null, 'node still running');

  // The held sockets hit the header deadline; then a real client gets in.
  await sleep(HEADER_S * 1000 + 1000);
  assert.equal(await health(node), 200);
  const client = await connectRaw(t, node, app);
  assert.ok(client.socketId);
  assert.ok((await metric(node, 'ferrocast_http_timeouts_total', { phase: 'header' })) >= NOFILE - RESERVED - 10);
  assert.doesNotMatch(plain(log), /Too many open files/, 'no descriptor exhaustion');
});
