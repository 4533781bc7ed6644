//! The requests aggregate's SQL: a request row, its events (the decision history), its
//! clinician's determination, and the PAS claim it came with.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::packed::{Packed, pack, unpack};
use super::{StoreError, Tx, insert_rows};

/// A PAS submission's link to its request: the request Bundle as received and the Claim's
/// identifier (what `$inquire` finds it by).
#[derive(Debug, Clone)]
pub struct ClaimLink {
    /// The FHIR base the request reached, for the full URLs of later notifications.
    pub base: String,
    pub claim_identifier: String,
    pub item_sequence: u32,
    pub bundle: ReceivedBundle,
}

/// A PAS Bundle as received: packed for storage, and its SHA-256 (which tells a Bundle sent
/// again under its identifier from another one reusing it). Made once per Bundle, whatever
/// its number of items, by the task that parsed it.
#[derive(Debug, Clone)]
pub struct ReceivedBundle {
    pub stored: Packed,
    pub sha256: String,
}

impl ReceivedBundle {
    pub fn new(text: &str) -> ReceivedBundle {
        ReceivedBundle {
            stored: Packed::fast(text),
            sha256: super::sha256_hex(text),
        }
    }
}

/// A packed text column (`packed::unpack`) as the JSON text it holds.
fn unpacked(row: &AnyRow, column: &str) -> Result<String, sqlx::Error> {
    unpack(row.try_get(column)?).map_err(|e| e.0)
}

/// A request's member as its case names them; either may be unknown.
#[derive(Debug, Clone, Default)]
pub struct Member {
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Member {
    /// The member of a request's row (`member_id`, `member_name`).
    fn of_row(row: &sqlx::any::AnyRow) -> Result<Member, sqlx::Error> {
        Ok(Member {
            id: row.try_get("member_id")?,
            name: row.try_get("member_name")?,
        })
    }

    /// The member a case (as JSON) names, without the spaces around (a member's earlier
    /// requests are found by the id: `M-1 ` is `M-1`).
    pub fn of_case(case: &serde_json::Value) -> Member {
        let text = |pointer: &str| {
            case.pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(|text| text.trim().to_string())
        };
        Member {
            id: text("/patient/member_id"),
            name: text("/patient/name"),
        }
    }
}

/// A new request as it is stored.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub organization: String,
    /// The submitting key, also the first event's and the audit entry's actor.
    pub submitted_by: String,
    pub plan: String,
    /// The drug asked for (empty when the case names none), which reports read.
    pub drug: String,
    /// Who the request is for, as the case names them (`patient.member_id`, `patient.name`).
    pub member: Member,
    pub policy: String,
    pub policy_version: String,
    pub idempotency_key: Option<String>,
    pub body_hash: String,
    pub status: &'static str,
    pub outcome: &'static str,
    pub urgency: &'static str,
    pub due_at: Option<i64>,
    /// The case as received (with what the service added from the plan and its records).
    pub case_json: Packed,
    /// What the decision rests on (outcome, pathway, criteria), not its explanation, which
    /// is recomputed on read; a decision that cannot be recomputed is stored whole.
    pub decision_json: Packed,
    pub response_json: Packed,
    pub renews: Option<String>,
    pub created_at: i64,
    /// The first event's case and decision: empty when they are the request's case and the
    /// decision recomputed from it.
    pub event_case_json: Packed,
    pub event_decision_json: Packed,
    /// The SHA-256 of the decision as answered, when it is recomputed on read.
    pub decision_sha256: Option<String>,
    pub authorization: Option<super::authorizations::NewAuthorization>,
    pub link: Option<ClaimLink>,
}

/// A request as stored.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub organization: String,
    pub plan: String,
    pub policy: String,
    pub policy_version: String,
    pub status: String,
    pub outcome: String,
    pub urgency: String,
    pub due_at: Option<i64>,
    pub case_json: String,
    pub decision_json: String,
    pub renews: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it was decided (approved, denied, not applicable); none while pending again after a reopening.
    pub decided_at: Option<i64>,
}

