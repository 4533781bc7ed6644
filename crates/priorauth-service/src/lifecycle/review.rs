//! Clinician review: the queue, a clinician's determination (software never denies), and
//! the data of a denial notice.

use priorauth_core::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::authorizations::{self, Changes};
use super::evaluate::{Version, denial_grounds, evaluate};
use super::notices;
use super::request_view::determination_view;
use super::requests::{fetch, finish_decision};
use super::retries::{Begun, Retry, begin};
use super::{Error, Service, day_of, invalid, require, timestamp};
use crate::keys::{Caller, Role};
use crate::store::appeals as appeal_records;
use crate::store::authorizations as authorization_records;
use crate::store::requests::{self, Determination, NewEvent, Request};
use crate::store::{self, Tx, now_ms};

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

/// The rows a queue page holds unless the caller asks for fewer, and the most it may ask.
const QUEUE_PAGE: i64 = 100;
const QUEUE_PAGE_MAX: i64 = 500;

/// What a reviewer asks of the queue: `GET /v1/queue?limit=&after=&organization=&urgency=&assigned=&format=`.
#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    pub limit: Option<String>,
    /// The `next` of the page before.
    pub after: Option<String>,
    pub organization: Option<String>,
    pub urgency: Option<String>,
    /// `me`: those assigned to the caller; `nobody`: those no reviewer has taken.
    pub assigned: Option<String>,
    /// `json` (the default) or `csv`, which the adapter writes.
    pub format: Option<String>,
}

/// The requests awaiting a clinician, most urgent first, one page at a time: no number of
/// requests from one organization can push another's off the queue (a reviewer pages on, or
/// filters by organization or urgency). The audit records the ids shown.
pub async fn queue(service: &Service, caller: &Caller, query: &QueueQuery) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer, Role::Admin])?;
    let mut page = queue_page(query)?;
    page.assigned_to = match query.assigned.as_deref() {
        None => None,
        Some("me") => Some(caller.key_id.clone()),
        Some("nobody") => Some(String::new()),
        Some(_) => return Err(invalid("assigned", "`me` or `nobody`")),
    };
    let mut tx = service.store.pool.begin().await?;
    let rows = requests::queue(&mut tx, &page).await?;
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
                "drug": r.drug,
                "member": {"id": r.member.id, "name": r.member.name},
                "assigned_to": r.assigned_name.as_ref().map(|name| json!({
                    "name": name,
                    "me": r.assigned_to.as_deref() == Some(caller.key_id.as_str()),
                })),
                "recommendation": r.outcome,
                "urgency": r.urgency,
                "received_at": timestamp(r.created_at),
                "due_at": timestamp(due),
                "minutes_left": (due - now) / 60_000,
                "late": now > due,
            })
        })
        .collect();
    // A full page may have a next one; the cursor is where this one ended.
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == page.limit)
        .map(|r| format!("{}.{}.{}", r.due_at.unwrap_or(0), r.created_at, r.id));
    let shown: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let target = if shown.is_empty() {
        "queue".to_string()
    } else {
        format!("queue:{}", shown.join(","))
    };
    store::audit(&mut tx, &caller.audit_record("queue.read", &target)).await?;
    tx.commit().await?;
    Ok(json!({ "items": items, "next": next }))
}

/// A queue query read into a page, each bad parameter named.
fn queue_page(query: &QueueQuery) -> Result<requests::QueuePage, Error> {
    let limit = match query.limit.as_deref() {
        None => QUEUE_PAGE,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=QUEUE_PAGE_MAX).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("a whole number from 1 to {QUEUE_PAGE_MAX}"),
                )
            })?,
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| {
            invalid("after", "not a cursor this service gave (`next` of a page)")
        })?),
    };
    let urgency = match query.urgency.as_deref() {
        None => None,
        Some(u @ ("standard" | "expedited")) => Some(u.to_string()),
        Some(_) => return Err(invalid("urgency", "`standard` or `expedited`")),
    };
    let organization = match query.organization.as_deref() {
        None => None,
        Some(org) if !org.is_empty() && org.len() <= 200 && !org.chars().any(char::is_control) => {
            Some(org.to_string())
        }
        Some(_) => return Err(invalid("organization", "an organization id")),
    };
    Ok(requests::QueuePage {
        limit,
        after,
        organization,
        urgency,
        assigned_to: None,
    })
}

