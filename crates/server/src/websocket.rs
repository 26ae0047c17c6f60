//! One WebSocket connection: admission, the reader loop and the writer task.
//!
//! The reader parses frames and hands them to the node one at a time. The writer owns the
//! socket's write half: it drains the connection's bounded queue (coalescing whatever is
//! queued into one write), pings idle clients, and writes the close frame. Frames arrive
//! already encoded, so the writer never touches JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fastwebsockets::{OpCode, Role, WebSocketError};
use ferrocast_broker::connection::ConnectionOutbox;
use ferrocast_broker::{frame, ConnectError, ConnectionHandle, Session};
use ferrocast_protocol::codes::close;
use ferrocast_protocol::inbound::ClientMessage;
use ferrocast_protocol::{inbound, outbound};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::metrics::AppMetrics;
use crate::state::ServerState;

type Io = TokioIo<Upgraded>;

/// "Close without a close frame": the peer is gone (1006 is never sent on the wire).
const ABNORMAL: u16 = 1006;
/// A write that makes no progress for this long means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of bytes coalesced into one write.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Frames no larger than this are accepted whatever the app's payload limit.
const MIN_FRAME_BYTES: usize = 64 * 1024;

/// What the upgrade request said, checked after the upgrade so the client gets a close code.
pub struct ConnectRequest {
    pub app_key: String,
    pub protocol: Option<String>,
    pub origin: Option<String>,
}

/// Milliseconds since process start, for cheap "last seen" stamps.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Run a connection from the completed upgrade to the end.
pub async fn serve(state: Arc<ServerState>, req: ConnectRequest, ws: fastwebsockets::WebSocket<Io>) {
    let _open = state.lifecycle.track_connection();
    let (read, mut write) = tokio::io::split(ws.into_inner());
    let (mut session, outbox, metrics) = match admit(&state, &req).await {
        Ok(admitted) => admitted,
        Err((code, message)) => {
            debug!(code, message, "connection refused");
            refuse(&mut write, code, &message).await;
            return;
        }
    };
    metrics.opened.inc();
    metrics.connections.inc();
    let established = outbound::connection_established(session.socket_id(), state.config.server.activity_timeout_s);
    session.send_json(&established);

    let last_seen = Arc::new(AtomicU64::new(now_ms()));
    let writer = tokio::spawn(write_loop(WriterContext {
        write,
        outbox,
        conn: session.conn.clone(),
        last_seen: last_seen.clone(),
        activity: Duration::from_secs(state.config.server.activity_timeout_s),
        shutdown: state.lifecycle.shutdown_token(),
        grace: Duration::from_secs(state.config.server.shutdown_grace_s),
        metrics: metrics.clone(),
        broken: false,
        unreported: (0, 0),
    }));
    read_loop(&state, read, &mut session, &last_seen, &metrics).await;
    let conn = session.conn.clone();
    conn.close(ABNORMAL);
    state.node.disconnect(session).await;
    let _ = writer.await;
    let code = conn.close_code().unwrap_or(ABNORMAL);
    if code == close::OVER_CAPACITY {
        metrics.slow_consumers.inc();
    }
    metrics.closed(code);
    metrics.connections.dec();
}

async fn admit(
    state: &ServerState,
    req: &ConnectRequest,
) -> Result<(Session, ConnectionOutbox, AppMetrics), (u16, String)> {
    match req.protocol.as_deref() {
        None => return Err((close::NO_PROTOCOL, "no protocol version supplied".into())),
        Some("5" | "6" | "7") => {}
        Some(other) => {
            return Err((
                close::UNSUPPORTED_PROTOCOL,
                format!("unsupported protocol version {other:?}; this server speaks 7"),
            ))
        }
    }
    let Some(app) = state.node.apps().by_key(&req.app_key).cloned() else {
        return Err((close::UNKNOWN_APP, format!("no app with key {:?}", req.app_key)));
    };
    if !app.config.origin_allowed(req.origin.as_deref()) {
        return Err((close::UNAUTHORIZED, "origin not allowed for this app".into()));
    }
    let metrics = state.metrics.app(app.id());
    match state.node.connect(app).await {
        Ok((session, outbox)) => Ok((session, outbox, metrics)),
        Err(ConnectError::AppDisabled) => Err((close::APP_DISABLED, "app is disabled".into())),
        Err(ConnectError::OverQuota) => Err((close::OVER_CONNECTION_QUOTA, "app is over its connection quota".into())),
        Err(ConnectError::Backplane(e)) => {
            tracing::warn!(error = %e, "connection refused: cluster state unavailable");
            Err((close::OVER_CAPACITY, "server temporarily unavailable".into()))
        }
    }
}

