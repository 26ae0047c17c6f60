//! Shared by the fuzz tests: a deterministic generator, mutations and JSON oracles.
//!
//! A tiny xorshift generator with fixed seeds, so every failure reproduces.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use serde::de::IgnoredAny;
use serde_json::{json, Map, Value};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// xorshift64*.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn text(&mut self, max_len: usize) -> String {
        const PALETTE: &[&str] = &[
            "a",
            "Z",
            "0",
            "9",
            "-",
            "_",
            "=",
            "@",
            ",",
            ".",
            ";",
            ":",
            "#",
            " ",
            "\"",
            "\\",
            "/",
            "{",
            "}",
            "[",
            "]",
            "\n",
            "\t",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "日",
            "🎉",
            "\u{2028}",
            "private-",
            "presence-",
            "pusher:",
            "client-",
            "\\u0041",
            "null",
            "%",
            "+",
            "&",
        ];
        let len = self.below(max_len + 1);
        (0..len).map(|_| *self.pick(PALETTE)).collect()
    }

    pub fn name(&mut self) -> String {
        const PALETTE: &[u8] = b"abcxyzABC0189_-=@,.;";
        let len = 1 + self.below(12);
        (0..len).map(|_| char::from(*self.pick(PALETTE))).collect()
    }

    pub fn value(&mut self, depth: usize) -> Value {
        let choice = if depth == 0 { self.below(5) } else { self.below(7) };
        match choice {
            0 => Value::Null,
            1 => Value::Bool(self.chance(50)),
            2 => json!(self.next() as i64 >> self.below(64)),
            3 => json!((self.below(2000) as f64 - 1000.0) / 8.0),
            4 => Value::String(self.text(12)),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(self.object(depth - 1)),
        }
    }

    pub fn object(&mut self, depth: usize) -> Map<String, Value> {
        (0..self.below(4)).map(|_| (self.text(6), self.value(depth))).collect()
    }
}

pub fn serialise(rng: &mut Rng, value: &Value) -> String {
    if rng.chance(30) {
        serde_json::to_string_pretty(value).unwrap()
    } else {
        value.to_string()
    }
}

/// Flip, overwrite, insert, delete, duplicate or truncate bytes, then repair to UTF-8.
pub fn mutate(rng: &mut Rng, input: &str) -> String {
    const INSERTS: &[&[u8]] = &[
        b"{", b"}", b"[", b"]", b"\"", b"\\", b":", b",", b"null", b"\\u", b"\\ud800", b"0", b"-", b"e9", b" ",
        b"\xff", b"\xc3", b"%", b"&", b"=",
    ];
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.next() as u8;
            }
            2 => {
                let insert = rng.pick(INSERTS);
                bytes.splice(at..at, insert.iter().copied());
            }
            3 => {
                let end = (at + rng.below(8)).min(len);
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(16)).min(len);
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            5 => bytes.truncate(at),
            _ => bytes.insert(at, rng.next() as u8),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// JSON text with object keys sorted (what `Value` prints).
pub fn canonical(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| format!("<not JSON: {text}>"))
}
