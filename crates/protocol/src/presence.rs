//! Presence members (reference §3.2–3.4).

use serde_json::value::RawValue;
use thiserror::Error;

use crate::json::{self, Kind};

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
///
/// `user_id` may be a string or an integer (official examples use numbers; they become their
/// decimal string so `10` and `"10"` are the same member). A fraction or exponent is refused
/// rather than guessed at. `user_info` keeps its member order as sent; `null` counts as absent.
pub fn parse_channel_data(channel_data: &str, max_user_info_bytes: usize) -> Result<Member, ChannelDataError> {
    let [user_id, user_info] =
        json::pick_members(channel_data, ["user_id", "user_info"]).map_err(|_| ChannelDataError::NotAnObject)?;
    let user_id = user_id_text(user_id)?;
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN {
        return Err(ChannelDataError::InvalidUserId);
    }
    let user_info = match user_info {
        Some(raw) if json::kind(raw) != Kind::Null => {
            let text = json::compact(raw.get());
            if text.len() > max_user_info_bytes {
                return Err(ChannelDataError::UserInfoTooLarge {
                    max_bytes: max_user_info_bytes,
                });
            }
            text
        }
        _ => "null".to_owned(),
    };
    Ok(Member { user_id, user_info })
}

fn user_id_text(raw: Option<&RawValue>) -> Result<String, ChannelDataError> {
    let raw = raw.ok_or(ChannelDataError::MissingUserId)?;
    match json::kind(raw) {
        Kind::String => json::decode_string(raw).ok_or(ChannelDataError::InvalidUserId),
        Kind::Number => integer_text(raw.get()).ok_or(ChannelDataError::InvalidUserId),
        Kind::Null | Kind::Object | Kind::Other => Err(ChannelDataError::MissingUserId),
    }
}

/// The decimal string of a JSON integer, normalised (`-0` → `0`); `None` for fractions,
/// exponents and integers beyond 64 bits.
fn integer_text(number: &str) -> Option<String> {
    if let Ok(n) = number.parse::<i64>() {
        return Some(n.to_string());
    }
    number.parse::<u64>().ok().map(|n| n.to_string())
}

