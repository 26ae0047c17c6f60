// The postgres app registry (docs/configuration.md, "[registry]"): apps in a real PostgreSQL
// (Debian's server binaries, lib/postgres.mjs: initdb into a temp dir, pg_ctl on a loopback
// port), managed with `ferrocast migrate` and `ferrocast apps ...`, served by TWO nodes sharing
// a private Redis. Every change (through the CLI or raw SQL, via the table's NOTIFY trigger)
// must reach both nodes within a second; a PostgreSQL outage must leave the cached apps working.
//
// Always two nodes on their own Redis and PostgreSQL, and run once: package.json's test:cluster
// leaves this file out (it does not depend on FERROCAST_CONFORMANCE_NODES). Fails, never skips,
// without PostgreSQL (`make postgres-deps`).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { connectPusher, serverSdk } from './lib/clients.mjs';
import { postgresBinDir, startPostgres } from './lib/postgres.mjs';
import { channelAuth, connectRaw } from './lib/raw.mjs';
import { signedFetch } from './lib/rest.mjs';
import { REPO_ROOT, binaryPath, makeNode, startCluster, trackFailures } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid } from './lib/util.mjs';

/** A change must be seen on both nodes within this, counted from the command's exit. */
const PROPAGATION_MS = 1000;

const state = trackFailures();
let pg;
let c;
/** Every secret the test handled: none may appear in a node's output. */
const secrets = [];

/** `ferrocast args...` with only `env`'s FERROCAST_* variables; resolves {code, stdout, stderr}. */
function cli(args, { env = {}, timeoutMs = 20_000 } = {}) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERROCAST_')));
  return new Promise((resolve, reject) => {
    const child = spawn(binaryPath(), args, { cwd: REPO_ROOT, env: { ...inherited, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, text: `exit ${code}\n${stdout}${stderr}` });
    });
  });
}

/** `ferrocast apps ...` against the test's PostgreSQL (the URL from the environment); must succeed. */
async function apps(...args) {
  const r = await cli(['apps', ...args], { env: { FERROCAST_REGISTRY__URL: pg.url } });
  assert.equal(r.code, 0, `ferrocast apps ${args.join(' ')}: ${r.text}`);
  assert.ok(!(r.stdout + r.stderr).includes(pg.password), 'the CLI printed the database password');
  return r;
}

/** Add an app through the CLI (credentials generated) and return {id, key, secret}. */
async function addApp(extra = []) {
  const id = `pg-${uid()}`.replace(/[^A-Za-z0-9_.-]/g, '');
  const r = await apps('add', '--id', id, ...extra);
  const field = (name) => r.stdout.match(new RegExp(`^FERROCAST_APP_${name}=(\\S+)$`, 'm'))?.[1];
  const app = { id: field('ID'), key: field('KEY'), secret: field('SECRET') };
  assert.ok(app.id === id && app.key && app.secret, `apps add printed ${r.stdout}`);
  secrets.push(app.secret);
  return app;
}

const newSecret = () => {
  const s = `s-${uid()}-${Math.random().toString(36).slice(2)}`.replace(/[^A-Za-z0-9-]/g, '');
  secrets.push(s);
  return s;
};

async function restWith(node, app, secret) {
  const res = await signedFetch(node, { ...app, secret }, { path: '/events', body: { name: 'e', channel: 'c', data: '{}' } });
  return res.status;
}

/** The event of a private-channel subscribe on `node` signed with `secret`. */
async function privateWith(t, node, app, secret) {
  const raw = await connectRaw(t, node, app);
  const channel = `private-${uid()}`;
  const frame = await raw.subscribe(channel, { auth: channelAuth(app, raw.socketId, channel, undefined, secret) });
  await raw.close();
  return frame.event;
}

/** The close code a new socket for `key` gets on `node` (it must be refused). */
async function refusedWith(t, node, key) {
  const raw = await connectRaw(t, node, { key }, { establish: false });
  return (await raw.waitClose(8000)).code;
}

/** One sample of `name` (labels matching) on `node`'s /metrics. */
async function metric(node, name, labels = {}) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  assert.ok(!text.includes(pg.password), 'the database password appears in /metrics');
  const sample = parseMetrics(text).find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(sample, `${name}${JSON.stringify(labels)} missing on ${node.name}`);
  return sample.value;
}

