//! Presence members (reference §3.2–3.4).

use thiserror::Error;

/// Longest accepted `user_id`, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;

/// A presence member as parsed from `channel_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Numeric ids are normalised to their decimal string.
    pub user_id: String,
    /// `user_info` as compact JSON text; `"null"` when absent.
    pub user_info: String,
}

/// Why `channel_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelDataError {
    #[error("channel_data is not a JSON object")]
    NotAnObject,
    #[error("channel_data has no user_id (a string or a number)")]
    MissingUserId,
    #[error("user_id is empty or longer than 128 characters")]
    InvalidUserId,
    #[error("user_info is larger than {max_bytes} bytes")]
    UserInfoTooLarge { max_bytes: usize },
}

/// Parse presence `channel_data`, enforcing the `user_info` size limit in bytes of its compact
/// JSON text.
pub fn parse_channel_data(channel_data: &str, max_user_info_bytes: usize) -> Result<Member, ChannelDataError> {
    todo!("{channel_data}{max_user_info_bytes}")
}

/// The `subscription_succeeded` data for a presence channel:
/// `{"presence":{"ids":[…],"hash":{id: user_info,…},"count":n}}`, `user_info` inserted as the
/// raw JSON text it was stored as. Duplicate ids must not be passed.
pub fn roster_json<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let _ = members.into_iter();
    todo!()
}
