//! Channel and user auth signatures (reference §3.2, §6.1) and socket ids (§1.3).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Why an `auth` string was refused. Messages name what was expected, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("auth is missing")]
    Missing,
    #[error("auth must have the form '<app key>:<hex signature>'")]
    Malformed,
    #[error("auth was signed for another app key")]
    WrongKey,
    #[error("invalid signature: expected HMAC-SHA256 hex digest of '{signed}'")]
    BadSignature { signed: String },
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with the app secret.
pub fn sign(secret: &str, message: &str) -> String {
    hmac_sha256(secret, message).map(hex::encode).unwrap_or_default()
}

/// Raw HMAC-SHA256 of `message` keyed with `secret`. HMAC accepts keys of any length, so this is
/// always `Some`; callers still fail closed on `None` rather than panic.
pub(crate) fn hmac_sha256(secret: &str, message: &str) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(message.as_bytes());
    Some(mac.finalize().into_bytes().into())
}

/// Whether `hex_signature` (either case) is the HMAC-SHA256 of `message`, compared in constant
/// time so the response timing reveals nothing about the expected digest.
pub(crate) fn signature_matches(secret: &str, message: &str, hex_signature: &str) -> bool {
    let Ok(given) = hex::decode(hex_signature) else {
        return false;
    };
    match hmac_sha256(secret, message) {
        Some(expected) => bool::from(expected.as_slice().ct_eq(given.as_slice())),
        None => false,
    }
}

/// The string a private/encrypted (`channel_data` = None) or presence channel auth signs:
/// `{socket_id}:{channel}` or `{socket_id}:{channel}:{channel_data}`.
pub fn channel_string_to_sign(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string a user signin auth signs: `{socket_id}::user::{user_data}`.
pub fn user_string_to_sign(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// Verify `auth` = `{key}:{hex sig}` over `string_to_sign`, splitting on the first `:` and
/// comparing the signature in constant time (hex compared case-insensitively).
///
/// `None` and `""` (what pusher-js sends for public channels) are [`AuthError::Missing`]. The key
/// is public, so it is compared plainly; a signature that is not hex is a
/// [`AuthError::BadSignature`] like any other wrong one.
pub fn verify_auth(app_key: &str, secret: &str, string_to_sign: &str, auth: Option<&str>) -> Result<(), AuthError> {
    let auth = match auth {
        None | Some("") => return Err(AuthError::Missing),
        Some(auth) => auth,
    };
    let (key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if key != app_key {
        return Err(AuthError::WrongKey);
    }
    if signature_matches(secret, string_to_sign, signature) {
        Ok(())
    } else {
        Err(AuthError::BadSignature {
            signed: string_to_sign.to_owned(),
        })
    }
}

/// Whether `s` is a well-formed socket id: `^\d+\.\d+$`.
///
/// The SDKs refuse other ids, which keeps `:` and newlines out of the signed strings.
pub fn is_valid_socket_id(s: &str) -> bool {
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((left, right)) => all_digits(left) && all_digits(right),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids() {
        for id in [
            "98765.4321",
            "0.0",
            "1234.1234",
            "18446744073709551615.99999999999999999999",
        ] {
            assert!(is_valid_socket_id(id), "{id}");
        }
        for id in [
            "", ".", "1.", ".1", "1", "1.2.3", "a.1", "1.a", " 1.2", "1.2\n", "-1.2", "1,2", "١.٢",
        ] {
            assert!(!is_valid_socket_id(id), "{id:?}");
        }
    }

    #[test]
    fn strings_to_sign() {
        assert_eq!(channel_string_to_sign("1.2", "private-a", None), "1.2:private-a");
        assert_eq!(
            channel_string_to_sign("1.2", "presence-a", Some("{\"user_id\":1}")),
            "1.2:presence-a:{\"user_id\":1}"
        );
        assert_eq!(
            user_string_to_sign("1.2", "{\"id\":\"x\"}"),
            "1.2::user::{\"id\":\"x\"}"
        );
    }

    #[test]
    fn signature_matching_is_case_insensitive_and_length_checked() {
        let signature = sign("secret", "message");
        assert_eq!(signature.len(), 64);
        assert!(signature_matches("secret", "message", &signature));
        assert!(signature_matches("secret", "message", &signature.to_uppercase()));
        assert!(!signature_matches(
            "secret",
            "message",
            signature.get(..62).unwrap_or_default()
        ));
        assert!(!signature_matches("secret", "message", &format!("{signature}00")));
        assert!(!signature_matches("secret", "message", ""));
        assert!(!signature_matches("secret", "message2", &signature));
        assert!(!signature_matches("secret2", "message", &signature));
    }

    #[test]
    fn secrets_of_any_length() {
        // Longer than the SHA-256 block (64 bytes): HMAC hashes the key first.
        assert_eq!(
            sign(&"k".repeat(100), "long key"),
            "5903eedefe0bba3f15b658715e41d71f1848739bddf19e497e968df5723dcd56"
        );
        assert_eq!(
            sign("", "empty key"),
            "bf6e6a0f34cd9fdf69c67b8c62969c87cd4f783d4665217df03f062dc4a0406e"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
