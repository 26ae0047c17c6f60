//! Cluster state on a real Redis, shared by two backplanes acting as two nodes.

mod common;

use std::time::Duration;

use common::{backplane, eventually, wait_up, Redis};
use ferrocast_broker::{
    ChannelOccupancy, ConnectionQuota, CountUpdates, LeavePolicy, NodeRegistration, NodeSnapshot, PendingLeaves,
    PresenceJoin, PresenceJoinRequest, PresenceLeave, PresenceLeaveRequest, PresenceRoster,
};

const TTL: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_added_and_removed_exactly_once_across_nodes() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    let info = r#"{"name":"Ada"}"#;
    let first = a
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.1",
                user_id: "u1",
                user_info: info,
                max_members: 100,
            },
        )
        .await
        .unwrap();
    let PresenceJoin::Joined {
        added: true,
        roster,
        returned: false,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(roster, vec![("u1".to_owned(), info.to_owned())]);
    let second = b
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "2.1",
                user_id: "u1",
                user_info: info,
                max_members: 100,
            },
        )
        .await
        .unwrap();
    assert!(matches!(second, PresenceJoin::Joined { added: false, .. }));
    let other = b
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "2.2",
                user_id: "u2",
                user_info: "null",
                max_members: 100,
            },
        )
        .await
        .unwrap();
    let PresenceJoin::Joined {
        added: true, roster, ..
    } = other
    else {
        panic!("u2 not added: {other:?}")
    };
    assert_eq!(roster.len(), 2, "roster is cluster-wide: {roster:?}");
    assert!(
        a.presence_leave(
            "app",
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
            == PresenceLeave::Stayed,
        "u1 still on node-b"
    );
    assert!(
        a.presence_leave(
            "app",
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "1.1",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
            == PresenceLeave::Stayed,
        "a repeated leave is a no-op"
    );
    assert!(
        b.presence_leave(
            "app",
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "2.1",
                user_id: "u1",
                policy: LeavePolicy::Pending
            }
        )
        .await
        .unwrap()
        .left(),
        "last socket of u1"
    );
    assert_eq!(
        a.presence_members("app", "presence-x").await.unwrap(),
        vec![("u2".into(), "null".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_cluster_wide() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    assert!(a
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.1",
                user_id: "u1",
                user_info: "null",
                max_members: 2
            }
        )
        .await
        .is_ok());
    assert!(b
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "2.1",
                user_id: "u2",
                user_info: "null",
                max_members: 2
            }
        )
        .await
        .is_ok());
    assert_eq!(
        a.presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.2",
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
        a.presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.3",
                user_id: "u2",
                user_info: "null",
                max_members: 2
            }
        )
        .await
        .unwrap(),
        PresenceJoin::Joined { added: false, .. }
    ));
    assert!(a.connection_opened("app", 2).await.unwrap());
    assert!(b.connection_opened("app", 2).await.unwrap());
    assert!(
        !b.connection_opened("app", 2).await.unwrap(),
        "third connection over the quota"
    );
    a.connection_closed("app").await.unwrap();
    assert!(b.connection_opened("app", 2).await.unwrap(), "slot released by node-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_listings_are_the_same_from_every_node() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    a.subscription_added("app", "presence-room").await.unwrap();
    b.subscription_added("app", "presence-room").await.unwrap();
    b.subscription_added("app", "news").await.unwrap();
    a.presence_join(
        "app",
        "presence-room",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    b.presence_join(
        "app",
        "presence-room",
        &PresenceJoinRequest {
            socket_id: "2.1",
            user_id: "u1",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    for node in [&a, &b] {
        let all = node.channels("app", "").await.unwrap();
        let names: Vec<_> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["news", "presence-room"]);
        let room = node.channel("app", "presence-room").await.unwrap();
        assert_eq!((room.subscriptions, room.users), (2, 1));
        assert_eq!(node.channels("app", "presence-").await.unwrap().len(), 1);
        assert!(node.channels("other-app", "").await.unwrap().is_empty());
    }
    b.subscription_removed("app", "news", LeavePolicy::Pending)
        .await
        .unwrap();
    b.subscription_removed("app", "news", LeavePolicy::Pending)
        .await
        .unwrap();
    assert_eq!(
        a.channel("app", "news").await.unwrap().subscriptions,
        0,
        "no negative counts"
    );
    assert_eq!(a.channels("app", "").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_reaped_and_its_members_announced_once() {
    let redis = Redis::start();
    let ttl = Duration::from_secs(2);
    let (a, sink_a) = backplane(&redis, "node-a", ttl);
    let (b, _) = backplane(&redis, "node-b", ttl);
    wait_up(&a).await;
    wait_up(&b).await;
    ferrocast_broker::Backplane::subscribe(&*a, "app", "presence-x")
        .await
        .unwrap();
    let snapshot = NodeSnapshot {
        connections: vec![("app".into(), 1)],
        subscriptions: vec![("app".into(), "presence-x".into(), 1)],
        presence: vec![(
            "app".into(),
            "presence-x".into(),
            "ghost".into(),
            "null".into(),
            vec!["9.1".into()],
        )],
        users: vec![],
    };
    b.resync(&snapshot).await.unwrap();
    a.presence_join(
        "app",
        "presence-x",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "alive",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(a.presence_members("app", "presence-x").await.unwrap().len(), 2);
    b.halt();
    eventually(
        "the reaper is told what vanished with the dead node",
        Duration::from_secs(8),
        || !sink_a.1.lock().unwrap().is_empty(),
    )
    .await;
    let members = a.presence_members("app", "presence-x").await.unwrap();
    assert_eq!(members, vec![("alive".into(), "null".into())]);
    assert_eq!(a.channel("app", "presence-x").await.unwrap().subscriptions, 0);
    assert!(
        a.connection_opened("app", 1).await.unwrap(),
        "the dead node's connection slot is free"
    );
    tokio::time::sleep(ttl).await;
    let dropped = sink_a.1.lock().unwrap().clone();
    assert_eq!(dropped.len(), 1, "exactly one reaper, told once: {dropped:?}");
    assert_eq!(
        dropped[0]
            .members
            .iter()
            .map(|(a, c, u, _)| (a.clone(), c.clone(), u.clone()))
            .collect::<Vec<_>>(),
        vec![("app".into(), "presence-x".into(), "ghost".into())]
    );
    assert_eq!(dropped[0].channels, vec![("app".into(), "presence-x".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vacancy_is_confirmed_once_unless_another_node_reoccupies_the_channel() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    assert!(a.subscription_added("app", "news").await.unwrap(), "0 -> 1 occupies");
    assert!(!b.subscription_added("app", "news").await.unwrap(), "1 -> 2 does not");
    assert_eq!(
        a.subscription_removed("app", "news", LeavePolicy::Pending)
            .await
            .unwrap(),
        None
    );
    let token = b
        .subscription_removed("app", "news", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    let (fake, real) = (ferrocast_broker::LeaveToken("node-x:1".into()), token);
    assert!(!b.confirm_leave("app", "news", None, &fake).await.unwrap());
    assert!(b.confirm_leave("app", "news", None, &real).await.unwrap());
    assert!(!b.confirm_leave("app", "news", None, &real).await.unwrap(), "only once");

    assert!(a.subscription_added("app", "news").await.unwrap());
    let token = a
        .subscription_removed("app", "news", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    assert!(
        !b.subscription_added("app", "news").await.unwrap(),
        "back within the delay on another node: no new occupancy"
    );
    assert!(
        !a.confirm_leave("app", "news", None, &token).await.unwrap(),
        "and no vacancy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departure_is_cancelled_by_a_rejoin_on_another_node() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    a.presence_join(
        "app",
        "presence-x",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    let token = a
        .presence_leave(
            "app",
            "presence-x",
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
    let rejoin = b
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "2.1",
                user_id: "u1",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(
            rejoin,
            PresenceJoin::Joined {
                added: true,
                returned: true,
                ..
            }
        ),
        "{rejoin:?}"
    );
    assert!(!a.confirm_leave("app", "presence-x", Some("u1"), &token).await.unwrap());
    let token = b
        .presence_leave(
            "app",
            "presence-x",
            &PresenceLeaveRequest {
                socket_id: "2.1",
                user_id: "u1",
                policy: LeavePolicy::Pending,
            },
        )
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    assert!(
        !a.confirm_leave("app", "presence-x", None, &token).await.unwrap(),
        "a departure is not a vacancy"
    );
    assert!(a.confirm_leave("app", "presence-x", Some("u1"), &token).await.unwrap());
    let later = a
        .presence_join(
            "app",
            "presence-x",
            &PresenceJoinRequest {
                socket_id: "1.2",
                user_id: "u1",
                user_info: "null",
                max_members: 0,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(
            later,
            PresenceJoin::Joined {
                added: true,
                returned: false,
                ..
            }
        ),
        "after a confirmed departure a join is new: {later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_rebuilds_state_after_redis_lost_it_and_reports_the_difference() {
    let mut redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    wait_up(&a).await;
    a.presence_join(
        "app",
        "presence-x",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "stays",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    a.presence_join(
        "app",
        "presence-x",
        &PresenceJoinRequest {
            socket_id: "1.2",
            user_id: "left-during-outage",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    let snapshot = NodeSnapshot {
        connections: vec![("app".into(), 2)],
        subscriptions: vec![("app".into(), "presence-x".into(), 1)],
        presence: vec![(
            "app".into(),
            "presence-x".into(),
            "stays".into(),
            "null".into(),
            vec!["1.1".into()],
        )],
        users: vec![],
    };
    // Same Redis: the member who left while the node could not tell Redis is removed.
    let outcome = a.resync(&snapshot).await.unwrap();
    assert!(outcome.added.is_empty(), "{outcome:?}");
    assert_eq!(
        outcome
            .removed
            .iter()
            .map(|(a, c, u, _)| (a.clone(), c.clone(), u.clone()))
            .collect::<Vec<_>>(),
        vec![("app".into(), "presence-x".into(), "left-during-outage".into())]
    );
    // A fresh Redis: everything is registered again, and nothing of it is reported as news
    // (every member would look added; the sockets' rosters and the webhooks predate the loss).
    redis.restart();
    let outcome = a.resync(&snapshot).await.unwrap();
    assert!(outcome.store_was_reset);
    assert!(outcome.added.is_empty(), "{outcome:?}");
    assert!(outcome.channels_occupied.is_empty(), "{outcome:?}");
    assert!(outcome.removed.is_empty(), "{outcome:?}");
    let members = a.presence_members("app", "presence-x").await.unwrap();
    assert_eq!(members, vec![("stays".into(), "null".into())]);
    assert_eq!(a.channel("app", "presence-x").await.unwrap().subscriptions, 1);
    assert!(a.connection_opened("app", 3).await.unwrap());
    assert!(
        !a.connection_opened("app", 3).await.unwrap(),
        "the two re-registered connections count"
    );
}

/// A node whose writes timed out (Redis stalled) cannot know which of them took effect: its
/// resync settles them. Channels the store counted but the node no longer holds are reported
/// vacated, channels the node holds that the store did not count occupied, and leaves that did
/// take effect come back (still standing) for the node to confirm after their delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_settles_writes_of_unknown_outcome() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    a.resync(&NodeSnapshot::default()).await.unwrap();
    // "dropped": counted, but its socket left and the decrement never reached Redis.
    assert!(a.subscription_added("app", "dropped").await.unwrap());
    // "shared": also held by B, so leaving it on A vacates nothing.
    a.subscription_added("app", "shared").await.unwrap();
    b.subscription_added("app", "shared").await.unwrap();
    // "late": the decrement ran (after the node gave up on it): its vacancy stands.
    a.subscription_added("app", "late").await.unwrap();
    let late = a
        .subscription_removed("app", "late", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    a.subscription_added("app", "presence-y").await.unwrap();
    let join = PresenceJoinRequest {
        socket_id: "1.1",
        user_id: "u",
        user_info: "null",
        max_members: 0,
    };
    a.presence_join("app", "presence-y", &join).await.unwrap();
    let leave = PresenceLeaveRequest {
        socket_id: "1.1",
        user_id: "u",
        policy: LeavePolicy::Pending,
    };
    let gone = a
        .presence_leave("app", "presence-y", &leave)
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    // What the node really holds: "presence-y" (still subscribed, not as a member) and "fresh",
    // whose increment never reached Redis.
    let snapshot = NodeSnapshot {
        connections: vec![("app".into(), 1)],
        subscriptions: vec![
            ("app".into(), "presence-y".into(), 1),
            ("app".into(), "fresh".into(), 1),
        ],
        presence: vec![],
        users: vec![],
    };
    let outcome = a.resync(&snapshot).await.unwrap();
    assert_eq!(outcome.channels_vacated, vec![("app".to_owned(), "dropped".to_owned())]);
    assert_eq!(outcome.channels_occupied, vec![("app".to_owned(), "fresh".to_owned())]);
    let mut leaves: Vec<_> = outcome
        .leaves
        .iter()
        .map(|l| (l.channel.clone(), l.user_id.clone(), l.token.0.clone()))
        .collect();
    leaves.sort();
    assert_eq!(
        leaves,
        vec![
            ("late".to_owned(), None, late.0.clone()),
            ("presence-y".to_owned(), Some("u".to_owned()), gone.0.clone()),
        ]
    );
    assert!(outcome.leaves.iter().all(|l| l.left_at_ms > 0));
    assert_eq!(a.channel("app", "dropped").await.unwrap().subscriptions, 0);
    assert_eq!(a.channel("app", "shared").await.unwrap().subscriptions, 1, "B's stays");
    assert_eq!(a.channel("app", "fresh").await.unwrap().subscriptions, 1);
    // Confirmed once, whoever confirms: a duplicate of the node's own queued leave finds nothing.
    assert!(a.confirm_leave("app", "late", None, &late).await.unwrap());
    assert!(!a.confirm_leave("app", "late", None, &late).await.unwrap());
    assert!(a.confirm_leave("app", "presence-y", Some("u"), &gone).await.unwrap());
    // Confirmed leaves no longer stand; a resync with nothing to settle reports nothing.
    let again = a.resync(&snapshot).await.unwrap();
    assert!(
        again.leaves.is_empty() && again.channels_vacated.is_empty() && again.channels_occupied.is_empty(),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaped_while_alive_re_announces_its_members_when_it_re_registers() {
    let redis = Redis::start();
    let ttl = Duration::from_secs(2);
    let (a, _) = backplane(&redis, "node-a", ttl);
    let (b, sink_b) = backplane(&redis, "node-b", ttl);
    wait_up(&a).await;
    wait_up(&b).await;
    ferrocast_broker::Backplane::subscribe(&*b, "app", "presence-x")
        .await
        .unwrap();
    let snapshot = NodeSnapshot {
        connections: vec![],
        subscriptions: vec![("app".into(), "presence-x".into(), 1)],
        presence: vec![(
            "app".into(),
            "presence-x".into(),
            "stalled".into(),
            "null".into(),
            vec!["9.2".into()],
        )],
        users: vec![],
    };
    let first = a.resync(&snapshot).await.unwrap();
    assert_eq!(first.added.len(), 1, "a new member: {first:?}");
    assert!(!first.store_was_reset);
    a.halt(); // stalls: no heartbeat, but its process (and sockets) live on
    eventually("peer reaps the stalled node", Duration::from_secs(8), || {
        !sink_b.1.lock().unwrap().is_empty()
    })
    .await;
    let outcome = a.resync(&snapshot).await.unwrap();
    assert_eq!(
        outcome
            .added
            .iter()
            .map(|(a, c, u, i, _)| (a.clone(), c.clone(), u.clone(), i.clone()))
            .collect::<Vec<_>>(),
        vec![("app".into(), "presence-x".into(), "stalled".into(), "null".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_without_webhooks_leave_no_pending_leaves_behind() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    a.subscription_added("app", "presence-x").await.unwrap();
    a.presence_join(
        "app",
        "presence-x",
        &PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "null",
            max_members: 0,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(
            a.presence_leave(
                "app",
                "presence-x",
                &PresenceLeaveRequest {
                    socket_id: "1.1",
                    user_id: "u1",
                    policy: LeavePolicy::Immediate
                }
            )
            .await
            .unwrap(),
            PresenceLeave::Left { token: None, .. }
        ),
        "the member left, nothing kept pending"
    );
    assert_eq!(
        a.subscription_removed("app", "presence-x", LeavePolicy::Immediate)
            .await
            .unwrap(),
        None
    );
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let vac: Vec<String> = redis::cmd("KEYS")
        .arg("{t:*}:vac:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let gone: Vec<String> = redis::cmd("KEYS")
        .arg("{t:*}:gone:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let owed: Vec<String> = redis::cmd("KEYS")
        .arg("{t:*}:node:*:leaves")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        vac.is_empty() && gone.is_empty() && owed.is_empty(),
        "{vac:?} {gone:?} {owed:?}"
    );
    assert!(
        a.subscription_added("app", "presence-x").await.unwrap(),
        "the next subscriber occupies the channel again"
    );
}

/// One holder per channel across nodes, and a claim whose holder stopped asking expires, so
/// a dead publisher frees the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_update_claim_has_one_holder_across_nodes_and_expires() {
    let redis = Redis::start();
    let (a, _) = backplane(&redis, "node-a", TTL);
    let (b, _) = backplane(&redis, "node-b", TTL);
    wait_up(&a).await;
    wait_up(&b).await;
    let hold = Duration::from_millis(300);
    a.subscription_added("app", "news").await.unwrap();
    b.subscription_added("app", "news").await.unwrap();
    assert!(a.count_changed("app", "news", hold).await.unwrap(), "node-a claims");
    assert!(
        !b.count_changed("app", "news", hold).await.unwrap(),
        "node-b only records"
    );
    assert_eq!(
        a.count_update_due("app", "news", hold).await.unwrap(),
        Some(2),
        "cluster-wide count"
    );
    assert!(!b.count_changed("app", "news", hold).await.unwrap());
    // node-a stops asking (as if it died): the claim expires and the next change claims.
    // A recorded change keeps the expiry (INCR), so the claim lapses `hold` after the last ask.
    tokio::time::sleep(hold + Duration::from_millis(200)).await;
    assert!(
        b.count_changed("app", "news", hold).await.unwrap(),
        "expired: node-b claims"
    );
}

/// A node killed inside the leave delay: its reaper inherits the leaves that still stand (not
/// the one a return cancelled), confirms them once, and no record of them is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_pending_leaves_go_to_its_reaper() {
    let redis = Redis::start();
    let ttl = Duration::from_secs(2);
    let (a, sink_a) = backplane(&redis, "node-a", ttl);
    let (b, _) = backplane(&redis, "node-b", ttl);
    wait_up(&a).await;
    wait_up(&b).await;
    b.resync(&NodeSnapshot::default()).await.unwrap();
    let join = |socket_id, user_id| PresenceJoinRequest {
        socket_id,
        user_id,
        user_info: "null",
        max_members: 0,
    };
    let leave = |socket_id, user_id| PresenceLeaveRequest {
        socket_id,
        user_id,
        policy: LeavePolicy::Pending,
    };
    // presence-x: u1 leaves it empty on B. presence-y: u2 leaves on B and comes back on A.
    b.subscription_added("app", "presence-x").await.unwrap();
    b.presence_join("app", "presence-x", &join("9.1", "u1")).await.unwrap();
    let departure = b
        .presence_leave("app", "presence-x", &leave("9.1", "u1"))
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    let vacancy = b
        .subscription_removed("app", "presence-x", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    b.presence_join("app", "presence-y", &join("9.2", "u2")).await.unwrap();
    b.presence_leave("app", "presence-y", &leave("9.2", "u2"))
        .await
        .unwrap()
        .into_token()
        .expect("last socket");
    a.presence_join("app", "presence-y", &join("1.1", "u2")).await.unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    b.halt();
    eventually("the reaper is told", Duration::from_secs(8), || {
        !sink_a.1.lock().unwrap().is_empty()
    })
    .await;
    let dropped = sink_a.1.lock().unwrap().clone();
    assert_eq!(dropped.len(), 1, "one reaper: {dropped:?}");
    let mut leaves = dropped[0].leaves.clone();
    leaves.sort_by_key(|l| l.user_id.is_none());
    assert_eq!(leaves.len(), 2, "the cancelled departure is not inherited: {leaves:?}");
    assert_eq!(
        (
            leaves[0].channel.as_str(),
            leaves[0].user_id.as_deref(),
            &leaves[0].token
        ),
        ("presence-x", Some("u1"), &departure)
    );
    assert_eq!(
        (
            leaves[1].channel.as_str(),
            leaves[1].user_id.as_deref(),
            &leaves[1].token
        ),
        ("presence-x", None, &vacancy)
    );
    for l in &leaves {
        assert!(
            l.left_at_ms.abs_diff(before) < 5_000,
            "stamped when it happened: {} vs {before}",
            l.left_at_ms
        );
    }
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    // In the channel's bucket (`{t:0}` on one Redis, one of 16 on the one-node cluster).
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("{t:*}:node:node-a:leaves")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut owed: Vec<String> = Vec::new();
    for record in records {
        let entries: Vec<String> = redis::cmd("ZRANGE")
            .arg(record)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        owed.extend(entries);
    }
    assert_eq!(
        owed.len(),
        2,
        "the reaper owes them now (and its own reaper would inherit them)"
    );
    assert!(a
        .confirm_leave("app", "presence-x", Some("u1"), &departure)
        .await
        .unwrap());
    assert!(a.confirm_leave("app", "presence-x", None, &vacancy).await.unwrap());
    assert!(
        !b.confirm_leave("app", "presence-x", None, &vacancy).await.unwrap(),
        "once, whoever asks"
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("{t:*}:node:*:leaves")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "nothing owed is left behind: {left:?}");
}

/// A draining node that could not settle its leaves in time stays registered, without a
/// heartbeat, so a peer reaps it and inherits them; one that settled them leaves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_deregisters_with_unsettled_leaves_is_reaped_for_them() {
    let redis = Redis::start();
    let ttl = Duration::from_secs(2);
    let (a, sink_a) = backplane(&redis, "node-a", ttl);
    let (b, _) = backplane(&redis, "node-b", ttl);
    wait_up(&a).await;
    wait_up(&b).await;
    b.resync(&NodeSnapshot::default()).await.unwrap();
    b.subscription_added("app", "chan").await.unwrap();
    let vacancy = b
        .subscription_removed("app", "chan", LeavePolicy::Pending)
        .await
        .unwrap()
        .expect("emptied");
    b.halt();
    b.deregister().await.unwrap();
    eventually("the reaper inherits the leave", Duration::from_secs(8), || {
        sink_a.1.lock().unwrap().iter().any(|d| !d.leaves.is_empty())
    })
    .await;
    let dropped = sink_a.1.lock().unwrap().clone();
    let leaves: Vec<_> = dropped.iter().flat_map(|d| d.leaves.clone()).collect();
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].token, vacancy);
    assert!(a.confirm_leave("app", "chan", None, &vacancy).await.unwrap());

    let (c, _) = backplane(&redis, "node-c", ttl);
    wait_up(&c).await;
    c.resync(&NodeSnapshot::default()).await.unwrap();
    c.deregister().await.unwrap();
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let nodes: Vec<String> = redis::cmd("SMEMBERS")
        .arg("{t}:nodes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!nodes.contains(&"node-c".to_owned()), "nothing owed: gone at once");
}
