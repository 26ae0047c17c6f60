// Issue 9: native TLS on the client port. A certificate made here (own CA) serves pusher-js over
// wss:// (forceTLS) and the pusher SDK over https://; replacing the files is picked up on
// SIGHUP and, separately, by the file-change poll (a Kubernetes-style symlink swap); a broken
// replacement keeps the old certificate. The node keeps running throughout (SIGHUP never kills
// it). The metrics port stays plain HTTP.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';

import { PusherServer } from '../lib/clients.mjs';
import { CONFORMANCE_DIR, makeApp, makeNode } from '../lib/server.mjs';
import { waitFor } from '../lib/util.mjs';
import { metric, plain } from './edge-lib.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferrocast-tls-'));
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ferrocast test CA');
writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
const CA = readFileSync(path.join(dir, 'ca.pem'));

/** A server certificate signed by the test CA, written as `<name>.pem` / `<name>.key`. */
function issue(name) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', 'san.ext');
  const pem = readFileSync(path.join(dir, `${name}.pem`));
  return { pem, key: readFileSync(path.join(dir, `${name}.key`)), fingerprint: new X509Certificate(pem).fingerprint256 };
}

// The node reads /live/tls.crt and /live/tls.key, symlinks into a versioned dir, as a Kubernetes
// Secret volume does.
const live = path.join(dir, 'live');
function publish(version, cert) {
  const target = path.join(dir, version);
  execFileSync('mkdir', ['-p', target, live]);
  writeFileSync(path.join(target, 'tls.crt'), cert.pem);
  writeFileSync(path.join(target, 'tls.key'), cert.key);
  const tmp = path.join(dir, `data-${version}`);
  symlinkSync(target, tmp);
  renameSync(tmp, path.join(dir, 'data')); // atomic swap of ../data
}

const app = makeApp();
const first = issue('one');
let node;

before(async () => {
  publish('v1', first);
  for (const f of ['tls.crt', 'tls.key']) symlinkSync(path.join('..', 'data', f), path.join(live, f));
  node = await makeNode(0, {
    apps: [app],
    server: { tls_cert: path.join(live, 'tls.crt'), tls_key: path.join(live, 'tls.key') },
  });
  Object.defineProperty(node, 'httpUrl', { get: () => node.metricsUrl }); // readiness: plain port
  await node.start();
});
after(async () => {
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** SHA-256 fingerprint of the certificate a new TLS connection is served. */
function servedFingerprint() {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: node.port, ca: CA, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

const reloads = (result) => metric(node, 'ferrocast_tls_reloads_total', { result });

test('pusher-js over wss:// (forceTLS) receives an event triggered over https://', async () => {
  const script = `
    import Pusher from 'pusher-js';
    const p = new Pusher(${JSON.stringify(app.key)}, { wsHost: '127.0.0.1', wssPort: ${node.port},
      forceTLS: true, enabledTransports: ['ws'], cluster: 'local', disableStats: true });
    const ch = p.subscribe('tls-channel');
    ch.bind('pusher:subscription_succeeded', () => console.log('SUBSCRIBED'));
    ch.bind('hello', (d) => { console.log('EVENT ' + JSON.stringify(d)); p.disconnect(); process.exit(0); });
    setTimeout(() => process.exit(3), 15000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: CONFORMANCE_DIR,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor(() => out.includes('SUBSCRIBED'), 10_000, { message: `pusher-js subscribed over wss: ${out}` });
  const sdk = new PusherServer({
    appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: node.port,
    useTLS: true, agent: new https.Agent({ ca: CA }),
  });
  const res = await sdk.trigger('tls-channel', 'hello', { over: 'https' });
  assert.equal(res.status, 200);
  assert.equal(await exited, 0, out);
  assert.match(out, /EVENT \{"over":"https"\}/);
  // Plain HTTP on the TLS port is not served.
  await assert.rejects(fetch(`http://127.0.0.1:${node.port}/healthz`, { signal: AbortSignal.timeout(3000) }));
});

test('SIGHUP reloads a replaced certificate and the node keeps running', async () => {
  assert.equal(await servedFingerprint(), first.fingerprint);
  const ok = await reloads('ok');
  const second = issue('two');
  publish('v2', second);
  node.proc.child.kill('SIGHUP');
  await waitFor(async () => (await servedFingerprint()) === second.fingerprint, 5000);
  await waitFor(() => /TLS certificate reloaded.*why="?SIGHUP/.test(plain(node.stdout + node.stderr)), 5000, {
    message: 'the SIGHUP reload logged',
  });
  assert.ok((await reloads('ok')) > ok);
  assert.ok(node.running, 'SIGHUP did not stop the node');
});

test('the file-change poll picks up a symlink swap; a broken replacement keeps the old certificate', async () => {
  const third = issue('three');
  publish('v3', third);
  await waitFor(async () => (await servedFingerprint()) === third.fingerprint, 10_000, { message: 'poll reload' });
  // A key that does not match the certificate: reload fails, the old certificate stays.
  const errors = await reloads('error');
  const fourth = issue('four');
  publish('v4', { pem: fourth.pem, key: first.key });
  await waitFor(async () => (await reloads('error')) > errors, 10_000, { message: 'failed reload counted' });
  assert.equal(await servedFingerprint(), third.fingerprint);
  assert.ok(node.running);
});
