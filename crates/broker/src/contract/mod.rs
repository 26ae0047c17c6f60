//! The contract of the cluster state: what every implementation (in process, Redis) must do,
//! written once and run against each, so they cannot drift. Each check takes the state under
//! test and two app ids of its own (`a`, `b`) so checks can share one store.
//!
//! Built for this crate's tests and, with the `contract` feature, for the Redis crate's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use std::sync::Arc;

mod webhook_queue;

pub use webhook_queue::{
    a_lane_has_one_holder_and_is_taken_over_in_order, dead_letters_are_capped_listed_and_replayed,
    jobs_are_claimed_in_order_until_acknowledged, webhook_queue_all,
};

use crate::backplane::{Backplane, ChannelMessage, DeliverySink, Payload};
use crate::cluster::{
    ClusterState, LeavePolicy, PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, RateKind,
    UserSocket, UserStatus, UserTransition,
};

/// Budgets are all or nothing, per app and per kind; a changed budget starts afresh.
pub async fn rate_budgets_are_all_or_nothing_per_app_and_kind(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    async fn take(s: &dyn ClusterState, app: &str, kind: RateKind, units: u64) -> crate::cluster::RateDecision {
        s.take_rate(app, kind, units, 10).await.unwrap()
    }
    // The window starts with the first take, so these all fall in it.
    assert!(take(s, a, RateKind::BackendEvents, 7).await.allowed);
    let refused = take(s, a, RateKind::BackendEvents, 5).await;
    assert!(!refused.allowed);
    assert!(refused.resets_in > Duration::ZERO && refused.resets_in <= Duration::from_secs(1));
    assert!(
        take(s, a, RateKind::BackendEvents, 3).await.allowed,
        "the refused 5 were not taken"
    );
    assert!(!take(s, a, RateKind::BackendEvents, 1).await.allowed);
    assert!(
        take(s, a, RateKind::ReadRequests, 10).await.allowed,
        "reads have their own budget"
    );
    assert!(
        take(s, b, RateKind::BackendEvents, 10).await.allowed,
        "apps have their own budget"
    );
    assert!(!take(s, b, RateKind::BackendEvents, 1).await.allowed);
    // A changed budget starts afresh.
    assert!(s.take_rate(a, RateKind::BackendEvents, 20, 20).await.unwrap().allowed);
}

/// A user is added by their first socket and removed after their last; leaves are idempotent.
pub async fn presence_adds_once_per_user_and_removes_after_last_socket(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    let j = s
        .presence_join(
            a,
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.1",
                user_id: "u1",
                user_info: "{}",
                max_members: 100,
            },
        )
        .await
        .unwrap();
    let PresenceJoin::Joined {
        added,
        roster,
        returned,
        seq: _,
    } = j
    else {
        panic!("not joined: {j:?}");
    };
    assert!(added && !returned);
    assert_eq!(roster, vec![("u1".to_owned(), "{}".to_owned())]);
    let j = s
        .presence_join(
            a,
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.2",
                user_id: "u1",
                user_info: "{}",
                max_members: 100,
            },
        )
        .await
        .unwrap();
    assert!(matches!(j, PresenceJoin::Joined { added: false, .. }));
    assert!(
        s.presence_leave(
            a,
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
            == PresenceLeave::Stayed
    );
    assert!(s
        .presence_leave(
            a,
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "1.2",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
        .left());
    assert!(s.presence_members(a, "presence-x").await.unwrap().is_empty());
}

/// The member limit counts distinct users, not sockets.
pub async fn presence_limit_counts_distinct_users(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    s.presence_join(
        a,
        "presence-limit",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "null",
            max_members: 2,
        },
    )
    .await
    .unwrap();
    s.presence_join(
        a,
        "presence-limit",
        &PresenceJoinRequest {
            socket_id: "1.2",
            user_id: "u2",
            user_info: "null",
            max_members: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.presence_join(
            a,
            "presence-limit",
            &PresenceJoinRequest {
                socket_id: "1.3",
                user_id: "u3",
                user_info: "null",
                max_members: 2
            }
        )
        .await
        .unwrap(),
        PresenceJoin::Full
    );
    assert!(matches!(
        s.presence_join(
            a,
            "presence-limit",
            &PresenceJoinRequest {
                socket_id: "1.4",
                user_id: "u2",
                user_info: "null",
                max_members: 2
            }
        )
        .await
        .unwrap(),
        PresenceJoin::Joined { added: false, .. }
    ));
}

/// The connection quota is enforced and a closed connection releases its slot.
pub async fn connection_quota_is_enforced_and_released(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    assert!(s.connection_opened(a, 2).await.unwrap());
    assert!(s.connection_opened(a, 2).await.unwrap());
    assert!(!s.connection_opened(a, 2).await.unwrap());
    s.connection_closed(a).await.unwrap();
    assert!(s.connection_opened(a, 2).await.unwrap());
    assert!(s.connection_opened(b, 0).await.unwrap());
}

/// Listings are per app and filtered by prefix; an emptied channel is not listed.
pub async fn channel_listing_filters_by_app_and_prefix(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    s.subscription_added(a, "presence-1").await.unwrap();
    s.subscription_added(a, "public").await.unwrap();
    s.subscription_added(b, "presence-2").await.unwrap();
    let list = s.channels(a, "presence-").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, "presence-1");
    s.subscription_removed(a, "presence-1", LeavePolicy::Pending)
        .await
        .unwrap();
    assert!(s.channels(a, "presence-").await.unwrap().is_empty());
}

