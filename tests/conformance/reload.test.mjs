// The `file` app source reloads without a restart (docs/configuration.md, "Reloading apps"):
// the `[[apps]]` of the config file are applied on SIGHUP and when the file changes (an edit in
// place, or a Kubernetes ConfigMap/Secret update that swaps the `..data` symlink). A file that
// does not load or validate is refused with one log line naming the key, counted in
// `ferrocast_config_reloads_total{result="refused"}`, and the running apps stay as they were.
//
// Topology-independent: with FERROCAST_CONFORMANCE_NODES=2 every node's file is rewritten (each
// node has its own [server] section, the same apps), sockets are on node A and REST on node B.

import assert from 'node:assert/strict';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';

import { connectPusher, sdkResult, serverSdk } from './lib/clients.mjs';
import { channelAuth, connectRaw, isPusherError } from './lib/raw.mjs';
import { signedFetch } from './lib/rest.mjs';
import { makeApp, makeNode, renderConfig, startSuite, trackFailures } from './lib/server.mjs';
import { eventually, parseMetrics, sleep, uid, waitFor } from './lib/util.mjs';
import { useWebhookReceiver } from './lib/webhooks.mjs';

const recv = useWebhookReceiver();
const state = trackFailures();

/** Every cluster a test started, stopped (and its logs kept on failure) when the test ends. */
async function cluster(t, apps) {
  const c = await startSuite({ apps });
  t.after(async () => {
    if (state.failed) console.log(c.logs());
    await c.stop();
  });
  return c;
}

async function reloadCount(node, result) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const sample = parseMetrics(await res.text()).find(
    (s) => s.name === 'ferrocast_config_reloads_total' && s.labels.result === result,
  );
  assert.ok(sample, `ferrocast_config_reloads_total{result="${result}"} missing on ${node.name}`);
  return sample.value;
}

async function counts(nodes, result) {
  return Promise.all(nodes.map((n) => reloadCount(n, result)));
}

/** Resolves once every node counted one more reload with `result` than in `before`. */
async function reloaded(nodes, before, result = 'ok', timeout = 5000) {
  await eventually(async () => {
    const now = await counts(nodes, result);
    now.forEach((n, i) => assert.ok(n > before[i], `${nodes[i].name}: ${result} reloads ${n}, was ${before[i]}`));
  }, timeout);
}

/** Write `text` as `node`'s config file, atomically (a new file renamed over the old one). */
async function replaceFile(node, text) {
  const tmp = `${node.configPath}.tmp-${uid()}`;
  await writeFile(tmp, text);
  await rename(tmp, node.configPath);
}

/** Rewrite every node's config with `apps`; SIGHUP them unless `signal` is false. */
async function rewrite(c, apps, { signal = true, inPlace = false } = {}) {
  for (const node of c.nodes) {
    node.config.apps = apps;
    const text = renderConfig(node.config);
    if (inPlace) await writeFile(node.configPath, text);
    else await replaceFile(node, text);
    if (signal) node.proc.child.kill('SIGHUP');
  }
}

/** Rewrite every node's config with `text` (broken files), and SIGHUP. */
async function rewriteRaw(c, textOf) {
  for (const node of c.nodes) {
    await replaceFile(node, textOf(node));
    node.proc.child.kill('SIGHUP');
  }
}

const output = (c) => c.nodes.map((n) => n.stdout + n.stderr).join('\n');

function assertNoSecrets(c, secrets) {
  const out = output(c);
  for (const secret of secrets) assert.ok(!out.includes(secret), `a secret appears in the node output`);
}

async function trigger(node, app, channel, opts = {}) {
  return sdkResult(() => serverSdk(node, app, opts).trigger(channel, 'reloaded', { ok: true }));
}

/** A pusher-js client on the new app receives an event triggered with the official SDK. */
async function roundTrip(t, c, app) {
  const client = await connectPusher(t, c.client, app);
  const channel = `ch-${uid()}`;
  await client.subscribe(channel);
  const res = await trigger(c.rest, app, channel);
  assert.equal(res.status, 200, `trigger → ${res.status} ${res.body}`);
  await client.waitEvent(channel, 'reloaded');
  client.disconnect();
}

