//! The audit log of denied authentication.
//!
//! Every denial (a bad subscription or sign-in signature, a bad REST signature or timestamp, an unknown app
//! key, a refused origin, a disabled app) is written as one WARN line with target `audit`, so
//! operators can see who is knocking: app, socket id or path, channel, reason and the remote
//! address when known. Never secrets, signatures or payloads.
//!
//! An attacker can cause denials as fast as it can send frames, so the lines are rate-limited
//! process-wide (a lock-free one-second window, [`LINES_PER_SECOND`]); lines over the budget are
//! counted, and the next line written says how many were suppressed. The counter
//! `ferrocast_auth_denied_total{reason}` counts every denial, written or not.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::observer::NodeObserver;
use crate::rate_limit::SharedLimiter;

/// Audit lines written per second, process-wide; the rest are counted and reported later.
pub const LINES_PER_SECOND: u64 = 20;

/// Why authentication was denied: the bounded label set of `ferrocast_auth_denied_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDenial {
    /// A private/presence subscription whose `auth` signature is missing or wrong.
    SubscriptionSignature,
    /// A `pusher:signin` whose `auth` signature is missing or wrong (a forged sign-in).
    SigninSignature,
    /// A REST request with a missing or wrong signature, key, version or body hash (401).
    RestSignature,
    /// A REST request whose `auth_timestamp` is more than 600 s off (401).
    RestTimestamp,
    /// A WebSocket for an app key that does not exist (4001).
    UnknownAppKey,
    /// A WebSocket from an origin the app does not allow (4009).
    OriginNotAllowed,
    /// A WebSocket (4003) or REST request (403) for a disabled app.
    AppDisabled,
}

impl AuthDenial {
    /// Every reason, so `ferrocast_auth_denied_total` is exported at zero from the start. A new
    /// variant must be added here too: `labels_are_distinct` fails otherwise.
    pub const ALL: [AuthDenial; 7] = [
        AuthDenial::SubscriptionSignature,
        AuthDenial::SigninSignature,
        AuthDenial::RestSignature,
        AuthDenial::RestTimestamp,
        AuthDenial::UnknownAppKey,
        AuthDenial::OriginNotAllowed,
        AuthDenial::AppDisabled,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AuthDenial::SubscriptionSignature => "subscription_signature",
            AuthDenial::SigninSignature => "signin_signature",
            AuthDenial::RestSignature => "rest_signature",
            AuthDenial::RestTimestamp => "rest_timestamp",
            AuthDenial::UnknownAppKey => "unknown_app_key",
            AuthDenial::OriginNotAllowed => "origin_not_allowed",
            AuthDenial::AppDisabled => "app_disabled",
        }
    }
}

/// One denial, as logged. Every field but the reason is optional.
#[derive(Debug, Clone, Copy)]
pub struct Denial<'a> {
    pub reason: AuthDenial,
    pub app_id: Option<&'a str>,
    /// The app key a WebSocket asked for (only when no app has it: it is not a secret).
    pub app_key: Option<&'a str>,
    pub socket_id: Option<&'a str>,
    pub path: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub remote: Option<SocketAddr>,
}

impl<'a> Denial<'a> {
    pub fn new(reason: AuthDenial) -> Self {
        Self {
            reason,
            app_id: None,
            app_key: None,
            socket_id: None,
            path: None,
            channel: None,
            remote: None,
        }
    }
}

/// Longest value of a client-chosen field (app key, channel, path) written to the log.
const MAX_FIELD_CHARS: usize = 200;

/// Count the denial and, within the process-wide line budget, log it.
pub fn denied(observer: &dyn NodeObserver, denial: &Denial<'_>) {
    observer.auth_denied(denial.reason);
    let Some(suppressed) = limiter().admit() else {
        return;
    };
    // The address only: behind X-Forwarded-For the port is unknown, and it says nothing useful.
    let remote = denial.remote.map(|a| a.ip().to_canonical().to_string());
    tracing::warn!(
        target: "audit",
        reason = denial.reason.label(),
        app_id = denial.app_id.unwrap_or("-"),
        app_key = clip(denial.app_key),
        socket_id = denial.socket_id.unwrap_or("-"),
        path = clip(denial.path),
        channel = clip(denial.channel),
        remote = remote.as_deref().unwrap_or("-"),
        suppressed_before = suppressed,
        "audit: authentication denied"
    );
}

/// A client-chosen value, cut short so one line stays small.
fn clip(value: Option<&str>) -> &str {
    match value {
        None => "-",
        Some(v) => match v.char_indices().nth(MAX_FIELD_CHARS) {
            Some((end, _)) => &v[..end],
            None => v,
        },
    }
}

fn limiter() -> &'static LineLimiter {
    static LIMITER: OnceLock<LineLimiter> = OnceLock::new();
    LIMITER.get_or_init(|| LineLimiter::new(LINES_PER_SECOND))
}

/// Lock-free "n lines per second" (a [`SharedLimiter`]) with a count of the lines refused since
/// the last admitted one. `per_second` is at least 1.
#[derive(Debug)]
pub struct LineLimiter {
    lines: SharedLimiter,
    suppressed: AtomicU64,
}

impl LineLimiter {
    pub fn new(per_second: u64) -> Self {
        Self {
            lines: SharedLimiter::new(per_second.max(1)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last admitted one)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(self.lines.elapsed_seconds())
    }

    /// [`admit`](Self::admit) at `now_s` seconds after the limiter was made.
    pub fn admit_at(&self, now_s: u64) -> Option<u64> {
        if self.lines.take_at(1, now_s) {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_budget_then_counts_the_rest() {
        let l = LineLimiter::new(3);
        assert_eq!(l.admit_at(7), Some(0));
        assert_eq!(l.admit_at(7), Some(0));
        assert_eq!(l.admit_at(7), Some(0));
        assert_eq!(l.admit_at(7), None);
        assert_eq!(l.admit_at(7), None);
        assert_eq!(l.admit_at(8), Some(2), "the next line says how many were suppressed");
        assert_eq!(l.admit_at(8), Some(0));
    }

    #[test]
    fn is_exact_under_contention() {
        let l = std::sync::Arc::new(LineLimiter::new(100));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..1000).filter(|_| l.admit_at(1).is_some()).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 100);
        assert_eq!(l.admit_at(2), Some(3900));
    }

    #[test]
    fn long_client_values_are_clipped() {
        let long = "a".repeat(60_000);
        assert_eq!(clip(Some(&long)).len(), MAX_FIELD_CHARS);
        assert_eq!(clip(Some("short")), "short");
        assert_eq!(clip(None), "-");
    }

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> = AuthDenial::ALL.iter().map(|d| d.label()).collect();
        assert_eq!(labels.len(), AuthDenial::ALL.len());
        // The match is exhaustive: a new variant does not compile until it has a position here,
        // and the assertion then fails until `ALL` lists it there.
        let position = |d: AuthDenial| match d {
            AuthDenial::SubscriptionSignature => 0,
            AuthDenial::SigninSignature => 1,
            AuthDenial::RestSignature => 2,
            AuthDenial::RestTimestamp => 3,
            AuthDenial::UnknownAppKey => 4,
            AuthDenial::OriginNotAllowed => 5,
            AuthDenial::AppDisabled => 6,
        };
        let positions: Vec<usize> = AuthDenial::ALL.iter().map(|d| position(*d)).collect();
        assert_eq!(positions, (0..AuthDenial::ALL.len()).collect::<Vec<_>>());
    }
}
