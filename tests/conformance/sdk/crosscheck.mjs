// Cross-check of the Rust SDK (crates/sdk) against the pinned official Node SDK (`pusher`) and
// the tweetnacl secretbox that pusher-js decrypts with. Driven by crates/sdk/tests/node_crosscheck.rs:
// reads one JSON document of cases on stdin, prints one JSON document of what the Node side
// computes for them on stdout. The Rust test compares byte for byte.
//
// Not a *.test.mjs file: `npm test` does not run it on its own.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Pusher = require('pusher');
const events = require('pusher/lib/events.js');
const nacl = require('tweetnacl');

function sdkFor(app) {
  return new Pusher({
    appId: app.app_id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    useTLS: false,
    ...(app.master_key_base64 ? { encryptionMasterKeyBase64: app.master_key_base64 } : {}),
  });
}

// pusher-js's EncryptedChannel.handleEvent decryption, step by step (src/core/channels/encrypted_channel.ts),
// with the tweetnacl it bundles.
function pusherJsDecrypt(sharedSecretBase64, dataString) {
  const key = new Uint8Array(Buffer.from(sharedSecretBase64, 'base64'));
  const data = JSON.parse(dataString);
  if (!data.ciphertext || !data.nonce) return { error: 'missing ciphertext or nonce' };
  const cipherText = new Uint8Array(Buffer.from(data.ciphertext, 'base64'));
  if (cipherText.length < nacl.secretbox.overheadLength) return { error: 'ciphertext too short' };
  const nonce = new Uint8Array(Buffer.from(data.nonce, 'base64'));
  if (nonce.length < nacl.secretbox.nonceLength) return { error: 'nonce too short' };
  const bytes = nacl.secretbox.open(cipherText, nonce, key);
  if (bytes === null) return { error: 'secretbox.open failed' };
  const text = Buffer.from(bytes).toString('utf8');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { plaintext: text, parsed };
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const input = await readStdin();
const sdk = sdkFor(input.app);
const realNow = Date.now;
const out = {};

// Structured inputs travel as the JSON text the Rust side serialised, so that the Node side sees
// the same member order (JSON.parse keeps it, JSON.stringify reproduces it).
const parse = (text) => (text === undefined || text === null ? undefined : JSON.parse(text));

out.channel_auth = input.channel_auth.map(({ socket_id, channel, channel_data_json }) =>
  JSON.stringify(sdk.authorizeChannel(socket_id, channel, parse(channel_data_json))),
);
out.user_auth = input.user_auth.map(({ socket_id, user_data_json }) =>
  JSON.stringify(sdk.authenticateUser(socket_id, parse(user_data_json))),
);
out.shared_secrets = input.shared_secrets.map(({ master_key_base64, channel }) =>
  Buffer.from(sdkFor({ ...input.app, master_key_base64 }).channelSharedSecret(channel)).toString('base64'),
);
out.queries = input.queries.map(({ method, path, params, body, timestamp }) => {
  Date.now = () => timestamp * 1000;
  try {
    return sdk.createSignedQueryString({ method, path, params, body: body || undefined });
  } finally {
    Date.now = realNow;
  }
});
// What the Node SDK would send as the body of a trigger (its own events.trigger, with `post`
// captured instead of sent).
const capture = {
  config: sdk.config,
  channelSharedSecret: (c) => sdk.channelSharedSecret(c),
  post: (options) => options,
};
out.trigger_bodies = input.trigger_bodies.map(({ channels, event, data_json, params_json }) =>
  JSON.stringify(events.trigger(capture, channels, event, parse(data_json), parse(params_json)).body),
);
out.multi_encrypted_refused = (() => {
  try {
    events.trigger(capture, ['private-encrypted-a', 'b'], 'e', {});
    return false;
  } catch {
    return true;
  }
})();
out.pusher_js_decrypt = input.pusher_js_decrypt.map(({ channel, data }) =>
  pusherJsDecrypt(Buffer.from(sdk.channelSharedSecret(channel)).toString('base64'), data),
);
out.node_encrypt = input.node_encrypt.map(
  ({ channel, payload_json }) => events.trigger(capture, [channel], 'e', parse(payload_json)).body.data,
);
out.webhook_signatures = input.webhook_bodies.map((body) => sdk.config.token.sign(body));
out.webhook_valid = input.webhook_bodies.map((body, i) =>
  sdk
    .webhook({
      headers: {
        'x-pusher-key': input.app.key,
        'x-pusher-signature': out.webhook_signatures[i],
        'content-type': 'application/json',
      },
      rawBody: body,
    })
    .isValid(),
);

process.stdout.write(JSON.stringify(out));
