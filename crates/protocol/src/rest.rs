//! HTTP API: request signing (reference §9.2) and request bodies (§9.3, §9.4).

use serde::Deserialize;
use thiserror::Error;

/// Largest accepted clock skew between `auth_timestamp` and the node's clock.
pub const MAX_TIMESTAMP_SKEW_S: u64 = 600;

/// Why a request's signature was refused (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestAuthError {
    #[error("missing query parameter '{0}'")]
    MissingParam(&'static str),
    #[error("auth_key does not belong to this app")]
    WrongKey,
    #[error("auth_version must be 1.0")]
    BadVersion,
    #[error("auth_timestamp is not a Unix time within 600 s of the server clock")]
    BadTimestamp,
    #[error("body_md5 does not match the body")]
    BodyMd5Mismatch,
    #[error("invalid auth_signature: expected HMAC-SHA256 hex digest of {string_to_sign:?}")]
    BadSignature { string_to_sign: String },
}

/// Parse a raw query string into percent-decoded pairs, keeping `+` as is (the Node SDK does not
/// escape values). Invalid UTF-8 after decoding is replaced lossily.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    todo!("{raw}")
}

/// Lowercase hex MD5 of `body`.
pub fn body_md5(body: &[u8]) -> String {
    todo!("{body:?}")
}

/// `METHOD\nPATH\nk=v&…` over every pair but `auth_signature`, keys lowercased and sorted
/// (stable), values unescaped.
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    todo!("{method}{path}{params:?}")
}

/// A request as received, for [`verify_request`].
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Decoded query pairs (see [`parse_query`]).
    pub params: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Check the auth parameters of a request against the app's key and secret at time `now_unix`:
/// `auth_key`, `auth_version`, `auth_timestamp` within [`MAX_TIMESTAMP_SKEW_S`], `body_md5`
/// when the body is non-empty, then the signature in constant time.
pub fn verify_request(req: &SignedRequest<'_>, app_key: &str, secret: &str, now_unix: u64) -> Result<(), RestAuthError> {
    todo!("{req:?}{app_key}{secret}{now_unix}")
}

/// Build the signed query string (without leading `?`) for a request, as the SDKs do: used by
/// tests and tools that call the REST API. `params` are the request's own parameters.
pub fn sign_query(method: &str, path: &str, params: &[(&str, &str)], body: &[u8], app_key: &str, secret: &str, timestamp: u64) -> String {
    todo!("{method}{path}{params:?}{body:?}{app_key}{secret}{timestamp}")
}

/// `POST /apps/{id}/events` body.
#[derive(Debug, Clone, Deserialize)]
pub struct TriggerRequest {
    pub name: String,
    pub data: String,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub socket_id: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
}

/// One item of `POST /apps/{id}/batch_events`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchItem {
    pub name: String,
    pub data: String,
    pub channel: String,
    #[serde(default)]
    pub socket_id: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
}

/// `POST /apps/{id}/batch_events` body.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchRequest {
    pub batch: Vec<BatchItem>,
}
