// Raw-socket helpers shared by the edge (HTTP deadlines, descriptors, per-IP caps, TLS) files.

import net from 'node:net';

import { parseMetrics } from '../lib/util.mjs';

/** A connected TCP socket that records when it closes (`s.closedAt`) and what it received. */
export function openSocket(port, { localAddress = '127.0.0.1', host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, localAddress });
    s.received = '';
    s.closedAt = undefined;
    s.whenClosed = new Promise((done) => s.once('close', () => {
      s.closedAt = Date.now();
      done();
    }));
    s.on('data', (d) => (s.received += d.toString('latin1')));
    s.on('error', () => {});
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves true if `socket` closed within `ms`, false otherwise. */
export async function closesWithin(socket, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const result = await Promise.race([socket.whenClosed.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

/** The value of one sample of the node's /metrics (0 when absent). */
export async function metric(node, name, labels = {}) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
  const samples = parseMetrics(await res.text());
  const hit = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return hit ? hit.value : 0;
}

/** One raw HTTP/1.1 request on a new socket; resolves {status, headers, text, socket} once the
 *  server closed the connection or the response is complete. */
export async function rawRequest(port, request, { localAddress, prefix } = {}) {
  const s = await openSocket(port, { localAddress });
  if (prefix) s.write(prefix);
  s.write(request);
  await closesWithin(s, 5000);
  return { ...parseResponse(s.received), socket: s };
}

export function parseResponse(text) {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  const head = text.split('\r\n\r\n')[0] ?? '';
  const headers = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : undefined, headers, text };
}

export function upgradeRequest(app, extraHeaders = '') {
  return (
    `GET /app/${app.key}?protocol=7&client=js&version=8.4.0 HTTP/1.1\r\n` +
    'Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
    `${extraHeaders}\r\n`
  );
}

/** A PROXY protocol v2 header (PROXY command, TCP over IPv4) naming `source`. */
export function proxyV2(source, sourcePort = 40000, dest = '127.0.0.1', destPort = 6001) {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const body = Buffer.alloc(12);
  source.split('.').forEach((b, i) => body.writeUInt8(Number(b), i));
  dest.split('.').forEach((b, i) => body.writeUInt8(Number(b), 4 + i));
  body.writeUInt16BE(sourcePort, 8);
  body.writeUInt16BE(destPort, 10);
  const head = Buffer.from([0x21, 0x11, 0x00, 12]);
  return Buffer.concat([sig, head, body]);
}

/** Log text without ANSI colour codes. */
export const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');
