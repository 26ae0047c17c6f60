//! The test vectors of `shared/pusher-protocol.md` §12 (computed with python and re-checked
//! against the official Node SDK), plus the §9.2 verification rules they exercise.

use ferrocast_protocol::rest::{
    body_md5, parse_query, sign_query, string_to_sign, verify_request, RestAuthError, SignedRequest,
};
use ferrocast_protocol::signature::{channel_string_to_sign, sign, user_string_to_sign, verify_auth, AuthError};

const KEY: &str = "3f6a2c9b81e04d7d5a10";
const SECRET: &str = "9e1d7b4c2a85f03e6b12";
const SOCKET: &str = "98765.4321";
const TIMESTAMP: u64 = 1_700_000_000;

// ---- §12.1–12.4: channel and user auth ----

#[test]
fn private_channel_auth_12_1() {
    let signed = channel_string_to_sign(SOCKET, "private-orders-42", None);
    assert_eq!(signed, "98765.4321:private-orders-42");
    let signature = sign(SECRET, &signed);
    assert_eq!(
        signature,
        "49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e"
    );
    let auth = format!("{KEY}:{signature}");
    assert_eq!(
        format!("{{\"auth\":\"{auth}\"}}"),
        r#"{"auth":"3f6a2c9b81e04d7d5a10:49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e"}"#
    );
    assert_eq!(verify_auth(KEY, SECRET, &signed, Some(&auth)), Ok(()));
}

