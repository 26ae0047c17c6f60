//! The handle a node uses to queue frames for one socket.
//!
//! Each socket has a queue drained by its writer, bounded twice: in frames (the channel's
//! capacity) and in bytes (an atomic counter: added on send, subtracted when the writer takes
//! frames). Frames alone do not bound memory: a client that provokes 100 KB replies and never
//! reads would make 4,096 frames cost 400 MB. A recipient over either bound has fallen behind:
//! rather than buffer without limit or silently skip it, the node asks the socket to close with
//! 4100 ("over capacity", reconnect with backoff), and the server counts it. Closing is
//! signalled through a cancellation token so it works even when the queue itself is full.
//!
//! The byte count also drives backpressure: while it is at or above [`high
//! watermark`](ConnectionHandle::is_backlogged) the socket's reader stops reading input, so a
//! client that does not read cannot make the node generate replies; the writer wakes it once
//! the count drops below the low watermark.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ferrocast_protocol::codes::close;
use tokio::sync::{mpsc, Notify};
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
    /// Bytes of the frames in the queue (sent, not yet taken by the writer).
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// The reader waits for the queue to drain (see [`ConnectionHandle::wait_drained`]).
    paused: AtomicBool,
    drained: Notify,
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

impl ConnectionOutbox {
    /// Drop every queued frame now and refuse new ones: a closing slow consumer's backlog is
    /// freed at once, not after its last write times out. Returns the bytes dropped.
    pub fn discard(&mut self) -> usize {
        self.frames.close();
        let mut bytes = 0;
        while let Ok(frame) = self.frames.try_recv() {
            bytes += frame.len();
        }
        bytes
    }
}

impl ConnectionHandle {
    /// A handle and its outbox with room for `capacity` queued frames, unbounded in bytes
    /// (tests and benches; a node uses [`bounded`](Self::bounded)).
    pub fn new(socket_id: Arc<str>, capacity: usize) -> (Self, ConnectionOutbox) {
        Self::bounded(socket_id, capacity, usize::MAX)
    }

    /// A handle and its outbox with room for `max_frames` queued frames of `max_bytes` in all.
    pub fn bounded(socket_id: Arc<str>, max_frames: usize, max_bytes: usize) -> (Self, ConnectionOutbox) {
        let (tx, frames) = mpsc::channel(max_frames.max(1));
        let closing = CancellationToken::new();
        let shared = Shared {
            socket_id,
            tx,
            closing: closing.clone(),
            close_code: AtomicU16::new(0),
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            paused: AtomicBool::new(false),
            drained: Notify::new(),
        };
        (Self(Arc::new(shared)), ConnectionOutbox { frames, closing })
    }

    pub fn socket_id(&self) -> &str {
        &self.0.socket_id
    }

    pub fn socket_id_arc(&self) -> &Arc<str> {
        &self.0.socket_id
    }

    /// Queue a frame. A queue over its frame or byte bound closes the socket with 4100; returns
    /// false when the frame was not queued (full or already closing).
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
        // The one extra atomic of the hot path. Nothing is subtracted on refusal: the socket
        // is closing and its writer discards the queue.
        let len = frame.len();
        let queued = self.0.queued_bytes.fetch_add(len, Ordering::AcqRel).saturating_add(len);
        if queued > self.0.max_bytes {
            self.close(close::OVER_CAPACITY);
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

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.0.queued_bytes.load(Ordering::Acquire)
    }

    /// Frames queued and not yet taken by the writer.
    fn queued_frames(&self) -> usize {
        self.0.tx.max_capacity() - self.0.tx.capacity()
    }

    /// Whether the queue is at or above the high watermark (half its byte or frame bound): the
    /// reader should stop reading input until [`wait_drained`](Self::wait_drained) returns.
    /// Frames count too, so a flood of tiny replies (pongs) pauses input rather than ending in
    /// 4100.
    pub fn is_backlogged(&self) -> bool {
        self.queued_bytes() >= self.0.max_bytes / 2 || self.queued_frames() >= (self.0.tx.max_capacity() / 2).max(1)
    }

    /// Whether the queue is at or below the low watermark (a quarter of both bounds).
    fn is_drained(&self) -> bool {
        self.queued_bytes() <= self.0.max_bytes / 4 && self.queued_frames() <= self.0.tx.max_capacity() / 4
    }

