// TLS to Redis (`rediss://`): a real redis-server with a TLS port and a CA made for the test
// (lib/pki.mjs), two real nodes that reach it only over TLS, pusher-js subscribers and the pusher
// SDK. The plain port of that redis-server is used by the harness alone (readiness, fault
// injection); the nodes' URL names the TLS port.
//
// - the private CA given as `backplane.tls_ca_file`, and a Redis that requires client
//   certificates (`tls-auth-clients yes`) given `tls_cert_file` / `tls_key_file`: the cluster
//   works end to end (an event triggered on B reaches a subscriber on A; presence across nodes);
// - the same CA given with `SSL_CERT_FILE` instead (as for webhooks): works too;
// - negative controls: a node that does not trust the CA, or has no client certificate where
//   one is required, never becomes ready (and says why), and a config with TLS files but a
//   redis:// URL is refused at start with exit code 2.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { sdkResult, serverSdk } from './lib/clients.mjs';
import { makePki, redisTlsArgs } from './lib/pki.mjs';
import { connectRaw, rawSubscribed, subscribeExtra } from './lib/raw.mjs';
import { startRedis } from './lib/redis.mjs';
import { freePort, makeApp, makeNode, startCluster, trackFailures } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const failures = trackFailures();

let pki;
let other;
let redis;
let tlsPort;

before(async () => {
  pki = await makePki();
  other = await makePki();
  tlsPort = await freePort();
  redis = await startRedis({ args: redisTlsArgs(pki, tlsPort, { authClients: 'optional' }) });
});

after(async () => {
  if (failures.failed) console.error(redis?.logs());
  await redis?.dispose();
});

/** Two nodes on the TLS port with `backplane` extras and `env`; stopped by the caller. */
async function tlsCluster(app, backplane, env = {}) {
  return startCluster(2, {
    apps: [app],
    backplane: { driver: 'redis', url: `rediss://127.0.0.1:${tlsPort}`, ...backplane },
    env,
  });
}

const parse = (data) => (typeof data === 'string' ? JSON.parse(data) : data);

async function worksEndToEnd(t, cluster, app) {
  const [A, B] = cluster.nodes;
  const ch = uid('tls-');
  const raw = await connectRaw(t, A, app);
  await raw.subscribeOk(ch, {});
  const res = await sdkResult(() => serverSdk(B, app).trigger(ch, 'over-tls', { n: 1 }));
  assert.equal(res.status, 200, res.body);
  const frame = await raw.waitFor((f) => f.event === 'over-tls' && f.channel === ch, { timeout: 5000 });
  assert.deepEqual(parse(frame.data), { n: 1 });
  // presence across the nodes: a member on B is in A's roster
  const pch = uid('presence-tls-');
  await rawSubscribed(t, B, app, pch, 'on-b');
  const onA = await connectRaw(t, A, app);
  const success = await onA.subscribeOk(pch, subscribeExtra(app, onA, pch, 'on-a'));
  assert.deepEqual(parse(success.data).presence.ids.sort(), ['on-a', 'on-b']);
}

describe('rediss:// with a private CA (backplane.tls_ca_file) and client certificates', () => {
  test('the cluster works over TLS, Redis requiring client certificates', async (t) => {
    // A second redis-server that requires client certificates.
    const strictPort = await freePort();
    const strict = await startRedis({ args: redisTlsArgs(pki, strictPort, { authClients: 'yes' }) });
    t.after(() => strict.dispose());
    const app = makeApp();
    const cluster = await startCluster(2, {
      apps: [app],
      backplane: {
        driver: 'redis',
        url: `rediss://127.0.0.1:${strictPort}`,
        tls_ca_file: pki.ca.cert,
        tls_cert_file: pki.client.cert,
        tls_key_file: pki.client.key,
      },
    });
    t.after(() => cluster.stop());
    await worksEndToEnd(t, cluster, app);
  });

  test('the private CA given with SSL_CERT_FILE works the same', async (t) => {
    const app = makeApp();
    const cluster = await tlsCluster(app, {}, { SSL_CERT_FILE: pki.ca.cert });
    t.after(() => cluster.stop());
    await worksEndToEnd(t, cluster, app);
  });
});

describe('negative controls', () => {
  async function neverReady(t, backplane, env = {}) {
    const node = await makeNode(0, { apps: [makeApp()], backplane: { driver: 'redis', ...backplane }, env });
    t.after(() => node.stop());
    await node.start({ ready: false });
    await sleep(3000);
    assert.equal(await node.probe('/readyz'), 503, 'not joined: Redis is unreachable over TLS');
    return node;
  }

  test('a node that does not trust the CA never joins, and logs why', async (t) => {
    const node = await neverReady(t, { url: `rediss://127.0.0.1:${tlsPort}`, tls_ca_file: other.ca.cert });
    assert.match(node.logs(), /certificate|UnknownIssuer|invalid peer/i);
  });

  test('a node without a client certificate never joins a Redis that requires one', async (t) => {
    const strictPort = await freePort();
    const strict = await startRedis({ args: redisTlsArgs(pki, strictPort, { authClients: 'yes' }) });
    t.after(() => strict.dispose());
    await neverReady(t, { url: `rediss://127.0.0.1:${strictPort}`, tls_ca_file: pki.ca.cert });
  });

  test('TLS files with a redis:// URL are refused at start (exit 2)', async (t) => {
    const node = await makeNode(0, {
      apps: [makeApp()],
      backplane: { driver: 'redis', url: redis.url, tls_ca_file: pki.ca.cert },
    });
    t.after(() => node.stop());
    await assert.rejects(node.start(), /rediss:\/\//);
    assert.equal(node.proc.state.exitCode, 2);
  });
});
