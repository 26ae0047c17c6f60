//! The Pusher HTTP API: `/apps/{app_id}/...`.
//!
//! Every request goes through the same gate: find the app (404), verify the signature over the
//! exact bytes received (401), refuse a disabled app (403); then a read takes one unit of the
//! app's read budget (429), while a publish parses and validates its body in full and takes
//! one unit per (event, channel) of the app's event budget (429) before anything is published.
//! Both budgets are cluster-wide ([`ferrocast_broker::ClusterState::take_rate`]): with Redis,
//! one round trip per request, and none for an app whose budget is unlimited.
//!
//! An event naming a channel more than once is delivered once per distinct channel.

use std::sync::Arc;

use bytes::Bytes;
use ferrocast_broker::audit::{self, AuthDenial, Denial};
use ferrocast_broker::{App, ChannelCounts, Limit, NodeObserver, PublishRequest, RateKind};
use ferrocast_protocol::channel::{self, ChannelKind};
use ferrocast_protocol::rest::{self, BatchRequest, RestAuthError, SignedRequest, TriggerRequest};
use ferrocast_protocol::signature;
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;
use crate::state::ServerState;

/// The API routes, used as the `route` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Events,
    BatchEvents,
    Channels,
    Channel,
    Users,
    /// `POST /apps/{id}/users/{user_id}/terminate_connections` (reference §9.7).
    TerminateUser,
    /// `GET /apps/{id}/webhooks/dead_letters` (admin, Ferrocast's own).
    DeadLetters,
    /// `POST /apps/{id}/webhooks/dead_letters/replay` (admin, Ferrocast's own).
    ReplayDeadLetters,
}

impl Route {
    /// Every route, so its REST metrics are exported at zero from the start. A new variant
    /// must be added here too: the `every_route_is_listed` test fails otherwise.
    pub const ALL: [Route; 8] = [
        Route::Events,
        Route::BatchEvents,
        Route::Channels,
        Route::Channel,
        Route::Users,
        Route::TerminateUser,
        Route::DeadLetters,
        Route::ReplayDeadLetters,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::Events => "events",
            Route::BatchEvents => "batch_events",
            Route::Channels => "channels",
            Route::Channel => "channel",
            Route::Users => "users",
            Route::TerminateUser => "terminate_user_connections",
            Route::DeadLetters => "webhook_dead_letters",
            Route::ReplayDeadLetters => "webhook_dead_letters_replay",
        }
    }

    /// Reads draw from `max_read_requests_per_second`.
    fn is_read(self) -> bool {
        matches!(
            self,
            Route::Channels | Route::Channel | Route::Users | Route::DeadLetters
        )
    }

    fn method(self) -> Method {
        match self {
            Route::Events | Route::BatchEvents | Route::TerminateUser | Route::ReplayDeadLetters => Method::POST,
            _ => Method::GET,
        }
    }
}

/// A request routed to an app.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a Bytes,
    /// The client's address, for the audit log.
    pub remote: Option<std::net::SocketAddr>,
}

/// Parse `/apps/{id}/...` into the app id, the route and the channel name or user id (if any).
pub fn route(path: &str) -> Option<(String, Route, Option<String>)> {
    let rest = path.strip_prefix("/apps/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let (app, route, channel) = match segments.as_slice() {
        [app, "events"] => (app, Route::Events, None),
        [app, "batch_events"] => (app, Route::BatchEvents, None),
        [app, "channels"] => (app, Route::Channels, None),
        [app, "channels", name] if !name.is_empty() => (app, Route::Channel, Some(decode(name))),
        [app, "channels", name, "users"] if !name.is_empty() => (app, Route::Users, Some(decode(name))),
        [app, "users", user, "terminate_connections"] if !user.is_empty() => {
            (app, Route::TerminateUser, Some(decode(user)))
        }
        [app, "webhooks", "dead_letters"] => (app, Route::DeadLetters, None),
        [app, "webhooks", "dead_letters", "replay"] => (app, Route::ReplayDeadLetters, None),
        _ => return None,
    };
    (!app.is_empty()).then(|| (decode(app), route, channel))
}

