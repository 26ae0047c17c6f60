//! Fuzzing of the other parsers of untrusted input: channel names, presence `channel_data`,
//! `auth` strings, HTTP query strings and signatures, plus outbound escaping. Each random or
//! mutated input is checked against a model or an exact invariant, not only for panics.

mod common;

use common::{canonical, is_json, mutate, serialise, Rng};
use ferrocast_protocol::channel::{validate_channel_name, ChannelKind, ChannelNameError};
use ferrocast_protocol::outbound::{channel_event, ServerMessage};
use ferrocast_protocol::presence::{parse_channel_data, ChannelDataError, Member};
use ferrocast_protocol::rest::{parse_query, sign_query, string_to_sign, verify_request, RestAuthError, SignedRequest};
use ferrocast_protocol::signature::{sign, verify_auth, AuthError};
use ferrocast_protocol::user::{parse_user_data, UserDataError, MAX_WATCHLIST};
use serde_json::{json, Value};

// ---------------------------------------------------------------- channel names

fn expected_channel(name: &str, max: usize) -> Result<ChannelKind, ChannelNameError> {
    let charset = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c));
    if name.is_empty() {
        Err(ChannelNameError::Empty)
    } else if name.len() > max {
        Err(ChannelNameError::TooLong { max })
    } else if let Some(rest) = name.strip_prefix('#') {
        match rest.strip_prefix("server-to-user-") {
            Some(id) if !id.is_empty() && charset(id) => Ok(ChannelKind::ServerToUser),
            Some(id) if !id.is_empty() => Err(ChannelNameError::InvalidCharacters),
            _ => Err(ChannelNameError::Reserved),
        }
    } else if !charset(name) {
        Err(ChannelNameError::InvalidCharacters)
    } else if name.starts_with("private-encrypted-") {
        Ok(ChannelKind::PrivateEncrypted)
    } else if name.starts_with("private-") {
        Ok(ChannelKind::Private)
    } else if name.starts_with("presence-") {
        Ok(ChannelKind::Presence)
    } else {
        Ok(ChannelKind::Public)
    }
}

#[test]
fn channel_names_match_the_model() {
    let mut rng = Rng::new(4);
    let prefixes = [
        "",
        "private-",
        "private-encrypted-",
        "presence-",
        "cache-",
        "#server-to-user-",
        "#",
    ];
    let mut accepted = 0;
    for _ in 0..30_000 {
        let prefix = *rng.pick(&prefixes);
        let body = if rng.chance(50) { rng.name() } else { rng.text(8) };
        let mut name = format!("{prefix}{body}");
        if rng.chance(20) {
            name = mutate(&mut rng, &name);
        }
        let max = *rng.pick(&[164, 10, 0, 30]);
        let result = validate_channel_name(&name, max);
        assert_eq!(result, expected_channel(&name, max), "{name:?} max {max}");
        accepted += usize::from(result.is_ok());
    }
    assert!(accepted > 5_000, "only {accepted} names accepted");
}

// ---------------------------------------------------------------- presence channel_data

fn expected_member(text: &str) -> Option<Result<Member, ChannelDataError>> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return (!is_json(text)).then_some(Err(ChannelDataError::NotAnObject));
    };
    let Value::Object(map) = value else {
        return Some(Err(ChannelDataError::NotAnObject));
    };
    let user_id = match map.get("user_id") {
        Some(Value::String(s)) => s.clone(),
        // `Value` reads -0, 0.0 and -0.0 alike; only the first is an integer.
        Some(Value::Number(n)) if n.is_f64() && n.as_f64() == Some(0.0) => return None,
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => return Some(Err(ChannelDataError::InvalidUserId)),
        },
        _ => return Some(Err(ChannelDataError::MissingUserId)),
    };
    if user_id.is_empty() || user_id.len() > 128 {
        return Some(Err(ChannelDataError::InvalidUserId));
    }
    let user_info = match map.get("user_info") {
        None | Some(Value::Null) => "null".to_owned(),
        Some(info) => info.to_string(),
    };
    Some(Ok(Member { user_id, user_info }))
}

