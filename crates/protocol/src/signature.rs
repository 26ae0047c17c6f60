//! Channel and user auth signatures (reference §3.2, §6.1) and socket ids (§1.3).

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
    todo!("{secret}{message}")
}

/// The string a private/encrypted (`channel_data` = None) or presence channel auth signs:
/// `{socket_id}:{channel}` or `{socket_id}:{channel}:{channel_data}`.
pub fn channel_string_to_sign(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    todo!("{socket_id}{channel}{channel_data:?}")
}

/// The string a user signin auth signs: `{socket_id}::user::{user_data}`.
pub fn user_string_to_sign(socket_id: &str, user_data: &str) -> String {
    todo!("{socket_id}{user_data}")
}

/// Verify `auth` = `{key}:{hex sig}` over `string_to_sign`, splitting on the first `:` and
/// comparing the signature in constant time (hex compared case-insensitively).
pub fn verify_auth(app_key: &str, secret: &str, string_to_sign: &str, auth: Option<&str>) -> Result<(), AuthError> {
    todo!("{app_key}{secret}{string_to_sign}{auth:?}")
}

/// Whether `s` is a well-formed socket id: `^\d+\.\d+$`.
pub fn is_valid_socket_id(s: &str) -> bool {
    todo!("{s}")
}
