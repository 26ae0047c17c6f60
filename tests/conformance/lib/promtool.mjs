// `promtool check metrics` (Prometheus' own linter for the text exposition format).
//
//   const { ok, code, output } = await promtoolCheckMetrics(text);
//
// promtool comes with Prometheus: `apt-get install prometheus` (Debian/Ubuntu, /usr/bin/promtool;
// `make test-deps` does it), `brew install prometheus` (macOS), or point FERROCAST_PROMTOOL at the
// binary. Missing promtool is an error, never a skip.

import { spawn } from 'node:child_process';
import { executablePath } from './util.mjs';

const INSTALL_HINT =
  'The metrics tests lint /metrics with `promtool check metrics`. Install it with ' +
  '`apt-get install prometheus` (Debian/Ubuntu: provides /usr/bin/promtool; `make test-deps` does it), ' +
  '`brew install prometheus` (macOS), or point FERROCAST_PROMTOOL at the binary. ' +
  'The conformance suite refuses to skip.';

/** Absolute path of promtool (FERROCAST_PROMTOOL or PATH); throws with install instructions. */
export function promtoolPath() {
  return executablePath('promtool', 'FERROCAST_PROMTOOL', INSTALL_HINT);
}

/**
 * Runs `promtool check metrics` with `text` on stdin. Resolves with {ok, code, output}: ok only
 * when promtool exits 0 and prints nothing (it lists lint problems one per line, exit code 3,
 * and parse errors with exit code 1).
 */
export function promtoolCheckMetrics(text, timeoutMs = 10_000) {
  const bin = promtoolPath();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} check metrics did not finish within ${timeoutMs} ms; output so far:\n${output}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${bin}: ${err.message}. ${INSTALL_HINT}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0 && output.trim() === '', code: code ?? signal, output: output.trim() });
    });
    child.stdin.on('error', () => {}); // EPIPE if promtool dies early; reported through close
    child.stdin.end(text);
  });
}