/// Tell a refused client why (`pusher:error`) and close with the same code.
async fn refuse(write: &mut WriteHalf<Io>, code: u16, message: &str) {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&frame::text(&outbound::error(Some(code), message)));
    buf.extend_from_slice(&frame::close(code, message));
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(&buf).await?;
        write.shutdown().await
    })
    .await;
}

/// Largest frame (or reassembled message) this app's connections may send.
fn max_frame_bytes(session: &Session) -> usize {
    let c = &session.app.config;
    MIN_FRAME_BYTES.max(c.max_payload_bytes().max(c.max_member_bytes()).saturating_mul(4) + 4096)
}

async fn read_loop(
    state: &ServerState,
    read: ReadHalf<Io>,
    session: &mut Session,
    last_seen: &AtomicU64,
    metrics: &AppMetrics,
) {
    let max = max_frame_bytes(session);
    let (mut ws, _) = fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Server);
    ws.set_auto_close(false);
    ws.set_auto_pong(false);
    ws.set_max_message_size(max);
    let mut no_send = |_: fastwebsockets::Frame<'_>| async { Ok::<(), std::io::Error>(()) };
    let mut partial: Option<Vec<u8>> = None;
    let conn = session.conn.clone();
    loop {
        let frame = tokio::select! {
            biased;
            _ = conn.closed() => return,
            frame = ws.read_frame(&mut no_send) => frame,
        };
        last_seen.store(now_ms(), Ordering::Relaxed);
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return conn.close(close_code_for(&e)),
        };
        let text = match frame.opcode {
            OpCode::Text if frame.fin => frame.payload.to_vec(),
            OpCode::Text => {
                partial = Some(frame.payload.to_vec());
                continue;
            }
            OpCode::Continuation => {
                let Some(buf) = partial.as_mut() else {
                    return conn.close(close::PROTOCOL_ERROR);
                };
                if buf.len() + frame.payload.len() > max {
                    return conn.close(close::MESSAGE_TOO_BIG);
                }
                buf.extend_from_slice(&frame.payload);
                if !frame.fin {
                    continue;
                }
                partial.take().unwrap_or_default()
            }
            OpCode::Binary => return conn.close(close::UNSUPPORTED_DATA),
            OpCode::Close => return conn.close(echo_close_code(&frame.payload)),
            OpCode::Ping => {
                conn.send(frame::pong(&frame.payload));
                continue;
            }
            OpCode::Pong => continue,
        };
        let Ok(text) = String::from_utf8(text) else {
            return conn.close(close::INVALID_PAYLOAD);
        };
        metrics.bytes_in.inc_by(text.len() as u64);
        match inbound::parse_client_message(&text) {
            Ok(message) => {
                match &message {
                    ClientMessage::ClientEvent(_) => metrics.client_events_in.inc(),
                    _ => metrics.protocol_in.inc(),
                }
                state.node.handle(session, message).await
            }
            Err(e) => {
                metrics.protocol_in.inc();
                session.send_error(None, &e.to_string())
            }
        }
    }
}

fn close_code_for(e: &WebSocketError) -> u16 {
    match e {
        WebSocketError::FrameTooLarge => close::MESSAGE_TOO_BIG,
        WebSocketError::InvalidUTF8 => close::INVALID_PAYLOAD,
        WebSocketError::UnexpectedEOF | WebSocketError::IoError(_) | WebSocketError::ConnectionClosed => ABNORMAL,
        _ => close::PROTOCOL_ERROR,
    }
}

/// Answer a client's close with its own code (1000 when it gave none or an invalid one).
fn echo_close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if (1000..5000).contains(&code) && ![1004, 1005, 1006, 1015].contains(&code) {
                code
            } else {
                1000
            }
        }
        _ => 1000,
    }
}

