//! Webhook events of the node: which happened, decided once cluster-wide.
//!
//! `channel_occupied` and `member_added` are reported by the node whose registration made them
//! true. `channel_vacated` and `member_removed` wait the leave delay first (Pusher's ≤ 3 s): the
//! cluster state keeps the leave pending, a return within the delay (a new subscriber, the user
//! rejoining) cancels it, and then neither the leave nor the return is reported. Every delayed
//! confirmation is tracked, so a draining node finishes them before it exits.

use std::sync::Arc;

use ferrocast_protocol::webhook::WebhookEvent;
use tracing::warn;

use super::Node;
use crate::backplane::{ClusterState, Dropped, LeaveToken};
use crate::webhook::{unix_millis, WebhookSink};

/// A leave to confirm after the delay: the channel emptied, and/or a member departed.
pub(super) struct PendingLeave {
    pub app_id: String,
    pub channel: String,
    pub vacancy: Option<LeaveToken>,
    pub departure: Option<(String, LeaveToken)>,
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
        let cluster = self.cluster.clone();
        let webhooks = self.options.webhooks.clone();
        let delay = self.options.leave_delay;
        let created_ms = unix_millis();
        self.leaves.spawn(async move {
            tokio::time::sleep(delay).await;
            confirm_and_report(&*cluster, &*webhooks, leave, created_ms).await;
        });
    }

    /// Discard a pending vacancy caused by rolling back a registration whose occupancy was
    /// never reported: it must not cancel the next subscriber's `channel_occupied`.
    pub(super) async fn discard_vacancy(&self, app_id: &str, channel: &str, token: &LeaveToken) {
        if let Err(e) = self.cluster.confirm_leave(app_id, channel, None, token).await {
            warn!(error = %e, channel, "could not discard a rolled-back vacancy");
        }
    }

    /// Wait for every delayed leave confirmation to finish (draining). New leaves after this
    /// are still confirmed and awaited by a later call.
    pub async fn settle_leaves(&self) {
        self.leaves.close();
        self.leaves.wait().await;
        self.leaves.reopen();
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
        match cluster.confirm_leave(&app_id, &channel, Some(&user_id), &token).await {
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
        match cluster.confirm_leave(&app_id, &channel, None, &token).await {
            Ok(true) => webhooks.emit(&app_id, WebhookEvent::ChannelVacated { channel }, created_ms),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, channel, "channel_vacated webhook lost: cluster state unreachable");
                webhooks.lost(&app_id, "channel_vacated", "cluster_state_unavailable");
            }
        }
    }
}

/// Report what vanished with a dead or departed node's registrations, at once: the delay is
/// long past (reaping waits for the heartbeat to expire).
pub(super) fn report_dropped(webhooks: &Arc<dyn WebhookSink>, dropped: &Dropped) {
    let now = unix_millis();
    for (app_id, channel, user_id) in &dropped.members {
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
