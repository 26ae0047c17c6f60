// The `ferrocast` command line: subcommands, --version and the build_info metric, check-config,
// keygen, the HTTP API commands (built on the Rust SDK) against a running node, and logging
// (format, ANSI, filter errors). API calls go to `srv.rest` and clients sit on `srv.client`
// (two nodes on Redis under `npm run test:cluster`).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';

import { MASTER_KEY_BASE64, connectPusher, sdkGetJSON, serverSdk } from './lib/clients.mjs';
import { makePki } from './lib/pki.mjs';
import { connectRaw, presenceSubscribeData } from './lib/raw.mjs';
import { REPO_ROOT, binaryPath, freePort, makeApp, spawnFerrocast, useConfigDir, useServer, waitForExit } from './lib/server.mjs';
import { rawSignedIn } from './lib/users.mjs';
import { parseMetrics, sleep, uid, waitFor } from './lib/util.mjs';

const ESC = '\u001b[';

const configs = useConfigDir('cli');
const writeConfig = (name, text) => configs.write(name, text);

/**
 * Runs the binary to completion with only `env`'s FERROCAST_* variables (see spawnFerrocast),
 * feeding `input` on stdin. Resolves with {code, stdout, stderr}.
 */
function cli(args, { env = {}, input = '', timeoutMs = 15_000 } = {}) {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERROCAST_')));
  return new Promise((resolve, reject) => {
    const child = spawn(binaryPath(), args, { cwd: REPO_ROOT, env: { ...inherited, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferrocast ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}\n${stdout}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, text: `exit ${code}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}` });
    });
    // A command that exits without reading stdin closes the pipe: not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** The expected commit label: what `git rev-parse` says now, `unknown` without git. */
function expectedCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function cargoVersion() {
  const manifest = readFileSync(path.join(REPO_ROOT, 'Cargo.toml'), 'utf8');
  const match = manifest.match(/\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/);
  assert.ok(match, 'workspace version in Cargo.toml');
  return match[1];
}

async function serverLines() {
  return `[server]\nhost = "127.0.0.1"\nport = ${await freePort()}\nmetrics_port = ${await freePort()}\nshutdown_grace_s = 1\n`;
}

const appBlock = (app) => `[[apps]]\nid = "${app.id}"\nkey = "${app.key}"\nsecret = "${app.secret}"\n`;

/** Starts `ferrocast args...`, waits until /readyz answers 200 on `port`, then SIGTERMs it. */
async function startsAndStops(args, port, env = {}) {
  const proc = spawnFerrocast(args, { env });
  try {
    await waitFor(
      async () => {
        if (proc.state.exitCode !== undefined) throw new Error(`exited early: ${proc.state.stderr}${proc.state.stdout}`);
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        return res?.status === 200;
      },
      10_000,
      { message: `ferrocast ${args.join(' ')} ready on ${port}` },
    );
  } finally {
    proc.child.kill('SIGTERM');
  }
  const state = await waitForExit(proc, 10_000);
  assert.equal(state.exitCode, 0, `clean exit after SIGTERM\n${state.stderr}${state.stdout}`);
  return state;
}

describe('version, help and usage', () => {
  test('--version and -V print the Cargo version and the git commit the binary was built from', async () => {
    const expected = `ferrocast ${cargoVersion()} (commit ${expectedCommit()})`;
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag]);
      assert.equal(r.code, 0, r.text);
      assert.equal(r.stdout.trim(), expected, `${flag}: a binary older than HEAD? rebuild it\n${r.text}`);
    }
  });

  test('--help lists every subcommand, the node options and the environment variables read', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0, r.text);
    for (const word of [
      'serve', 'check-config', 'keygen', 'trigger', 'channels', 'users', 'terminate',
      '--config', '--log-format', '--version',
      'FERROCAST_<SECTION>__<KEY>', 'FERROCAST_LOG', 'FERROCAST_LOG__FORMAT', 'SSL_CERT_FILE',
      'FERROCAST_URL', 'FERROCAST_APP_ID', 'FERROCAST_APP_KEY', 'FERROCAST_APP_SECRET', 'FERROCAST_ENCRYPTION_MASTER_KEY',
    ]) {
      assert.ok(r.stdout.includes(word), `--help mentions ${word}\n${r.stdout}`);
    }
    const trigger = await cli(['trigger', '--help']);
    assert.equal(trigger.code, 0, trigger.text);
    for (const word of ['--url', '--app-id', '--key', '--secret', '--channel', '--event', '--data', '--encrypted', '--socket-id', '--info']) {
      assert.ok(trigger.stdout.includes(word), `trigger --help mentions ${word}\n${trigger.stdout}`);
    }
  });

  test('unknown subcommands and options, and missing arguments, exit 2 with usage', async () => {
    for (const args of [['bogus'], ['--bogus'], ['serve', '--bogus'], ['check-config'], ['trigger', '--channel', 'x'], ['--config']]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.text}`);
      assert.match(r.stderr, /Usage|--help/, r.text);
    }
  });

  test('a node starts with --config FILE, --config=FILE and serve --config FILE', async () => {
    const lines = await serverLines();
    const port = Number(lines.match(/\nport = (\d+)/)[1]);
    const file = await writeConfig('start.toml', lines + appBlock(makeApp()));
    for (const args of [['--config', file], [`--config=${file}`], ['serve', '--config', file], ['serve', `--config=${file}`]]) {
      await startsAndStops(args, port);
    }
  });
});

describe('check-config', () => {
  test('a valid file: exit 0, a summary, no port bound (its port is busy) and no connection made', async () => {
    const busy = net.createServer();
    await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const taken = busy.address().port;
    try {
      // The Redis URL points at nothing: check-config must not connect to it.
      const file = await writeConfig(
        'valid.toml',
        `[server]\nhost = "127.0.0.1"\nport = ${taken}\nmetrics_port = ${await freePort()}\n` +
          `[backplane]\ndriver = "redis"\nurl = "redis://127.0.0.1:1"\n` +
          appBlock(makeApp()),
      );
      const r = await cli(['check-config', file]);
      assert.equal(r.code, 0, r.text);
      assert.match(r.stdout, /valid: 1 app\(s\), backplane redis/, r.text);
    } finally {
      busy.close();
    }
  });

  const invalid = [
    ['a rule broken', async () => `[server]\nport = 7000\nmetrics_port = 7000\n${appBlock(makeApp())}`, {}, 'server.metrics_port'],
    ['an unknown key', async () => `[server]\nprot = 7000\n${appBlock(makeApp())}`, {}, 'prot'],
    ['an app without a secret', async () => `${await serverLines()}[[apps]]\nid = "a"\nkey = "k"\n`, {}, 'secret'],
    ['a bad environment override', async () => `${await serverLines()}${appBlock(makeApp())}`, { FERROCAST_SERVER__ACTIVITY_TIMEOUT_S: '0' }, 'server.activity_timeout_s'],
    ['a TLS certificate that does not exist', async () => `${await serverLines()}tls_cert = "/nonexistent/cert.pem"\ntls_key = "/nonexistent/key.pem"\n${appBlock(makeApp())}`, {}, '/nonexistent/cert.pem'],
    ['a Redis CA file that does not exist', async () => `${await serverLines()}[backplane]\ndriver = "redis"\nurl = "rediss://127.0.0.1:1"\ntls_ca_file = "/nonexistent/ca.pem"\n${appBlock(makeApp())}`, {}, 'backplane.tls_ca_file'],
    ['an invalid [log] filter', async () => `${await serverLines()}[log]\nfilter = "verbose"\n${appBlock(makeApp())}`, {}, 'log.filter'],
    ['an invalid FERROCAST_LOG', async () => `${await serverLines()}${appBlock(makeApp())}`, { FERROCAST_LOG: 'ferrocast=loud' }, 'FERROCAST_LOG'],
    ['an unknown log format', async () => `${await serverLines()}[log]\nformat = "xml"\n${appBlock(makeApp())}`, {}, 'xml'],
  ];
  for (const [what, text, env, mention] of invalid) {
    test(`${what}: exit 2 naming ${mention}`, async () => {
      const file = await writeConfig(`${uid('bad-')}.toml`, await text());
      const r = await cli(['check-config', file], { env });
      assert.equal(r.code, 2, r.text);
      assert.ok(r.stderr.includes(mention), `stderr names ${mention}\n${r.text}`);
      assert.ok(r.stderr.includes(file), `stderr names the file\n${r.text}`);
      assert.equal(r.stdout, '', r.text);
    });
  }

  test('a file that does not exist: exit 2', async () => {
    const r = await cli(['check-config', path.join(configs.dir, 'missing.toml')]);
    assert.equal(r.code, 2, r.text);
    assert.match(r.stderr, /no such file/, r.text);
  });

  test('the deployment configs of the repository are valid', async () => {
    for (const file of ['deploy/ferrocast.toml', 'deploy/local-cluster.toml']) {
      const r = await cli(['check-config', path.join(REPO_ROOT, file)]);
      assert.equal(r.code, 0, `${file}\n${r.text}`);
    }
  });
});

/** Parses keygen's `NAME=value` lines. */
function parseKeygen(stdout) {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 4, stdout);
  return Object.fromEntries(lines.map((line) => {
    const m = line.match(/^([A-Z_]+)=(.+)$/);
    assert.ok(m, `labelled line: ${line}`);
    return [m[1], m[2]];
  }));
}

describe('keygen', () => {
  test('prints a fresh id, key, secret and 32-byte base64 master key, labelled, one per line', async () => {
    const a = parseKeygen((await cli(['keygen'])).stdout);
    const b = parseKeygen((await cli(['keygen'])).stdout);
    assert.deepEqual(Object.keys(a), ['FERROCAST_APP_ID', 'FERROCAST_APP_KEY', 'FERROCAST_APP_SECRET', 'FERROCAST_ENCRYPTION_MASTER_KEY']);
    assert.match(a.FERROCAST_APP_ID, /^[1-9]\d{6}$/);
    assert.match(a.FERROCAST_APP_KEY, /^[0-9a-f]{20}$/);
    assert.match(a.FERROCAST_APP_SECRET, /^[0-9a-f]{40}$/);
    assert.equal(Buffer.from(a.FERROCAST_ENCRYPTION_MASTER_KEY, 'base64').length, 32);
    assert.equal(Buffer.from(a.FERROCAST_ENCRYPTION_MASTER_KEY, 'base64').toString('base64'), a.FERROCAST_ENCRYPTION_MASTER_KEY);
    for (const k of Object.keys(a)) assert.notEqual(a[k], b[k], `${k} differs between two runs`);
  });

  test('--toml is an [[apps]] block a node accepts, and the CLI triggers with its environment lines', async (t) => {
    const toml = await cli(['keygen', '--toml']);
    assert.equal(toml.code, 0, toml.text);
    assert.match(toml.stdout, /^\[\[apps\]\]\nid = "\d{7}"\nkey = "[0-9a-f]{20}"\nsecret = "[0-9a-f]{40}"\n/);
    const lines = await serverLines();
    const port = Number(lines.match(/\nport = (\d+)/)[1]);
    const file = await writeConfig('keygen.toml', `${lines}${toml.stdout}`);
    const check = await cli(['check-config', file]);
    assert.equal(check.code, 0, check.text);
    // A node on that block, and the CLI acting for it with the values of the block.
    const app = {
      id: toml.stdout.match(/id = "(\d+)"/)[1],
      key: toml.stdout.match(/key = "(\w+)"/)[1],
      secret: toml.stdout.match(/secret = "(\w+)"/)[1],
    };
    const proc = spawnFerrocast(['--config', file]);
    t.after(() => proc.child.kill('SIGKILL'));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, 10_000);
    const node = { host: '127.0.0.1', port };
    const client = await connectPusher(t, node, app);
    const channel = uid('keygen-');
    await client.subscribe(channel);
    const r = await cli(['trigger', '--channel', channel, '--event', 'hello', '--data', '{"from":"keygen"}'], {
      env: { FERROCAST_URL: `http://127.0.0.1:${port}`, FERROCAST_APP_ID: app.id, FERROCAST_APP_KEY: app.key, FERROCAST_APP_SECRET: app.secret },
    });
    assert.equal(r.code, 0, r.text);
    assert.deepEqual((await client.waitEvent(channel, 'hello')).data, { from: 'keygen' });
  });
});