describe('apps reload without a restart', () => {
  test('an app added to the file is usable after SIGHUP', async (t) => {
    const first = makeApp();
    const c = await cluster(t, [first]);
    const added = makeApp();
    const unknown = await connectRaw(t, c.client, added, { establish: false });
    assert.equal((await unknown.waitClose()).code, 4001);
    const before = await counts(c.nodes, 'ok');
    await rewrite(c, [first, added]);
    await reloaded(c.nodes, before);
    await roundTrip(t, c, added);
    await roundTrip(t, c, first);
    await waitFor(() => c.nodes.every((n) => /configuration reloaded.*SIGHUP|SIGHUP.*configuration reloaded/.test(n.stdout + n.stderr)));
    assert.match(output(c), new RegExp(`app reloaded.*${added.id}|${added.id}.*app reloaded`));
    assertNoSecrets(c, [first.secret, added.secret]);
  });

  test('an edit without SIGHUP is picked up by the file watcher', async (t) => {
    const first = makeApp();
    const c = await cluster(t, [first]);
    const added = makeApp();
    const before = await counts(c.nodes, 'ok');
    const at = Date.now();
    await rewrite(c, [first, added], { signal: false, inPlace: true });
    await reloaded(c.nodes, before, 'ok', 4000);
    assert.ok(Date.now() - at < 3000, `picked up after ${Date.now() - at} ms`);
    await roundTrip(t, c, added);
    assertNoSecrets(c, [first.secret, added.secret]);
  });

  test('a Kubernetes-style ..data symlink swap is picked up', async (t) => {
    const first = makeApp();
    const node = await makeNode(0, { apps: [first] });
    let version = 0;
    const publish = async (n, text) => {
      version += 1;
      const dir = path.join(n.dir, 'mount');
      const stamped = `..2026_12_06_00_00_0${version}.${uid()}`;
      await mkdir(path.join(dir, stamped), { recursive: true });
      await writeFile(path.join(dir, stamped, 'ferrocast.toml'), text);
      // What the kubelet does: a new ..data link renamed over the old one.
      await symlink(stamped, path.join(dir, '..data_tmp'));
      await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
      const link = path.join(dir, 'ferrocast.toml');
      if (version === 1) await symlink('..data/ferrocast.toml', link);
      return link;
    };
    node.writeConfig = publish;
    await node.start();
    t.after(async () => {
      if (state.failed) console.log(node.logs());
      await node.stop();
    });
    const c = { nodes: [node], client: node, rest: node };
    const added = makeApp();
    const before = await counts(c.nodes, 'ok');
    node.config.apps = [first, added];
    await publish(node, renderConfig(node.config));
    await reloaded(c.nodes, before, 'ok', 4000);
    await roundTrip(t, c, added);
    await roundTrip(t, c, first);
    assertNoSecrets(c, [first.secret, added.secret]);
  });

  test('a disabled app is closed with 4003 and refused; a removed app is closed with 4001', async (t) => {
    const keep = makeApp();
    const off = makeApp();
    const gone = makeApp();
    const c = await cluster(t, [keep, off, gone]);
    const offSocket = await connectRaw(t, c.client, off);
    const goneSocket = await connectRaw(t, c.client, gone);
    const keepSocket = await connectRaw(t, c.client, keep);
    assert.equal((await trigger(c.rest, off, 'x')).status, 200);
    const before = await counts(c.nodes, 'ok');
    await rewrite(c, [keep, { ...off, enabled: false }]);
    await reloaded(c.nodes, before);

    const offClosed = await offSocket.waitClose();
    assert.equal(offClosed.code, 4003);
    assert.ok(offSocket.find(isPusherError(4003)), 'pusher:error 4003 before the close');
    assert.equal((await goneSocket.waitClose()).code, 4001);
    assert.ok(goneSocket.find(isPusherError(4001)), 'pusher:error 4001 before the close');
    assert.ok(keepSocket.isOpen, 'the unchanged app keeps its socket');

    const offRest = await trigger(c.rest, off, 'x');
    assert.equal(offRest.status, 403, `disabled app REST → ${offRest.status} ${offRest.body}`);
    const goneRest = await trigger(c.rest, gone, 'x');
    assert.equal(goneRest.status, 404, `removed app REST → ${goneRest.status} ${goneRest.body}`);
    const again = await connectRaw(t, c.client, off, { establish: false });
    assert.equal((await again.waitClose()).code, 4003);
    const goneAgain = await connectRaw(t, c.client, gone, { establish: false });
    assert.equal((await goneAgain.waitClose()).code, 4001);
    assert.equal((await trigger(c.rest, keep, 'x')).status, 200);

    // Enabled again: usable at once.
    const before2 = await counts(c.nodes, 'ok');
    await rewrite(c, [keep, off]);
    await reloaded(c.nodes, before2);
    await roundTrip(t, c, off);
    assertNoSecrets(c, [keep.secret, off.secret, gone.secret]);
  });

  test('a rotated secret: the previous one is accepted until it expires, then only the new one', async (t) => {
    const app = makeApp();
    const c = await cluster(t, [app]);
    const oldSecret = app.secret;
    const newSecret = `rotated-${uid()}-${Math.random().toString(36).slice(2)}`;
    const graceS = 4;
    const expiresAt = Math.floor(Date.now() / 1000) + graceS;
    const rotated = { ...app, secret: newSecret, previous_secret: oldSecret, previous_secret_expires_at: expiresAt };
    const before = await counts(c.nodes, 'ok');
    await rewrite(c, [rotated]);
    await reloaded(c.nodes, before);
    assert.match(output(c), /app reloaded.*(secret|previous_secret)/);

    const privateWith = async (secret) => {
      const raw = await connectRaw(t, c.client, app);
      const channel = `private-${uid()}`;
      const frame = await raw.subscribe(channel, { auth: channelAuth(app, raw.socketId, channel, undefined, secret) });
      await raw.close();
      return frame.event;
    };
    const restWith = async (secret) =>
      (await signedFetch(c.rest, { ...app, secret }, { path: '/events', body: { name: 'e', channel: 'c', data: '{}' } })).status;

    // While the previous secret is valid: both signatures work (REST, channel auth, SDK).
    assert.equal(await restWith(newSecret), 200);
    assert.equal(await restWith(oldSecret), 200);
    assert.equal(await privateWith(newSecret), 'pusher_internal:subscription_succeeded');
    assert.equal(await privateWith(oldSecret), 'pusher_internal:subscription_succeeded');
    assert.equal((await trigger(c.rest, app, 'c', { secret: oldSecret })).status, 200);

    // After the expiry: only the new secret.
    await sleep(Math.max(0, expiresAt * 1000 - Date.now()) + 1100);
    assert.equal(await restWith(newSecret), 200);
    assert.equal(await restWith(oldSecret), 401);
    assert.equal(await privateWith(newSecret), 'pusher_internal:subscription_succeeded');
    assert.equal(await privateWith(oldSecret), 'pusher:subscription_error');
    assertNoSecrets(c, [oldSecret, newSecret]);
  });

  test('a broken file is refused with a log line naming the key; the running apps keep working', async (t) => {
    const app = makeApp();
    const c = await cluster(t, [app]);
    const leaked = `never-logged-${uid()}`;
    const cases = [
      // A TOML syntax error on the secret's own line: the parser's message quotes that line.
      { text: (n) => `${renderConfig(n.config)}\n[[apps]]\nid = "x"\nkey = "kx"\nsecret = "${leaked}\n`, log: /line \d+/ },
      // Validation errors name the key.
      {
        text: (n) => renderConfig({ ...n.config, apps: [app, { id: 'y', key: 'ky', secret: leaked, max_event_batch_size: 0 }] }),
        log: /apps\[1\]\.max_event_batch_size/,
      },
      {
        text: (n) =>
          renderConfig({ ...n.config, apps: [{ ...app, previous_secret: app.secret, previous_secret_expires_at: 1 }] }),
        log: /apps\[0\]\.previous_secret/,
      },
    ];
    for (const { text, log } of cases) {
      const before = await counts(c.nodes, 'refused');
      const okBefore = await counts(c.nodes, 'ok');
      await rewriteRaw(c, text);
      await reloaded(c.nodes, before, 'refused');
      await waitFor(() => c.nodes.every((n) => new RegExp(`configuration reload refused.*${log.source}`).test(n.stdout + n.stderr)), 3000, {
        message: `refusal log matching ${log}`,
      });
      assert.deepEqual(await counts(c.nodes, 'ok'), okBefore, 'nothing applied');
      await roundTrip(t, c, app);
    }
    // The file fixed again: applied.
    const before = await counts(c.nodes, 'ok');
    await rewrite(c, [app]);
    await reloaded(c.nodes, before);
    await roundTrip(t, c, app);
    const gauge = await fetch(`${c.client.metricsUrl}/metrics`).then((r) => r.text());
    const last = parseMetrics(gauge).find((s) => s.name === 'ferrocast_config_last_reload_success_timestamp_seconds');
    assert.ok(last && Math.abs(last.value - Date.now() / 1000) < 30, `last success gauge ${last?.value}`);
    assertNoSecrets(c, [app.secret, leaked]);
  });

  test('changed webhooks and a new secret apply to the next event', async (t) => {
    const app = makeApp();
    app.webhooks = [{ url: recv.url(`/before-${app.id}`), events: ['channel_occupied'] }];
    recv.addApp(app);
    const c = await cluster(t, [app]);
    const first = `first-${uid()}`;
    const a = await connectRaw(t, c.client, app);
    await a.subscribeOk(first);
    const before = await recv.waitEvent('channel_occupied', { path: `/before-${app.id}`, channel: first });
    assert.equal(before.request.valid, true, before.request.validationError);

    const rotated = { ...app, secret: `rotated-${uid()}`, webhooks: [{ url: recv.url(`/after-${app.id}`) }] };
    recv.addApp(rotated); // requests with this key are now checked against the new secret
    const okBefore = await counts(c.nodes, 'ok');
    await rewrite(c, [rotated]);
    await reloaded(c.nodes, okBefore);
    assert.match(output(c), /app reloaded.*(webhooks|secret)/);

    const second = `second-${uid()}`;
    await a.subscribeOk(second);
    const after = await recv.waitEvent('channel_occupied', { path: `/after-${app.id}`, channel: second });
    assert.equal(after.request.valid, true, `signed with the new secret: ${after.request.validationError}`);
    await sleep(300);
    assert.equal(recv.events({ path: `/before-${app.id}`, channel: second }).length, 0, 'the old URL gets no new event');
    assertNoSecrets(c, [app.secret, rotated.secret]);
  });
});
