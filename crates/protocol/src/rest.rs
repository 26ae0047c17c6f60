//! HTTP API: request signing (reference §9.2) and request bodies (§9.3, §9.4).

use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use thiserror::Error;

use crate::signature::{sign, signature_matches};

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
///
/// A leading `?` is skipped, empty segments (`a=1&&b=2`) are dropped and a segment without `=`
/// is a key with an empty value. Keys keep their case; [`string_to_sign`] lowercases them.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(part: &str) -> String {
    percent_decode_str(part).decode_utf8_lossy().into_owned()
}

/// Lowercase hex MD5 of `body`.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// `METHOD\nPATH\nk=v&…` over every pair but `auth_signature`, keys lowercased and sorted
/// (stable), values unescaped.
///
/// The method is uppercased, as the SDKs do before signing. This is the text an
/// [`RestAuthError::BadSignature`] reports, so a caller can compare it with what it signed.
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let query = sorted_query(params);
    let mut out = String::with_capacity(method.len() + path.len() + query.len() + 2);
    out.push_str(&method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    out.push_str(&query);
    out
}

/// `k=v&…` over every pair but `auth_signature`, keys lowercased and stably sorted.
fn sorted_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .iter()
        .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
        .filter(|(key, _)| key != "auth_signature")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut query = String::with_capacity(pairs.len() * 32);
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(value);
    }
    query
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
///
/// Checks run in this order, so the error names the first problem: missing `auth_key`,
/// `auth_timestamp`, `auth_version`, `auth_signature`; wrong key; version; timestamp; body MD5;
/// signature. A `body_md5` sent with an empty body must match too (it would otherwise let a
/// stripped body pass under the original signature). Keys are matched case-insensitively and
/// the first occurrence of a duplicated key is used. If the signature does not match the path
/// as received, its percent-decoded form is tried (reference §9.2 step 3).
pub fn verify_request(
    req: &SignedRequest<'_>,
    app_key: &str,
    secret: &str,
    now_unix: u64,
) -> Result<(), RestAuthError> {
    let param = |name: &'static str| {
        req.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let required = |name: &'static str| param(name).ok_or(RestAuthError::MissingParam(name));
    let key = required("auth_key")?;
    let timestamp = required("auth_timestamp")?;
    let version = required("auth_version")?;
    let signature = required("auth_signature")?;

    if key != app_key {
        return Err(RestAuthError::WrongKey);
    }
    if version != "1.0" {
        return Err(RestAuthError::BadVersion);
    }
    let timestamp = parse_unix_time(timestamp).ok_or(RestAuthError::BadTimestamp)?;
    if timestamp.abs_diff(now_unix) > MAX_TIMESTAMP_SKEW_S {
        return Err(RestAuthError::BadTimestamp);
    }
    match param("body_md5") {
        None if !req.body.is_empty() => return Err(RestAuthError::MissingParam("body_md5")),
        Some(md5) if !md5.eq_ignore_ascii_case(&body_md5(req.body)) => return Err(RestAuthError::BodyMd5Mismatch),
        _ => {}
    }

    let signed = string_to_sign(req.method, req.path, req.params);
    if signature_matches(secret, &signed, signature) {
        return Ok(());
    }
    let decoded_path = percent_decode_str(req.path).decode_utf8_lossy();
    if decoded_path != req.path {
        let alternative = string_to_sign(req.method, &decoded_path, req.params);
        if signature_matches(secret, &alternative, signature) {
            return Ok(());
        }
    }
    Err(RestAuthError::BadSignature { string_to_sign: signed })
}