describe('the HTTP API commands against a running node', () => {
  const app = makeApp({ enable_subscription_count: true });
  const srv = useServer({ apps: [app] });
  const api = () => ['--url', srv.rest.httpUrl, '--app-id', app.id, '--key', app.key, '--secret', app.secret];
  const apiEnv = () => ({ FERROCAST_URL: srv.rest.httpUrl, FERROCAST_APP_ID: app.id, FERROCAST_APP_KEY: app.key, FERROCAST_APP_SECRET: app.secret });

  test('trigger: the event reaches pusher-js on every named channel, with the JSON data as given', async (t) => {
    const c = await connectPusher(t, srv.client, app);
    const [one, two] = [uid('cli-a-'), uid('cli-b-')];
    await c.subscribe(one);
    await c.subscribe(two);
    const r = await cli(['trigger', ...api(), '-c', one, '-c', two, '--event', 'order-shipped', '--data', '{"id":42,"items":["a","b"]}']);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.stdout, '', 'nothing printed without --info');
    for (const ch of [one, two]) assert.deepEqual((await c.waitEvent(ch, 'order-shipped')).data, { id: 42, items: ['a', 'b'] });
  });

  test('trigger: credentials from the environment, data from stdin, --info printed as JSON', async (t) => {
    const c = await connectPusher(t, srv.client, app);
    const ch = uid('cli-env-');
    await c.subscribe(ch);
    const r = await cli(['trigger', '-c', ch, '-e', 'piped', '-d', '-', '--info', 'subscription_count'], { env: apiEnv(), input: '"just a string"' });
    assert.equal(r.code, 0, r.text);
    assert.deepEqual(JSON.parse(r.stdout), { channels: { [ch]: { subscription_count: 1 } } });
    const ev = await c.waitEvent(ch, 'piped');
    assert.equal(ev.data, 'just a string', 'a JSON string is sent as that string');
  });

  test('trigger --encrypted: pusher-js decrypts it; only nonce and ciphertext cross the broker', async (t) => {
    const c = await connectPusher(t, srv.client, app);
    const ch = uid('private-encrypted-cli-');
    await c.subscribe(ch);
    const r = await cli(['trigger', ...api(), '-c', ch, '-e', 'sealed', '-d', '{"note":"for your eyes only"}', '--encrypted'], {
      env: { FERROCAST_ENCRYPTION_MASTER_KEY: MASTER_KEY_BASE64 },
    });
    assert.equal(r.code, 0, r.text);
    assert.deepEqual((await c.waitEvent(ch, 'sealed')).data, { note: 'for your eyes only' });
    const wire = c.messagesFor(ch, 'sealed')[0];
    assert.deepEqual(Object.keys(wire.data).sort(), ['ciphertext', 'nonce']);
    assert.ok(!JSON.stringify(wire).includes('eyes only'), 'no plaintext on the wire');
  });

  test('trigger refuses before sending: bad JSON, encrypted channel without --encrypted, --encrypted without a key or on a public channel, a short key', async (t) => {
    const raw = await connectRaw(t, srv.client, app);
    const pub = uid('cli-refused-');
    const enc = uid('private-encrypted-cli-refused-');
    await raw.subscribeOk(pub);
    const cases = [
      [['-c', pub, '-e', 'x', '-d', '{not json'], {}, /--data is not JSON/],
      [['-c', enc, '-e', 'x', '-d', '{}'], { FERROCAST_ENCRYPTION_MASTER_KEY: MASTER_KEY_BASE64 }, /add --encrypted/],
      [['-c', enc, '-e', 'x', '-d', '{}', '--encrypted'], {}, /FERROCAST_ENCRYPTION_MASTER_KEY/],
      [['-c', pub, '-e', 'x', '-d', '{}', '--encrypted'], { FERROCAST_ENCRYPTION_MASTER_KEY: MASTER_KEY_BASE64 }, /only for private-encrypted-/],
      [['-c', enc, '-e', 'x', '-d', '{}', '--encrypted'], { FERROCAST_ENCRYPTION_MASTER_KEY: Buffer.alloc(16, 7).toString('base64') }, /master key/],
      [['-c', 'bad channel name', '-e', 'x', '-d', '{}'], {}, /invalid channel name/],
    ];
    for (const [args, env, message] of cases) {
      const r = await cli(['trigger', ...api(), ...args], { env });
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.text}`);
      assert.match(r.stderr, message, r.text);
      assert.ok(!r.stderr.includes(Buffer.alloc(16, 7).toString('base64')), 'the key is never echoed');
    }
    // Positive control: a good trigger arrives, and none of the refused ones did before it.
    const ok = await cli(['trigger', ...api(), '-c', pub, '-e', 'control', '-d', '{}']);
    assert.equal(ok.code, 0, ok.text);
    await raw.waitFor((f) => f.event === 'control' && f.channel === pub);
    assert.equal(raw.frames.filter((f) => f.channel === pub && f.event === 'x').length, 0);
  });

  test('a refused call exits 1 with the HTTP status: wrong secret (401), unknown app (404); an unreachable node exits 1', async () => {
    const wrong = await cli(['trigger', '--url', srv.rest.httpUrl, '--app-id', app.id, '--key', app.key, '--secret', 'not-the-secret', '-c', 'x', '-e', 'e', '-d', '{}']);
    assert.equal(wrong.code, 1, wrong.text);
    assert.match(wrong.stderr, /401/, wrong.text);
    const unknown = await cli(['channels', '--url', srv.rest.httpUrl, '--app-id', 'no-such-app', '--key', app.key, '--secret', app.secret]);
    assert.equal(unknown.code, 1, unknown.text);
    assert.match(unknown.stderr, /404/, unknown.text);
    const down = await cli(['channels', ...api().slice(2), '--url', `http://127.0.0.1:${await freePort()}`, '--timeout', '3']);
    assert.equal(down.code, 1, down.text);
    assert.match(down.stderr, /HTTP request failed|timed out/, down.text);
  });

  test('channels: the list, a prefix with user_count, and one channel with subscription_count', async (t) => {
    const tag = uid('cli-ch-');
    const pres = `presence-${tag}`;
    const pub = `${tag}-public`;
    const raws = [await connectRaw(t, srv.client, app), await connectRaw(t, srv.client, app)];
    for (const [i, raw] of raws.entries()) {
      await raw.subscribeOk(pres, presenceSubscribeData(app, raw.socketId, pres, { user_id: `u-${i}` }));
      await raw.subscribeOk(pub);
    }
    await waitFor(async () => {
      const r = await cli(['channels', ...api()]);
      return r.code === 0 && JSON.parse(r.stdout).channels[pub] !== undefined && JSON.parse(r.stdout).channels[pres] !== undefined;
    }, 5000, { message: 'both channels listed' });
    const prefixed = await cli(['channels', ...api(), '--prefix', `presence-${tag}`, '--info', 'user_count']);
    assert.equal(prefixed.code, 0, prefixed.text);
    assert.deepEqual(JSON.parse(prefixed.stdout), { channels: { [pres]: { user_count: 2 } } });
    const one = await cli(['channels', ...api(), '--channel', pub, '--info', 'subscription_count']);
    assert.equal(one.code, 0, one.text);
    assert.deepEqual(JSON.parse(one.stdout), { occupied: true, subscription_count: 2 });
    const bad = await cli(['channels', ...api(), '--info', 'user_count']);
    assert.equal(bad.code, 1, `user_count without a presence- prefix is refused by the API (400)\n${bad.text}`);
    assert.match(bad.stderr, /400/, bad.text);
  });

  test('users: the members of a presence channel', async (t) => {
    const pres = uid('presence-cli-users-');
    for (const id of ['ada', 'grace']) {
      const raw = await connectRaw(t, srv.client, app);
      await raw.subscribeOk(pres, presenceSubscribeData(app, raw.socketId, pres, { user_id: id }));
    }
    let listed;
    await waitFor(async () => {
      const r = await cli(['users', ...api(), '--channel', pres]);
      assert.equal(r.code, 0, r.text);
      listed = JSON.parse(r.stdout).users.map((u) => u.id).sort();
      return listed.length === 2;
    }, 5000, { message: 'two users' });
    assert.deepEqual(listed, ['ada', 'grace']);
    const sdkView = await sdkGetJSON(serverSdk(srv.rest, app), `/channels/${pres}/users`);
    assert.deepEqual(sdkView.users.map((u) => u.id).sort(), listed, 'the same as the official SDK sees');
  });

  test('terminate: every connection of the user closes with 4009; others stay', async (t) => {
    const id = uid('cli-bye-');
    const one = await rawSignedIn(t, srv.client, app, { id });
    const other = await rawSignedIn(t, srv.client, app, { id: uid('cli-stay-') });
    const r = await cli(['terminate', ...api(), '--user-id', id]);
    assert.equal(r.code, 0, r.text);
    assert.equal(r.stdout, '');
    const closed = await one.waitClose(5000);
    assert.equal(closed.code, 4009);
    await sleep(200);
    assert.equal(other.closeInfo, undefined, 'another user is untouched');
    await other.ping();
  });
});

