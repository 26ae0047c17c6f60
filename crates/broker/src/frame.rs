//! WebSocket text frames encoded once per message.
//!
//! Server → client frames are never masked (RFC 6455 §5.1), so the complete frame, header
//! included, is identical for every recipient. Building it once and handing out clones of the
//! same [`Bytes`] is what keeps fan-out free of per-recipient work.

use bytes::{BufMut, Bytes, BytesMut};

const FIN_TEXT: u8 = 0x81;
const FIN_CLOSE: u8 = 0x88;
const FIN_PONG: u8 = 0x8A;

fn put_header(buf: &mut BytesMut, first: u8, len: usize) {
    buf.put_u8(first);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        buf.put_u8(126);
        buf.put_u16(len as u16);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
}

fn frame(first: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(payload.len() + 10);
    put_header(&mut buf, first, payload.len());
    buf.put_slice(payload);
    buf.freeze()
}

/// A complete, unmasked text frame carrying `json`.
pub fn text(json: &str) -> Bytes {
    frame(FIN_TEXT, json.as_bytes())
}

/// A close frame with `code` and a reason (truncated to fit the 125-byte control frame limit).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(FIN_CLOSE, &payload)
}

/// A pong control frame echoing a ping's payload (at most 125 bytes by the RFC).
pub fn pong(payload: &[u8]) -> Bytes {
    frame(FIN_PONG, &payload[..payload.len().min(125)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_frame_has_two_byte_header() {
        let f = text("{}");
        assert_eq!(&f[..], &[0x81, 2, b'{', b'}']);
    }

    #[test]
    fn medium_and_long_lengths_use_extended_fields() {
        let medium = "x".repeat(300);
        let f = text(&medium);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.len(), 304);
        let long = "y".repeat(70_000);
        let f = text(&long);
        assert_eq!(f[1], 127);
        assert_eq!(u64::from_be_bytes(f[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn close_frame_carries_code_and_bounded_reason() {
        let f = close(4201, "pong timeout");
        assert_eq!(f[0], 0x88);
        assert_eq!(&f[2..4], &4201u16.to_be_bytes());
        assert_eq!(&f[4..], b"pong timeout");
        let f = close(4100, &"é".repeat(200));
        assert!(f[1] as usize <= 125);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }
}