/// Unix seconds written as plain ASCII digits (no sign, no spaces).
fn parse_unix_time(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Build the signed query string (without leading `?`) for a request, as the SDKs do: used by
/// tests and tools that call the REST API. `params` are the request's own parameters.
///
/// Like the Node SDK: `auth_key`, `auth_timestamp`, `auth_version=1.0`, `body_md5` when `body`
/// is non-empty, plus `params`, sorted by (lowercased) key and joined unescaped, then
/// `&auth_signature=…`. As with the SDK, values must not contain `&`, `=`, `%` or `#`, and
/// `params` must not repeat the `auth_*`/`body_md5` keys.
pub fn sign_query(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    app_key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let mut pairs: Vec<(String, String)> = vec![
        ("auth_key".to_owned(), app_key.to_owned()),
        ("auth_timestamp".to_owned(), timestamp.to_string()),
        ("auth_version".to_owned(), "1.0".to_owned()),
    ];
    if !body.is_empty() {
        pairs.push(("body_md5".to_owned(), body_md5(body)));
    }
    pairs.extend(
        params
            .iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), (*value).to_owned())),
    );
    let query = sorted_query(&pairs);
    let signature = sign(secret, &format!("{}\n{path}\n{query}", method.to_ascii_uppercase()));
    format!("{query}&auth_signature={signature}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn query_parsing() {
        assert_eq!(parse_query(""), pairs(&[]));
        assert_eq!(parse_query("?"), pairs(&[]));
        assert_eq!(
            parse_query("?a=1&&b=&c&info=user_count%2Csubscription_count&p=a+b&%41=%zz&e=x=y"),
            pairs(&[
                ("a", "1"),
                ("b", ""),
                ("c", ""),
                ("info", "user_count,subscription_count"),
                ("p", "a+b"),
                ("A", "%zz"),
                ("e", "x=y"),
            ])
        );
        assert_eq!(parse_query("k=%FF%C3%A9"), pairs(&[("k", "\u{fffd}é")]));
    }

    #[test]
    fn md5() {
        assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
    }

    #[test]
    fn string_to_sign_lowercases_sorts_stably_and_drops_the_signature() {
        let params = pairs(&[
            ("b", "2"),
            ("AUTH_SIGNATURE", "x"),
            ("A", "first"),
            ("c", "3"),
            ("a", "second"),
            ("auth_signature", "y"),
        ]);
        assert_eq!(
            string_to_sign("get", "/apps/1/channels", &params),
            "GET\n/apps/1/channels\na=first&a=second&b=2&c=3"
        );
        assert_eq!(string_to_sign("POST", "/p", &[]), "POST\n/p\n");
    }

    #[test]
    fn unix_time_is_plain_digits() {
        assert_eq!(parse_unix_time("1700000000"), Some(1_700_000_000));
        for bad in ["", "+1700000000", "-1", " 1", "1.0", "1e9", "99999999999999999999999"] {
            assert_eq!(parse_unix_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_bodies_deserialize() {
        let trigger: Result<TriggerRequest, _> = serde_json::from_str(
            r#"{"name":"order-shipped","channels":["private-orders-42","orders"],"data":"{\"id\":42}","socket_id":"98765.4321"}"#,
        );
        let trigger = trigger.map_err(|e| e.to_string());
        assert!(
            matches!(
                &trigger,
                Ok(TriggerRequest { name, data, channels: Some(channels), channel: None, socket_id: Some(socket), info: None })
                    if name == "order-shipped" && data == "{\"id\":42}" && channels.len() == 2 && socket == "98765.4321"
            ),
            "{trigger:?}"
        );
        let batch: Result<BatchRequest, _> = serde_json::from_str(
            r#"{"batch":[{"channel":"orders","name":"order-created","data":"{\"id\":43}"},{"channel":"presence-room-7","name":"ping","data":"x","socket_id":"98765.4321","info":"user_count"}]}"#,
        );
        let batch = batch.map_err(|e| e.to_string());
        assert!(
            matches!(&batch, Ok(BatchRequest { batch }) if batch.len() == 2
            && batch.iter().map(|i| i.info.as_deref()).eq([None, Some("user_count")])),
            "{batch:?}"
        );
        // `data` must be a string.
        assert!(serde_json::from_str::<TriggerRequest>(r#"{"name":"e","channel":"c","data":{"id":1}}"#).is_err());
    }
}