#[test]
fn presence_channel_auth_12_2() {
    let channel_data = r#"{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#;
    let signed = channel_string_to_sign(SOCKET, "presence-room-7", Some(channel_data));
    assert_eq!(
        signed,
        r#"98765.4321:presence-room-7:{"user_id":"u-17","user_info":{"name":"Ada Lovelace"}}"#
    );
    let signature = sign(SECRET, &signed);
    assert_eq!(
        signature,
        "13d32a55a30d1a19ebe6842ef3df2f35a6210293271e5835da2f22feec2acc44"
    );
    assert_eq!(
        verify_auth(KEY, SECRET, &signed, Some(&format!("{KEY}:{signature}"))),
        Ok(())
    );
    // Re-serialising channel_data (here: one added space) breaks the signature.
    let reserialised = channel_string_to_sign(
        SOCKET,
        "presence-room-7",
        Some(r#"{"user_id":"u-17","user_info":{"name": "Ada Lovelace"}}"#),
    );
    assert_eq!(
        verify_auth(KEY, SECRET, &reserialised, Some(&format!("{KEY}:{signature}"))),
        Err(AuthError::BadSignature {
            signed: reserialised.clone()
        })
    );
}

#[test]
fn user_signin_12_3() {
    let user_data = r#"{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#;
    let signed = user_string_to_sign(SOCKET, user_data);
    assert_eq!(
        signed,
        r#"98765.4321::user::{"id":"u-17","user_info":{"name":"Ada Lovelace"},"watchlist":["u-2","u-3"]}"#
    );
    let signature = sign(SECRET, &signed);
    assert_eq!(
        signature,
        "7c328b6624c9e83ab936ab8703a73045b4e81a08890e2466ad2a9f4e767114bc"
    );
    let auth = "3f6a2c9b81e04d7d5a10:7c328b6624c9e83ab936ab8703a73045b4e81a08890e2466ad2a9f4e767114bc";
    assert_eq!(verify_auth(KEY, SECRET, &signed, Some(auth)), Ok(()));
}

#[test]
fn encrypted_channel_auth_12_4() {
    let signed = channel_string_to_sign(SOCKET, "private-encrypted-vault", None);
    assert_eq!(
        sign(SECRET, &signed),
        "1d757e19290ca09a690cdfca4a7c97a9e69fc2cf5db1d06493c8fa9b71cd6ee2"
    );
}

#[test]
fn verify_auth_failures() {
    let signed = "98765.4321:private-orders-42";
    let good = "49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e";
    let bad_signature = Err(AuthError::BadSignature {
        signed: signed.to_owned(),
    });
    assert_eq!(verify_auth(KEY, SECRET, signed, None), Err(AuthError::Missing));
    assert_eq!(verify_auth(KEY, SECRET, signed, Some("")), Err(AuthError::Missing));
    assert_eq!(verify_auth(KEY, SECRET, signed, Some(good)), Err(AuthError::Malformed));
    assert_eq!(
        verify_auth(KEY, SECRET, signed, Some(&format!("otherkey:{good}"))),
        Err(AuthError::WrongKey)
    );
    assert_eq!(
        verify_auth(KEY, SECRET, signed, Some(&format!(":{good}"))),
        Err(AuthError::WrongKey)
    );
    // The docs' wrong `<key>::user::<sig>` form splits on the first ':' and fails the signature.
    assert_eq!(
        verify_auth(KEY, SECRET, signed, Some(&format!("{KEY}::user::{good}"))),
        bad_signature
    );
    for signature in [
        "",
        "zz",
        "49eb",
        "49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7f",
        "49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e00",
        "g9eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e",
        " 49eb49805d292b7b95f14f5529e4d2cefacfae802c505ef0d400355235accf7e",
    ] {
        assert_eq!(
            verify_auth(KEY, SECRET, signed, Some(&format!("{KEY}:{signature}"))),
            bad_signature,
            "{signature:?}"
        );
    }
    // Hex is compared case-insensitively; the key is not.
    let upper = format!("{KEY}:{}", good.to_uppercase());
    assert_eq!(verify_auth(KEY, SECRET, signed, Some(&upper)), Ok(()));
    assert_eq!(
        verify_auth(KEY, SECRET, signed, Some(&format!("{}:{good}", KEY.to_uppercase()))),
        Err(AuthError::WrongKey)
    );
    // Another socket or channel does not verify.
    assert_eq!(
        verify_auth(
            KEY,
            SECRET,
            "98765.4322:private-orders-42",
            Some(&format!("{KEY}:{good}"))
        ),
        Err(AuthError::BadSignature {
            signed: "98765.4322:private-orders-42".to_owned()
        })
    );
}

// ---- §12.7: published cross-checks ----

#[test]
fn published_vectors_12_7() {
    let secret = "7ad3773142a6692b25b8";
    let cases = [
        (
            "1234.1234:private-foobar",
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
        ),
        (
            r#"1234.1234::user::{"id":"12345"}"#,
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        ),
        (
            "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
        ),
        (
            r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(sign(secret, message), expected, "{message}");
    }
    assert_eq!(
        channel_string_to_sign("1234.1234", "private-foobar", None),
        "1234.1234:private-foobar"
    );
    assert_eq!(
        user_string_to_sign("1234.1234", r#"{"id":"12345"}"#),
        r#"1234.1234::user::{"id":"12345"}"#
    );
    let params = parse_query(
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
    );
    assert_eq!(string_to_sign("POST", "/apps/3/events", &params), cases[2].0);
}

#[test]
fn docs_erratum_12_7() {
    // The docs print `afaed369…304c` for the "Mr. Channels" presence example; that digest is
    // the one of "Mr. Pusher".
    let secret = "7ad3773142a6692b25b8";
    let pusher = sign(
        secret,
        r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#,
    );
    assert!(pusher.starts_with("afaed369") && pusher.ends_with("304c"), "{pusher}");
    let channels = sign(
        secret,
        r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
    );
    assert!(!channels.starts_with("afaed369"), "{channels}");
}

#[test]
fn node_sdk_vectors_12_7() {
    let private = sign("tofu", "123.456:test");
    assert!(
        private.starts_with("efa6cf76") && private.ends_with("bd7c"),
        "{private}"
    );
    let user = sign("tofu", r#"123.456::user::{"id":"45678"}"#);
    assert!(user.starts_with("f4b1fdee") && user.ends_with("babd"), "{user}");
}

// ---- §12.5: HTTP API signatures ----

const TRIGGER_BODY: &str = r#"{"name":"order-shipped","channels":["private-orders-42","orders"],"data":"{\"id\":42}","socket_id":"98765.4321"}"#;

struct HttpVector {
    method: &'static str,
    path: &'static str,
    params: &'static [(&'static str, &'static str)],
    body: &'static str,
    string_to_sign: &'static str,
    signature: &'static str,
}

const HTTP_VECTORS: [HttpVector; 4] = [
    HttpVector {
        method: "POST",
        path: "/apps/451/events",
        params: &[],
        body: TRIGGER_BODY,
        string_to_sign: "POST\n/apps/451/events\nauth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&body_md5=a964fe9d991556d4478d3941d1bc811f",
        signature: "0eac098bdfea34f8c328dac5ded85f32c06aa3319d873b6c081a0a66e773fcb4",
    },
    HttpVector {
        method: "GET",
        path: "/apps/451/channels",
        params: &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        body: "",
        string_to_sign: "GET\n/apps/451/channels\nauth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&filter_by_prefix=presence-&info=user_count",
        signature: "ba9e9826f04e2a8384d5597efa132f756bd1b3b9fd912ce3c44c0f72befb29a1",
    },
    HttpVector {
        method: "GET",
        path: "/apps/451/channels/cache-scores",
        params: &[("info", "subscription_count,cache")],
        body: "",
        string_to_sign: "GET\n/apps/451/channels/cache-scores\nauth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&info=subscription_count,cache",
        signature: "2a21f0b8d0d7e8d0910f5817e17a1dbf21f58bbd6df100ccc6221dff72729c4b",
    },
    HttpVector {
        method: "POST",
        path: "/apps/451/users/u-17/terminate_connections",
        params: &[],
        body: "{}",
        string_to_sign: "POST\n/apps/451/users/u-17/terminate_connections\nauth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&body_md5=99914b932bd37a50b983c5e7c90ae93b",
        signature: "8c5d83102d10edf5c5b9cb70275947a2982097f8ddee127fb7483753271681e3",
    },
];

fn signed_query(v: &HttpVector) -> String {
    sign_query(v.method, v.path, v.params, v.body.as_bytes(), KEY, SECRET, TIMESTAMP)
}

fn verify(method: &str, path: &str, query: &str, body: &str, now: u64) -> Result<(), RestAuthError> {
    let params = parse_query(query);
    let request = SignedRequest {
        method,
        path,
        params: &params,
        body: body.as_bytes(),
    };
    verify_request(&request, KEY, SECRET, now)
}

#[test]
fn body_md5_12_5() {
    assert_eq!(TRIGGER_BODY.len(), 112);
    assert_eq!(body_md5(TRIGGER_BODY.as_bytes()), "a964fe9d991556d4478d3941d1bc811f");
    assert_eq!(body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
    assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
}

#[test]
fn http_strings_to_sign_and_signatures_12_5() {
    for v in &HTTP_VECTORS {
        let query = signed_query(v);
        let (unsigned, signature) = query.split_once("&auth_signature=").unwrap_or_default();
        assert_eq!(signature, v.signature, "{}", v.path);
        // The query is the last line of the string to sign, and parses back to it.
        assert_eq!(
            format!("{}\n{}\n{unsigned}", v.method, v.path),
            v.string_to_sign,
            "{}",
            v.path
        );
        assert_eq!(string_to_sign(v.method, v.path, &parse_query(&query)), v.string_to_sign);
        assert_eq!(sign(SECRET, v.string_to_sign), v.signature);
    }
}

#[test]
fn trigger_url_12_5_a() {
    assert_eq!(
        signed_query(&HTTP_VECTORS[0]),
        "auth_key=3f6a2c9b81e04d7d5a10&auth_timestamp=1700000000&auth_version=1.0&body_md5=a964fe9d991556d4478d3941d1bc811f&auth_signature=0eac098bdfea34f8c328dac5ded85f32c06aa3319d873b6c081a0a66e773fcb4"
    );
}

#[test]
fn signed_requests_verify_12_5() {
    for v in &HTTP_VECTORS {
        let query = signed_query(v);
        for now in [TIMESTAMP, TIMESTAMP - 600, TIMESTAMP + 600] {
            assert_eq!(
                verify(v.method, v.path, &query, v.body, now),
                Ok(()),
                "{} at {now}",
                v.path
            );
        }
    }
}

#[test]
fn escaped_comma_verifies_12_5_c() {
    let v = &HTTP_VECTORS[2];
    let query = signed_query(v).replace(',', "%2C");
    assert!(query.contains("subscription_count%2Ccache"));
    assert_eq!(verify(v.method, v.path, &query, "", TIMESTAMP), Ok(()));
    // Parameter order in the URL does not matter; the keys are sorted before signing.
    let reordered = format!(
        "info=subscription_count%2Ccache&auth_signature={}&auth_version=1.0&auth_timestamp=1700000000&auth_key={KEY}",
        v.signature
    );
    assert_eq!(verify(v.method, v.path, &reordered, "", TIMESTAMP), Ok(()));
    // Uppercase keys are lowercased as the SDK would have signed them.
    let upper_keys = signed_query(v).replace("info=", "INFO=");
    assert_eq!(verify(v.method, v.path, &upper_keys, "", TIMESTAMP), Ok(()));
}

#[test]
fn tampered_requests_are_refused_12_5() {
    let trigger = &HTTP_VECTORS[0];
    let query = signed_query(trigger);
    let (method, path) = (trigger.method, trigger.path);

    // Body changed after signing.
    let tampered_body = TRIGGER_BODY.replace("42", "43");
    assert_eq!(
        verify(method, path, &query, &tampered_body, TIMESTAMP),
        Err(RestAuthError::BodyMd5Mismatch)
    );
    // Body stripped: the signed body_md5 no longer matches.
    assert_eq!(
        verify(method, path, &query, "", TIMESTAMP),
        Err(RestAuthError::BodyMd5Mismatch)
    );
    // body_md5 replaced to match the new body: the signature catches it.
    let new_md5 = body_md5(tampered_body.as_bytes());
    let requery = query.replace("a964fe9d991556d4478d3941d1bc811f", &new_md5);
    let expected_signed = trigger
        .string_to_sign
        .replace("a964fe9d991556d4478d3941d1bc811f", &new_md5);
    assert_eq!(
        verify(method, path, &requery, &tampered_body, TIMESTAMP),
        Err(RestAuthError::BadSignature {
            string_to_sign: expected_signed
        })
    );
    // Body without body_md5.
    let no_md5 = query.replace("&body_md5=a964fe9d991556d4478d3941d1bc811f", "");
    assert_eq!(
        verify(method, path, &no_md5, TRIGGER_BODY, TIMESTAMP),
        Err(RestAuthError::MissingParam("body_md5"))
    );
    // Path or method changed.
    assert!(matches!(
        verify(method, "/apps/452/events", &query, TRIGGER_BODY, TIMESTAMP),
        Err(RestAuthError::BadSignature { .. })
    ));
    assert!(matches!(
        verify("PUT", path, &query, TRIGGER_BODY, TIMESTAMP),
        Err(RestAuthError::BadSignature { .. })
    ));

    let channels = &HTTP_VECTORS[1];
    let query = signed_query(channels);
    let check = |q: &str, now: u64| verify(channels.method, channels.path, q, "", now);
    // A parameter changed, added or removed.
    for tampered in [
        query.replace("user_count", "subscription_count"),
        query.replace("filter_by_prefix=presence-", "filter_by_prefix=private-"),
        format!("{query}&extra=1"),
        query.replace("filter_by_prefix=presence-&", ""),
    ] {
        assert!(
            matches!(check(&tampered, TIMESTAMP), Err(RestAuthError::BadSignature { .. })),
            "{tampered}"
        );
    }
    // A timestamp changed within the window still fails the signature...
    let retimed = query.replace("1700000000", "1700000001");
    assert!(matches!(
        check(&retimed, TIMESTAMP),
        Err(RestAuthError::BadSignature { .. })
    ));
    // ...and one outside the window fails before it.
    assert_eq!(check(&query, TIMESTAMP + 601), Err(RestAuthError::BadTimestamp));
    assert_eq!(check(&query, TIMESTAMP - 601), Err(RestAuthError::BadTimestamp));
    for bad_time in ["", "abc", "-1700000000", "1700000000.0", "99999999999999999999999"] {
        let q = query.replace("1700000000", bad_time);
        assert_eq!(check(&q, TIMESTAMP), Err(RestAuthError::BadTimestamp), "{bad_time:?}");
    }
    // Key and version.
    let other_key = query.replace(KEY, "ffffffffffffffffffff");
    assert_eq!(check(&other_key, TIMESTAMP), Err(RestAuthError::WrongKey));
    for version in ["2.0", "1", "1.0 ", ""] {
        let q = query.replace("auth_version=1.0", &format!("auth_version={version}"));
        assert_eq!(check(&q, TIMESTAMP), Err(RestAuthError::BadVersion), "{version:?}");
    }
    // Signature altered, truncated or not hex; uppercase hex is fine.
    let good = channels.signature;
    for signature in [&good[..63], "0", "", "xyz", good.replace('a', "b").as_str()] {
        let q = query.replace(good, signature);
        assert!(
            matches!(check(&q, TIMESTAMP), Err(RestAuthError::BadSignature { .. })),
            "{signature:?}"
        );
    }
    assert_eq!(check(&query.replace(good, &good.to_uppercase()), TIMESTAMP), Ok(()));
}

#[test]
fn missing_parameters_are_reported_in_order() {
    let v = &HTTP_VECTORS[1];
    let all = parse_query(&signed_query(v));
    let without = |names: &[&str]| -> Vec<(String, String)> {
        all.iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let run = |params: &[(String, String)]| {
        let request = SignedRequest {
            method: v.method,
            path: v.path,
            params,
            body: b"",
        };
        verify_request(&request, KEY, SECRET, TIMESTAMP)
    };
    let order = ["auth_key", "auth_timestamp", "auth_version", "auth_signature"];
    for (index, name) in order.iter().enumerate() {
        // Everything from this parameter on is missing: the first missing one is reported.
        let params = without(&order[index..]);
        assert_eq!(run(&params), Err(RestAuthError::MissingParam(name)), "{name}");
        assert_eq!(run(&without(&[name])), Err(RestAuthError::MissingParam(name)), "{name}");
    }
    assert_eq!(run(&all), Ok(()));
}

#[test]
fn checks_run_in_the_documented_order() {
    // Wrong key, version and timestamp together: the key is reported first, then the version,
    // then the timestamp; a body problem only once those pass; the signature last.
    let query = "auth_key=nope&auth_timestamp=1&auth_version=2.0&auth_signature=00";
    assert_eq!(
        verify("POST", "/p", query, "x", TIMESTAMP),
        Err(RestAuthError::WrongKey)
    );
    let query = format!("auth_key={KEY}&auth_timestamp=1&auth_version=2.0&auth_signature=00");
    assert_eq!(
        verify("POST", "/p", &query, "x", TIMESTAMP),
        Err(RestAuthError::BadVersion)
    );
    let query = format!("auth_key={KEY}&auth_timestamp=1&auth_version=1.0&auth_signature=00");
    assert_eq!(
        verify("POST", "/p", &query, "x", TIMESTAMP),
        Err(RestAuthError::BadTimestamp)
    );
    let query = format!("auth_key={KEY}&auth_timestamp={TIMESTAMP}&auth_version=1.0&auth_signature=00");
    assert_eq!(
        verify("POST", "/p", &query, "x", TIMESTAMP),
        Err(RestAuthError::MissingParam("body_md5"))
    );
    let query = format!("{query}&body_md5=00");
    assert_eq!(
        verify("POST", "/p", &query, "x", TIMESTAMP),
        Err(RestAuthError::BodyMd5Mismatch)
    );
    let query = query.replace("body_md5=00", &format!("body_md5={}", body_md5(b"x")));
    let expected = format!(
        "POST\n/p\nauth_key={KEY}&auth_timestamp={TIMESTAMP}&auth_version=1.0&body_md5={}",
        body_md5(b"x")
    );
    assert_eq!(
        verify("POST", "/p", &query, "x", TIMESTAMP),
        Err(RestAuthError::BadSignature {
            string_to_sign: expected
        })
    );
}

#[test]
fn round_trips_sign_parse_verify() {
    type Params = &'static [(&'static str, &'static str)];
    let cases: [(&str, &str, Params, &str); 6] = [
        ("GET", "/apps/1/channels", &[], ""),
        (
            "get",
            "/apps/1/channels",
            &[("info", "user_count,subscription_count")],
            "",
        ),
        (
            "GET",
            "/apps/1/channels/presence-x/users",
            &[("b", "2"), ("a", "1"), ("A_B", "x+y")],
            "",
        ),
        (
            "POST",
            "/apps/1/events",
            &[],
            r#"{"name":"e","channel":"c","data":"d"}"#,
        ),
        ("POST", "/apps/1/batch_events", &[("z", "é")], r#"{"batch":[]}"#),
        ("POST", "/apps/1/users/u%20x/terminate_connections", &[], "{}"),
    ];
    for (method, path, params, body) in cases {
        for timestamp in [0, 1, TIMESTAMP, u64::MAX / 2] {
            let query = sign_query(method, path, params, body.as_bytes(), KEY, SECRET, timestamp);
            let parsed = parse_query(&query);
            let request = SignedRequest {
                method,
                path,
                params: &parsed,
                body: body.as_bytes(),
            };
            assert_eq!(verify_request(&request, KEY, SECRET, timestamp), Ok(()), "{query}");
            assert_eq!(
                verify_request(&request, "other", SECRET, timestamp),
                Err(RestAuthError::WrongKey)
            );
            assert!(matches!(
                verify_request(&request, KEY, "other-secret", timestamp),
                Err(RestAuthError::BadSignature { .. })
            ));
        }
    }
}

#[test]
fn percent_decoded_path_is_also_accepted() {
    // Signed over the decoded path, received with the path still escaped.
    let query = sign_query(
        "POST",
        "/apps/1/users/u x/terminate_connections",
        &[],
        b"{}",
        KEY,
        SECRET,
        TIMESTAMP,
    );
    assert_eq!(
        verify(
            "POST",
            "/apps/1/users/u%20x/terminate_connections",
            &query,
            "{}",
            TIMESTAMP
        ),
        Ok(())
    );
    // Signed over the escaped path, received escaped.
    let query = sign_query(
        "POST",
        "/apps/1/users/u%20x/terminate_connections",
        &[],
        b"{}",
        KEY,
        SECRET,
        TIMESTAMP,
    );
    assert_eq!(
        verify(
            "POST",
            "/apps/1/users/u%20x/terminate_connections",
            &query,
            "{}",
            TIMESTAMP
        ),
        Ok(())
    );
}

// ---- §12.6: webhook body and signature ----

#[test]
fn webhook_body_and_signature_12_6() {
    use ferrocast_protocol::webhook::{self, WebhookEvent};
    let events = [WebhookEvent::ChannelOccupied {
        channel: "presence-room-7".into(),
    }];
    let body = webhook::body(1_700_000_000_123, &events);
    assert_eq!(
        body,
        r#"{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"presence-room-7"}]}"#
    );
    assert_eq!(
        webhook::sign(SECRET, &body),
        "e52af5451a3066b4bd4a0c3a0107418b9ce970c5ac7c01385f529b1f1e3df1c8"
    );
}
