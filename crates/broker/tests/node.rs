//! The node core driven through its public interface on the in-process backplane: what each
//! socket receives for subscribes, presence, client events and publishes.

use std::sync::Arc;

use ferrocast_broker::ConnectionOutbox;
use ferrocast_broker::NoObserver;
use ferrocast_broker::{AppConfig, AppRegistry, Node, NodeOptions, PublishRequest, Session};
use ferrocast_broker::{MemoryBackplane, MemoryClusterState};
use ferrocast_protocol::inbound::{ClientEvent, ClientMessage, Subscribe};
use ferrocast_protocol::signature;
use serde_json::Value;

fn node() -> Arc<Node> {
    let app = AppConfig {
        id: "app".into(),
        key: "key".into(),
        secret: "secret".into(),
        enable_client_messages: true,
        max_presence_members_per_channel: 2,
        ..AppConfig::default()
    };
    let options = NodeOptions {
        observer: Arc::new(NoObserver),
        ..NodeOptions::new(64, 7)
    };
    Node::new(
        AppRegistry::new([app]),
        Arc::new(MemoryBackplane::new()),
        Arc::new(MemoryClusterState::new()),
        options,
    )
}

/// Join the node to its (in-process) cluster, as the server does at start: publishes are
/// refused until then.
async fn joined(node: &Arc<Node>) {
    tokio::spawn(node.clone().maintain_cluster_link());
    for _ in 0..500 {
        if node.is_ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("the node did not join its in-process cluster");
}

async fn connect(node: &Node) -> (Session, ConnectionOutbox) {
    let app = node.apps().by_id("app").unwrap();
    node.connect(app).await.unwrap()
}

/// Every frame queued so far, as JSON with `data` decoded when it holds JSON.
fn frames(outbox: &mut ConnectionOutbox) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(bytes) = outbox.frames.try_recv() {
        let (len, head) = match bytes[1] {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            n => (n as usize, 2),
        };
        let mut v: Value = serde_json::from_slice(&bytes[head..head + len]).unwrap();
        if let Some(Value::String(data)) = v.get("data").cloned() {
            if let Ok(parsed) = serde_json::from_str::<Value>(&data) {
                v["data"] = parsed;
            }
        }
        out.push(v);
    }
    out
}

