// End-to-end test of the secure-chat example, with the real programs: a `ferrocast` node (the demo
// app, on free ports), the `secure-chat` binary (twice: with a master key, and without one for the
// 500 path), Debian's Chromium driven by playwright-core, and a raw WebSocket client on the broker.
//
//   FERROCAST_BIN     the broker      (default: <repo>/target/release/ferrocast)
//   SECURE_CHAT_BIN   the example app (default: <repo>/target/release/secure-chat)
//   CHROMIUM_BIN      the browser     (default: /usr/bin/chromium)
//
// Nothing is skipped: a missing binary or browser fails the run and says how to get it
// (`make test-deps`, `make test-example`). The screenshot goes to <repo>/target/artifacts/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const EXAMPLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO_ROOT = path.resolve(EXAMPLE_DIR, '..', '..');
const ARTIFACTS = path.join(REPO_ROOT, 'target', 'artifacts');

const FERROCAST_BIN = path.resolve(process.env.FERROCAST_BIN || path.join(REPO_ROOT, 'target/release/ferrocast'));
const SECURE_CHAT_BIN = path.resolve(process.env.SECURE_CHAT_BIN || path.join(REPO_ROOT, 'target/release/secure-chat'));
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// The demo app of `ferrocast` started without a config file.
const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
const ROOM = 'private-encrypted-room-1';
const WAIT_MS = 15_000;

// Unique words, so that finding them in a frame cannot be a coincidence.
const ALICE_SAYS = `Hello Bob, the owl flies at midnight ${randomBytes(4).toString('hex')}`;
const BOB_SAYS = `Hi Alice, bring the blue umbrella ${randomBytes(4).toString('hex')}`;

function requireFile(file, what, how) {
  if (!existsSync(file)) {
    throw new Error(`${what} not found at ${file}: ${how}. This test never skips.`);
  }
}

/** A currently free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A child process with its output kept for the failure messages. */
class Proc {
  constructor(name, bin, env) {
    this.name = name;
    this.output = '';
    // Hermetic: no inherited FERROCAST_* / SECURE_CHAT_* variable reaches the programs.
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('FERROCAST_') && !k.startsWith('SECURE_CHAT_')),
    );
    this.child = spawn(bin, [], { env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk) => {
      this.output = (this.output + chunk).slice(-64 * 1024);
    };
    this.child.stdout.setEncoding('utf8').on('data', keep);
    this.child.stderr.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
      this.child.once('error', (err) => resolve({ error: err }));
    });
    this.running = true;
    this.exited.then(() => (this.running = false));
    live.add(this);
  }

  logs() {
    return `----- ${this.name} (${this.running ? 'running' : 'exited'}) -----\n${this.output}`;
  }

  /** Polls `url` until it answers 200; fails with the process's output otherwise. */
  async waitReady(url) {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited before it was ready\n${this.logs()}`);
      try {
        const res = await fetch(url);
        if (res.status === 200) return;
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    throw new Error(`${this.name} not ready at ${url} within ${WAIT_MS} ms\n${this.logs()}`);
  }

  async stop() {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    live.delete(this);
  }
}

const live = new Set();
process.once('exit', () => {
  for (const proc of live) proc.child.kill('SIGKILL');
});

/** Every process's output, appended to an assertion failure to make it readable. */
function withLogs(promise) {
  return promise.catch((err) => {
    err.message += `\n${[...live].map((p) => p.logs()).join('\n')}\n----- browser console -----\n${consoleLines.join('\n')}`;
    throw err;
  });
}
const consoleLines = [];

let broker;
let brokerPort;
let chat;
let chatUrl;
let keylessChat;
let keylessUrl;
let browser;
let listener;

async function startChat(name, env) {
  const port = await freePort();
  const proc = new Proc(name, SECURE_CHAT_BIN, {
    SECURE_CHAT_LISTEN: `127.0.0.1:${port}`,
    SECURE_CHAT_BROKER_URL: `http://127.0.0.1:${brokerPort}`,
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await proc.waitReady(`${url}/`);
  return { proc, url };
}

/**
 * A raw protocol-7 client on the room, with no key to open anything: it signs its own
 * subscription with the app secret (it is not pusher-js, so it never asks /pusher/auth and never
 * gets the room's shared secret) and keeps every frame the broker sends it.
 */
