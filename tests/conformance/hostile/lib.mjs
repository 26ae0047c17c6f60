// Helpers of the hostile-client tests: server RSS, metrics, and a byte-level WebSocket client
// for frames the `ws` package refuses to produce (a new text frame inside a fragmented message).

import { readFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

import { parseMetrics, sleep } from '../lib/util.mjs';

/** VmRSS of a process, in KiB, from /proc/<pid>/status. */
export function rssKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** The node's PID. */
export const pidOf = (node) => node.proc.child.pid;

/** Samples RSS every `intervalMs` until `stop()`; `max` is the largest sample. */
export function sampleRss(pid, intervalMs = 50) {
  const sampler = { max: rssKb(pid), samples: 0 };
  const timer = setInterval(() => {
    try {
      sampler.max = Math.max(sampler.max, rssKb(pid));
      sampler.samples += 1;
    } catch {
      /* process gone: the test will notice */
    }
  }, intervalMs);
  sampler.stop = () => clearInterval(timer);
  return sampler;
}

/** Sum of the samples of metric `name` whose labels include `labels`. */
export async function metric(node, name, labels = {}) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const samples = parseMetrics(await res.text());
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Waits until RSS is at most `limitKb` (memory released); returns the last sample. */
export async function rssSettles(pid, limitKb, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last = rssKb(pid);
  while (last > limitKb && Date.now() < deadline) {
    await sleep(100);
    last = rssKb(pid);
  }
  return last;
}

/** One masked client frame. */
export function clientFrame(opcode, payload, fin = true) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const head = [(fin ? 0x80 : 0) | opcode];
  if (data.length < 126) head.push(0x80 | data.length);
  else if (data.length < 65536) head.push(0x80 | 126, data.length >> 8, data.length & 0xff);
  else throw new Error('frame too large for this helper');
  const mask = randomBytes(4);
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i += 1) masked[i] = data[i] ^ mask[i % 4];
  return Buffer.concat([Buffer.from(head), mask, masked]);
}

/**
 * A WebSocket spoken byte by byte over a TCP socket: `open()` does the upgrade, `write(frame)`
 * sends raw frames, `closeCode()` resolves with the code of the server's close frame (or 1006
 * when the TCP connection ends without one).
 */
export class ByteSocket {
  constructor(node, key, query = 'protocol=7&client=js&version=8.4.0') {
    this.node = node;
    this.path = `/app/${key}?${query}`;
    this.buffer = Buffer.alloc(0);
    this.upgraded = false;
    this.frames = [];
    this.ended = false;
    this._waiters = new Set();
  }

  open() {
    return new Promise((resolve, reject) => {
      this.sock = net.connect(this.node.port, this.node.host);
      this.sock.on('error', () => {});
      this.sock.on('close', () => {
        this.ended = true;
        this._notify();
      });
      this.sock.on('data', (chunk) => {
        this.buffer = Buffer.concat([this.buffer, chunk]);
        if (!this.upgraded) {
          const end = this.buffer.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = this.buffer.subarray(0, end).toString();
          this.buffer = this.buffer.subarray(end + 4);
          if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${head}`));
          this.upgraded = true;
          resolve();
        }
        this._parse();
      });
      this.sock.once('connect', () => {
        this.sock.write(
          `GET ${this.path} HTTP/1.1\r\nHost: ${this.node.host}:${this.node.port}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
            `Sec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
    });
  }

  _parse() {
    for (;;) {
      if (this.buffer.length < 2) return;
      let len = this.buffer[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + len) return;
      const opcode = this.buffer[0] & 0x0f;
      const payload = this.buffer.subarray(offset, offset + len);
      this.frames.push({ opcode, payload: Buffer.from(payload) });
      this.buffer = this.buffer.subarray(offset + len);
      this._notify();
    }
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  write(bytes) {
    this.sock.write(bytes);
  }

  /** The server's close code: from its close frame, or 1006 if the connection just ended. */
  closeCode(timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const close = this.frames.find((f) => f.opcode === 0x8);
        if (close) return done(() => resolve(close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005));
        if (this.ended) return done(() => resolve(1006));
        return undefined;
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no close within ${timeoutMs} ms`))), timeoutMs);
      const done = (fn) => {
        clearTimeout(timer);
        this._waiters.delete(check);
        fn();
      };
      this._waiters.add(check);
      check();
    });
  }

  destroy() {
    this.sock?.destroy();
  }
}
