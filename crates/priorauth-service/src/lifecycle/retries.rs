//! Writes a client may send again: with an `Idempotency-Key`, a write's first answer is stored
//! in the write's own transaction and given again to a retry of the same call (same key, same
//! kind of write, same target, same body), so that a retried usage is not spent twice and a
//! retried determination or completion gets its answer rather than a conflict. The same key
//! on another call is refused, naming the header. (A submission keeps its key on its request
//! row: `requests::submit`.)

use serde::Serialize;
use serde_json::Value;

use super::{Error, Service, invalid};
use crate::keys::Caller;
use crate::store::idempotency::{self, FirstAnswer};
use crate::store::{self, Tx, now_ms, sha256_hex};

/// An idempotency key a client can send again exactly: 1 to 255 printable ASCII characters
/// (a key with other bytes would be read differently by different HTTP stacks).
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// The key is refused, naming the header.
pub fn invalid_key() -> Error {
    invalid(
        "Idempotency-Key",
        "must be 1 to 255 printable ASCII characters",
    )
}

/// A write sent with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Retry {
    key: String,
    action: &'static str,
    /// The record the write is to (a request id, an authorization number).
    target: String,
    /// Of the action, the target and the body: what makes two calls the same call.
    call_sha256: String,
}

impl Retry {
    /// None without a key; a key that is not valid is refused.
    pub fn new(
        key: Option<String>,
        action: &'static str,
        target: &str,
        body: &impl Serialize,
    ) -> Result<Option<Retry>, Error> {
        let Some(key) = key else { return Ok(None) };
        if !valid_key(&key) {
            return Err(invalid_key());
        }
        let body = serde_json::to_string(body).unwrap_or_default();
        Ok(Some(Retry {
            key,
            action,
            target: target.to_string(),
            call_sha256: sha256_hex(&format!("{action}\n{target}\n{body}")),
        }))
    }

    /// The first answer to this call, if it was made before (its reading audited in `tx`,
    /// which the caller commits); the key used for another call is refused.
    pub async fn replay(&self, tx: &mut Tx, caller: &Caller) -> Result<Option<Value>, Error> {
        let Some(first) = idempotency::find(tx, &caller.organization, &self.key).await? else {
            return Ok(None);
        };
        if first.action != self.action || first.body_sha256 != self.call_sha256 {
            return Err(invalid(
                "Idempotency-Key",
                "this key was used for a different call",
            ));
        }
        store::audit(tx, &caller.audit_record("idempotent.replay", &self.target)).await?;
        Ok(Some(
            serde_json::from_str(&first.answer).unwrap_or(Value::Null),
        ))
    }

    /// Stores the answer in the write's transaction. Two first calls at once: one commits,
    /// the other meets the key and is rolled back, to be sent again for the first's answer.
    pub async fn remember(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        answer: &Value,
    ) -> Result<(), Error> {
        let first = FirstAnswer {
            action: self.action.to_string(),
            body_sha256: self.call_sha256.clone(),
            answer: answer.to_string(),
        };
        idempotency::insert(tx, &caller.organization, &self.key, &first, now_ms())
            .await
            .map_err(|error| match &error.0 {
                sqlx::Error::Database(database) if database.is_unique_violation() => {
                    Error::Conflict(
                        "a call with this Idempotency-Key was answered meanwhile; send it again for that answer"
                            .into(),
                    )
                }
                _ => error.into(),
            })
    }
}

/// A write's transaction begun, unless the call is a retry of one already answered.
#[allow(missing_debug_implementations)] // a transaction has nothing to show
pub enum Begun {
    /// Go on with the write in this transaction.
    Fresh(Tx),
    /// The first answer, given again (its reading audited and committed).
    Replayed(Value),
}

/// Begins a write's transaction; a retry of a call already answered gets its first answer.
pub async fn begin(
    service: &Service,
    caller: &Caller,
    retry: Option<&Retry>,
) -> Result<Begun, Error> {
    let mut tx = service.store.pool.begin().await?;
    if let Some(retry) = retry {
        if let Some(answer) = retry.replay(&mut tx, caller).await? {
            tx.commit().await?;
            return Ok(Begun::Replayed(answer));
        }
    }
    Ok(Begun::Fresh(tx))
}
