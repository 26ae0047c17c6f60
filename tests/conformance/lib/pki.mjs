// A throw-away PKI for TLS tests, made with the `openssl` command line (Debian's `openssl`
// package; the tests refuse to skip without it):
//
//   const pki = await makePki();   // pki.dir, pki.ca.cert, pki.server.{cert,key}, pki.client.{cert,key}
//   const other = await makePki(); // an unrelated CA: its certificates are not trusted by `pki`'s
//
// The server certificate is for 127.0.0.1 and localhost; the client certificate is for TLS
// client authentication. Everything expires in a day and lives in a temp dir.

import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { executablePath } from './util.mjs';

const run = promisify(execFile);

const INSTALL_HINT = 'The TLS tests need `openssl` on PATH: `apt-get install openssl`. The suite refuses to skip.';

async function openssl(dir, args) {
  const bin = executablePath('openssl', 'FERROCAST_OPENSSL', INSTALL_HINT);
  try {
    await run(bin, args, { cwd: dir });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A leaf certificate signed by the CA in `dir`, with the given extensions. */
async function leaf(dir, name, cn, extensions) {
  await writeFile(path.join(dir, `${name}.ext`), `${extensions}\n`);
  await openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  await openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '1', '-sha256', '-extfile', `${name}.ext`,
  ]);
  return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
}

export async function makePki() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferrocast-pki-'));
  await openssl(dir, [
    'req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-sha256',
    '-subj', '/CN=ferrocast test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const server = await leaf(
    dir,
    'server',
    'localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE',
  );
  const client = await leaf(dir, 'client', 'ferrocast-node', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE');
  return { dir, ca: { cert: path.join(dir, 'ca.crt') }, server, client };
}

/**
 * redis-server arguments for a TLS port beside the plain one (which the harness uses for its
 * PING readiness check): `authClients` 'yes' requires a client certificate signed by the CA.
 */
export function redisTlsArgs(pki, tlsPort, { authClients = 'no' } = {}) {
  return [
    '--tls-port', String(tlsPort),
    '--tls-cert-file', pki.server.cert,
    '--tls-key-file', pki.server.key,
    '--tls-ca-cert-file', pki.ca.cert,
    '--tls-auth-clients', authClients,
    '--tls-replication', 'no',
  ];
}
