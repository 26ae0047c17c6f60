//! A minimal Pusher protocol client over fastwebsockets: a hand-written client handshake on a
//! plain `TcpStream` (no per-connection HTTP machinery left behind), the
//! `connection_established` exchange, subscriptions, and cheap inspection of server frames.
//!
//! Per-connection state is the WebSocket (stream + read buffer) and the socket id.
//!
//! With kernel receive timestamps on ([`Client::open_with`]), reads go through `recvmsg` and
//! keep the `SO_TIMESTAMPNS` time of the last data read: on loopback that is when the server's
//! write reached our socket, so latency can be split into "until it arrived" and "until the
//! tester got to read it".

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket, WebSocketError};
use memchr::memmem;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::net::{Dialer, Endpoint};

pub type Ws = WebSocket<Stream>;

/// `SO_TIMESTAMPNS` (= `SCM_TIMESTAMPNS`) on Linux x86_64 / aarch64 (64-bit `time_t`).
const SO_TIMESTAMPNS: libc::c_int = 35;

/// A TCP stream that optionally records the kernel receive time of the data it reads.
pub struct Stream {
    tcp: TcpStream,
    rx_time: Option<Rc<Cell<u64>>>,
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(rx_time) = &this.rx_time else {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        };
        loop {
            ready!(this.tcp.poll_read_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            // SAFETY: recvmsg writes at most `len` bytes into the unfilled part of `buf`, and
            // exactly the returned count is then marked initialised.
            let unfilled = unsafe { buf.unfilled_mut() };
            let (ptr, len) = (unfilled.as_mut_ptr() as *mut u8, unfilled.len());
            match this
                .tcp
                .try_io(Interest::READABLE, || recv_with_timestamp(fd, ptr, len))
            {
                Ok((n, stamp)) => {
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    if let Some(stamp) = stamp {
                        rx_time.set(stamp);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// `recvmsg` into `ptr[..len]`, returning the byte count and the `SCM_TIMESTAMPNS` time (ns
/// since the Unix epoch) if the kernel attached one.
fn recv_with_timestamp(fd: libc::c_int, ptr: *mut u8, len: usize) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: ptr as *mut libc::c_void,
        iov_len: len,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr points at our iovec and control buffer, both live for the call; the cmsg
    // walk stays within msg_controllen as set by the kernel, and the timespec is read unaligned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stamp = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, stamp))
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection or subscription failed.
#[derive(Debug)]
pub enum ClientError {
    Connect(std::io::Error),
    Handshake(String),
    Ws(WebSocketError),
    /// The server closed the socket (close code, if any).
    Closed(Option<u16>),
    /// A `pusher:error` frame (code, message).
    Pusher(Option<i64>, String),
    /// A `pusher:subscription_error` frame (its data).
    Subscription(String),
    Timeout(&'static str),
}

impl ClientError {
    /// A short, low-cardinality name for error tables.
    pub fn kind(&self) -> String {
        match self {
            ClientError::Connect(e) => format!("connect_{:?}", e.kind()).to_lowercase(),
            ClientError::Handshake(_) => "handshake".into(),
            ClientError::Ws(e) => format!("websocket_{}", ws_error_name(e)),
            ClientError::Closed(Some(code)) => format!("closed_{code}"),
            ClientError::Closed(None) => "closed".into(),
            ClientError::Pusher(Some(code), _) => format!("pusher_error_{code}"),
            ClientError::Pusher(None, _) => "pusher_error".into(),
            ClientError::Subscription(_) => "subscription_error".into(),
            ClientError::Timeout(what) => format!("timeout_{what}"),
        }
    }
}

fn ws_error_name(e: &WebSocketError) -> &'static str {
    match e {
        WebSocketError::UnexpectedEOF => "eof",
        WebSocketError::ConnectionClosed => "closed",
        WebSocketError::IoError(_) => "io",
        _ => "protocol",
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Handshake(s) => write!(f, "WebSocket handshake failed: {s}"),
            ClientError::Ws(e) => write!(f, "WebSocket error: {e}"),
            ClientError::Closed(code) => write!(f, "server closed the connection (code {code:?})"),
            ClientError::Pusher(Some(code), msg) => write!(f, "pusher:error {code}: {msg}"),
            ClientError::Pusher(None, msg) => write!(f, "pusher:error: {msg}"),
            ClientError::Subscription(data) => write!(f, "pusher:subscription_error: {data}"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl From<WebSocketError> for ClientError {
    fn from(e: WebSocketError) -> Self {
        ClientError::Ws(e)
    }
}

/// A connected Pusher client.
pub struct Client {
    pub ws: Ws,
    pub socket_id: String,
    /// Kernel receive time of the last data read (ns since the Unix epoch), when enabled.
    pub rx_time: Option<Rc<Cell<u64>>>,
}

impl Client {
    /// TCP connect, WebSocket handshake on `/app/{key}`, then `pusher:connection_established`.
    pub async fn open(dialer: &Dialer, endpoint: &Endpoint, key: &str) -> Result<Self, ClientError> {
        Self::open_with(dialer, endpoint, key, false).await
    }

    /// Like [`open`](Self::open); with `rx_timestamps`, reads record kernel receive times.
    pub async fn open_with(
        dialer: &Dialer,
        endpoint: &Endpoint,
        key: &str,
        rx_timestamps: bool,
    ) -> Result<Self, ClientError> {
        let open = Self::open_inner(dialer, endpoint, key, rx_timestamps);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, open).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout("connection_established")),
        }
    }

    async fn open_inner(
        dialer: &Dialer,
        endpoint: &Endpoint,
        key: &str,
        rx_timestamps: bool,
    ) -> Result<Self, ClientError> {
        let stream = dialer.connect(endpoint.addr).await.map_err(ClientError::Connect)?;
        let request = format!(
            "GET {}/app/{key}?protocol=7&client=ferrocast-loadtest&version={}&flash=false HTTP/1.1\r\n\
             Host: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            endpoint.path,
            env!("CARGO_PKG_VERSION"),
            endpoint.host
        );
        write_all(&stream, request.as_bytes()).await?;
        read_upgrade_response(&stream).await?;
        let rx_time = if rx_timestamps {
            let one: libc::c_int = 1;
            // SAFETY: a valid socket fd and a c_int option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    SO_TIMESTAMPNS,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            (rc == 0).then(|| Rc::new(Cell::new(0)))
        } else {
            None
        };
        let stream = Stream {
            tcp: stream,
            rx_time: rx_time.clone(),
        };
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        ws.set_writev(false);
        // The first frame must be connection_established (or an error followed by a close).
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Text => {
                    let text = &frame.payload[..];
                    match event_name(text) {
                        Some(b"pusher:connection_established") => {
                            let socket_id = data_object(text)
                                .and_then(|d| d.get("socket_id").and_then(Value::as_str).map(str::to_owned))
                                .ok_or_else(|| {
                                    ClientError::Handshake("connection_established without socket_id".into())
                                })?;
                            return Ok(Client { ws, socket_id, rx_time });
                        }
                        Some(b"pusher:error") => return Err(pusher_error(text)),
                        _ => {
                            return Err(ClientError::Handshake(
                                "first frame is not connection_established".into(),
                            ))
                        }
                    }
                }
                OpCode::Close => return Err(ClientError::Closed(close_code(&frame))),
                _ => {}
            }
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ClientError> {
        self.ws
            .write_frame(Frame::text(Payload::Owned(text.into_bytes())))
            .await
            .map_err(ClientError::Ws)
    }

    /// Send `pusher:subscribe`.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut data = serde_json::Map::new();
        data.insert("channel".into(), channel.into());
        data.insert("auth".into(), auth.unwrap_or("").into());
        if let Some(cd) = channel_data {
            data.insert("channel_data".into(), cd.into());
        }
        let frame = serde_json::json!({"event": "pusher:subscribe", "data": data});
        self.send_text(frame.to_string()).await
    }

    /// Send `pusher:signin` with `user_data` (the exact string that `auth` signs).
    pub async fn signin(&mut self, auth: &str, user_data: &str) -> Result<(), ClientError> {
        let frame = serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}});
        self.send_text(frame.to_string()).await
    }

    /// Read until `pusher:signin_success`, answering pings; a `pusher:error` is the failure.
    pub async fn wait_signed_in(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let wait = async {
            loop {
                let frame = self.ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Text => match event_name(&frame.payload[..]) {
                        Some(b"pusher:signin_success") => return Ok(()),
                        Some(b"pusher:error") => return Err(pusher_error(&frame.payload[..])),
                        Some(b"pusher:ping") => {
                            drop(frame);
                            self.pong().await?;
                        }
                        _ => {}
                    },
                    OpCode::Close => return Err(ClientError::Closed(close_code(&frame))),
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout("signin_success")),
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> Result<(), ClientError> {
        let frame = serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": channel}});
        self.send_text(frame.to_string()).await
    }

    pub async fn pong(&mut self) -> Result<(), ClientError> {
        self.send_text(r#"{"event":"pusher:pong","data":{}}"#.to_owned()).await
    }

    /// Read until `pusher_internal:subscription_succeeded` for `channel`, answering pings.
    /// `on_other` sees every other text frame (e.g. presence member events).
    pub async fn wait_subscribed(
        &mut self,
        channel: &str,
        timeout: Duration,
        mut on_other: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        let wait = async {
            loop {
                let frame = self.ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Text => {
                        let text = &frame.payload[..];
                        match event_name(text) {
                            Some(b"pusher_internal:subscription_succeeded")
                                if channel_name(text) == Some(channel.as_bytes()) =>
                            {
                                return Ok(());
                            }
                            Some(b"pusher:subscription_error") if channel_name(text) == Some(channel.as_bytes()) => {
                                return Err(ClientError::Subscription(String::from_utf8_lossy(text).into_owned()));
                            }
                            Some(b"pusher:error") => return Err(pusher_error(text)),
                            Some(b"pusher:ping") => {
                                drop(frame);
                                self.pong().await?;
                            }
                            _ => on_other(text),
                        }
                    }
                    OpCode::Close => return Err(ClientError::Closed(close_code(&frame))),
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout("subscription_succeeded")),
        }
    }

    /// Send a close frame (1000) and wait (bounded) for the server's close or EOF.
    pub async fn close(mut self, wait: Duration) {
        if self.ws.write_frame(Frame::close(1000, b"")).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(wait, async {
            loop {
                match self.ws.read_frame().await {
                    Ok(frame) if frame.opcode == OpCode::Close => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
        .await;
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> Result<(), ClientError> {
    while !bytes.is_empty() {
        stream.writable().await.map_err(ClientError::Connect)?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(ClientError::Connect(e)),
        }
    }
    Ok(())
}

/// Consume exactly the HTTP response head (peeking first, so the first WebSocket frame, which
/// may arrive in the same segment, stays in the socket for the WebSocket reader).
async fn read_upgrade_response(stream: &TcpStream) -> Result<(), ClientError> {
    let mut buf = [0u8; 2048];
    let mut last_seen = 0;
    loop {
        let n = stream.peek(&mut buf).await.map_err(ClientError::Connect)?;
        if n == 0 {
            return Err(ClientError::Handshake("connection closed during the handshake".into()));
        }
        if let Some(end) = memmem::find(&buf[..n], b"\r\n\r\n") {
            let head = &buf[..end];
            let status_ok = head.starts_with(b"HTTP/1.1 101") || head.starts_with(b"HTTP/1.0 101");
            let status_line = String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or(b"")).into_owned();
            let mut sink = vec![0u8; end + 4];
            let mut read = 0;
            while read < sink.len() {
                stream.readable().await.map_err(ClientError::Connect)?;
                match stream.try_read(&mut sink[read..]) {
                    Ok(0) => return Err(ClientError::Handshake("connection closed during the handshake".into())),
                    Ok(k) => read += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(ClientError::Connect(e)),
                }
            }
            return if status_ok {
                Ok(())
            } else {
                Err(ClientError::Handshake(format!("expected 101, got '{status_line}'")))
            };
        }
        if n == buf.len() {
            return Err(ClientError::Handshake("response head too large".into()));
        }
        if n == last_seen {
            // Partial head and nothing new: peek would return at once again, so wait a little.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last_seen = n;
    }
}

/// The close code of a close frame.
pub fn close_code(frame: &Frame<'_>) -> Option<u16> {
    (frame.payload.len() >= 2).then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]))
}

/// The string value of a top-level `"name":"value"` member, found by scanning (no JSON parse).
/// Members of `data` never match: inside the data string their quotes are escaped.
fn string_member<'a>(text: &'a [u8], pattern: &[u8]) -> Option<&'a [u8]> {
    let start = memmem::find(text, pattern)? + pattern.len();
    let rest = &text[start..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The `event` member of a server frame.
pub fn event_name(text: &[u8]) -> Option<&[u8]> {
    string_member(text, b"\"event\":")
}

/// The `channel` member of a server frame.
pub fn channel_name(text: &[u8]) -> Option<&[u8]> {
    string_member(text, b"\"channel\":")
}

/// The frame's `data`, decoded as a JSON object (accepting string or object form).
pub fn data_object(text: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let frame: Value = serde_json::from_slice(text).ok()?;
    match frame.get("data")? {
        Value::String(s) => match serde_json::from_str(s).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        },
        Value::Object(map) => Some(map.clone()),
        _ => None,
    }
}

/// A `pusher:error` frame as an error.
pub fn pusher_error(text: &[u8]) -> ClientError {
    let data = data_object(text).unwrap_or_default();
    let code = data.get("code").and_then(Value::as_i64);
    let message = data.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
    ClientError::Pusher(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_members_without_parsing() {
        let frame = br#"{"event":"lt","data":"{\"event\":\"no\",\"channel\":\"x\"}","channel":"c-1"}"#;
        assert_eq!(event_name(frame), Some(&b"lt"[..]));
        assert_eq!(channel_name(frame), Some(&b"c-1"[..]));
        let spaced = br#"{ "channel": "c-2", "event": "e" }"#;
        assert_eq!(channel_name(spaced), Some(&b"c-2"[..]));
        assert_eq!(event_name(spaced), Some(&b"e"[..]));
        assert_eq!(event_name(b"{}"), None);
    }

    #[test]
    fn decodes_data_and_errors() {
        let established =
            br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
        assert_eq!(data_object(established).unwrap()["socket_id"], "1.2");
        let err = br#"{"event":"pusher:error","data":{"code":4001,"message":"nope"}}"#;
        match pusher_error(err) {
            ClientError::Pusher(Some(4001), m) => assert_eq!(m, "nope"),
            other => panic!("{other:?}"),
        }
    }
}
