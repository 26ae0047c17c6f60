//! Drive the real `ferrocast` binary: start it on free ports, speak raw WebSocket and signed
//! REST to it, read its metrics.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const APP: &str = "[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running node; killed on drop.
pub struct Node {
    pub port: u16,
    pub metrics_port: u16,
    pub child: Child,
    config: PathBuf,
}

impl Node {
    /// Start with `[server]` extras and the rest of the config (apps, backplane) in `body`.
    pub fn start(server_extra: &str, body: &str) -> Node {
        let (port, metrics_port) = (free_port(), free_port());
        let config = std::env::temp_dir().join(format!("ferrocast-it-{}-{port}.toml", std::process::id()));
        let toml = format!("[server]\nport = {port}\nmetrics_port = {metrics_port}\n{server_extra}\n{body}");
        std::fs::write(&config, toml).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrocast"))
            .arg("--config")
            .arg(&config)
            .env("FERROCAST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferrocast");
        let node = Node {
            port,
            metrics_port,
            child,
            config,
        };
        node.wait_ready(Duration::from_secs(20));
        node
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if http_get(self.port, "/readyz")
                .map(|(status, _)| status == 200)
                .unwrap_or(false)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node on port {} not ready in time",
                self.port
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of one metric line (exact name with labels), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// POST a signed trigger of `name` with `data` to `channel`.
    pub fn trigger(&self, channel: &str, name: &str, data: &str) -> u16 {
        let body = serde_json::json!({ "name": name, "channels": [channel], "data": data }).to_string();
        self.signed_post("/apps/app-id/events", &body)
    }

    /// POST a signed batch of `count` events named `name` with `data` to `channel`.
    pub fn trigger_batch(&self, channel: &str, name: &str, data: &str, count: usize) -> u16 {
        let item = serde_json::json!({ "name": name, "channel": channel, "data": data });
        let body = serde_json::json!({ "batch": vec![item; count] }).to_string();
        self.signed_post("/apps/app-id/batch_events", &body)
    }

    fn signed_post(&self, path: &str, body: &str) -> u16 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let query =
            ferrocast_protocol::rest::sign_query("POST", path, &[], body.as_bytes(), "app-key", "app-secret", now);
        http_post(self.port, &format!("{path}?{query}"), body)
            .map(|(s, _)| s)
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn http(port: u16, request: String) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

pub fn http_post(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    http(
        port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A minimal blocking WebSocket client: enough to subscribe and read frames.
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame received: text, or a close with its code.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Close(u16),
    Other(u8),
}

impl Ws {
    pub fn connect(port: u16) -> Ws {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = "GET /app/app-key?protocol=7&client=it&version=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        stream.write_all(req.as_bytes()).expect("handshake");
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill();
        };
        assert!(ws.buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        ws.buf.drain(..head_end);
        ws
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Next frame, or None on EOF / timeout.
    pub fn read(&mut self, timeout: Duration) -> Option<Frame> {
        self.stream.set_read_timeout(Some(timeout)).ok()?;
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Send a masked text frame.
    pub fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).expect("send");
    }

    pub fn subscribe(&mut self, channel: &str) {
        self.send(&format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#
        ));
        let expected = "pusher_internal:subscription_succeeded";
        while let Some(frame) = self.read(Duration::from_secs(5)) {
            if matches!(&frame, Frame::Text(t) if t.contains(expected)) {
                return;
            }
        }
        panic!("no subscription_succeeded for {channel}");
    }
}

fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
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
        op => Frame::Other(op),
    };
    Some((frame, head + len))
}
