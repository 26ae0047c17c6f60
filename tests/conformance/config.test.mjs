// Configuration file validation and environment overrides.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectRaw } from './lib/raw.mjs';
import { ServerNode, freePort, makeApp, spawnFerrocast, startServer, useConfigDir, waitForExit } from './lib/server.mjs';

const configs = useConfigDir('config');
const writeConfig = (name, text) => configs.write(name, text);

async function baseServerLines() {
  return [`host = "127.0.0.1"`, `port = ${await freePort()}`, `metrics_port = ${await freePort()}`];
}

const appBlock = (app) => `[[apps]]\nid = "${app.id}"\nkey = "${app.key}"\nsecret = "${app.secret}"\n`;

async function expectExit2(file, mention) {
  const proc = spawnFerrocast(['--config', file]);
  const state = await waitForExit(proc, 10_000);
  const output = `--- stderr ---\n${state.stderr}\n--- stdout ---\n${state.stdout}`;
  assert.equal(state.exitCode, 2, `expected exit code 2, got ${state.exitCode} (signal ${state.signal})\n${output}`);
  assert.ok(state.stderr.includes(mention), `stderr should mention "${mention}"\n${output}`);
}

describe('invalid configuration exits with code 2', () => {
  test('unknown key in [server] → exit 2, stderr names it', async () => {
    const lines = await baseServerLines();
    const file = await writeConfig('unknown-key.toml', `[server]\n${lines.join('\n')}\nbogus = 1\n\n${appBlock(makeApp())}`);
    await expectExit2(file, 'bogus');
  });

  test('unknown key in [[apps]] → exit 2, stderr names it', async () => {
    const lines = await baseServerLines();
    const file = await writeConfig(
      'unknown-app-key.toml',
      `[server]\n${lines.join('\n')}\n\n${appBlock(makeApp())}bogus_app_setting = true\n`,
    );
    await expectExit2(file, 'bogus_app_setting');
  });

  test('bad value (port = "abc") → exit 2, stderr names the key', async () => {
    const file = await writeConfig(
      'bad-value.toml',
      `[server]\nhost = "127.0.0.1"\nport = "abc"\nmetrics_port = ${await freePort()}\n\n${appBlock(makeApp())}`,
    );
    await expectExit2(file, 'port');
  });

  for (const [name, secret] of [
    ['empty', '""'],
    ['blank', '"  \\t "'],
  ]) {
    test(`${name} secret → exit 2, stderr names apps[0].secret`, async () => {
      const lines = await baseServerLines();
      const app = makeApp();
      const file = await writeConfig(
        `${name}-secret.toml`,
        `[server]\n${lines.join('\n')}\n\n[[apps]]\nid = "${app.id}"\nkey = "${app.key}"\nsecret = ${secret}\n`,
      );
      await expectExit2(file, 'apps[0].secret');
    });
  }

  test('secret equal to the key → exit 2, stderr names apps[0].secret', async () => {
    const lines = await baseServerLines();
    const app = makeApp();
    const file = await writeConfig('secret-is-key.toml', `[server]\n${lines.join('\n')}\n\n${appBlock({ ...app, secret: app.key })}`);
    await expectExit2(file, 'apps[0].secret');
  });
});

describe('risky credentials start with a warning', () => {
  test('demo credentials in a file and a secret shared by two apps are logged at WARN', async (t) => {
    const shared = makeApp();
    const node = await startServer({
      apps: [{ id: 'app-id', key: 'app-key', secret: 'app-secret' }, shared, { ...makeApp(), secret: shared.secret }],
    });
    t.after(() => node.stop());
    const output = (node.stdout + node.stderr).replace(/\u001b\[[0-9;]*m/g, '');
    assert.match(output, /WARN.*apps\[0\].*demo credentials/);
    assert.match(output, /WARN.*apps\[2\]\.secret: the same secret as apps\[1\]/);
    assert.ok(!output.includes(shared.secret), 'the secret itself is never logged');
  });
});

describe('environment overrides', () => {
  test('FERROCAST_SERVER__PORT overrides [server].port', async (t) => {
    const app = makeApp();
    const filePort = await freePort();
    const envPort = await freePort();
    const metricsPort = await freePort();
    const config = {
      server: { host: '127.0.0.1', port: filePort, metrics_port: metricsPort, shutdown_grace_s: 1 },
      backplane: { driver: 'memory' },
      apps: [app],
    };
    // the node object describes where we expect the server: on the env port
    const node = new ServerNode({
      name: 'env-override',
      config,
      host: '127.0.0.1',
      port: envPort,
      metricsPort,
      apps: [app],
      env: { FERROCAST_SERVER__PORT: String(envPort) },
    });
    t.after(() => node.stop());
    try {
      await node.start();
      const c = await connectRaw(t, node, app);
      await c.ping();
      await assert.rejects(
        fetch(`http://127.0.0.1:${filePort}/readyz`, { signal: AbortSignal.timeout(2000) }),
        'the port from the file must not be used when the env override is set',
      );
    } catch (err) {
      console.error(`env override test failed; FERROCAST_SERVER__PORT=${envPort}, file port ${filePort}\n${node.logs()}`);
      throw err;
    }
  });
});
