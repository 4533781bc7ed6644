//! The first answers to writes sent with an `Idempotency-Key`, by organization and key.

use sqlx::Row;

use super::{StoreError, Tx};

/// A stored first answer.
#[derive(Debug, Clone)]
pub struct FirstAnswer {
    pub action: String,
    pub body_sha256: String,
    pub answer: String,
}

pub async fn find(
    tx: &mut Tx,
    organization: &str,
    key: &str,
) -> Result<Option<FirstAnswer>, StoreError> {
    let row = sqlx::query("SELECT action, body_sha256, answer FROM idempotent_answers WHERE organization = $1 AND idempotency_key = $2")
        .bind(organization)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| {
        Ok(FirstAnswer {
            action: r.try_get("action")?,
            body_sha256: r.try_get("body_sha256")?,
            answer: r.try_get("answer")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| e.into())
}

/// Stores a first answer inside the write's own transaction: the write and its answer
/// commit together. A second transaction with the same key meets the primary key.
pub async fn insert(
    tx: &mut Tx,
    organization: &str,
    key: &str,
    first: &FirstAnswer,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO idempotent_answers (organization, idempotency_key, action, body_sha256, answer, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(organization)
        .bind(key)
        .bind(&first.action)
        .bind(&first.body_sha256)
        .bind(&first.answer)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