impl Request {
    fn from_row(row: &AnyRow) -> Result<Request, sqlx::Error> {
        Ok(Request {
            id: row.try_get("id")?,
            organization: row.try_get("organization")?,
            plan: row.try_get("plan")?,
            policy: row.try_get("policy")?,
            policy_version: row.try_get("policy_version")?,
            status: row.try_get("status")?,
            outcome: row.try_get("outcome")?,
            urgency: row.try_get("urgency")?,
            due_at: row.try_get("due_at")?,
            case_json: unpacked(row, "case_json")?,
            decision_json: unpacked(row, "decision_json")?,
            renews: row.try_get("renews")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

/// One step of a request's history.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: i64,
    pub kind: String,
    pub actor: String,
    pub at: i64,
    pub outcome: String,
    /// Empty: the case did not change (the request's case for the first event).
    pub case_json: String,
    /// Empty: recomputed (a decision event, see `decision_sha256`) or, for a determination,
    /// the decision before it.
    pub decision_json: String,
    pub decision_sha256: Option<String>,
}

/// A clinician's determination as stored.
#[derive(Debug, Clone)]
pub struct Determination {
    pub decision: String,
    pub reason: String,
    pub criterion: String,
    pub reviewer_key: String,
    pub reviewer_name: String,
    pub reviewer_credentials: String,
    pub changes_json: String,
    pub at: i64,
}

/// A request waiting for a clinician.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub organization: String,
    pub plan: String,
    pub policy: String,
    pub outcome: String,
    pub urgency: String,
    pub due_at: Option<i64>,
    pub created_at: i64,
    /// Null for a request stored before the drug was recorded.
    pub drug: Option<String>,
    pub member: Member,
    /// The reviewer who took it: key id and name.
    pub assigned_to: Option<String>,
    pub assigned_name: Option<String>,
}

/// Which page of the work list to read ([`list`]).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub organization: Option<String>,
    /// Matches nothing (a clinic naming another organization, whose requests it cannot see).
    pub nothing: bool,
    pub status: Option<String>,
    pub plan: Option<String>,
    pub drug: Option<String>,
    pub urgency: Option<String>,
    /// Pending requests due before this time (ms since 1970).
    pub due_before: Option<i64>,
    /// A member id, or part of a member's name.
    pub member: Option<String>,
    pub limit: i64,
    /// The last row of the page before: (created_at, id).
    pub after: Option<(i64, String)>,
}

/// A row of the work list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub organization: String,
    pub plan: String,
    pub policy: String,
    pub drug: Option<String>,
    pub status: String,
    pub outcome: String,
    pub urgency: String,
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub member: Member,
    /// The number of the authorization an approval holds.
    pub authorization: Option<String>,
}

/// The first answer given to an idempotency key, and what its decision is recomputed from.
#[derive(Debug, Clone)]
pub struct FirstAnswer {
    pub id: String,
    pub body_hash: String,
    /// The answer without its decision.
    pub response_json: String,
    pub case_json: String,
    pub policy: String,
    pub policy_version: String,
    pub created_at: i64,
    /// The first event's decision: empty when recomputed.
    pub decision_json: Option<String>,
    pub decision_sha256: Option<String>,
}

/// The PAS claim a request came with.
#[derive(Debug, Clone)]
pub struct StoredClaim {
    pub organization: String,
    /// The request Bundle as stored: restoring and reading it is work by its size, which its
    /// reader bounds (`fhir::stored_sources`), so it is restored on demand.
    bundle: String,
    pub item_sequence: i64,
    pub base: String,
}

impl StoredClaim {
    /// The request Bundle's JSON text if it is at most `limit` bytes; `None` if longer, found
    /// out by restoring at most `limit` bytes of it (`packed::unpack_within`).
    pub fn bundle_within(&self, limit: usize) -> Result<Option<String>, StoreError> {
        super::packed::unpack_within(&self.bundle, limit)
    }

    /// The request Bundle's JSON text, whatever its size.
    pub fn into_bundle(self) -> Result<String, StoreError> {
        unpack(self.bundle)
    }
}

/// Whether a status is a decision (the report's turnaround ends at the first).
impl NewRequest {
    /// When it was decided: at creation when it was decided at once, else not yet.
    pub(super) fn decided_at(&self) -> Option<i64> {
        is_decided(self.status).then_some(self.created_at)
    }
}

fn is_decided(status: &str) -> bool {
    matches!(status, "approved" | "denied" | "not_applicable")
}

