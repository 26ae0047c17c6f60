//! The HTTP side of a node: accepting connections, routing, health and metrics endpoints.
//!
//! One port serves WebSocket upgrades on `/app/{key}`, the REST API under `/apps/`, and
//! `/healthz` / `/readyz`; `/metrics` has its own port, which answers `/healthz` and `/readyz`
//! too so probes survive a saturated client port. What a connection may hold before it is
//! routed (descriptors, deadlines, per-IP caps, TLS) is bounded in [`crate::net`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::debug;

use crate::api_error::{json_response, ApiError};
use crate::net::{self, ClientStream, Clock, IpSlot, OpenSlot, Refusal, Watched};
use crate::rest::{self, ApiRequest};
use crate::state::ServerState;
use crate::websocket::{self, ConnectRequest};
use ferrocast_broker::Limit;

type HttpResponse = Response<Full<Bytes>>;

/// A refused connection (per-IP cap at accept) gets this long to send its request and read
/// the 429, at most: refusals must not hold descriptors for the whole header deadline.
const REFUSED_GRACE: Duration = Duration::from_secs(2);

/// What one client connection's requests share: its client address, a refusal decided at
/// accept, and the slots it holds (the node's open-connection count, the IP's), released
/// when the last holder (the connection task or its WebSocket) drops it.
struct Connection {
    peer: SocketAddr,
    refusal: Option<Refusal>,
    /// Taken by the WebSocket on upgrade, so the connection's state is freed then and the
    /// idle socket keeps only the slots themselves.
    slots: std::sync::Mutex<Option<Slots>>,
}

/// The node's open-connection slot and the client IP's, for as long as the TCP connection lives.
type Slots = (OpenSlot, Option<IpSlot>);