/// Largest REST body accepted before reading further (413 beyond).
pub fn max_body_bytes(app: &App) -> usize {
    let c = app.config();
    let per_event =
        c.max_payload_bytes().saturating_mul(2) + c.max_event_channels_at_once * (c.max_channel_name_length + 4) + 4096;
    per_event.saturating_mul(c.max_event_batch_size.max(1)).max(64 * 1024)
}

fn unix_now() -> u64 {
    ferrocast_broker::unix_seconds()
}

/// Check method, signature and app state. Denied authentication is audited (see
/// [`ferrocast_broker::audit`]) and counted through `observer`.
pub fn authorize(
    app: &App,
    route: Route,
    req: &ApiRequest<'_>,
    observer: &dyn NodeObserver,
) -> Result<Vec<(String, String)>, ApiError> {
    if *req.method != route.method() {
        return Err(ApiError::MethodNotAllowed(format!(
            "{} is not allowed here; use {}",
            req.method,
            route.method()
        )));
    }
    let params = rest::parse_query(req.query);
    let c = app.config();
    let signed = SignedRequest {
        method: req.method.as_str(),
        path: req.path,
        params: &params,
        body: req.body,
    };
    let now = unix_now();
    if let Err(e) = c.verify_signed(now, |secret| rest::verify_request(&signed, &c.key, secret, now)) {
        let reason = match e {
            RestAuthError::BadTimestamp => AuthDenial::RestTimestamp,
            _ => AuthDenial::RestSignature,
        };
        audit_denied(app, req, reason, observer);
        return Err(ApiError::Unauthorized(e.to_string()));
    }
    if app.is_refused() {
        audit_denied(app, req, AuthDenial::AppDisabled, observer);
        return Err(ApiError::Forbidden("app is disabled".into()));
    }
    Ok(params)
}

fn audit_denied(app: &App, req: &ApiRequest<'_>, reason: AuthDenial, observer: &dyn NodeObserver) {
    let mut denial = Denial::new(reason);
    denial.app_id = Some(app.id());
    denial.path = Some(req.path);
    denial.remote = req.remote;
    audit::denied(observer, &denial);
}

/// Serve an authorized request; returns the JSON body of a 200.
pub async fn handle(
    state: &Arc<ServerState>,
    app: &App,
    route: Route,
    channel: Option<String>,
    params: &[(String, String)],
    body: Bytes,
) -> Result<Value, ApiError> {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if route.is_read() {
        take_budget(state, app, RateKind::ReadRequests, 1).await?;
    }
    match route {
        Route::Events => trigger(state, app, body).await,
        Route::BatchEvents => batch(state, app, body).await,
        Route::Channels => list_channels(state, app, param("filter_by_prefix").unwrap_or(""), param("info")).await,
        Route::Channel => channel_info(state, app, channel.as_deref().unwrap_or_default(), param("info")).await,
        Route::Users => users(state, app, channel.as_deref().unwrap_or_default()).await,
        Route::TerminateUser => terminate_user(state, app, channel.as_deref().unwrap_or_default()).await,
        Route::DeadLetters => dead_letters(state, app, param("limit")).await,
        Route::ReplayDeadLetters => replay_dead_letters(state, app, &body).await,
    }
}

