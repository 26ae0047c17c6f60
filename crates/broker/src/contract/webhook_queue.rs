//! The contract of [`WebhookQueue`]: what the in-process queue and the Redis one both do. Each
//! check takes the queue and an app id of its own, so checks can share one store. `takeover`
//! needs a second node on the same store, so it takes two queues (the same object twice is
//! fine where there is no real second node: then it is skipped by the caller).

use std::time::Duration;

use crate::webhook_queue::{
    Claim, ClaimRequest, DeadLetterRequest, Enqueued, LaneId, NewJob, QueuedJob, ReplayRequest, WebhookQueue,
};

const LEASE: Duration = Duration::from_secs(30);

fn lane(app: &str, n: u16) -> LaneId {
    LaneId {
        app_id: app.to_owned(),
        endpoint: "ep1".to_owned(),
        lane: n,
    }
}

async fn put(q: &dyn WebhookQueue, lane: &LaneId, json: &str, created_ms: u64, cap: usize) -> Enqueued {
    q.enqueue(NewJob {
        lane,
        event_json: json,
        created_ms,
        cap,
    })
    .await
    .unwrap()
}

async fn claim(q: &dyn WebhookQueue, lane: &LaneId, node: &str, max: usize) -> Claim {
    q.claim(ClaimRequest {
        lane,
        node,
        max,
        lease: LEASE,
    })
    .await
    .unwrap()
}

fn owned(claim: Claim) -> Vec<QueuedJob> {
    match claim {
        Claim::Owned { jobs, .. } => jobs,
        Claim::NotOwner => panic!("lease not held"),
    }
}

fn events(jobs: &[QueuedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.event_json.as_str()).collect()
}

