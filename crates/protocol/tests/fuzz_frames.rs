//! Fuzzing of `parse_client_message`: generated valid frames must parse exactly, and random or
//! mutated frames must match an independent model built on `serde_json::Value` (or, where
//! `Value` cannot represent the input, at least be classified correctly and never panic).

mod common;

use common::{canonical, is_json, mutate, serialise, Rng};
use ferrocast_protocol::inbound::{parse_client_message, ClientEvent, ClientMessage, ParseError, Subscribe};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------- client frames: the model

/// Which fields of a parsed message came from JSON values (not strings), so they are compared
/// as JSON (member order may differ: `Value` sorts object keys).
#[derive(Default)]
struct JsonFields {
    channel_data: bool,
    user_data: bool,
    client_data: bool,
}

/// An independent, straightforward reading of the rules over `serde_json::Value`. `None` when
/// `Value` cannot represent the input (nesting deeper than 128, lone surrogates, huge numbers).
fn model(text: &str) -> Option<(Result<ClientMessage, ParseError>, JsonFields)> {
    let mut fields = JsonFields::default();
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) if !is_json(text) => return Some((Err(ParseError::InvalidJson), fields)),
        Err(_) => return None,
    };
    let Value::Object(frame) = value else {
        return Some((Err(ParseError::NotAnObject), fields));
    };
    let Some(Value::String(event)) = frame.get("event") else {
        return Some((Err(ParseError::MissingEvent), fields));
    };
    let event = event.clone();
    let missing = |field| {
        Err(ParseError::MissingField {
            event: event.clone(),
            field,
        })
    };
    let data = frame.get("data");
    let command = match data {
        Some(Value::Object(map)) => Some(map.clone()),
        Some(Value::String(inner)) => match serde_json::from_str::<Value>(inner) {
            Ok(Value::Object(map)) => Some(map),
            Ok(_) => None,
            Err(_) if is_json(inner) => return None,
            Err(_) => None,
        },
        _ => None,
    };
    let string = |map: &Map<String, Value>, key: &str| -> Result<Option<String>, ()> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(()),
        }
    };
    let json_text = |map: &Map<String, Value>, key: &str, flag: &mut bool| -> Result<Option<String>, ()> {
        match map.get(key) {
            Some(object @ Value::Object(_)) => {
                *flag = true;
                Ok(Some(object.to_string()))
            }
            _ => string(map, key),
        }
    };
    let invalid_data = Err(ParseError::InvalidData { event: event.clone() });
    let result = match event.as_str() {
        "pusher:ping" => Ok(ClientMessage::Ping),
        "pusher:pong" => Ok(ClientMessage::Pong),
        "pusher:subscribe" | "pusher:unsubscribe" | "pusher:signin" => match &command {
            None => invalid_data,
            Some(map) => match event.as_str() {
                "pusher:subscribe" => match string(map, "channel") {
                    Ok(Some(channel)) => match string(map, "auth") {
                        Err(()) => missing("auth"),
                        Ok(auth) => match json_text(map, "channel_data", &mut fields.channel_data) {
                            Err(()) => missing("channel_data"),
                            Ok(channel_data) => Ok(ClientMessage::Subscribe(Subscribe {
                                channel,
                                auth,
                                channel_data,
                            })),
                        },
                    },
                    _ => missing("channel"),
                },
                "pusher:unsubscribe" => match string(map, "channel") {
                    Ok(Some(channel)) => Ok(ClientMessage::Unsubscribe { channel }),
                    _ => missing("channel"),
                },
                _ => match string(map, "auth") {
                    Ok(Some(auth)) => match json_text(map, "user_data", &mut fields.user_data) {
                        Ok(Some(user_data)) => Ok(ClientMessage::Signin { auth, user_data }),
                        _ => missing("user_data"),
                    },
                    _ => missing("auth"),
                },
            },
        },
        name if name.starts_with("client-") => match frame.get("channel") {
            Some(Value::String(channel)) => {
                let data = match data {
                    None => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => {
                        fields.client_data = true;
                        other.to_string()
                    }
                };
                Ok(ClientMessage::ClientEvent(ClientEvent {
                    event: event.clone(),
                    channel: channel.clone(),
                    data,
                }))
            }
            _ => missing("channel"),
        },
        name if name.starts_with("pusher:") => Ok(ClientMessage::IgnoredPusherEvent(event.clone())),
        _ => Err(ParseError::UnknownEvent(event.clone())),
    };
    Some((result, fields))
}

