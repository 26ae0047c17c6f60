//! A client connection's byte stream, plain TCP or TLS, and the halves a WebSocket is split
//! into. Plain TCP keeps tokio's owned halves (no lock between reader and writer); TLS, whose
//! reads and writes share one session, goes through `tokio::io::split`. Enums rather than
//! boxed trait objects: a plain idle socket pays one tag, not an allocation.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::deadline::Watched;

type Tls = Box<TlsStream<TcpStream>>;

/// What hyper serves on the client port.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Tls),
}

/// The read half of an upgraded WebSocket.
pub enum ClientRead {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<Tls>),
}

/// The write half of an upgraded WebSocket.
pub enum ClientWrite {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<Tls>),
}

/// Take an upgraded connection back down to its stream and split it; also the bytes hyper
/// read past the request (normally none), copied out so hyper's buffer is freed now.
pub fn into_halves(upgraded: Upgraded) -> Option<(ClientRead, ClientWrite, Vec<u8>)> {
    let parts = upgraded.downcast::<TokioIo<Watched<ClientStream>>>().ok()?;
    let pending = parts.read_buf.to_vec();
    drop(parts.read_buf);
    let (read, write) = match parts.io.into_inner().into_inner() {
        ClientStream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            (ClientRead::Plain(r), ClientWrite::Plain(w))
        }
        ClientStream::Tls(tls) => {
            let (r, w) = tokio::io::split(tls);
            (ClientRead::Tls(r), ClientWrite::Tls(w))
        }
    };
    Some((read, write, pending))
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Self::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Self::Tls($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        dispatch!(self, s => s.poll_read(cx, buf))
    }
}

macro_rules! impl_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                dispatch!(self, s => s.poll_write(cx, buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                dispatch!(self, s => s.poll_write_vectored(cx, bufs))
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    Self::Plain(s) => s.is_write_vectored(),
                    Self::Tls(s) => s.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                dispatch!(self, s => s.poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                dispatch!(self, s => s.poll_shutdown(cx))
            }
        }
    };
}

impl_write!(ClientStream);
impl_write!(ClientWrite);
