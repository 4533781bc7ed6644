//! A request as its readers see it: its record, decision (recomputed from the case and the
//! policy version that made it, and checked against what was answered), authorization,
//! determination, files and history; read by its organization, a reviewer (with the grounds
//! a denial may cite and the reviewers' comments) or the PAS notifier, each read audited.

use serde_json::{Value, json};

use super::authorizations;
use super::evaluate::{decision_sha256, recompute};
use super::requests::fetch_related;
use super::{Error, Service, day_of, timestamp};
use crate::keys::{Caller, Role};
use crate::store::authorizations as records;
/// The PAS claim a request came with (its Bundle restored on demand).
pub use crate::store::requests::StoredClaim;
use crate::store::requests::{self, Determination, Related, Request};
use crate::store::writer::Write;
use crate::store::{self, Tx, now_ms};

/// Whether a request is past its clock: decided after its due time, or still pending after it.
pub(super) fn late(row: &Request, now: i64) -> bool {
    let Some(due) = row.due_at else { return false };
    match row.decided_at {
        Some(decided) => decided > due,
        None => {
            matches!(
                row.status.as_str(),
                "pending_information" | "pending_review"
            ) && now > due
        }
    }
}

/// A clinician's determination as a reader sees it.
pub(super) fn determination_view(d: &Determination) -> Value {
    json!({
        "decision": d.decision,
        "reason": d.reason,
        "criterion": d.criterion,
        "reviewer": {"name": d.reviewer_name, "credentials": d.reviewer_credentials},
        "changes": serde_json::from_str::<Value>(&d.changes_json).unwrap_or(Value::Null),
        "at": timestamp(d.at),
    })
}

/// The kinds of event whose stored case is their detail (`reason`, `appeal`, `appeal_decision`,
/// `superseded_determination`, `questions` and `answer_by`, `answers`, a cancelled
/// authorization's `authorization` and `cancelled_on`), shown as fields of the
/// event.
pub(super) const DETAILED_EVENTS: &[&str] = &[
    "withdrawn",
    "information_requested",
    "information_given",
    "extended",
    "appealed",
    "appeal_extended",
    "appeal_decided",
    "reopened",
    "authorization_cancelled",
];

/// A request as its reader sees it: its record, decision, authorization, determination and
/// history. `related` says which of its other records exist: only those are read.
pub(super) async fn view(
    service: &Service,
    tx: &mut Tx,
    row: &Request,
    related: Related,
) -> Result<Value, Error> {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    // Each event's case and decision: as stored, or (since decisions are recomputed) the
    // case carried forward and the decision recomputed under the request's policy version.
    let received = day_of(row.created_at);
    let mut case_json = row.case_json.clone();
    let mut decision = parse(&row.decision_json);
    let mut history = Vec::new();
    for e in requests::events(tx, &row.id).await? {
        let decides = e.kind == "submitted" || e.kind == "completed";
        if decides && !e.case_json.is_empty() {
            case_json.clone_from(&e.case_json);
        }
        let mut verified = None;
        if !e.decision_json.is_empty() {
            decision = parse(&e.decision_json);
        } else if let (true, Some(sha256)) = (decides, &e.decision_sha256) {
            decision = recompute(
                service,
                &case_json,
                &row.policy,
                &row.policy_version,
                received,
            )?;
            verified = Some(decision_sha256(&decision) == *sha256);
        }
        // An event that neither decides nor determines (a withdrawal, an appeal, a
        // reopening) stores its detail where a deciding event stores its case.
        let detailed = DETAILED_EVENTS.contains(&e.kind.as_str());
        let case = if decides || detailed {
            parse(&case_json)
        } else {
            parse(&e.case_json)
        };
        let mut event = json!({
            "seq": e.seq,
            "kind": e.kind,
            "actor": e.actor,
            "at": timestamp(e.at),
            "outcome": e.outcome,
            "case": case,
            "decision": decision,
        });
        if detailed {
            if let (Some(event), Value::Object(detail)) =
                (event.as_object_mut(), parse(&e.case_json))
            {
                event.extend(detail);
            }
        }
        if let Some(verified) = verified {
            if !verified {
                // The request id only: never patient data in the log.
                eprintln!(
                    "request {}: event {} recomputes to a decision other than the one answered",
                    row.id, e.seq
                );
            }
            if let Some(event) = event.as_object_mut() {
                event.insert("decision_verified".into(), Value::Bool(verified));
            }
        }
        history.push(event);
    }
    let authorization = if related.authorization {
        records::of_request(tx, &row.id)
            .await?
            .map(|a| authorizations::view(&a))
    } else {
        None
    };
    let determination = if related.determination {
        requests::determination(tx, &row.id)
            .await?
            .map(|d| determination_view(&d))
    } else {
        None
    };
    let attachments = if related.attachments {
        super::attachments::listed(tx, &row.id).await?
    } else {
        Value::Array(Vec::new())
    };
    Ok(json!({
        "id": row.id,
        "organization": row.organization,
        "plan": row.plan,
        "policy": row.policy,
        "policy_version": row.policy_version,
        "status": row.status,
        "outcome": row.outcome,
        "urgency": row.urgency,
        "due_at": row.due_at.map(timestamp),
        "late": late(row, now_ms()),
        "renews": row.renews,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
        "case": parse(&case_json),
        "decision": decision,
        "authorization": authorization,
        "determination": determination,
        "history": history,
        "attachments": attachments,
    }))
}

