//! Fixed one-second windows, cheap enough for every frame and every REST call, and a token
//! bucket for subscribe requests.
//!
//! A window resets on the second boundary of a monotonic clock, so a burst of up to twice the
//! budget can straddle two windows; that matches what Pusher-compatible servers do and keeps
//! the check a couple of integer operations.
//!
//! Subscribes use a token bucket instead: a reconnecting client legitimately resubscribes all
//! its channels at once (a burst as large as the subscription cap), while a client churning
//! subscribe/unsubscribe pairs is held to a steady rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::RateDecision;

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

/// Per-connection token bucket, owned by the connection's reader task (no atomics needed):
/// `per_second` tokens a second, at most `burst` saved up; it starts full.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: u64,
    burst_milli: u64,
    /// Thousandths of a token, so refills need no floating point.
    milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// `per_second == 0` means unlimited; `burst` is at least 1.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst_milli = u64::from(burst.max(1)) * 1000;
        Self {
            per_second: u64::from(per_second),
            burst_milli,
            milli: burst_milli,
            last_ms: 0,
        }
    }

    /// Take one token at `now_ms` (milliseconds of a monotonic clock); false when empty.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(self.per_second))
            .min(self.burst_milli);
        if self.milli >= 1000 {
            self.milli -= 1000;
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
    #[cfg(test)]
    pub fn try_take(&self, n: u64) -> bool {
        self.take(n).allowed
    }

    /// Take `n` units now, all or nothing, and say how long until this window ends.
    pub fn take(&self, n: u64) -> RateDecision {
        let elapsed = self.epoch.elapsed();
        let resets_in = Duration::from_secs(elapsed.as_secs() + 1).saturating_sub(elapsed);
        RateDecision {
            allowed: self.take_at(n, elapsed.as_secs()),
            resets_in,
        }
    }

    /// Take `n` units in the window of `now_s` (seconds since this limiter was made), all or
    /// nothing.
    pub fn take_at(&self, n: u64, now_s: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let now = now_s & 0xFFFF_FFFF;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (window, used) = (current >> 32, current & 0xFFFF_FFFF);
            let used = if window == now { used } else { 0 };
            // Saturating: a client-chosen `n` must not wrap past the check.
            let wanted = used.saturating_add(n);
            if wanted > self.per_second || wanted > 0xFFFF_FFFF {
                return false;
            }
            let next = (now << 32) | wanted;
            match self
                .state
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Seconds since this limiter was made: the clock of [`take_at`](Self::take_at).
    pub fn elapsed_seconds(&self) -> u64 {
        self.epoch.elapsed().as_secs()
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
    fn token_bucket_allows_the_burst_then_the_rate() {
        let mut b = TokenBucket::new(50, 200);
        assert_eq!((0..1000).filter(|_| b.try_take(0)).count(), 200, "a full burst at once");
        assert!(!b.try_take(10), "half a token after 10 ms");
        assert!(b.try_take(20), "one token after 20 ms at 50/s");
        assert!(!b.try_take(20));
        // One second later: 50 more, not more.
        assert_eq!((0..1000).filter(|_| b.try_take(1020)).count(), 50);
        // A long pause refills up to the burst only.
        assert_eq!((0..1000).filter(|_| b.try_take(600_000)).count(), 200);
    }

    #[test]
    fn token_bucket_zero_rate_is_unlimited_and_time_never_goes_back() {
        let mut b = TokenBucket::new(0, 1);
        assert!((0..10_000).all(|_| b.try_take(0)));
        let mut b = TokenBucket::new(1, 1);
        assert!(b.try_take(5000));
        assert!(!b.try_take(100), "an earlier clock reading adds nothing");
        assert!(b.try_take(6000));
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
