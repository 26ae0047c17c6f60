// Users across nodes: two real nodes on a private Redis (always, whatever
// FERROCAST_CONFORMANCE_NODES says, like cluster.test.mjs). Sign-in on node A, sendToUser and
// terminateUserConnections through the official SDK against node B, watchlist online/offline
// exactly once cluster-wide, and offline after the node holding a watched user is SIGKILLed.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sdkGetJSON, sdkResult, serverSdk } from './lib/clients.mjs';
import { connectRaw, isPusherError } from './lib/raw.mjs';
import { makeApp, useServer } from './lib/server.mjs';
import { connectSignedInPusher, rawSignedIn, rawSigninOk, waitWatch, watchlistChanges } from './lib/users.mjs';
import { sleep, uid } from './lib/util.mjs';

const NODE_TTL_S = 2;
const QUIET_MS = 300;
/** A dead node is reaped within its TTL; allow the same slack as cluster.test.mjs. */
const REAP_MS = NODE_TTL_S * 1000 + 4000;

const userEvent = (event, userId) => (f) => f.event === event && f.channel === `#server-to-user-${userId}`;

async function sendToUser(node, app, userId, event, data) {
  const res = await sdkResult(() => serverSdk(node, app).sendToUser(userId, event, data));
  assert.equal(res.status, 200, `sendToUser on ${node.name} → ${res.status} ${res.body}`);
}

describe('users on two nodes', () => {
  const app = makeApp();
  const srv = useServer({ nodes: 2, backplane: { driver: 'redis', node_ttl_s: NODE_TTL_S }, apps: [app] });

  test('sendToUser on B reaches the user signed in on A and on B (pusher-js and raw), nobody else', async (t) => {
    const [A, B] = srv.nodes;
    const id = uid('xnode-');
    const onA = await connectSignedInPusher(t, A, app, { id });
    const rawOnB = await rawSignedIn(t, B, app, { id });
    const stranger = await rawSignedIn(t, A, app, { id: uid('stranger-') });
    await onA.until(() => onA.pusher.user.serverToUserChannel?.subscribed, 5000, '#server-to-user subscribed');
    await sendToUser(B, app, id, 'cross', { n: 1 });
    await onA.until(() => onA.userEvents.find((e) => e.event === 'cross'), 5000, 'cross on pusher.user');
    await rawOnB.waitFor(userEvent('cross', id));
    await sendToUser(A, app, id, 'cross-2', {});
    await rawOnB.waitFor(userEvent('cross-2', id));
    await sleep(QUIET_MS);
    assert.equal(stranger.find((f) => f.event === 'cross' || f.event === 'cross-2'), undefined);
    assert.equal(onA.userEvents.filter((e) => e.event === 'cross').length, 1);
    for (const node of [A, B]) {
      const listed = await sdkGetJSON(serverSdk(node, app), '/channels', {});
      assert.deepEqual(Object.keys(listed.channels).filter((c) => c.startsWith('#')), [], node.name);
    }
  });

  test('terminateUserConnections on B closes the user’s sockets on A and B with 4009', async (t) => {
    const [A, B] = srv.nodes;
    const id = uid('term-');
    const onA = await rawSignedIn(t, A, app, { id });
    const onB = await rawSignedIn(t, B, app, { id });
    const other = await rawSignedIn(t, A, app, { id: uid('other-') });
    const res = await sdkResult(() => serverSdk(B, app).terminateUserConnections(id));
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, {});
    for (const raw of [onA, onB]) {
      const closed = await raw.waitClose(5000);
      assert.deepEqual([closed.code, closed.reason], [4009, 'terminated by app']);
      assert.ok(raw.find(isPusherError(4009)));
    }
    await other.ping();
  });

  test('watchlist: online once when the first socket signs in anywhere, offline once after the last leaves', async (t) => {
    const [A, B] = srv.nodes;
    const watched = uid('watched-');
    const control = uid('control-');
    const watcherA = await rawSignedIn(t, A, app, { id: uid('wa-'), watchlist: [watched, control] });
    const watcherB = await rawSignedIn(t, B, app, { id: uid('wb-'), watchlist: [watched, control] });
    const since = [watcherA.mark(), watcherB.mark()];
    const onB = await rawSignedIn(t, B, app, { id: watched });
    for (const [i, w] of [watcherA, watcherB].entries()) await waitWatch(w, 'online', watched, { since: since[i] });
    const onA = await rawSignedIn(t, A, app, { id: watched });
    await onB.close();
    const c = await rawSignedIn(t, A, app, { id: control });
    for (const [i, w] of [watcherA, watcherB].entries()) await waitWatch(w, 'online', control, { since: since[i] });
    await sleep(QUIET_MS);
    for (const [i, w] of [watcherA, watcherB].entries()) {
      assert.deepEqual(watchlistChanges(w, since[i]), [`online ${watched}`, `online ${control}`], `watcher ${i}`);
    }
    await onA.close();
    await c.close();
    for (const [i, w] of [watcherA, watcherB].entries()) {
      await waitWatch(w, 'offline', watched, { since: since[i] });
      await waitWatch(w, 'offline', control, { since: since[i] });
    }
    await sleep(QUIET_MS);
    for (const [i, w] of [watcherA, watcherB].entries()) {
      const changes = watchlistChanges(w, since[i]);
      assert.equal(changes.filter((c) => c === `offline ${watched}`).length, 1, `watcher ${i}: ${changes}`);
      assert.equal(changes.filter((c) => c === `online ${watched}`).length, 1, `watcher ${i}: ${changes}`);
    }
    // the initial status frame sees users signed in on the other node
    const back = await rawSignedIn(t, B, app, { id: watched });
    const late = await connectRaw(t, A, app);
    const lateSince = late.mark();
    await rawSigninOk(app, late, { id: uid('late-'), watchlist: [watched, control] });
    const frame = await late.waitFor((f) => f.event === 'pusher_internal:watchlist_events', { since: lateSince });
    assert.deepEqual(frame.data, {
      events: [
        { name: 'online', user_ids: [watched] },
        { name: 'offline', user_ids: [control] },
      ],
    });
    await back.close();
  });

  test('simultaneous first sign-ins on both nodes: exactly one online; simultaneous leaves: one offline', async (t) => {
    const [A, B] = srv.nodes;
    const watched = uid('race-');
    const watcher = await rawSignedIn(t, A, app, { id: uid('rw-'), watchlist: [watched] });
    const since = watcher.mark();
    for (let round = 0; round < 3; round += 1) {
      const roundSince = watcher.mark();
      const sockets = await Promise.all([A, B, A, B].map((n) => rawSignedIn(t, n, app, { id: watched })));
      await waitWatch(watcher, 'online', watched, { since: roundSince });
      const leaveSince = watcher.mark();
      await Promise.all(sockets.map((s) => s.close()));
      await waitWatch(watcher, 'offline', watched, { since: leaveSince });
    }
    await sleep(QUIET_MS);
    const changes = watchlistChanges(watcher, since);
    assert.deepEqual(changes, [1, 2, 3].flatMap(() => [`online ${watched}`, `offline ${watched}`]));
  });
});

