//! Which webhook events a node reports, driven through its public interface on the in-process
//! cluster state, with tokio's clock paused so the leave delay passes without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrocast_broker::ConnectionOutbox;
use ferrocast_broker::{AppConfig, AppRegistry, Node, NodeOptions, Session, WebhookSink};
use ferrocast_broker::{MemoryBackplane, MemoryClusterState};
use ferrocast_protocol::inbound::{ClientEvent, ClientMessage, Subscribe};
use ferrocast_protocol::signature;
use ferrocast_protocol::webhook::WebhookEvent;

const DELAY: Duration = Duration::from_secs(3);

/// Records what the node reports, for the apps named in `enabled`.
#[derive(Default)]
struct Recorder {
    enabled: Vec<&'static str>,
    events: Mutex<Vec<(String, WebhookEvent)>>,
}

impl WebhookSink for Recorder {
    fn enabled(&self, app_id: &str) -> bool {
        self.enabled.contains(&app_id)
    }

    fn emit(&self, app_id: &str, event: WebhookEvent, _created_ms: u64) {
        self.events.lock().unwrap().push((app_id.to_owned(), event));
    }
}

impl Recorder {
    fn take(&self) -> Vec<WebhookEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

fn app(id: &str) -> AppConfig {
    AppConfig {
        id: id.into(),
        key: format!("{id}-key"),
        secret: "secret".into(),
        enable_client_messages: true,
        ..AppConfig::default()
    }
}

fn node(recorder: Arc<Recorder>) -> Arc<Node> {
    let options = NodeOptions {
        webhooks: recorder,
        leave_delay: DELAY,
        ..NodeOptions::new(64, 7)
    };
    Node::new(
        AppRegistry::new([app("hooked"), app("quiet")]),
        Arc::new(MemoryBackplane::new()),
        Arc::new(MemoryClusterState::new()),
        options,
    )
}

/// A node whose app "hooked" has webhooks (recorded) and "quiet" none.
fn hooked_node() -> (Arc<Recorder>, Arc<Node>) {
    let recorder = Arc::new(Recorder {
        enabled: vec!["hooked"],
        ..Recorder::default()
    });
    (recorder.clone(), node(recorder))
}

async fn connect(node: &Node, app_id: &str) -> (Session, ConnectionOutbox) {
    let app = node.apps().by_id(app_id).unwrap();
    node.connect(app).await.unwrap()
}

fn subscribe(session: &Session, channel: &str, user: Option<&str>) -> ClientMessage {
    let channel_data = user.map(|u| format!(r#"{{"user_id":"{u}"}}"#));
    let auth = (channel.starts_with("private-") || channel.starts_with("presence-")).then(|| {
        let signed = signature::channel_string_to_sign(session.socket_id(), channel, channel_data.as_deref());
        format!("{}:{}", session.app.config().key, signature::sign("secret", &signed))
    });
    ClientMessage::Subscribe(Subscribe {
        channel: channel.into(),
        auth,
        channel_data,
    })
}

async fn sub(node: &Node, session: &mut Session, channel: &str, user: Option<&str>) {
    let message = subscribe(session, channel, user);
    node.handle(session, message).await;
}

fn unsubscribe(channel: &str) -> ClientMessage {
    ClientMessage::Unsubscribe {
        channel: channel.into(),
    }
}

fn occupied(channel: &str) -> WebhookEvent {
    WebhookEvent::ChannelOccupied {
        channel: channel.into(),
    }
}

fn vacated(channel: &str) -> WebhookEvent {
    WebhookEvent::ChannelVacated {
        channel: channel.into(),
    }
}

fn added(channel: &str, user: &str) -> WebhookEvent {
    WebhookEvent::MemberAdded {
        channel: channel.into(),
        user_id: user.into(),
    }
}

fn removed(channel: &str, user: &str) -> WebhookEvent {
    WebhookEvent::MemberRemoved {
        channel: channel.into(),
        user_id: user.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn occupancy_is_reported_once_and_vacancy_after_the_delay() {
    let (recorder, node) = hooked_node();
    let (mut a, _ao) = connect(&node, "hooked").await;
    let (mut b, _bo) = connect(&node, "hooked").await;
    sub(&node, &mut a, "room", None).await;
    sub(&node, &mut b, "room", None).await;
    assert_eq!(
        recorder.take(),
        vec![occupied("room")],
        "only the first subscriber occupies"
    );

    node.handle(&mut a, unsubscribe("room")).await;
    node.handle(&mut b, unsubscribe("room")).await;
    tokio::time::sleep(DELAY - Duration::from_millis(10)).await;
    assert_eq!(recorder.take(), vec![], "vacated waits for the delay");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(recorder.take(), vec![vacated("room")]);
}

#[tokio::test(start_paused = true)]
async fn a_return_within_the_delay_cancels_both_reports() {
    let (recorder, node) = hooked_node();
    let (mut a, _ao) = connect(&node, "hooked").await;
    sub(&node, &mut a, "presence-x", Some("u1")).await;
    assert_eq!(recorder.take(), vec![occupied("presence-x"), added("presence-x", "u1")]);

    // The user's only socket leaves and another socket of theirs comes back within the delay.
    node.disconnect(a).await;
    tokio::time::sleep(DELAY / 2).await;
    let (mut again, _o) = connect(&node, "hooked").await;
    sub(&node, &mut again, "presence-x", Some("u1")).await;
    tokio::time::sleep(DELAY * 2).await;
    assert_eq!(recorder.take(), vec![], "no vacated/removed, no occupied/added");

    // Leaving for good is reported, member first.
    node.disconnect(again).await;
    node.settle_leaves().await;
    assert_eq!(
        recorder.take(),
        vec![removed("presence-x", "u1"), vacated("presence-x")]
    );
}

#[tokio::test(start_paused = true)]
async fn members_are_reported_per_user_not_per_socket() {
    let (recorder, node) = hooked_node();
    let (mut a, _ao) = connect(&node, "hooked").await;
    let (mut a2, _a2o) = connect(&node, "hooked").await;
    let (mut b, _bo) = connect(&node, "hooked").await;
    sub(&node, &mut a, "presence-x", Some("u1")).await;
    sub(&node, &mut a2, "presence-x", Some("u1")).await;
    sub(&node, &mut b, "presence-x", Some("u2")).await;
    assert_eq!(
        recorder.take(),
        vec![
            occupied("presence-x"),
            added("presence-x", "u1"),
            added("presence-x", "u2")
        ]
    );
    node.handle(&mut a, unsubscribe("presence-x")).await;
    node.settle_leaves().await;
    assert_eq!(recorder.take(), vec![], "u1 still has a socket");
    node.handle(&mut a2, unsubscribe("presence-x")).await;
    node.settle_leaves().await;
    assert_eq!(recorder.take(), vec![removed("presence-x", "u1")]);
}

#[tokio::test(start_paused = true)]
async fn accepted_client_events_are_reported_with_the_senders_identity() {
    let (recorder, node) = hooked_node();
    let (mut a, _ao) = connect(&node, "hooked").await;
    sub(&node, &mut a, "presence-x", Some("u1")).await;
    recorder.take();
    let event = |channel: &str| {
        ClientMessage::ClientEvent(ClientEvent {
            event: "client-typing".into(),
            channel: channel.into(),
            data: r#"{"on":true}"#.into(),
        })
    };
    node.handle(&mut a, event("presence-x")).await;
    node.handle(&mut a, event("presence-not-subscribed")).await;
    assert_eq!(
        recorder.take(),
        vec![WebhookEvent::ClientEvent {
            channel: "presence-x".into(),
            event: "client-typing".into(),
            data: r#"{"on":true}"#.into(),
            socket_id: a.socket_id().to_owned(),
            user_id: Some("u1".into()),
        }],
        "refused client events are not reported"
    );
}

#[tokio::test(start_paused = true)]
async fn apps_without_webhooks_report_nothing() {
    let (recorder, node) = hooked_node();
    let (mut q, _qo) = connect(&node, "quiet").await;
    sub(&node, &mut q, "presence-x", Some("u1")).await;
    node.disconnect(q).await;
    node.settle_leaves().await;
    assert_eq!(recorder.take(), vec![]);
}

#[tokio::test(start_paused = true)]
async fn leaves_of_a_channel_are_reported_in_the_order_they_happened() {
    let (recorder, node) = hooked_node();
    let users = ["u1", "u2", "u3", "u4", "u5", "u6"];
    let mut sessions = Vec::new();
    for user in users {
        let (mut s, o) = connect(&node, "hooked").await;
        sub(&node, &mut s, "presence-x", Some(user)).await;
        sessions.push((s, o));
    }
    recorder.take();
    for (mut s, _o) in sessions {
        node.handle(&mut s, unsubscribe("presence-x")).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    node.settle_leaves().await;
    let mut expected: Vec<_> = users.iter().map(|u| removed("presence-x", u)).collect();
    expected.push(vacated("presence-x"));
    assert_eq!(recorder.take(), expected);
}
