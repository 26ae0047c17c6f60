//! User sign-in (reference §6): the `user_data` a `pusher:signin` carries, its signature, the
//! per-user channel names, and the frames a signed-in connection receives.
//!
//! `user_data` is verified over the exact string received and only then parsed; the parsed form
//! keeps the string so `pusher:signin_success` can echo it byte for byte.

use serde_json::value::RawValue;
use thiserror::Error;

use crate::channel::{has_valid_charset, SERVER_TO_USER_PREFIX};
use crate::json::{self, Kind};
use crate::signature::{user_string_to_sign, verify_auth, AuthError};

/// Longest accepted user `id`, in bytes (the same bound as presence `user_id`).
pub const MAX_USER_ID_LEN: usize = 128;

/// How many watchlist ids are honoured; the rest are dropped and the client told with
/// [`crate::codes::error::WATCHLIST_OVER_LIMIT`].
pub const MAX_WATCHLIST: usize = 100;

/// Prefix of the internal backplane channel a watched user's online/offline changes are
/// published on. Clients can never subscribe to `#` names other than `#server-to-user-`, so
/// this name cannot collide with a client channel.
pub const WATCH_PREFIX: &str = "#watch-";

/// A parsed, valid `user_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub id: String,
    /// `user_info` as compact JSON text; `"null"` when absent.
    pub user_info: String,
    /// Distinct ids in the order sent, at most [`MAX_WATCHLIST`].
    pub watchlist: Vec<String>,
    /// Whether the watchlist had more than [`MAX_WATCHLIST`] entries (the rest were dropped).
    pub watchlist_truncated: bool,
}

/// Why `user_data` was refused. Sent to the client in a `pusher:error` (code null).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserDataError {
    #[error("user_data is not a JSON object")]
    NotAnObject,
    #[error("user_data has no string id")]
    MissingId,
    #[error("user_data id must be 1 to 128 characters of A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidId,
    #[error("user_data watchlist must be an array of user ids")]
    InvalidWatchlist,
    #[error("user_info is larger than {max_bytes} bytes")]
    UserInfoTooLarge { max_bytes: usize },
}

/// Why a `pusher:signin` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigninError {
    #[error("signin refused: {0}")]
    Auth(#[from] AuthError),
    #[error("signin refused: {0}")]
    UserData(#[from] UserDataError),
}

/// Verify a `pusher:signin` (signature over `{socket_id}::user::{user_data}` exactly as received,
/// constant time) and parse its `user_data`. The signature is checked first, so unsigned junk
/// is never parsed beyond the frame envelope.
pub fn verify_signin(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    auth: &str,
    user_data: &str,
    max_user_info_bytes: usize,
) -> Result<UserData, SigninError> {
    verify_auth(app_key, secret, &user_string_to_sign(socket_id, user_data), Some(auth))?;
    Ok(parse_user_data(user_data, max_user_info_bytes)?)
}

/// Whether `id` is a valid user id: 1–128 bytes of the channel-name charset. Ids are embedded in
/// channel names (`#server-to-user-{id}`, `#watch-{id}`), hence the charset.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_USER_ID_LEN && has_valid_charset(id)
}

/// Parse `user_data`: an object with a string `id`, optional `user_info` (any JSON, size-bounded
/// in bytes of its compact text) and optional `watchlist` (array of user ids; `null` = absent).
///
/// Watchlist entries after the first [`MAX_WATCHLIST`] are dropped without being inspected;
/// duplicates among the kept ones are removed. An invalid kept entry refuses the whole signin
/// rather than being silently skipped.
pub fn parse_user_data(user_data: &str, max_user_info_bytes: usize) -> Result<UserData, UserDataError> {
    let [id, user_info, watchlist] =
        json::pick_members(user_data, ["id", "user_info", "watchlist"]).map_err(|_| UserDataError::NotAnObject)?;
    let id = match id {
        Some(raw) if json::kind(raw) == Kind::String => json::decode_string(raw).ok_or(UserDataError::InvalidId)?,
        _ => return Err(UserDataError::MissingId),
    };
    if !is_valid_user_id(&id) {
        return Err(UserDataError::InvalidId);
    }
    let user_info = match user_info {
        Some(raw) if json::kind(raw) != Kind::Null => {
            let text = json::compact(raw.get());
            if text.len() > max_user_info_bytes {
                return Err(UserDataError::UserInfoTooLarge {
                    max_bytes: max_user_info_bytes,
                });
            }
            text
        }
        _ => "null".to_owned(),
    };
    let (watchlist, watchlist_truncated) = parse_watchlist(watchlist)?;
    Ok(UserData {
        id,
        user_info,
        watchlist,
        watchlist_truncated,
    })
}

