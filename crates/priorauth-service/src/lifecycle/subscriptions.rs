//! Subscriptions: where an organization wants the decisions of its PAS requests delivered
//! (one per organization: a second create is refused, naming the one to update). The notifications themselves are
//! queued by the transitions that decide (an outbox) and delivered by the FHIR adapter's
//! worker.

use serde_json::{Value, json};

use super::{Error, Service, require, visible};
use crate::keys::{Caller, Role};
use crate::store::notifications::{self, NewSubscription};
use crate::store::{self, random_id};

/// What a subscription asks: its rest-hook endpoint, the headers to send, and the resource
/// as given (its id and status are set here).
#[derive(Debug, Clone)]
pub struct SubscriptionInput {
    pub endpoint: String,
    pub headers: Vec<String>,
    pub resource: Value,
    /// `active`, or `error` when the endpoint did not answer the handshake.
    pub status: &'static str,
    /// The subscription this input updates (`PUT /Subscription/{id}`): it must be the
    /// organization's; `None` creates it, refused when the organization has one.
    pub updates: Option<String>,
}

/// A subscription as saved.
#[derive(Debug, Clone)]
pub struct Saved {
    pub id: String,
    /// True when this save created it (false for an update).
    pub created: bool,
    pub resource: Value,
}

/// Saves the caller's organization's subscription: creates it, or updates the one `updates`
/// names. A create when the organization has one is a conflict naming it (replacing it would
/// silently take another system's notifications), and leaves it as it was.
pub async fn save(
    service: &Service,
    caller: &Caller,
    input: SubscriptionInput,
) -> Result<Saved, Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let existing =
        notifications::subscription_of(&service.store.pool, &caller.organization).await?;
    if input
        .updates
        .as_ref()
        .is_some_and(|asked| existing.as_ref() != Some(asked))
    {
        return Err(Error::NotFound);
    }
    if input.updates.is_none()
        && let Some(id) = &existing
    {
        return Err(already_subscribed(id));
    }
    let id = existing.clone().unwrap_or_else(|| random_id("sub-"));
    let mut resource = without_secrets(input.resource);
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), json!(id));
        object.insert("status".into(), json!(input.status));
        if input.status == "error" {
            object.insert(
                "error".into(),
                json!("the endpoint did not answer the handshake with a 2xx status"),
            );
        } else {
            object.remove("error");
        }
    }
    let mut tx = service.store.pool.begin().await?;
    let saved = notifications::save_subscription(
        &mut tx,
        &NewSubscription {
            id: id.clone(),
            organization: caller.organization.clone(),
            endpoint: input.endpoint,
            headers_json: serde_json::to_string(&input.headers).unwrap_or_else(|_| "[]".into()),
            resource_json: resource.to_string(),
        },
        existing.is_some(),
    )
    .await?;
    if !saved {
        // Another create of the organization's won the race since it was read.
        tx.rollback().await?;
        let id = notifications::subscription_of(&service.store.pool, &caller.organization)
            .await?
            .unwrap_or_default();
        return Err(already_subscribed(&id));
    }
    store::audit(&mut tx, &caller.audit_record("subscription.write", &id)).await?;
    tx.commit().await?;
    Ok(Saved {
        id,
        created: existing.is_none(),
        resource,
    })
}

/// The refusal of a second create: the organization's subscription is updated in place.
fn already_subscribed(id: &str) -> Error {
    Error::Conflict(format!(
        "this organization already has a subscription, `{id}`: update it with PUT /fhir/Subscription/{id} (or delete it first); it was left as it was"
    ))
}

/// A subscription's resource, or NotFound when it does not exist or is another
/// organization's. The read is audited; the headers sent with notifications are not shown.
pub async fn read(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let resource = match notifications::subscription(&service.store.pool, id).await? {
        Some(subscription) if visible(caller, &subscription.organization) => {
            serde_json::from_str(&subscription.resource_json).unwrap_or(Value::Null)
        }
        _ => return Err(Error::NotFound),
    };
    service
        .writer
        .write(crate::store::writer::Write::Audit(
            caller.audit_record("subscription.read", id),
        ))
        .await?;
    Ok(without_secrets(resource))
}

/// A Subscription without `channel.header`: those headers are the subscriber's credentials
/// for its own endpoint (`Authorization: Bearer …`). They are kept apart for delivery only,
/// and shown to no one after they are given, not even to the organization that gave them
/// (records stored before this was done lose them on the way out).
fn without_secrets(mut resource: Value) -> Value {
    if let Some(channel) = resource.get_mut("channel").and_then(Value::as_object_mut) {
        channel.remove("header");
    }
    resource
}

/// Deletes a subscription of the caller's organization.
pub async fn delete(service: &Service, caller: &Caller, id: &str) -> Result<(), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    read(service, caller, id).await?;
    let mut tx = service.store.pool.begin().await?;
    notifications::delete_subscription(&mut tx, id).await?;
    store::audit(&mut tx, &caller.audit_record("subscription.delete", id)).await?;
    tx.commit().await?;
    Ok(())
}

/// The most dead letters listed.
const DEAD_LETTERS_LISTED: i64 = 200;

/// Notifications no longer retried, the latest first, for the payer's administrators: which
/// request, which organization's endpoint, how often it was tried and its last error. The
/// read is audited with the notifications shown.
pub async fn dead_letters(service: &Service, caller: &Caller) -> Result<Value, Error> {
    require(caller, &[Role::Admin])?;
    let dead = notifications::dead_letters(&service.store.pool, DEAD_LETTERS_LISTED).await?;
    let shown: Vec<&str> = dead.iter().map(|d| d.id.as_str()).collect();
    service
        .writer
        .write(crate::store::writer::Write::Audit(caller.audit_record(
            "notifications.dead.read",
            &format!("notifications:{}", shown.join(",")),
        )))
        .await?;
    let items: Vec<Value> = dead
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "request_id": d.request_id, "organization": d.organization,
                "endpoint": d.endpoint, "attempts": d.attempts, "last_error": d.last_error,
                "created_at": super::timestamp(d.created_at), "dead_at": super::timestamp(d.dead_at),
            })
        })
        .collect();
    Ok(json!({ "items": items }))
}
