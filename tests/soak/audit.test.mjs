// Checks of the soak's audits on hand-made inputs (no processes): `node --test audit.test.mjs`.
// `make soak` and `make soak-smoke` run them first, so a harness that could not fail is caught.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { auditEvents, webhookBalance } from './soak.mjs';

const app = { key: 'k' };
const req = (seq, key, events, status = 200) => ({
  seq,
  key: 'k',
  valid: true,
  status,
  at: 1000 + seq,
  headers: key ? { 'idempotency-key': key } : {},
  body: { time_ms: 1000 + seq, events },
});
const ch = 'presence-x';
const occ = { name: 'channel_occupied', channel: ch };
const add = { name: 'member_added', channel: ch, user_id: 'u1' };
const rem = { name: 'member_removed', channel: ch, user_id: 'u1' };
const vac = { name: 'channel_vacated', channel: ch };
const empty = [new Map(), new Set()];

test('webhooks: a retry with the same Idempotency-Key counts once and is reported as a duplicate', () => {
  const r = webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add]), req(3, 'c', [rem]), req(4, 'c', [rem]), req(5, 'd', [vac])] }, app, ...empty);
  assert.equal(r.duplicateRequests, 1);
  assert.deepEqual(r.problems, []);
});

test('webhooks: a lost member_removed, a non-2xx answer and a reused key are caught', () => {
  let r = webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add]), req(5, 'd', [vac])] }, app, ...empty);
  assert.match(r.problems.join('\n'), /member_added u1 without its member_removed/);
  r = webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add]), req(3, 'c', [rem], 500), req(5, 'd', [vac])] }, app, ...empty);
  assert.equal(r.problems.length, 1);
  r = webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add]), req(3, 'b', [rem]), req(5, 'd', [vac])] }, app, ...empty);
  assert.equal(r.keyConflicts, 1);
  r = webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add])] }, app, ...empty);
  assert.match(r.problems.join('\n'), /channel_occupied without its channel_vacated/);
  r = webhookBalance({ requests: [req(1, undefined, [occ]), req(2, undefined, [vac])] }, app, ...empty);
  assert.equal(r.missingKey, 2);
});

test('webhooks: members still connected must be added exactly once', () => {
  const connected = [new Map([[ch, new Set(['u1'])]]), new Set([ch])];
  assert.deepEqual(webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add])] }, app, ...connected).problems, []);
  assert.equal(webhookBalance({ requests: [req(1, 'a', [occ]), req(2, 'b', [add]), req(3, 'c', [add])] }, app, ...connected).problems.length, 1);
});

// one lane: seq 2 refused (503), seq 3 unknown outcome (may be published late)
const t = 10_000;
const lane = {
  channel: 'c',
  attempts: [
    { seq: 1, sentAt: t + 100, ackAt: t + 101, outcome: 'accepted', node: 'a' },
    { seq: 2, sentAt: t + 200, ackAt: t + 201, outcome: 'refused', status: 503, node: 'a' },
    { seq: 3, sentAt: t + 300, ackAt: t + 301, outcome: 'ambiguous', node: 'a' },
    { seq: 4, sentAt: t + 400, ackAt: t + 401, outcome: 'accepted', node: 'a' },
    { seq: 5, sentAt: t + 500, ackAt: t + 501, outcome: 'accepted', node: 'a' },
    { seq: 6, sentAt: t + 900, ackAt: t + 901, outcome: 'accepted', node: 'a' },
  ],
};
const subscriber = (seqs, end) => ({
  userId: 's',
  channels: ['c'],
  outside: 0,
  disconnects: [],
  open: new Map([['c', {}]]),
  pusher: { connection: { state: 'connected' } },
  windows: new Map([['c', [{ start: t, end, node: 'a', seqs }]]]),
});
const audit = (seqs, end) => auditEvents([subscriber(seqs, end)], [lane], t + 2000, []);

test('events: refused ones are not demanded, an unknown-outcome one may arrive late', () => {
  const a = audit([1, 4, 3, 5, 6]);
  assert.equal(a.demanded, 4);
  assert.equal(a.ok, true, a.problems.join('\n'));
});

test('events: a missing, a duplicated and a reordered event are caught', () => {
  assert.equal(audit([1, 4, 6]).lost, 1);
  const d = audit([1, 4, 4, 6, 5]);
  assert.equal(d.duplicates, 1);
  assert.equal(d.outOfOrder, 1);
  assert.equal(d.ok, false);
  assert.equal(audit([1, 4, 5, 6, 2]).refusedButDelivered, 1);
});

test('events: nothing is demanded within the end margin of a disconnect', () => {
  const a = audit([1, 4, 5], t + 1000); // 6 answered 99 ms before the disconnect
  assert.equal(a.demanded, 3);
  assert.equal(a.ok, true);
});