/// `due.created.id` as `queue` writes it.
fn parse_cursor(text: &str) -> Option<(i64, i64, String)> {
    let mut parts = text.splitn(3, '.');
    let due = parts.next()?.parse().ok()?;
    let created = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plausible.then(|| (due, created, id.to_string()))
}

/// What a denial of a stored request may cite, its case as it now is
/// ([`denial_grounds`]).
pub(super) async fn grounds_of(
    tx: &mut Tx,
    service: &Service,
    row: &Request,
) -> Result<Vec<super::evaluate::Ground>, Error> {
    let case = requests::current_case(tx, row).await?;
    denial_grounds(
        service,
        &case,
        &row.policy,
        &row.policy_version,
        day_of(row.created_at),
    )
}

/// What a reviewer asks the requester, in plain words, and by when.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InformationRequestBody {
    /// 1 to 10 questions, each in 1 to 2,000 characters.
    pub questions: Vec<String>,
    /// The day the answers are asked for, `YYYY-MM-DD`: from today to the plan's due time.
    pub answer_by: String,
}

/// A reviewer sends a request in review back to its requester with questions in plain words
/// and the day the answers are asked for (no later than the plan's clock, which keeps
/// running). The requester answers them with the facts (`requests::complete`, `answers`), and
/// the request comes back to review unless the policy then approves it.
pub async fn ask_for_information(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &InformationRequestBody,
) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer])?;
    let questions: Vec<&str> = body.questions.iter().map(|q| q.trim()).collect();
    if questions.is_empty()
        || questions.len() > super::requests::QUESTIONS_MAX
        || questions
            .iter()
            .any(|q| q.is_empty() || q.chars().count() > 2_000)
    {
        return Err(invalid(
            "questions",
            "1 to 10 questions in words, each in 1 to 2,000 characters",
        ));
    }
    let answer_by = priorauth_core::date::Date::parse(&body.answer_by)
        .ok_or_else(|| invalid("answer_by", "a date as YYYY-MM-DD"))?;
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    let today = day_of(now_ms());
    let due = row.due_at.map(day_of);
    if answer_by < today || due.is_some_and(|due| answer_by > due) {
        return Err(invalid(
            "answer_by",
            format!(
                "from today ({today}) to the plan's due day ({})",
                due.map_or("none".to_string(), |d| d.to_string())
            ),
        ));
    }
    let now = now_ms();
    if !requests::pend_for_information(&mut tx, id, now).await? {
        return Err(Error::Conflict(format!(
            "the request is `{}`, not in review",
            row.status
        )));
    }
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "information_requested",
            actor: &caller.key_id,
            at: now,
            outcome: &row.outcome,
            case_json: &json!({
                "questions": questions,
                "answer_by": answer_by.to_string(),
                "reviewer": caller.name,
            })
            .to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    finish_decision(service, tx, caller, id, "request.ask_for_information", None).await
}

/// Who takes a request in review: `{"assign": true}` takes it (from whoever had it: a team
/// lead may reassign), `false` releases it to the queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    pub assign: bool,
}

/// A reviewer takes a request in review, or gives it back: the queue shows who has it, so
/// that two reviewers do not work the same request. The assignment is part of the request's
/// audited state.
pub async fn assign(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &AssignmentBody,
) -> Result<Value, Error> {
    require(caller, &[Role::Reviewer])?;
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    let to = body
        .assign
        .then_some((caller.key_id.as_str(), caller.name.as_str()));
    if !requests::assign(&mut tx, &row.id, to).await? {
        return Err(Error::Conflict(format!(
            "the request is `{}`, not in review",
            row.status
        )));
    }
    let action = if body.assign {
        "request.assign"
    } else {
        "request.release"
    };
    store::audit(
        &mut tx,
        &caller
            .audit_record(action, &row.id)
            .binding(store::Binds::Request),
    )
    .await?;
    tx.commit().await?;
    Ok(json!({
        "id": row.id,
        "assigned_to": body.assign.then(|| json!({"name": caller.name, "me": true})),
    }))
}

/// A clinician's determination on a request in review: approve (as asked or with changes
/// within the label's bounds) or deny, with the reviewer's credentials.
pub async fn determine(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &DeterminationBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    check_determination(caller, body)?;
    // An approval joins the member's course: held before the transaction opens, as a
    // submission holds it (see `courses::hold`), so the two never place on the same records.
    let _course = super::courses::hold(service, id, &Value::Null).await?;
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    record_determination(&mut tx, service, caller, id, body).await?;
    let view = finish_decision(service, tx, caller, id, "request.determination", retry).await?;
    Ok((view, false))
}

