//! Accepting connections without spinning and without running the node out of descriptors.
//!
//! When `accept` fails (EMFILE, ENFILE, ENOBUFS...) the loop sleeps 10 ms doubling to 1 s,
//! reset by the next success, and logs at most once every 5 s with the number of errors it
//! did not log. Over the cap of open connections a new connection is accepted and closed at
//! once: the kernel backlog keeps draining and the descriptor reserve stays free.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Open connections of one listener against its cap.
pub struct OpenConnections {
    open: AtomicUsize,
    cap: usize,
    gauge: Option<IntGauge>,
}

/// One open connection, counted until dropped.
pub struct OpenSlot(Arc<OpenConnections>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(g) = &self.0.gauge {
            g.dec();
        }
    }
}

impl OpenConnections {
    pub fn new(cap: usize, gauge: Option<IntGauge>) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            cap,
            gauge,
        })
    }

    /// A slot, or `None` when the listener is at its cap.
    pub fn try_open(self: &Arc<Self>) -> Option<OpenSlot> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(g) = &self.gauge {
            g.inc();
        }
        Some(OpenSlot(self.clone()))
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

/// Exponential backoff and rate-limited logging of accept errors.
struct Backoff {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Backoff {
    fn new() -> Self {
        Self {
            delay: FIRST_BACKOFF,
            last_log: None,
            suppressed: 0,
        }
    }

    /// Record a failure; returns how long to wait before the next accept.
    fn failed(&mut self, listener: &str, error: &std::io::Error) -> Duration {
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            warn!(
                listener,
                %error,
                suppressed = self.suppressed,
                retry_in_ms = self.delay.as_millis() as u64,
                "accept failed (errors since the last report: suppressed)"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
        wait
    }

    fn succeeded(&mut self) {
        self.delay = FIRST_BACKOFF;
    }
}

/// Accept on `listener` until `shutdown`, handing each connection to `on_accept`.
pub async fn accept_loop(
    listener: &TcpListener,
    name: &'static str,
    shutdown: CancellationToken,
    errors: IntCounter,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    let mut backoff = Backoff::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                on_accept(stream, peer);
            }
            Err(e) => {
                errors.inc();
                let wait = backoff.failed(name, &e);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_enforced_and_slots_are_returned() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let open = OpenConnections::new(2, Some(gauge.clone()));
        let a = open.try_open().unwrap();
        let _b = open.try_open().unwrap();
        assert!(open.try_open().is_none());
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        assert!(open.try_open().is_some());
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::new();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let waits: Vec<_> = (0..10).map(|_| b.failed("t", &e).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(b.suppressed, 9, "only the first error of the burst is logged");
        b.succeeded();
        assert_eq!(b.failed("t", &e).as_millis(), 10);
    }
}