describe('the HTTP API commands over https://', () => {
  test('a node with server.tls_cert: trusted through SSL_CERT_FILE, refused without it', async (t) => {
    const pki = await makePki();
    t.after(() => rm(pki.dir, { recursive: true, force: true }));
    const app = makeApp();
    const lines = await serverLines();
    const port = Number(lines.match(/\nport = (\d+)/)[1]);
    const file = await writeConfig(
      'tls.toml',
      `${lines}tls_cert = ${JSON.stringify(pki.server.cert)}\ntls_key = ${JSON.stringify(pki.server.key)}\n${appBlock(app)}`,
    );
    const proc = spawnFerrocast(['--config', file]);
    t.after(() => proc.child.kill('SIGKILL'));
    await waitFor(async () => proc.state.stdout.includes('ferrocast listening on wss://'), 10_000, { message: 'TLS node up' });
    const api = ['--url', `https://localhost:${port}`, '--app-id', app.id, '--key', app.key, '--secret', app.secret];
    const trusted = { SSL_CERT_FILE: pki.ca.cert };
    const trigger = await cli(['trigger', ...api, '-c', 'tls-channel', '-e', 'e', '-d', '{}', '--info', 'subscription_count'], { env: trusted });
    assert.equal(trigger.code, 1, `subscription_count is off for this app: the 400 proves the signed request arrived over TLS\n${trigger.text}`);
    assert.match(trigger.stderr, /400/, trigger.text);
    const listed = await cli(['channels', ...api], { env: trusted });
    assert.equal(listed.code, 0, listed.text);
    assert.deepEqual(JSON.parse(listed.stdout), { channels: {} });
    const untrusted = await cli(['channels', ...api]);
    assert.equal(untrusted.code, 1, `the test CA is not in the system store\n${untrusted.text}`);
    assert.match(untrusted.stderr, /certificate|UnknownIssuer/i, untrusted.text);
  });
});