/// Jobs come back in order, the same (with the same keys) until acknowledged; a full lane
/// refuses; lanes are independent; stats count what is not acknowledged.
pub async fn jobs_are_claimed_in_order_until_acknowledged(q: &dyn WebhookQueue, app: &str) {
    let l0 = lane(app, 0);
    let l1 = lane(app, 1);
    assert_eq!(q.stats(app).await.unwrap().depth, 0);
    for (i, json) in ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"].into_iter().enumerate() {
        assert_eq!(put(q, &l0, json, 1000 + i as u64, 3).await, Enqueued::Queued);
    }
    assert_eq!(
        put(q, &l0, "{\"n\":4}", 2000, 3).await,
        Enqueued::Full,
        "a full lane refuses"
    );
    assert_eq!(
        put(q, &l1, "{\"m\":1}", 500, 3).await,
        Enqueued::Queued,
        "lanes have their own cap"
    );
    let stats = q.stats(app).await.unwrap();
    assert_eq!((stats.depth, stats.oldest_created_ms), (4, Some(500)));

    let first = owned(claim(q, &l0, "node-a", 2).await);
    assert_eq!(events(&first), ["{\"n\":1}", "{\"n\":2}"]);
    assert_eq!(first[0].created_ms, 1000);
    assert_eq!(first[0].retry_from_ms, 1000);
    assert_ne!(first[0].key, first[1].key, "one key per job");
    assert!(first[0].key.starts_with(&format!("{app}:ep1:0:")), "{}", first[0].key);
    let again = owned(claim(q, &l0, "node-a", 2).await);
    assert_eq!(
        again, first,
        "unacknowledged jobs come back first, with the same ids and keys"
    );
    q.ack(&l0, &[first[0].id.clone()]).await.unwrap();
    let next = owned(claim(q, &l0, "node-a", 5).await);
    assert_eq!(events(&next), ["{\"n\":2}", "{\"n\":3}"]);
    q.ack(&l0, &next.iter().map(|j| j.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(owned(claim(q, &l0, "node-a", 5).await).is_empty());
    assert_eq!(q.stats(app).await.unwrap().depth, 1, "lane 1 still holds its job");
    let other = owned(claim(q, &l1, "node-a", 5).await);
    assert!(
        other[0].key.starts_with(&format!("{app}:ep1:1:")),
        "keys name their lane: entry ids repeat across lanes"
    );
    q.ack(&l1, &[other[0].id.clone()]).await.unwrap();
    assert_eq!(q.stats(app).await.unwrap(), Default::default());
}

/// Dead letters keep the job and its key, are capped (oldest first out), and replay puts them
/// back into their lane with the same key and a new retry window.
pub async fn dead_letters_are_capped_listed_and_replayed(q: &dyn WebhookQueue, app: &str) {
    let l2 = lane(app, 2);
    for n in 1..=3 {
        put(q, &l2, &format!("{{\"d\":{n}}}"), 100 + n, 10).await;
    }
    let jobs = owned(claim(q, &l2, "node-a", 3).await);
    let keys: Vec<String> = jobs.iter().map(|j| j.key.clone()).collect();
    q.dead_letter(DeadLetterRequest {
        lane: &l2,
        jobs: &jobs,
        reason: "expired",
        failed_ms: 9000,
        cap: 2,
    })
    .await
    .unwrap();
    assert!(owned(claim(q, &l2, "node-a", 3).await).is_empty(), "out of the lane");
    let dead = q.dead_letters(app, 10).await.unwrap();
    assert_eq!(dead.len(), 2, "capped, oldest dropped");
    assert_eq!(dead[0].event_json, "{\"d\":2}");
    assert_eq!(dead[0].key, keys[1]);
    assert_eq!((dead[0].lane, dead[0].endpoint.as_str()), (2, "ep1"));
    assert_eq!((dead[0].created_ms, dead[0].failed_ms), (102, 9000));
    assert_eq!(dead[0].reason, "expired");
    let stats = q.stats(app).await.unwrap();
    assert_eq!((stats.depth, stats.dead_letters), (0, 2));

    // Replay one by id, into a lane with room; then the rest into a full lane: refused.
    let done = q
        .replay(ReplayRequest {
            app_id: app,
            ids: &[dead[1].id.clone()],
            max: 100,
            cap: 1,
            now_ms: 50_000,
        })
        .await
        .unwrap();
    assert_eq!((done.replayed, done.refused), (1, 0));
    let done = q
        .replay(ReplayRequest {
            app_id: app,
            ids: &[],
            max: 100,
            cap: 1,
            now_ms: 50_000,
        })
        .await
        .unwrap();
    assert_eq!((done.replayed, done.refused), (0, 1), "the lane is full");
    let back = owned(claim(q, &l2, "node-a", 3).await);
    assert_eq!(events(&back), ["{\"d\":3}"]);
    assert_eq!(back[0].key, keys[2], "replayed with its original key");
    assert_eq!((back[0].created_ms, back[0].retry_from_ms), (103, 50_000));
    q.ack(&l2, &[back[0].id.clone()]).await.unwrap();
    let done = q
        .replay(ReplayRequest {
            app_id: app,
            ids: &[],
            max: 100,
            cap: 1,
            now_ms: 60_000,
        })
        .await
        .unwrap();
    assert_eq!((done.replayed, done.refused), (1, 0));
    assert!(q.dead_letters(app, 10).await.unwrap().is_empty());
    let last = owned(claim(q, &l2, "node-a", 3).await);
    assert_eq!(events(&last), ["{\"d\":2}"]);
    q.ack(&l2, &[last[0].id.clone()]).await.unwrap();
}

/// Every check that needs one node.
pub async fn webhook_queue_all(q: &dyn WebhookQueue, app: &str) {
    jobs_are_claimed_in_order_until_acknowledged(q, &format!("{app}-order")).await;
    dead_letters_are_capped_listed_and_replayed(q, &format!("{app}-dead")).await;
}

/// Two nodes on one store: one lease holder per lane; a released lease passes to the other
/// node, which gets the first holder's unacknowledged jobs first, in order, with their keys.
pub async fn a_lane_has_one_holder_and_is_taken_over_in_order(a: &dyn WebhookQueue, b: &dyn WebhookQueue, app: &str) {
    let l3 = lane(app, 3);
    for n in 1..=4 {
        put(a, &l3, &format!("{{\"t\":{n}}}"), n, 10).await;
    }
    let held = owned(claim(a, &l3, "node-a", 2).await);
    assert_eq!(events(&held), ["{\"t\":1}", "{\"t\":2}"]);
    assert_eq!(claim(b, &l3, "node-b", 2).await, Claim::NotOwner);
    assert!(a.renew(&l3, "node-a", LEASE).await.unwrap());
    assert!(!b.renew(&l3, "node-b", LEASE).await.unwrap());
    a.release(&l3, "node-a").await.unwrap();
    // Same batch size on both nodes (one config): the same batch.
    let Claim::Owned { jobs, took_over } = claim(b, &l3, "node-b", 2).await else {
        panic!("node-b did not get the released lane");
    };
    assert!(took_over);
    assert_eq!(jobs, held, "the taken-over batch first, unchanged");
    b.ack(&l3, &jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    let rest = owned(claim(b, &l3, "node-b", 10).await);
    assert_eq!(events(&rest), ["{\"t\":3}", "{\"t\":4}"]);
    assert!(!a.renew(&l3, "node-a", LEASE).await.unwrap(), "node-a lost the lease");
    assert_eq!(claim(a, &l3, "node-a", 2).await, Claim::NotOwner);
    b.ack(&l3, &rest.iter().map(|j| j.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    b.release(&l3, "node-b").await.unwrap();
}