/// One validated event.
struct Event {
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<String>,
    info: Vec<String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn validate_event(
    app: &App,
    name: String,
    data: String,
    channels: Vec<String>,
    socket_id: Option<String>,
    info: Option<String>,
) -> Result<Event, ApiError> {
    let c = app.config();
    channel::validate_event_name(&name, c.max_event_name_length).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if data.len() > c.max_payload_bytes() {
        return Err(ApiError::over_limit(
            Limit::EventPayloadSize,
            format!("event data is larger than {} KB", c.max_event_payload_kb),
        ));
    }
    let channels = distinct(channels);
    if channels.is_empty() {
        return Err(ApiError::BadRequest("at least one channel is required".into()));
    }
    if channels.len() > c.max_event_channels_at_once {
        return Err(ApiError::over_limit(
            Limit::EventChannels,
            format!("at most {} channels per event", c.max_event_channels_at_once),
        ));
    }
    for ch in &channels {
        channel::validate_channel_name(ch, c.max_channel_name_length)
            .map_err(|e| ApiError::BadRequest(format!("channel {ch:?}: {e}")))?;
    }
    if channels.len() > 1
        && channels
            .iter()
            .any(|ch| ChannelKind::of(ch) == ChannelKind::PrivateEncrypted)
    {
        return Err(ApiError::BadRequest(
            "events to encrypted channels must name exactly one channel".into(),
        ));
    }
    if let Some(id) = &socket_id {
        if !signature::is_valid_socket_id(id) {
            return Err(ApiError::BadRequest(format!("invalid socket_id {id:?}")));
        }
    }
    let info = parse_info(info.as_deref())?;
    if info.iter().any(|a| a == "subscription_count") {
        subscription_count_enabled(app)?;
    }
    Ok(Event {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

/// The channels in their first-seen order, each once: an event is delivered once per channel
/// however often the request names it.
fn distinct(mut channels: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(channels.len());
    channels.retain(|ch| seen.insert(ch.clone()));
    channels
}

fn parse_info(info: Option<&str>) -> Result<Vec<String>, ApiError> {
    let attrs: Vec<String> = info
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = attrs
        .iter()
        .find(|a| !matches!(a.as_str(), "user_count" | "subscription_count"))
    {
        return Err(ApiError::BadRequest(format!("unknown info attribute {bad:?}")));
    }
    Ok(attrs)
}

/// `subscription_count` is a per-app feature (reference §3.7): asking an app without it is a
/// client error naming the setting, not a silent 0.
fn subscription_count_enabled(app: &App) -> Result<(), ApiError> {
    if app.config().enable_subscription_count {
        return Ok(());
    }
    Err(ApiError::BadRequest(
        "subscription_count is disabled for this app (enable_subscription_count)".into(),
    ))
}

/// Take `units` of one of the app's cluster-wide per-second budgets: 429 with `Retry-After`
/// when they do not fit, 503 when the cluster state cannot be asked.
async fn take_budget(state: &ServerState, app: &App, kind: RateKind, units: usize) -> Result<(), ApiError> {
    let decision = state.node.take_rate(app, kind, units as u64).await?;
    if decision.allowed {
        return Ok(());
    }
    let c = app.config();
    let (limit, message) = match kind {
        RateKind::BackendEvents => (
            Limit::BackendEventRate,
            format!("over {} events per second", c.max_backend_events_per_second),
        ),
        RateKind::ReadRequests => (
            Limit::ReadRequestRate,
            format!("over {} read requests per second", c.max_read_requests_per_second),
        ),
    };
    Err(ApiError::rate_limited(limit, message, decision.resets_in))
}

/// Publish `events`, which move into the backplane messages (no copy of names or data).
async fn publish(state: &ServerState, app: &App, events: Vec<Event>) -> Result<(), ApiError> {
    let requests = events
        .into_iter()
        .map(|event| PublishRequest {
            channels: event.channels,
            event: event.name,
            data: event.data,
            exclude_socket: event.socket_id,
        })
        .collect();
    state.node.publish(app, requests).await.map_err(|e| match e {
        ferrocast_broker::PublishError::Backplane(e) => ApiError::from(e),
        ferrocast_broker::PublishError::NotJoined => {
            ApiError::Unavailable("this node is not joined to the cluster, try again".into())
        }
    })
}

/// `body` is taken by value and dropped once parsed: see `http::api_call`.
async fn trigger(state: &ServerState, app: &App, body: Bytes) -> Result<Value, ApiError> {
    let req: TriggerRequest = parse_json(&body)?;
    drop(body);
    let channels = match (req.channels, req.channel) {
        (Some(list), None) => list,
        (None, Some(one)) => vec![one],
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give either 'channels' or 'channel', not both".into(),
            ))
        }
        (None, None) => return Err(ApiError::BadRequest("'channels' (or 'channel') is required".into())),
    };
    let mut event = validate_event(app, req.name, req.data, channels, req.socket_id, req.info)?;
    take_budget(state, app, RateKind::BackendEvents, event.channels.len()).await?;
    let info = std::mem::take(&mut event.info);
    let asked = match info.is_empty() {
        true => Vec::new(),
        false => event.channels.clone(),
    };
    publish(state, app, vec![event]).await?;
    if info.is_empty() {
        return Ok(json!({}));
    }
    let mut channels = Map::new();
    for ch in &asked {
        channels.insert(ch.clone(), counts_json(state, app, ch, &info).await?);
    }
    Ok(json!({ "channels": channels }))
}

async fn batch(state: &ServerState, app: &App, body: Bytes) -> Result<Value, ApiError> {
    let req: BatchRequest = parse_json(&body)?;
    drop(body);
    let max = app.config().max_event_batch_size;
    if req.batch.is_empty() {
        return Err(ApiError::BadRequest("'batch' must contain at least one event".into()));
    }
    if req.batch.len() > max {
        return Err(ApiError::over_limit(
            Limit::BatchSize,
            format!("at most {max} events per batch"),
        ));
    }
    let mut events = req
        .batch
        .into_iter()
        .map(|item| validate_event(app, item.name, item.data, vec![item.channel], item.socket_id, item.info))
        .collect::<Result<Vec<_>, _>>()?;
    take_budget(state, app, RateKind::BackendEvents, events.len()).await?;
    // What each event asked for (its first channel's counts), kept before the events move.
    let asked: Vec<Option<(String, Vec<String>)>> = events
        .iter_mut()
        .map(|e| match (e.channels.first(), e.info.is_empty()) {
            (Some(ch), false) => Some((ch.clone(), std::mem::take(&mut e.info))),
            _ => None,
        })
        .collect();
    publish(state, app, events).await?;
    if asked.iter().all(Option::is_none) {
        return Ok(json!({}));
    }
    let mut out = Vec::with_capacity(asked.len());
    for asked in &asked {
        let value = match asked {
            Some((ch, info)) => counts_json(state, app, ch, info).await?,
            None => json!({}),
        };
        out.push(value);
    }
    Ok(json!({ "batch": out }))
}

/// `user_count` (presence) and `subscription_count` (others) for a channel.
async fn counts_json(state: &ServerState, app: &App, ch: &str, info: &[String]) -> Result<Value, ApiError> {
    let counts = state.node.channel(app, ch).await?;
    let presence = ChannelKind::of(ch) == ChannelKind::Presence;
    let mut out = Map::new();
    for attr in info {
        match attr.as_str() {
            "user_count" if presence => out.insert(attr.clone(), counts.users.into()),
            "subscription_count" if !presence => out.insert(attr.clone(), counts.subscriptions.into()),
            _ => None,
        };
    }
    Ok(Value::Object(out))
}

async fn list_channels(state: &ServerState, app: &App, prefix: &str, info: Option<&str>) -> Result<Value, ApiError> {
    let attrs = parse_info(info)?;
    let wants_users = attrs.iter().any(|a| a == "user_count");
    if wants_users && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count requires filter_by_prefix to start with presence-".into(),
        ));
    }
    // The reference documents only user_count on the listing (§9.5).
    if attrs.iter().any(|a| a == "subscription_count") {
        return Err(ApiError::BadRequest(
            "info=subscription_count is not available on the channel list; ask GET /channels/{name}".into(),
        ));
    }
    let mut channels = Map::new();
    for (name, counts) in state.node.channels(app, prefix).await? {
        let mut entry = Map::new();
        if wants_users {
            entry.insert("user_count".into(), counts.users.into());
        }
        channels.insert(name, Value::Object(entry));
    }
    Ok(json!({ "channels": channels }))
}

