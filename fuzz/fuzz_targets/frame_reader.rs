//! The WebSocket frame reader over arbitrary client bytes.
//!
//! Input: byte 0 picks the frame size limit (0..=1020, small so limits are hit often), byte 1
//! how many of the remaining bytes arrive as "already read past the upgrade", the rest is the
//! stream. Checks: no panic; every frame respects the limit and the control-frame rules; the
//! frames read, encoded again, read back the same.
#![no_main]

use std::sync::OnceLock;

use ferrocast_server::websocket::frame_reader::{Frame, FrameError, FrameReader, Opcode};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Every frame until the first error, and that error.
async fn read_all(stream: &[u8], pending: &[u8], max: usize) -> (Vec<Frame>, FrameError) {
    let mut reader = FrameReader::new(stream, pending, max);
    let mut frames = Vec::new();
    loop {
        match reader.read_frame().await {
            Ok(frame) => frames.push(frame),
            Err(e) => return (frames, e),
        }
    }
}

fn opcode_bits(op: Opcode) -> u8 {
    match op {
        Opcode::Continuation => 0x0,
        Opcode::Text => 0x1,
        Opcode::Binary => 0x2,
        Opcode::Close => 0x8,
        Opcode::Ping => 0x9,
        Opcode::Pong => 0xA,
    }
}

/// A masked client frame with the given mask, in the shortest length encoding.
fn encode(frame: &Frame, mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(if frame.fin { 0x80 } else { 0 } | opcode_bits(frame.opcode));
    let len = frame.payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(frame.payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

fuzz_target!(|data: &[u8]| {
    let [limit, split, rest @ ..] = data else {
        return;
    };
    let max = usize::from(*limit) * 4;
    let split = usize::from(*split).min(rest.len());
    let (pending, stream) = rest.split_at(split);
    runtime().block_on(async {
        let (frames, error) = read_all(stream, pending, max).await;
        let mut consumed = 0;
        for frame in &frames {
            assert!(
                frame.payload.len() <= max,
                "payload {} over limit {max}",
                frame.payload.len()
            );
            if matches!(frame.opcode, Opcode::Close | Opcode::Ping | Opcode::Pong) {
                assert!(frame.fin && frame.payload.len() <= 125, "bad control frame accepted");
            }
            consumed += 2 + 4 + frame.payload.len();
        }
        assert!(consumed <= rest.len(), "read {consumed} bytes out of {}", rest.len());
        if let FrameError::TooLarge(limit) = error {
            assert_eq!(limit, max);
        }
        // Encoded again (another mask, shortest lengths), the frames read back identically.
        let mut again = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            encode(frame, [i as u8, 0x5A, 0xA5, 0xFF], &mut again);
        }
        let (reread, end) = read_all(&again, &[], max).await;
        assert_eq!(end, FrameError::Closed);
        assert_eq!(reread.len(), frames.len());
        for (a, b) in frames.iter().zip(&reread) {
            assert_eq!((a.fin, a.opcode, &a.payload[..]), (b.fin, b.opcode, &b.payload[..]));
        }
    });
});
