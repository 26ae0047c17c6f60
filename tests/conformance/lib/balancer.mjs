// A tiny TCP load balancer in front of ServerNodes, for clients that must reconnect to another node
// when theirs drains (pusher-js retries a 4200 close at once, but against a fixed host that is
// down it only tries again after its 15 s connect timeout).
//
//   const lb = await startBalancer({ nodes, home: nodes[0], isLive: (node) => live.has(node) });
//   connectPusher(t, lb, app)          // lb.host / lb.port, like a ServerNode
//   lb.routes                          // [{node, at}] one per proxied connection
//   lb.nodeAt(ms)                      // node of the last connection routed at or before `ms`
//   await lb.close()
//
// Each new connection goes to `home` while it is live, else round-robin over the live nodes
// (`isLive`, e.g. a set the test updates at SIGTERM / after /readyz 200, like health checks that
// see the draining node at once); when the TCP connect to the chosen node fails, the next live
// node is tried (HAProxy's `option redispatch`). With no live node left the client socket is
// destroyed.

import net from 'node:net';

export async function startBalancer({ nodes, home, isLive = () => true }) {
  const routes = [];
  const sockets = new Set();
  let rr = 0;

  const candidates = () => {
    const live = nodes.filter((n) => isLive(n));
    const others = live.filter((n) => n !== home);
    const rotated = others.length ? [...others.slice(rr % others.length), ...others.slice(0, rr % others.length)] : [];
    rr += 1;
    return live.includes(home) ? [home, ...rotated] : rotated;
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const order = candidates();
    const attempt = (i) => {
      if (client.destroyed) return;
      if (i >= order.length) {
        client.destroy();
        return;
      }
      const node = order[i];
      const upstream = net.connect({ host: node.host, port: node.port });
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        routes.push({ node, at: Date.now() });
        upstream.setNoDelay(true);
        client.setNoDelay(true);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (!connected) attempt(i + 1);
        else client.destroy();
      });
      upstream.on('close', () => {
        if (connected) client.destroy();
      });
      client.on('close', () => upstream.destroy());
    };
    attempt(0);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });

  return {
    host: '127.0.0.1',
    port: server.address().port,
    name: 'balancer',
    routes,
    /** Node of the last connection routed at or before `ms` (undefined if none). */
    nodeAt(ms) {
      let found;
      for (const r of routes) if (r.at <= ms) found = r.node;
      return found;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