impl Connection {
    fn take_slots(&self) -> Option<Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Accept client connections on `listener` until shutdown begins.
pub async fn serve(state: Arc<ServerState>, listener: TcpListener) {
    let shutdown = state.lifecycle.shutdown_token();
    let errors = state.metrics.edge.accept_errors.clone();
    let accept_state = state.clone();
    net::accept_loop(&listener, "client", shutdown, errors, move |stream, peer| {
        let state = &accept_state;
        match state.edge.open.try_open() {
            Some(open) => {
                tokio::spawn(client_connection(state.clone(), stream, peer, open));
            }
            // Closed at once (dropped): the node keeps its descriptor reserve.
            None => state.metrics.edge.refused_node_full.inc(),
        }
    })
    .await;
}

/// One client connection: PROXY header, per-IP admission, TLS handshake, then HTTP under the
/// deadlines.
async fn client_connection(state: Arc<ServerState>, mut stream: TcpStream, peer: SocketAddr, open: OpenSlot) {
    let _ = stream.set_nodelay(true);
    let edge = &state.edge;
    let m = &state.metrics.edge;
    let accepted = Instant::now();
    let mut header_deadline = accepted + edge.deadlines.header;
    let mut client = peer;
    if edge.proxy_protocol {
        match tokio::time::timeout_at(header_deadline, Box::pin(net::read_proxy_header(&mut stream))).await {
            Ok(Ok(source)) => client = source.unwrap_or(peer),
            Ok(Err(e)) => return debug!(error = %e, %peer, "connection dropped: bad PROXY header"),
            Err(_) => return m.header_timeouts.inc(),
        }
    }
    let mut refusal = None;
    let mut ip_slot = None;
    if edge.trusted_proxy_hops == 0 {
        match edge.ip_limits.acquire_open(client.ip().to_canonical()) {
            Ok(slot) => ip_slot = slot,
            Err(r) => {
                r.count(m);
                refusal = Some(r);
                header_deadline = header_deadline.min(accepted + REFUSED_GRACE);
            }
        }
    }
    let io = match &edge.tls {
        None => ClientStream::Plain(stream),
        // Boxed: the handshake's state is large and plain connections should not carry its room.
        Some(tls) => match tokio::time::timeout_at(header_deadline, Box::pin(tls.acceptor().accept(stream))).await {
            Ok(Ok(tls)) => ClientStream::Tls(Box::new(tls)),
            Ok(Err(e)) => return debug!(error = %e, %peer, "TLS handshake failed"),
            Err(_) => return m.header_timeouts.inc(),
        },
    };
    let conn = Arc::new(Connection {
        peer: client,
        refusal,
        slots: std::sync::Mutex::new(Some((open, ip_slot))),
    });
    let clock = Arc::new(Clock::new(edge.deadlines, header_deadline));
    let service = {
        let (state, clock) = (state.clone(), clock.clone());
        service_fn(move |req| {
            let (state, clock, conn) = (state.clone(), clock.clone(), conn.clone());
            async move {
                clock.request_started();
                let response = route(state, req, conn).await;
                clock.request_finished();
                response
            }
        })
    };
    let http = http1::Builder::new()
        .serve_connection(TokioIo::new(Watched::new(io, clock.clone())), service)
        .with_upgrades();
    if let Some(Err(e)) = net::watch(&clock, http, m).await {
        debug!(error = %e, %peer, "http connection ended with an error");
    }
}

async fn route(
    state: Arc<ServerState>,
    req: Request<Incoming>,
    conn: Arc<Connection>,
) -> Result<HttpResponse, Infallible> {
    if let Some(refusal) = conn.refusal {
        return Ok(too_many(refusal));
    }
    let path = req.uri().path().to_owned();
    let response = if let Some(key) = path.strip_prefix("/app/") {
        match admit_request(&state, &req, &conn, Admission::Connection) {
            Ok((client, slot)) => {
                // One IP slot either way: the connection's (client known at accept) or this
                // request's (X-Forwarded-For).
                let held = conn.take_slots().map(|(open, ip)| (open, ip.or(slot)));
                upgrade(state, req, key.to_owned(), held, client)
            }
            Err(denied) => denied.into_response(),
        }
    } else if fastwebsockets::upgrade::is_upgrade_request(&req) {
        // Only `/app/{key}` speaks WebSocket: any other upgrade is refused over HTTP rather
        // than answered with a page (or an API error) a client could mistake for a server.
        ApiError::NotFound(format!("no WebSocket endpoint at {path}; connect to /app/{{key}}")).into_response()
    } else if path.starts_with("/apps/") {
        match admit_request(&state, &req, &conn, Admission::Request) {
            Ok((client, _slot)) => api(state, req, client).await,
            Err(denied) => denied.into_response(),
        }
    } else {
        health(&state, &path).unwrap_or_else(|| match path.as_str() {
            "/" => text(StatusCode::OK, "ferrocast: Pusher Channels protocol server"),
            _ => ApiError::NotFound(format!("no route for {path}")).into_response(),
        })
    };
    Ok(response)
}

/// `/healthz` and `/readyz`, answered the same on the client and the metrics port.
fn health(state: &ServerState, path: &str) -> Option<HttpResponse> {
    match path {
        "/healthz" => Some(text(StatusCode::OK, "ok")),
        "/readyz" => Some(readiness(state)),
        _ => None,
    }
}

/// A request refused before routing; the connection closes after the answer.
enum Denied {
    /// 400: the trusted `X-Forwarded-For` entry is not an address.
    Forwarded(net::ForwardedError),
    /// 429: over a per-IP cap.
    Refused(Refusal),
}

impl Denied {
    fn into_response(self) -> HttpResponse {
        match self {
            Denied::Forwarded(e) => {
                let mut response = text_owned(StatusCode::BAD_REQUEST, e.to_string());
                close_after(&mut response);
                response
            }
            Denied::Refused(r) => too_many(r),
        }
    }
}

/// What a request is to the per-IP caps: a WebSocket is a new connection (counted against the
/// rate); a REST request is not, and behind `X-Forwarded-For` only holds a slot while it runs.
#[derive(Clone, Copy)]
enum Admission {
    Connection,
    Request,
}

/// The client's address, and, behind `X-Forwarded-For` proxies (where the client is only known
/// per request), the request's slot against that IP's caps, held for the request or the
/// WebSocket's life.
fn admit_request(
    state: &ServerState,
    req: &Request<Incoming>,
    conn: &Connection,
    admission: Admission,
) -> Result<(SocketAddr, Option<IpSlot>), Denied> {
    let refused = |r: Refusal| {
        r.count(&state.metrics.edge);
        Denied::Refused(r)
    };
    let limits = &state.edge.ip_limits;
    let hops = state.edge.trusted_proxy_hops;
    if hops == 0 {
        // The connection holds its concurrent slot since accept; a WebSocket also counts
        // against the rate.
        if let Admission::Connection = admission {
            limits.take_rate(conn.peer.ip().to_canonical()).map_err(refused)?;
        }
        return Ok((conn.peer, None));
    }
    let values = req.headers().get_all("x-forwarded-for").iter().map(|v| v.as_bytes());
    let ip = net::forwarded_client(conn.peer.ip(), hops, values).map_err(Denied::Forwarded)?;
    let slot = match admission {
        Admission::Connection => limits.acquire(ip),
        Admission::Request => limits.acquire_open(ip),
    };
    Ok((SocketAddr::new(ip, 0), slot.map_err(refused)?))
}

/// 429 with `Retry-After`, and the connection closes after it.
fn too_many(refusal: Refusal) -> HttpResponse {
    let mut response = text(StatusCode::TOO_MANY_REQUESTS, refusal.message());
    response
        .headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from(refusal.retry_after()));
    close_after(&mut response);
    response
}