/// The `subscription_succeeded` data for a presence channel:
/// `{"presence":{"ids":[…],"hash":{id: user_info,…},"count":n}}`, `user_info` inserted as the
/// raw JSON text it was stored as. Duplicate ids must not be passed.
/// pusher-js reads `hash` and `count` to build its member list; `count` equals the number of
/// ids. An empty `user_info` text is written as `null` to keep the JSON valid.
pub fn roster_json<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut ids = String::from("{\"presence\":{\"ids\":[");
    let mut hash = String::new();
    let mut count: usize = 0;
    for (user_id, user_info) in members {
        if count > 0 {
            ids.push(',');
            hash.push(',');
        }
        json::push_str_literal(&mut ids, user_id);
        json::push_str_literal(&mut hash, user_id);
        hash.push(':');
        hash.push_str(if user_info.is_empty() { "null" } else { user_info });
        count += 1;
    }
    ids.push_str("],\"hash\":{");
    ids.push_str(&hash);
    ids.push_str("},\"count\":");
    ids.push_str(&count.to_string());
    ids.push_str("}}");
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user_id: &str, user_info: &str) -> Result<Member, ChannelDataError> {
        Ok(Member {
            user_id: user_id.to_owned(),
            user_info: user_info.to_owned(),
        })
    }

    #[test]
    fn parses_reference_channel_data() {
        assert_eq!(
            parse_channel_data(r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#, 1024),
            member("u-17", r#"{"name":"Ada Lovelace"}"#)
        );
        assert_eq!(
            parse_channel_data(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#, 1024),
            member("10", r#"{"name":"Mr. Channels"}"#)
        );
    }

    #[test]
    fn numeric_ids_become_decimal_strings() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("-42", "-42"),
            ("9223372036854775807", "9223372036854775807"),
            ("18446744073709551615", "18446744073709551615"),
        ];
        for (number, text) in cases {
            let json = format!("{{\"user_id\":{number}}}");
            assert_eq!(parse_channel_data(&json, 1024), member(text, "null"), "{number}");
        }
        for number in ["1.5", "1e3", "1.0", "18446744073709551616", "-9223372036854775809"] {
            let json = format!("{{\"user_id\":{number}}}");
            assert_eq!(
                parse_channel_data(&json, 1024),
                Err(ChannelDataError::InvalidUserId),
                "{number}"
            );
        }
    }

    #[test]
    fn user_info_is_compacted_in_received_order() {
        let parsed = parse_channel_data(
            "{ \"user_info\" : { \"z\" : 1 , \"a\" : [ 1 , \"x y\" ] } , \"user_id\" : \"u\" }",
            1024,
        );
        assert_eq!(parsed, member("u", r#"{"z":1,"a":[1,"x y"]}"#));
        assert_eq!(
            parse_channel_data(r#"{"user_id":"u","user_info":null}"#, 1024),
            member("u", "null")
        );
        assert_eq!(
            parse_channel_data(r#"{"user_id":"u","user_info":"s"}"#, 1024),
            member("u", "\"s\"")
        );
        assert_eq!(
            parse_channel_data(r#"{"user_id":"u","user_info":7,"x":[]}"#, 1024),
            member("u", "7")
        );
    }

    #[test]
    fn user_info_size_limit_counts_compact_bytes() {
        // {"n":"aaaa"} is 12 bytes once compacted.
        let spaced = r#"{"user_id":"u","user_info":{ "n" : "aaaa" }}"#;
        assert_eq!(parse_channel_data(spaced, 12), member("u", r#"{"n":"aaaa"}"#));
        assert_eq!(
            parse_channel_data(spaced, 11),
            Err(ChannelDataError::UserInfoTooLarge { max_bytes: 11 })
        );
        // An absent user_info is never "too large".
        assert_eq!(parse_channel_data(r#"{"user_id":"u"}"#, 0), member("u", "null"));
    }

    #[test]
    fn user_id_rules() {
        let id128 = "x".repeat(128);
        assert_eq!(
            parse_channel_data(&format!("{{\"user_id\":\"{id128}\"}}"), 1024),
            member(&id128, "null")
        );
        let id129 = "x".repeat(129);
        let cases = [
            (format!("{{\"user_id\":\"{id129}\"}}"), ChannelDataError::InvalidUserId),
            (r#"{"user_id":""}"#.to_owned(), ChannelDataError::InvalidUserId),
            (r#"{"user_id":"\ud800"}"#.to_owned(), ChannelDataError::InvalidUserId),
            (r#"{"user_info":{}}"#.to_owned(), ChannelDataError::MissingUserId),
            (r#"{"user_id":null}"#.to_owned(), ChannelDataError::MissingUserId),
            (r#"{"user_id":true}"#.to_owned(), ChannelDataError::MissingUserId),
            (r#"{"user_id":["u"]}"#.to_owned(), ChannelDataError::MissingUserId),
            (r#"{"user_id":{"id":"u"}}"#.to_owned(), ChannelDataError::MissingUserId),
        ];
        for (json, error) in cases {
            assert_eq!(parse_channel_data(&json, 1024), Err(error), "{json}");
        }
        // Escapes are decoded: the id is the string value, not its JSON spelling.
        assert_eq!(
            parse_channel_data(r#"{"user_id":"\u0041\"b"}"#, 1024),
            member("A\"b", "null")
        );
    }

    #[test]
    fn non_objects_are_refused() {
        for json in [
            "",
            "[]",
            "\"{}\"",
            "1",
            "null",
            "{",
            "{\"user_id\":\"u\"} x",
            "{'user_id':'u'}",
        ] {
            assert_eq!(
                parse_channel_data(json, 1024),
                Err(ChannelDataError::NotAnObject),
                "{json:?}"
            );
        }
    }

    #[test]
    fn roster() {
        assert_eq!(roster_json([]), r#"{"presence":{"ids":[],"hash":{},"count":0}}"#);
        assert_eq!(
            roster_json([("u-17", r#"{"name":"Ada Lovelace"}"#), ("u-2", r#"{"name":"Grace"}"#)]),
            r#"{"presence":{"ids":["u-17","u-2"],"hash":{"u-17":{"name":"Ada Lovelace"},"u-2":{"name":"Grace"}},"count":2}}"#
        );
        assert_eq!(
            roster_json([("a\"b", "null"), ("c", "")]),
            r#"{"presence":{"ids":["a\"b","c"],"hash":{"a\"b":null,"c":null},"count":2}}"#
        );
    }
}