fn parse_watchlist(raw: Option<&RawValue>) -> Result<(Vec<String>, bool), UserDataError> {
    let raw = match raw {
        None => return Ok((Vec::new(), false)),
        Some(raw) if json::kind(raw) == Kind::Null => return Ok((Vec::new(), false)),
        Some(raw) if raw.get().starts_with('[') => raw,
        Some(_) => return Err(UserDataError::InvalidWatchlist),
    };
    let entries: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| UserDataError::InvalidWatchlist)?;
    let truncated = entries.len() > MAX_WATCHLIST;
    let mut ids: Vec<String> = Vec::with_capacity(entries.len().min(MAX_WATCHLIST));
    for entry in entries.into_iter().take(MAX_WATCHLIST) {
        let id = json::decode_string(entry).ok_or(UserDataError::InvalidWatchlist)?;
        if !is_valid_user_id(&id) {
            return Err(UserDataError::InvalidWatchlist);
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok((ids, truncated))
}

/// `#server-to-user-{id}`: the channel the app publishes to a user on (§6.3).
pub fn server_to_user_channel(user_id: &str) -> String {
    format!("{SERVER_TO_USER_PREFIX}{user_id}")
}

/// The user id of a `#server-to-user-{id}` name, `None` for other names.
pub fn server_to_user_id(channel: &str) -> Option<&str> {
    channel.strip_prefix(SERVER_TO_USER_PREFIX).filter(|id| !id.is_empty())
}

/// `#watch-{id}`: the internal backplane channel of a watched user's online/offline changes.
pub fn watch_channel(user_id: &str) -> String {
    format!("{WATCH_PREFIX}{user_id}")
}

/// The user id of a `#watch-{id}` name, `None` for other names.
pub fn watch_channel_user(channel: &str) -> Option<&str> {
    channel.strip_prefix(WATCH_PREFIX).filter(|id| !id.is_empty())
}

/// `pusher:signin_success` with `{"user_data":…}` as string data, `user_data` being the exact
/// string the client sent (pusher-js parses it and reads `id`).
pub fn signin_success(user_data: &str) -> String {
    let mut data = String::with_capacity(16 + user_data.len() * 9 / 8);
    data.push_str("{\"user_data\":");
    json::push_str_literal(&mut data, user_data);
    data.push('}');
    crate::outbound::ServerMessage {
        event: "pusher:signin_success",
        data: &data,
        channel: None,
        user_id: None,
    }
    .to_json()
}

/// `pusher_internal:watchlist_events` (not channel-scoped) with
/// `{"events":[{"name":"online","user_ids":[…]},{"name":"offline","user_ids":[…]}]}`; an empty
/// list's entry is omitted (reference §6.4).
pub fn watchlist_events<'a>(
    online: impl IntoIterator<Item = &'a str>,
    offline: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut data = String::from("{\"events\":[");
    let mut entries = 0;
    for (name, ids) in [("online", id_array(online)), ("offline", id_array(offline))] {
        if let Some(ids) = ids {
            if entries > 0 {
                data.push(',');
            }
            data.push_str("{\"name\":\"");
            data.push_str(name);
            data.push_str("\",\"user_ids\":");
            data.push_str(&ids);
            data.push('}');
            entries += 1;
        }
    }
    data.push_str("]}");
    crate::outbound::ServerMessage {
        event: "pusher_internal:watchlist_events",
        data: &data,
        channel: None,
        user_id: None,
    }
    .to_json()
}