fn close_after(response: &mut HttpResponse) {
    response
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
}

/// 200 only while the node takes traffic: not draining, its apps loaded (the postgres registry
/// read them once; it stays ready through a PostgreSQL outage), and joined to the cluster.
fn readiness(state: &ServerState) -> HttpResponse {
    if !state.lifecycle.is_ready() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if !state.apps_loaded() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "apps not loaded yet (registry unavailable)",
        )
    } else if !state.node.is_ready() {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not joined to the cluster (backplane unavailable)",
        )
    } else {
        text(StatusCode::OK, "ready")
    }
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// What a WebSocket holds for its whole life: its connection's slots.
type Held = Option<Slots>;

fn upgrade(
    state: Arc<ServerState>,
    mut req: Request<Incoming>,
    key: String,
    held: Held,
    peer: SocketAddr,
) -> HttpResponse {
    if !state.lifecycle.is_ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade");
    }
    let params = ferrocast_protocol::rest::parse_query(req.uri().query().unwrap_or(""));
    let connect = ConnectRequest {
        app_key: key,
        protocol: params.into_iter().find(|(k, _)| k == "protocol").map(|(_, v)| v),
        origin: req
            .headers()
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        remote: Some(peer),
    };
    let (response, fut) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(upgrade) => upgrade,
        Err(e) => return text_owned(StatusCode::BAD_REQUEST, format!("bad WebSocket upgrade: {e}")),
    };
    tokio::spawn(async move {
        let _held = held;
        match fut.await {
            Ok(ws) => websocket::serve(state, connect, ws).await,
            Err(e) => debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn text_owned(status: StatusCode, body: String) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

async fn api(state: Arc<ServerState>, req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    let started = std::time::Instant::now();
    let path = req.uri().path().to_owned();
    let Some((app_id, route, channel)) = rest::route(&path) else {
        state
            .metrics
            .rest_request("unknown", 404, started.elapsed().as_secs_f64());
        return ApiError::NotFound(format!("no API route {path}")).into_response();
    };
    let result = api_call(&state, req, &app_id, route, channel, peer).await;
    let timed_out = matches!(result, Err(ApiError::BodyTimeout(_)));
    let mut response = match result {
        Ok(body) => json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()),
        Err(e) => {
            if let ApiError::OverLimit { limit, .. } = &e {
                state.node.observer().limit_rejected(&app_id, *limit);
            }
            e.into_response()
        }
    };
    if timed_out {
        // The rest of the body may still come: the connection cannot be reused.
        close_after(&mut response);
    }
    let elapsed = started.elapsed().as_secs_f64();
    state
        .metrics
        .rest_request(route.label(), response.status().as_u16(), elapsed);
    response
}

async fn api_call(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    app_id: &str,
    route: rest::Route,
    channel: Option<String>,
    peer: SocketAddr,
) -> Result<serde_json::Value, ApiError> {
    let Some(app) = state.node.app_by_id(app_id).await else {
        return Err(ApiError::NotFound(format!("no app with id {app_id:?}")));
    };
    let (parts, body) = req.into_parts();
    let limit = rest::max_body_bytes(&app);
    let deadline = state.edge.deadlines.body;
    let Ok(collected) = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await else {
        state.metrics.edge.body_timeouts.inc();
        let message = format!("request body not received within {} s", deadline.as_secs());
        return Err(ApiError::BodyTimeout(message));
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let message = format!("request body is larger than {limit} bytes");
            return Err(ApiError::over_limit(Limit::EventPayloadSize, message));
        }
        Err(e) => return Err(ApiError::BadRequest(format!("could not read body: {e}"))),
    };
    let request = ApiRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        body: &body,
        remote: Some(peer),
    };
    let params = rest::authorize(&app, route, &request, state.node.observer().as_ref())?;
    // The head and the body are slices of hyper's read buffer: dropped before the publish is
    // awaited, they let the connection reuse that buffer for its next request instead of
    // allocating a fresh one per request (see docs/benchmarks.md, issue 16).
    drop(parts);
    rest::handle(state, &app, route, channel, &params, body).await
}

