//! PAS notifications (R4 Subscriptions backport, rest-hook, full resource): when a pended
//! request submitted through PAS is decided, its organization's subscriber receives the final
//! PAS response. The notification is written in the deciding transaction (an outbox), so a
//! decision is never committed without it, and a worker delivers it, retrying with backoff.
//! Several instances may run workers: each claims a notification by moving its next attempt
//! forward with a conditional update before sending it.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::api::{AppError, AppState};
use crate::fhir;
use crate::store::{Tx, now_ms, random_id};

/// How long a claimed notification is left to its sender before another may retry it.
const LEASE_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Queues the notification of a request's new state, if it came through PAS and its
/// organization subscribes. Runs inside the transaction that changes the state.
pub async fn enqueue(tx: &mut Tx, request_id: &str) -> Result<(), AppError> {
    let row = sqlx::query("SELECT s.id FROM fhir_claims c JOIN subscriptions s ON s.organization = c.organization WHERE c.request_id = $1")
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let subscription: String = row.try_get("id")?;
    // The event number counts this subscription's events; the update also orders concurrent
    // deciders on the subscription's row.
    let events: i64 =
        sqlx::query("UPDATE subscriptions SET events = events + 1 WHERE id = $1 RETURNING events")
            .bind(&subscription)
            .fetch_one(&mut **tx)
            .await?
            .try_get("events")?;
    let now = now_ms();
    sqlx::query("INSERT INTO notifications (id, subscription_id, request_id, event_number, attempts, next_attempt_at, delivered_at, last_error, created_at) VALUES ($1, $2, $3, $4, 0, $5, NULL, NULL, $5)")
        .bind(random_id("ntf_"))
        .bind(&subscription)
        .bind(request_id)
        .bind(events)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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
        if state.store.pool.is_closed() {
            return;
        }
        if let Err(error) = deliver_due(&state, &client).await {
            eprintln!("notifications: {error:?}");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), state.notify.notified()).await;
    }
}

async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<(), AppError> {
    let now = now_ms();
    let due = sqlx::query("SELECT n.id, n.request_id, n.event_number, n.attempts, n.next_attempt_at, s.id AS subscription, s.endpoint, s.headers_json FROM notifications n JOIN subscriptions s ON s.id = n.subscription_id WHERE n.delivered_at IS NULL AND n.next_attempt_at <= $1 ORDER BY n.created_at LIMIT 20")
        .bind(now)
        .fetch_all(&state.store.pool)
        .await?;
    for row in due {
        let id: String = row.try_get("id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let claimed = sqlx::query("UPDATE notifications SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL")
            .bind(now + LEASE_MS)
            .bind(&id)
            .bind(row.try_get::<i64, _>("next_attempt_at")?)
            .execute(&state.store.pool)
            .await?;
        if claimed.rows_affected() != 1 {
            continue; // another instance has it
        }
        let request_id: String = row.try_get("request_id")?;
        let subscription: String = row.try_get("subscription")?;
        let endpoint: String = row.try_get("endpoint")?;
        let headers: Vec<String> =
            serde_json::from_str(&row.try_get::<String, _>("headers_json")?).unwrap_or_default();
        let payload = fhir::notification_payload(
            state,
            &request_id,
            &subscription,
            row.try_get("event_number")?,
        )
        .await?;
        let mut call = client
            .post(&endpoint)
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
                sqlx::query(
                    "UPDATE notifications SET delivered_at = $1, attempts = $2 WHERE id = $3",
                )
                .bind(now_ms())
                .bind(attempts + 1)
                .bind(&id)
                .execute(&state.store.pool)
                .await?;
            }
            Err(error) => {
                let backoff = (1_000i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                sqlx::query("UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4")
                    .bind(attempts + 1)
                    .bind(now_ms() + backoff)
                    .bind(&error)
                    .bind(&id)
                    .execute(&state.store.pool)
                    .await?;
            }
        }
    }
    Ok(())
}

/// The delivery state of a request's notifications (for the service's own views and tests).
pub async fn delivered(state: &AppState, request_id: &str) -> Result<Vec<Value>, AppError> {
    let rows = sqlx::query("SELECT event_number, attempts, delivered_at, last_error FROM notifications WHERE request_id = $1 ORDER BY event_number")
        .bind(request_id)
        .fetch_all(&state.store.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(serde_json::json!({
                "event_number": r.try_get::<i64, _>("event_number")?,
                "attempts": r.try_get::<i64, _>("attempts")?,
                "delivered": r.try_get::<Option<i64>, _>("delivered_at")?.is_some(),
                "last_error": r.try_get::<Option<String>, _>("last_error")?,
            }))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}
