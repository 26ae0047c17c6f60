//! The backplane envelope decoder over arbitrary bytes (what another node, or anything that
//! can PUBLISH on the Redis, sends).
//!
//! Checks: no panic; a decoded message encodes and decodes to itself.
#![no_main]

use ferrocast_backplane_redis::envelope::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(message) => {
            let again = decode(&encode(&message)).map_err(|e| e.to_string());
            assert_eq!(again, Ok(message));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