/// Serve `/metrics`, `/healthz` and `/readyz` on their own listener, with its own small cap
/// and the same deadlines: probes and scrapes keep working while the client listener is
/// saturated, and keep answering while the node drains.
pub async fn serve_metrics(state: Arc<ServerState>, listener: TcpListener) {
    let errors = state.metrics.edge.accept_errors.clone();
    let accept_state = state.clone();
    // Never cancelled: the task is aborted at the very end of shutdown.
    let forever = tokio_util::sync::CancellationToken::new();
    net::accept_loop(&listener, "metrics", forever, errors, move |stream, _| {
        let state = &accept_state;
        match state.edge.metrics_open.try_open() {
            Some(open) => {
                tokio::spawn(metrics_connection(state.clone(), stream, open));
            }
            None => state.metrics.edge.refused_metrics_full.inc(),
        }
    })
    .await;
}

async fn metrics_connection(state: Arc<ServerState>, stream: TcpStream, _open: OpenSlot) {
    let clock = Arc::new(Clock::new(
        state.edge.deadlines,
        Instant::now() + state.edge.deadlines.header,
    ));
    let service = {
        let (state, clock) = (state.clone(), clock.clone());
        service_fn(move |req: Request<Incoming>| {
            let (state, clock) = (state.clone(), clock.clone());
            async move {
                clock.request_started();
                let response = metrics_route(&state, req.uri().path());
                clock.request_finished();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let http = http1::Builder::new().serve_connection(TokioIo::new(Watched::new(stream, clock.clone())), service);
    let _ = net::watch(&clock, http, &state.metrics.edge).await;
}

fn metrics_route(state: &ServerState, path: &str) -> HttpResponse {
    if let Some(response) = health(state, path) {
        return response;
    }
    if path != "/metrics" {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    refresh_cluster_metrics(state);
    let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Copy the backplane's own counters into the registry just before a scrape.
fn refresh_cluster_metrics(state: &ServerState) {
    use crate::metrics::ClusterMetrics;
    use std::sync::atomic::Ordering::Relaxed;
    let local = state.node.local_stats();
    for app in state.node.apps().snapshot().iter() {
        let stats = local.get(app.id()).copied().unwrap_or_default();
        state
            .metrics
            .set_local(app.id(), stats.subscriptions, stats.channels, stats.presence_members);
    }
    if let Some(registry) = &state.registry {
        state.metrics.registry.sync(registry.stats());
    }
    let m = &state.metrics.cluster;
    m.ready.set(i64::from(state.node.is_ready()));
    if let crate::run::ClusterLink::Redis(redis) = &state.link {
        let s = &redis.stats;
        ClusterMetrics::sync(&m.published, s.published.load(Relaxed));
        ClusterMetrics::sync(&m.received, s.received.load(Relaxed));
        ClusterMetrics::sync(&m.errors, s.errors.load(Relaxed));
        ClusterMetrics::sync(&m.reconnects, s.reconnects.load(Relaxed));
        ClusterMetrics::sync(&m.decode_errors, s.decode_errors.load(Relaxed));
        ClusterMetrics::sync(&m.reaped_nodes, s.reaped_nodes.load(Relaxed));
        ClusterMetrics::sync(&m.replayed, s.replayed.load(Relaxed));
        ClusterMetrics::sync(&m.replay_gaps, s.replay_gaps.load(Relaxed));
        ClusterMetrics::sync(&m.replay_trimmed, s.replay_trimmed.load(Relaxed));
        ClusterMetrics::sync(&m.duplicates_dropped, s.duplicates_dropped.load(Relaxed));
        ClusterMetrics::sync(&m.resubscribed, s.resubscribed.load(Relaxed));
        m.last_replayed.set(s.last_replayed.load(Relaxed) as i64);
        m.rtt.set(s.ping_rtt_us.load(Relaxed) as f64 / 1e6);
    }
}
