//! Webhook events of the node: which happened, decided once cluster-wide.
//!
//! `channel_occupied` and `member_added` are reported by the node whose registration made them
//! true. `channel_vacated` and `member_removed` wait the leave delay first (Pusher's ≤ 3 s): the
//! cluster state keeps the leave pending, a return within the delay (a new subscriber, the user
//! rejoining) cancels it, and then neither the leave nor the return is reported.
//!
//! Pending leaves wait in a few FIFO queues chosen by channel, each confirmed in turn by one
//! task once its delay is over: as every leave waits the same delay, the leaves of a channel
//! are reported in the order they happened. The queues count what they hold, so a draining
//! node finishes them before it exits.
//!
//! The cluster state also records which node owes each leave's confirmation; a node killed
//! inside the delay has its standing leaves handed to the node that reaps it
//! ([`Dropped::leaves`]), which queues them here with their original due time, so the reports
//! still go out (once: the token decides, whichever node confirms).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrocast_protocol::webhook::WebhookEvent;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::warn;

use super::Node;
use crate::cluster::{ClusterState, Dropped, InheritedLeave, LeaveToken};
use crate::webhook::{unix_millis, WebhookSink};

/// Queues of pending leaves: enough that a slow confirmation of one channel delays few others.
const LEAVE_QUEUES: usize = 16;

/// A leave to confirm after the delay: the channel emptied, and/or a member departed.
pub(super) struct PendingLeave {
    pub app_id: String,
    pub channel: String,
    pub vacancy: Option<LeaveToken>,
    pub departure: Option<(String, LeaveToken)>,
}

/// A pending leave in its queue: when it is due, and when it happened (Unix ms).
struct Queued {
    due: Instant,
    created_ms: u64,
    leave: PendingLeave,
}

/// The pending leaves of the node, in FIFO queues by channel, each drained by one task
/// (started with the first leave, so the node can be built outside a runtime).
pub(super) struct LeaveQueues {
    queues: Vec<OnceLock<mpsc::UnboundedSender<Queued>>>,
    pending: Arc<Pending>,
}

/// Leaves queued or being confirmed, and who waits for none to be left.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    none_left: Notify,
}

impl Pending {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none_left.notify_waiters();
        }
    }
}

impl Default for LeaveQueues {
    fn default() -> Self {
        Self {
            queues: (0..LEAVE_QUEUES).map(|_| OnceLock::new()).collect(),
            pending: Arc::default(),
        }
    }
}

impl LeaveQueues {
    fn push(&self, queued: Queued, cluster: &Arc<dyn ClusterState>, webhooks: &Arc<dyn WebhookSink>) {
        let queue = self.queues[crate::shard::shard_of(&queued.leave.channel, LEAVE_QUEUES)].get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(confirm_in_turn(
                rx,
                cluster.clone(),
                webhooks.clone(),
                self.pending.clone(),
            ));
            tx
        });
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        if queue.send(queued).is_err() {
            self.pending.done();
        }
    }

    /// Resolves once no leave is queued or being confirmed.
    async fn settled(&self) {
        loop {
            let notified = self.pending.none_left.notified();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One queue's task: wait for each leave's delay, in order, then confirm and report it.
async fn confirm_in_turn(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    cluster: Arc<dyn ClusterState>,
    webhooks: Arc<dyn WebhookSink>,
    pending: Arc<Pending>,
) {
    while let Some(queued) = rx.recv().await {
        tokio::time::sleep_until(queued.due).await;
        confirm_and_report(&*cluster, &*webhooks, queued.leave, queued.created_ms).await;
        pending.done();
    }
}

impl Node {
    /// Report an event now, if the app has webhooks.
    pub(super) fn report(&self, app_id: &str, event: WebhookEvent) {
        if self.options.webhooks.enabled(app_id) {
            self.options.webhooks.emit(app_id, event, unix_millis());
        }
    }

    /// Confirm `leave` after the leave delay and report what still stands (member first, then
    /// the channel).
    pub(super) fn schedule_leave(&self, leave: PendingLeave) {
        if leave.vacancy.is_none() && leave.departure.is_none() {
            return;
        }
        if !self.options.webhooks.enabled(&leave.app_id) {
            return;
        }
        let queued = Queued {
            due: Instant::now() + self.options.leave_delay,
            created_ms: unix_millis(),
            leave,
        };
        self.leaves.push(queued, &self.cluster, &self.options.webhooks);
    }

    /// Discard a pending vacancy caused by rolling back a registration whose occupancy was
    /// never reported: it must not cancel the next subscriber's `channel_occupied`.
    pub(super) async fn discard_vacancy(&self, app_id: &str, channel: &str, token: &LeaveToken) {
        if let Err(e) = self.cluster.confirm_leave(app_id, channel, None, token).await {
            warn!(error = %e, channel, "could not discard a rolled-back vacancy");
        }
    }

    /// Wait until every pending leave was confirmed (and reported) or cancelled: a draining
    /// node calls it after its connections closed, while it is still in the cluster.
    pub async fn settle_leaves(&self) {
        self.leaves.settled().await;
    }
}

async fn confirm_and_report(
    cluster: &dyn ClusterState,
    webhooks: &dyn WebhookSink,
    leave: PendingLeave,
    created_ms: u64,
) {
    let PendingLeave {
        app_id,
        channel,
        vacancy,
        departure,
    } = leave;
    if let Some((user_id, token)) = departure {
        match confirm_with_retry(cluster, &app_id, &channel, Some(&user_id), &token).await {
            Ok(true) => webhooks.emit(
                &app_id,
                WebhookEvent::MemberRemoved {
                    channel: channel.clone(),
                    user_id,
                },
                created_ms,
            ),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, channel, user_id, "member_removed webhook lost: cluster state unreachable");
                webhooks.lost(&app_id, "member_removed", "cluster_state_unavailable");
            }
        }
    }
    if let Some(token) = vacancy {
        match confirm_with_retry(cluster, &app_id, &channel, None, &token).await {
            Ok(true) => webhooks.emit(&app_id, WebhookEvent::ChannelVacated { channel }, created_ms),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, channel, "channel_vacated webhook lost: cluster state unreachable");
                webhooks.lost(&app_id, "channel_vacated", "cluster_state_unavailable");
            }
        }
    }
}

