//! PAS notifications (R4 Subscriptions backport, rest-hook, full resource): when a pended
//! request submitted through PAS is decided, its organization's subscriber receives the final
//! PAS response. The notification is written in the deciding transaction (an outbox), so a
//! decision is never committed without it, and a worker delivers it, retrying with backoff.
//! Several instances may run workers: each claims a notification by moving its next attempt
//! forward with a conditional update before sending it.
//!
//! Each subscriber is delivered to by a task of its own, its notifications oldest first: an
//! endpoint that stalls or fails delays only its own notifications, never another
//! organization's. A notification is tried on a bounded schedule (`MAX_ATTEMPTS`, backing off
//! from 1 s to an hour); when it is spent, the notification is dead-lettered, kept with its
//! last error for administrators (`GET /v1/notifications/dead`), and no longer tried.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::fhir;
use crate::store::notifications::{self, Due};
use crate::store::now_ms;
use crate::web::{AppError, AppState};

/// How long a claimed notification is left to its sender before another may retry it.
const LEASE_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// Attempts before a notification is dead-lettered: 1 s, 2 s, 4 s … then hourly, about four
/// hours in all, long enough for an EHR's maintenance window. (The EHR can always ask with
/// `Claim/$inquire`.)
pub const MAX_ATTEMPTS: i64 = 16;
/// How long one delivery may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers due notifications until the process ends. Woken at once after a decision, and
/// every second for retries; each subscriber's due notifications go to its own task.
pub async fn run(state: AppState) {
    let client = match reqwest::Client::builder().timeout(CALL_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("notifications: no HTTP client: {error}");
            return;
        }
    };
    let mut senders: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        if state.service.store.pool.is_closed() {
            return;
        }
        senders.retain(|_, sender| !sender.is_finished());
        if let Err(error) = hand_out(&state, &client, &mut senders).await {
            eprintln!("notifications: {error:?}");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), state.service.notify.notified()).await;
    }
}

/// Gives each subscriber without a running sender its due notifications, oldest first.
async fn hand_out(
    state: &AppState,
    client: &reqwest::Client,
    senders: &mut HashMap<String, JoinHandle<()>>,
) -> Result<(), AppError> {
    let now = now_ms();
    let mut by_subscriber: HashMap<String, Vec<Due>> = HashMap::new();
    for due in notifications::due(&state.service.store.pool, now, 200).await? {
        if !senders.contains_key(&due.subscription) {
            by_subscriber
                .entry(due.subscription.clone())
                .or_default()
                .push(due);
        }
    }
    for (subscription, due) in by_subscriber {
        let (state, client) = (state.clone(), client.clone());
        let sender = tokio::spawn(async move {
            if let Err(error) = deliver(&state, &client, due).await {
                eprintln!("notifications: {error:?}");
            }
        });
        senders.insert(subscription, sender);
    }
    Ok(())
}

/// Delivers one subscriber's notifications in order; stops at the first failure (its
/// endpoint is down: the rest wait for their next attempt).
async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    due: Vec<Due>,
) -> Result<(), AppError> {
    let pool = &state.service.store.pool;
    for due in due {
        if !notifications::claim(pool, &due, now_ms() + LEASE_MS).await? {
            continue; // another instance has it
        }
        let headers: Vec<String> = serde_json::from_str(&due.headers_json).unwrap_or_default();
        let payload =
            fhir::notification_payload(state, &due.request_id, &due.subscription, due.event_number)
                .await?;
        let mut call = client
            .post(&due.endpoint)
            .header("content-type", "application/fhir+json")
            .body(payload.to_string());
        for header in &headers {
            if let Some((name, value)) = header.split_once(':') {
                call = call.header(name.trim(), value.trim());
            }
        }
        let outcome = match call.send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("HTTP {}", answer.status().as_u16())),
            Err(error) => Err(if error.is_timeout() {
                "timed out".to_string()
            } else {
                "could not connect".to_string()
            }),
        };
        let attempts = due.attempts + 1;
        match outcome {
            Ok(()) => notifications::mark_delivered(pool, &due.id, attempts).await?,
            Err(error) if attempts >= MAX_ATTEMPTS => {
                notifications::mark_dead(pool, &due.id, attempts, &error).await?;
                return Ok(());
            }
            Err(error) => {
                let backoff = (1_000i64 << due.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                notifications::mark_failed(pool, &due.id, attempts, now_ms() + backoff, &error)
                    .await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The delivery state of a request's notifications (for the service's own views and tests).
pub async fn delivered(state: &AppState, request_id: &str) -> Result<Vec<Value>, AppError> {
    let deliveries = notifications::of_request(&state.service.store.pool, request_id).await?;
    Ok(deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "event_number": d.event_number,
                "attempts": d.attempts,
                "delivered": d.delivered_at.is_some(),
                "last_error": d.last_error,
            })
        })
        .collect())
}