#[test]
fn channel_data_matches_the_model() {
    let mut rng = Rng::new(5);
    let mut corpus = vec![
        r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#.to_owned(),
        r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#.to_owned(),
        r#"{"user_id":-42}"#.to_owned(),
    ];
    for _ in 0..100 {
        let mut map = rng.object(2);
        let user_id = match rng.below(3) {
            0 => json!(rng.text(10)),
            1 => json!(rng.next() as i64 >> rng.below(64)),
            _ => rng.value(1),
        };
        map.insert("user_id".into(), user_id);
        if rng.chance(70) {
            map.insert("user_info".into(), rng.value(3));
        }
        corpus.push(serialise(&mut rng, &Value::Object(map)));
    }
    let mut accepted = 0;
    for i in 0..30_000 {
        let base = rng.pick(&corpus).clone();
        let text = if i % 4 == 0 { base } else { mutate(&mut rng, &base) };
        let result = parse_channel_data(&text, usize::MAX);
        if let Some(expected) = expected_member(&text) {
            let canonical_result = result.clone().map(|m| Member {
                user_info: canonical(&m.user_info),
                ..m
            });
            let canonical_expected = expected.map(|m| Member {
                user_info: canonical(&m.user_info),
                ..m
            });
            assert_eq!(canonical_result, canonical_expected, "{text:?}");
        }
        // The size limit is measured on the stored compact text.
        let limit = rng.below(40);
        match (parse_channel_data(&text, limit), &result) {
            (Ok(limited), Ok(member)) => {
                assert_eq!(&limited, member);
                assert!(member.user_info == "null" || member.user_info.len() <= limit);
            }
            (Err(ChannelDataError::UserInfoTooLarge { max_bytes }), Ok(member)) => {
                assert_eq!(max_bytes, limit);
                assert!(member.user_info.len() > limit, "{text:?}");
            }
            (limited, unlimited) => assert_eq!(&limited, unlimited, "{text:?}"),
        }
        accepted += usize::from(result.is_ok());
    }
    assert!(accepted > 5_000, "only {accepted} accepted");
}

// ---------------------------------------------------------------- signin user_data

/// The model of `parse_user_data`: what serde_json's full parse says, or `None` when the text is
/// not something the model can judge (invalid JSON, duplicated keys).
fn expected_user(text: &str) -> Option<Result<(String, usize, bool), UserDataError>> {
    let charset = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "_-=@,.;".contains(c));
    let valid_id = |s: &str| !s.is_empty() && s.len() <= 128 && charset(s);
    let value: Value = serde_json::from_str(text).ok()?;
    let Value::Object(map) = value else {
        return Some(Err(UserDataError::NotAnObject));
    };
    if text.matches("\"id\"").count() > 1 || text.matches("\"watchlist\"").count() > 1 || text.contains('\\') {
        return None;
    }
    let id = match map.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Some(Err(UserDataError::MissingId)),
    };
    if !valid_id(&id) {
        return Some(Err(UserDataError::InvalidId));
    }
    let (count, truncated) = match map.get("watchlist") {
        None | Some(Value::Null) => (0, false),
        Some(Value::Array(entries)) => {
            let mut kept: Vec<&str> = Vec::new();
            for entry in entries.iter().take(MAX_WATCHLIST) {
                match entry {
                    Value::String(s) if valid_id(s) => {
                        if !kept.contains(&s.as_str()) {
                            kept.push(s);
                        }
                    }
                    _ => return Some(Err(UserDataError::InvalidWatchlist)),
                }
            }
            (kept.len(), entries.len() > MAX_WATCHLIST)
        }
        Some(_) => return Some(Err(UserDataError::InvalidWatchlist)),
    };
    Some(Ok((id, count, truncated)))
}

#[test]
fn user_data_matches_the_model() {
    let mut rng = Rng::new(9);
    let mut corpus = vec![
        r#"{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#.to_owned(),
        r#"{"id":"a","watchlist":["a","a","b"]}"#.to_owned(),
    ];
    for _ in 0..100 {
        let mut map = rng.object(2);
        let id = if rng.chance(70) {
            json!(rng.name())
        } else {
            rng.value(1)
        };
        map.insert("id".into(), id);
        if rng.chance(60) {
            let n = rng.below(110);
            let list: Vec<Value> = (0..n)
                .map(|_| {
                    if rng.chance(95) {
                        json!(rng.name())
                    } else {
                        rng.value(1)
                    }
                })
                .collect();
            map.insert("watchlist".into(), Value::Array(list));
        }
        corpus.push(serialise(&mut rng, &Value::Object(map)));
    }
    let mut accepted = 0;
    for i in 0..20_000 {
        let base = rng.pick(&corpus).clone();
        let text = if i % 4 == 0 { base } else { mutate(&mut rng, &base) };
        let result = parse_user_data(&text, usize::MAX);
        if let Ok(user) = &result {
            assert!(user.watchlist.len() <= MAX_WATCHLIST);
        }
        if let Some(expected) = expected_user(&text) {
            let got = result.clone().map(|u| (u.id, u.watchlist.len(), u.watchlist_truncated));
            assert_eq!(got, expected, "{text:?}");
        }
        accepted += usize::from(result.is_ok());
    }
    assert!(accepted > 2_000, "only {accepted} accepted");
}

// ---------------------------------------------------------------- auth strings