describe('a node holding a watched user is SIGKILLed', () => {
  const app = makeApp();
  const srv = useServer({ nodes: 2, backplane: { driver: 'redis', node_ttl_s: NODE_TTL_S }, apps: [app] });

  test('the survivor announces offline once, within ttl + 4 s; a user also on the survivor stays online', async (t) => {
    const [A, B] = srv.nodes;
    const victim = uid('victim-');
    const both = uid('both-');
    const watcher = await rawSignedIn(t, A, app, { id: uid('kw-'), watchlist: [victim, both] });
    await rawSignedIn(t, B, app, { id: victim });
    await rawSignedIn(t, B, app, { id: both });
    const bothOnA = await rawSignedIn(t, A, app, { id: both });
    await waitWatch(watcher, 'online', victim);
    await waitWatch(watcher, 'online', both);
    const since = watcher.mark();
    const killedAt = Date.now();
    await B.kill();
    await waitWatch(watcher, 'offline', victim, { since, timeout: REAP_MS });
    const took = Date.now() - killedAt;
    assert.ok(took <= REAP_MS, `offline after ${took} ms`);
    // control: `both` leaves A now, which is announced; nothing else came in between
    await bothOnA.close();
    await waitWatch(watcher, 'offline', both, { since });
    await sleep(QUIET_MS);
    assert.deepEqual(watchlistChanges(watcher, since), [`offline ${victim}`, `offline ${both}`]);

    // B restarts with the same node_id: the victim signs in there again → online once more
    await B.start();
    const since2 = watcher.mark();
    await rawSignedIn(t, B, app, { id: victim });
    await waitWatch(watcher, 'online', victim, { since: since2 });
    await sendToUser(A, app, victim, 'after-restart', {});
  });
});
