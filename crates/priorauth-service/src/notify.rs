//! PAS notifications (R4 Subscriptions backport, rest-hook, full resource): when a pended
//! request submitted through PAS is decided, its organization's subscriber receives the final
//! PAS response. The notification is written in the deciding transaction (an outbox), so a
//! decision is never committed without it, and a worker delivers it, retrying with backoff.
//! Several instances may run workers: each claims a notification by moving its next attempt
//! forward with a conditional update before sending it.

use std::time::Duration;

use serde_json::Value;

use crate::fhir;
use crate::store::notifications;
use crate::store::now_ms;
use crate::web::{AppError, AppState};

/// How long a claimed notification is left to its sender before another may retry it.
const LEASE_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Delivers due notifications until the process ends. Woken at once after a decision, and
/// every second for retries.
pub async fn run(state: AppState) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("notifications: no HTTP client: {error}");
            return;
        }
    };
    loop {
        if state.service.store.pool.is_closed() {
            return;
        }
        if let Err(error) = deliver_due(&state, &client).await {
            eprintln!("notifications: {error:?}");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), state.service.notify.notified()).await;
    }
}

async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<(), AppError> {
    let now = now_ms();
    let due = notifications::due(&state.service.store.pool, now, 20).await?;
    for due in due {
        if !notifications::claim(&state.service.store.pool, &due, now + LEASE_MS).await? {
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
        match outcome {
            Ok(()) => {
                notifications::mark_delivered(&state.service.store.pool, &due.id, due.attempts + 1)
                    .await?;
            }
            Err(error) => {
                let backoff = (1_000i64 << due.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                notifications::mark_failed(
                    &state.service.store.pool,
                    &due.id,
                    due.attempts + 1,
                    now_ms() + backoff,
                    &error,
                )
                .await?;
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