/// Reads a request with its history.
pub async fn read(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    Ok(read_audited(service, caller, id, false).await?.0)
}

/// A request as its reader sees it, and the PAS claim it came with if it came through PAS.
pub type ReadWithClaim = (Value, Option<StoredClaim>);

/// Reads a request with its history, and the PAS claim it came with if it came through PAS.
pub async fn read_with_claim(
    service: &Service,
    caller: &Caller,
    id: &str,
) -> Result<ReadWithClaim, Error> {
    read_audited(service, caller, id, true).await
}

/// A read and its audit entry; the PAS claim read too when `with_claim`.
async fn read_audited(
    service: &Service,
    caller: &Caller,
    id: &str,
    with_claim: bool,
) -> Result<ReadWithClaim, Error> {
    let read = read_claimed(service, caller, id, with_claim).await?;
    service
        .writer
        .write(Write::Audit(caller.audit_record("request.read", id)))
        .await?;
    Ok(read)
}

/// The answer to a write the caller has just made on its own request (a PAS submission, its
/// replay, update or cancellation): the request as [`read_with_claim`] reads it, with no
/// entry of its own, since the write's entry (`request.create`, `request.replay`,
/// `request.withdraw`) already records the caller and the request it was answered. A second
/// entry per submission would be a second write on SQLite's one writer for every PAS call.
pub(crate) async fn answer_to_own_write(
    service: &Service,
    caller: &Caller,
    id: &str,
) -> Result<ReadWithClaim, Error> {
    read_claimed(service, caller, id, true).await
}

async fn read_claimed(
    service: &Service,
    caller: &Caller,
    id: &str,
    with_claim: bool,
) -> Result<ReadWithClaim, Error> {
    // A read takes no write lock: it reads a snapshot on a read connection (recomputing the
    // explanation there); a reader's audit entry then goes through the group commit with
    // whatever else is being written, and the answer waits for that commit: nothing is shown
    // that is not audited.
    let mut tx = service.store.snapshot().await?;
    let (row, related) = fetch_related(&mut tx, caller, id).await?;
    let mut view = view(service, &mut tx, &row, related).await?;
    // What a reviewer may cite to deny, offered before the criteria the request meets.
    if row.status == "pending_review" && caller.role == Role::Reviewer && !row.policy.is_empty() {
        let grounds = super::review::grounds_of(&mut tx, service, &row).await?;
        if let Some(view) = view.as_object_mut() {
            view.insert(
                "denial_grounds".into(),
                serde_json::to_value(grounds).unwrap_or_default(),
            );
        }
    }
    // The reviewers' comments stay inside the payer.
    if caller.role != Role::Submitter {
        let comments = if related.comments {
            super::comments::listed(&mut tx, id).await?
        } else {
            Value::Array(Vec::new())
        };
        if let Some(view) = view.as_object_mut() {
            view.insert("comments".into(), comments);
        }
    }
    let claim = if with_claim && related.claim {
        requests::claim(&mut tx, id).await?
    } else {
        None
    };
    tx.commit().await?;
    Ok((view, claim))
}

/// A request that came through PAS, read to notify its organization's subscriber: the
/// service reads it, and the read is audited as the notification's.
pub async fn read_for_notification(
    service: &Service,
    id: &str,
) -> Result<(Value, StoredClaim), Error> {
    let mut tx = service.store.pool.begin().await?;
    let claim = requests::claim(&mut tx, id).await?.ok_or(Error::NotFound)?;
    let system = Caller {
        key_id: "notifications".into(),
        organization: claim.organization.clone(),
        role: Role::Admin,
        name: "notifications".into(),
        credentials: String::new(),
    };
    let (row, related) = fetch_related(&mut tx, &system, id).await?;
    let view = view(service, &mut tx, &row, related).await?;
    store::audit(&mut tx, &system.audit_record("request.notify", id)).await?;
    tx.commit().await?;
    Ok((view, claim))
}
