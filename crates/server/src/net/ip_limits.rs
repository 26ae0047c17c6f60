//! Per-client-IP caps: concurrent connections and new connections per second.
//!
//! A sharded map (no global lock on the connect path) holds one small entry per IP with an
//! open connection or one admitted in the current second. A slot is released when its
//! connection (or request, behind `X-Forwarded-For`) ends; an entry with nothing open is
//! removed then if its second is over, or by [`IpLimiter::sweep`]. Memory is therefore
//! bounded by the open connections plus the IPs admitted in the last sweep period.
//!
//! The rate is counted in fixed one-second windows, so a burst straddling two windows may
//! reach twice the rate for an instant.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use crate::metrics::EdgeMetrics;

#[derive(Debug, Default)]
struct Entry {
    open: u32,
    /// The second (since process start) `admitted` counts in.
    second: u64,
    admitted: u32,
}

/// Why a client IP was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections_per_ip` open already.
    Connections,
    /// `max_connection_rate_per_ip` admitted this second already.
    Rate,
}

impl Refusal {
    /// The `Retry-After` seconds to send.
    pub fn retry_after(self) -> u32 {
        match self {
            Refusal::Connections => 5,
            Refusal::Rate => 1,
        }
    }

    pub fn count(self, metrics: &EdgeMetrics) {
        match self {
            Refusal::Connections => metrics.refused_ip_connections.inc(),
            Refusal::Rate => metrics.refused_ip_rate.inc(),
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Connections => "too many connections from your address",
            Refusal::Rate => "too many new connections per second from your address",
        }
    }
}

/// The caps of every client IP of a node.
pub struct IpLimiter {
    entries: DashMap<IpAddr, Entry>,
    max_open: u32,
    max_rate: u32,
}

/// One admitted connection (or request) of an IP, released when dropped.
pub struct IpSlot {
    limiter: Arc<IpLimiter>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.limiter.release(self.ip);
    }
}

fn now_second() -> u64 {
    ferrocast_broker::process_seconds()
}

impl IpLimiter {
    /// 0 = unlimited, for either cap.
    pub fn new(max_open: u32, max_rate: u32) -> Arc<Self> {
        Arc::new(Self {
            entries: DashMap::new(),
            max_open,
            max_rate,
        })
    }