/// How long a confirmation is retried while the cluster state is unreachable: a Redis outage of
/// a few seconds must not lose the report, and the pending leave itself lives 60 s in Redis
/// (`LEAVE_TTL_MS` in `common.lua`), so retrying longer could only find it expired.
const CONFIRM_RETRY_FOR: Duration = Duration::from_secs(45);

/// [`ClusterState::confirm_leave`], retried with backoff (200 ms doubling to 2 s) for up to
/// [`CONFIRM_RETRY_FOR`]. Later leaves of the same queue wait meanwhile, which keeps them in order.
async fn confirm_with_retry(
    cluster: &dyn ClusterState,
    app_id: &str,
    channel: &str,
    user_id: Option<&str>,
    token: &LeaveToken,
) -> Result<bool, crate::error::BackplaneError> {
    let give_up = Instant::now() + CONFIRM_RETRY_FOR;
    let mut delay = Duration::from_millis(200);
    loop {
        match cluster.confirm_leave(app_id, channel, user_id, token).await {
            Ok(confirmed) => return Ok(confirmed),
            Err(e) if Instant::now() + delay > give_up => return Err(e),
            Err(e) => {
                warn!(error = %e, channel, "confirming a leave failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Report what vanished with a dead or departed node's registrations, at once: the delay is
/// long past (reaping waits for the heartbeat to expire).
pub(super) fn report_dropped(webhooks: &Arc<dyn WebhookSink>, dropped: &Dropped) {
    let now = unix_millis();
    for (app_id, channel, user_id, _) in &dropped.members {
        if webhooks.enabled(app_id) {
            let event = WebhookEvent::MemberRemoved {
                channel: channel.clone(),
                user_id: user_id.clone(),
            };
            webhooks.emit(app_id, event, now);
        }
    }
    for (app_id, channel) in &dropped.channels {
        if webhooks.enabled(app_id) {
            webhooks.emit(
                app_id,
                WebhookEvent::ChannelVacated {
                    channel: channel.clone(),
                },
                now,
            );
        }
    }
}

/// Queue the leaves a dead node left pending, each due `delay` after it happened (at once if
/// that is past), through the same confirmation as the node's own. A channel's departures go
/// before its vacancy, as the node that left would have reported them.
pub(super) fn inherit_leaves(
    queues: &LeaveQueues,
    cluster: &Arc<dyn ClusterState>,
    webhooks: &Arc<dyn WebhookSink>,
    delay: Duration,
    leaves: &[InheritedLeave],
) {
    let mut leaves: Vec<&InheritedLeave> = leaves.iter().filter(|l| webhooks.enabled(&l.app_id)).collect();
    leaves.sort_by(|x, y| {
        (&x.app_id, &x.channel, x.user_id.is_none(), x.left_at_ms).cmp(&(
            &y.app_id,
            &y.channel,
            y.user_id.is_none(),
            y.left_at_ms,
        ))
    });
    let (now, now_ms) = (Instant::now(), unix_millis());
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    for leave in leaves {
        let wait_ms = leave.left_at_ms.saturating_add(delay_ms).saturating_sub(now_ms);
        let pending = PendingLeave {
            app_id: leave.app_id.clone(),
            channel: leave.channel.clone(),
            vacancy: leave.user_id.is_none().then(|| leave.token.clone()),
            departure: leave.user_id.clone().map(|u| (u, leave.token.clone())),
        };
        let queued = Queued {
            due: now + Duration::from_millis(wait_ms.min(delay_ms)),
            created_ms: leave.left_at_ms,
            leave: pending,
        };
        queues.push(queued, cluster, webhooks);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::cluster::{ChannelOccupancy, LeavePolicy, PresenceJoinRequest, PresenceLeaveRequest, PresenceRoster};
    use crate::memory::MemoryClusterState;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(WebhookEvent, u64)>>);

    impl WebhookSink for Recorder {
        fn enabled(&self, app_id: &str) -> bool {
            app_id == "app"
        }

        fn emit(&self, _app_id: &str, event: WebhookEvent, created_ms: u64) {
            self.0.lock().unwrap().push((event, created_ms));
        }
    }

    fn inherited(channel: &str, user_id: Option<&str>, token: LeaveToken, left_at_ms: u64) -> InheritedLeave {
        InheritedLeave {
            app_id: "app".into(),
            channel: channel.into(),
            user_id: user_id.map(str::to_owned),
            token,
            left_at_ms,
        }
    }

    /// Leaves inherited from a dead node wait out what is left of their delay, are confirmed
    /// through the usual path (member first, then the channel, stamped when they happened), and
    /// one cancelled by a return is not reported.
    #[tokio::test(start_paused = true)]
    async fn inherited_leaves_are_confirmed_when_their_delay_ends() {
        let state = Arc::new(MemoryClusterState::new());
        state.subscription_added("app", "presence-x").await.unwrap();
        let join = PresenceJoinRequest {
            socket_id: "1.1",
            user_id: "u1",
            user_info: "{}",
            max_members: 0,
        };
        state.presence_join("app", "presence-x", &join).await.unwrap();
        let leave = PresenceLeaveRequest {
            socket_id: "1.1",
            user_id: "u1",
            policy: LeavePolicy::Pending,
        };
        let departure = state
            .presence_leave("app", "presence-x", &leave)
            .await
            .unwrap()
            .into_token()
            .unwrap();
        let vacancy = state
            .subscription_removed("app", "presence-x", LeavePolicy::Pending)
            .await
            .unwrap()
            .unwrap();
        state.subscription_added("app", "back").await.unwrap();
        let cancelled = state
            .subscription_removed("app", "back", LeavePolicy::Pending)
            .await
            .unwrap()
            .unwrap();
        assert!(!state.subscription_added("app", "back").await.unwrap());

        let left_at = unix_millis().saturating_sub(1000);
        let leaves = [
            inherited("presence-x", None, vacancy, left_at),
            inherited("back", None, cancelled, left_at.saturating_sub(10_000)),
            inherited("presence-x", Some("u1"), departure, left_at),
        ];
        let recorder = Arc::new(Recorder::default());
        let webhooks: Arc<dyn WebhookSink> = recorder.clone();
        let cluster: Arc<dyn ClusterState> = state;
        let queues = LeaveQueues::default();
        inherit_leaves(&queues, &cluster, &webhooks, Duration::from_secs(3), &leaves);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(recorder.0.lock().unwrap().is_empty(), "the delay is not over yet");
        queues.settled().await;
        let events = std::mem::take(&mut *recorder.0.lock().unwrap());
        assert_eq!(
            events,
            vec![
                (
                    WebhookEvent::MemberRemoved {
                        channel: "presence-x".into(),
                        user_id: "u1".into()
                    },
                    left_at
                ),
                (
                    WebhookEvent::ChannelVacated {
                        channel: "presence-x".into()
                    },
                    left_at
                ),
            ]
        );
    }
}
