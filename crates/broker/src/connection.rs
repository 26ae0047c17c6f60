//! The handle a node uses to queue frames for one socket.
//!
//! Each socket has a bounded queue drained by its writer. A recipient whose queue is full has
//! fallen behind the publish rate: rather than buffer without limit or silently skip it, the
//! node asks the socket to close with 4100 ("over capacity", reconnect with backoff), and the
//! server counts it. Closing is signalled through a cancellation token so it works even when
//! the queue itself is full.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrocast_protocol::codes::close;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame queued for a socket, with when its message was published (Unix µs; 0 for frames
/// that answer the socket itself), so the writer can measure publish-to-socket latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub frame: Bytes,
    pub published_at_us: u64,
}

impl std::ops::Deref for Outgoing {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.frame
    }
}

#[derive(Debug)]
struct Shared {
    socket_id: Arc<str>,
    tx: mpsc::Sender<Outgoing>,
    closing: CancellationToken,
    close_code: AtomicU16,
}

/// Cheap to clone; every clone refers to the same socket.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Shared>);

/// The writer's side of a connection: the frames to write and the close signal.
#[derive(Debug)]
pub struct ConnectionOutbox {
    pub frames: mpsc::Receiver<Outgoing>,
    pub closing: CancellationToken,
}

impl ConnectionHandle {
    /// A handle and its outbox with room for `capacity` queued frames.
    pub fn new(socket_id: Arc<str>, capacity: usize) -> (Self, ConnectionOutbox) {
        let (tx, frames) = mpsc::channel(capacity.max(1));
        let closing = CancellationToken::new();
        let shared = Shared {
            socket_id,
            tx,
            closing: closing.clone(),
            close_code: AtomicU16::new(0),
        };
        (Self(Arc::new(shared)), ConnectionOutbox { frames, closing })
    }

    pub fn socket_id(&self) -> &str {
        &self.0.socket_id
    }

    pub fn socket_id_arc(&self) -> &Arc<str> {
        &self.0.socket_id
    }

    /// Queue a frame. A full queue closes the socket with 4100; returns false when the frame was
    /// not queued (full or already closing).
    pub fn send(&self, frame: Bytes) -> bool {
        self.send_published(frame, 0)
    }

    /// Queue a frame of a message published at `published_at_us` (Unix µs), as [`send`](Self::send).
    pub fn send_published(&self, frame: Bytes, published_at_us: u64) -> bool {
        // The close code doubles as a lock-free "closing" flag: this runs once per recipient
        // of every event, where the token's own check would take its lock.
        if self.0.close_code.load(Ordering::Relaxed) != 0 {
            return false;
        }
        match self.0.tx.try_send(Outgoing { frame, published_at_us }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(close::OVER_CAPACITY);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ask the writer to send a close frame with `code` and stop. The first code wins.
    pub fn close(&self, code: u16) {
        let _ = self
            .0
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.0.closing.cancel();
    }

    /// The code passed to the first [`close`](Self::close), if any.
    pub fn close_code(&self) -> Option<u16> {
        match self.0.close_code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Resolves once [`close`](Self::close) was called: lets the reader stop waiting for input.
    pub async fn closed(&self) {
        self.0.closing.cancelled().await
    }

    pub fn is_closing(&self) -> bool {
        self.0.close_code.load(Ordering::Acquire) != 0
    }

    /// Whether two handles refer to the same socket.
    pub fn same(&self, other: &ConnectionHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_closes_with_over_capacity() {
        let (h, mut out) = ConnectionHandle::new("1.1".into(), 2);
        assert!(h.send(Bytes::from_static(b"a")));
        assert!(h.send(Bytes::from_static(b"b")));
        assert!(!h.send(Bytes::from_static(b"c")));
        assert_eq!(h.close_code(), Some(close::OVER_CAPACITY));
        assert!(out.closing.is_cancelled());
        assert_eq!(out.frames.try_recv().unwrap().frame, Bytes::from_static(b"a"));
        assert!(!h.send(Bytes::from_static(b"d")), "no frames after closing");
    }

    #[test]
    fn first_close_code_wins() {
        let (h, _out) = ConnectionHandle::new("1.2".into(), 2);
        h.close(4201);
        h.close(4100);
        assert_eq!(h.close_code(), Some(4201));
    }
}
