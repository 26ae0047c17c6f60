//! One WebSocket connection: admission, then a reader and a writer.
//!
//! - [`frame_reader`]: client frames, with a buffer that stays tiny while a socket is idle.
//! - [`reader`]: frames in, one at a time, to the node.
//! - [`writer`]: pre-encoded frames out, idle pings, drain and close.
//!
//! After fastwebsockets completes the upgrade, the connection is taken back down to its TCP
//! stream and split into owned halves, so reader and writer never share a lock (a TLS stream
//! is split with `tokio::io::split`, see [`crate::net`]).

pub mod frame_reader;
mod reader;
mod writer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrocast_broker::audit::{self, AuthDenial, Denial};
use ferrocast_broker::ConnectionOutbox;
use ferrocast_broker::{frame, ConnectError, Session};
use ferrocast_protocol::codes::close;
use ferrocast_protocol::outbound;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tracing::{debug, error};

use crate::metrics::AppMetrics;
use crate::net::ClientWrite;
use crate::state::ServerState;
use frame_reader::FrameReader;
use writer::{write_loop, WriterContext};

/// "Close without a close frame": the peer is gone (1006 is never sent on the wire).
pub(crate) const ABNORMAL: u16 = 1006;
/// A write that makes no progress for this long means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the upgrade request said, checked after the upgrade so the client gets a close code.
pub struct ConnectRequest {
    pub app_key: String,
    pub protocol: Option<String>,
    pub origin: Option<String>,
    /// The client's address, for the audit log.
    pub remote: Option<std::net::SocketAddr>,
}

/// Milliseconds since process start, for cheap "last seen" stamps.
fn now_ms() -> u64 {
    ferrocast_broker::process_millis()
}

/// Run a connection from the completed upgrade to the end.
pub async fn serve(state: Arc<ServerState>, req: ConnectRequest, ws: fastwebsockets::WebSocket<TokioIo<Upgraded>>) {
    let _open = state.lifecycle.track_connection();
    let upgraded = ws.into_inner().into_inner();
    // Plain TCP splits into owned halves; TLS through `tokio::io::split`. Bytes hyper read past
    // the request (normally none) are copied out so hyper's read buffer is freed now.
    let Some((read, mut write, pending)) = crate::net::into_halves(upgraded) else {
        return error!("upgraded connection is not a client stream; dropped");
    };
    // Rare, large futures are boxed so the idle connection's task stays small.
    let (mut session, outbox, metrics) = match Box::pin(admit(&state, &req)).await {
        Ok(admitted) => admitted,
        Err((code, message)) => {
            debug!(code, message, "connection refused");
            refuse(&mut write, code, &message).await;
            return;
        }
    };
    metrics.opened.inc();
    metrics.connections.inc();
    let established = outbound::connection_established(session.socket_id(), state.config.server.activity_timeout_s);
    session.send_json(&established);

    let last_seen = Arc::new(AtomicU64::new(now_ms()));
    let writer = tokio::spawn(write_loop(WriterContext {
        write,
        outbox,
        conn: session.conn.clone(),
        last_seen: last_seen.clone(),
        activity: Duration::from_secs(state.config.server.activity_timeout_s),
        shutdown: state.lifecycle.shutdown_token(),
        grace: Duration::from_secs(state.config.server.shutdown_grace_s),
        metrics: metrics.clone(),
        broken: false,
        unreported: (0, 0),
    }));
    let frames = FrameReader::new(read, &pending, reader::max_frame_bytes(&session));
    drop(pending);
    reader::read_loop(&state, frames, &mut session, &last_seen, &metrics).await;
    let conn = session.conn.clone();
    conn.close(ABNORMAL);
    Box::pin(state.node.disconnect(session)).await;
    let _ = writer.await;
    let code = conn.close_code().unwrap_or(ABNORMAL);
    if code == close::OVER_CAPACITY {
        metrics.slow_consumers.inc();
    }
    metrics.closed(code);
    metrics.connections.dec();
}

async fn admit(
    state: &ServerState,
    req: &ConnectRequest,
) -> Result<(Session, ConnectionOutbox, AppMetrics), (u16, String)> {
    match req.protocol.as_deref() {
        None => return Err((close::NO_PROTOCOL, "no protocol version supplied".into())),
        Some("5" | "6" | "7") => {}
        Some(other) => {
            let message = format!("unsupported protocol version {other:?}; this server speaks 7");
            return Err((close::UNSUPPORTED_PROTOCOL, message));
        }
    }
    let Some(app) = state.node.app_by_key(&req.app_key).await else {
        audit_denied(state, req, AuthDenial::UnknownAppKey, None);
        return Err((close::UNKNOWN_APP, "no app with this key".into()));
    };
    if !app.config().origin_allowed(req.origin.as_deref()) {
        audit_denied(state, req, AuthDenial::OriginNotAllowed, Some(app.id()));
        return Err((close::UNAUTHORIZED, "origin not allowed for this app".into()));
    }
    let metrics = state.metrics.app(app.id());
    let app_id = app.id().to_owned();
    match state.node.connect(app).await {
        Ok((session, outbox)) => Ok((session, outbox, metrics)),
        Err(ConnectError::AppDisabled) => {
            audit_denied(state, req, AuthDenial::AppDisabled, Some(&app_id));
            Err((close::APP_DISABLED, "app is disabled".into()))
        }
        Err(ConnectError::AppRemoved) => Err((close::UNKNOWN_APP, "no app with this key".into())),
        Err(ConnectError::OverQuota) => Err((close::OVER_CONNECTION_QUOTA, "app is over its connection quota".into())),
        Err(ConnectError::Backplane(e)) => {
            tracing::warn!(error = %e, "connection refused: cluster state unavailable");
            Err((close::OVER_CAPACITY, "server temporarily unavailable".into()))
        }
    }
}

/// Audit a refused connection (the app key only when it matched no app: keys are public).
fn audit_denied(state: &ServerState, req: &ConnectRequest, reason: AuthDenial, app_id: Option<&str>) {
    let mut denial = Denial::new(reason);
    denial.app_id = app_id;
    denial.app_key = app_id.is_none().then_some(req.app_key.as_str());
    denial.remote = req.remote;
    audit::denied(state.node.observer().as_ref(), &denial);
}

/// Tell a refused client why (`pusher:error`) and close with the same code.
async fn refuse(write: &mut ClientWrite, code: u16, message: &str) {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&frame::text(&outbound::error(Some(code), message)));
    buf.extend_from_slice(&frame::close(code, message));
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        write.write_all(&buf).await?;
        write.shutdown().await
    })
    .await;
}
