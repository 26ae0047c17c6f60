//! Client → server frames: every message kind, object and string `data`, and bad input.

use ferrocast_protocol::inbound::{parse_client_message, ClientEvent, ClientMessage, ParseError, Subscribe};

fn parse(text: &str) -> Result<ClientMessage, ParseError> {
    parse_client_message(text)
}

fn subscribe(channel: &str, auth: Option<&str>, channel_data: Option<&str>) -> Result<ClientMessage, ParseError> {
    Ok(ClientMessage::Subscribe(Subscribe {
        channel: channel.to_owned(),
        auth: auth.map(str::to_owned),
        channel_data: channel_data.map(str::to_owned),
    }))
}

fn client_event(event: &str, channel: &str, data: &str) -> Result<ClientMessage, ParseError> {
    Ok(ClientMessage::ClientEvent(ClientEvent {
        event: event.to_owned(),
        channel: channel.to_owned(),
        data: data.to_owned(),
    }))
}

fn invalid_data(event: &str) -> Result<ClientMessage, ParseError> {
    Err(ParseError::InvalidData {
        event: event.to_owned(),
    })
}

fn missing(event: &str, field: &'static str) -> Result<ClientMessage, ParseError> {
    Err(ParseError::MissingField {
        event: event.to_owned(),
        field,
    })
}

#[test]
fn ping_and_pong_ignore_data() {
    for data in [
        "",
        r#","data":{}"#,
        r#","data":"{}""#,
        r#","data":42"#,
        r#","data":[1]"#,
    ] {
        assert_eq!(
            parse(&format!(r#"{{"event":"pusher:ping"{data}}}"#)),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse(&format!(r#"{{"event":"pusher:pong"{data}}}"#)),
            Ok(ClientMessage::Pong)
        );
    }
}

#[test]
fn subscribe_as_pusher_js_sends_it_3_1() {
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"my-channel","auth":""}}"#),
        subscribe("my-channel", Some(""), None)
    );
    assert_eq!(
        parse(
            r#"{"event":"pusher:subscribe","data":{"channel":"private-orders-42","auth":"3f6a2c9b81e04d7d5a10:49eb"}}"#
        ),
        subscribe("private-orders-42", Some("3f6a2c9b81e04d7d5a10:49eb"), None)
    );
    assert_eq!(
        parse(
            r#"{"event":"pusher:subscribe","data":{"channel":"presence-room-7","auth":"k:s","channel_data":"{\"user_id\":\"u-17\",\"user_info\":{\"name\":\"Ada Lovelace\"}}"}}"#
        ),
        subscribe(
            "presence-room-7",
            Some("k:s"),
            Some(r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#)
        )
    );
    assert_eq!(
        parse(r##"{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-u-17"}}"##),
        subscribe("#server-to-user-u-17", Some(""), None)
    );
}

#[test]
fn subscribe_auth_absent_or_null_is_none() {
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"a"}}"#),
        subscribe("a", None, None)
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":null,"channel_data":null}}"#),
        subscribe("a", None, None)
    );
}

#[test]
fn subscribe_with_string_data() {
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"my-channel\",\"auth\":\"\"}"}"#),
        subscribe("my-channel", Some(""), None)
    );
    // channel_data inside string data is a string in a string: its exact text is kept.
    assert_eq!(
        parse(
            r#"{"event":"pusher:subscribe","data":"{\"channel\":\"presence-a\",\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\": 1}\"}"}"#
        ),
        subscribe("presence-a", Some("k:s"), Some(r#"{"user_id": 1}"#))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":" { \"channel\" : \"a\" } "}"#),
        subscribe("a", None, None)
    );
}

#[test]
fn channel_data_text_is_kept_exactly() {
    // Whitespace and key order inside the string are not touched (it is hashed as received).
    let exact = r#"{ "user_info": {"b":1, "a":2}, "user_id": "u" }"#;
    let frame = serde_json::json!({
        "event": "pusher:subscribe",
        "data": {"channel": "presence-a", "auth": "k:s", "channel_data": exact},
    })
    .to_string();
    assert_eq!(parse(&frame), subscribe("presence-a", Some("k:s"), Some(exact)));
}

#[test]
fn channel_data_object_becomes_compact_text_in_sent_order() {
    assert_eq!(
        parse(
            r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","channel_data":{ "user_id" : "u", "user_info" : { "z" : 1, "a" : "x y" } }}}"#
        ),
        subscribe(
            "presence-a",
            None,
            Some(r#"{"user_id":"u","user_info":{"z":1,"a":"x y"}}"#)
        )
    );
}

#[test]
fn unsubscribe() {
    let expected = Ok(ClientMessage::Unsubscribe {
        channel: "presence-room-7".to_owned(),
    });
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-room-7"}}"#),
        expected
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":"{\"channel\":\"presence-room-7\"}"}"#),
        expected
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{}}"#),
        missing("pusher:unsubscribe", "channel")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe"}"#),
        invalid_data("pusher:unsubscribe")
    );
}