fn events(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn presence_subscribe(session: &Session, channel: &str, user: &str) -> ClientMessage {
    let channel_data = format!(r#"{{"user_id":"{user}","user_info":{{"n":"{user}"}}}}"#);
    let signed = signature::channel_string_to_sign(session.socket_id(), channel, Some(&channel_data));
    ClientMessage::Subscribe(Subscribe {
        channel: channel.into(),
        auth: Some(format!("key:{}", signature::sign("secret", &signed))),
        channel_data: Some(channel_data),
    })
}

async fn join(node: &Node, session: &mut Session, channel: &str, user: &str) {
    let message = presence_subscribe(session, channel, user);
    node.handle(session, message).await;
}

fn public_subscribe(channel: &str) -> ClientMessage {
    ClientMessage::Subscribe(Subscribe {
        channel: channel.into(),
        auth: None,
        channel_data: None,
    })
}

#[tokio::test]
async fn a_publish_reaches_subscribers_but_not_the_excluded_socket() {
    let node = node();
    let (mut a, mut out_a) = connect(&node).await;
    let (mut b, mut out_b) = connect(&node).await;
    node.handle(&mut a, public_subscribe("news")).await;
    node.handle(&mut b, public_subscribe("news")).await;
    assert_eq!(events(&frames(&mut out_a)), ["pusher_internal:subscription_succeeded"]);
    frames(&mut out_b);
    let app = node.apps().by_id("app").unwrap();
    let publish = PublishRequest {
        channels: vec!["news".into()],
        event: "story".into(),
        data: r#"{"id":1}"#.into(),
        exclude_socket: Some(b.socket_id().to_owned()),
    };
    let refused = node.publish(&app, vec![publish.clone()]).await;
    assert!(
        matches!(refused, Err(ferrocast_broker::PublishError::NotJoined)),
        "refused before the node joined"
    );
    joined(&node).await;
    node.publish(&app, vec![publish]).await.unwrap();
    let got = frames(&mut out_a);
    assert_eq!(got[0]["event"], "story");
    assert_eq!(got[0]["data"]["id"], 1);
    assert!(frames(&mut out_b).is_empty(), "excluded socket");
}

#[tokio::test]
async fn presence_members_are_announced_once_per_user_and_never_to_the_actor() {
    let node = node();
    let (mut observer, mut out_o) = connect(&node).await;
    join(&node, &mut observer, "presence-room", "obs").await;
    let joined = frames(&mut out_o);
    assert_eq!(joined[0]["data"]["presence"]["count"], 1);

    let (mut u1, mut out_1) = connect(&node).await;
    join(&node, &mut u1, "presence-room", "u").await;
    let (mut u2, mut out_2) = connect(&node).await;
    join(&node, &mut u2, "presence-room", "u").await;
    assert_eq!(
        events(&frames(&mut out_o)),
        ["pusher_internal:member_added"],
        "second socket of u adds nobody"
    );
    let own = frames(&mut out_1);
    assert_eq!(
        events(&own),
        ["pusher_internal:subscription_succeeded"],
        "no member_added to the joiner"
    );
    assert_eq!(own[0]["data"]["presence"]["count"], 2);
    frames(&mut out_2);

    node.handle(
        &mut u1,
        ClientMessage::Unsubscribe {
            channel: "presence-room".into(),
        },
    )
    .await;
    assert!(frames(&mut out_o).is_empty(), "u still has a socket");
    node.disconnect(u2).await;
    let removed = frames(&mut out_o);
    assert_eq!(events(&removed), ["pusher_internal:member_removed"]);
    assert_eq!(removed[0]["data"]["user_id"], "u");
    let users = node
        .users(&node.apps().by_id("app").unwrap(), "presence-room")
        .await
        .unwrap();
    assert_eq!(users, ["obs"]);
}

#[tokio::test]
async fn a_full_presence_channel_refuses_a_new_user_but_not_an_existing_one() {
    let node = node();
    let mut outs = Vec::new();
    for user in ["a", "b"] {
        let (mut s, out) = connect(&node).await;
        join(&node, &mut s, "presence-full", user).await;
        outs.push((s, out));
    }
    let (mut c, mut out_c) = connect(&node).await;
    join(&node, &mut c, "presence-full", "c").await;
    let refused = frames(&mut out_c);
    assert_eq!(refused[0]["event"], "pusher:subscription_error");
    assert_eq!(refused[0]["data"]["type"], "LimitReached");
    let (mut a2, mut out_a2) = connect(&node).await;
    join(&node, &mut a2, "presence-full", "a").await;
    assert_eq!(events(&frames(&mut out_a2)), ["pusher_internal:subscription_succeeded"]);
}

#[tokio::test]
async fn client_events_reach_others_with_the_senders_user_id_and_are_not_echoed() {
    let node = node();
    let (mut a, mut out_a) = connect(&node).await;
    let (mut b, mut out_b) = connect(&node).await;
    join(&node, &mut a, "presence-chat", "alice").await;
    join(&node, &mut b, "presence-chat", "bob").await;
    frames(&mut out_a);
    frames(&mut out_b);
    let typing = ClientEvent {
        event: "client-typing".into(),
        channel: "presence-chat".into(),
        data: "{}".into(),
    };
    node.handle(&mut a, ClientMessage::ClientEvent(typing)).await;
    let got = frames(&mut out_b);
    assert_eq!(got[0]["event"], "client-typing");
    assert_eq!(got[0]["user_id"], "alice");
    assert!(frames(&mut out_a).is_empty(), "never echoed");
    let public = ClientEvent {
        event: "client-x".into(),
        channel: "news".into(),
        data: "{}".into(),
    };
    node.handle(&mut a, ClientMessage::ClientEvent(public)).await;
    assert_eq!(events(&frames(&mut out_a)), ["pusher:error"]);
}

#[tokio::test]
async fn a_bad_signature_refuses_the_subscription_and_the_socket_carries_on() {
    let node = node();
    let (mut a, mut out_a) = connect(&node).await;
    let forged = ClientMessage::Subscribe(Subscribe {
        channel: "private-orders".into(),
        auth: Some(format!("key:{}", "0".repeat(64))),
        channel_data: None,
    });
    node.handle(&mut a, forged).await;
    let refused = frames(&mut out_a);
    assert_eq!(events(&refused), ["pusher:subscription_error", "pusher:error"]);
    assert_eq!(refused[0]["data"]["status"], 401);
    assert!(node.local_stats().is_empty(), "nothing was registered");
    node.handle(&mut a, ClientMessage::Ping).await;
    assert_eq!(events(&frames(&mut out_a)), ["pusher:pong"]);
}

fn config(id: &str, key: &str, secret: &str) -> AppConfig {
    AppConfig {
        id: id.into(),
        key: key.into(),
        secret: secret.into(),
        ..AppConfig::default()
    }
}

#[tokio::test]
async fn applying_apps_closes_removed_and_disabled_apps_and_keeps_the_others() {
    let node = Node::new(
        AppRegistry::new([
            config("keep", "k1", "s1"),
            config("off", "k2", "s2"),
            config("gone", "k3", "s3"),
        ]),
        Arc::new(MemoryBackplane::new()),
        Arc::new(MemoryClusterState::new()),
        NodeOptions::new(64, 7),
    );
    let open = |id: &'static str| {
        let node = node.clone();
        async move { node.connect(node.apps().by_id(id).unwrap()).await.unwrap() }
    };
    let (keep, mut keep_out) = open("keep").await;
    let (off, mut off_out) = open("off").await;
    let (gone, mut gone_out) = open("gone").await;
    let gone_app = gone.app.clone();

    let mut disabled = config("off", "k2", "s2");
    disabled.enabled = false;
    let mut rotated = config("keep", "k1", "s1-new");
    rotated.max_connections = 1;
    let changes = node.apply_apps(vec![rotated, disabled, config("new", "k4", "s4")]);
    let described: Vec<(String, String)> = changes.iter().map(|c| (c.id.clone(), c.describe())).collect();
    assert_eq!(
        described,
        [
            ("gone".to_owned(), "removed".to_owned()),
            ("keep".to_owned(), "secret,limits".to_owned()),
            ("new".to_owned(), "added".to_owned()),
            ("off".to_owned(), "disabled".to_owned()),
        ]
    );
    // Closed with the codes of the protocol, after a pusher:error with the same code.
    assert_eq!(off.conn.close_code(), Some(4003));
    assert_eq!(gone.conn.close_code(), Some(4001));
    assert_eq!(keep.conn.close_code(), None);
    assert_eq!(frames(&mut off_out)[0]["data"]["code"], 4003);
    assert_eq!(frames(&mut gone_out)[0]["data"]["code"], 4001);
    assert!(frames(&mut keep_out).is_empty());
    // The kept app's session sees the new configuration; its open socket stays even though
    // it is now at the new max_connections.
    assert_eq!(keep.app.config().secret, "s1-new");
    assert_eq!(keep.app.config().max_connections, 1);

    // New connections: the disabled app is refused, the removed one too (even through an Arc
    // taken before the reload), the new app is usable at once.
    let refused = node.connect(node.apps().by_id("off").unwrap()).await.err().unwrap();
    assert!(matches!(refused, ferrocast_broker::ConnectError::AppDisabled));
    let refused = node.connect(gone_app).await.err().unwrap();
    assert!(matches!(refused, ferrocast_broker::ConnectError::AppRemoved));
    assert!(node.apps().by_key("k3").is_none());
    let (fresh, _fresh_out) = node.connect(node.apps().by_key("k4").unwrap()).await.unwrap();
    assert_eq!(fresh.app.id(), "new");
    // Over the lowered max_connections: the next connection of the kept app is refused.
    let over = node.connect(node.apps().by_id("keep").unwrap()).await.err().unwrap();
    assert!(matches!(over, ferrocast_broker::ConnectError::OverQuota));

    for session in [keep, off, gone, fresh] {
        node.disconnect(session).await;
    }
    assert_eq!(node.apps().by_id("keep").unwrap().open_sockets(), 0);
}

#[tokio::test]
async fn sign_in_and_channel_auth_accept_the_previous_secret_until_it_expires() {
    let mut rotated = config("app", "key", "new-secret");
    rotated.previous_secret = Some("old-secret".into());
    rotated.previous_secret_expires_at = Some(ferrocast_broker::unix_seconds() + 3600);
    let node = Node::new(
        AppRegistry::new([rotated.clone()]),
        Arc::new(MemoryBackplane::new()),
        Arc::new(MemoryClusterState::new()),
        NodeOptions::new(64, 7),
    );
    joined(&node).await;
    let (mut session, mut outbox) = connect(&node).await;
    let signin = |session: &Session, secret: &str| {
        let user_data = r#"{"id":"u1"}"#.to_owned();
        let signed = signature::user_string_to_sign(session.socket_id(), &user_data);
        ClientMessage::Signin {
            auth: format!("key:{}", signature::sign(secret, &signed)),
            user_data,
        }
    };
    let private = |session: &Session, secret: &str, channel: &str| {
        let signed = signature::channel_string_to_sign(session.socket_id(), channel, None);
        ClientMessage::Subscribe(Subscribe {
            channel: channel.into(),
            auth: Some(format!("key:{}", signature::sign(secret, &signed))),
            channel_data: None,
        })
    };
    let message = signin(&session, "old-secret");
    node.handle(&mut session, message).await;
    let message = private(&session, "old-secret", "private-a");
    node.handle(&mut session, message).await;
    let message = private(&session, "new-secret", "private-b");
    node.handle(&mut session, message).await;
    let seen = events(&frames(&mut outbox));
    assert!(seen.contains(&"pusher:signin_success".to_owned()), "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|e| *e == "pusher_internal:subscription_succeeded")
            .count(),
        2,
        "{seen:?}"
    );

    // Expired: only the new secret.
    rotated.previous_secret_expires_at = Some(ferrocast_broker::unix_seconds().saturating_sub(1));
    node.apply_apps(vec![rotated]);
    let message = private(&session, "old-secret", "private-c");
    node.handle(&mut session, message).await;
    let message = private(&session, "new-secret", "private-d");
    node.handle(&mut session, message).await;
    let seen = frames(&mut outbox);
    let result = |channel: &str| {
        seen.iter()
            .find(|f| f["channel"] == channel)
            .map(|f| f["event"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        result("private-c").as_deref(),
        Some("pusher:subscription_error"),
        "{seen:?}"
    );
    assert_eq!(
        result("private-d").as_deref(),
        Some("pusher_internal:subscription_succeeded"),
        "{seen:?}"
    );
    node.disconnect(session).await;
}

/// A source that knows one app more than the node, and applies it when asked about it.
struct OneMoreApp {
    node: std::sync::OnceLock<std::sync::Weak<Node>>,
    app: AppConfig,
    asked: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ferrocast_broker::AppSource for OneMoreApp {
    async fn on_miss(&self, lookup: ferrocast_broker::AppLookup<'_>) {
        use ferrocast_broker::AppLookup;
        let (asked, found) = match lookup {
            AppLookup::Key(k) => (format!("key {k}"), k == self.app.key),
            AppLookup::Id(i) => (format!("id {i}"), i == self.app.id),
        };
        self.asked.lock().unwrap().push(asked);
        if let (true, Some(node)) = (found, self.node.get().and_then(|n| n.upgrade())) {
            let mut apps: Vec<AppConfig> = node.apps().configs().iter().map(|c| (**c).clone()).collect();
            apps.push(self.app.clone());
            node.apply_apps(apps);
        }
    }
}

#[tokio::test]
async fn an_unknown_key_or_id_is_asked_of_the_app_source_and_a_known_one_never() {
    let node = node();
    // Without a source, an unknown key is simply unknown.
    assert!(node.app_by_key("later-key").await.is_none());
    let source = Arc::new(OneMoreApp {
        node: std::sync::OnceLock::new(),
        app: config("later", "later-key", "later-secret"),
        asked: std::sync::Mutex::new(Vec::new()),
    });
    let _ = source.node.set(Arc::downgrade(&node));
    node.set_app_source(source.clone());

    assert_eq!(
        node.app_by_key("key").await.map(|a| a.id().to_owned()).as_deref(),
        Some("app")
    );
    assert_eq!(
        node.app_by_id("app").await.map(|a| a.id().to_owned()).as_deref(),
        Some("app")
    );
    assert!(
        source.asked.lock().unwrap().is_empty(),
        "a known key or id never reaches the source"
    );

    assert!(node.app_by_key("nobody").await.is_none());
    assert!(node.app_by_id("nobody").await.is_none());
    let found = node.app_by_key("later-key").await.expect("applied by the source");
    assert_eq!(found.id(), "later");
    assert!(node.app_by_id("later").await.is_some());
    assert_eq!(
        *source.asked.lock().unwrap(),
        ["key nobody", "id nobody", "key later-key"],
        "asked once per miss; the app applied on the last miss is then known"
    );
}