/// Inserts new requests (their rows, first events and FHIR links) by one statement per kind
/// of row and chunk (`row_chunks`), for the group commit; answers the ids stored. A request whose
/// organization already has its idempotency key is not stored, nor its event or link.
pub async fn insert_all(
    tx: &mut Tx,
    requests: &[&NewRequest],
) -> Result<HashSet<String>, StoreError> {
    let returned = insert_rows(
        tx,
        "INSERT INTO requests (id, organization, submitted_by, plan, policy, policy_version, idempotency_key, body_hash, status, outcome, urgency, due_at, case_json, decision_json, response_json, renews, created_at, updated_at, drug, decided_at, member_id, member_name)",
        "ON CONFLICT DO NOTHING RETURNING id",
        22,
        requests,
        |query, request| {
            query
            .bind(&request.id)
            .bind(&request.organization)
            .bind(&request.submitted_by)
            .bind(&request.plan)
            .bind(&request.policy)
            .bind(&request.policy_version)
            .bind(&request.idempotency_key)
            .bind(&request.body_hash)
            .bind(request.status)
            .bind(request.outcome)
            .bind(request.urgency)
            .bind(request.due_at)
            .bind(request.case_json.as_str())
            .bind(request.decision_json.as_str())
            .bind(request.response_json.as_str())
            .bind(&request.renews)
            .bind(request.created_at)
            .bind(request.created_at)
            .bind(&request.drug)
            .bind(request.decided_at())
            .bind(&request.member.id)
            .bind(&request.member.name)
        },
    )
    .await?;
    let stored = returned
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()?;
    let new: Vec<&NewRequest> = requests
        .iter()
        .copied()
        .filter(|r| stored.contains(&r.id))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO request_events (request_id, seq, kind, actor, at, outcome, case_json, decision_json, decision_sha256)",
        "",
        9,
        &new,
        |query, request| {
            query
                .bind(&request.id)
                .bind(1_i64)
                .bind("submitted")
                .bind(&request.submitted_by)
                .bind(request.created_at)
                .bind(request.outcome)
                .bind(request.event_case_json.as_str())
                .bind(request.event_decision_json.as_str())
                .bind(&request.decision_sha256)
        },
    )
    .await?;
    let linked: Vec<(&NewRequest, &ClaimLink)> = new
        .iter()
        .filter_map(|r| r.link.as_ref().map(|link| (*r, link)))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO fhir_claims (request_id, organization, claim_identifier, item_sequence, bundle_json, base, created_at)",
        "",
        7,
        &linked,
        |query, (request, link)| {
            query
                .bind(&request.id)
                .bind(&request.organization)
                .bind(&link.claim_identifier)
                .bind(i64::from(link.item_sequence))
                .bind(link.bundle.stored.as_str())
                .bind(&link.base)
                .bind(request.created_at)
        },
    )
    .await?;
    Ok(stored)
}

/// The columns [`Request::from_row`] reads, for the statements that read a request.
macro_rules! request_columns {
    () => {
        "id, organization, plan, policy, policy_version, status, outcome, urgency, due_at, case_json, decision_json, renews, created_at, updated_at, decided_at"
    };
}

/// A request by id.
pub async fn fetch(tx: &mut Tx, id: &str) -> Result<Option<Request>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        request_columns!(),
        " FROM requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| Request::from_row(&r)).transpose()?)
}

/// What else a request has, found with the request itself: reading it then asks only for
/// what is there (on SQLite each statement is a round trip to the connection's thread, which
/// the reads' profile showed as their largest cost).
#[derive(Debug, Clone, Copy)]
pub struct Related {
    pub authorization: bool,
    pub determination: bool,
    pub attachments: bool,
    pub comments: bool,
    /// It came through PAS: a row in `fhir_claims`.
    pub claim: bool,
}