describe('build_info metric', () => {
  const srv = useServer({ apps: [makeApp()], single: true });

  test('ferrocast_build_info{version,commit} is 1 and matches --version', async () => {
    const text = await (await fetch(`${srv.client.metricsUrl}/metrics`)).text();
    const series = parseMetrics(text).filter((s) => s.name === 'ferrocast_build_info');
    assert.equal(series.length, 1, text);
    assert.deepEqual(series[0].labels, { version: cargoVersion(), commit: expectedCommit() });
    assert.equal(series[0].value, 1);
  });
});

describe('logs', () => {
  /** Runs a node on a config file until it is ready, stops it, and returns its output. */
  async function runNode(extraArgs = [], env = {}, logSection = '', app = makeApp()) {
    const lines = await serverLines();
    const port = Number(lines.match(/\nport = (\d+)/)[1]);
    const file = await writeConfig(`${uid('log-')}.toml`, `${lines}${logSection}${appBlock(app)}`);
    return startsAndStops(['--config', file, ...extraArgs], port, env);
  }

  const jsonLines = (stdout) => stdout.trim().split('\n').map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
  });

  test('text by default, and no ANSI colour codes when stdout is not a terminal', async () => {
    const state = await runNode();
    assert.match(state.stdout, /INFO .*ferrocast listening on/, state.stdout);
    assert.ok(!state.stdout.includes(ESC) && !state.stderr.includes(ESC), `no ANSI escapes:\n${JSON.stringify(state.stdout.slice(0, 300))}`);
  });

  for (const [how, args, env, section] of [
    ['--log-format json', ['--log-format', 'json'], {}, ''],
    ['FERROCAST_LOG__FORMAT=json', [], { FERROCAST_LOG__FORMAT: 'json' }, ''],
    ['[log] format = "json"', [], {}, '[log]\nformat = "json"\n'],
  ]) {
    test(`${how}: one JSON object per line, with level and message`, async () => {
      const state = await runNode(args, env, section);
      const lines = jsonLines(state.stdout);
      assert.ok(lines.length >= 3, state.stdout);
      for (const line of lines) {
        assert.equal(typeof line.timestamp, 'string');
        assert.match(line.level, /^(TRACE|DEBUG|INFO|WARN|ERROR)$/);
        assert.equal(typeof line.fields?.message, 'string');
      }
      assert.ok(lines.some((l) => l.fields.message.includes('ferrocast listening on')), state.stdout);
      assert.ok(lines.some((l) => l.fields.message === 'ferrocast' && l.fields.commit === expectedCommit()), 'the start line names the build');
    });
  }

  test('--log-format text wins over [log] format = "json"', async () => {
    const state = await runNode(['--log-format', 'text'], {}, '[log]\nformat = "json"\n');
    assert.match(state.stdout, /INFO .*ferrocast listening on/, state.stdout);
    assert.ok(!state.stdout.trimStart().startsWith('{'), state.stdout);
  });

  test('FERROCAST_LOG filters: warn hides INFO lines and keeps WARN lines', async () => {
    // An app with the demo secret makes the node warn at start.
    const state = await runNode([], { FERROCAST_LOG: 'warn' }, '', makeApp({ secret: 'app-secret' }));
    assert.match(state.stdout, /WARN .*public demo credentials/, state.stdout);
    assert.ok(!/ INFO /.test(state.stdout), `no INFO line:\n${state.stdout}`);
  });

  test('an invalid FERROCAST_LOG is a start-up error (exit 2), never silence', async () => {
    for (const value of ['verbose', 'ferrocast=loud', 'INFO:', 'info,']) {
      const proc = spawnFerrocast([], { env: { FERROCAST_LOG: value } });
      const state = await waitForExit(proc, 10_000);
      assert.equal(state.exitCode, 2, `FERROCAST_LOG=${JSON.stringify(value)}\n${state.stderr}${state.stdout}`);
      assert.match(state.stderr, /FERROCAST_LOG/, state.stderr);
    }
  });
});
