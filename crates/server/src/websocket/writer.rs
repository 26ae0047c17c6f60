//! The writer side of a connection: it owns the socket's write half, drains the bounded
//! queue (coalescing whatever is queued into one write), pings idle clients, spreads the
//! closes of a draining node, and writes the close frame. Frames arrive already encoded, so
//! the writer never touches JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrocast_broker::unix_micros;
use ferrocast_broker::{frame, ConnectionHandle};
use ferrocast_broker::{ConnectionOutbox, Outgoing};
use ferrocast_protocol::codes::close;
use ferrocast_protocol::outbound;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{now_ms, ABNORMAL, WRITE_TIMEOUT};
use crate::metrics::AppMetrics;
use crate::net::ClientWrite;

/// Upper bound of bytes coalesced into one write.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Once a connection is closing: how long a write in progress may still take, and then the
/// close frame. A slow-but-alive client gets to see its close code (4100); a stuck one is cut
/// off after this bound.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct WriterContext {
    pub(super) write: ClientWrite,
    pub(super) outbox: ConnectionOutbox,
    pub(super) conn: ConnectionHandle,
    pub(super) last_seen: Arc<AtomicU64>,
    pub(super) activity: Duration,
    pub(super) shutdown: CancellationToken,
    pub(super) grace: Duration,
    pub(super) metrics: AppMetrics,
    /// A write failed or was abandoned half-way: nothing more can be written.
    pub(super) broken: bool,
    /// Frames and bytes written but not yet added to the metrics.
    pub(super) unreported: (u64, u64),
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

pub(super) async fn write_loop(mut cx: WriterContext) {
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

/// Write `first` plus whatever else is already queued, as one write. The publish-to-socket
/// latency is sampled once per write, from its oldest frame.
async fn write_batch(cx: &mut WriterContext, first: Outgoing) -> std::io::Result<()> {
    let published_at_us = first.published_at_us;
    let mut frames = 1u64;
    let bytes = if cx.outbox.frames.is_empty() {
        cx.conn.taken(first.len());
        write_unless_closed(cx, &first).await?;
        first.len()
    } else {
        let mut buf = BytesMut::with_capacity(MAX_BATCH_BYTES.min(first.len() * 4));
        buf.extend_from_slice(&first);
        drop(first);
        while buf.len() < MAX_BATCH_BYTES {
            let Ok(next) = cx.outbox.frames.try_recv() else { break };
            buf.extend_from_slice(&next);
            frames += 1;
        }
        cx.conn.taken(buf.len());
        write_unless_closed(cx, &buf).await?;
        buf.len()
    };
    if published_at_us > 0 {
        let latency_us = unix_micros().saturating_sub(published_at_us);
        cx.metrics.publish_to_socket.observe(latency_us as f64 / 1e6);
    }
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

/// Write; if the connection is closed meanwhile (a slow consumer blocks the write), a slow
/// consumer's queue is freed at once and the write in progress gets [`CLOSE_WRITE_TIMEOUT`]
/// more to finish, so that the close frame can follow it (unless the peer is already gone:
/// 1006). A write given up half-way leaves the stream unusable: no close frame follows it.
async fn write_unless_closed(cx: &mut WriterContext, bytes: &[u8]) -> std::io::Result<()> {
    let write = write_timed(&mut cx.write, bytes);
    tokio::pin!(write);
    let result = tokio::select! {
        result = &mut write => result,
        _ = cx.outbox.closing.cancelled() => match cx.conn.close_code() {
            // The peer is gone: nothing more can reach it.
            Some(ABNORMAL) | None => Err(std::io::Error::other("peer gone while writing")),
            code => {
                if code == Some(close::OVER_CAPACITY) {
                    discard_queue(&mut cx.outbox, &cx.conn);
                }
                match tokio::time::timeout(CLOSE_WRITE_TIMEOUT, &mut write).await {
                    Ok(result) => result,
                    Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "closed while writing")),
                }
            }
        },
    };
    if result.is_err() {
        cx.broken = true;
    }
    result
}

/// Free a closing slow consumer's queue now.
fn discard_queue(outbox: &mut ConnectionOutbox, conn: &ConnectionHandle) {
    let bytes = outbox.discard();
    conn.taken(bytes);
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
    if code == close::OVER_CAPACITY || code == ABNORMAL || cx.broken {
        discard_queue(&mut cx.outbox, &cx.conn);
    }
    if code == ABNORMAL || cx.broken {
        let _ = tokio::time::timeout(Duration::from_millis(100), cx.write.shutdown()).await;
        return;
    }
    if code != close::OVER_CAPACITY {
        while let Ok(frame) = cx.outbox.frames.try_recv() {
            cx.conn.taken(frame.len());
            if write_timed(&mut cx.write, &frame).await.is_err() {
                return;
            }
        }
    }
    let reason = close_reason(code);
    let close_frame = frame::close(code, reason);
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, cx.write.write_all(&close_frame)).await;
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, cx.write.shutdown()).await;
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
        // Sockets already admitted are closed with 4009 only by the app's policy: its
        // terminate_connections call, or its authorized-connections timeout (whose
        // pusher:error says which).
        close::UNAUTHORIZED => "terminated by app",
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
}
