//! HMAC-SHA256 signatures and the signed query string of the HTTP API (protocol reference §3.2,
//! §9.2), byte for byte as the official Node SDK computes them.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// Lowercase hex of `HMAC-SHA256(key = secret, message)`.
pub fn hmac_sha256_hex(secret: &str, message: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, message))
}

pub(crate) fn hmac_sha256(secret: &str, message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex MD5 of a request body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The signed query string of an HTTP API request, as the official SDKs build it: the auth
/// parameters (`auth_key`, `auth_timestamp`, `auth_version=1.0`, and `body_md5` when `body` is not
/// empty) plus `params`, keys lowercased and sorted, joined as `key=value` with `&` with values
/// **not** escaped, then `&auth_signature=` + hex HMAC-SHA256 over
/// `"METHOD\nPATH\nQUERY"`.
///
/// `path` is the full path (`/apps/{app_id}/…`), without query string.
///
/// ```
/// let q = ferrocast_sdk::signing::signed_query_string(
///     "GET", "/apps/451/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")],
///     b"", "3f6a2c9b81e04d7d5a10", "9e1d7b4c2a85f03e6b12", 1700000000);
/// assert!(q.ends_with("&auth_signature=ba9e9826f04e2a8384d5597efa132f756bd1b3b9fd912ce3c44c0f72befb29a1"));
/// ```
pub fn signed_query_string(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let query = unsigned_query_string(params, body, key, timestamp);
    let to_sign = format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, query);
    let signature = hmac_sha256_hex(secret, to_sign.as_bytes());
    format!("{query}&auth_signature={signature}")
}

/// The sorted query string without `auth_signature` (what is signed after `METHOD\nPATH\n`).
pub(crate) fn unsigned_query_string(params: &[(&str, &str)], body: &[u8], key: &str, timestamp: u64) -> String {
    let timestamp = timestamp.to_string();
    let md5 = (!body.is_empty()).then(|| body_md5(body));
    let mut pairs: Vec<(String, &str)> = vec![
        ("auth_key".to_owned(), key),
        ("auth_timestamp".to_owned(), &timestamp),
        ("auth_version".to_owned(), "1.0"),
    ];
    if let Some(md5) = &md5 {
        pairs.push(("body_md5".to_owned(), md5));
    }
    for (k, v) in params {
        let k = k.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "auth_key" | "auth_timestamp" | "auth_version" | "auth_signature" | "body_md5"
        ) {
            continue;
        }
        pairs.push((k, v));
    }
    // Stable sort by key, byte order (as the Node SDK's toOrderedArray).
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Constant-time comparison of two strings (lengths are not secret).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3f6a2c9b81e04d7d5a10";
    const SECRET: &str = "9e1d7b4c2a85f03e6b12";

    #[test]
    fn reference_12_5_a_trigger() {
        let body = br#"{"name":"order-shipped","channels":["private-orders-42","orders"],"data":"{\"id\":42}","socket_id":"98765.4321"}"#;
        assert_eq!(body_md5(body), "a964fe9d991556d4478d3941d1bc811f");
        let q = signed_query_string("POST", "/apps/451/events", &[], body, KEY, SECRET, 1_700_000_000);
        assert_eq!(
            q,
            "auth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&body_md5=a964fe9d991556d4478d3941d1bc811f&auth_signature=0eac098bdfea34f8c328dac5ded85f32c06aa3319d873b6c081a0a66e773fcb4"
        );
    }

    #[test]
    fn reference_12_5_b_c_d() {
        let q = signed_query_string(
            "get",
            "/apps/451/channels",
            &[("info", "user_count"), ("filter_by_prefix", "presence-")],
            b"",
            KEY,
            SECRET,
            1_700_000_000,
        );
        assert!(q.ends_with("&auth_signature=ba9e9826f04e2a8384d5597efa132f756bd1b3b9fd912ce3c44c0f72befb29a1"));
        let q = signed_query_string(
            "GET",
            "/apps/451/channels/cache-scores",
            &[("info", "subscription_count,cache")],
            b"",
            KEY,
            SECRET,
            1_700_000_000,
        );
        assert!(q.ends_with("&auth_signature=2a21f0b8d0d7e8d0910f5817e17a1dbf21f58bbd6df100ccc6221dff72729c4b"));
        let q = signed_query_string(
            "POST",
            "/apps/451/users/u-17/terminate_connections",
            &[],
            b"{}",
            KEY,
            SECRET,
            1_700_000_000,
        );
        assert!(q.contains("body_md5=99914b932bd37a50b983c5e7c90ae93b"));
        assert!(q.ends_with("&auth_signature=8c5d83102d10edf5c5b9cb70275947a2982097f8ddee127fb7483753271681e3"));
    }

    #[test]
    fn reference_12_7_published_rest_vector() {
        let s = "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";
        assert_eq!(
            hmac_sha256_hex("7ad3773142a6692b25b8", s.as_bytes()),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn reserved_params_cannot_be_overridden() {
        let q = signed_query_string("GET", "/p", &[("auth_key", "evil")], b"", KEY, SECRET, 1);
        assert!(!q.contains("evil"));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