/// A request by id, with what else it has ([`Related`]).
pub async fn fetch_with_related(
    tx: &mut Tx,
    id: &str,
) -> Result<Option<(Request, Related)>, StoreError> {
    // `CASE … THEN 1 ELSE 0 END`: an integer on both back ends, where EXISTS is a boolean on
    // PostgreSQL and an integer on SQLite.
    let row = sqlx::query(concat!(
        "SELECT ",
        request_columns!(),
        ", \
         CASE WHEN EXISTS (SELECT 1 FROM authorizations a WHERE a.request_id = r.id) THEN 1 ELSE 0 END AS has_authorization, \
         CASE WHEN EXISTS (SELECT 1 FROM determinations d WHERE d.request_id = r.id) THEN 1 ELSE 0 END AS has_determination, \
         CASE WHEN EXISTS (SELECT 1 FROM request_attachments f WHERE f.request_id = r.id) THEN 1 ELSE 0 END AS has_attachments, \
         CASE WHEN EXISTS (SELECT 1 FROM request_comments c WHERE c.request_id = r.id) THEN 1 ELSE 0 END AS has_comments, \
         CASE WHEN EXISTS (SELECT 1 FROM fhir_claims k WHERE k.request_id = r.id) THEN 1 ELSE 0 END AS has_claim \
         FROM requests r WHERE r.id = $1",
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let has = |column: &str| row.try_get::<i64, _>(column).map(|n| n != 0);
    let related = Related {
        authorization: has("has_authorization")?,
        determination: has("has_determination")?,
        attachments: has("has_attachments")?,
        comments: has("has_comments")?,
        claim: has("has_claim")?,
    };
    Ok(Some((Request::from_row(&row)?, related)))
}

/// A request's case as it now stands: the last one a submission or completion gave, else
/// the case as received.
pub async fn current_case(tx: &mut Tx, request: &Request) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT case_json FROM request_events WHERE request_id = $1 AND kind IN ('submitted', 'completed') AND case_json <> '' ORDER BY seq DESC LIMIT 1")
        .bind(&request.id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => unpacked(&row, "case_json")?,
        None => request.case_json.clone(),
    })
}