/** Secret-accepting checks on both nodes: REST and private-channel auth. */
async function accepts(t, app, secret) {
  for (const node of c.nodes) {
    assert.equal(await restWith(node, app, secret), 200, `${node.name}: REST signed with the expected secret`);
    assert.equal(await privateWith(t, node, app, secret), 'pusher_internal:subscription_succeeded', `${node.name}: private auth`);
  }
}

async function refuses(t, app, secret) {
  for (const node of c.nodes) {
    assert.equal(await restWith(node, app, secret), 401, `${node.name}: REST signed with a refused secret`);
    assert.equal(await privateWith(t, node, app, secret), 'pusher:subscription_error', `${node.name}: private auth`);
  }
}

/** pusher-js on both nodes, subscribed to one private channel; an event published on node B reaches both. */
async function usableOnBoth(t, app) {
  const channel = `private-${uid()}`;
  const clients = [];
  for (const node of c.nodes) {
    const client = await connectPusher(t, node, app, { sdk: serverSdk(c.rest, app) });
    await client.subscribe(channel);
    clients.push(client);
  }
  const res = await signedFetch(c.rest, app, { path: '/events', body: { name: 'hello', channel, data: '{"n":1}' } });
  assert.equal(res.status, 200, `publish on ${c.rest.name}: ${res.text}`);
  await Promise.all(clients.map((client) => client.waitEvent(channel, 'hello')));
  return clients;
}

function output() {
  return c.nodes.map((n) => n.stdout + n.stderr).join('\n');
}

