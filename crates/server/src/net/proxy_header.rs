//! The PROXY protocol header (v2 binary, or v1 text) a load balancer sends before the
//! client's bytes, naming the client. Parsing is `ppp`'s; this module only reads exactly the
//! header's bytes off the socket (never a byte of the request behind it) with a size bound.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// v2 signature (12 bytes), version/command, family, 2-byte length.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// Addresses (at most 216 bytes for UNIX) plus TLVs; HAProxy sends far less.
const V2_MAX_BODY: usize = 2048;
/// The v1 line, CRLF included, is at most 107 bytes.
const V1_MAX: usize = 107;
/// Enough to tell v1 ("PROXY ") from v2 and shorter than any valid header.
const PROBE: usize = 8;

/// A connection that did not start with a valid PROXY header.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    #[error("PROXY v2 header of {0} bytes is over the {V2_MAX_BODY}-byte bound")]
    TooLong(usize),
    #[error("PROXY v1 line is longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
}

/// Read the PROXY header off `stream`: the client's address, or `None` when the header names
/// none (v2 LOCAL, e.g. the proxy's own health check, or UNKNOWN / UNIX addresses): the
/// caller then uses the TCP peer.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = vec![0u8; PROBE];
    stream.read_exact(&mut buf).await?;
    if buf[..] == V2_SIGNATURE[..PROBE] {
        read_v2(stream, buf).await
    } else if buf.starts_with(b"PROXY ") {
        read_v1(stream, buf).await
    } else {
        Err(ProxyHeaderError::Missing)
    }
}

async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    buf.resize(V2_FIXED, 0);
    stream.read_exact(&mut buf[PROBE..]).await?;
    if buf[..12] != V2_SIGNATURE[..] {
        return Err(ProxyHeaderError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX_BODY {
        return Err(ProxyHeaderError::TooLong(len));
    }
    buf.resize(V2_FIXED + len, 0);
    stream.read_exact(&mut buf[V2_FIXED..]).await?;
    let header = ppp::v2::Header::try_from(&buf[..]).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    if header.command == ppp::v2::Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    })
}

async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    // Byte by byte: the line's length is unknown and the request follows it at once.
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return Err(ProxyHeaderError::V1TooLong);
        }
        buf.push(stream.read_u8().await?);
    }
    let header = ppp::v1::Header::try_from(&buf[..]).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    Ok(match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut input = bytes;
        let result = read_proxy_header(&mut input).await;
        (result, input.to_vec())
    }

    #[tokio::test]
    async fn v2_proxy_ipv4_and_the_request_left_intact() {
        let body = [[203, 0, 113, 7], [10, 0, 0, 1]].concat();
        let mut bytes = v2(1, 0x11, &[body, vec![0x1f, 0x90, 0x00, 0x50]].concat());
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (addr, rest) = read(&bytes).await;
        assert_eq!(addr.unwrap(), Some("203.0.113.7:8080".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn v2_ipv6_local_and_bounds() {
        let mut body = vec![0u8; 36];
        body[15] = 1; // source ::1
        body[32..34].copy_from_slice(&443u16.to_be_bytes());
        let (addr, _) = read(&v2(1, 0x21, &body)).await;
        assert_eq!(addr.unwrap(), Some("[::1]:443".parse().unwrap()));
        let (addr, _) = read(&v2(0, 0x00, &[])).await;
        assert_eq!(addr.unwrap(), None, "LOCAL: use the peer");
        let (addr, _) = read(&v2(1, 0x11, &vec![0u8; 3000])).await;
        assert!(matches!(addr, Err(ProxyHeaderError::TooLong(3000))));
        let (addr, _) = read(&v2(1, 0x11, &[1, 2, 3])).await;
        assert!(matches!(addr, Err(ProxyHeaderError::Invalid(_))));
    }

    #[tokio::test]
    async fn v1_and_missing_headers() {
        let (addr, rest) = read(b"PROXY TCP4 198.51.100.1 10.0.0.1 5000 80\r\nGET").await;
        assert_eq!(addr.unwrap(), Some("198.51.100.1:5000".parse().unwrap()));
        assert_eq!(rest, b"GET");
        let (addr, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(addr.unwrap(), None);
        let (addr, _) = read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(addr, Err(ProxyHeaderError::Missing)));
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (addr, _) = read(long.as_bytes()).await;
        assert!(matches!(addr, Err(ProxyHeaderError::V1TooLong)));
        let (addr, _) = read(b"PROX").await;
        assert!(matches!(addr, Err(ProxyHeaderError::Io(_))));
    }
}