fn channel_name(app: &App, name: &str) -> Result<ChannelKind, ApiError> {
    match channel::validate_channel_name(name, app.config().max_channel_name_length) {
        Ok(ChannelKind::ServerToUser) => Err(ApiError::BadRequest(
            "#server-to-user- channels have no channel info".into(),
        )),
        Ok(kind) => Ok(kind),
        Err(e) => Err(ApiError::BadRequest(format!("channel {name:?}: {e}"))),
    }
}

async fn channel_info(state: &ServerState, app: &App, name: &str, info: Option<&str>) -> Result<Value, ApiError> {
    let kind = channel_name(app, name)?;
    let attrs: Vec<&str> = info
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    for attr in &attrs {
        match (*attr, kind) {
            ("user_count", ChannelKind::Presence) => {}
            ("user_count", _) => {
                return Err(ApiError::BadRequest(
                    "user_count is only available on presence channels".into(),
                ))
            }
            ("subscription_count", ChannelKind::Presence) => {
                return Err(ApiError::BadRequest(
                    "subscription_count is not available on presence channels; use user_count".into(),
                ))
            }
            ("subscription_count", _) => subscription_count_enabled(app)?,
            ("cache", _) if channel::is_cache(name) => {}
            ("cache", _) => {
                return Err(ApiError::BadRequest(
                    "cache is only available on cache channels (cache-, private-cache-, private-encrypted-cache-, presence-cache-)".into(),
                ))
            }
            (other, _) => return Err(ApiError::BadRequest(format!("unknown info attribute {other:?}"))),
        }
    }
    let ChannelCounts { subscriptions, users } = state.node.channel(app, name).await?;
    let mut out = Map::new();
    out.insert("occupied".into(), (subscriptions > 0).into());
    for attr in attrs {
        let value = match attr {
            "user_count" => users.into(),
            "cache" => cache_info(state.node.cached_event(app, name).await?),
            _ => subscriptions.into(),
        };
        out.insert(attr.to_owned(), value);
    }
    Ok(Value::Object(out))
}

