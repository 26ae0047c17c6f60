//! What one request of a lane is made of: its body, its idempotency key, and the delays
//! between its attempts.

use std::time::Duration;

use ferrocast_broker::QueuedJob;

/// The header carrying the idempotency key. Receivers drop a request whose key they have
/// already processed: every duplicate this server can send carries the same key.
pub(crate) const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Retries back off up to this.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The body of a request carrying `jobs` (already JSON): `time_ms` is when the first was
/// created, as `ferrocast_protocol::webhook::body` writes it.
pub(crate) fn body(jobs: &[QueuedJob]) -> String {
    let time_ms = jobs.iter().map(|j| j.created_ms).min().unwrap_or(0);
    let mut body = format!("{{\"time_ms\":{time_ms},\"events\":[");
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&job.event_json);
    }
    body.push_str("]}");
    body
}

/// The idempotency key of a request: the key of its job, or for a batch the first job's key
/// and the last job's id. A batch is the same set of jobs across retries and takeovers (the
/// queue returns a holder's unacknowledged jobs first, and every node has the same
/// `max_batch_size`), so its key is stable too.
pub(crate) fn idempotency_key(jobs: &[QueuedJob]) -> String {
    match jobs {
        [] => String::new(),
        [one] => one.key.clone(),
        [first, .., last] => format!("{}..{}", first.key, last.id),
    }
}

/// The next delay after `previous`: decorrelated jitter (uniform between `base` and three times
/// the previous delay, at most [`MAX_BACKOFF`]), so the retries of many lanes after one outage
/// spread out instead of arriving together.
pub(crate) fn next_backoff(base: Duration, previous: Duration) -> Duration {
    let low = base.as_millis() as u64;
    let high = (previous.as_millis() as u64).saturating_mul(3).max(low + 1);
    let pick = rand::random_range(low..high);
    Duration::from_millis(pick).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, json: &str, ms: u64) -> QueuedJob {
        QueuedJob {
            id: id.into(),
            key: format!("app:ep:0:{id}"),
            event_json: json.into(),
            created_ms: ms,
            retry_from_ms: ms,
        }
    }

    #[test]
    fn the_body_lists_the_jobs_with_the_first_creation_time() {
        let jobs = [job("1-0", "{\"name\":\"a\"}", 7), job("1-1", "{\"name\":\"b\"}", 9)];
        let body: serde_json::Value = serde_json::from_str(&body(&jobs)).unwrap_or_default();
        assert_eq!(body["time_ms"], 7);
        assert_eq!(body["events"][1]["name"], "b");
    }

    #[test]
    fn keys_name_the_job_or_the_batch() {
        let a = job("1-0", "{}", 1);
        let b = job("1-5", "{}", 1);
        assert_eq!(idempotency_key(std::slice::from_ref(&a)), "app:ep:0:1-0");
        assert_eq!(idempotency_key(&[a, b]), "app:ep:0:1-0..1-5");
    }

    #[test]
    fn backoff_stays_between_base_and_the_cap() {
        let base = Duration::from_millis(100);
        let mut delay = base;
        for _ in 0..50 {
            delay = next_backoff(base, delay);
            assert!(delay >= base && delay <= MAX_BACKOFF, "{delay:?}");
        }
    }
}