fn canonicalise(message: ClientMessage, fields: &JsonFields) -> ClientMessage {
    match message {
        ClientMessage::Subscribe(Subscribe {
            channel,
            auth,
            channel_data,
        }) if fields.channel_data => {
            let channel_data = channel_data.map(|text| canonical(&text));
            ClientMessage::Subscribe(Subscribe {
                channel,
                auth,
                channel_data,
            })
        }
        ClientMessage::Signin { auth, user_data } if fields.user_data => ClientMessage::Signin {
            auth,
            user_data: canonical(&user_data),
        },
        ClientMessage::ClientEvent(ClientEvent { event, channel, data }) if fields.client_data => {
            ClientMessage::ClientEvent(ClientEvent {
                event,
                channel,
                data: canonical(&data),
            })
        }
        other => other,
    }
}

/// Parse `text` and compare with the model. Returns whether the frame parsed successfully and
/// whether the model could judge it.
fn check_frame(text: &str) -> (bool, bool) {
    let actual = parse_client_message(text);
    assert_eq!(actual, parse_client_message(text), "not deterministic: {text:?}");

    // Structural classification holds for every input, even where the model gives up.
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    match (&actual, is_json(text), trimmed.starts_with('{')) {
        (Err(ParseError::InvalidJson), false, _) => {}
        (Err(ParseError::NotAnObject), true, false) => {}
        (Err(ParseError::InvalidJson | ParseError::NotAnObject), ..) | (_, false, _) | (_, true, false) => {
            panic!("wrong classification {actual:?} for {text:?}")
        }
        _ => {}
    }

    let modelled = match model(text) {
        Some((expected, fields)) => {
            let actual = actual.clone().map(|message| canonicalise(message, &fields));
            assert_eq!(actual, expected, "frame {text:?}");
            true
        }
        None => false,
    };
    (actual.is_ok(), modelled)
}

// ---------------------------------------------------------------- client frames: generators

/// A random valid frame and exactly what it must parse to.
fn valid_frame(rng: &mut Rng) -> (String, ClientMessage) {
    let mut frame = Map::new();
    let extra = |rng: &mut Rng, map: &mut Map<String, Value>| {
        if rng.chance(30) {
            let key = format!("x-{}", rng.text(4));
            map.insert(key, rng.value(2));
        }
    };
    let as_object_or_string = |rng: &mut Rng, map: Map<String, Value>| {
        if rng.chance(50) {
            Value::Object(map)
        } else {
            Value::String(serialise(rng, &Value::Object(map)))
        }
    };
    let expected = match rng.below(7) {
        0 | 1 => {
            let ping = rng.chance(50);
            frame.insert("event".into(), json!(if ping { "pusher:ping" } else { "pusher:pong" }));
            if rng.chance(70) {
                frame.insert("data".into(), rng.value(2));
            }
            if ping {
                ClientMessage::Ping
            } else {
                ClientMessage::Pong
            }
        }
        2 => {
            let channel = rng.text(20);
            let auth = rng.chance(70).then(|| rng.text(20));
            let mut data = Map::new();
            data.insert("channel".into(), json!(channel));
            if let Some(auth) = &auth {
                data.insert("auth".into(), json!(auth));
            }
            let channel_data = match rng.below(3) {
                0 => None,
                1 => {
                    let text = rng.text(30);
                    data.insert("channel_data".into(), json!(text));
                    Some(text)
                }
                _ => {
                    let object = Value::Object(rng.object(2));
                    data.insert("channel_data".into(), object.clone());
                    Some(object.to_string())
                }
            };
            extra(rng, &mut data);
            frame.insert("event".into(), json!("pusher:subscribe"));
            frame.insert("data".into(), as_object_or_string(rng, data));
            ClientMessage::Subscribe(Subscribe {
                channel,
                auth,
                channel_data,
            })
        }
        3 => {
            let channel = rng.text(20);
            let mut data = Map::new();
            data.insert("channel".into(), json!(channel));
            extra(rng, &mut data);
            frame.insert("event".into(), json!("pusher:unsubscribe"));
            frame.insert("data".into(), as_object_or_string(rng, data));
            ClientMessage::Unsubscribe { channel }
        }
        4 => {
            let auth = rng.text(20);
            let user_data = rng.text(30);
            let mut data = Map::new();
            data.insert("auth".into(), json!(auth));
            data.insert("user_data".into(), json!(user_data));
            extra(rng, &mut data);
            frame.insert("event".into(), json!("pusher:signin"));
            frame.insert("data".into(), as_object_or_string(rng, data));
            ClientMessage::Signin { auth, user_data }
        }
        5 => {
            let event = format!("client-{}", rng.text(10));
            let channel = rng.text(20);
            let data = match rng.below(3) {
                0 => String::new(),
                1 => {
                    let text = rng.text(30);
                    frame.insert("data".into(), json!(text));
                    text
                }
                _ => {
                    let value = rng.value(3);
                    frame.insert("data".into(), value.clone());
                    match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }
                }
            };
            frame.insert("event".into(), json!(event));
            frame.insert("channel".into(), json!(channel));
            ClientMessage::ClientEvent(ClientEvent { event, channel, data })
        }
        _ => {
            let event = format!("pusher:x{}", rng.text(10));
            frame.insert("event".into(), json!(event));
            frame.insert("data".into(), rng.value(2));
            ClientMessage::IgnoredPusherEvent(event)
        }
    };
    extra(rng, &mut frame);
    (serialise(rng, &Value::Object(frame)), expected)
}

