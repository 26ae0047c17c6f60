//! Errors of the SDK.

/// Everything that can go wrong when building a [`crate::Client`], signing, encrypting or calling the
/// HTTP API. Webhook verification has its own error type, [`crate::WebhookError`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The encryption master key is not 32 bytes (raw) or the base64 of 32 bytes. The message never
    /// contains the key.
    #[error("invalid encryption master key: {0}")]
    InvalidMasterKey(String),
    /// Empty app id, key or secret.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The base URL of the HTTP API cannot be used.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket id that is not `digits.digits`.
    #[error("invalid socket id {0:?} (expected digits.digits)")]
    InvalidSocketId(String),
    /// A channel name that is empty, too long (> 200) or has characters outside `A-Za-z0-9_-=@,.;`.
    #[error("invalid channel name {0:?}")]
    InvalidChannel(String),
    /// An empty user id, or user data without a non-empty string `id`.
    #[error("invalid user id or user data: {0}")]
    InvalidUser(String),
    /// An event name longer than 200 characters (or empty).
    #[error("invalid event name {0:?} (1 to 200 characters)")]
    InvalidEventName(String),
    /// More channels in one trigger than the 100 the API accepts (or none).
    #[error("a trigger needs 1 to 100 channels, got {0}")]
    ChannelCount(usize),
    /// An encrypted channel (`private-encrypted-`) was used without a configured master key, so
    /// the payload would have gone out in plaintext (or no `shared_secret` can be given).
    #[error("channel {0:?} is end-to-end encrypted but no encryption master key is configured")]
    EncryptionKeyMissing(String),
    /// A trigger to several channels of which one is encrypted (each encrypted channel has its own
    /// key, so one payload cannot serve them all).
    #[error("cannot trigger to multiple channels when one of them is encrypted ({0:?})")]
    EncryptedMultiChannel(String),
    /// Data that cannot be serialised as JSON, or a response body that is not the expected JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An encrypted payload that cannot be opened (malformed, wrong key or tampered), or a
    /// payload that cannot be sealed.
    #[error("encryption: {0}")]
    Decrypt(String),
    /// The API answered with a status other than 2xx.
    #[error("HTTP API answered {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The response body, as text (lossy UTF-8).
        body: String,
    },
    /// The request could not be sent or its response could not be read.
    #[error("HTTP request failed: {0}")]
    Transport(String),
    /// No response within the configured timeout.
    #[error("HTTP request timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl Error {
    /// The HTTP status of an [`Error::Http`], `None` for every other error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A [`Result`](std::result::Result) with the SDK's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
