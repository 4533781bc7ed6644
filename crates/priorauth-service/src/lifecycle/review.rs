//! Clinician review: the queue, a clinician's determination (software never denies), and
//! the data of a denial notice.

use priorauth_core::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::authorizations::{self, Changes};
use super::evaluate::{Version, evaluate};
use super::requests::{fetch, finish_decision};
use super::{Error, Service, day_of, invalid, require, timestamp};
use crate::keys::{Caller, Role};
use crate::store::requests::{self, Determination, NewEvent};
use crate::store::{self, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeterminationDecision {
    Approve,
    ApproveWithChanges,
    Deny,
}

impl DeterminationDecision {
    fn as_str(self) -> &'static str {
        match self {
            DeterminationDecision::Approve => "approve",
            DeterminationDecision::ApproveWithChanges => "approve_with_changes",
            DeterminationDecision::Deny => "deny",
        }
    }
}

/// A clinician's determination on a request in review.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeterminationBody {
    pub decision: DeterminationDecision,
    /// The specific reason, in plain language.
    pub reason: String,
    /// Id of the policy criterion the determination rests on.
    pub criterion: String,
    /// For `approve_with_changes`: what the approval grants instead of the request.
    #[serde(default)]
    pub changes: Option<Changes>,
}

/// The most requests the queue lists.
const QUEUE_LIMIT: i64 = 500;

/// The requests awaiting a clinician, most urgent first.
pub async fn queue(service: &Service, caller: &Caller) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer, Role::Admin])?;
    let mut tx = service.store.pool.begin().await?;
    let rows = requests::queue(&mut tx, QUEUE_LIMIT).await?;
    let now = now_ms();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let due = r.due_at.unwrap_or(now);
            json!({
                "id": r.id,
                "organization": r.organization,
                "plan": r.plan,
                "policy": r.policy,
                "recommendation": r.outcome,
                "urgency": r.urgency,
                "received_at": timestamp(r.created_at),
                "due_at": timestamp(due),
                "minutes_left": (due - now) / 60_000,
            })
        })
        .collect();
    store::audit(&mut tx, &caller.audit_record("queue.read", "queue")).await?;
    tx.commit().await?;
    Ok(json!({ "items": items }))
}

/// A clinician's determination on a request in review: approve (as asked or with changes
/// within the label's bounds) or deny, with the reviewer's credentials.
pub async fn determine(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &DeterminationBody,
) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer])?;
    if body.reason.trim().is_empty() {
        return Err(invalid("reason", "give the specific reason"));
    }
    if body.decision == DeterminationDecision::Deny && caller.credentials.trim().is_empty() {
        return Err(Error::Forbidden(
            "a denial is recorded with the reviewer's credentials; this key has none".into(),
        ));
    }
    if body.decision != DeterminationDecision::ApproveWithChanges && body.changes.is_some() {
        return Err(invalid(
            "changes",
            "only an approval with changes has changes",
        ));
    }
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    if row.status != "pending_review" {
        return Err(Error::Conflict(format!(
            "the request is `{}`, not in review",
            row.status
        )));
    }
    let policy = service
        .engine
        .policy_index(&row.policy)
        .and_then(|i| service.engine.policies.get(i))
        .ok_or_else(|| Error::Internal("policy".into()))?;
    if !policy.criteria.iter().any(|c| c.id == body.criterion) {
        return Err(invalid(
            "criterion",
            format!("`{}` is not a criterion of {}", body.criterion, row.policy),
        ));
    }
    let changes = body.changes.clone().unwrap_or_default();
    let new_status = match body.decision {
        DeterminationDecision::Deny => "denied",
        _ => "approved",
    };
    let now = now_ms();
    if !requests::close_review(&mut tx, id, new_status, now).await? {
        return Err(Error::Conflict("the request was decided meanwhile".into()));
    }
    if new_status == "approved" {
        let plan = service
            .plans
            .get(&row.plan)
            .ok_or_else(|| Error::Internal("plan".into()))?
            .clone();
        let current = requests::current_case(&mut tx, &row).await?;
        let case: Value = serde_json::from_str(&current).unwrap_or(json!({}));
        let stored = Version::Stored {
            policy: &row.policy,
            version: &row.policy_version,
            check_date: false,
        };
        let evaluated = evaluate(service, &plan, case, day_of(row.created_at), stored)?;
        authorizations::create(
            &mut tx,
            service,
            &row.organization,
            id,
            &evaluated,
            &changes,
            row.renews.as_deref(),
        )
        .await?;
    }
    let determination = Determination {
        decision: body.decision.as_str().to_string(),
        reason: body.reason.trim().to_string(),
        criterion: body.criterion.clone(),
        reviewer_key: caller.key_id.clone(),
        reviewer_name: caller.name.clone(),
        reviewer_credentials: caller.credentials.clone(),
        changes_json: serde_json::to_string(&changes).unwrap_or_default(),
        at: now,
    };
    requests::insert_determination(&mut tx, id, &determination).await?;
    let outcome = if new_status == "denied" {
        Outcome::Deny
    } else {
        Outcome::Approve
    };
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "determination",
            actor: &caller.key_id,
            at: now,
            outcome: outcome.as_str(),
            case_json: "{}",
            // The decision before it, which the history shows again.
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    finish_decision(service, tx, caller, id, "request.determination").await
}

/// The data of a clinician's denial notice: the service, the specific reason and the
/// criterion with its source, the reviewer, and how to appeal.
pub async fn denial_letter(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    if row.status != "denied" {
        return Err(Error::Conflict(format!(
            "the request is `{}`: only a clinician's denial has a denial notice",
            row.status
        )));
    }
    let d = requests::determination(&mut tx, id)
        .await?
        .ok_or_else(|| Error::Internal("a denial without its determination".into()))?;
    let policy = service
        .engine
        .policy_index(&row.policy)
        .and_then(|i| service.engine.policies.get(i))
        .ok_or_else(|| Error::Internal("policy".into()))?;
    let criterion = policy.criteria.iter().find(|c| c.id == d.criterion);
    let case: Value =
        serde_json::from_str(&requests::current_case(&mut tx, &row).await?).unwrap_or(Value::Null);
    let plan = service.plans.get(&row.plan);
    let letter = json!({
        "request_id": id,
        "decision": "denied",
        "service": {
            "drug": case.pointer("/request/drug"),
            "hcpcs": case.pointer("/request/hcpcs"),
            "dose": case.pointer("/request/dose"),
            "date": case.pointer("/request/date"),
        },
        "reason": d.reason,
        "criterion": {
            "id": d.criterion,
            "text": criterion.map(|c| c.text.clone()),
            "source": criterion.map(|c| c.source.to_string()),
            "interpretation": criterion.map(|c| c.source.interpretation.clone()).filter(|i| !i.is_empty()),
            "policy": policy.title,
            "policy_version": policy.version,
            "copy": "A copy of the policy and the criteria used is available free of charge on request.",
        },
        "reviewer": {
            "name": d.reviewer_name,
            "credentials": d.reviewer_credentials,
            "peer_to_peer": "The prescriber may discuss this decision with the reviewer (peer-to-peer) by contacting the plan.",
        },
        "decided_at": timestamp(d.at),
        "appeal": plan.map(|p| p.appeal.clone()),
        "automation": "Software evaluated the request against the policy; a licensed clinician reviewed the request and made this decision.",
    });
    store::audit(&mut tx, &caller.audit_record("request.denial_letter", id)).await?;
    tx.commit().await?;
    Ok(letter)
}