    /// Wait until the queue is at or below the low watermark or the connection is closing.
    /// Used by the reader while [`is_backlogged`](Self::is_backlogged).
    pub async fn wait_drained(&self) {
        self.0.paused.store(true, Ordering::SeqCst);
        while !self.is_drained() && !self.is_closing() {
            // A wake-up that raced with the check above left a permit: the loop re-checks.
            tokio::select! {
                _ = self.0.drained.notified() => {}
                _ = self.0.closing.cancelled() => break,
            }
        }
        self.0.paused.store(false, Ordering::SeqCst);
    }

    /// The writer took frames of `bytes` in all off the queue; wakes a paused reader once the
    /// queue is at or below the low watermark.
    pub fn taken(&self, bytes: usize) {
        self.0.queued_bytes.fetch_sub(bytes, Ordering::SeqCst);
        if self.0.paused.load(Ordering::SeqCst) && self.is_drained() {
            self.0.drained.notify_one();
        }
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
    fn byte_bound_closes_with_over_capacity() {
        let (h, mut out) = ConnectionHandle::bounded("1.3".into(), 100, 10);
        assert!(h.send(Bytes::from_static(b"12345")));
        assert!(h.send(Bytes::from_static(b"67890")));
        assert_eq!(h.queued_bytes(), 10);
        assert!(!h.send(Bytes::from_static(b"x")), "11 bytes > 10");
        assert_eq!(h.close_code(), Some(close::OVER_CAPACITY));
        assert_eq!(out.discard(), 10, "the queued frames are dropped at once");
        assert!(out.frames.try_recv().is_err());
    }

    #[test]
    fn taking_frames_frees_their_bytes() {
        let (h, mut out) = ConnectionHandle::bounded("1.4".into(), 100, 10);
        for _ in 0..3 {
            assert!(h.send(Bytes::from_static(b"abcd")));
            let frame = out.frames.try_recv().unwrap();
            h.taken(frame.len());
        }
        assert_eq!(h.queued_bytes(), 0);
        assert_eq!(h.close_code(), None, "12 bytes sent, never more than 4 queued");
    }

    #[test]
    fn watermarks_are_half_and_a_quarter_of_the_bound() {
        let (h, _out) = ConnectionHandle::bounded("1.5".into(), 100, 100);
        assert!(h.send(Bytes::from(vec![b'a'; 49])));
        assert!(!h.is_backlogged());
        assert!(h.send(Bytes::from_static(b"b")));
        assert!(h.is_backlogged(), "50 of 100 bytes");
    }

    #[test]
    fn many_small_frames_are_a_backlog_too() {
        let (h, _out) = ConnectionHandle::bounded("1.8".into(), 8, 1 << 20);
        for _ in 0..3 {
            assert!(h.send(Bytes::from_static(b"p")));
        }
        assert!(!h.is_backlogged());
        assert!(h.send(Bytes::from_static(b"p")));
        assert!(h.is_backlogged(), "4 of 8 frames");
    }

    #[tokio::test]
    async fn a_paused_reader_resumes_below_the_low_watermark() {
        let (h, mut out) = ConnectionHandle::bounded("1.6".into(), 100, 100);
        for _ in 0..6 {
            assert!(h.send(Bytes::from(vec![b'a'; 10])));
        }
        assert!(h.is_backlogged());
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait_drained().await }
        });
        tokio::task::yield_now().await;
        // 60 → 30 bytes: above the low watermark (25), still paused.
        for _ in 0..3 {
            let f = out.frames.recv().await.unwrap();
            h.taken(f.len());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let f = out.frames.recv().await.unwrap();
        h.taken(f.len());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken below the low watermark")
            .unwrap();
    }

    #[tokio::test]
    async fn a_paused_reader_resumes_when_the_connection_closes() {
        let (h, _out) = ConnectionHandle::bounded("1.7".into(), 100, 100);
        assert!(h.send(Bytes::from(vec![b'a'; 60])));
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.wait_drained().await }
        });
        tokio::task::yield_now().await;
        h.close(4100);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("closing ends the pause")
            .unwrap();
    }

    #[test]
    fn first_close_code_wins() {
        let (h, _out) = ConnectionHandle::new("1.2".into(), 2);
        h.close(4201);
        h.close(4100);
        assert_eq!(h.close_code(), Some(4201));
    }
}
