//! The Rust SDK against the pinned official Node SDK (`pusher` 5.3.4) and tweetnacl (what pusher-js
//! decrypts with): the same inputs must give byte-identical channel and presence auth, user auth,
//! shared secrets, signed REST query strings and request bodies; the Node side must open what the
//! Rust side seals and the other way round. The requests checked are the ones the Rust client
//! really sent (to a capturing HTTP server in this test).
//!
//! Needs `node` and tests/conformance/node_modules (`make npm-deps`); fails, never skips, without.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrocast_sdk::signing::hmac_sha256_hex;
use ferrocast_sdk::{BatchEvent, ChannelsQuery, Client, Config, Error, PresenceMember, TriggerParams, UserData};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

const APP_ID: &str = "451";
const KEY: &str = "3f6a2c9b81e04d7d5a10";
const SECRET: &str = "9e1d7b4c2a85f03e6b12";
const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path: String,
    /// Query as sent (percent-decoded), in wire order.
    query: Vec<(String, String)>,
    body: String,
}

/// A local HTTP server that records every request and answers `answer` (keep-alive, like the
/// broker).
async fn capture_server(answer: &'static str) -> (String, Arc<Mutex<Vec<Captured>>>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let connections2 = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections2.fetch_add(1, Ordering::SeqCst);
            let log = log2.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let query = req
                            .uri()
                            .query()
                            .unwrap_or("")
                            .split('&')
                            .filter_map(|p| p.split_once('='))
                            .map(|(k, v)| {
                                (
                                    percent_decode_str(k).decode_utf8_lossy().into_owned(),
                                    percent_decode_str(v).decode_utf8_lossy().into_owned(),
                                )
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        log.lock().unwrap().push(Captured {
                            method,
                            path,
                            query,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(answer.as_bytes()))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), log, connections)
}

fn client(base_url: &str) -> Client {
    Client::new(
        Config::new(APP_ID, KEY, SECRET)
            .base_url(base_url)
            .master_key_base64(MASTER)
            .expect("master key"),
    )
    .expect("client")
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_is_byte_identical_to_the_official_node_sdk() {
    let (base, log, connections) = capture_server("{}").await;
    let client = client(&base);

    // ---- Channel authorization --------------------------------------------------------------
    let member_full = PresenceMember::new("u-17")
        .with_info(json!({"name": "Ada Lövelace ✓", "tags": ["a\"b", "tab\there", "\u{7}"], "n": 12}));
    let member_bare = PresenceMember::new("u 2/ü");
    let mut auth_cases = Vec::new();
    let mut rust_auth = Vec::new();
    for (socket, channel) in [
        ("98765.4321", "private-orders-42"),
        ("1.2", "private-a_b=c@d,e.f;g"),
        ("98765.4321", "private-encrypted-vault"),
        ("123.456", "private-encrypted-cache-x"),
    ] {
        rust_auth.push(client.authorize_channel(socket, channel).expect("auth").to_json());
        auth_cases.push(json!({"socket_id": socket, "channel": channel}));
    }
    for member in [&member_full, &member_bare] {
        let data = serde_json::to_string(member).unwrap();
        rust_auth.push(
            client
                .authorize_presence_channel("98765.4321", "presence-room-7", member)
                .expect("presence")
                .to_json(),
        );
        auth_cases.push(json!({"socket_id": "98765.4321", "channel": "presence-room-7", "channel_data_json": data}));
    }
    let numeric = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    rust_auth.push(
        client
            .authorize_channel_with_data("1234.1234", "presence-foobar", numeric)
            .expect("raw presence")
            .to_json(),
    );
    auth_cases.push(json!({"socket_id": "1234.1234", "channel": "presence-foobar", "channel_data_json": numeric}));

    // ---- User authentication ----------------------------------------------------------------
    let users = [
        UserData::new("u-17")
            .with_info(json!({"name": "Ada Lovelace"}))
            .with_watchlist(["u-2", "u-3"]),
        UserData::new("12345"),
        UserData::new("ü-ser").with_info(json!({"emoji": "🦀", "nested": {"deep": [1, 2, {"x": null}]}})),
        UserData::new("w").with_watchlist(Vec::<String>::new()),
    ];
    let mut user_cases = Vec::new();
    let mut rust_users = Vec::new();
    for user in &users {
        rust_users.push(client.authenticate_user("98765.4321", user).expect("user").to_json());
        user_cases.push(json!({"socket_id": "98765.4321", "user_data_json": serde_json::to_string(user).unwrap()}));
    }

    // ---- Shared secrets (fixed and random master keys) --------------------------------------
    use base64::Engine as _;
    let mut secret_cases = Vec::new();
    let mut rust_secrets = Vec::new();
    for i in 0..6u8 {
        let raw: Vec<u8> = (0..32)
            .map(|j: u8| j.wrapping_mul(31).wrapping_add(i.wrapping_mul(97)))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let key = ferrocast_sdk::MasterKey::from_bytes(&raw).unwrap();
        let channel = format!("private-encrypted-{i}-ü");
        rust_secrets.push(key.shared_secret_base64(&channel));
        secret_cases.push(json!({"master_key_base64": b64, "channel": channel}));
    }

    // ---- REST: what the Rust client really sends ---------------------------------------------
    let plain = TriggerParams::default();
    let with_params = TriggerParams {
        socket_id: Some("98765.4321".into()),
        info: Some("user_count,subscription_count".into()),
    };
    let triggers: Vec<(Vec<&str>, &str, Value, &TriggerParams)> = vec![
        (
            vec!["private-orders-42", "orders"],
            "order-shipped",
            json!({"id": 42}),
            &with_params,
        ),
        (vec!["orders"], "text", json!("already a string {\"x\":1}"), &plain),
        (
            vec!["presence-room-7"],
            "unicode",
            json!({"msg": "héllo ✓ \u{2028} </script>", "list": [1, true, null]}),
            &plain,
        ),
        (
            vec!["private-encrypted-vault"],
            "secret",
            json!({"amount": 100}),
            &plain,
        ),
    ];
    for (channels, event, data, params) in &triggers {
        client.trigger(channels, event, data, params).await.expect("trigger");
    }
    client
        .trigger_batch(&[
            BatchEvent::new("orders", "a", json!({"k": 1})),
            BatchEvent::new("private-encrypted-vault", "b", json!("s")),
        ])
        .await
        .expect("batch");
    client
        .channels(&ChannelsQuery {
            filter_by_prefix: Some("presence-".into()),
            info: Some("user_count".into()),
        })
        .await
        .expect("channels");
    client
        .channel_info("cache-scores", &["subscription_count", "cache"])
        .await
        .expect("channel info");
    // The capture server answers {} to everything: users() then fails to parse, which is fine here.
    let _ = client.users("presence-room-7").await;
    client.terminate_user_connections("u-17").await.expect("terminate");
    client
        .send_to_user("u-17", "hello", &json!({"x": 1}))
        .await
        .expect("send_to_user");

    // Refusals that mirror the Node SDK.
    assert!(matches!(
        client
            .trigger(&["private-encrypted-a", "b"], "e", &json!({}), &plain)
            .await,
        Err(Error::EncryptedMultiChannel(_))
    ));
    let no_key = Client::new(Config::new(APP_ID, KEY, SECRET).base_url(&base)).unwrap();
    assert!(matches!(
        no_key.trigger(&["private-encrypted-a"], "e", &json!({}), &plain).await,
        Err(Error::EncryptionKeyMissing(_))
    ));

    let captured = log.lock().unwrap().clone();
    assert_eq!(captured.len(), 10, "requests captured: {captured:#?}");
    // Kept-alive connections served them (the no-key client's refusal sent nothing). Not
    // always one: hyper-util's pool takes a connection back on its own task after the response
    // ends, so a request sent at once may find none idle yet and open a second one (seen in
    // about a third of the runs on a loaded machine). Ten requests on at most three connections
    // still fails a client that does not keep connections alive.
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&opened),
        "connections were not reused: {opened} for {} requests",
        captured.len()
    );

    let mut query_cases = Vec::new();
    let mut rust_queries = Vec::new();
    for c in &captured {
        let timestamp: u64 = c
            .query
            .iter()
            .find(|(k, _)| k == "auth_timestamp")
            .and_then(|(_, v)| v.parse().ok())
            .expect("auth_timestamp");
        let params: serde_json::Map<String, Value> = c
            .query
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "auth_key" | "auth_timestamp" | "auth_version" | "body_md5" | "auth_signature"
                )
            })
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        query_cases.push(json!({
            "method": c.method, "path": c.path, "params": params, "body": c.body, "timestamp": timestamp,
        }));
        rust_queries.push(
            c.query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
        if !c.body.is_empty() {
            assert!(c.query.iter().any(|(k, _)| k == "body_md5"), "{c:?}");
        }
    }
    // The reference's worked examples (§12.5) too.
    for (method, path, params, body) in [
        (
            "POST",
            "/apps/451/events",
            json!({}),
            r#"{"name":"order-shipped","channels":["private-orders-42","orders"],"data":"{\"id\":42}","socket_id":"98765.4321"}"#,
        ),
        (
            "GET",
            "/apps/451/channels",
            json!({"filter_by_prefix": "presence-", "info": "user_count"}),
            "",
        ),
        (
            "GET",
            "/apps/451/channels/cache-scores",
            json!({"info": "subscription_count,cache"}),
            "",
        ),
        ("POST", "/apps/451/users/u-17/terminate_connections", json!({}), "{}"),
    ] {
        let pairs: Vec<(String, String)> = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), str_of(v).to_owned()))
            .collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        rust_queries.push(ferrocast_sdk::signing::signed_query_string(
            method,
            path,
            &refs,
            body.as_bytes(),
            KEY,
            SECRET,
            1_700_000_000,
        ));
        query_cases.push(
            json!({"method": method, "path": path, "params": params, "body": body, "timestamp": 1_700_000_000u64}),
        );
    }

    // Non-encrypted trigger bodies as sent, for the Node SDK to rebuild from the same inputs.
    let mut body_cases = Vec::new();
    let mut rust_bodies = Vec::new();
    for (i, (channels, event, data, params)) in triggers.iter().enumerate() {
        if channels.iter().any(|c| c.starts_with("private-encrypted-")) {
            continue;
        }
        let mut params_json = String::from("{");
        if let Some(s) = &params.socket_id {
            params_json.push_str(&format!("\"socket_id\":{}", json!(s)));
        }
        if let Some(info) = &params.info {
            if params_json.len() > 1 {
                params_json.push(',');
            }
            params_json.push_str(&format!("\"info\":{}", json!(info)));
        }
        params_json.push('}');
        body_cases.push(json!({
            "channels": channels, "event": event, "data_json": data.to_string(), "params_json": params_json,
        }));
        rust_bodies.push(captured[i].body.clone());
    }

    // ---- Encryption both ways ---------------------------------------------------------------
    let payloads = [
        json!({"amount": 100}),
        json!("a plain string"),
        json!(42),
        json!({"text": "ünïcödé ✓ 🦀", "big": "x".repeat(5000)}),
        json!([1, {"a": null}, "z"]),
    ];
    let mut decrypt_cases = Vec::new();
    for p in &payloads {
        decrypt_cases.push(json!({"channel": "private-encrypted-vault", "data": client.event_data("private-encrypted-vault", p).unwrap()}));
    }
    // The sealed trigger and batch item the Rust client sent.
    let sealed_trigger: Value = serde_json::from_str(&captured[3].body).unwrap();
    assert_eq!(sealed_trigger["channels"], json!(["private-encrypted-vault"]));
    assert_eq!(sealed_trigger["name"], "secret");
    decrypt_cases.push(json!({"channel": "private-encrypted-vault", "data": str_of(&sealed_trigger["data"])}));
    let batch: Value = serde_json::from_str(&captured[4].body).unwrap();
    decrypt_cases.push(json!({"channel": "private-encrypted-vault", "data": str_of(&batch["batch"][1]["data"])}));
    let node_encrypt: Vec<Value> = payloads
        .iter()
        .map(|p| json!({"channel": "private-encrypted-vault", "payload_json": p.to_string()}))
        .collect();

    // ---- Webhooks ---------------------------------------------------------------------------
    let webhook_bodies = [
        r#"{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"presence-room-7"}]}"#.to_owned(),
        json!({"time_ms": 1, "events": [{"name": "client_event", "channel": "private-x", "event": "client-ü", "data": "{\"a\":1}", "socket_id": "1.2"}]}).to_string(),
    ];

    let input = json!({
        "app": {"app_id": APP_ID, "key": KEY, "secret": SECRET, "master_key_base64": MASTER},
        "channel_auth": auth_cases,
        "user_auth": user_cases,
        "shared_secrets": secret_cases,
        "queries": query_cases,
        "trigger_bodies": body_cases,
        "pusher_js_decrypt": decrypt_cases,
        "node_encrypt": node_encrypt,
        "webhook_bodies": webhook_bodies,
    });
    let out = common::run_node_json("sdk/crosscheck.mjs", &input);

    let strings = |name: &str| -> Vec<String> {
        out[name]
            .as_array()
            .unwrap_or_else(|| panic!("node output lacks {name}: {out}"))
            .iter()
            .map(|v| str_of(v).to_owned())
            .collect()
    };
    assert_eq!(
        rust_auth,
        strings("channel_auth"),
        "channel auth differs from the Node SDK"
    );
    assert_eq!(rust_users, strings("user_auth"), "user auth differs from the Node SDK");
    assert_eq!(
        rust_secrets,
        strings("shared_secrets"),
        "shared secrets differ from the Node SDK"
    );
    assert_eq!(
        rust_queries,
        strings("queries"),
        "signed query strings differ from the Node SDK"
    );
    assert_eq!(
        rust_bodies,
        strings("trigger_bodies"),
        "trigger bodies differ from the Node SDK"
    );
    assert_eq!(out["multi_encrypted_refused"], json!(true));

    // pusher-js's decryption (tweetnacl) opens what Rust sealed, to the same JSON text.
    let opened = out["pusher_js_decrypt"].as_array().expect("pusher_js_decrypt");
    assert_eq!(opened.len(), payloads.len() + 2);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(opened[i]["plaintext"], json!(p.to_string()), "case {i}: {}", opened[i]);
        assert_eq!(opened[i]["parsed"], *p);
    }
    assert_eq!(opened[payloads.len()]["parsed"], json!({"amount": 100}));
    assert_eq!(opened[payloads.len() + 1]["parsed"], json!("s"));

    // Rust opens what the Node SDK sealed.
    for (i, data) in strings("node_encrypt").iter().enumerate() {
        assert_eq!(
            client.decrypt("private-encrypted-vault", data).expect("decrypt node"),
            payloads[i]
        );
    }

    // Webhooks signed by the Node SDK verify here, and the signatures agree.
    for (i, sig) in strings("webhook_signatures").iter().enumerate() {
        assert_eq!(*sig, hmac_sha256_hex(SECRET, webhook_bodies[i].as_bytes()));
        client
            .verify_webhook(Some(KEY), Some(sig), webhook_bodies[i].as_bytes())
            .expect("webhook signed by Node verifies");
    }
    assert_eq!(out["webhook_valid"], json!([true, true]));
}
