//! The HTTP side of a node: accepting connections, routing, health and metrics endpoints.
//!
//! One port serves WebSocket upgrades on `/app/{key}`, the REST API under `/apps/`, and
//! `/healthz` / `/readyz`; `/metrics` has its own port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::api_error::{json_response, ApiError};
use crate::rest::{self, ApiRequest};
use crate::state::ServerState;
use crate::websocket::{self, ConnectRequest};
use ferrocast_broker::Limit;

type HttpResponse = Response<Full<Bytes>>;

/// Accept connections on `listener` until shutdown begins.
pub async fn serve(state: Arc<ServerState>, listener: TcpListener) {
    let shutdown = state.lifecycle.shutdown_token();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| route(state.clone(), req, peer));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                debug!(error = %e, %peer, "http connection ended with an error");
            }
        });
    }
}

async fn route(state: Arc<ServerState>, req: Request<Incoming>, peer: SocketAddr) -> Result<HttpResponse, Infallible> {
    let path = req.uri().path().to_owned();
    let response = if let Some(key) = path.strip_prefix("/app/") {
        upgrade(state, req, key.to_owned(), peer)
    } else if path.starts_with("/apps/") {
        api(state, req, peer).await
    } else {
        match path.as_str() {
            "/healthz" => text(StatusCode::OK, "ok"),
            "/readyz" => readiness(&state),
            "/" => text(StatusCode::OK, "ferrocast: Pusher Channels protocol server"),
            _ => ApiError::NotFound(format!("no route for {path}")).into_response(),
        }
    };
    Ok(response)
}

/// 200 only while the node takes traffic: not draining, and joined to the cluster.
fn readiness(state: &ServerState) -> HttpResponse {
    if !state.lifecycle.is_ready() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining")
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

fn upgrade(state: Arc<ServerState>, mut req: Request<Incoming>, key: String, peer: SocketAddr) -> HttpResponse {
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
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default()),
        Err(e) => {
            if let ApiError::OverLimit { limit, .. } = &e {
                state.node.observer().limit_rejected(&app_id, *limit);
            }
            e.into_response()
        }
    };
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
    let Some(app) = state.node.apps().by_id(app_id).cloned() else {
        return Err(ApiError::NotFound(format!("no app with id {app_id:?}")));
    };
    let (parts, body) = req.into_parts();
    let limit = rest::max_body_bytes(&app);
    let body = match Limited::new(body, limit).collect().await {
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
    rest::handle(state, &app, route, channel, &params, &body).await
}

/// Serve `/metrics` on its own listener; it keeps answering while the node drains.
pub async fn serve_metrics(state: Arc<ServerState>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    Ok::<_, Infallible>(match req.uri().path() {
                        "/metrics" => {
                            refresh_cluster_metrics(&state);
                            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                            );
                            response
                        }
                        _ => text(StatusCode::NOT_FOUND, "not found"),
                    })
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Copy the backplane's own counters into the registry just before a scrape.
fn refresh_cluster_metrics(state: &ServerState) {
    use crate::metrics::ClusterMetrics;
    use std::sync::atomic::Ordering::Relaxed;
    let local = state.node.local_stats();
    for app in state.node.apps().iter() {
        let stats = local.get(app.id()).copied().unwrap_or_default();
        state
            .metrics
            .set_local(app.id(), stats.subscriptions, stats.channels, stats.presence_members);
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
        m.rtt.set(s.ping_rtt_us.load(Relaxed) as f64 / 1e6);
    }
}
