//! Reading client frames (RFC 6455 §5) with a buffer that stays tiny while a socket is idle.
//!
//! fastwebsockets performs the upgrade; frames are read here because its reader keeps an 8 KiB
//! buffer per connection for the connection's whole life, and idle connections are most of
//! what a Pusher server holds. This reader grows its buffer to the frame being read and gives
//! the memory back once a large frame has been consumed.

use bytes::{Buf, BytesMut};
use ferrocast_protocol::codes::close;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Smallest read: enough for a typical client frame in one system call.
const READ_CHUNK: usize = 256;
/// A buffer above this is dropped once empty instead of being kept for the next frame.
const KEEP_CAPACITY: usize = 4096;

/// Frame opcodes a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn parse(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One unmasked frame.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: BytesMut,
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame larger than {0} bytes")]
    TooLarge(usize),
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
}

impl FrameError {
    /// The close code to answer with; `None` when the peer is gone.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            FrameError::Closed => None,
            FrameError::TooLarge(_) => Some(close::MESSAGE_TOO_BIG),
            FrameError::Protocol(_) => Some(close::PROTOCOL_ERROR),
        }
    }
}

/// Reads frames from `io`, refusing any larger than `max` bytes.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `pending` holds bytes already read past the HTTP upgrade, if any.
    pub fn new(io: R, pending: &[u8], max: usize) -> Self {
        Self {
            io,
            buf: BytesMut::from(pending),
            max,
        }
    }

    async fn fill(&mut self, needed: usize) -> Result<(), FrameError> {
        while self.buf.len() < needed {
            self.buf.reserve((needed - self.buf.len()).max(READ_CHUNK));
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(FrameError::Closed),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// The next frame. Not cancel-safe: a frame half read when the future is dropped is lost,
    /// so callers only drop it to abandon the connection.
    pub async fn read_frame(&mut self) -> Result<Frame, FrameError> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set"));
        }
        let opcode = Opcode::parse(b0 & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
        let fin = b0 & 0x80 != 0;
        if b1 & 0x80 == 0 {
            return Err(FrameError::Protocol("client frames must be masked"));
        }
        let (len, header) = match b1 & 0x7F {
            126 => {
                self.fill(4).await?;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as u64, 4)
            }
            127 => {
                self.fill(10).await?;
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() && (!fin || len > 125) {
            return Err(FrameError::Protocol(
                "control frames must be final and at most 125 bytes",
            ));
        }
        if len > self.max as u64 {
            return Err(FrameError::TooLarge(self.max));
        }
        let total = header + 4 + len as usize;
        self.fill(total).await?;
        let mut frame = self.buf.split_to(total);
        let mask = [frame[header], frame[header + 1], frame[header + 2], frame[header + 3]];
        frame.advance(header + 4);
        for (i, byte) in frame.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        }
        Ok(Frame {
            fin,
            opcode,
            payload: frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<(bool, Opcode, Vec<u8>), FrameError>> {
        let mut reader = FrameReader::new(&bytes[..], &[], max);
        let mut out = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(f) => out.push(Ok((f.fin, f.opcode, f.payload.to_vec()))),
                Err(FrameError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn reads_unmasked_payloads_of_every_length_encoding() {
        let medium = vec![b'm'; 300];
        let large = vec![b'l'; 70_000];
        let mut stream = client_frame(0x81, b"{}");
        stream.extend(client_frame(0x81, &medium));
        stream.extend(client_frame(0x81, &large));
        stream.extend(client_frame(0x89, b"hi"));
        let frames = read_all(stream, 100_000).await;
        assert_eq!(frames[0], Ok((true, Opcode::Text, b"{}".to_vec())));
        assert_eq!(frames[1], Ok((true, Opcode::Text, medium)));
        assert_eq!(frames[2], Ok((true, Opcode::Text, large)));
        assert_eq!(frames[3], Ok((true, Opcode::Ping, b"hi".to_vec())));
        assert_eq!(frames.len(), 4);
    }

    #[tokio::test]
    async fn fragments_keep_their_fin_bit_and_opcode() {
        let mut stream = client_frame(0x01, b"{\"ev");
        stream.extend(client_frame(0x80, b"ent\":1}"));
        let frames = read_all(stream, 1024).await;
        assert_eq!(frames[0], Ok((false, Opcode::Text, b"{\"ev".to_vec())));
        assert_eq!(frames[1], Ok((true, Opcode::Continuation, b"ent\":1}".to_vec())));
    }

    #[tokio::test]
    async fn protocol_violations_and_oversized_frames_are_refused() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        assert_eq!(
            read_all(unmasked, 1024).await,
            [Err(FrameError::Protocol("client frames must be masked"))]
        );
        let reserved = client_frame(0xC1, b"x");
        assert!(matches!(
            read_all(reserved, 1024).await[0],
            Err(FrameError::Protocol(_))
        ));
        let bad_opcode = client_frame(0x83, b"x");
        assert!(matches!(
            read_all(bad_opcode, 1024).await[0],
            Err(FrameError::Protocol(_))
        ));
        let fragmented_ping = client_frame(0x09, b"x");
        assert!(matches!(
            read_all(fragmented_ping, 1024).await[0],
            Err(FrameError::Protocol(_))
        ));
        let big = client_frame(0x81, &[b'x'; 2000]);
        assert_eq!(read_all(big, 1024).await, [Err(FrameError::TooLarge(1024))]);
        let huge_claim = vec![0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(read_all(huge_claim, 1024).await, [Err(FrameError::TooLarge(1024))]);
    }

    #[tokio::test]
    async fn truncated_input_is_a_closed_connection_not_a_panic() {
        let whole = client_frame(0x81, b"hello world");
        for cut in 0..whole.len() {
            let frames = read_all(whole[..cut].to_vec(), 1024).await;
            assert!(frames.is_empty(), "cut at {cut}: {frames:?}");
        }
    }

    #[tokio::test]
    async fn bytes_read_past_the_upgrade_come_first() {
        let frame = client_frame(0x81, b"{}");
        let (pending, rest) = frame.split_at(3);
        let mut reader = FrameReader::new(rest, pending, 1024);
        assert_eq!(&reader.read_frame().await.unwrap().payload[..], b"{}");
    }
}