/// The notice a determination would send, composed in a transaction that records it and is
/// then rolled back: it is checked as the determination is, and its words are the words the
/// determination will send (save the authorization's number, drawn when it is recorded).
pub async fn preview(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &DeterminationBody,
) -> Result<Value, Error> {
    check_determination(caller, body)?;
    let mut tx = service.store.pool.begin().await?;
    record_determination(&mut tx, service, caller, id, body).await?;
    let row = fetch(&mut tx, caller, id).await?;
    let notice = if body.decision == DeterminationDecision::Deny {
        notices::denial_notice(&mut tx, service, &row).await?
    } else {
        notices::approval_notice_of(&mut tx, service, &row, notices::Numbered::NotYet).await?
    };
    tx.rollback().await?;
    // The preview shows the member's data: its reading is audited like the notice's.
    let mut tx = service.store.pool.begin().await?;
    store::audit(
        &mut tx,
        &caller.audit_record("request.determination.preview", id),
    )
    .await?;
    tx.commit().await?;
    Ok(json!({"request_id": id, "recorded": false, "notice": notice}))
}

/// What a determination's body must be before any record is read.
fn check_determination(caller: &Caller, body: &DeterminationBody) -> Result<(), Error> {
    require(caller, &[Role::Reviewer])?;
    // The notice states it whole: a reason a member can read, not a file.
    if body.reason.trim().is_empty() || body.reason.chars().count() > 2_000 {
        return Err(invalid(
            "reason",
            "give the specific reason, in 1 to 2,000 characters",
        ));
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
    if body.decision == DeterminationDecision::ApproveWithChanges
        && body.changes.as_ref().is_none_or(Changes::is_empty)
    {
        return Err(invalid(
            "changes",
            "an approval with changes names what changes: `units`, `cycles`, `period_days` or `end`",
        ));
    }
    Ok(())
}

/// Records a determination checked by `check_determination` in `tx`: against the request's
/// state, its policy's criteria and what fails it, then the decision, its authorization and
/// its event.
async fn record_determination(
    tx: &mut Tx,
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &DeterminationBody,
) -> Result<(), Error> {
    let row = fetch(tx, caller, id).await?;
    if row.status != "pending_review" {
        return Err(Error::Conflict(format!(
            "the request is `{}`, not in review",
            row.status
        )));
    }
    // A request no policy governs has no criteria to cite: the determination names its basis
    // in the reviewer's words (the plan's benefit, a medical-necessity standard).
    let governed = !row.policy.is_empty();
    if governed {
        let policy = service
            .engine
            .policy_index(&row.policy)
            .and_then(|i| service.engine.policies.get(i))
            .ok_or_else(|| Error::Internal(format!("policy {} is not loaded", row.policy)))?;
        if !policy.criteria.iter().any(|c| c.id == body.criterion) {
            return Err(invalid(
                "criterion",
                format!("`{}` is not a criterion of {}", body.criterion, row.policy),
            ));
        }
        if body.decision == DeterminationDecision::Deny {
            let grounds = grounds_of(tx, service, &row).await?;
            if !grounds.iter().any(|g| g.id == body.criterion) {
                let offered: Vec<&str> = grounds.iter().map(|g| g.id.as_str()).collect();
                return Err(invalid(
                    "criterion",
                    format!(
                        "`{}` does not fail this request (it is met, or not one its pathways ask): a denial cites a criterion that is not met, cannot be settled from the case, or an exclusion that applies; this request's are {}",
                        body.criterion,
                        if offered.is_empty() {
                            "none".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ),
                ));
            }
        }
    } else if body.criterion.trim().is_empty() || body.criterion.len() > 200 {
        return Err(invalid(
            "criterion",
            "no policy governs this request: name the basis of the determination (1 to 200 characters)",
        ));
    }
    let changes = body.changes.clone().unwrap_or_default();
    // What the request asks beyond what an approval of it may cover (units per cycle, cycles).
    // The request as an approval of it reads it now, evaluated once for the checks below.
    let now = match (body.decision, governed) {
        (DeterminationDecision::Deny, _) | (_, false) => None,
        _ => Some(current(tx, service, &row).await?),
    };
    let asked_beyond = match &now {
        Some(Current::Governed(evaluated)) => evaluated
            .bound
            .asked_beyond
            .map(|asked| (asked, evaluated.bound)),
        _ => None,
    };
    // A plain approval grants what the request asks: one that would grant less is an approval
    // with changes, whose notice tells the provider what was not approved and how to appeal.
    if let (DeterminationDecision::Approve, Some(((units, cycles), bound))) =
        (body.decision, asked_beyond)
    {
        return Err(invalid(
            "decision",
            format!(
                "the request asks {units} units per cycle for {cycles} cycles; an approval covers at most {} units per cycle and {} cycles here: record `approve_with_changes` naming the terms approved, so that the provider is told what was not",
                bound.max_units_per_cycle, bound.max_cycles
            ),
        ));
    }
    // An approval with changes must change what the request as asked would be granted: one
    // that does not is an approval, and a notice of changes that changed nothing misleads.
    // (Unless the request asks more than may be approved: its terms as asked are already cut.)
    if let (DeterminationDecision::ApproveWithChanges, Some(now), None) =
        (body.decision, &now, asked_beyond)
    {
        let changed = terms_of(service, &row, now, &changes)?;
        if let Ok(asked) = terms_of(service, &row, now, &Changes::default()) {
            let same = (
                asked.units_per_period,
                asked.cycles,
                asked.period_days,
                &asked.end_date,
            ) == (
                changed.units_per_period,
                changed.cycles,
                changed.period_days,
                &changed.end_date,
            );
            if same {
                return Err(invalid(
                    "changes",
                    format!(
                        "these are the terms of the request as asked ({} units per cycle, {} cycles, to {}): record `approve`, or change one",
                        asked.units_per_period, asked.cycles, asked.end_date
                    ),
                ));
            }
        }
    }
    let new_status = match body.decision {
        DeterminationDecision::Deny => "denied",
        _ => "approved",
    };
    let now = now_ms();
    if !requests::close_review(tx, id, new_status, now).await? {
        return Err(Error::Conflict("the request was decided meanwhile".into()));
    }
    if new_status == "approved" {
        grant(tx, service, caller, &row, &changes, Grant::New).await?;
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
    requests::insert_determination(tx, id, &determination).await?;
    let outcome = if new_status == "denied" {
        Outcome::Deny
    } else {
        Outcome::Approve
    };
    requests::add_event(
        tx,
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
    Ok(())
}

/// Why a reviewer reopens a decided request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopeningBody {
    /// The new information, in plain language.
    pub reason: String,
}

/// A reviewer reopens a clinician's denial on new information: the request is in review
/// again, due by the plan's clock from now, and its determination moves into its history.
/// An approval is not reopened here (taking an authorization back is a termination with its
/// own notice), nor a denial under appeal (the appeal decides it).
pub async fn reopen(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &ReopeningBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Reviewer])?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(invalid(
            "reason",
            "give the new information in 1 to 2000 characters",
        ));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, id).await?;
    if row.status != "denied" {
        return Err(Error::Conflict(format!(
            "the request is `{}`: only a clinician's denial is reopened",
            row.status
        )));
    }
    let plan = service
        .plans
        .get(&row.plan)
        .ok_or_else(|| Error::Internal(format!("plan {} is not loaded", row.plan)))?;
    let now = now_ms();
    let due = plan.clocks.due(row.urgency == "expedited", now);
    if !requests::reopen(&mut tx, id, due, now).await? {
        return Err(Error::Conflict("the request changed meanwhile".into()));
    }
    // Read after the update, which holds the request's row lock: an appeal filed meanwhile
    // (which takes the same lock) is seen, and this reopening rolled back.
    let appeals = appeal_records::of_request(&mut tx, id).await?;
    if appeals.iter().any(|a| a.status == "pending") {
        return Err(Error::Conflict(
            "the request has an appeal not yet decided: the appeal decides it".into(),
        ));
    }
    let superseded = requests::take_determination(&mut tx, id).await?;
    let detail = json!({
        "reason": reason,
        "superseded_determination": superseded.as_ref().map(determination_view),
    });
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "reopened",
            actor: &caller.key_id,
            at: now,
            outcome: &row.outcome,
            case_json: &detail.to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    let view = finish_decision(service, tx, caller, id, "request.reopen", retry).await?;
    Ok((view, false))
}

