// Small helpers of the soak harness: a seeded PRNG, a one-shot Redis command over raw RESP, /proc
// readings and number formatting. Node built-ins only.

import { readFileSync } from 'node:fs';
import net from 'node:net';

/** mulberry32: a small seeded PRNG, [0, 1). Deterministic per seed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.between = (lo, hi) => lo + (hi - lo) * next();
  next.int = (n) => Math.floor(next() * n);
  next.pick = (list) => list[Math.floor(next() * list.length)];
  next.shuffle = (list) => {
    const out = [...list];
    for (let i = out.length - 1; i > 0; i -= 1) {
      const j = Math.floor(next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  return next;
}

/**
 * Sends one command to the Redis on 127.0.0.1:`port` on a fresh connection and resolves with its
 * reply (simple string, error as Error, integer, bulk string or array of those), or rejects after
 * `timeoutMs`.
 */
export function redisCommand(port, args, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`redis ${args[0]}: no reply within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => {
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const s = String(a);
        parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
      }
      socket.write(parts.join(''));
    });
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const parsed = parseResp(buf, 0);
      if (parsed) finish(undefined, parsed.value);
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error(`redis ${args[0]}: connection closed`)));
  });
}

/** One RESP value from `buf` at `pos`: {value, end}, or undefined if incomplete. */
function parseResp(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: after };
    case '-':
      return { value: new Error(line), end: after };
    case ':':
      return { value: Number(line), end: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), end: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: after };
      const out = [];
      let p = after;
      for (let i = 0; i < n; i += 1) {
        const item = parseResp(buf, p);
        if (!item) return undefined;
        out.push(item.value);
        p = item.end;
      }
      return { value: out, end: p };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
  }
}

/** `INFO section` as {field: value} (numbers where they parse). */
export async function redisInfo(port, section) {
  const text = await redisCommand(port, ['INFO', section]);
  if (text instanceof Error) throw text;
  const out = {};
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i <= 0 || line.startsWith('#')) continue;
    const v = line.slice(i + 1);
    out[line.slice(0, i)] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** VmRSS of `pid` in KiB (from /proc/<pid>/status), or undefined if the process is gone. */
export function rssKiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** [1,2,3,7,9,10] → "1-3, 7, 9-10" (at most `max` ranges). */
export function ranges(numbers, max = 12) {
  const sorted = [...numbers].sort((a, b) => a - b);
  const out = [];
  for (const n of sorted) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  const text = out.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
  return text.length > max ? `${text.slice(0, max).join(', ')}, … (${text.length} ranges)` : text.join(', ');
}

export const fmtInt = (n) => (n === undefined || n === null ? '-' : Math.round(n).toLocaleString('en-US'));
export const fmtS = (ms) => `${(ms / 1000).toFixed(1)} s`;
export const mib = (kib) => (kib === undefined ? '-' : `${(kib / 1024).toFixed(1)} MiB`);
