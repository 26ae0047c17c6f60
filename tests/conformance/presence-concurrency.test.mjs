// Presence under concurrency: many pusher-js members joining and leaving one presence channel at
// the same moment must all end with the exact roster. Always runs on two nodes sharing a private
// Redis (members split across them), and on one node, whatever FERROCAST_CONFORMANCE_NODES says.
//
// Why this is hard: a member_added that reaches a socket before its own subscription_succeeded is
// wiped by pusher-js when the roster arrives, and a join or leave landing between a subscriber's
// roster read and the delivery of later events could be missed or applied twice. Rosters that go
// wrong this way never heal, so after each burst the test waits for quiescence (every roster
// equal to the truth, polled until a deadline) and then asserts every roster exactly.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { connectPusher } from './lib/clients.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { sleep, uid } from './lib/util.mjs';

const MEMBERS = 12;
const ROUNDS = 5;
/** How long a burst may take to settle before the rosters are asserted as they are. */
const SETTLE_MS = 8000;

/** The member ids a pusher-js client currently believes are on `channel` (sorted), or null. */
function rosterOf(client, channel) {
  const ch = client.pusher.channel(channel);
  if (!ch || !ch.subscribed) return null;
  const ids = [];
  ch.members.each((m) => ids.push(String(m.id)));
  return ids.sort();
}

const sorted = (ids) => [...ids].sort();

/** Subscribes every member in `indices` at the same moment; resolves when all succeeded. */
function joinAll(clients, indices, channel) {
  return Promise.all(indices.map((i) => clients[i].subscribe(channel, 15_000)));
}

/**
 * Polls until every subscribed member's roster equals `expected` or SETTLE_MS passes, then
 * asserts each one exactly (a roster that healed late is fine; one that never heals is not).
 */
async function assertRosters(clients, present, channel, what) {
  const expected = sorted(present.map((i) => `m-${i}`));
  const wrong = () =>
    present
      .map((i) => ({ member: `m-${i}`, roster: rosterOf(clients[i], channel) }))
      .filter(({ roster }) => JSON.stringify(roster) !== JSON.stringify(expected));
  const deadline = Date.now() + SETTLE_MS;
  while (wrong().length > 0 && Date.now() < deadline) await sleep(100);
  const bad = wrong();
  assert.deepEqual(
    bad,
    [],
    `${what}: ${bad.length} of ${present.length} rosters differ from the ${expected.length} members ` +
      `[${expected.join(',')}]:\n${bad.map((b) => `  ${b.member}: ${b.roster?.length ?? 'none'} [${b.roster ?? ''}]`).join('\n')}`,
  );
}

/** Twelve members, member i on node i % nodes.length, each connected (not yet subscribed). */
async function connectMembers(t, nodes, app) {
  return Promise.all(
    Array.from({ length: MEMBERS }, (_, i) =>
      connectPusher(t, nodes[i % nodes.length], app, {
        presence: () => ({ user_id: `m-${i}`, user_info: { n: i } }),
      }),
    ),
  );
}

/**
 * The scenario: all join at once; then, ROUNDS times, a third of them leave at once (the others'
 * rosters must lose exactly them), rejoin at once, and finally another third leave and rejoin in
 * the same instant (unsubscribe + subscribe back to back, all of them together).
 */
async function churn(t, nodes, app) {
  const channel = uid('presence-burst-');
  const clients = await connectMembers(t, nodes, app);
  const all = clients.map((_, i) => i);
  await joinAll(clients, all, channel);
  await assertRosters(clients, all, channel, 'after 12 simultaneous joins');

  for (let round = 0; round < ROUNDS; round += 1) {
    const leavers = all.filter((i) => (i + round) % 3 === 0);
    const stayers = all.filter((i) => !leavers.includes(i));
    for (const i of leavers) clients[i].pusher.unsubscribe(channel);
    await assertRosters(clients, stayers, channel, `round ${round}: after ${leavers.length} simultaneous leaves`);

    await joinAll(clients, leavers, channel);
    await assertRosters(clients, all, channel, `round ${round}: after ${leavers.length} simultaneous rejoins`);

    const bouncers = all.filter((i) => (i + round) % 3 === 1);
    for (const i of bouncers) clients[i].pusher.unsubscribe(channel);
    await joinAll(clients, bouncers, channel);
    await assertRosters(clients, all, channel, `round ${round}: after ${bouncers.length} leave+rejoin at once`);
  }
}

describe('presence under concurrency, two nodes on one Redis', () => {
  const app = makeApp();
  const srv = useServer({ nodes: 2, backplane: { driver: 'redis' }, apps: [app] });

  test('12 members (6 per node) joining, leaving and rejoining at once all end with the exact roster', async (t) => {
    await churn(t, srv.nodes, app);
  });
});

describe('presence under concurrency, one node', () => {
  const app = makeApp();
  const srv = useServer({ single: true, apps: [app] });

  test('12 members joining, leaving and rejoining at once all end with the exact roster', async (t) => {
    await churn(t, srv.nodes, app);
  });
});
