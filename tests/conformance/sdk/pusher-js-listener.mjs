// A pusher-js client (the pinned npm package, with its own encrypted-channel decryption) driven
// over stdio by crates/sdk/tests/against_server.rs, one JSON document per line:
//
//   argv: HOST PORT APP_KEY CHANNEL
//   out {"socket_id": "..."}                         once connected
//   out {"authorize": {"socket_id", "channel"}}      pusher-js asks for channel authorization
//   in  {"auth": ..., "shared_secret": ...}          the Rust SDK's answer (or {"error": "..."})
//   out {"subscribed": CHANNEL}
//   out {"event": NAME, "data": <decrypted data>}    every non-internal event on CHANNEL
//   out {"error": ...}                               subscription errors, decryption failures
//
// Exits when stdin closes.

import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Pusher = require('pusher-js');

const [host, port, key, channelName] = process.argv.slice(2);
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const pending = [];
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const next = pending.shift();
  if (next) next(JSON.parse(line));
});
lines.on('close', () => {
  pusher.disconnect();
  process.exit(0);
});

const pusher = new Pusher(key, {
  wsHost: host,
  wsPort: Number(port),
  forceTLS: false,
  enabledTransports: ['ws'],
  cluster: 'local',
  disableStats: true,
  channelAuthorization: {
    customHandler: ({ socketId, channelName: channel }, callback) => {
      pending.push((answer) => {
        if (answer.error) callback(new Error(answer.error), null);
        else callback(null, answer);
      });
      say({ authorize: { socket_id: socketId, channel } });
    },
  },
});

// pusher-js logs decryption failures through Pusher.log.
Pusher.log = (msg) => {
  if (String(msg).toLowerCase().includes('decrypt')) say({ error: String(msg) });
};

pusher.connection.bind('connected', () => {
  say({ socket_id: pusher.connection.socket_id });
  const channel = pusher.subscribe(channelName);
  channel.bind('pusher:subscription_succeeded', () => say({ subscribed: channelName }));
  channel.bind('pusher:subscription_error', (err) => say({ error: err }));
  channel.bind_global((event, data) => {
    if (!event.startsWith('pusher:') && !event.startsWith('pusher_internal:')) say({ event, data });
  });
});
