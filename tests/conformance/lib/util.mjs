// Small timing helpers shared by every test file. Every wait is bounded.

import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * Absolute path of an executable: `$envVar` if set, else `name` on PATH. Throws with `hint`
 * (how to install it) otherwise: the suite refuses to skip.
 */
export function executablePath(name, envVar, hint) {
  const explicit = process.env[envVar];
  const candidates = explicit
    ? [path.resolve(explicit)]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  throw new Error(explicit ? `${envVar}=${explicit} is not an executable file. ${hint}` : `${name} not found on PATH. ${hint}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `predicate` (sync or async) every `interval` ms until it returns a truthy value,
 * which is returned. Throws after `timeoutMs`.
 */
export async function waitFor(predicate, timeoutMs = 5000, { interval = 20, message } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = message ?? `condition ${predicate.toString().slice(0, 120)}`;
      const err = new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      if (lastError) err.cause = lastError;
      throw err;
    }
    await sleep(interval);
  }
}

/**
 * Retries an assertion function until it stops throwing; rethrows its last error after
 * `timeoutMs`. Use for state that converges asynchronously (e.g. channel vacated after a
 * socket close).
 */
export async function eventually(assertFn, timeoutMs = 5000, interval = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertFn();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
    }
    await sleep(interval);
  }
}

/**
 * Resolves with `predicate()`'s first truthy value, checked now and whenever the owner of
 * `waiters` (a Set of callbacks) calls them after a change. Rejects after `timeout` ms with
 * `describe()` (why it timed out, with context). A predicate that throws counts as false.
 */
export function waitOnChange(waiters, predicate, timeout, describe) {
  return new Promise((resolve, reject) => {
    let timer;
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch {
        value = undefined;
      }
      if (value) {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(value);
      }
    };
    timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(describe()));
    }, timeout);
    waiters.add(check);
    check();
  });
}

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Unique, valid channel-name-safe suffix. */
let uniqueCounter = 0;
export function uid(prefix = '') {
  uniqueCounter += 1;
  return `${prefix}${process.pid}-${Date.now().toString(36)}-${uniqueCounter}`;
}

/** JSON.parse that returns the input unchanged if it is not JSON. */
export function tryParseJSON(text) {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Prometheus text exposition → [{name, labels, value}] */
export function parseMetrics(text) {
  const samples = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3])) !== null) labels[lm[1]] = lm[2].replace(/\\(.)/g, '$1');
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/** A currently free TCP port on 127.0.0.1. */
export function freePort() {
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

/** The sum of every sample of metric `name` (all label sets) on `node`'s /metrics. */
export async function metricSum(node, name) {
  const res = await fetch(`${node.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parseMetrics(await res.text())
    .filter((s) => s.name === name)
    .reduce((sum, s) => sum + s.value, 0);
}