#[test]
fn auth_strings_match_the_model() {
    let key = "3f6a2c9b81e04d7d5a10";
    let secret = "9e1d7b4c2a85f03e6b12";
    let mut rng = Rng::new(6);
    let mut accepted = 0;
    for i in 0..30_000 {
        let signed = format!("{}.{}:private-{}", rng.below(1000), rng.below(1000), rng.name());
        let good = format!("{key}:{}", sign(secret, &signed));
        let auth = match i % 3 {
            0 => good.clone(),
            1 => mutate(&mut rng, &good),
            _ => rng.text(40),
        };
        let expected = match auth.split_once(':') {
            _ if auth.is_empty() => Err(AuthError::Missing),
            None => Err(AuthError::Malformed),
            Some((k, _)) if k != key => Err(AuthError::WrongKey),
            Some((_, signature)) if signature.to_ascii_lowercase() == sign(secret, &signed) => Ok(()),
            Some(_) => Err(AuthError::BadSignature { signed: signed.clone() }),
        };
        let result = verify_auth(key, secret, &signed, Some(&auth));
        assert_eq!(result, expected, "{auth:?}");
        accepted += usize::from(result.is_ok());
    }
    assert!(accepted >= 10_000, "only {accepted} accepted");
}

// ---------------------------------------------------------------- HTTP queries

#[test]
fn queries_parse_and_verify_consistently() {
    let key = "3f6a2c9b81e04d7d5a10";
    let secret = "9e1d7b4c2a85f03e6b12";
    let now = 1_700_000_000;
    let mut rng = Rng::new(7);
    let mut accepted = 0;
    for i in 0..20_000 {
        // Random parameters from the characters the SDK leaves unescaped.
        let params: Vec<(String, String)> = (0..rng.below(4))
            .map(|_| (format!("k{}", rng.name().replace('=', "")), rng.name()))
            .collect();
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let body = if rng.chance(50) { rng.text(30) } else { String::new() };
        let path = format!("/apps/{}/events", rng.below(1000));
        let method = *rng.pick(&["GET", "POST"]);
        let timestamp = now - 600 + rng.below(1201) as u64;
        let query = sign_query(method, &path, &borrowed, body.as_bytes(), key, secret, timestamp);
        let original = parse_query(&query);
        let original_signed = string_to_sign(method, &path, &original);

        let query = if i % 2 == 0 { query } else { mutate(&mut rng, &query) };
        let parsed = parse_query(&query);
        let segments: Vec<&str> = query
            .strip_prefix('?')
            .unwrap_or(&query)
            .split('&')
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(parsed.len(), segments.len(), "{query:?}");
        for ((k, v), segment) in parsed.iter().zip(segments) {
            if !segment.contains('%') {
                assert_eq!(format!("{k}={v}").trim_end_matches('='), segment.trim_end_matches('='));
            }
        }

        let request = SignedRequest {
            method,
            path: &path,
            params: &parsed,
            body: body.as_bytes(),
        };
        let result = verify_request(&request, key, secret, now);
        if i % 2 == 0 {
            assert_eq!(result, Ok(()), "{query}");
        }
        if result.is_ok() {
            // Whatever the mutation did, an accepted request signs the same string.
            assert_eq!(string_to_sign(method, &path, &parsed), original_signed, "{query}");
            accepted += 1;
        } else if let Err(RestAuthError::BadSignature { string_to_sign: signed }) = &result {
            assert_eq!(signed, &string_to_sign(method, &path, &parsed));
        }
    }
    assert!(accepted >= 10_000);
}

#[test]
fn random_queries_never_verify() {
    let mut rng = Rng::new(8);
    for _ in 0..10_000 {
        let raw = if rng.chance(50) {
            rng.text(60)
        } else {
            let bytes: Vec<u8> = (0..rng.below(80)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let params = parse_query(&raw);
        let request = SignedRequest {
            method: "POST",
            path: "/apps/1/events",
            params: &params,
            body: b"x",
        };
        assert!(verify_request(&request, "k", "s", 1_700_000_000).is_err(), "{raw:?}");
    }
}

// ---------------------------------------------------------------- outbound escaping

#[test]
fn outbound_frames_round_trip_random_strings() {
    let mut rng = Rng::new(9);
    for _ in 0..20_000 {
        let (event, channel, data) = (rng.text(10), rng.text(10), rng.text(40));
        let user_id = rng.chance(50).then(|| rng.text(10));
        let frame = channel_event(&event, &channel, &data, user_id.as_deref());
        let message = ServerMessage {
            event: &event,
            data: &data,
            channel: Some(&channel),
            user_id: user_id.as_deref(),
        };
        assert_eq!(frame, serde_json::to_string(&message).unwrap());
        let value: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(value["event"], event.as_str());
        assert_eq!(value["data"], data.as_str());
        assert_eq!(value["channel"], channel.as_str());
        assert_eq!(value.get("user_id").and_then(Value::as_str), user_id.as_deref());
    }
}
