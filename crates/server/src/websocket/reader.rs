//! The reader side of a connection: frames in, one at a time, to the node.
//!
//! Backpressure: before reading the next frame, the reader checks the connection's output
//! queue; while it is at or above its high watermark (half of `server.max_queued_bytes` or of
//! `server.max_queued_frames`) the reader stops reading until the writer has drained it to the
//! low watermark (a quarter of both).
//! A client that does not read its socket therefore cannot make the node generate replies
//! without bound: its own input waits in the kernel, and the TCP window stops it. The pause
//! ends when the queue drains or the connection closes (4100 over the byte bound, the write
//! timeout, or the idle timeout).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrocast_broker::{frame, Session};
use ferrocast_protocol::codes::close;
use ferrocast_protocol::inbound::{self, ClientMessage};
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};

use super::frame_reader::{FrameReader, Opcode};
use super::{now_ms, ABNORMAL};
use crate::metrics::AppMetrics;
use crate::state::ServerState;

/// Frames no larger than this are accepted whatever the app's payload limit.
const MIN_FRAME_BYTES: usize = 64 * 1024;

/// Largest frame (or reassembled message) this app's connections may send.
pub(super) fn max_frame_bytes(session: &Session) -> usize {
    let c = session.app.config();
    MIN_FRAME_BYTES.max(c.max_payload_bytes().max(c.max_member_bytes()).saturating_mul(4) + 4096)
}

/// Read until the client leaves, breaks the protocol, or the connection is closed from our
/// side. Every way out closes the connection handle with the code to send (or 1006).
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    state: &ServerState,
    mut frames: FrameReader<R>,
    session: &mut Session,
    last_seen: &AtomicU64,
    metrics: &AppMetrics,
) {
    let max = max_frame_bytes(session);
    let mut partial: Option<Vec<u8>> = None;
    let conn = session.conn.clone();
    // Boxed and made once: an idle socket carries 8 bytes for it, and the timer is not
    // registered again for every frame.
    let mut signin_timer = signin_deadline(session).map(|at| Box::pin(tokio::time::sleep_until(at)));
    loop {
        if conn.is_backlogged() {
            metrics.input_paused.inc();
            conn.wait_drained().await;
        }
        // Cleared once signed in; frames are handled only here, so no sign-in can race it.
        if signin_timer.is_some() && session.is_signed_in() {
            signin_timer = None;
        }
        let frame = tokio::select! {
            biased;
            _ = conn.closed() => return,
            _ = expired(&mut signin_timer) => return close_unsigned(session),
            frame = frames.read_frame() => frame,
        };
        last_seen.store(now_ms(), Ordering::Relaxed);
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return conn.close(e.close_code().unwrap_or(ABNORMAL)),
        };
        let text = match frame.opcode {
            // RFC 6455 5.4: a new data frame while a fragmented message is open is an error.
            Opcode::Text | Opcode::Binary if partial.is_some() => return conn.close(close::PROTOCOL_ERROR),
            Opcode::Text if frame.fin => frame.payload.to_vec(),
            Opcode::Text => {
                partial = Some(frame.payload.to_vec());
                continue;
            }
            Opcode::Continuation => {
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
            Opcode::Binary => return conn.close(close::UNSUPPORTED_DATA),
            Opcode::Close => return conn.close(echo_close_code(&frame.payload)),
            Opcode::Ping => {
                conn.send(frame::pong(&frame.payload));
                continue;
            }
            Opcode::Pong => continue,
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
                // Boxed: handling a frame may take a deep future (subscribe, presence); an idle
                // connection should not carry its size.
                Box::pin(state.node.handle(session, message)).await
            }
            Err(e) => {
                metrics.protocol_in.inc();
                session.send_error(None, &e.to_string())
            }
        }
    }
}

/// When a socket of an app with `enable_user_authentication` ("authorized connections") must
/// have signed in: `user_authentication_timeout_s` after it was admitted. `None` for other apps.
fn signin_deadline(session: &Session) -> Option<Instant> {
    let c = session.app.config();
    c.enable_user_authentication
        .then(|| Instant::now() + Duration::from_secs(c.user_authentication_timeout_s))
}

/// Wait for `timer`; forever without one.
async fn expired(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Close a socket that did not sign in in time: `pusher:error` 4009, then close 4009 (pusher-js
/// then stays offline rather than reconnecting in a loop). Subscribing to a private channel
/// does not count as signing in.
fn close_unsigned(session: &Session) {
    let timeout = session.app.config().user_authentication_timeout_s;
    let message = format!("not signed in within {timeout} s: this app only accepts signed-in connections");
    session.send_error(Some(close::UNAUTHORIZED), &message);
    session.conn.close(close::UNAUTHORIZED);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_echo_keeps_valid_codes_only() {
        assert_eq!(echo_close_code(&4000u16.to_be_bytes()), 4000);
        assert_eq!(echo_close_code(&1006u16.to_be_bytes()), 1000);
        assert_eq!(echo_close_code(&[]), 1000);
        assert_eq!(echo_close_code(&[3]), 1000);
    }
}
