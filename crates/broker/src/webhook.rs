//! Where a node reports webhook events. The node decides *what* happened cluster-wide (with
//! the cluster state's help, so each event is reported by exactly one node); the server's
//! dispatcher decides where it goes and delivers it, off the socket path.

use ferrocast_protocol::webhook::WebhookEvent;

/// Receives the webhook events of every app. Implementations queue and return at once.
pub trait WebhookSink: Send + Sync {
    /// Whether `app_id` has any webhook configured: lets the node skip the work of deciding
    /// events nobody would receive.
    fn enabled(&self, app_id: &str) -> bool;
    /// Queue `event` for delivery. `created_ms` is when it happened (Unix ms), the body's
    /// `time_ms`.
    fn emit(&self, app_id: &str, event: WebhookEvent, created_ms: u64);
    /// An event that was due but could not be decided (the cluster state was unreachable):
    /// counted and logged, never silently dropped.
    fn lost(&self, _app_id: &str, _event: &'static str, _reason: &'static str) {}
}

/// Sends nothing: for nodes and tests without webhooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWebhooks;

impl WebhookSink for NoWebhooks {
    fn enabled(&self, _app_id: &str) -> bool {
        false
    }

    fn emit(&self, _app_id: &str, _event: WebhookEvent, _created_ms: u64) {}
}

pub use crate::clock::unix_millis;
