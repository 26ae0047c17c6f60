//! Endpoints, TCP dialing from spread source addresses, and the HTTP/1.1 REST client.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

/// A node address parsed from `ws://host:port[/prefix]` or `http://host:port`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub addr: SocketAddr,
    /// `host:port` as written, for the `Host` header.
    pub host: String,
    /// Path prefix without a trailing slash (usually empty).
    pub path: String,
}

impl Endpoint {
    /// Parse and resolve a URL whose scheme is one of `schemes` (TLS is not supported).
    pub fn parse(url: &str, schemes: &[&str]) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("'{url}' is not a URL (expected e.g. {}://127.0.0.1:6001)", schemes[0]))?;
        if !schemes.contains(&scheme) {
            return Err(format!(
                "'{url}': scheme must be one of {schemes:?} (TLS is not supported)"
            ));
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .next()
            .ok_or_else(|| format!("'{host}' resolves to no address"))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Opens TCP connections, binding each to the next source address (round-robin) when a list is
/// given, so that many connections do not exhaust one address's ephemeral ports.
#[derive(Debug)]
pub struct Dialer {
    sources: Vec<Ipv4Addr>,
    next: Cell<usize>,
}

impl Dialer {
    pub fn new(sources: Vec<Ipv4Addr>) -> Self {
        Self {
            sources,
            next: Cell::new(0),
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if addr.is_ipv4() && !self.sources.is_empty() {
            let i = self.next.get();
            self.next.set((i + 1) % self.sources.len());
            // Pick the port at connect time (per destination), not at bind time.
            let one: libc::c_int = 1;
            // SAFETY: a valid socket fd and a c_int option value of the right size.
            unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            socket.bind(SocketAddr::new(IpAddr::V4(self.sources[i]), 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Outcome of one REST call.
#[derive(Debug)]
pub enum RestError {
    /// Could not connect or the connection failed mid-request.
    Io(String),
    /// Any status but 200, with the start of the body.
    Status(u16, String),
}

impl RestError {
    /// A short, low-cardinality name for error tables.
    pub fn kind(&self) -> String {
        match self {
            RestError::Io(_) => "rest_io".into(),
            RestError::Status(code, _) => format!("rest_http_{code}"),
        }
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Io(e) => write!(f, "REST request failed: {e}"),
            RestError::Status(code, body) => write!(f, "REST answered {code}: {body}"),
        }
    }
}

/// A small pool of keep-alive HTTP/1.1 connections to the REST node, with signed requests.
pub struct RestClient {
    endpoint: Endpoint,
    app_id: String,
    key: String,
    secret: String,
    idle: RefCell<Vec<SendRequest<Full<Bytes>>>>,
}

impl RestClient {
    pub fn new(endpoint: Endpoint, app_id: &str, key: &str, secret: &str) -> Self {
        Self {
            endpoint,
            app_id: app_id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            idle: RefCell::new(Vec::new()),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `/apps/{id}/{tail}`, the path that is signed.
    pub fn app_path(&self, tail: &str) -> String {
        format!("{}/apps/{}/{tail}", self.endpoint.path, self.app_id)
    }

    async fn connection(&self, dialer: &Dialer) -> Result<SendRequest<Full<Bytes>>, RestError> {
        loop {
            let pooled = self.idle.borrow_mut().pop();
            match pooled {
                Some(conn) if !conn.is_closed() => return Ok(conn),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = dialer
            .connect(self.endpoint.addr)
            .await
            .map_err(|e| RestError::Io(format!("connect {}: {e}", self.endpoint.url)))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| RestError::Io(e.to_string()))?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Signed request; `Ok(body)` only for 200.
    pub async fn request(
        &self,
        dialer: &Dialer,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Bytes, RestError> {
        let query = ferrocast_protocol::rest::sign_query(
            method,
            path,
            params,
            &body,
            &self.key,
            &self.secret,
            crate::sys::unix_secs(),
        );
        let mut sender = self.connection(dialer).await?;
        sender.ready().await.map_err(|e| RestError::Io(e.to_string()))?;
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("{path}?{query}"))
            .header(hyper::header::HOST, &self.endpoint.host);
        if !body.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| RestError::Io(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| RestError::Io(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RestError::Io(e.to_string()))?
            .to_bytes();
        self.idle.borrow_mut().push(sender);
        if status == 200 {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(RestError::Status(status, text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let ep = Endpoint::parse("ws://127.0.0.1:6001", &["ws"]).unwrap();
        assert_eq!(ep.addr, "127.0.0.1:6001".parse().unwrap());
        assert_eq!(ep.path, "");
        assert_eq!(ep.host, "127.0.0.1:6001");
        let ep = Endpoint::parse("ws://127.0.0.1:7000/pusher/", &["ws"]).unwrap();
        assert_eq!(ep.path, "/pusher");
        let ep = Endpoint::parse("http://localhost", &["http"]).unwrap();
        assert_eq!(ep.addr.port(), 80);
        assert!(Endpoint::parse("wss://127.0.0.1:1", &["ws"]).is_err());
        assert!(Endpoint::parse("127.0.0.1:1", &["ws"]).is_err());
    }
}
