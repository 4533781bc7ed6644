//! The notifications aggregate's SQL: each organization's subscription (rest-hook endpoint)
//! and the outbox of notifications to deliver to it.

use sqlx::Row;

use super::{StoreError, Tx, now_ms, random_id};

/// A notification due for delivery, with where it goes.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub request_id: String,
    pub event_number: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub subscription: String,
    pub endpoint: String,
    pub headers_json: String,
}

/// A notification's delivery state.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_number: i64,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

/// A subscription as stored.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub organization: String,
    pub resource_json: String,
}

/// A new or replaced subscription (one per organization).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub id: String,
    pub organization: String,
    pub endpoint: String,
    pub headers_json: String,
    pub resource_json: String,
}

/// Queues the notification of a request's new state, if it came through PAS and its
/// organization subscribes. Runs inside the transaction that changes the state (an outbox).
pub async fn enqueue(tx: &mut Tx, request_id: &str) -> Result<(), StoreError> {
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

/// Undelivered notifications whose next attempt is due at `now`, oldest first.
pub async fn due(pool: &sqlx::AnyPool, now: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
    let rows = sqlx::query("SELECT n.id, n.request_id, n.event_number, n.attempts, n.next_attempt_at, s.id AS subscription, s.endpoint, s.headers_json FROM notifications n JOIN subscriptions s ON s.id = n.subscription_id WHERE n.delivered_at IS NULL AND n.dead_at IS NULL AND n.next_attempt_at <= $1 ORDER BY n.created_at LIMIT $2")
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let due = rows
        .iter()
        .map(|row| {
            Ok(Due {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                event_number: row.try_get("event_number")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                subscription: row.try_get("subscription")?,
                endpoint: row.try_get("endpoint")?,
                headers_json: row.try_get("headers_json")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(due)
}

/// Claims a due notification by moving its next attempt to `lease_until`, if no other
/// instance moved it first; false when another did.
pub async fn claim(pool: &sqlx::AnyPool, due: &Due, lease_until: i64) -> Result<bool, StoreError> {
    let claimed = sqlx::query("UPDATE notifications SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL")
        .bind(lease_until)
        .bind(&due.id)
        .bind(due.next_attempt_at)
        .execute(pool)
        .await?;
    Ok(claimed.rows_affected() == 1)
}

pub async fn mark_delivered(
    pool: &sqlx::AnyPool,
    id: &str,
    attempts: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE notifications SET delivered_at = $1, attempts = $2 WHERE id = $3")
        .bind(now_ms())
        .bind(attempts)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn mark_failed(
    pool: &sqlx::AnyPool,
    id: &str,
    attempts: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE notifications SET attempts = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4")
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Stops retrying a notification: its schedule is spent.
pub async fn mark_dead(
    pool: &sqlx::AnyPool,
    id: &str,
    attempts: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notifications SET attempts = $1, last_error = $2, dead_at = $3 WHERE id = $4",
    )
    .bind(attempts)
    .bind(error)
    .bind(now_ms())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A dead-lettered notification, for the payer's administrators.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub request_id: String,
    pub organization: String,
    pub endpoint: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub dead_at: i64,
}

/// Dead-lettered notifications, the latest first (at most `limit`).
pub async fn dead_letters(pool: &sqlx::AnyPool, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = sqlx::query("SELECT n.id, n.request_id, s.organization, s.endpoint, n.attempts, n.last_error, n.created_at, n.dead_at FROM notifications n JOIN subscriptions s ON s.id = n.subscription_id WHERE n.dead_at IS NOT NULL ORDER BY n.dead_at DESC LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let dead = rows
        .iter()
        .map(|r| {
            Ok(DeadLetter {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                organization: r.try_get("organization")?,
                endpoint: r.try_get("endpoint")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                dead_at: r.try_get("dead_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(dead)
}

/// The delivery state of a request's notifications.
pub async fn of_request(
    pool: &sqlx::AnyPool,
    request_id: &str,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query("SELECT event_number, attempts, delivered_at, last_error FROM notifications WHERE request_id = $1 ORDER BY event_number")
        .bind(request_id)
        .fetch_all(pool)
        .await?;
    let deliveries = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                event_number: r.try_get("event_number")?,
                attempts: r.try_get("attempts")?,
                delivered_at: r.try_get("delivered_at")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(deliveries)
}

/// The id of an organization's subscription, if it has one.
pub async fn subscription_of(
    pool: &sqlx::AnyPool,
    organization: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT id FROM subscriptions WHERE organization = $1")
        .bind(organization)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.try_get::<String, _>("id")).transpose()?)
}

/// Saves an organization's subscription: `replace` updates the organization's one in place,
/// otherwise it is inserted only if the organization has none. Whether it was saved.
pub async fn save_subscription(
    tx: &mut Tx,
    subscription: &NewSubscription,
    replace: bool,
) -> Result<bool, StoreError> {
    let on_conflict = if replace {
        "DO UPDATE SET endpoint = $3, headers_json = $4, resource_json = $5"
    } else {
        "DO NOTHING"
    };
    let saved = sqlx::query(&format!("INSERT INTO subscriptions (id, organization, endpoint, headers_json, resource_json, events, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (organization) {on_conflict}"))
        .bind(&subscription.id)
        .bind(&subscription.organization)
        .bind(&subscription.endpoint)
        .bind(&subscription.headers_json)
        .bind(&subscription.resource_json)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(saved.rows_affected() > 0)
}

pub async fn subscription(
    pool: &sqlx::AnyPool,
    id: &str,
) -> Result<Option<Subscription>, StoreError> {
    let row = sqlx::query("SELECT organization, resource_json FROM subscriptions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let subscription = row
        .map(|row| -> Result<Subscription, sqlx::Error> {
            Ok(Subscription {
                organization: row.try_get("organization")?,
                resource_json: row.try_get("resource_json")?,
            })
        })
        .transpose()?;
    Ok(subscription)
}

pub async fn delete_subscription(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM subscriptions WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