/// Why a request's clock is extended.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExtensionBody {
    /// What is awaited, and why the delay is in the member's interest.
    pub reason: String,
}

/// Extends a pending standard request's clock once, by the plan's `extension_hours`, with the
/// reason, which the request's history shows (the notice to the requester).
pub async fn extend(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &RequestExtensionBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Reviewer, Role::Admin])?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(invalid("reason", "give the reason in 1 to 2000 characters"));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, id).await?;
    let hours = service
        .plans
        .get(&row.plan)
        .map(|p| p.clocks.extension_hours)
        .unwrap_or(0);
    if hours == 0 {
        return Err(Error::Conflict(format!(
            "plan `{}` does not extend its decision clock",
            row.plan
        )));
    }
    let now = now_ms();
    let due = row.due_at.unwrap_or(now) + hours * 3_600_000;
    if !requests::extend(&mut tx, id, due, reason, now).await? {
        return Err(Error::Conflict(format!(
            "the request is `{}` ({}): only a pending standard request is extended, once",
            row.status, row.urgency
        )));
    }
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "extended",
            actor: &caller.key_id,
            at: now,
            outcome: &row.outcome,
            case_json: &json!({"reason": reason, "extension_hours": hours}).to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    let view = finish_decision(service, tx, caller, id, "request.extend", retry).await?;
    Ok((view, false))
}

