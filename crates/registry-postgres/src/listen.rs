//! The `LISTEN ferrocast_apps` connection: its own (a pooled connection could be recycled and
//! lose the subscription), reconnected with exponential backoff for as long as the node runs.
//!
//! A notification sent while it was down is lost, so every (re)connection is reported as
//! [`Heard::Listening`], on which the registry reloads every app.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{PgUrl, CHANNEL};

/// First delay before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the listener tells the registry.
#[derive(Debug)]
pub enum Heard {
    /// `LISTEN` is in place (at start or after a reconnect): anything may have changed.
    Listening,
    /// A change to the app with this id (empty: the table was truncated).
    Changed(String),
    /// The connection failed or broke (the error text, which never holds the password).
    Lost(String),
}

/// Listen until `events` is closed.
pub async fn listen(url: PgUrl, events: mpsc::UnboundedSender<Heard>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut listened = false;
        let error = match session(&url, &events, &mut listened).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if events.send(Heard::Lost(error)).is_err() {
            return;
        }
        // A connection that got as far as LISTEN starts the backoff over; failures to connect
        // keep doubling it.
        if listened {
            backoff = MIN_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: connect, `LISTEN`, forward notifications until it breaks. `Ok` only when the
/// registry went away.
async fn session(url: &PgUrl, events: &mpsc::UnboundedSender<Heard>, listened: &mut bool) -> Result<(), String> {
    let (client, mut connection) = url
        .config()
        .connect(NoTls)
        .await
        .map_err(|e| format!("PostgreSQL at {url}: {e}"))?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    // The connection only makes progress while polled: drive it here, handing notifications on.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if notes_tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = notes_tx.send(Err(e.to_string()));
                    return;
                }
                None => {
                    let _ = notes_tx.send(Err("connection closed".to_owned()));
                    return;
                }
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| format!("PostgreSQL at {url}: LISTEN: {e}"))?;
        *listened = true;
        if events.send(Heard::Listening).is_err() {
            return Ok(());
        }
        // Keep the client alive (dropping it closes the connection) and check the connection
        // now and then: a server that vanished without a FIN is noticed by the failed query.
        let mut probe = tokio::time::interval(Duration::from_secs(5));
        probe.tick().await;
        loop {
            tokio::select! {
                note = notes.recv() => match note {
                    Some(Ok(id)) => {
                        if events.send(Heard::Changed(id)).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(format!("PostgreSQL at {url}: {e}")),
                    None => return Err(format!("PostgreSQL at {url}: connection closed")),
                },
                _ = probe.tick() => {
                    let alive = tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1")).await;
                    match alive {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("PostgreSQL at {url}: {e}")),
                        Err(_) => return Err(format!("PostgreSQL at {url}: no answer within 5 s")),
                    }
                }
                _ = events.closed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}
