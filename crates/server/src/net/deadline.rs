//! The deadlines of one HTTP connection, kept by a watchdog beside hyper.
//!
//! hyper 1's own `header_read_timeout` starts its timer when it begins waiting for a request
//! head, which on a kept-alive connection is the moment the previous response was written: it
//! cannot tell "idle between requests" from "slowly sending headers", and it knows nothing of
//! the PROXY header or the TLS handshake that come before it. So the phases are tracked here:
//!
//! - `header`: from accept (PROXY header and TLS handshake included), or from the first byte
//!   of a later request, the request head must be complete within `request_header_timeout_s`.
//! - request in progress: no connection deadline (the REST body has its own, see `http`).
//! - `keep_alive`: after a response, the connection may stay idle `keep_alive_timeout_s`.
//!
//! The phase and its deadline live in one atomic word shared by the IO wrapper (first byte
//! after idle), the service (request start and end) and the watchdog, which drops the
//! connection, closing the socket, when the deadline of the current phase passes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::EdgeMetrics;

/// The configured deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub body: Duration,
    pub keep_alive: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header = 0,
    Request = 1,
    Idle = 2,
}

const PHASE_SHIFT: u32 = 62;
const DEADLINE_MASK: u64 = (1 << PHASE_SHIFT) - 1;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn to_ms(at: Instant) -> u64 {
    // Rounded up: a deadline never fires before its time.
    (at.saturating_duration_since(epoch()).as_micros().div_ceil(1000) as u64) & DEADLINE_MASK
}

/// The phase of one connection and when it ends.
pub struct Clock {
    state: AtomicU64,
    /// Wakes the watchdog when a deadline moves earlier than the one it sleeps on.
    moved: Notify,
    deadlines: Deadlines,
}

impl Clock {
    /// A connection accepted at some point whose headers are due by `header_deadline`.
    pub fn new(deadlines: Deadlines, header_deadline: Instant) -> Self {
        Self {
            state: AtomicU64::new(Self::pack(Phase::Header, header_deadline)),
            moved: Notify::new(),
            deadlines,
        }
    }

    fn pack(phase: Phase, deadline: Instant) -> u64 {
        ((phase as u64) << PHASE_SHIFT) | to_ms(deadline)
    }

    fn load(&self) -> (Phase, Instant) {
        let word = self.state.load(Ordering::Acquire);
        let phase = match word >> PHASE_SHIFT {
            0 => Phase::Header,
            1 => Phase::Request,
            _ => Phase::Idle,
        };
        (phase, epoch() + Duration::from_millis(word & DEADLINE_MASK))
    }

    fn set(&self, phase: Phase, deadline: Instant) {
        let old = self.state.swap(Self::pack(phase, deadline), Ordering::AcqRel);
        if to_ms(deadline) < old & DEADLINE_MASK {
            self.moved.notify_one();
        }
    }

    /// A request head is complete: the connection has no deadline until the response (the
    /// watchdog rechecks after `body + keep_alive`).
    pub fn request_started(&self) {
        let recheck = self.deadlines.body + self.deadlines.keep_alive;
        self.set(Phase::Request, Instant::now() + recheck);
    }

    /// The response is ready: the connection may now idle for `keep_alive`.
    pub fn request_finished(&self) {
        self.set(Phase::Idle, Instant::now() + self.deadlines.keep_alive);
    }

    /// Bytes arrived: if the connection was idle, a new request's header deadline starts.
    fn bytes_arrived(&self) {
        let word = self.state.load(Ordering::Acquire);
        if word >> PHASE_SHIFT == Phase::Idle as u64 {
            self.set(Phase::Header, Instant::now() + self.deadlines.header);
        }
    }
}

/// Drive `conn` until it ends or the deadline of the connection's phase passes (then it is
/// dropped, which closes the socket, the timeout is counted, and `None` returned).
pub async fn watch<F: Future>(clock: &Clock, conn: F, metrics: &EdgeMetrics) -> Option<F::Output> {
    tokio::pin!(conn);
    loop {
        let (phase, deadline) = clock.load();
        // A request running past its recheck time: look again a keep-alive period later.
        let wake = if phase == Phase::Request && deadline <= Instant::now() {
            Instant::now() + clock.deadlines.keep_alive
        } else {
            deadline
        };
        tokio::select! {
            out = &mut conn => return Some(out),
            _ = clock.moved.notified() => {}
            _ = tokio::time::sleep_until(wake) => {
                let (phase, deadline) = clock.load();
                if phase != Phase::Request && Instant::now() >= deadline {
                    match phase {
                        Phase::Idle => metrics.keep_alive_timeouts.inc(),
                        _ => metrics.header_timeouts.inc(),
                    }
                    return None;
                }
            }
        }
    }
}

/// A connection's stream, telling its clock when bytes arrive.
pub struct Watched<S> {
    inner: S,
    clock: std::sync::Arc<Clock>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, clock: std::sync::Arc<Clock>) -> Self {
        Self { inner, clock }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn deadlines() -> Deadlines {
        Deadlines {
            header: Duration::from_secs(2),
            body: Duration::from_secs(3),
            keep_alive: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_move_the_deadline() {
        let start = Instant::now();
        let clock = Clock::new(deadlines(), start + Duration::from_secs(2));
        assert_eq!(clock.load().0, Phase::Header);
        clock.request_started();
        assert_eq!(clock.load().0, Phase::Request);
        clock.request_finished();
        let (phase, at) = clock.load();
        assert_eq!(phase, Phase::Idle);
        assert!(at >= start + Duration::from_secs(5));
        clock.bytes_arrived();
        assert_eq!(clock.load().0, Phase::Header);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_hits_the_header_deadline_and_idle_the_keep_alive_one() {
        let m = crate::metrics::Metrics::new();
        let clock = Arc::new(Clock::new(deadlines(), Instant::now() + Duration::from_secs(2)));
        let out = watch(&clock, std::future::pending::<()>(), &m.edge).await;
        assert!(out.is_none());
        assert_eq!(m.edge.header_timeouts.get(), 1);
        clock.request_finished();
        let started = Instant::now();
        assert!(watch(&clock, std::future::pending::<()>(), &m.edge).await.is_none());
        assert_eq!(m.edge.keep_alive_timeouts.get(), 1);
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_is_not_cut() {
        let m = crate::metrics::Metrics::new();
        let clock = Arc::new(Clock::new(deadlines(), Instant::now() + Duration::from_secs(2)));
        clock.request_started();
        let long = tokio::time::sleep(Duration::from_secs(60));
        assert!(watch(&clock, long, &m.edge).await.is_some());
        assert_eq!(m.edge.header_timeouts.get() + m.edge.keep_alive_timeouts.get(), 0);
    }
}
