//! Who the client is when the node sits behind HTTP proxies that append to `X-Forwarded-For`.
//!
//! Each trusted proxy appends the address it was connected from, so with `hops` trusted
//! proxies the client is the `hops`-th entry from the right; everything further left was
//! written by the client and is never believed. With fewer entries than hops (a path that
//! skipped a proxy) the leftmost entry is the best known, and it was still written by a
//! trusted proxy. No header at all means the request came straight from the peer.

use std::net::{IpAddr, SocketAddr};

/// An `X-Forwarded-For` whose trusted entry is not an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("X-Forwarded-For entry {0:?} is not an IP address")]
pub struct ForwardedError(pub String);

/// The client address `hops` proxies away from `peer`, from the `X-Forwarded-For` header
/// values in the order received. `hops == 0` always answers `peer`.
pub fn forwarded_client<'a>(
    peer: IpAddr,
    hops: u32,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<IpAddr, ForwardedError> {
    if hops == 0 {
        return Ok(canonical(peer));
    }
    let mut entries: Vec<&[u8]> = Vec::new();
    for value in values {
        entries.extend(value.split(|b| *b == b',').map(trim).filter(|e| !e.is_empty()));
    }
    let Some(chosen) = entries
        .len()
        .checked_sub(hops as usize)
        .and_then(|i| entries.get(i))
        .or_else(|| entries.first())
    else {
        return Ok(canonical(peer));
    };
    parse_entry(chosen).map(canonical)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// `1.2.3.4`, `2001:db8::1`, or with a port: `1.2.3.4:80`, `[2001:db8::1]:80`, `[::1]`.
fn parse_entry(entry: &[u8]) -> Result<IpAddr, ForwardedError> {
    let bad = || ForwardedError(String::from_utf8_lossy(&entry[..entry.len().min(64)]).into_owned());
    let text = std::str::from_utf8(entry).map_err(|_| bad())?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<IpAddr>().ok())
        .ok_or_else(bad)
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address (a dual-stack listener sees them).
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "10.0.0.9";

    fn client(hops: u32, headers: &[&str]) -> Result<IpAddr, ForwardedError> {
        forwarded_client(PEER.parse().unwrap(), hops, headers.iter().map(|h| h.as_bytes()))
    }

    fn ip(s: &str) -> Result<IpAddr, ForwardedError> {
        Ok(s.parse().unwrap())
    }

    #[test]
    fn zero_hops_never_reads_the_header() {
        assert_eq!(client(0, &["1.2.3.4"]), ip(PEER));
        assert_eq!(client(0, &["garbage"]), ip(PEER));
    }

    #[test]
    fn the_entry_hops_from_the_right_is_the_client() {
        assert_eq!(client(1, &["6.6.6.6, 1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(client(2, &["6.6.6.6, 1.2.3.4, 10.1.1.1"]), ip("1.2.3.4"));
        assert_eq!(
            client(2, &["6.6.6.6", "1.2.3.4,10.1.1.1"]),
            ip("1.2.3.4"),
            "header lines join in order"
        );
        assert_eq!(
            client(1, &[" 1.2.3.4 , ,5.6.7.8 "]),
            ip("5.6.7.8"),
            "blanks and empties are skipped"
        );
    }

    #[test]
    fn fewer_entries_than_hops_take_the_leftmost_and_none_the_peer() {
        assert_eq!(client(3, &["1.2.3.4, 10.1.1.1"]), ip("1.2.3.4"));
        assert_eq!(client(1, &[]), ip(PEER));
        assert_eq!(client(1, &[" , "]), ip(PEER));
    }

    #[test]
    fn garbage_in_the_trusted_position_is_an_error_but_not_left_of_it() {
        assert!(client(1, &["1.2.3.4, unknown"]).is_err());
        assert!(client(1, &["1.2.3.4, 999.1.1.1"]).is_err());
        assert!(client(1, &["\u{fffd}"]).is_err());
        assert_eq!(client(1, &["<script>, 1.2.3.4"]), ip("1.2.3.4"));
    }

    #[test]
    fn ipv6_and_ports() {
        assert_eq!(client(1, &["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(client(1, &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(client(1, &["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(client(1, &["1.2.3.4:5678"]), ip("1.2.3.4"));
        assert_eq!(client(1, &["::ffff:1.2.3.4"]), ip("1.2.3.4"), "mapped v4 is v4");
        assert_eq!(
            forwarded_client("::ffff:127.0.0.1".parse().unwrap(), 0, []),
            ip("127.0.0.1")
        );
    }
}