#[test]
fn signin_6_1() {
    let user_data = r#"{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#;
    let expected = Ok(ClientMessage::Signin {
        auth: "k:7c32".to_owned(),
        user_data: user_data.to_owned(),
    });
    let object = serde_json::json!({"event": "pusher:signin", "data": {"auth": "k:7c32", "user_data": user_data}});
    assert_eq!(parse(&object.to_string()), expected);
    let inner = serde_json::json!({"auth": "k:7c32", "user_data": user_data}).to_string();
    let string = serde_json::json!({"event": "pusher:signin", "data": inner});
    assert_eq!(parse(&string.to_string()), expected);
    // An object user_data is taken as its compact text.
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":{ "id" : "u" }}}"#),
        Ok(ClientMessage::Signin {
            auth: "k:s".to_owned(),
            user_data: r#"{"id":"u"}"#.to_owned()
        })
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"","user_data":"{}"}}"#),
        Ok(ClientMessage::Signin {
            auth: String::new(),
            user_data: "{}".to_owned()
        })
    );
}

#[test]
fn signin_missing_fields() {
    let e = "pusher:signin";
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"user_data":"{}"}}"#),
        missing(e, "auth")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":1,"user_data":"{}"}}"#),
        missing(e, "auth")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s"}}"#),
        missing(e, "user_data")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":null}}"#),
        missing(e, "user_data")
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":[1]}}"#),
        missing(e, "user_data")
    );
    assert_eq!(parse(r#"{"event":"pusher:signin","data":"x"}"#), invalid_data(e));
}

#[test]
fn client_events_4() {
    let e = "client-typing";
    let c = "presence-room-7";
    let frame = |data: &str| format!(r#"{{"event":"client-typing","channel":"presence-room-7"{data}}}"#);
    // pusher-js sends an object: it becomes its compact text.
    assert_eq!(
        parse(&frame(r#","data":{ "active" : true }"#)),
        client_event(e, c, r#"{"active":true}"#)
    );
    // A string is taken unchanged (unescaped once).
    assert_eq!(
        parse(&frame(r#","data":"{\"active\":true}""#)),
        client_event(e, c, r#"{"active":true}"#)
    );
    assert_eq!(parse(&frame(r#","data":"hello""#)), client_event(e, c, "hello"));
    assert_eq!(parse(&frame(r#","data":"""#)), client_event(e, c, ""));
    assert_eq!(parse(&frame("")), client_event(e, c, ""));
    assert_eq!(parse(&frame(r#","data":42"#)), client_event(e, c, "42"));
    assert_eq!(parse(&frame(r#","data":-1.5e3"#)), client_event(e, c, "-1.5e3"));
    assert_eq!(
        parse(&frame(r#","data":[1, "a b", {}]"#)),
        client_event(e, c, r#"[1,"a b",{}]"#)
    );
    assert_eq!(parse(&frame(r#","data":null"#)), client_event(e, c, "null"));
    assert_eq!(parse(&frame(r#","data":true"#)), client_event(e, c, "true"));
    // The channel is a top-level member; a channel inside data does not count.
    assert_eq!(
        parse(r#"{"event":"client-typing","data":{"channel":"presence-room-7"}}"#),
        missing(e, "channel")
    );
    assert_eq!(
        parse(r#"{"event":"client-typing","channel":7,"data":{}}"#),
        missing(e, "channel")
    );
    assert_eq!(
        parse(r#"{"event":"client-typing","channel":null,"data":{}}"#),
        missing(e, "channel")
    );
    // A lone surrogate cannot be represented in a Rust string.
    assert_eq!(parse(&frame(r#","data":"\ud800""#)), invalid_data(e));
    // Non-ASCII and escapes survive.
    assert_eq!(parse(&frame(r#","data":"\u00e9 日本""#)), client_event(e, c, "é 日本"));
    assert_eq!(
        parse(&frame(r#","data":{"k":"\u00e9\n"}"#)),
        client_event(e, c, r#"{"k":"\u00e9\n"}"#)
    );
}

#[test]
fn unknown_events() {
    assert_eq!(
        parse(r#"{"event":"pusher:cache_miss","data":{}}"#),
        Ok(ClientMessage::IgnoredPusherEvent("pusher:cache_miss".to_owned()))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:"}"#),
        Ok(ClientMessage::IgnoredPusherEvent("pusher:".to_owned()))
    );
    for event in [
        "my-event",
        "pusher_internal:subscription_succeeded",
        "pusher",
        "client",
        "",
        "Client-x",
    ] {
        let frame = serde_json::json!({"event": event, "channel": "private-a", "data": {}}).to_string();
        assert_eq!(
            parse(&frame),
            Err(ParseError::UnknownEvent(event.to_owned())),
            "{event}"
        );
    }
}

#[test]
fn extra_members_and_duplicates() {
    assert_eq!(
        parse(
            r#"{"id":1,"event":"pusher:subscribe","x":{"y":[1,2,{"z":null}]},"data":{"extra":[],"channel":"a","more":"b"}}"#
        ),
        subscribe("a", None, None)
    );
    // Like JSON.parse, the last duplicate wins.
    assert_eq!(
        parse(r#"{"event":"client-x","event":"pusher:ping"}"#),
        Ok(ClientMessage::Ping)
    );
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","channel":"b"}}"#),
        subscribe("b", None, None)
    );
    // Escaped member names and values are decoded.
    assert_eq!(parse(r#"{"\u0065vent":"pusher:p\u0069ng"}"#), Ok(ClientMessage::Ping));
    assert_eq!(parse(" \n\t{\"event\":\"pusher:ping\"} \r\n"), Ok(ClientMessage::Ping));
}

#[test]
fn subscribe_data_errors() {
    let e = "pusher:subscribe";
    for data in [
        "",
        r#","data":null"#,
        r#","data":42"#,
        r#","data":[]"#,
        r#","data":true"#,
    ] {
        let frame = format!(r#"{{"event":"pusher:subscribe"{data}}}"#);
        assert_eq!(parse(&frame), invalid_data(e), "{frame}");
    }
    // Strings that do not hold one JSON object.
    for inner in ["", "x", "[]", "42", "\\\"{}\\\"", "{", "{} {}", "{\\\"channel\\\":1,}"] {
        let frame = format!(r#"{{"event":"pusher:subscribe","data":"{inner}"}}"#);
        assert_eq!(parse(&frame), invalid_data(e), "{frame}");
    }
    for (data, field) in [
        (r#"{}"#, "channel"),
        (r#"{"channel":null}"#, "channel"),
        (r#"{"channel":1}"#, "channel"),
        (r#"{"channel":["a"]}"#, "channel"),
        (r#"{"channel":{"name":"a"}}"#, "channel"),
        (r#"{"channel":"a","auth":1}"#, "auth"),
        (r#"{"channel":"a","auth":{}}"#, "auth"),
        (r#"{"channel":"a","auth":false}"#, "auth"),
        (r#"{"channel":"a","channel_data":1}"#, "channel_data"),
        (r#"{"channel":"a","channel_data":[]}"#, "channel_data"),
        (r#"{"channel":"a","channel_data":true}"#, "channel_data"),
    ] {
        let frame = format!(r#"{{"event":"pusher:subscribe","data":{data}}}"#);
        assert_eq!(parse(&frame), missing(e, field), "{frame}");
    }
}

#[test]
fn frame_level_errors() {
    let cases = [
        ("", ParseError::InvalidJson),
        ("   ", ParseError::InvalidJson),
        ("not json", ParseError::InvalidJson),
        ("{", ParseError::InvalidJson),
        ("{\"event\":", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\"", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\"} x", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\"}{}", ParseError::InvalidJson),
        ("{event:\"pusher:ping\"}", ParseError::InvalidJson),
        ("{'event':'pusher:ping'}", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\",}", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\",\"data\":\"\\q\"}", ParseError::InvalidJson),
        ("{\"event\":\"\\x\"}", ParseError::InvalidJson),
        ("{\"event\":\"\\u12\"}", ParseError::InvalidJson),
        ("{\"event\":\"a\u{1}b\"}", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\",\"data\":NaN}", ParseError::InvalidJson),
        ("{\"event\":\"pusher:ping\",\"data\":01}", ParseError::InvalidJson),
        ("[", ParseError::InvalidJson),
        ("[]", ParseError::NotAnObject),
        ("[{\"event\":\"pusher:ping\"}]", ParseError::NotAnObject),
        ("[\"pusher:ping\",null,{}]", ParseError::NotAnObject),
        ("42", ParseError::NotAnObject),
        ("-1.5", ParseError::NotAnObject),
        ("\"{\\\"event\\\":\\\"pusher:ping\\\"}\"", ParseError::NotAnObject),
        ("null", ParseError::NotAnObject),
        ("true", ParseError::NotAnObject),
        ("{}", ParseError::MissingEvent),
        ("{\"data\":{}}", ParseError::MissingEvent),
        ("{\"event\":1}", ParseError::MissingEvent),
        ("{\"event\":null}", ParseError::MissingEvent),
        ("{\"event\":[\"pusher:ping\"]}", ParseError::MissingEvent),
        ("{\"event\":{\"name\":\"pusher:ping\"}}", ParseError::MissingEvent),
        ("{\"event\":\"\\ud800\"}", ParseError::MissingEvent),
        ("{\"Event\":\"pusher:ping\"}", ParseError::MissingEvent),
    ];
    for (text, error) in cases {
        assert_eq!(parse(text), Err(error), "{text:?}");
    }
}

#[test]
fn huge_nesting_is_refused_or_skipped_without_overflow() {
    let open = "[".repeat(10_000);
    let close = "]".repeat(10_000);
    assert_eq!(parse(&open), Err(ParseError::InvalidJson));
    assert_eq!(parse(&format!("{open}{close}")), Err(ParseError::NotAnObject));
    assert_eq!(parse(&"{".repeat(10_000)), Err(ParseError::InvalidJson));
    assert_eq!(parse(&"{\"a\":".repeat(10_000)), Err(ParseError::InvalidJson));
    // Deep but balanced junk in an ignored member is skipped.
    let frame = format!(r#"{{"event":"pusher:ping","junk":{open}{close}}}"#);
    assert_eq!(parse(&frame), Ok(ClientMessage::Ping));
    let frame = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"a","junk":{open}{close}}}}}"#);
    assert_eq!(parse(&frame), subscribe("a", None, None));
    // Deep client-event data is forwarded as compact text.
    let frame = format!(r#"{{"event":"client-x","channel":"private-a","data":{open}{close}}}"#);
    assert_eq!(
        parse(&frame),
        client_event("client-x", "private-a", &format!("{open}{close}"))
    );
    // Deep but unbalanced data is invalid JSON.
    let frame = format!(r#"{{"event":"client-x","channel":"private-a","data":{open}}}"#);
    assert_eq!(parse(&frame), Err(ParseError::InvalidJson));
    // Deep data inside a string is refused as data, not crashed on.
    let frame = serde_json::json!({"event": "pusher:subscribe", "data": open}).to_string();
    assert_eq!(parse(&frame), invalid_data("pusher:subscribe"));
}

#[test]
fn errors_have_readable_messages() {
    assert_eq!(ParseError::InvalidJson.to_string(), "frame is not valid JSON");
    assert_eq!(
        ParseError::MissingField {
            event: "pusher:subscribe".to_owned(),
            field: "channel"
        }
        .to_string(),
        "'pusher:subscribe' needs a string 'channel'"
    );
    assert_eq!(
        ParseError::UnknownEvent("x".to_owned()).to_string(),
        "unknown event 'x': only pusher:* commands and client-* events are accepted"
    );
}
