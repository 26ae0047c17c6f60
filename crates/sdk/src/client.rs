//! The [`Client`]: an app's credentials, its optional encryption master key, and the HTTP API
//! (protocol reference §9) over one reusable hyper connection pool.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::auth::{self, validate_channel, validate_socket_id, ChannelAuth, PresenceMember, UserAuth, UserData};
use crate::encryption::{is_encrypted_channel, MasterKey};
use crate::error::{Error, Result};
use crate::signing::signed_query_string;
use crate::webhook::{self, Webhook, WebhookError};

/// Query values keep these characters as they are (as the Node SDK, which does not escape).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b',');
/// Path segments (user ids) keep RFC 3986 `pchar`s.
const PATH_SEGMENT: &AsciiSet = &QUERY_VALUE
    .remove(b'=')
    .remove(b'@')
    .remove(b';')
    .remove(b':')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+');

/// Default base URL: a Ferrocast node on this machine with its default port.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:6001";
/// Default timeout of one HTTP API request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Client`] is built from.
#[derive(Debug, Clone)]
pub struct Config {
    app_id: String,
    key: String,
    secret: String,
    base_url: String,
    master_key: Option<MasterKey>,
    timeout: Duration,
}

impl Config {
    /// An app's id, key and secret; base URL [`DEFAULT_BASE_URL`], no encryption master key,
    /// timeout [`DEFAULT_TIMEOUT`].
    pub fn new(app_id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        Config {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            master_key: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The broker's HTTP API base, `http://host[:port]` or `https://host[:port]` (no path).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The 32-byte master key for `private-encrypted-` channels (see [`MasterKey::from_base64`]
    /// and [`MasterKey::from_bytes`]).
    pub fn master_key(mut self, key: MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// The master key from its standard base64 (44 characters); refused unless it decodes to
    /// exactly 32 bytes.
    pub fn master_key_base64(self, base64: &str) -> Result<Self> {
        Ok(self.master_key(MasterKey::from_base64(base64)?))
    }

    /// The master key from its 32 raw bytes; refused for any other length.
    pub fn master_key_bytes(self, bytes: &[u8]) -> Result<Self> {
        Ok(self.master_key(MasterKey::from_bytes(bytes)?))
    }

    /// Timeout of one HTTP API request (connection, request and whole response).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Optional parameters of a trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerParams {
    /// Exclude this connection (usually the sender's) from delivery.
    pub socket_id: Option<String>,
    /// Comma-separated attributes to report per channel (`user_count`, `subscription_count`).
    pub info: Option<String>,
}

/// One event of a [`Client::trigger_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEvent {
    /// The channel.
    pub channel: String,
    /// The event name.
    pub name: String,
    /// The event data: a JSON string is sent as it is, any other JSON value serialised (and for
    /// an encrypted channel, the value is serialised and sealed).
    pub data: serde_json::Value,
    /// Exclude this connection from delivery.
    pub socket_id: Option<String>,
    /// Attributes to report for this event's channel.
    pub info: Option<String>,
}

impl BatchEvent {
    /// An event without `socket_id` and `info`.
    pub fn new(channel: impl Into<String>, name: impl Into<String>, data: serde_json::Value) -> Self {
        BatchEvent {
            channel: channel.into(),
            name: name.into(),
            data,
            socket_id: None,
            info: None,
        }
    }
}

/// Attributes of one channel, as reported by the HTTP API (absent ones are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Whether the channel has subscribers (only in single-channel queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
    /// Distinct users of a presence channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    /// Subscribed connections of a non-presence channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<u64>,
    /// The cached event of a cache channel (`info=cache`); `None` when not asked for or when the
    /// cache is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachedEvent>,
}

/// The cached event of a cache channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedEvent {
    /// The cached event name, when the broker reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The cached data string.
    pub data: String,
    /// Seconds until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// Response of a trigger: per-channel attributes when `info` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerResponse {
    /// Channel name → attributes (empty without `info`).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelInfo>,
}

/// Response of a batch trigger: element *i* describes event *i* when any event had `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Attributes per event (empty without `info`).
    #[serde(default)]
    pub batch: Vec<ChannelInfo>,
}

/// Response of [`Client::channels`]: the occupied channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelList {
    /// Channel name → attributes (empty objects without `info`).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelInfo>,
}

/// A user of a presence channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user id.
    pub id: String,
}