/// `{"data", "ttl"}` of the reference (§9.6), plus the event name a subscriber would get; `null`
/// when nothing is cached.
fn cache_info(cached: Option<ferrocast_broker::CachedEvent>) -> Value {
    match cached {
        Some(c) => json!({ "event": c.event, "data": c.data, "ttl": c.ttl_seconds() }),
        None => Value::Null,
    }
}

async fn users(state: &ServerState, app: &App, name: &str) -> Result<Value, ApiError> {
    if channel_name(app, name)? != ChannelKind::Presence {
        return Err(ApiError::BadRequest(
            "users are only available on presence channels".into(),
        ));
    }
    let ids = state.node.users(app, name).await?;
    let users: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(json!({ "users": users }))
}

/// Close every connection signed in as `user_id`, on every node (reference §6.5). Answers `{}`
/// once the terminate message is on the backplane (503 when it cannot be published). It costs
/// one unit of the app's event budget: like an event, it is a backplane publish the app drives.
/// The body is ignored (the Node SDK sends `{}`; it is covered by the signature anyway).
async fn terminate_user(state: &ServerState, app: &App, user_id: &str) -> Result<Value, ApiError> {
    if !ferrocast_protocol::user::is_valid_user_id(user_id) {
        return Err(ApiError::BadRequest(format!(
            "invalid user id {user_id:?}: 1 to 128 characters of A-Z a-z 0-9 _ - = @ , . ;"
        )));
    }
    take_budget(state, app, RateKind::BackendEvents, 1).await?;
    state.node.terminate_user(app, user_id).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed() {
        // Exhaustive: a new route does not compile until it has a position here, and the
        // assertion then fails until `Route::ALL` lists it there.
        let position = |r: Route| match r {
            Route::Events => 0,
            Route::BatchEvents => 1,
            Route::Channels => 2,
            Route::Channel => 3,
            Route::Users => 4,
            Route::TerminateUser => 5,
            Route::DeadLetters => 6,
            Route::ReplayDeadLetters => 7,
        };
        let positions: Vec<usize> = Route::ALL.iter().map(|r| position(*r)).collect();
        assert_eq!(positions, (0..Route::ALL.len()).collect::<Vec<_>>());
        let labels: std::collections::HashSet<_> = Route::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Route::ALL.len());
    }

    #[test]
    fn routes_are_recognised_and_channel_names_decoded() {
        assert!(matches!(route("/apps/1/events"), Some((id, Route::Events, None)) if id == "1"));
        assert!(matches!(
            route("/apps/1/batch_events"),
            Some((_, Route::BatchEvents, None))
        ));
        assert!(matches!(route("/apps/1/channels"), Some((_, Route::Channels, None))));
        let (_, r, ch) = route("/apps/1/channels/presence-a%40b").unwrap();
        assert_eq!((r, ch.as_deref()), (Route::Channel, Some("presence-a@b")));
        assert!(matches!(
            route("/apps/1/channels/x/users"),
            Some((_, Route::Users, Some(_)))
        ));
        let (_, r, user) = route("/apps/1/users/u%2D17/terminate_connections").unwrap();
        assert_eq!((r, user.as_deref()), (Route::TerminateUser, Some("u-17")));
        assert!(route("/apps/1/users//terminate_connections").is_none());
        assert!(route("/apps/1/users/u").is_none());
        assert!(matches!(
            route("/apps/1/webhooks/dead_letters"),
            Some((_, Route::DeadLetters, None))
        ));
        assert!(matches!(
            route("/apps/1/webhooks/dead_letters/replay"),
            Some((_, Route::ReplayDeadLetters, None))
        ));
        assert!(route("/apps/1/webhooks").is_none());
        assert_eq!(Route::ReplayDeadLetters.method(), Method::POST);
        assert_eq!(Route::DeadLetters.method(), Method::GET);
        assert!(route("/apps/1/nope").is_none());
        assert!(route("/apps//events").is_none());
        assert!(route("/apps/1/channels/").is_none());
        assert!(route("/other").is_none());
    }

    #[test]
    fn repeated_channels_are_kept_once_in_first_seen_order() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            distinct(names(&["a", "b", "a", "c", "b", "a"])),
            names(&["a", "b", "c"])
        );
        assert_eq!(distinct(names(&["a", "a", "a"])), names(&["a"]));
        assert!(distinct(Vec::new()).is_empty());
    }

    #[test]
    fn info_attributes_are_checked() {
        assert_eq!(parse_info(Some("user_count, subscription_count")).unwrap().len(), 2);
        assert!(parse_info(Some("bogus")).is_err());
        assert!(parse_info(None).unwrap().is_empty());
    }
}