const HAND_WRITTEN: &[&str] = &[
    r#"{"event":"pusher:ping","data":{}}"#,
    r#"{"event":"pusher:subscribe","data":{"channel":"my-channel","auth":""}}"#,
    r#"{"event":"pusher:subscribe","data":{"channel":"presence-room-7","auth":"3f6a2c9b81e04d7d5a10:13d3","channel_data":"{\"user_id\":\"u-17\",\"user_info\":{\"name\":\"Ada Lovelace\"}}"}}"#,
    r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#,
    r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-room-7"}}"#,
    r#"{"event":"pusher:signin","data":{"auth":"k:7c32","user_data":"{\"id\":\"u-17\",\"watchlist\":[\"u-2\"]}"}}"#,
    r#"{"event":"client-typing","channel":"presence-room-7","data":{"active":true}}"#,
    r#"{"event":"client-typing","channel":"private-a","data":"{\"active\":true}"}"#,
    r#"{"event":"pusher:cache_miss","channel":"cache-a"}"#,
    r#"{"event":"my-event","channel":"a","data":[1,2,3]}"#,
];

#[test]
fn generated_valid_frames_parse_exactly() {
    let mut rng = Rng::new(1);
    for _ in 0..20_000 {
        let (text, expected) = valid_frame(&mut rng);
        assert_eq!(parse_client_message(&text), Ok(expected), "frame {text}");
    }
}

#[test]
fn mutated_frames_match_the_model() {
    let mut rng = Rng::new(2);
    let mut corpus: Vec<String> = HAND_WRITTEN.iter().map(|s| (*s).to_owned()).collect();
    corpus.extend((0..200).map(|_| valid_frame(&mut rng).0));
    for frame in HAND_WRITTEN {
        assert_eq!(check_frame(frame), (!frame.contains("my-event"), true), "{frame}");
    }
    let (mut parsed, mut modelled) = (0, 0);
    for _ in 0..60_000 {
        let base = rng.pick(&corpus).clone();
        let (ok, judged) = check_frame(&mutate(&mut rng, &base));
        parsed += usize::from(ok);
        modelled += usize::from(judged);
    }
    // The mutations are small enough that some frames survive, so both paths get exercised,
    // and the model judges almost all of them.
    assert!(parsed > 1_000, "only {parsed} mutated frames parsed");
    assert!(modelled > 50_000, "the model judged only {modelled} frames");
}

#[test]
fn random_bytes_and_token_soup() {
    const PUNCTUATION: &[&str] = &["{", "}", "[", "]", ",", ":", " "];
    const KEYS: &[&str] = &[
        "\"event\"",
        "\"data\"",
        "\"channel\"",
        "\"auth\"",
        "\"channel_data\"",
        "\"user_data\"",
        "\"\\u0065vent\"",
        "\"x\"",
    ];
    const VALUES: &[&str] = &[
        "\"pusher:subscribe\"",
        "\"pusher:signin\"",
        "\"pusher:unsubscribe\"",
        "\"pusher:ping\"",
        "\"client-x\"",
        "\"private-a\"",
        "\"\"",
        "\"{\\\"channel\\\":\\\"a\\\"}\"",
        "{\"channel\":\"a\",\"auth\":\"k:s\"}",
        "{\"auth\":\"k:s\",\"user_data\":\"{}\"}",
        "null",
        "true",
        "1",
        "-2.5e3",
        "[]",
        "\"\\ud800\"",
        "\"\\u00e9\"",
    ];
    let mut rng = Rng::new(3);
    let mut soup_parsed = 0;
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        check_frame(&String::from_utf8_lossy(&bytes));

        // An object of random known members, or a random token sequence.
        let soup = if rng.chance(60) {
            let members: Vec<String> = (0..rng.below(5))
                .map(|_| format!("{}:{}", rng.pick(KEYS), rng.pick(VALUES)))
                .collect();
            format!("{{{}}}", members.join(","))
        } else {
            let all: [&[&str]; 3] = [PUNCTUATION, KEYS, VALUES];
            (0..rng.below(24))
                .map(|_| {
                    let tokens = *rng.pick(&all);
                    *rng.pick(tokens)
                })
                .collect()
        };
        let (ok, _) = check_frame(&soup);
        soup_parsed += usize::from(ok);
    }
    assert!(soup_parsed > 200, "only {soup_parsed} soups parsed");
}
