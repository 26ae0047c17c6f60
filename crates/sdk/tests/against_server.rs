//! The SDK against a real ferrocast release binary (FERROCAST_BIN, default target/release/ferrocast;
//! `make build` first — the test fails, never skips, without it):
//!
//! - an encrypted trigger reaches a raw WebSocket subscriber as ciphertext only, which the SDK
//!   opens again, and a pusher-js client (its own encrypted-channel code) decrypts it;
//! - channel list and info, presence users, send_to_user and terminate_user_connections work;
//! - a refused request is a typed error carrying the HTTP status.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ferrocast_sdk::{ChannelsQuery, Client, Config, Error, PresenceMember, TriggerParams, UserData};
use serde_json::{json, Value};

const APP_ID: &str = "sdk-app";
const KEY: &str = "sdk-key";
const SECRET: &str = "sdk-secret";
const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn binary() -> PathBuf {
    let path = std::env::var_os("FERROCAST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target").join("release").join("ferrocast"));
    assert!(
        path.exists(),
        "ferrocast binary not found at {}: build it with `make build` (cargo build --release) or set FERROCAST_BIN. \
         The SDK's server test refuses to skip.",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Node {
    port: u16,
    child: Child,
    config: PathBuf,
}

impl Node {
    fn start() -> Node {
        let (port, metrics_port) = (free_port(), free_port());
        let config = std::env::temp_dir().join(format!("ferrocast-sdk-it-{}-{port}.toml", std::process::id()));
        let toml = format!(
            "[server]\nport = {port}\nmetrics_port = {metrics_port}\n\n[[apps]]\nid = \"{APP_ID}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n"
        );
        std::fs::write(&config, toml).expect("write config");
        let child = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .env("FERROCAST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferrocast");
        let node = Node { port, child, config };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
                    let mut out = String::new();
                    s.read_to_string(&mut out)?;
                    Ok(out.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if ready {
                return node;
            }
            assert!(Instant::now() < deadline, "ferrocast on port {port} not ready in time");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A minimal blocking WebSocket client: raw frames, as they cross the broker.
struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Frame {
    Text(String),
    Close(u16),
    Other,
}

impl Ws {
    fn connect(port: u16) -> (Ws, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = format!(
            "GET /app/{KEY}?protocol=7&client=sdk-it&version=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).expect("handshake");
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
        };
        ws.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let head_end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(ws.fill() > 0, "no upgrade answer");
        };
        assert!(ws.buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        ws.buf.drain(..head_end);
        let established = ws.expect_text(|f| f["event"] == "pusher:connection_established");
        let data: Value = serde_json::from_str(established["data"].as_str().expect("data string")).expect("data json");
        let socket_id = data["socket_id"].as_str().expect("socket_id").to_owned();
        (ws, socket_id)
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn read(&mut self, timeout: Duration) -> Option<Frame> {
        self.stream.set_read_timeout(Some(timeout)).ok()?;
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// The raw text of the next text frame matching `pred` (others are skipped), parsed.
    fn expect_raw(&mut self, pred: impl Fn(&Value) -> bool) -> (String, Value) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.read(Duration::from_secs(5)) {
                Some(Frame::Text(text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if pred(&v) {
                        return (text, v);
                    }
                }
                Some(Frame::Other) => {}
                Some(Frame::Close(code)) => panic!("socket closed ({code}) while waiting"),
                None => break,
            }
        }
        panic!("expected frame not received");
    }

    fn expect_text(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_raw(pred).1
    }

    fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let mask = [7u8, 1, 9, 3];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).expect("send");
    }

    fn subscribe(&mut self, subscribe_data: Value) {
        let channel = subscribe_data["channel"].clone();
        self.send(&json!({"event": "pusher:subscribe", "data": subscribe_data}).to_string());
        let reply = self.expect_text(|f| {
            f["channel"] == channel
                && (f["event"] == "pusher_internal:subscription_succeeded" || f["event"] == "pusher:subscription_error")
        });
        assert_eq!(reply["event"], "pusher_internal:subscription_succeeded", "{reply}");
    }
}

fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, head) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = buf.get(head..head + len)?;
    let frame = match b0 & 0x0f {
        1 => Frame::Text(String::from_utf8_lossy(payload).into_owned()),
        8 => Frame::Close(
            payload
                .get(..2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .unwrap_or(1005),
        ),
        _ => Frame::Other,
    };
    Some((frame, head + len))
}

/// The pusher-js listener (tests/conformance/sdk/pusher-js-listener.mjs), line by line.
struct PusherJs {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl PusherJs {
    fn start(port: u16, channel: &str) -> PusherJs {
        let dir = common::conformance_dir();
        let mut child = Command::new(common::node())
            .arg("sdk/pusher-js-listener.mjs")
            .args(["127.0.0.1", &port.to_string(), KEY, channel])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or(json!({ "unparsed": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        PusherJs {
            child,
            stdin,
            lines: rx,
        }
    }

    fn next(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("pusher-js listener said nothing within 10 s")
    }

    fn answer(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").expect("write to pusher-js listener");
    }
}

impl Drop for PusherJs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sdk_against_a_real_ferrocast() {
    let node = Node::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = Client::new(
        Config::new(APP_ID, KEY, SECRET)
            .base_url(format!("http://127.0.0.1:{}", node.port))
            .master_key_base64(MASTER)
            .expect("master key"),
    )
    .expect("client");
    let none = TriggerParams::default();

    // ---- Encrypted channel: raw WebSocket sees ciphertext only -------------------------------
    let channel = "private-encrypted-sdk-room";
    let (mut raw, socket_id) = Ws::connect(node.port);
    let auth = client.authorize_channel(&socket_id, channel).expect("auth");
    assert!(auth.shared_secret.is_some());
    // As pusher-js does: the shared secret stays with the client, never goes to the broker.
    raw.subscribe(json!({"channel": channel, "auth": auth.auth}));

    // pusher-js, authorized by this SDK, decrypting with its own code.
    let mut js = PusherJs::start(node.port, channel);
    let hello = js.next();
    assert!(hello["socket_id"].is_string(), "{hello}");
    let ask = js.next();
    assert_eq!(ask["authorize"]["channel"], channel, "{ask}");
    let js_socket = ask["authorize"]["socket_id"].as_str().expect("socket id").to_owned();
    let js_auth = client.authorize_channel(&js_socket, channel).expect("auth js");
    js.answer(&serde_json::to_value(&js_auth).expect("auth json"));
    assert_eq!(js.next(), json!({"subscribed": channel}));

    let marker = "top-secret-marker-4711";
    let payload = json!({"text": marker, "amount": 100, "who": "Ada ✓"});
    rt.block_on(client.trigger(&[channel], "deposit", &payload, &none))
        .expect("encrypted trigger");

    let (wire, frame) = raw.expect_raw(|f| f["event"] == "deposit");
    assert!(!wire.contains(marker), "plaintext crossed the broker: {wire}");
    assert!(!wire.contains("Ada"), "plaintext crossed the broker: {wire}");
    assert_eq!(frame["channel"], channel);
    let data = frame["data"].as_str().expect("data is a string");
    let sealed: Value = serde_json::from_str(data).expect("sealed payload is JSON");
    let mut keys: Vec<&String> = sealed.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["ciphertext", "nonce"], "{data}");
    assert_eq!(client.decrypt(channel, data).expect("decrypt"), payload);

    let got = js.next();
    assert_eq!(
        got,
        json!({"event": "deposit", "data": payload}),
        "pusher-js decryption"
    );

    // A second trigger uses a fresh nonce.
    rt.block_on(client.trigger(&[channel], "deposit", &payload, &none))
        .expect("encrypted trigger 2");
    let (_, frame2) = raw.expect_raw(|f| f["event"] == "deposit");
    let sealed2: Value = serde_json::from_str(frame2["data"].as_str().expect("data")).expect("json");
    assert_ne!(sealed["nonce"], sealed2["nonce"]);
    assert_eq!(js.next()["data"], payload);

    // Plaintext to an encrypted channel is refused by the SDK itself.
    let no_key = Client::new(Config::new(APP_ID, KEY, SECRET).base_url(format!("http://127.0.0.1:{}", node.port)))
        .expect("client without key");
    assert!(matches!(
        rt.block_on(no_key.trigger(&[channel], "deposit", &payload, &none)),
        Err(Error::EncryptionKeyMissing(_))
    ));

    // ---- Channel list and info -------------------------------------------------------------
    let info = rt.block_on(client.channel_info(channel, &[])).expect("channel info");
    assert_eq!(info.occupied, Some(true));
    let empty = rt
        .block_on(client.channel_info("nobody-here", &[]))
        .expect("channel info");
    assert_eq!(empty.occupied, Some(false));
    let list = rt
        .block_on(client.channels(&ChannelsQuery::default()))
        .expect("channels");
    assert!(list.channels.contains_key(channel), "{list:?}");

    // ---- Presence users ----------------------------------------------------------------------
    let presence = "presence-sdk-room";
    let (mut p1, p1_socket) = Ws::connect(node.port);
    let member = PresenceMember::new("u-1").with_info(json!({"name": "One"}));
    let pa = client
        .authorize_presence_channel(&p1_socket, presence, &member)
        .expect("presence auth");
    p1.subscribe(json!({"channel": presence, "auth": pa.auth, "channel_data": pa.channel_data}));
    let users = rt.block_on(client.users(presence)).expect("users");
    assert_eq!(users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["u-1"]);
    let pinfo = rt
        .block_on(client.channel_info(presence, &["user_count"]))
        .expect("presence info");
    assert_eq!(pinfo.user_count, Some(1));
    let plist = rt
        .block_on(client.channels(&ChannelsQuery {
            filter_by_prefix: Some("presence-".into()),
            info: Some("user_count".into()),
        }))
        .expect("presence channels");
    assert_eq!(
        plist.channels.get(presence).and_then(|c| c.user_count),
        Some(1),
        "{plist:?}"
    );

    // A plain trigger with info and socket_id (excluding p1) is accepted.
    let answer = rt
        .block_on(client.trigger(
            &[presence],
            "note",
            &json!({"n": 1}),
            &TriggerParams {
                socket_id: Some(p1_socket.clone()),
                info: Some("user_count".into()),
            },
        ))
        .expect("trigger with info");
    assert_eq!(
        answer.channels.get(presence).and_then(|c| c.user_count),
        Some(1),
        "{answer:?}"
    );

    // ---- Errors carry the HTTP status --------------------------------------------------------
    let err = rt
        .block_on(client.users(channel))
        .expect_err("users of a non-presence channel");
    assert_eq!(err.status(), Some(400), "{err}");
    let wrong =
        Client::new(Config::new(APP_ID, KEY, "not-the-secret").base_url(format!("http://127.0.0.1:{}", node.port)))
            .expect("client");
    let err = rt
        .block_on(wrong.trigger(&["x"], "e", &json!({}), &none))
        .expect_err("wrong secret");
    assert!(matches!(err, Error::Http { status: 401, .. }), "{err}");

    // ---- Signin, send_to_user, terminate ----------------------------------------------------
    let (mut u, u_socket) = Ws::connect(node.port);
    let user = UserData::new("u-9").with_info(json!({"name": "Nine"}));
    let ua = client.authenticate_user(&u_socket, &user).expect("user auth");
    u.send(&json!({"event": "pusher:signin", "data": {"auth": ua.auth, "user_data": ua.user_data}}).to_string());
    u.expect_text(|f| f["event"] == "pusher:signin_success");
    u.subscribe(json!({"channel": "#server-to-user-u-9", "auth": ""}));
    rt.block_on(client.send_to_user("u-9", "direct", &json!({"hi": "nine"})))
        .expect("send_to_user");
    let direct = u.expect_text(|f| f["event"] == "direct");
    assert_eq!(direct["channel"], "#server-to-user-u-9");
    assert_eq!(direct["data"], json!({"hi": "nine"}).to_string());

    rt.block_on(client.terminate_user_connections("u-9"))
        .expect("terminate");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    while Instant::now() < deadline {
        match u.read(Duration::from_secs(5)) {
            Some(Frame::Close(code)) => {
                assert!((4000..5000).contains(&code), "close code {code}");
                closed = true;
                break;
            }
            Some(_) => {}
            None => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "terminated user's socket stayed open");
    // ---- The publishing examples, run against this node --------------------------------------
    let port = node.port.to_string();
    let trigger = run_example("trigger", &port);
    assert!(trigger.contains("triggered order-shipped"), "{trigger}");
    assert!(trigger.contains("status Some(400)"), "{trigger}");
    let encrypted = run_example("encrypted_trigger", &port);
    assert!(
        encrypted.contains("triggered deposit on private-encrypted-vault"),
        "{encrypted}"
    );
    assert!(encrypted.contains("refused as expected"), "{encrypted}");

    // Others are untouched: p1 still gets events.
    rt.block_on(client.trigger(&[presence], "after", &json!({"n": 2}), &none))
        .expect("trigger after terminate");
    p1.expect_text(|f| f["event"] == "after");
}

/// Runs a compiled example (built by `cargo test`, which builds every example, into
/// target/<profile>/examples) against the node on `port`; returns its stdout.
fn run_example(name: &str, port: &str) -> String {
    let exe = std::env::current_exe().expect("current exe");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .expect("target dir");
    assert!(
        path.exists(),
        "example {name} not built at {}: run `cargo test -p ferrocast-sdk` (which builds the examples) or \
         `cargo build -p ferrocast-sdk --examples`",
        path.display()
    );
    let out = Command::new(&path)
        .env("FERROCAST_URL", format!("http://127.0.0.1:{port}"))
        .env("FERROCAST_APP_ID", APP_ID)
        .env("FERROCAST_KEY", KEY)
        .env("FERROCAST_SECRET", SECRET)
        .env("FERROCAST_ENCRYPTION_MASTER_KEY", MASTER)
        .output()
        .expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