struct WriterContext {
    write: WriteHalf<Io>,
    outbox: ConnectionOutbox,
    conn: ConnectionHandle,
    last_seen: Arc<AtomicU64>,
    activity: Duration,
    shutdown: CancellationToken,
    grace: Duration,
    metrics: AppMetrics,
    /// A write failed or was abandoned half-way: nothing more can be written.
    broken: bool,
    /// Frames and bytes written but not yet added to the metrics.
    unreported: (u64, u64),
}

/// Idle detection: ping after `activity` of silence, close with 4201 if still silent after
/// `pong_timeout` more.
struct IdleTimer {
    activity_ms: u64,
    pong_timeout_ms: u64,
    ping_sent_at: Option<u64>,
}

impl IdleTimer {
    fn new(activity: Duration) -> Self {
        let activity_ms = activity.as_millis() as u64;
        Self {
            activity_ms,
            pong_timeout_ms: activity_ms.min(30_000),
            ping_sent_at: None,
        }
    }

    /// What to do at `now` given the last inbound frame time, and when to check again.
    fn check(&mut self, now: u64, last_seen: u64) -> (IdleAction, u64) {
        if let Some(sent) = self.ping_sent_at {
            if last_seen >= sent {
                self.ping_sent_at = None;
            } else if now >= sent + self.pong_timeout_ms {
                return (IdleAction::Close, now + 1000);
            } else {
                return (IdleAction::Nothing, sent + self.pong_timeout_ms);
            }
        }
        let due = last_seen + self.activity_ms;
        if now >= due {
            self.ping_sent_at = Some(now);
            (IdleAction::Ping, now + self.pong_timeout_ms)
        } else {
            (IdleAction::Nothing, due)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum IdleAction {
    Nothing,
    Ping,
    Close,
}

async fn write_loop(mut cx: WriterContext) {
    let mut idle = IdleTimer::new(cx.activity);
    // Every future below is created once: re-creating a cancellation future per frame would
    // take the shared shutdown token's lock on every write of every connection.
    let closing = cx.outbox.closing.clone().cancelled_owned();
    let shutdown = cx.shutdown.clone().cancelled_owned();
    let idle_check = tokio::time::sleep(cx.activity);
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(closing, shutdown, idle_check, drain);
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut closing => break,
            frame = cx.outbox.frames.recv() => {
                let Some(frame) = frame else { break };
                if write_batch(&mut cx, frame).await.is_err() {
                    cx.conn.close(ABNORMAL);
                    break;
                }
            }
            _ = &mut idle_check => {
                let now = now_ms();
                let (action, next) = idle.check(now, cx.last_seen.load(Ordering::Relaxed));
                idle_check.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(next.saturating_sub(now)));
                match action {
                    IdleAction::Nothing => {}
                    IdleAction::Ping => { cx.conn.send(ping_frame().clone()); }
                    IdleAction::Close => cx.conn.close(close::PONG_TIMEOUT),
                }
            }
            _ = &mut shutdown, if !draining => {
                draining = true;
                drain.as_mut().reset(tokio::time::Instant::now() + spread_delay(cx.grace));
            }
            _ = &mut drain, if draining => cx.conn.close(close::RECONNECT),
        }
    }
    finish(&mut cx).await;
}

/// The server's `pusher:ping` frame, encoded once per process.
fn ping_frame() -> &'static Bytes {
    static PING: OnceLock<Bytes> = OnceLock::new();
    PING.get_or_init(|| frame::text(&outbound::ping()))
}

/// A random point in the first 80% of the grace period, so a draining node's clients do not
/// all reconnect to the other nodes at the same instant.
fn spread_delay(grace: Duration) -> Duration {
    grace.mul_f64(0.8 * rand::random::<f64>())
}

