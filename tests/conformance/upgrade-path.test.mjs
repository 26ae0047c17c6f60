// The WebSocket endpoint is `/app/{key}` only (reference §1.1): an upgrade request on any other
// path gets a 4xx HTTP answer, never a 101 (a socket that would then close) and never the 200
// banner of `GET /`, so a misconfigured client fails at once with a clear status.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import WebSocket from 'ws';

import { makeApp, useServer } from './lib/server.mjs';

const app = makeApp();
const srv = useServer({ apps: [app] });

/** The HTTP status a raw `ws` upgrade to `path` is answered with (101 when it opened). */
function upgradeStatus(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${srv.client.host}:${srv.client.port}${path}`);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no answer to an upgrade on ${path}`));
    }, 5000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      resolve(res.statusCode);
      ws.terminate();
    });
    ws.on('open', () => {
      clearTimeout(timer);
      resolve(101);
      ws.terminate();
    });
    ws.on('error', () => {});
  });
}

describe('WebSocket upgrade paths', () => {
  for (const path of ['/', '/foo', '/apps/1/events', '/apps/1/channels', '/healthz', '/pusher/app/x']) {
    test(`an upgrade on ${path} gets a 4xx`, async () => {
      const status = await upgradeStatus(path);
      assert.ok(status >= 400 && status < 500, `upgrade on ${path} → ${status}`);
    });
  }

  test('the app endpoint still upgrades, and plain GET / keeps its banner', async () => {
    assert.equal(await upgradeStatus(`/app/${app.key}?protocol=7&client=js&version=8.4.0`), 101);
    const res = await fetch(`http://${srv.client.host}:${srv.client.port}/`);
    assert.equal(res.status, 200);
    await res.text();
  });
});