/// A request's history, oldest first.
pub async fn events(tx: &mut Tx, id: &str) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query("SELECT seq, kind, actor, at, outcome, case_json, decision_json, decision_sha256 FROM request_events WHERE request_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    let events = rows
        .iter()
        .map(|e| {
            Ok(Event {
                seq: e.try_get("seq")?,
                kind: e.try_get("kind")?,
                actor: e.try_get("actor")?,
                at: e.try_get("at")?,
                outcome: e.try_get("outcome")?,
                case_json: unpacked(e, "case_json")?,
                decision_json: unpacked(e, "decision_json")?,
                decision_sha256: e.try_get("decision_sha256")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(events)
}

/// A step of a request's history, as it is appended.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub at: i64,
    pub outcome: &'a str,
    pub case_json: &'a str,
    pub decision_json: &'a str,
    pub decision_sha256: Option<&'a str>,
}

/// Appends a step to a request's history.
pub async fn add_event(tx: &mut Tx, id: &str, event: &NewEvent<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO request_events (request_id, seq, kind, actor, at, outcome, case_json, decision_json, decision_sha256) \
         VALUES ($1, (SELECT COUNT(*) + 1 FROM request_events WHERE request_id = $1), $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(event.kind)
    .bind(event.actor)
    .bind(event.at)
    .bind(event.outcome)
    .bind(pack(event.case_json))
    .bind(pack(event.decision_json))
    .bind(event.decision_sha256)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes a request's row lock (until commit) if it is still in `status`; false when it is
/// not. What the transition reads afterwards (its events) is then what the row says: no
/// concurrent transition can commit in between.
pub async fn lock_in(tx: &mut Tx, id: &str, status: &str) -> Result<bool, StoreError> {
    let locked =
        sqlx::query("UPDATE requests SET updated_at = updated_at WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(status)
            .execute(&mut **tx)
            .await?;
    Ok(locked.rows_affected() == 1)
}

/// A request's new decision after a completion (its new case is the completion event's),
/// only while it still waits for information; false when it no longer does (of concurrent
/// completions one wins: the others wait on the row, then find it changed).
pub async fn complete(
    tx: &mut Tx,
    id: &str,
    completion: &Completion<'_>,
) -> Result<bool, StoreError> {
    // A member the completion named, for a request that named none: its course is found by it.
    let updated = sqlx::query("UPDATE requests SET status = $1, outcome = $2, due_at = $3, decision_json = $4, updated_at = $5, decided_at = COALESCE(decided_at, $7), member_id = COALESCE(member_id, $8) WHERE id = $6 AND status = 'pending_information'")
        .bind(completion.status)
        .bind(completion.outcome)
        .bind(completion.due_at)
        .bind(pack(completion.decision_json))
        .bind(completion.at)
        .bind(id)
        .bind(is_decided(completion.status).then_some(completion.at))
        .bind(completion.member_id)
        .execute(&mut **tx)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// A completed request's new state ([`complete`]).
#[derive(Debug)]
pub struct Completion<'a> {
    pub status: &'a str,
    pub outcome: &'a str,
    pub due_at: Option<i64>,
    pub decision_json: &'a str,
    pub at: i64,
    /// The member the completed case names (`patient.member_id`), kept if the row has none.
    pub member_id: Option<&'a str>,
}

/// A request's status after a clinician's determination, only while it is still in review;
/// false when it was decided meanwhile.
pub async fn close_review(
    tx: &mut Tx,
    id: &str,
    status: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET status = $1, updated_at = $2, decided_at = COALESCE(decided_at, $2) WHERE id = $3 AND status = 'pending_review'",
    )
    .bind(status)
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A request in review assigned to a reviewer (`Some((key id, name))`) or released
/// (`None`); false when it is not in review.
pub async fn assign(tx: &mut Tx, id: &str, to: Option<(&str, &str)>) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET assigned_to = $1, assigned_name = $2 WHERE id = $3 AND status = 'pending_review'",
    )
    .bind(to.map(|(key, _)| key))
    .bind(to.map(|(_, name)| name))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A request withdrawn by its requester, only while it is still pending (waiting for
/// information or for a clinician); false when it is not.
pub async fn withdraw(tx: &mut Tx, id: &str, at: i64) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET status = 'withdrawn', updated_at = $1 WHERE id = $2 AND status IN ('pending_information', 'pending_review')",
    )
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A request in review sent back to its requester for information a reviewer asks; false
/// when it is no longer in review. It leaves whoever had taken it.
pub async fn pend_for_information(tx: &mut Tx, id: &str, at: i64) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET status = 'pending_information', updated_at = $1, assigned_to = NULL, assigned_name = NULL WHERE id = $2 AND status = 'pending_review'",
    )
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A pending standard request's clock extended once, with the reason; false when it is
/// decided, expedited, or extended already.
pub async fn extend(
    tx: &mut Tx,
    id: &str,
    due_at: i64,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET due_at = $1, extension_reason = $2, updated_at = $3 WHERE id = $4 \
         AND status IN ('pending_information', 'pending_review') AND urgency = 'standard' AND extension_reason IS NULL",
    )
    .bind(due_at)
    .bind(reason)
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A denied request reopened for a clinician on new information, with its new due time (its
/// decision to come is measured against it, from receipt); false when it is no longer denied.
pub async fn reopen(tx: &mut Tx, id: &str, due_at: i64, at: i64) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET status = 'pending_review', due_at = $1, updated_at = $2, decided_at = NULL WHERE id = $3 AND status = 'denied'",
    )
    .bind(due_at)
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A request approved on appeal, from `status` (denied, or approved with changes); false
/// when its status changed meanwhile.
pub async fn approve_on_appeal(
    tx: &mut Tx,
    id: &str,
    status: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE requests SET status = 'approved', updated_at = $1 WHERE id = $2 AND status = $3",
    )
    .bind(at)
    .bind(id)
    .bind(status)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Removes a request's determination, answering it, so that a new one can be recorded (an
/// appeal's overturn, a reopening); the caller keeps it in the request's history.
pub async fn take_determination(
    tx: &mut Tx,
    id: &str,
) -> Result<Option<Determination>, StoreError> {
    let determination = determination(tx, id).await?;
    sqlx::query("DELETE FROM determinations WHERE request_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE requests SET determination = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(determination)
}

/// Records a clinician's determination.
pub async fn insert_determination(
    tx: &mut Tx,
    request_id: &str,
    determination: &Determination,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO determinations (request_id, decision, reason, criterion, reviewer_key, reviewer_name, reviewer_credentials, changes_json, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(request_id)
        .bind(&determination.decision)
        .bind(&determination.reason)
        .bind(&determination.criterion)
        .bind(&determination.reviewer_key)
        .bind(&determination.reviewer_name)
        .bind(&determination.reviewer_credentials)
        .bind(&determination.changes_json)
        .bind(determination.at)
        .execute(&mut **tx)
        .await?;
    // Its decision kept with the request, which the report reads without a lookup.
    sqlx::query("UPDATE requests SET determination = $1 WHERE id = $2")
        .bind(&determination.decision)
        .bind(request_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A request's determination, if a clinician made one.
pub async fn determination(tx: &mut Tx, id: &str) -> Result<Option<Determination>, StoreError> {
    let row = sqlx::query("SELECT decision, reason, criterion, reviewer_key, reviewer_name, reviewer_credentials, changes_json, at FROM determinations WHERE request_id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let determination = row
        .map(|d| -> Result<Determination, sqlx::Error> {
            Ok(Determination {
                decision: d.try_get("decision")?,
                reason: d.try_get("reason")?,
                criterion: d.try_get("criterion")?,
                reviewer_key: d.try_get("reviewer_key")?,
                reviewer_name: d.try_get("reviewer_name")?,
                reviewer_credentials: d.try_get("reviewer_credentials")?,
                changes_json: d.try_get("changes_json")?,
                at: d.try_get("at")?,
            })
        })
        .transpose()?;
    Ok(determination)
}

/// Which page of the review queue to read.
#[derive(Debug, Clone, Default)]
pub struct QueuePage {
    /// The most rows answered.
    pub limit: i64,
    /// The last row of the page before: (due_at, created_at, id).
    pub after: Option<(i64, i64, String)>,
    /// Only this organization's requests.
    pub organization: Option<String>,
    /// Only requests of this urgency.
    pub urgency: Option<String>,
    /// Only those assigned to this key id; `Some("")`: only those nobody has taken.
    pub assigned_to: Option<String>,
}

/// The review queue, most urgent first: by due time, then receipt, then id, so that a page
/// starts exactly after the row the previous one ended on (keyset pagination, no offset).
pub async fn queue(tx: &mut Tx, page: &QueuePage) -> Result<Vec<Queued>, StoreError> {
    let (due, created, id) = page
        .after
        .clone()
        .unwrap_or((i64::MIN, i64::MIN, String::new()));
    // A request always has its due time (both submission paths set it); COALESCE keeps a
    // row without one in order rather than out of every page.
    let rows = sqlx::query(
        "SELECT id, organization, plan, policy, outcome, urgency, due_at, created_at, drug, member_id, member_name, assigned_to, assigned_name FROM requests \
         WHERE status = 'pending_review' \
         AND ($1 IS NULL OR organization = $1) AND ($2 IS NULL OR urgency = $2) \
         AND ($7 IS NULL OR COALESCE(assigned_to, '') = $7) \
         AND (COALESCE(due_at, 0) > $3 OR (COALESCE(due_at, 0) = $3 AND (created_at > $4 OR (created_at = $4 AND id > $5)))) \
         ORDER BY COALESCE(due_at, 0), created_at, id LIMIT $6",
    )
    .bind(page.organization.as_deref())
    .bind(page.urgency.as_deref())
    .bind(due)
    .bind(created)
    .bind(id)
    .bind(page.limit)
    .bind(page.assigned_to.as_deref())
    .fetch_all(&mut **tx)
    .await?;
    let queued = rows
        .iter()
        .map(|r| {
            Ok(Queued {
                id: r.try_get("id")?,
                organization: r.try_get("organization")?,
                plan: r.try_get("plan")?,
                policy: r.try_get("policy")?,
                outcome: r.try_get("outcome")?,
                urgency: r.try_get("urgency")?,
                due_at: r.try_get("due_at")?,
                created_at: r.try_get("created_at")?,
                drug: r.try_get("drug")?,
                member: Member::of_row(r)?,
                assigned_to: r.try_get("assigned_to")?,
                assigned_name: r.try_get("assigned_name")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(queued)
}

/// The work list, newest first: by receipt, then id, so that a page starts exactly after the
/// row the previous one ended on (keyset pagination, no offset). The member filter matches a
/// member id exactly or a name containing the text (ASCII letters in any case).
pub async fn list(tx: &mut Tx, filter: &ListFilter) -> Result<Vec<Listed>, StoreError> {
    if filter.nothing {
        return Ok(Vec::new());
    }
    let (created, id) = filter.after.clone().unwrap_or((i64::MAX, String::new()));
    // With no cursor every row is before (i64::MAX, ""): the id comparison never decides.
    let name_pattern = filter.member.as_ref().map(|m| {
        let escaped = m
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = sqlx::query(
        "SELECT r.id, r.organization, r.plan, r.policy, r.drug, r.status, r.outcome, r.urgency, r.due_at, r.created_at, r.decided_at, r.member_id, r.member_name, \
         (SELECT a.number FROM authorizations a WHERE a.request_id = r.id ORDER BY a.created_at DESC LIMIT 1) AS authorization_number \
         FROM requests r \
         WHERE ($1 IS NULL OR r.organization = $1) AND ($2 IS NULL OR r.status = $2) \
         AND ($3 IS NULL OR r.plan = $3) AND ($4 IS NULL OR r.drug = $4) AND ($5 IS NULL OR r.urgency = $5) \
         AND ($6 IS NULL OR (r.status IN ('pending_review', 'pending_information') AND r.due_at < $6)) \
         AND ($7 IS NULL OR r.member_id = $7 OR LOWER(r.member_name) LIKE $8 ESCAPE '\\') \
         AND (r.created_at < $9 OR (r.created_at = $9 AND r.id < $10)) \
         ORDER BY r.created_at DESC, r.id DESC LIMIT $11",
    )
    .bind(filter.organization.as_deref())
    .bind(filter.status.as_deref())
    .bind(filter.plan.as_deref())
    .bind(filter.drug.as_deref())
    .bind(filter.urgency.as_deref())
    .bind(filter.due_before)
    .bind(filter.member.as_deref())
    .bind(name_pattern)
    .bind(created)
    .bind(id)
    .bind(filter.limit)
    .fetch_all(&mut **tx)
    .await?;
    let listed = rows
        .iter()
        .map(|r| {
            Ok(Listed {
                id: r.try_get("id")?,
                organization: r.try_get("organization")?,
                plan: r.try_get("plan")?,
                policy: r.try_get("policy")?,
                drug: r.try_get("drug")?,
                status: r.try_get("status")?,
                outcome: r.try_get("outcome")?,
                urgency: r.try_get("urgency")?,
                due_at: r.try_get("due_at")?,
                created_at: r.try_get("created_at")?,
                decided_at: r.try_get("decided_at")?,
                member: Member::of_row(r)?,
                authorization: r.try_get("authorization_number")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(listed)
}

/// The first answer an organization was given for an idempotency key.
pub async fn first_answer(
    pool: &sqlx::AnyPool,
    organization: &str,
    key: &str,
) -> Result<Option<FirstAnswer>, StoreError> {
    let row = sqlx::query("SELECT r.id, r.body_hash, r.response_json, r.case_json, r.policy, r.policy_version, r.created_at, e.decision_json, e.decision_sha256 FROM requests r LEFT JOIN request_events e ON e.request_id = r.id AND e.seq = 1 WHERE r.organization = $1 AND r.idempotency_key = $2")
        .bind(organization)
        .bind(key)
        .fetch_optional(pool)
        .await?;
    let answer = row
        .map(|row| -> Result<FirstAnswer, sqlx::Error> {
            Ok(FirstAnswer {
                id: row.try_get("id")?,
                body_hash: row.try_get("body_hash")?,
                response_json: unpacked(&row, "response_json")?,
                case_json: unpacked(&row, "case_json")?,
                policy: row.try_get("policy")?,
                policy_version: row.try_get("policy_version")?,
                created_at: row.try_get("created_at")?,
                decision_json: row
                    .try_get::<Option<String>, _>("decision_json")?
                    .map(unpack)
                    .transpose()
                    .map_err(|e| e.0)?,
                decision_sha256: row.try_get("decision_sha256")?,
            })
        })
        .transpose()?;
    Ok(answer)
}

/// The PAS claim a request came with, if it came through PAS.
pub async fn claim(tx: &mut Tx, request_id: &str) -> Result<Option<StoredClaim>, StoreError> {
    let row = sqlx::query("SELECT organization, bundle_json, item_sequence, base FROM fhir_claims WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?;
    let claim = row
        .map(|row| -> Result<StoredClaim, sqlx::Error> {
            Ok(StoredClaim {
                organization: row.try_get("organization")?,
                bundle: row.try_get("bundle_json")?,
                item_sequence: row.try_get("item_sequence")?,
                base: row.try_get("base")?,
            })
        })
        .transpose()?;
    Ok(claim)
}

/// A request found by its PAS Claim identifier.
#[derive(Debug, Clone)]
pub struct ClaimMatch {
    pub request_id: String,
    pub organization: String,
    /// `system|value` of the Claim it came with.
    pub claim_identifier: String,
    /// The sequence of the Claim's item it answers.
    pub item_sequence: i64,
}

/// The plan, member (`member_id`) and drug of a request, or of the request an authorization
/// was granted to (`reference` is either's id): the member's course a write to it joins.
pub async fn course_of(
    pool: &sqlx::AnyPool,
    reference: &str,
) -> Result<Option<(String, Option<String>, Option<String>)>, StoreError> {
    let row = sqlx::query("SELECT plan, member_id, drug FROM requests WHERE id = $1 OR id IN (SELECT request_id FROM authorizations WHERE number = $1) LIMIT 1")
        .bind(reference)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|row| -> Result<_, sqlx::Error> {
            Ok((
                row.try_get("plan")?,
                row.try_get("member_id")?,
                row.try_get("drug")?,
            ))
        })
        .transpose()?)
}

/// The PAS Claim (its `system|value`, and its organization) of a request named by its id or
/// by its authorization's number: what a PAS 2.2.1 inquiry's `administrationReferenceNumber`
/// or `authorizationNumber` names.
pub async fn claim_of_reference(
    pool: &sqlx::AnyPool,
    reference: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query("SELECT claim_identifier, organization FROM fhir_claims WHERE request_id = $1 OR request_id IN (SELECT request_id FROM authorizations WHERE number = $1) LIMIT 1")
        .bind(reference)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|row| -> Result<_, sqlx::Error> {
            Ok((
                row.try_get("claim_identifier")?,
                row.try_get("organization")?,
            ))
        })
        .transpose()?)
}

/// Records that the PAS Claim `claim_identifier` of `organization` (an update or a
/// cancellation) withdrew request `id`, in the withdrawal's transaction; the same again is
/// nothing new.
pub async fn add_successor(
    tx: &mut Tx,
    id: &str,
    organization: &str,
    claim_identifier: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO fhir_claim_successors (request_id, organization, claim_identifier, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, claim_identifier) DO NOTHING",
    )
    .bind(id)
    .bind(organization)
    .bind(claim_identifier)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The requests that the PAS Claim `identifier` (`system|value`, exactly) of `organization`
/// (any, given none) withdrew (cancelled or replaced), newest first, at most 100.
pub async fn by_successor(
    pool: &sqlx::AnyPool,
    identifier: &str,
    organization: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT request_id FROM fhir_claim_successors WHERE ($1 IS NULL OR organization = $1) AND claim_identifier = $2 ORDER BY created_at DESC LIMIT 100")
        .bind(organization)
        .bind(identifier)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| row.try_get("request_id").map_err(StoreError::from))
        .collect()
}

/// The requests whose PAS Claim identifier is `identifier` or, given a `value`, ends in
/// `|value` (the same trace number under another system), newest first (at most 100: twice
/// the items a Claim may hold, so that an update reaches every request of the Claim it names).
///
/// `organization`: only that organization's claims. The filter comes before the limit, so
/// that another organization's claims with the same identifier cannot crowd one's own out.
pub async fn by_claim_identifier(
    pool: &sqlx::AnyPool,
    identifier: &str,
    value: Option<&str>,
    organization: Option<&str>,
) -> Result<Vec<ClaimMatch>, StoreError> {
    // Without a value, `LIKE NULL` matches nothing: the identifier alone. The value's own
    // `%`, `_` and `\` are matched as themselves (escaped), and since SQLite's LIKE ignores
    // the case of ASCII letters, a match is kept only when its value is the same exactly.
    let escaped = value.map(|value| {
        let mut pattern = String::from("%|");
        for c in value.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern
    });
    let rows = sqlx::query("SELECT request_id, organization, claim_identifier, item_sequence FROM fhir_claims WHERE (claim_identifier = $1 OR claim_identifier LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR organization = $3) ORDER BY created_at DESC LIMIT 100")
        .bind(identifier)
        .bind(escaped)
        .bind(organization)
        .fetch_all(pool)
        .await?;
    let same = |stored: &str| {
        stored == identifier
            || value.is_some_and(|value| {
                stored
                    .strip_suffix(value)
                    .is_some_and(|system| system.ends_with('|'))
            })
    };
    let found = rows
        .iter()
        .filter(|row| {
            row.try_get::<String, _>("claim_identifier")
                .is_ok_and(|stored| same(&stored))
        })
        .map(|row| {
            Ok(ClaimMatch {
                request_id: row.try_get("request_id")?,
                organization: row.try_get("organization")?,
                claim_identifier: row.try_get("claim_identifier")?,
                item_sequence: row.try_get("item_sequence")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(found)
}