/// Whether an approval creates its request's authorization or gives the one it has new terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grant {
    New,
    /// An approval with changes overturned on appeal: the authorization it holds (its number,
    /// units used and usage kept) takes the terms the new approval grants.
    Replace,
}

/// What a clinician's approval grants, in review or on appeal: under the policy's and the
/// label's bounds for a request a policy governs (its case evaluated again under the stored
/// version as of the day of receipt), as the reviewer states it otherwise.
pub(super) async fn grant(
    tx: &mut Tx,
    service: &Service,
    caller: &Caller,
    row: &Request,
    changes: &Changes,
    grant: Grant,
) -> Result<(), Error> {
    let terms = terms(tx, service, row, changes).await?;
    match grant {
        Grant::New => authorizations::insert(tx, caller, &terms).await,
        Grant::Replace => {
            let held = authorization_records::of_request(tx, &row.id)
                .await?
                .ok_or_else(|| Error::Internal("an approval without its authorization".into()))?;
            if !authorization_records::replace_terms(tx, &held.number, &terms).await? {
                return Err(Error::Conflict(format!(
                    "authorization `{}` has {} units used, more than the {} the new terms approve",
                    held.number, held.used_units, terms.approved_units
                )));
            }
            Ok(())
        }
    }
}

/// The terms an approval of a stored request with `changes` gives, by the policy version that
/// decided it (a request no policy governs: as the reviewer states them).
async fn terms(
    tx: &mut Tx,
    service: &Service,
    row: &Request,
    changes: &Changes,
) -> Result<authorization_records::NewAuthorization, Error> {
    terms_of(service, row, &current(tx, service, row).await?, changes)
}

/// [`terms`] of the request as [`current`] read it.
fn terms_of(
    service: &Service,
    row: &Request,
    current: &Current,
    changes: &Changes,
) -> Result<authorization_records::NewAuthorization, Error> {
    Ok(match current {
        Current::Stated(case) => authorizations::stated(
            &service.engine,
            &row.organization,
            &row.id,
            case,
            day_of(row.created_at),
            changes,
        )?,
        Current::Governed(evaluated) => authorizations::plan(
            service,
            &row.organization,
            &row.id,
            evaluated,
            changes,
            row.renews.as_deref(),
        )?,
    })
}

/// A stored request as an approval of it now reads it.
enum Current {
    /// No policy governs it: its case, whose terms the reviewer states.
    Stated(Value),
    /// Evaluated by the policy version that decided it.
    Governed(Box<super::evaluate::Evaluated>),
}

async fn current(tx: &mut Tx, service: &Service, row: &Request) -> Result<Current, Error> {
    let current = requests::current_case(tx, row).await?;
    let mut case: Value = serde_json::from_str(&current).unwrap_or(json!({}));
    // The member's course as the records hold it now, not as at receipt (a renewal's too):
    // an authorization granted since places this one after it. An approval with changes
    // overturned on appeal replaces its own authorization, which places nothing.
    super::courses::merge_records(service, &row.plan, Some(&row.id), &mut case).await?;
    if row.policy.is_empty() {
        return Ok(Current::Stated(case));
    }
    let plan = service
        .plans
        .get(&row.plan)
        .ok_or_else(|| Error::Internal("plan".into()))?
        .clone();
    let stored = Version::Stored {
        policy: &row.policy,
        version: &row.policy_version,
        check_date: false,
    };
    let evaluated = evaluate(service, &plan, case, day_of(row.created_at), stored)?;
    Ok(Current::Governed(Box::new(evaluated)))
}
