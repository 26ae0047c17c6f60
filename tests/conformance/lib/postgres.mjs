// A throw-away PostgreSQL for the postgres app registry tests: Debian's server binaries
// (/usr/lib/postgresql/<version>/bin, not on PATH; `make postgres-deps` installs them),
// `initdb` into a temp dir, `pg_ctl start` on a free 127.0.0.1 port with its unix socket in that
// dir, password authentication over TCP (so tests can check the password never leaks).
//
//   const pg = await startPostgres();  // initdb + start
//   pg.url                             // postgres://ferrocast:<password>@127.0.0.1:PORT/postgres
//   pg.password                        // to assert it appears in no log or metric
//   await pg.sql('UPDATE ...')         // psql -At over TCP; resolves to its stdout
//   await pg.stop() / pg.start()       // pg_ctl stop -m fast / start again (same data, same port)
//   await pg.destroy()                 // stop and remove the temp dir (also done at process exit)
//
// initdb and postgres refuse to run as root. When the tests run as root (CI does), the server
// runs as the `postgres` user the Debian package creates (else `nobody`), owning the temp dir:
// node's spawn({uid, gid}) drops the privileges, no sudo needed. Never skips: a missing server
// is an error that says how to install it.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { freePort, sleep } from './util.mjs';

const READY_TIMEOUT_MS = 30_000;
const INSTALL_HINT =
  'The postgres registry tests need PostgreSQL server binaries: `make postgres-deps` ' +
  '(Debian package `postgresql`, which puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin), ' +
  'or point FERROCAST_PG_BIN at a directory holding initdb, pg_ctl and psql. The suite refuses to skip.';

const live = new Set();
process.once('exit', () => {
  for (const pg of live) pg.destroySync();
});
// pg_ctl starts a daemon that outlives this process: stop it on SIGINT/SIGTERM too, then die of
// the same signal (the handler is gone once run).
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const pg of live) pg.destroySync();
    process.kill(process.pid, signal);
  });
}

/** The directory of initdb/pg_ctl/psql: FERROCAST_PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
export function postgresBinDir() {
  const usable = (dir) => {
    try {
      for (const tool of ['initdb', 'pg_ctl', 'psql']) accessSync(path.join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (process.env.FERROCAST_PG_BIN) {
    const dir = path.resolve(process.env.FERROCAST_PG_BIN);
    if (usable(dir)) return dir;
    throw new Error(`FERROCAST_PG_BIN=${dir} has no initdb, pg_ctl and psql. ${INSTALL_HINT}`);
  }
  let versions = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v));
  } catch {
    /* none installed */
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (usable(dir)) return dir;
  }
  throw new Error(`no PostgreSQL server found in /usr/lib/postgresql/*/bin. ${INSTALL_HINT}`);
}

/** The uid/gid to run the server as: ourselves, or (as root) `postgres`, else `nobody`. */
function serverIdentity() {
  if (process.getuid() !== 0) return {};
  for (const user of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && uid > 0) return { uid, gid, user };
    } catch {
      /* no such user */
    }
  }
  throw new Error('running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as');
}

/** Run `file args` (as `identity` when root); resolves { code, stdout, stderr }. */
function run(file, args, { identity = {}, env = {}, timeoutMs = 60_000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      uid: identity.uid,
      gid: identity.gid,
      cwd,
      env: { ...process.env, LC_ALL: 'C', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export class PostgresServer {
  constructor({ bin, dir, port, identity, password }) {
    this.bin = bin;
    this.dir = dir;
    this.data = path.join(dir, 'data');
    this.sockets = dir;
    this.port = port;
    this.identity = identity;
    this.user = 'ferrocast';
    this.password = password;
    this.host = '127.0.0.1';
  }

  get url() {
    return `postgres://${this.user}:${this.password}@${this.host}:${this.port}/postgres`;
  }

  /** The URL without the password (for messages). */
  get shownUrl() {
    return `postgres://${this.user}@${this.host}:${this.port}/postgres`;
  }

  logs() {
    try {
      return `===== postgres ${this.host}:${this.port} =====\n` + execFileSync('tail', ['-n', '200', path.join(this.dir, 'server.log')], { encoding: 'utf8' });
    } catch {
      return '';
    }
  }

  async initdb() {
    const pwfile = path.join(this.dir, 'pwfile');
    await writeFile(pwfile, `${this.password}\n`, { mode: 0o600 });
    if (this.identity.uid !== undefined) chownSync(pwfile, this.identity.uid, this.identity.gid);
    const r = await run(
      path.join(this.bin, 'initdb'),
      ['-D', this.data, '-U', this.user, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-instructions'],
      { identity: this.identity, cwd: this.dir },
    );
    if (r.code !== 0) throw new Error(`initdb failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  async start() {
    const opts = `-c listen_addresses=${this.host} -c port=${this.port} -c unix_socket_directories=${this.sockets} -c fsync=off -c full_page_writes=off`;
    const r = await run(
      path.join(this.bin, 'pg_ctl'),
      ['start', '-w', '-t', String(READY_TIMEOUT_MS / 1000), '-D', this.data, '-l', path.join(this.dir, 'server.log'), '-o', opts],
      { identity: this.identity, cwd: this.dir },
    );
    if (r.code !== 0) throw new Error(`pg_ctl start failed (${r.code}): ${r.stderr}${r.stdout}\n${this.logs()}`);
    live.add(this);
    // Ready for TCP clients with the password (pg_ctl -w waits for the socket; check TCP too).
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const ok = await this.sql('SELECT 1').then(() => true, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`postgres on ${this.port} not answering\n${this.logs()}`);
      await sleep(100);
    }
  }

  /** pg_ctl stop -m fast: clients are disconnected, the data stays. */
  async stop() {
    const r = await run(path.join(this.bin, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', this.data], {
      identity: this.identity,
      cwd: this.dir,
    });
    if (r.code !== 0) throw new Error(`pg_ctl stop failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  /** One statement (or several, `;`-separated) through psql over TCP; resolves to psql's -At output. */
  async sql(query) {
    const r = await run(path.join(this.bin, 'psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-h', this.host, '-p', String(this.port), '-U', this.user, '-d', 'postgres', '-c', query], {
      env: { PGPASSWORD: this.password, PGCONNECT_TIMEOUT: '5' },
      timeoutMs: 15_000,
    });
    if (r.code !== 0) throw new Error(`psql failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  destroySync() {
    live.delete(this);
    spawnSync(path.join(this.bin, 'pg_ctl'), ['stop', '-w', '-m', 'immediate', '-D', this.data], {
      uid: this.identity.uid,
      gid: this.identity.gid,
      cwd: this.dir,
      stdio: 'ignore',
      timeout: 15_000,
    });
    rmSync(this.dir, { recursive: true, force: true });
  }

  async destroy() {
    this.destroySync();
  }
}

/** initdb into a fresh temp dir and start the server on a free port. */
export async function startPostgres() {
  const bin = postgresBinDir();
  const identity = serverIdentity();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-pg-'));
  if (identity.uid !== undefined) chownSync(dir, identity.uid, identity.gid);
  const password = `pw-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const pg = new PostgresServer({ bin, dir, port: await freePort(), identity, password });
  try {
    await pg.initdb();
    await pg.start();
  } catch (e) {
    pg.destroySync();
    throw e;
  }
  return pg;
}
