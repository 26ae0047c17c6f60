//! The bound on lookups of unknown keys and ids: any client can send any key, so a spray of
//! random keys must cost PostgreSQL a bounded number of queries per node whatever its rate.
//!
//! Three guards, in order: a negative cache (a key just looked up and not found is refused
//! without a query until it expires, or until any app changes), a token bucket (at most
//! [`PER_SECOND`] queries per second, burst as large), and [`CONCURRENT`] queries at once.
//! Only the miss path takes these locks; a known key never gets here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lookups per second a node sends to PostgreSQL for unknown keys and ids (and the burst).
pub const PER_SECOND: f64 = 20.0;
/// Lookups in flight at once.
pub const CONCURRENT: usize = 2;
/// How long "not found" is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Entries the negative cache holds at most; past that it is emptied (a spray of random keys
/// is then held back by the token bucket alone).
const NEGATIVE_MAX: usize = 10_000;

/// What the guards decided about one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Query PostgreSQL.
    Query,
    /// Looked up recently and not found.
    KnownMissing,
    /// Over the rate.
    Limited,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
    missing: HashMap<String, Instant>,
}

/// The guards of one node.
#[derive(Debug)]
pub struct Misses {
    state: Mutex<State>,
    pub concurrent: tokio::sync::Semaphore,
}

impl Default for Misses {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                tokens: PER_SECOND,
                refilled: Instant::now(),
                missing: HashMap::new(),
            }),
            concurrent: tokio::sync::Semaphore::new(CONCURRENT),
        }
    }
}

impl Misses {
    /// Whether to query for `what` (a key or id, prefixed by its kind) at `now`.
    pub fn admit(&self, what: &str, now: Instant) -> Admit {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = state.missing.get(what) {
            if now < *until {
                return Admit::KnownMissing;
            }
            state.missing.remove(what);
        }
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * PER_SECOND).min(PER_SECOND);
        state.refilled = now;
        if state.tokens < 1.0 {
            return Admit::Limited;
        }
        state.tokens -= 1.0;
        Admit::Query
    }

    /// Remember that `what` was not found at `now`.
    pub fn not_found(&self, what: &str, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.missing.len() >= NEGATIVE_MAX {
            state.missing.clear();
        }
        state.missing.insert(what.to_owned(), now + NEGATIVE_TTL);
    }

    /// Forget every "not found": an app changed, and may be one of them.
    pub fn forget(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).missing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spray_is_held_to_the_rate() {
        let m = Misses::default();
        let t0 = Instant::now();
        let queried = (0..1000)
            .filter(|i| m.admit(&format!("k:{i}"), t0) == Admit::Query)
            .count();
        assert_eq!(queried, PER_SECOND as usize);
        assert_eq!(m.admit("k:x", t0), Admit::Limited);
        // Half a second later, half the bucket is back.
        let later = t0 + Duration::from_millis(500);
        let queried = (0..1000)
            .filter(|i| m.admit(&format!("k:y{i}"), later) == Admit::Query)
            .count();
        assert_eq!(queried, (PER_SECOND / 2.0) as usize);
    }

    #[test]
    fn not_found_is_remembered_until_it_expires_or_anything_changes() {
        let m = Misses::default();
        let t0 = Instant::now();
        m.not_found("k:a", t0);
        assert_eq!(m.admit("k:a", t0 + Duration::from_secs(1)), Admit::KnownMissing);
        assert_eq!(m.admit("k:a", t0 + NEGATIVE_TTL), Admit::Query);
        m.not_found("k:a", t0);
        m.forget();
        assert_eq!(m.admit("k:a", t0), Admit::Query);
    }
}