/// Write `first` plus whatever else is already queued, as one write.
async fn write_batch(cx: &mut WriterContext, first: Bytes) -> std::io::Result<()> {
    let mut frames = 1u64;
    let bytes = if cx.outbox.frames.is_empty() {
        write_unless_closed(cx, &first).await?;
        first.len()
    } else {
        let mut buf = BytesMut::with_capacity(MAX_BATCH_BYTES.min(first.len() * 4));
        buf.extend_from_slice(&first);
        while buf.len() < MAX_BATCH_BYTES {
            let Ok(next) = cx.outbox.frames.try_recv() else { break };
            buf.extend_from_slice(&next);
            frames += 1;
        }
        write_unless_closed(cx, &buf).await?;
        buf.len()
    };
    cx.unreported.0 += frames;
    cx.unreported.1 += bytes as u64;
    // Shared counters are touched once per burst, not once per write, under load.
    if cx.unreported.0 >= 1024 || cx.outbox.frames.is_empty() {
        report_writes(cx);
    }
    Ok(())
}

fn report_writes(cx: &mut WriterContext) {
    let (frames, bytes) = std::mem::take(&mut cx.unreported);
    if frames > 0 {
        cx.metrics.messages_out.inc_by(frames);
        cx.metrics.bytes_out.inc_by(bytes);
    }
}

/// Write, but give up at once if the connection is closed meanwhile (a slow consumer blocks the
/// write; its 4100 must not wait for the write timeout). A write given up half-way leaves the
/// stream unusable, so no close frame follows it.
async fn write_unless_closed(cx: &mut WriterContext, bytes: &[u8]) -> std::io::Result<()> {
    let result = tokio::select! {
        result = write_timed(&mut cx.write, bytes) => result,
        _ = cx.outbox.closing.cancelled() => Err(std::io::Error::other("closed while writing")),
    };
    if result.is_err() {
        cx.broken = true;
    }
    result
}

async fn write_timed<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")),
    }
}

/// Flush what is queued (unless the client is the problem), then the close frame.
async fn finish(cx: &mut WriterContext) {
    report_writes(cx);
    let code = cx.conn.close_code().unwrap_or(ABNORMAL);
    if code == ABNORMAL || cx.broken {
        let _ = tokio::time::timeout(Duration::from_millis(100), cx.write.shutdown()).await;
        return;
    }
    if code != close::OVER_CAPACITY {
        while let Ok(frame) = cx.outbox.frames.try_recv() {
            if write_timed(&mut cx.write, &frame).await.is_err() {
                return;
            }
        }
    }
    let reason = close_reason(code);
    let _ = write_timed(&mut cx.write, &frame::close(code, reason)).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, cx.write.shutdown()).await;
}

fn close_reason(code: u16) -> &'static str {
    match code {
        close::OVER_CAPACITY => "over capacity: client too slow to keep up",
        close::RECONNECT => "server shutting down, reconnect",
        close::PONG_TIMEOUT => "pong not received",
        close::MESSAGE_TOO_BIG => "frame too large",
        close::INVALID_PAYLOAD => "invalid UTF-8",
        close::UNSUPPORTED_DATA => "binary frames are not supported",
        close::PROTOCOL_ERROR => "websocket protocol error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timer_pings_then_closes_without_answer() {
        let mut t = IdleTimer::new(Duration::from_secs(2));
        assert_eq!(t.check(1000, 0), (IdleAction::Nothing, 2000));
        assert_eq!(t.check(2000, 0), (IdleAction::Ping, 4000));
        assert_eq!(t.check(3000, 0).0, IdleAction::Nothing);
        assert_eq!(t.check(4000, 0).0, IdleAction::Close);
    }

    #[test]
    fn idle_timer_resets_when_the_client_answers() {
        let mut t = IdleTimer::new(Duration::from_secs(2));
        assert_eq!(t.check(2000, 0).0, IdleAction::Ping);
        assert_eq!(t.check(3000, 2500), (IdleAction::Nothing, 4500));
        assert_eq!(t.check(4500, 2500).0, IdleAction::Ping);
    }

    #[test]
    fn close_echo_keeps_valid_codes_only() {
        assert_eq!(echo_close_code(&4000u16.to_be_bytes()), 4000);
        assert_eq!(echo_close_code(&1006u16.to_be_bytes()), 1000);
        assert_eq!(echo_close_code(&[]), 1000);
        assert_eq!(echo_close_code(&[3]), 1000);
    }
}