/// A vacancy is confirmed at most once, and not at all when the channel is reoccupied within the delay.
pub async fn vacancy_is_confirmed_once_unless_the_channel_is_reoccupied(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    assert!(s.subscription_added(a, "vacancy").await.unwrap(), "0 -> 1 occupies");
    assert!(!s.subscription_added(a, "vacancy").await.unwrap());
    assert_eq!(
        s.subscription_removed(a, "vacancy", LeavePolicy::Pending)
            .await
            .unwrap(),
        None
    );
    let token = s
        .subscription_removed(a, "vacancy", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    assert!(s.confirm_leave(a, "vacancy", None, &token).await.unwrap());
    assert!(!s.confirm_leave(a, "vacancy", None, &token).await.unwrap(), "only once");

    let token = {
        assert!(s.subscription_added(a, "vacancy").await.unwrap());
        s.subscription_removed(a, "vacancy", LeavePolicy::Pending)
            .await
            .unwrap()
            .expect("emptied")
    };
    assert!(
        !s.subscription_added(a, "vacancy").await.unwrap(),
        "back within the delay: no new occupancy"
    );
    assert!(
        !s.confirm_leave(a, "vacancy", None, &token).await.unwrap(),
        "and no vacancy"
    );
    assert_eq!(
        s.subscription_removed("x", "never", LeavePolicy::Pending)
            .await
            .unwrap(),
        None
    );
}

/// A pending departure is cancelled by a rejoin and confirmed only for its own user.
pub async fn departure_is_cancelled_by_a_rejoin(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    s.presence_join(
        a,
        "presence-dep",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "{}",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    let token = s
        .presence_leave(
            a,
            "presence-dep",
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Pending,
            },
        )
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    let rejoin = s
        .presence_join(
            a,
            "presence-dep",
            &PresenceJoinRequest {
                socket_id: "1.2",
                user_id: "u1",
                user_info: "{}",
                max_members: 0,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        rejoin,
        PresenceJoin::Joined {
            added: true,
            returned: true,
            ..
        }
    ));
    assert!(!s.confirm_leave(a, "presence-dep", Some("u1"), &token).await.unwrap());
    let token = s
        .presence_leave(
            a,
            "presence-dep",
            &PresenceLeaveRequest {
                socket_id: "1.2",
                user_id: "u1",
                policy: LeavePolicy::Pending,
            },
        )
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    assert!(
        !s.confirm_leave(a, "presence-dep", Some("u2"), &token).await.unwrap(),
        "another user"
    );
    assert!(s.confirm_leave(a, "presence-dep", Some("u1"), &token).await.unwrap());
}

/// A pending leave may be confirmed by another node than the one that left (the survivor that
/// inherited a dead node's leaves): true once, whoever asks first, false for everyone after; a
/// return through either node cancels it for both. `left` and `survivor` are two nodes' handles
/// on one state (the same handle for a single node).
pub async fn pending_leaves_are_confirmed_once_by_any_node(
    left: &dyn ClusterState,
    survivor: &dyn ClusterState,
    a: &str,
) {
    let join = |socket_id| PresenceJoinRequest {
        socket_id,
        user_id: "heir-u",
        user_info: "{}",
        max_members: 0,
    };
    let leave = |socket_id| PresenceLeaveRequest {
        socket_id,
        user_id: "heir-u",
        policy: LeavePolicy::Pending,
    };
    let ch = "presence-heir";
    assert!(left.subscription_added(a, ch).await.unwrap());
    left.presence_join(a, ch, &join("7.1")).await.unwrap();
    let departure = left
        .presence_leave(a, ch, &leave("7.1"))
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    let vacancy = left
        .subscription_removed(a, ch, LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    assert!(survivor.confirm_leave(a, ch, Some("heir-u"), &departure).await.unwrap());
    assert!(survivor.confirm_leave(a, ch, None, &vacancy).await.unwrap());
    assert!(
        !left.confirm_leave(a, ch, Some("heir-u"), &departure).await.unwrap(),
        "the survivor took it: not again"
    );
    assert!(!left.confirm_leave(a, ch, None, &vacancy).await.unwrap());

    // Left through one node, back through the other within the delay: nothing to confirm.
    assert!(left.subscription_added(a, ch).await.unwrap());
    left.presence_join(a, ch, &join("7.2")).await.unwrap();
    let departure = left
        .presence_leave(a, ch, &leave("7.2"))
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    let vacancy = left
        .subscription_removed(a, ch, LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    assert!(
        !survivor.subscription_added(a, ch).await.unwrap(),
        "a return, not an occupancy"
    );
    let rejoin = survivor.presence_join(a, ch, &join("8.1")).await.unwrap();
    assert!(matches!(rejoin, PresenceJoin::Joined { returned: true, .. }));
    assert!(!survivor.confirm_leave(a, ch, Some("heir-u"), &departure).await.unwrap());
    assert!(!survivor.confirm_leave(a, ch, None, &vacancy).await.unwrap());
    survivor
        .presence_leave(
            a,
            ch,
            &PresenceLeaveRequest {
                policy: LeavePolicy::Immediate,
                ..leave("8.1")
            },
        )
        .await
        .unwrap();
    survivor
        .subscription_removed(a, ch, LeavePolicy::Immediate)
        .await
        .unwrap();
}

/// A leave names a socket: repeating it, or naming a socket that never joined, changes nothing.
pub async fn presence_leave_is_per_socket(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    for socket in ["1.1", "1.2"] {
        s.presence_join(
            a,
            "presence-s",
            &PresenceJoinRequest {
                socket_id: socket,
                user_id: "u1",
                user_info: "{}",
                max_members: 0,
            },
        )
        .await
        .unwrap();
    }
    let stayed = |r: PresenceLeave| r == PresenceLeave::Stayed;
    assert!(stayed(
        s.presence_leave(
            a,
            "presence-s",
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
    ));
    assert!(
        stayed(
            s.presence_leave(
                a,
                "presence-s",
                &PresenceLeaveRequest {
                    socket_id: "1.1",
                    user_id: "u1",
                    policy: LeavePolicy::Pending
                }
            )
            .await
            .unwrap()
        ),
        "a repeated leave is a no-op"
    );
    assert!(
        stayed(
            s.presence_leave(
                a,
                "presence-s",
                &PresenceLeaveRequest {
                    socket_id: "9.9",
                    user_id: "u1",
                    policy: LeavePolicy::Pending
                }
            )
            .await
            .unwrap()
        ),
        "a socket that never joined leaves nothing"
    );
    assert!(s
        .presence_leave(
            a,
            "presence-s",
            &PresenceLeaveRequest {
                socket_id: "1.2",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
        .left());
}

/// A sink that drops what it is given: the cache checks look at the store, not deliveries.
struct Discard;

impl DeliverySink for Discard {
    fn deliver(&self, _message: &ChannelMessage) {}
}

fn event(app: &str, channel: &str, event: &str, data: &str) -> ChannelMessage {
    let payload = Payload::Event {
        event: event.into(),
        data: data.into(),
        user_id: None,
    };
    ChannelMessage::new(app, channel, payload)
}

/// The cache keeps the last application event per cache channel and app (not other channels,
/// not client events), expires it after its TTL, and grants a miss report once per hold.
/// `p` is the backplane that writes the cache `s` reads (the same store).
pub async fn event_cache_keeps_the_last_event_expires_and_claims_misses_once(
    p: &dyn Backplane,
    s: &dyn ClusterState,
    a: &str,
    b: &str,
) {
    p.set_sink(Arc::new(Discard));
    assert_eq!(s.cached(a, "cache-x").await.unwrap(), None);
    let ttl = Duration::from_secs(30);
    let batch = vec![
        event(a, "cache-x", "first", "1"),
        event(a, "cache-x", "second", "{\"n\":2}"),
        event(a, "plain", "third", "3"),
    ];
    p.publish_cached(batch, ttl).await.unwrap();
    let cached = s.cached(a, "cache-x").await.unwrap().expect("cached");
    assert_eq!(
        (cached.event.as_str(), cached.data.as_str()),
        ("second", "{\"n\":2}"),
        "the last one"
    );
    assert!(
        cached.ttl > Duration::from_secs(25) && cached.ttl <= ttl,
        "{:?}",
        cached.ttl
    );
    assert_eq!(cached.ttl_seconds(), 30);
    assert_eq!(s.cached(a, "plain").await.unwrap(), None, "not a cache channel");
    assert_eq!(s.cached(b, "cache-x").await.unwrap(), None, "per app");

    let client_event = ChannelMessage::new(
        a,
        "presence-cache-y",
        Payload::Event {
            event: "client-x".into(),
            data: "{}".into(),
            user_id: Some("u1".into()),
        },
    );
    p.publish_cached(vec![client_event], ttl).await.unwrap();
    assert_eq!(
        s.cached(a, "presence-cache-y").await.unwrap(),
        None,
        "client events are not cached"
    );

    p.publish_cached(vec![event(a, "cache-short", "e", "d")], Duration::from_millis(200))
        .await
        .unwrap();
    assert!(s.cached(a, "cache-short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.cached(a, "cache-short").await.unwrap(), None, "expired");

    let hold = Duration::from_millis(300);
    assert!(s.claim_miss_report(a, "cache-m", hold).await.unwrap(), "first claim");
    assert!(!s.claim_miss_report(a, "cache-m", hold).await.unwrap(), "held");
    assert!(s.claim_miss_report(b, "cache-m", hold).await.unwrap(), "per app");
    assert!(s.claim_miss_report(a, "cache-n", hold).await.unwrap(), "per channel");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(s.claim_miss_report(a, "cache-m", hold).await.unwrap(), "after the hold");
}

/// One holder per channel's count updates: the first change claims, later ones only record
/// themselves; the holder gets the current count while changes keep coming, and the first ask
/// that finds none releases the claim, so the next change claims afresh.
pub async fn count_updates_have_one_holder_per_channel(s: &dyn ClusterState, a: &str, b: &str) {
    let hold = Duration::from_secs(15);
    s.subscription_added(a, "counted").await.unwrap();
    assert!(
        s.count_changed(a, "counted", hold).await.unwrap(),
        "the first change claims"
    );
    s.subscription_added(a, "counted").await.unwrap();
    assert!(
        !s.count_changed(a, "counted", hold).await.unwrap(),
        "held: only recorded"
    );
    assert!(s.count_changed(b, "counted", hold).await.unwrap(), "claims are per app");
    assert!(s.count_changed(a, "other", hold).await.unwrap(), "and per channel");
    assert_eq!(s.count_update_due(a, "counted", hold).await.unwrap(), Some(2));
    assert!(
        !s.count_changed(a, "counted", hold).await.unwrap(),
        "still held after an ask"
    );
    assert_eq!(
        s.count_update_due(a, "counted", hold).await.unwrap(),
        Some(2),
        "a change came"
    );
    assert_eq!(
        s.count_update_due(a, "counted", hold).await.unwrap(),
        None,
        "none: released"
    );
    assert_eq!(
        s.count_update_due(a, "counted", hold).await.unwrap(),
        None,
        "stays released"
    );
    s.subscription_removed(a, "counted", LeavePolicy::Immediate)
        .await
        .unwrap();
    s.subscription_removed(a, "counted", LeavePolicy::Immediate)
        .await
        .unwrap();
    assert!(
        s.count_changed(a, "counted", hold).await.unwrap(),
        "released: claims afresh"
    );
    assert_eq!(
        s.count_update_due(a, "counted", hold).await.unwrap(),
        Some(0),
        "an emptied channel reports 0"
    );
    assert_eq!(s.count_update_due(a, "never", hold).await.unwrap(), None);
}

/// A user is online from their first signed-in socket to their last; each transition is seen
/// by exactly one call, and a sign-out of an unknown socket changes nothing.
pub async fn users_are_online_from_first_signin_to_last_signout(s: &dyn ClusterState, a: &str, b: &str) {
    let u1 = UserSocket {
        app_id: a,
        user_id: "u1",
    };
    let status = |online: &[&str], offline: &[&str]| UserStatus {
        online: online.iter().map(|s| (*s).to_owned()).collect(),
        offline: offline.iter().map(|s| (*s).to_owned()).collect(),
    };
    let ids = vec!["u1".to_owned(), "u2".to_owned()];
    assert_eq!(s.user_status(a, &ids).await.unwrap(), status(&[], &["u1", "u2"]));
    assert_eq!(s.user_signed_in(u1).await.unwrap(), UserTransition::Changed);
    assert_eq!(s.user_signed_in(u1).await.unwrap(), UserTransition::Unchanged);
    assert_eq!(s.user_status(a, &ids).await.unwrap(), status(&["u1"], &["u2"]));
    assert_eq!(
        s.user_status(b, &ids).await.unwrap(),
        status(&[], &["u1", "u2"]),
        "apps have their own users"
    );
    assert_eq!(s.user_signed_out(u1).await.unwrap(), UserTransition::Unchanged);
    assert_eq!(s.user_signed_out(u1).await.unwrap(), UserTransition::Changed);
    assert_eq!(
        s.user_signed_out(u1).await.unwrap(),
        UserTransition::Unchanged,
        "an unknown socket changes nothing"
    );
    assert_eq!(s.user_status(a, &ids).await.unwrap(), status(&[], &["u1", "u2"]));
    assert_eq!(
        s.user_signed_in(u1).await.unwrap(),
        UserTransition::Changed,
        "online again"
    );
    assert_eq!(s.user_signed_out(u1).await.unwrap(), UserTransition::Changed);
}

/// Every membership change takes the channel's next presence sequence, returned with the
/// roster it reflects; joins and leaves that change no membership take none; a roster read
/// reports the sequence of the last change.
pub async fn presence_sequence_orders_every_membership_change(s: &dyn ClusterState, a: &str, b: &str) {
    let _ = b;
    let ch = "presence-seq";
    let joined = |j: PresenceJoin| match j {
        PresenceJoin::Joined { added, roster, seq, .. } => (added, roster, seq),
        PresenceJoin::Full => panic!("full"),
    };
    let (added, _, s1) = joined(
        s.presence_join(
            a,
            ch,
            &PresenceJoinRequest {
                socket_id: "1.1",
                user_id: "u1",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap(),
    );
    assert!(added);
    assert_eq!(
        s.presence_roster(a, ch).await.unwrap().seq,
        s1,
        "a read reports the last change"
    );
    let (added, roster, s2) = joined(
        s.presence_join(
            a,
            ch,
            &PresenceJoinRequest {
                socket_id: "1.2",
                user_id: "u2",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap(),
    );
    assert!(added && s2 > s1, "a new member takes the next sequence");
    assert_eq!(roster.len(), 2, "the roster reflects its own join");
    let (added, roster, s3) = joined(
        s.presence_join(
            a,
            ch,
            &PresenceJoinRequest {
                socket_id: "1.3",
                user_id: "u2",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap(),
    );
    assert!(
        !added && s3 == s2,
        "a second socket changes no membership: same sequence"
    );
    assert_eq!(roster.len(), 2);
    assert_eq!(
        s.presence_leave(
            a,
            ch,
            &PresenceLeaveRequest {
                socket_id: "1.3",
                user_id: "u2",
                policy: LeavePolicy::Immediate
            }
        )
        .await
        .unwrap(),
        PresenceLeave::Stayed
    );
    let PresenceLeave::Left { seq: s4, .. } = s
        .presence_leave(
            a,
            ch,
            &PresenceLeaveRequest {
                socket_id: "1.2",
                user_id: "u2",
                policy: LeavePolicy::Immediate,
            },
        )
        .await
        .unwrap()
    else {
        panic!("u2's last socket left");
    };
    assert!(s4 > s2, "a removal takes the next sequence");
    let roster = s.presence_roster(a, ch).await.unwrap();
    assert_eq!((roster.members.len(), roster.seq), (1, s4));
    let PresenceLeave::Left { seq: s5, .. } = s
        .presence_leave(
            a,
            ch,
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Immediate,
            },
        )
        .await
        .unwrap()
    else {
        panic!("u1's last socket left");
    };
    assert!(s5 > s4);
    let (_, _, s6) = joined(
        s.presence_join(
            a,
            ch,
            &PresenceJoinRequest {
                socket_id: "1.4",
                user_id: "u3",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap(),
    );
    assert!(s6 > s5, "a channel emptied and recreated counts on from above");
}

/// Every check above but the rate budgets, in turn, on one state (apps `a` and `b` must be
/// unused in it). The rate check counts on its takes falling in one one-second window: run it
/// alone, at the start of a window of the store's clock.
pub async fn all(s: &dyn ClusterState, a: &str, b: &str) {
    presence_adds_once_per_user_and_removes_after_last_socket(s, a, b).await;
    presence_limit_counts_distinct_users(s, a, b).await;
    connection_quota_is_enforced_and_released(s, a, b).await;
    channel_listing_filters_by_app_and_prefix(s, a, b).await;
    vacancy_is_confirmed_once_unless_the_channel_is_reoccupied(s, a, b).await;
    departure_is_cancelled_by_a_rejoin(s, a, b).await;
    count_updates_have_one_holder_per_channel(s, a, b).await;
    users_are_online_from_first_signin_to_last_signout(s, a, b).await;
    presence_sequence_orders_every_membership_change(s, a, b).await;
}

#[cfg(test)]
mod tests {
    use crate::memory::MemoryClusterState;

    #[tokio::test]
    async fn the_in_process_state_keeps_the_contract() {
        let s = MemoryClusterState::new();
        super::all(&s, "app-a", "app-b").await;
        super::event_cache_keeps_the_last_event_expires_and_claims_misses_once(&s.backplane(), &s, "app-a", "app-b")
            .await;
        super::presence_leave_is_per_socket(&s, "app-a", "app-b").await;
        super::rate_budgets_are_all_or_nothing_per_app_and_kind(&s, "app-a", "app-b").await;
        super::pending_leaves_are_confirmed_once_by_any_node(&s, &s, "app-a").await;
    }

    #[tokio::test]
    async fn the_in_process_webhook_queue_keeps_the_contract() {
        let q = crate::memory::MemoryWebhookQueue::new();
        super::webhook_queue_all(&q, "app-a").await;
    }
}