async function rawListener(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7&client=raw&version=1.0&flash=false`);
  const frames = [];
  const waiters = [];
  ws.on('message', (raw) => {
    const text = raw.toString('utf8');
    frames.push(text);
    for (const w of [...waiters]) w();
  });
  const next = (pred) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw listener: no matching frame; got ${frames.join('\n')}`)), WAIT_MS);
      const check = () => {
        const hit = frames.map((f) => JSON.parse(f)).find(pred);
        if (hit) {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          resolve(hit);
        }
      };
      waiters.push(check);
      check();
    });
  const established = await next((m) => m.event === 'pusher:connection_established');
  const socketId = JSON.parse(established.data).socket_id;
  const signature = createHmac('sha256', APP.secret).update(`${socketId}:${ROOM}`).digest('hex');
  ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: ROOM, auth: `${APP.key}:${signature}` } }));
  await next((m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === ROOM);
  return { ws, frames, next };
}

/** A fresh browser context (its own cookies), logged in as `user` on `url`. */
async function loggedInPage(url, user) {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await context.newPage();
  page.on('console', (msg) => consoleLines.push(`[${user}] ${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => consoleLines.push(`[${user}] page error: ${err.message}`));
  await page.goto(url);
  await page.fill('#username', user);
  await page.click('#login-button');
  await page.locator('#whoami').filter({ hasText: user }).waitFor({ timeout: WAIT_MS });
  return page;
}

/** The conversation as the page shows it: [[from, text], …]. */
function conversation(page) {
  return page.$$eval('#messages li', (items) =>
    items.map((li) => [li.dataset.from, li.querySelector('.text').textContent]),
  );
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.click('#send-button');
}

describe('secure-chat end to end (ferrocast + secure-chat + Chromium)', () => {
  before(async () => {
    requireFile(FERROCAST_BIN, 'the ferrocast binary', 'build it with `cargo build --release -p ferrocast-server` or set FERROCAST_BIN');
    requireFile(SECURE_CHAT_BIN, 'the secure-chat binary', 'build it with `cargo build --release -p ferrocast-example-secure-chat` or set SECURE_CHAT_BIN');
    requireFile(CHROMIUM_BIN, 'Chromium', 'install Debian\'s chromium (`make test-deps`, or `apt-get install chromium`) or set CHROMIUM_BIN');

    brokerPort = await freePort();
    const metricsPort = await freePort();
    broker = new Proc('ferrocast', FERROCAST_BIN, {
      FERROCAST_SERVER__PORT: String(brokerPort),
      FERROCAST_SERVER__METRICS_PORT: String(metricsPort),
    });
    await broker.waitReady(`http://127.0.0.1:${brokerPort}/readyz`);

    ({ proc: chat, url: chatUrl } = await startChat('secure-chat', {
      SECURE_CHAT_MASTER_KEY: randomBytes(32).toString('base64'),
    }));
    // The same app with no master key: the SDK refuses to authorize an encrypted room (500).
    ({ proc: keylessChat, url: keylessUrl } = await startChat('secure-chat without master key', {}));

    browser = await chromium.launch({
      executablePath: CHROMIUM_BIN,
      headless: true,
      // Without the background-networking flags Chromium keeps dialling Google's hosts, which a
      // closed network refuses; playwright gives it a fresh --user-data-dir itself.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    listener = await withLogs(rawListener(brokerPort));
  });

  after(async () => {
    listener?.ws.terminate();
    await browser?.close();
    await Promise.all([chat?.stop(), keylessChat?.stop(), broker?.stop()]);
  });

  test('the endpoints: 401 without a session, 403 for a user not allowed, 400 on a bad body', async () => {
    const auth = await fetch(`${chatUrl}/pusher/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `socket_id=1.2&channel_name=${ROOM}`,
    });
    assert.equal(auth.status, 401);
    const login = await fetch(`${chatUrl}/login`, { method: 'POST', body: '{"username":"carol"}' });
    assert.equal(login.status, 200);
    const cookie = login.headers.get('set-cookie').split(';')[0];
    const send = await fetch(`${chatUrl}/send`, {
      method: 'POST',
      headers: { cookie },
      body: JSON.stringify({ room: ROOM, text: 'let me in' }),
    });
    assert.equal(send.status, 403);
    const bad = await fetch(`${chatUrl}/login`, { method: 'POST', body: 'not json' });
    assert.equal(bad.status, 400);
  });

  test('alice and bob see each other\'s messages, decrypted in the page', async () => {
    await withLogs(
      (async () => {
        const alice = await loggedInPage(chatUrl, 'alice');
        const bob = await loggedInPage(chatUrl, 'bob');
        for (const page of [alice, bob]) {
          await page.locator('#status[data-state="subscribed"]').waitFor({ timeout: WAIT_MS });
          assert.equal(await page.locator('#error').isHidden(), true);
        }

        await send(alice, ALICE_SAYS);
        await bob.locator('#messages li[data-from="alice"]').waitFor({ timeout: WAIT_MS });
        await send(bob, BOB_SAYS);
        await alice.locator('#messages li[data-from="bob"]').waitFor({ timeout: WAIT_MS });
        await bob.locator('#messages li[data-from="bob"]').waitFor({ timeout: WAIT_MS });

        const expected = [
          ['alice', ALICE_SAYS],
          ['bob', BOB_SAYS],
        ];
        assert.deepEqual(await conversation(alice), expected);
        assert.deepEqual(await conversation(bob), expected);

        mkdirSync(ARTIFACTS, { recursive: true });
        const shot = path.join(ARTIFACTS, 'secure-chat.png');
        await alice.screenshot({ path: shot, fullPage: true });
        console.log(`screenshot of alice's page: ${shot}`);
        await alice.context().close();
        await bob.context().close();
      })(),
    );
  });

  test('carol, who is not allowed in the room, is told so (403) and sees nothing', async () => {
    await withLogs(
      (async () => {
        const carol = await loggedInPage(chatUrl, 'carol');
        const error = carol.locator('#error');
        await error.waitFor({ state: 'visible', timeout: WAIT_MS });
        assert.equal(await error.getAttribute('data-status'), '403');
        assert.match(await error.textContent(), /You are not allowed in this room/);
        assert.equal(await carol.locator('#status').getAttribute('data-state'), 'error');
        assert.equal(await carol.locator('#text').isDisabled(), true);
        assert.deepEqual(await conversation(carol), []);
        await carol.context().close();
      })(),
    );
  });

  test('an app that cannot authorize (no master key) shows the 500 message', async () => {
    await withLogs(
      (async () => {
        const alice = await loggedInPage(keylessUrl, 'alice');
        const error = alice.locator('#error');
        await error.waitFor({ state: 'visible', timeout: WAIT_MS });
        assert.equal(await error.getAttribute('data-status'), '500');
        assert.match(await error.textContent(), /The chat server failed to authorize you \(500\); try again later/);
        assert.doesNotMatch(await error.textContent(), /not allowed/);
        await alice.context().close();
        assert.match(keylessChat.output, /no encryption master key is configured/);
      })(),
    );
  });

  test('only ciphertext crosses the broker', async () => {
    // The conversation above: both messages reach the raw listener too.
    await listener.next((m) => m.event === 'message' && m.channel === ROOM);
    const deadline = Date.now() + WAIT_MS;
    const messages = () => listener.frames.map((f) => JSON.parse(f)).filter((m) => m.event === 'message');
    while (messages().length < 2 && Date.now() < deadline) await sleep(50);
    assert.equal(messages().length, 2, `expected the 2 messages, got ${listener.frames.join('\n')}`);
    for (const m of messages()) {
      assert.equal(m.channel, ROOM);
      const data = JSON.parse(m.data);
      assert.deepEqual(Object.keys(data).sort(), ['ciphertext', 'nonce']);
      assert.equal(Buffer.from(data.nonce, 'base64').length, 24, 'a 24-byte XSalsa20 nonce');
      // 16-byte Poly1305 tag plus a JSON body of at least `{"from":"bob","text":"…"}`.
      assert.ok(Buffer.from(data.ciphertext, 'base64').length > 16 + ALICE_SAYS.length / 2);
    }
    const everything = listener.frames.join('\n');
    for (const secret of [ALICE_SAYS, BOB_SAYS, 'owl flies', 'blue umbrella', '"from"', '"text"']) {
      assert.equal(everything.includes(secret), false, `${secret} crossed the broker in clear`);
    }
  });
});
