// Hand-signed HTTP API requests (protocol reference §9.2), for cases the SDK cannot produce
// (tampered signatures, stale timestamps, malformed bodies, …).

import { createHash, createHmac } from 'node:crypto';

export const md5 = (text) => createHash('md5').update(text, 'utf8').digest('hex');
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Returns {query, stringToSign, signature} for a request.
 *   params: extra query params (info, filter_by_prefix, …)
 *   body:   raw body string (body_md5 is added when non-empty)
 *   overrides: {key, secret, timestamp, authVersion, bodyMd5, omit: [param names], signature}
 */
export function signRequest({ method, path, params = {}, body, key, secret, overrides = {} }) {
  const all = {
    auth_key: overrides.key ?? key,
    auth_timestamp: String(overrides.timestamp ?? nowSeconds()),
    auth_version: overrides.authVersion ?? '1.0',
  };
  if (body !== undefined && body !== '') all.body_md5 = overrides.bodyMd5 ?? md5(body);
  else if (overrides.bodyMd5 !== undefined) all.body_md5 = overrides.bodyMd5;
  for (const [k, v] of Object.entries(params)) all[k] = String(v);
  for (const name of overrides.omit ?? []) delete all[name];
  const sorted = Object.keys(all)
    .map((k) => [k.toLowerCase(), all[k]])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const unescaped = sorted.map(([k, v]) => `${k}=${v}`).join('&');
  const stringToSign = `${method.toUpperCase()}\n${path}\n${unescaped}`;
  const signature =
    overrides.signature ?? createHmac('sha256', overrides.secret ?? secret).update(stringToSign, 'utf8').digest('hex');
  // like the SDK, leave commas readable (the broker must percent-decode anyway)
  const enc = (x) => encodeURIComponent(x).replace(/%2C/gi, ',');
  const escaped = sorted.map(([k, v]) => `${enc(k)}=${enc(v)}`);
  if (!(overrides.omit ?? []).includes('auth_signature')) escaped.push(`auth_signature=${signature}`);
  return { query: escaped.join('&'), stringToSign, signature };
}

/**
 * Performs a signed request against `node` for `app`.
 *   path: relative to /apps/{app_id} (e.g. '/events'), or absolute if `absolutePath` is set
 *   body: object (JSON-encoded) or raw string
 * Returns {status, text, json, headers}.
 */
export async function signedFetch(node, app, { method = 'POST', path, absolutePath, params, body, overrides = {}, headers = {} }) {
  const fullPath = absolutePath ?? `/apps/${overrides.appId ?? app.id}${path}`;
  const rawBody = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const { query } = signRequest({ method, path: fullPath, params, body: rawBody, key: app.key, secret: app.secret, overrides });
  const res = await fetch(`${node.httpUrl}${fullPath}?${query}`, {
    method,
    body: rawBody,
    headers: rawBody !== undefined ? { 'content-type': 'application/json', ...headers } : headers,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}