#[derive(Deserialize, Default)]
struct Users {
    users: Vec<User>,
}

/// Query of [`Client::channels`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelsQuery {
    /// Only channels whose name starts with this.
    pub filter_by_prefix: Option<String>,
    /// Attributes to report per channel (`user_count` needs a `presence-` prefix).
    pub info: Option<String>,
}

#[derive(Serialize)]
struct TriggerBody<'a> {
    name: &'a str,
    data: String,
    channels: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

#[derive(Serialize)]
struct BatchItem<'a> {
    name: &'a str,
    channel: &'a str,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

/// The SDK's entry point: signs subscriptions and users, encrypts, verifies webhooks, and calls the
/// HTTP API of the broker. Cheap to clone (the connection pool is shared); build one per app and
/// keep it.
#[derive(Clone)]
pub struct Client {
    app_id: String,
    key: String,
    secret: String,
    master_key: Option<MasterKey>,
    scheme_authority: String,
    timeout: Duration,
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("base_url", &self.scheme_authority)
            .field("encryption", &self.master_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Fails on a base URL that is not `http://host[:port]` or
    /// `https://host[:port]`. HTTPS trusts the system's certificate store (`SSL_CERT_FILE`
    /// replaces it, e.g. for a private CA), or the Mozilla roots when the system has none. Does
    /// not connect: connections are opened on first use and kept alive.
    pub fn new(config: Config) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: config.base_url.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = config.base_url.parse().map_err(|_| bad("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("http" | "https")) => scheme.to_owned(),
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("the base URL takes no path or query"));
        }
        if config.app_id.is_empty() || config.key.is_empty() || config.secret.is_empty() {
            return Err(Error::InvalidConfig(
                "app id, key and secret must not be empty".to_owned(),
            ));
        }
        let roots = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match roots.with_native_roots() {
            Ok(builder) => builder,
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        }
        .https_or_http()
        .enable_http1()
        .build();
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            scheme_authority: format!("{scheme}://{authority}"),
            app_id: config.app_id,
            key: config.key,
            secret: config.secret,
            master_key: config.master_key,
            timeout: config.timeout,
            http,
        })
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The encryption master key, if configured.
    pub fn master_key(&self) -> Option<&MasterKey> {
        self.master_key.as_ref()
    }

    // ------------------------------------------------------------------------------------------
    // Authorization

    /// Authorizes a subscription to a private channel, or to a `private-encrypted-` channel (then
    /// the answer carries `shared_secret`, and a master key must be configured).
    ///
    /// Presence channels need a member: use [`Client::authorize_presence_channel`].
    pub fn authorize_channel(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth> {
        auth::channel_auth(
            &self.key,
            &self.secret,
            self.master_key.as_ref(),
            socket_id,
            channel,
            None,
        )
    }

    /// Authorizes a subscription to a presence channel as `member` (signed as `channel_data`).
    pub fn authorize_presence_channel(
        &self,
        socket_id: &str,
        channel: &str,
        member: &PresenceMember,
    ) -> Result<ChannelAuth> {
        let data = serde_json::to_string(member)?;
        self.authorize_channel_with_data(socket_id, channel, &data)
    }

    /// Authorizes a subscription with an exact `channel_data` string (any JSON object with a
    /// `user_id`, e.g. a numeric one), signed byte for byte as given.
    pub fn authorize_channel_with_data(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: &str,
    ) -> Result<ChannelAuth> {
        auth::channel_auth(
            &self.key,
            &self.secret,
            self.master_key.as_ref(),
            socket_id,
            channel,
            Some(channel_data.to_owned()),
        )
    }

    /// Authenticates a user for `pusher.signin()` (the Node SDK's `authenticateUser`).
    pub fn authenticate_user(&self, socket_id: &str, user: &UserData) -> Result<UserAuth> {
        auth::user_auth(&self.key, &self.secret, socket_id, serde_json::to_string(user)?)
    }

    /// Authenticates a user with an exact `user_data` JSON string (must hold a non-empty string
    /// `id`), signed byte for byte as given.
    pub fn authenticate_user_raw(&self, socket_id: &str, user_data: &str) -> Result<UserAuth> {
        auth::user_auth(&self.key, &self.secret, socket_id, user_data.to_owned())
    }

    /// The base64 shared secret of an encrypted channel (needs a master key).
    pub fn channel_shared_secret(&self, channel: &str) -> Result<String> {
        let master = self
            .master_key
            .as_ref()
            .ok_or_else(|| Error::EncryptionKeyMissing(channel.to_owned()))?;
        Ok(master.shared_secret_base64(channel))
    }

    // ------------------------------------------------------------------------------------------
    // Encryption

    /// The event `data` string for `channel`: for an encrypted channel, `data` serialised as JSON
    /// (a string value is JSON-quoted, as the Node SDK's `JSON.stringify`) and sealed with a fresh
    /// nonce; refused without a master key. For other channels, a JSON string value is sent as it
    /// is and anything else serialised.
    pub fn event_data<T: Serialize + ?Sized>(&self, channel: &str, data: &T) -> Result<String> {
        let json = serde_json::to_string(data)?;
        if is_encrypted_channel(channel) {
            let master = self
                .master_key
                .as_ref()
                .ok_or_else(|| Error::EncryptionKeyMissing(channel.to_owned()))?;
            return master.encrypt(channel, json.as_bytes());
        }
        if json.starts_with('"') {
            return Ok(serde_json::from_str::<String>(&json)?);
        }
        Ok(json)
    }

    /// Opens an encrypted event `data` string received on `channel` and parses the plaintext as
    /// JSON (what the publisher serialised).
    pub fn decrypt(&self, channel: &str, data: &str) -> Result<serde_json::Value> {
        let master = self
            .master_key
            .as_ref()
            .ok_or_else(|| Error::EncryptionKeyMissing(channel.to_owned()))?;
        let plain = master.decrypt(channel, data)?;
        Ok(serde_json::from_slice(&plain)?)
    }

    // ------------------------------------------------------------------------------------------
    // Webhooks

    /// Verifies a webhook request of this app (see [`webhook::verify`]).
    pub fn verify_webhook(
        &self,
        x_pusher_key: Option<&str>,
        x_pusher_signature: Option<&str>,
        body: &[u8],
    ) -> std::result::Result<Webhook, WebhookError> {
        webhook::verify(&self.key, &self.secret, x_pusher_key, x_pusher_signature, body)
    }

    /// Verifies a webhook request from its headers (see [`webhook::verify_headers`]).
    pub fn verify_webhook_headers(
        &self,
        headers: &hyper::HeaderMap,
        body: &[u8],
    ) -> std::result::Result<Webhook, WebhookError> {
        webhook::verify_headers(&self.key, &self.secret, headers, body)
    }

    // ------------------------------------------------------------------------------------------
    // HTTP API

    /// Triggers `event` with `data` on 1 to 100 `channels` (`POST /apps/{id}/events`).
    ///
    /// `data` follows [`Client::event_data`]: a payload to a `private-encrypted-` channel is always
    /// sealed (and refused without a master key), and a trigger to several channels of which one
    /// is encrypted is refused, as in the Node SDK.
    pub async fn trigger<T: Serialize + ?Sized>(
        &self,
        channels: &[&str],
        event: &str,
        data: &T,
        params: &TriggerParams,
    ) -> Result<TriggerResponse> {
        validate_event_name(event)?;
        if channels.is_empty() || channels.len() > 100 {
            return Err(Error::ChannelCount(channels.len()));
        }
        for channel in channels {
            validate_channel(channel)?;
        }
        if channels.len() > 1 {
            if let Some(enc) = channels.iter().find(|c| is_encrypted_channel(c)) {
                return Err(Error::EncryptedMultiChannel((*enc).to_owned()));
            }
        }
        if let Some(socket_id) = &params.socket_id {
            validate_socket_id(socket_id)?;
        }
        let data = self.event_data(channels[0], data)?;
        self.post_event(channels, event, data, params).await
    }

    /// Sends `event` to every connection signed in as `user_id` (channel `#server-to-user-{id}`).
    pub async fn send_to_user<T: Serialize + ?Sized>(
        &self,
        user_id: &str,
        event: &str,
        data: &T,
    ) -> Result<TriggerResponse> {
        validate_event_name(event)?;
        auth::validate_user_id(user_id)?;
        let channel = format!("#server-to-user-{user_id}");
        let data = self.event_data(&channel, data)?;
        self.post_event(&[&channel], event, data, &TriggerParams::default())
            .await
    }

    async fn post_event(
        &self,
        channels: &[&str],
        event: &str,
        data: String,
        params: &TriggerParams,
    ) -> Result<TriggerResponse> {
        let body = TriggerBody {
            name: event,
            data,
            channels,
            socket_id: params.socket_id.as_deref(),
            info: params.info.as_deref(),
        };
        let body = serde_json::to_vec(&body)?;
        let answer = self.request(Method::POST, "/events", &[], body).await?;
        parse_body(&answer)
    }

    /// Triggers up to 10 events in one request (`POST /apps/{id}/batch_events`); payloads to
    /// encrypted channels are sealed with each channel's key.
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Result<BatchResponse> {
        let mut items = Vec::with_capacity(events.len());
        for e in events {
            validate_event_name(&e.name)?;
            validate_channel(&e.channel)?;
            if let Some(socket_id) = &e.socket_id {
                validate_socket_id(socket_id)?;
            }
            items.push(BatchItem {
                name: &e.name,
                channel: &e.channel,
                data: self.event_data(&e.channel, &e.data)?,
                socket_id: e.socket_id.as_deref(),
                info: e.info.as_deref(),
            });
        }
        let body = serde_json::to_vec(&serde_json::json!({ "batch": items }))?;
        let answer = self.request(Method::POST, "/batch_events", &[], body).await?;
        parse_body(&answer)
    }

    /// Lists occupied channels (`GET /apps/{id}/channels`).
    pub async fn channels(&self, query: &ChannelsQuery) -> Result<ChannelList> {
        let mut params = Vec::new();
        if let Some(prefix) = &query.filter_by_prefix {
            params.push(("filter_by_prefix", prefix.as_str()));
        }
        if let Some(info) = &query.info {
            params.push(("info", info.as_str()));
        }
        let answer = self.request(Method::GET, "/channels", &params, Vec::new()).await?;
        parse_body(&answer)
    }

    /// Attributes of one channel (`GET /apps/{id}/channels/{name}`); `info` lists attributes
    /// such as `user_count`, `subscription_count`, `cache`.
    pub async fn channel_info(&self, channel: &str, info: &[&str]) -> Result<ChannelInfo> {
        validate_channel(channel)?;
        let joined = info.join(",");
        let params: Vec<(&str, &str)> = if info.is_empty() {
            Vec::new()
        } else {
            vec![("info", &joined)]
        };
        let answer = self
            .request(Method::GET, &format!("/channels/{channel}"), &params, Vec::new())
            .await?;
        parse_body(&answer)
    }

    /// Users of a presence channel (`GET /apps/{id}/channels/{name}/users`).
    pub async fn users(&self, channel: &str) -> Result<Vec<User>> {
        validate_channel(channel)?;
        let answer = self
            .request(Method::GET, &format!("/channels/{channel}/users"), &[], Vec::new())
            .await?;
        Ok(parse_body::<Users>(&answer)?.users)
    }

    /// Closes every connection signed in as `user_id`
    /// (`POST /apps/{id}/users/{user_id}/terminate_connections`).
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<()> {
        auth::validate_user_id(user_id)?;
        let user = utf8_percent_encode(user_id, PATH_SEGMENT);
        self.request(
            Method::POST,
            &format!("/users/{user}/terminate_connections"),
            &[],
            b"{}".to_vec(),
        )
        .await?;
        Ok(())
    }

    /// The signed query string for a request to `sub_path` (below `/apps/{app_id}`) at Unix time
    /// `timestamp`, without the leading `?`: what [`Client`] appends to every request.
    pub fn signed_query(
        &self,
        method: &str,
        sub_path: &str,
        params: &[(&str, &str)],
        body: &[u8],
        timestamp: u64,
    ) -> String {
        let path = format!("/apps/{}{}", self.app_id, sub_path);
        signed_query_string(method, &path, params, body, &self.key, &self.secret, timestamp)
    }

    /// Sends one signed request and returns the body of a 2xx answer.
    async fn request(&self, method: Method, sub_path: &str, params: &[(&str, &str)], body: Vec<u8>) -> Result<Bytes> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let app = utf8_percent_encode(&self.app_id, PATH_SEGMENT).to_string();
        let path = format!("/apps/{app}{sub_path}");
        let query = signed_query_string(method.as_str(), &path, params, &body, &self.key, &self.secret, now);
        // The signed query string carries values unescaped; on the wire they are escaped where a
        // URI requires it (the broker percent-decodes before verifying).
        let query: String = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        let uri = format!("{}{}?{}", self.scheme_authority, path, query);
        let mut builder = Request::builder().method(method).uri(&uri).header(
            "x-pusher-library",
            concat!("ferrocast-sdk-rust ", env!("CARGO_PKG_VERSION")),
        );
        if !body.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Transport(format!("cannot build request for {uri}: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Error::Transport(error_chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Transport(error_chain(&e)))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(self.timeout))??;
        if !status.is_success() {
            return Err(Error::Http {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }
}

fn validate_event_name(event: &str) -> Result<()> {
    if event.is_empty() || event.chars().count() > 200 {
        Err(Error::InvalidEventName(event.to_owned()))
    } else {
        Ok(())
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Ok(serde_json::from_slice(body)?)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new("451", "3f6a2c9b81e04d7d5a10", "9e1d7b4c2a85f03e6b12")
    }

    #[test]
    fn base_urls() {
        assert!(Client::new(config()).is_ok());
        assert!(Client::new(config().base_url("http://localhost:6001/")).is_ok());
        assert!(Client::new(config().base_url("https://pusher.example.com")).is_ok());
        for bad in [
            "ftp://x",
            "https://h:443/apps",
            "127.0.0.1:6001",
            "http://h/apps",
            "not a url",
        ] {
            assert!(
                matches!(Client::new(config().base_url(bad)), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Client::new(Config::new("", "k", "s")),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn master_key_refused_at_construction() {
        assert!(matches!(
            config().master_key_base64("c2hvcnQ="),
            Err(Error::InvalidMasterKey(_))
        ));
        assert!(matches!(
            config().master_key_bytes(&[1; 16]),
            Err(Error::InvalidMasterKey(_))
        ));
        assert!(config().master_key_bytes(&[1; 32]).is_ok());
    }

    #[test]
    fn event_data_follows_the_node_sdk() {
        let client = Client::new(config().master_key_bytes(&[7; 32]).unwrap()).unwrap();
        assert_eq!(client.event_data("c", &serde_json::json!("as is")).unwrap(), "as is");
        assert_eq!(
            client.event_data("c", &serde_json::json!({"a": 1})).unwrap(),
            r#"{"a":1}"#
        );
        let sealed = client
            .event_data("private-encrypted-c", &serde_json::json!("quoted"))
            .unwrap();
        assert_eq!(
            client.decrypt("private-encrypted-c", &sealed).unwrap(),
            serde_json::json!("quoted")
        );
        let plain = Client::new(config()).unwrap();
        assert!(matches!(
            plain.event_data("private-encrypted-c", &1),
            Err(Error::EncryptionKeyMissing(_))
        ));
    }

    #[tokio::test]
    async fn refusals_before_any_request() {
        // Port 9 (discard) is never contacted: every call below fails validation first.
        let client = Client::new(
            config()
                .base_url("http://127.0.0.1:9")
                .master_key_bytes(&[7; 32])
                .unwrap(),
        )
        .unwrap();
        let none = TriggerParams::default();
        let v = serde_json::json!({});
        assert!(matches!(
            client.trigger(&["private-encrypted-a", "b"], "e", &v, &none).await,
            Err(Error::EncryptedMultiChannel(_))
        ));
        assert!(matches!(
            client.trigger(&[], "e", &v, &none).await,
            Err(Error::ChannelCount(0))
        ));
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            client.trigger(&many, "e", &v, &none).await,
            Err(Error::ChannelCount(101))
        ));
        assert!(matches!(
            client.trigger(&["a b"], "e", &v, &none).await,
            Err(Error::InvalidChannel(_))
        ));
        assert!(matches!(
            client.trigger(&["a"], &"e".repeat(201), &v, &none).await,
            Err(Error::InvalidEventName(_))
        ));
        let bad_socket = TriggerParams {
            socket_id: Some("x".into()),
            info: None,
        };
        assert!(matches!(
            client.trigger(&["a"], "e", &v, &bad_socket).await,
            Err(Error::InvalidSocketId(_))
        ));
        assert!(matches!(
            client.send_to_user("", "e", &v).await,
            Err(Error::InvalidUser(_))
        ));
        assert!(matches!(
            client.terminate_user_connections("").await,
            Err(Error::InvalidUser(_))
        ));
    }
}