describe('postgres app registry on two nodes', { concurrency: false }, () => {
  before(async () => {
    postgresBinDir(); // fail loudly (not skip) when PostgreSQL is missing
    pg = await startPostgres();
  });

  after(async () => {
    if (state.failed) {
      if (c) console.log(c.logs());
      if (pg) console.log(pg.logs());
    }
    if (c) await c.stop();
    if (pg) await pg.destroy();
  });

  test('ferrocast migrate creates the schema once; apps needs it', async () => {
    const env = { FERROCAST_REGISTRY__URL: pg.url };
    const early = await cli(['apps', 'list'], { env });
    assert.equal(early.code, 1, early.text);
    assert.match(early.stderr, /ferrocast migrate/);
    const first = await cli(['migrate'], { env });
    assert.equal(first.code, 0, first.text);
    assert.match(first.stdout, /applied migration\(s\) 1/);
    assert.ok(!first.text.includes(pg.password), 'migrate printed the password');
    const again = await cli(['migrate', '--url', pg.url]);
    assert.equal(again.code, 0, again.text);
    assert.match(again.stdout, /up to date \(version 1\)/);
    assert.equal(await pg.sql('SELECT count(*) FROM ferrocast_schema_migrations'), '1');
    const bad = await cli(['migrate', '--url', 'mysql://u:hidden-pw@h/d']);
    assert.equal(bad.code, 2, bad.text);
    assert.ok(!bad.text.includes('hidden-pw'), bad.text);
  });

  test('two nodes on PostgreSQL and Redis start and are ready with no apps yet', async () => {
    c = await startCluster(2, {
      apps: [],
      backplane: { driver: 'redis' },
      registry: { driver: 'postgres' },
      env: { FERROCAST_REGISTRY__URL: pg.url },
    });
    for (const node of c.nodes) {
      assert.equal(await node.probe('/readyz'), 200);
      assert.equal(await metric(node, 'ferrocast_registry_up'), 1);
      assert.equal(await metric(node, 'ferrocast_registry_loaded'), 1);
    }
  });

  test('an added app is usable at once through both nodes (pusher-js, private auth, REST)', async (t) => {
    const app = await addApp();
    const listed = await apps('list');
    assert.ok(listed.stdout.includes(`"id":"${app.id}"`), listed.stdout);
    assert.ok(!listed.stdout.includes(app.secret), 'apps list shows a secret without --show-secrets');
    const shown = await apps('list', '--show-secrets');
    assert.ok(shown.stdout.includes(app.secret), 'apps list --show-secrets shows the secret');
    await usableOnBoth(t, app);
  });

  test('a rotated secret is required on both nodes within a second; the previous one during its grace', async (t) => {
    const app = await addApp();
    await accepts(t, app, app.secret);
    const rotated = newSecret();
    await apps('update', '--id', app.id, '--secret', rotated);
    await eventually(async () => {
      for (const node of c.nodes) {
        assert.equal(await restWith(node, app, rotated), 200, `${node.name}: new secret`);
        assert.equal(await restWith(node, app, app.secret), 401, `${node.name}: old secret`);
      }
    }, PROPAGATION_MS);
    await accepts(t, app, rotated);
    await refuses(t, app, app.secret);

    // Zero-downtime rotation: the previous secret stays accepted until it expires.
    const next = newSecret();
    const expires = Math.floor(Date.now() / 1000) + 120;
    await apps('update', '--id', app.id, '--secret', next, '--previous-secret', rotated, '--previous-secret-expires-at', String(expires));
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await restWith(node, app, next), 200, `${node.name}: newest secret`);
    }, PROPAGATION_MS);
    await accepts(t, app, next);
    await accepts(t, app, rotated);
    await refuses(t, app, app.secret);
    // pusher-js with the SDK signing with the new secret works on both nodes.
    await usableOnBoth(t, { ...app, secret: next });

    await apps('update', '--id', app.id, '--clear-previous-secret');
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await restWith(node, app, rotated), 401, `${node.name}: grace ended`);
    }, PROPAGATION_MS);
  });

  test('disable closes the app sockets on both nodes with 4003; enable accepts it again; a raw SQL change propagates', async (t) => {
    const app = await addApp();
    const sockets = await Promise.all(c.nodes.map((node) => connectRaw(t, node, app)));
    await apps('disable', '--id', app.id);
    const closed = await Promise.all(sockets.map((raw) => raw.waitClose(PROPAGATION_MS)));
    closed.forEach((info, i) => assert.equal(info.code, 4003, `${c.nodes[i].name}: close code`));
    for (const node of c.nodes) {
      assert.equal(await refusedWith(t, node, app.key), 4003, `${node.name}: new socket of a disabled app`);
      assert.equal(await restWith(node, app, app.secret), 403, `${node.name}: REST of a disabled app`);
    }
    await apps('enable', '--id', app.id);
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await restWith(node, app, app.secret), 200, `${node.name}: enabled`);
    }, PROPAGATION_MS);
    await usableOnBoth(t, app);

    // Hand-written SQL goes through the same trigger.
    const bySql = newSecret();
    await pg.sql(`UPDATE ferrocast_apps SET secret = '${bySql}' WHERE id = '${app.id}'`);
    await eventually(async () => {
      for (const node of c.nodes) {
        assert.equal(await restWith(node, app, bySql), 200, `${node.name}: secret set by SQL`);
        assert.equal(await restWith(node, app, app.secret), 401, `${node.name}: secret before the SQL`);
      }
    }, PROPAGATION_MS);
    const sockets2 = await Promise.all(c.nodes.map((node) => connectRaw(t, node, app)));
    await pg.sql(`UPDATE ferrocast_apps SET enabled = false WHERE id = '${app.id}'`);
    const closed2 = await Promise.all(sockets2.map((raw) => raw.waitClose(PROPAGATION_MS)));
    closed2.forEach((info, i) => assert.equal(info.code, 4003, `${c.nodes[i].name}: close code after SQL`));
  });

  test('remove closes the app sockets on both nodes with 4001 and refuses it', async (t) => {
    const app = await addApp();
    const sockets = await Promise.all(c.nodes.map((node) => connectRaw(t, node, app)));
    await apps('remove', '--id', app.id);
    const closed = await Promise.all(sockets.map((raw) => raw.waitClose(PROPAGATION_MS)));
    closed.forEach((info, i) => assert.equal(info.code, 4001, `${c.nodes[i].name}: close code`));
    for (const node of c.nodes) {
      assert.equal(await refusedWith(t, node, app.key), 4001, `${node.name}: new socket of a removed app`);
      assert.equal(await restWith(node, app, app.secret), 404, `${node.name}: REST of a removed app`);
    }
    const missing = await cli(['apps', 'remove', '--id', app.id], { env: { FERROCAST_REGISTRY__URL: pg.url } });
    assert.equal(missing.code, 1, missing.text);
  });

  test('invalid values are refused by the CLI (exit 2) and unknown keys are looked up once, then refused', async (t) => {
    const bad = await cli(['apps', 'add', '--set', 'max_event_payload_kb=0'], { env: { FERROCAST_REGISTRY__URL: pg.url } });
    assert.equal(bad.code, 2, bad.text);
    assert.match(bad.stderr, /max_event_payload_kb/);
    const before = await metric(c.client, 'ferrocast_registry_lookups_total', { result: 'not_found' });
    assert.equal(await refusedWith(t, c.client, `nokey-${uid()}`), 4001);
    assert.ok((await metric(c.client, 'ferrocast_registry_lookups_total', { result: 'not_found' })) > before);
  });

  test('with PostgreSQL down the cached apps keep working on both nodes; back up, a new app is usable', async (t) => {
    const app = await addApp();
    await usableOnBoth(t, app);
    const errorsBefore = await Promise.all(c.nodes.map((n) => metric(n, 'ferrocast_registry_errors_total')));

    await pg.stop();
    // The outage shows: registry down, errors counted (the LISTEN connection breaks at once).
    await eventually(async () => {
      for (const [i, node] of c.nodes.entries()) {
        assert.equal(await metric(node, 'ferrocast_registry_up'), 0, `${node.name}: registry_up`);
        assert.ok((await metric(node, 'ferrocast_registry_errors_total')) > errorsBefore[i], `${node.name}: errors`);
      }
    }, 10_000);
    for (const node of c.nodes) {
      assert.equal(await node.probe('/readyz'), 200, `${node.name}: ready while the cache is warm`);
      assert.equal(await restWith(node, app, app.secret), 200, `${node.name}: REST of a cached app`);
    }
    await usableOnBoth(t, app);
    // An unknown key is refused with 4001 after its lookup fails.
    const failedBefore = await metric(c.client, 'ferrocast_registry_lookups_total', { result: 'error' });
    assert.equal(await refusedWith(t, c.client, `nokey-${uid()}`), 4001);
    assert.ok((await metric(c.client, 'ferrocast_registry_lookups_total', { result: 'error' })) > failedBefore);
    assert.match(output(), /registry: PostgreSQL unavailable; serving the apps already loaded/);

    await pg.start();
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await metric(node, 'ferrocast_registry_up'), 1, `${node.name}: registry back`);
    }, 20_000);
    // The LISTEN connections reconnected: a change to an app the nodes already know (no lookup
    // on a miss, and the periodic reload is 30 s away) reaches both through a notification.
    const notified = await Promise.all(c.nodes.map((n) => metric(n, 'ferrocast_registry_notifications_total')));
    const rotated = newSecret();
    await apps('update', '--id', app.id, '--secret', rotated);
    await eventually(async () => {
      for (const [i, node] of c.nodes.entries()) {
        assert.equal(await restWith(node, app, rotated), 200, `${node.name}: rotated after the outage`);
        assert.ok((await metric(node, 'ferrocast_registry_notifications_total')) > notified[i], `${node.name}: notified`);
      }
    }, 15_000);
    const later = await addApp();
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await restWith(node, later, later.secret), 200, `${node.name}: new app`);
    }, 5000);
    await usableOnBoth(t, later);
  });

  test('a node started while PostgreSQL is down is not ready until it has read its apps', async (t) => {
    const app = await addApp();
    await pg.stop();
    const late = await makeNode(2, {
      apps: [],
      backplane: c.backplane,
      registry: { driver: 'postgres' },
      env: { FERROCAST_REGISTRY__URL: pg.url },
    });
    t.after(async () => {
      if (state.failed) console.log(late.logs());
      await late.stop();
    });
    await late.start({ ready: false });
    await sleep(1500);
    assert.equal(await late.probe('/readyz'), 503, 'ready without its apps');
    assert.equal(await metric(late, 'ferrocast_registry_loaded'), 0);
    assert.equal(await metric(late, 'ferrocast_registry_up'), 0);
    await pg.start();
    await late.waitReady(20_000);
    assert.equal(await restWith(late, app, app.secret), 200, 'the app is served once loaded');
    // The cluster's nodes came back too.
    await eventually(async () => {
      for (const node of c.nodes) assert.equal(await metric(node, 'ferrocast_registry_up'), 1, `${node.name}: registry back`);
    }, 20_000);
    const out = late.stdout + late.stderr;
    assert.ok(!out.includes(pg.password), 'the database password appears in the late node log');
    assert.match(out, /registry: PostgreSQL (still )?unavailable/);
  });

  test('no node printed the database password or an app secret', () => {
    const out = output();
    assert.ok(!out.includes(pg.password), 'the database password appears in a node log');
    for (const secret of secrets) assert.ok(!out.includes(secret), 'an app secret appears in a node log');
  });
});
