// The metrics a node exposes from its start, and their reference in docs/operations.md.
//
// Fresh nodes of the release binary (no traffic before the scrape): without arguments (the
// embedded default), and with a full config (two apps, one with a webhook) on the memory and on
// the Redis backplane. Their /metrics must already have every series whose labels are known in
// advance, at zero, and docs/operations.md must have exactly one row per metric they expose,
// as `make metrics-reference` generates it from their HELP and TYPE lines.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import {
  REGENERATE_HINT,
  docRows,
  mergeRuns,
  readDoc,
  renderTable,
  scrapeRuns,
  splitDoc,
  tableRows,
} from './lib/metrics-reference.mjs';
import { trackFailures } from './lib/server.mjs';

trackFailures();

let runs;
let families;
before(async () => {
  runs = await scrapeRuns();
  families = mergeRuns(runs);
});

const MESSAGE_KINDS = ['api_event', 'client_event', 'protocol'];
// Close codes the node itself uses after a connection was admitted (a drain, a slow consumer,
// a pong timeout, unauthorized) and a peer gone without a close frame.
const CLOSE_CODES = ['1000', '1006', '4009', '4100', '4200', '4201', 'other'];
const WEBHOOK_EVENTS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'];
const WEBHOOK_REASONS = ['expired', 'queue_full', 'shutdown', 'queue_unavailable', 'cluster_state_unavailable'];

function sample(run, family, labels) {
  const f = run.families.get(family);
  assert.ok(f, `${run.name}: no ${family} family at all on a fresh node\n${run.text}`);
  const found = f.samples.find((s) => s.name === family && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found, `${run.name}: no ${family}${JSON.stringify(labels)} series on a fresh node\n${run.text}`);
  return found.value;
}

test('a fresh node exports the connection, message, limit and webhook series of its apps at 0', () => {
  for (const run of runs) {
    for (const app_id of run.apps) {
      assert.equal(sample(run, 'ferrocast_connections', { app_id }), 0);
      assert.equal(sample(run, 'ferrocast_connections_opened_total', { app_id }), 0);
      for (const code of CLOSE_CODES) assert.equal(sample(run, 'ferrocast_connections_closed_total', { app_id, code }), 0);
      for (const kind of MESSAGE_KINDS) assert.equal(sample(run, 'ferrocast_messages_delivered_total', { app_id, kind }), 0);
      for (const kind of ['client_event', 'protocol']) assert.equal(sample(run, 'ferrocast_ws_messages_in_total', { app_id, kind }), 0);
      assert.equal(sample(run, 'ferrocast_ws_messages_out_total', { app_id }), 0);
      assert.equal(sample(run, 'ferrocast_limit_rejections_total', { app_id, limit: 'max_connections' }), 0);
      assert.equal(sample(run, 'ferrocast_limit_rejections_total', { app_id, limit: 'max_client_events_per_second' }), 0);
      assert.equal(sample(run, 'ferrocast_cache_replays_total', { app_id, result: 'miss' }), 0);
      assert.equal(sample(run, 'ferrocast_slow_consumer_disconnects_total', { app_id }), 0);
      assert.equal(sample(run, 'ferrocast_subscriptions', { app_id }), 0);
    }
    for (const app_id of run.hooked) {
      for (const event of WEBHOOK_EVENTS) assert.equal(sample(run, 'ferrocast_webhook_events_total', { app_id, event }), 0);
      for (const reason of WEBHOOK_REASONS) assert.equal(sample(run, 'ferrocast_webhook_failures_total', { app_id, reason }), 0);
      assert.equal(sample(run, 'ferrocast_webhook_deliveries_total', { app_id }), 0);
      assert.equal(sample(run, 'ferrocast_webhook_takeovers_total', { app_id }), 0);
    }
    assert.equal(sample(run, 'ferrocast_rest_requests_total', { route: 'events', status: '200' }), 0);
    assert.equal(sample(run, 'ferrocast_auth_denied_total', { reason: 'rest_signature' }), 0);
    // Nothing has happened yet: every connection and message series is still 0.
    for (const f of run.families.values()) {
      if (!/^ferrocast_(connections|messages|ws_|webhook_(events|failures|deliveries))/.test(f.name)) continue;
      for (const s of f.samples) assert.equal(s.value, 0, `${run.name}: ${s.name}${JSON.stringify(s.labels)} is ${s.value} on a fresh node`);
    }
    // Never a label per channel or per socket.
    for (const f of run.families.values()) {
      for (const l of f.labels) assert.ok(!['channel', 'socket_id', 'user_id'].includes(l), `${f.name} is labelled by ${l}`);
    }
  }
});

test('the same metrics on every backplane; only an app with a webhook adds some', () => {
  const names = (run) => new Set(run.families.keys());
  const [plain, memory, redis] = runs;
  assert.deepEqual([...names(redis)].sort(), [...names(memory)].sort(), 'the memory and the Redis node expose different metrics');
  const extra = [...names(memory)].filter((n) => !names(plain).has(n));
  const missing = [...names(plain)].filter((n) => !names(memory).has(n));
  assert.deepEqual(missing, [], 'metrics of the embedded default missing from the full config');
  for (const name of extra) {
    assert.match(name, /^ferrocast_webhook_/, `${name} appears only with the full config, yet it is not a webhook metric`);
  }
  for (const f of families.values()) {
    assert.match(f.name, /^ferrocast_[a-z0-9_]+$/, `metric ${f.name} lacks the ferrocast_ prefix`);
    assert.ok(f.help.trim().length > 10, `${f.name} needs a HELP text that says what it counts`);
  }
});

test('docs/operations.md has one metrics reference row per exposed metric, as generated', async () => {
  const { table } = splitDoc(await readDoc());
  const documented = docRows(table);
  const generated = new Map(tableRows(families).map((r) => [r.name, r.line]));
  const undocumented = [...generated.keys()].filter((n) => !documented.has(n));
  const gone = [...documented.keys()].filter((n) => !generated.has(n));
  const changed = [...generated.keys()].filter((n) => documented.has(n) && documented.get(n) !== generated.get(n));
  const problems = [
    ...undocumented.map((n) => `exposed but not documented: ${n}`),
    ...gone.map((n) => `documented but no longer exposed: ${n}`),
    ...changed.map((n) => `row of ${n} differs from the binary:\n  doc:    ${documented.get(n)}\n  binary: ${generated.get(n)}`),
  ];
  assert.deepEqual(problems, [], `${problems.join('\n')}\n${REGENERATE_HINT}`);
  assert.equal(table, renderTable(families), `the metrics reference table is not as generated. ${REGENERATE_HINT}`);
});

test('every ferrocast_* metric docs/operations.md names exists', async () => {
  const doc = await readDoc();
  const series = new Set();
  for (const f of families.values()) {
    series.add(f.name);
    if (f.type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) series.add(f.name + s);
  }
  // Whole names only: a prefix such as `ferrocast_webhook_*` names no single metric.
  const named = new Set(doc.match(/\bferrocast_[a-z0-9_]*[a-z0-9](?![a-z0-9_*])/g) ?? []);
  const unknown = [...named].filter((n) => !series.has(n)).sort();
  assert.deepEqual(unknown, [], `docs/operations.md names metrics the binary does not expose: ${unknown.join(', ')}`);
});
