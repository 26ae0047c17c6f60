//! Fixed one-second windows, cheap enough for every frame and every REST call.
//!
//! A window resets on the second boundary of a monotonic clock, so a burst of up to twice the
//! budget can straddle two windows; that matches what Pusher-compatible servers do and keeps
//! the check a couple of integer operations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backplane::RateDecision;

/// Per-connection limiter, owned by the connection's reader task (no atomics needed).
#[derive(Debug)]
pub struct WindowLimiter {
    per_second: u32,
    window: u64,
    used: u32,
}

impl WindowLimiter {
    /// `per_second == 0` means unlimited.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: 0,
            used: 0,
        }
    }

    /// Take one unit at `now_s` (seconds of a monotonic clock); false when over budget.
    pub fn try_take(&mut self, now_s: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        if now_s != self.window {
            self.window = now_s;
            self.used = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            true
        } else {
            false
        }
    }
}

/// Shared limiter for per-app budgets (backend events, read requests), lock-free. A single
/// node's cluster state ([`crate::memory::MemoryClusterState`]) keeps one per app and budget.
#[derive(Debug)]
pub struct SharedLimiter {
    per_second: u64,
    epoch: Instant,
    /// High 32 bits: window second; low 32 bits: units used in it.
    state: AtomicU64,
}

impl SharedLimiter {
    /// `per_second == 0` means unlimited.
    pub fn new(per_second: u64) -> Self {
        Self {
            per_second,
            epoch: Instant::now(),
            state: AtomicU64::new(0),
        }
    }

    /// The budget per second this limiter was made with.
    pub fn per_second(&self) -> u64 {
        self.per_second
    }

    /// Take `n` units now; false (and nothing taken) when they do not fit in this second.
    pub fn try_take(&self, n: u64) -> bool {
        self.take(n).allowed
    }

    /// Take `n` units now, all or nothing, and say how long until this window ends.
    pub fn take(&self, n: u64) -> RateDecision {
        let elapsed = self.epoch.elapsed();
        let resets_in = Duration::from_secs(elapsed.as_secs() + 1).saturating_sub(elapsed);
        let decision = |allowed| RateDecision { allowed, resets_in };
        if self.per_second == 0 {
            return decision(true);
        }
        let now = elapsed.as_secs() & 0xFFFF_FFFF;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (window, used) = (current >> 32, current & 0xFFFF_FFFF);
            let used = if window == now { used } else { 0 };
            // Saturating: a client-chosen `n` must not wrap past the check.
            let wanted = used.saturating_add(n);
            if wanted > self.per_second || wanted > 0xFFFF_FFFF {
                return decision(false);
            }
            let next = (now << 32) | wanted;
            match self
                .state
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return decision(true),
                Err(actual) => current = actual,
            }
        }
    }
}

/// Seconds since an arbitrary fixed point, for [`WindowLimiter`].
pub fn monotonic_seconds(epoch: Instant) -> u64 {
    epoch.elapsed().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limiter_allows_budget_then_refuses_until_next_second() {
        let mut l = WindowLimiter::new(3);
        assert!(l.try_take(5) && l.try_take(5) && l.try_take(5));
        assert!(!l.try_take(5));
        assert!(l.try_take(6));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut l = WindowLimiter::new(0);
        assert!((0..10_000).all(|_| l.try_take(1)));
        let s = SharedLimiter::new(0);
        assert!((0..10_000).all(|_| s.try_take(7)));
    }

    #[test]
    fn shared_limiter_counts_units_not_calls() {
        let s = SharedLimiter::new(10);
        assert!(s.try_take(4));
        assert!(s.try_take(6));
        assert!(!s.try_take(1));
    }

    #[test]
    fn shared_limiter_refusal_takes_nothing_and_says_when_the_window_ends() {
        let s = SharedLimiter::new(5);
        let first = s.take(3);
        assert!(first.allowed);
        assert!(first.resets_in <= Duration::from_secs(1));
        let refused = s.take(3);
        assert!(!refused.allowed);
        assert!(refused.resets_in > Duration::ZERO && refused.resets_in <= Duration::from_secs(1));
        // The refused 3 were not taken: the remaining 2 still fit (same window unless it rolled
        // over, in which case they fit anyway).
        assert!(s.take(2).allowed);
        assert!(!s.take(u64::MAX).allowed);
    }

    #[test]
    fn shared_limiter_is_exact_under_contention() {
        let s = std::sync::Arc::new(SharedLimiter::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..1000).filter(|_| s.try_take(1)).count())
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // All four threads run well within one second window in practice; if the window rolled
        // over mid-test more may pass, but never fewer than the budget.
        assert!(total >= 1000, "took {total}");
    }
}