/// `["a","b"]`, or `None` when there are no ids.
fn id_array<'a>(ids: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut out = String::from("[");
    for (index, id) in ids.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        json::push_str_literal(&mut out, id);
    }
    out.push(']');
    (out.len() > 2).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#;

    fn parse(user_data: &str) -> Result<UserData, UserDataError> {
        parse_user_data(user_data, 1024)
    }

    #[test]
    fn vector_12_3_verifies_and_parses() {
        let auth = "3f6a2c9b81e04d7d5a10:7c328b6624c9e83ab936ab8703a73045b4e81a08890e2466ad2a9f4e767114bc";
        let parsed = verify_signin(
            "3f6a2c9b81e04d7d5a10",
            "9e1d7b4c2a85f03e6b12",
            "98765.4321",
            auth,
            SPEC,
            1024,
        );
        assert_eq!(
            parsed,
            Ok(UserData {
                id: "u-17".into(),
                user_info: r#"{"name":"Ada Lovelace"}"#.into(),
                watchlist: vec!["u-2".into(), "u-3".into()],
                watchlist_truncated: false,
            })
        );
        // Signed for another socket, or the user_data re-serialised: refused.
        let other_socket = verify_signin(
            "3f6a2c9b81e04d7d5a10",
            "9e1d7b4c2a85f03e6b12",
            "98765.4322",
            auth,
            SPEC,
            1024,
        );
        assert!(matches!(
            other_socket,
            Err(SigninError::Auth(AuthError::BadSignature { .. }))
        ));
        let spaced = SPEC.replace(',', ", ");
        let reserialised = verify_signin(
            "3f6a2c9b81e04d7d5a10",
            "9e1d7b4c2a85f03e6b12",
            "98765.4321",
            auth,
            &spaced,
            1024,
        );
        assert!(matches!(
            reserialised,
            Err(SigninError::Auth(AuthError::BadSignature { .. }))
        ));
    }

    #[test]
    fn bad_signature_is_refused_before_parsing() {
        let result = verify_signin("k", "s", "1.2", "k:00", "not json", 1024);
        assert!(matches!(result, Err(SigninError::Auth(AuthError::BadSignature { .. }))));
        let signature = crate::signature::sign("s", "1.2::user::not json");
        let result = verify_signin("k", "s", "1.2", &format!("k:{signature}"), "not json", 1024);
        assert_eq!(result, Err(SigninError::UserData(UserDataError::NotAnObject)));
    }

    #[test]
    fn minimal_user_data() {
        assert_eq!(
            parse(r#"{"id":"a"}"#),
            Ok(UserData {
                id: "a".into(),
                user_info: "null".into(),
                watchlist: vec![],
                watchlist_truncated: false,
            })
        );
        let with_nulls = parse(r#"{"id":"a","user_info":null,"watchlist":null}"#);
        assert_eq!(
            with_nulls.map(|u| (u.user_info, u.watchlist)),
            Ok(("null".into(), vec![]))
        );
    }

    #[test]
    fn ids_are_validated() {
        let long = "x".repeat(128);
        assert_eq!(parse(&format!(r#"{{"id":"{long}"}}"#)).map(|u| u.id), Ok(long.clone()));
        let cases = [
            (format!(r#"{{"id":"{long}x"}}"#), UserDataError::InvalidId),
            (r#"{"id":""}"#.into(), UserDataError::InvalidId),
            (r#"{"id":"a b"}"#.into(), UserDataError::InvalidId),
            (r#"{"id":"a#b"}"#.into(), UserDataError::InvalidId),
            (r#"{"id":"\ud800"}"#.into(), UserDataError::InvalidId),
            (r#"{"id":17}"#.into(), UserDataError::MissingId),
            (r#"{"id":null}"#.into(), UserDataError::MissingId),
            (r#"{"user_info":{}}"#.into(), UserDataError::MissingId),
        ];
        for (json, error) in cases {
            assert_eq!(parse(&json), Err(error), "{json}");
        }
        for json in ["", "[]", "\"{}\"", "null", "{", r#"{"id":"a"} x"#] {
            assert_eq!(parse(json), Err(UserDataError::NotAnObject), "{json:?}");
        }
    }

    #[test]
    fn user_info_is_compacted_and_bounded() {
        let spaced = r#"{ "id" : "a", "user_info" : { "n" : "aaaa" } }"#;
        assert_eq!(
            parse_user_data(spaced, 12).map(|u| u.user_info),
            Ok(r#"{"n":"aaaa"}"#.into())
        );
        assert_eq!(
            parse_user_data(spaced, 11),
            Err(UserDataError::UserInfoTooLarge { max_bytes: 11 })
        );
    }

    #[test]
    fn watchlists() {
        let dup = parse(r#"{"id":"a","watchlist":["b","c","b"]}"#);
        assert_eq!(dup.map(|u| u.watchlist), Ok(vec!["b".into(), "c".into()]));
        for bad in [
            r#"{"id":"a","watchlist":"b"}"#,
            r#"{"id":"a","watchlist":{}}"#,
            r#"{"id":"a","watchlist":[1]}"#,
            r#"{"id":"a","watchlist":["ok",""]}"#,
            r#"{"id":"a","watchlist":["b c"]}"#,
            r#"{"id":"a","watchlist":[null]}"#,
        ] {
            assert_eq!(parse(bad), Err(UserDataError::InvalidWatchlist), "{bad}");
        }
    }

    #[test]
    fn watchlist_keeps_the_first_100() {
        let ids: Vec<String> = (0..101).map(|i| format!("w{i}")).collect();
        let mut json = serde_json::json!({"id": "a", "watchlist": ids}).to_string();
        let parsed = parse(&json);
        assert_eq!(parsed.as_ref().map(|u| u.watchlist.len()), Ok(100));
        assert_eq!(parsed.as_ref().map(|u| u.watchlist_truncated), Ok(true));
        assert_eq!(parsed.map(|u| u.watchlist.last().cloned()), Ok(Some("w99".into())));
        // Entries past the 100th are not inspected.
        json = json.replace("\"w100\"", "7");
        assert_eq!(parse(&json).map(|u| u.watchlist_truncated), Ok(true));
        let exact: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let json = serde_json::json!({"id": "a", "watchlist": exact}).to_string();
        assert_eq!(parse(&json).map(|u| u.watchlist_truncated), Ok(false));
    }

    #[test]
    fn channel_names() {
        assert_eq!(server_to_user_channel("u-17"), "#server-to-user-u-17");
        assert_eq!(server_to_user_id("#server-to-user-u-17"), Some("u-17"));
        assert_eq!(server_to_user_id("#server-to-user-"), None);
        assert_eq!(server_to_user_id("private-x"), None);
        assert_eq!(watch_channel("u-2"), "#watch-u-2");
        assert_eq!(watch_channel_user("#watch-u-2"), Some("u-2"));
        assert_eq!(watch_channel_user("#watch-"), None);
    }

    #[test]
    fn signin_success_frame_6_2() {
        assert_eq!(
            signin_success(SPEC),
            r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"u-17\\\",\\\"user_info\\\":{\\\"name\\\":\\\"Ada Lovelace\\\"},\\\"watchlist\\\":[\\\"u-2\\\",\\\"u-3\\\"]}\"}"}"#
        );
    }

    #[test]
    fn watchlist_frame_6_4() {
        assert_eq!(
            watchlist_events(["u-2"], ["u-3"]),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"u-2\"]},{\"name\":\"offline\",\"user_ids\":[\"u-3\"]}]}"}"#
        );
        assert_eq!(
            watchlist_events([], ["a", "b"]),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"offline\",\"user_ids\":[\"a\",\"b\"]}]}"}"#
        );
        assert_eq!(
            watchlist_events([], []),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[]}"}"#
        );
    }
}