/// The most dead letters one admin request lists or replays unless `limit` says otherwise.
const DEAD_LETTER_PAGE: usize = 100;

fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEAD_LETTER_PAGE),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=crate::webhooks::MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1..={}", crate::webhooks::MAX_PAGE))),
    }
}

/// `GET /apps/{id}/webhooks/dead_letters?limit=n`: the app's oldest dead letters (webhook
/// events whose retry window ended), with the idempotency key each was sent with.
async fn dead_letters(state: &ServerState, app: &App, limit: Option<&str>) -> Result<Value, ApiError> {
    let max = page_limit(limit)?;
    let letters = state
        .webhooks
        .dead_letters(app.id(), max)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhook queue unavailable: {e}")))?;
    Ok(json!({ "dead_letters": letters }))
}

/// The body of a replay: the dead letters to replay by id, or (none named) the oldest `limit`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ReplayBody {
    ids: Vec<String>,
    limit: Option<usize>,
}

/// `POST /apps/{id}/webhooks/dead_letters/replay`: put dead letters back into their lanes; they
/// are sent again with their original idempotency key and a new retry window.
async fn replay_dead_letters(state: &ServerState, app: &App, body: &Bytes) -> Result<Value, ApiError> {
    let request: ReplayBody = if body.is_empty() {
        ReplayBody::default()
    } else {
        parse_json(body)?
    };
    let max = page_limit(request.limit.map(|n| n.to_string()).as_deref())?;
    let done = state
        .webhooks
        .replay(app.id(), &request.ids, max)
        .await
        .map_err(|e| ApiError::Unavailable(format!("webhook queue unavailable: {e}")))?;
    Ok(json!(done))
}