    /// Admit a connection from `ip`: a slot to hold while it lasts, `None` when both caps are
    /// off (nothing is tracked), or why not.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Option<IpSlot>, Refusal> {
        self.acquire_at(ip, now_second(), true)
    }

    /// Hold a slot against the concurrent cap only: a TCP connection from accept (whether it
    /// becomes a WebSocket is not known yet), or a REST request behind `X-Forwarded-For`. The
    /// rate counts new WebSockets only: an app server publishing hundreds of events a second
    /// over fresh connections (the official SDKs often do) is not a connection storm.
    pub fn acquire_open(self: &Arc<Self>, ip: IpAddr) -> Result<Option<IpSlot>, Refusal> {
        self.acquire_at(ip, now_second(), false)
    }

    /// Count a new WebSocket of `ip` whose connection already holds its slot (see
    /// [`acquire_open`](Self::acquire_open)) against the rate.
    pub fn take_rate(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.take_rate_at(ip, now_second())
    }

    fn take_rate_at(&self, ip: IpAddr, second: u64) -> Result<(), Refusal> {
        if self.max_rate == 0 {
            return Ok(());
        }
        let mut entry = self.entries.entry(ip).or_default();
        if entry.second != second {
            entry.second = second;
            entry.admitted = 0;
        }
        if entry.admitted >= self.max_rate {
            return Err(Refusal::Rate);
        }
        entry.admitted += 1;
        Ok(())
    }

    fn acquire_at(self: &Arc<Self>, ip: IpAddr, second: u64, counts_rate: bool) -> Result<Option<IpSlot>, Refusal> {
        if self.max_open == 0 && self.max_rate == 0 {
            return Ok(None);
        }
        let mut entry = self.entries.entry(ip).or_default();
        if entry.second != second {
            entry.second = second;
            entry.admitted = 0;
        }
        if counts_rate && self.max_rate != 0 && entry.admitted >= self.max_rate {
            return Err(Refusal::Rate);
        }
        if self.max_open != 0 && entry.open >= self.max_open {
            return Err(Refusal::Connections);
        }
        entry.open += 1;
        if counts_rate {
            entry.admitted += 1;
        }
        drop(entry);
        Ok(Some(IpSlot {
            limiter: self.clone(),
            ip,
        }))
    }

    fn release(&self, ip: IpAddr) {
        if let MapEntry::Occupied(mut e) = self.entries.entry(ip) {
            let entry = e.get_mut();
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && entry.second != now_second() {
                e.remove();
            }
        }
    }

    /// Drop the entries with nothing open whose second is over.
    pub fn sweep(&self) {
        let second = now_second();
        self.entries.retain(|_, e| e.open > 0 || e.second == second);
    }

    /// IPs tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn concurrent_cap_per_ip() {
        let l = IpLimiter::new(2, 0);
        let a = l.acquire_at(ip("10.0.0.1"), 1, true).unwrap();
        let _b = l.acquire_at(ip("10.0.0.1"), 1, true).unwrap();
        assert_eq!(l.acquire_at(ip("10.0.0.1"), 2, true).err(), Some(Refusal::Connections));
        assert!(
            l.acquire_at(ip("10.0.0.2"), 2, true).unwrap().is_some(),
            "another IP is unaffected"
        );
        drop(a);
        assert!(l.acquire_at(ip("10.0.0.1"), 2, true).unwrap().is_some());
    }

    #[test]
    fn rate_cap_per_ip_and_second() {
        let l = IpLimiter::new(0, 3);
        let held: Vec<_> = (0..3).map(|_| l.acquire_at(ip("10.0.0.1"), 7, true).unwrap()).collect();
        assert_eq!(l.acquire_at(ip("10.0.0.1"), 7, true).err(), Some(Refusal::Rate));
        assert!(l.acquire_at(ip("10.0.0.2"), 7, true).is_ok());
        assert!(
            l.acquire_at(ip("10.0.0.1"), 8, true).is_ok(),
            "a new second admits again"
        );
        drop(held);
    }

    #[test]
    fn requests_hold_a_slot_but_do_not_count_as_new_connections() {
        let l = IpLimiter::new(2, 1);
        let _ws = l.acquire_at(ip("10.0.0.1"), 3, true).unwrap();
        for _ in 0..50 {
            let request = l.acquire_at(ip("10.0.0.1"), 3, false).unwrap();
            drop(request);
        }
        assert_eq!(l.acquire_at(ip("10.0.0.1"), 3, true).err(), Some(Refusal::Rate));
        let _busy = l.acquire_at(ip("10.0.0.1"), 4, false).unwrap();
        assert_eq!(
            l.acquire_at(ip("10.0.0.1"), 4, false).err(),
            Some(Refusal::Connections),
            "in-flight requests still count against the concurrent cap"
        );
    }

    #[test]
    fn websockets_of_held_connections_take_the_rate_alone() {
        let l = IpLimiter::new(0, 2);
        let _conns: Vec<_> = (0..10)
            .map(|_| l.acquire_at(ip("10.0.0.1"), 5, false).unwrap())
            .collect();
        assert!(l.take_rate_at(ip("10.0.0.1"), 5).is_ok());
        assert!(l.take_rate_at(ip("10.0.0.1"), 5).is_ok());
        assert_eq!(l.take_rate_at(ip("10.0.0.1"), 5).err(), Some(Refusal::Rate));
        assert!(l.take_rate_at(ip("10.0.0.1"), 6).is_ok(), "a new second admits again");
    }

    #[test]
    fn nothing_is_tracked_when_unlimited() {
        let l = IpLimiter::new(0, 0);
        assert!(l.acquire(ip("10.0.0.1")).unwrap().is_none());
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn idle_entries_are_removed() {
        let l = IpLimiter::new(10, 10);
        let slots: Vec<_> = (0..100u8)
            .map(|i| l.acquire(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(l.tracked(), 100);
        drop(slots);
        // Released within the same second: kept for the rate, until the sweep after it.
        l.entries.iter_mut().for_each(|mut e| e.second = u64::MAX);
        l.sweep();
        assert_eq!(l.tracked(), 0);
        let s = l.acquire_at(ip("10.0.0.1"), u64::MAX - 1, true).unwrap();
        drop(s);
        assert_eq!(l.tracked(), 0, "released after its second: removed at once");
    }
}
