//! The one place Ferrocast reads clocks, so every stamp means the same thing.
//!
//! Wall-clock stamps (`unix_*`) travel between nodes and into webhooks; process-monotonic ones
//! (`process_*`) measure intervals inside one process and never jump with the wall clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn since_unix_epoch() -> Duration {
    // A clock set before 1970 reads as 0 rather than failing.
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Microseconds since the Unix epoch, stamped on messages when they are published.
pub fn unix_micros() -> u64 {
    since_unix_epoch().as_micros() as u64
}

/// Milliseconds since the Unix epoch (webhook `time_ms`).
pub fn unix_millis() -> u64 {
    since_unix_epoch().as_millis() as u64
}

/// Seconds since the Unix epoch (REST `auth_timestamp`).
pub fn unix_seconds() -> u64 {
    since_unix_epoch().as_secs()
}

/// The instant this process first asked for the time: the origin of the `process_*` clocks.
fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Milliseconds since the process started (cheap "last seen" stamps).
pub fn process_millis() -> u64 {
    process_start().elapsed().as_millis() as u64
}

/// Whole seconds since the process started (one-second rate windows).
pub fn process_seconds() -> u64 {
    process_start().elapsed().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree_and_monotonic_clocks_do_not_go_back() {
        let (s, ms, us) = (unix_seconds(), unix_millis(), unix_micros());
        assert!(ms / 1000 >= s && ms / 1000 <= s + 1);
        assert!(us / 1000 >= ms && us / 1000 <= ms + 1000);
        let a = process_millis();
        assert!(process_millis() >= a);
        assert!(process_seconds() <= process_millis() / 1000 + 1);
    }
}
