//! Appeals of a clinician's adverse determination (a denial, or an approval with changes):
//! filed by the requesting clinic for the member, the prescriber or itself, with new
//! information and attachments, on the plan's appeal clocks; decided by a reviewer who did not
//! make the determination appealed, where upholding needs a physician of the same or a similar
//! specialty and an overturn grants as an approval would; extended once where the plan's
//! rules allow; each decision with its notice. (The peer-to-peer discussions a reviewer
//! records on a request are `peer_to_peer.rs`.)

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::attachments;
use super::authorizations::Changes;
use super::request_view::determination_view;
use super::requests::{Urgency, fetch};
use super::retries::{Begun, Retry, begin};
use super::review::{Grant, grant};
use super::{Error, Service, invalid, require, text, timestamp, visible};
use crate::keys::{Caller, Role};
use crate::plans::Plan;
use crate::store::appeals::{self as records, Appeal, AppealDecision, NewAppeal};
use crate::store::authorizations as authorization_records;
use crate::store::requests::{self, Determination, NewEvent, Request};
use crate::store::{self, Tx, notifications, now_ms, random_id};

/// Who asks for the appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Appellant {
    /// The member (the clinic files it for them).
    Member,
    /// The prescribing physician.
    Prescriber,
    /// The clinic, on the member's behalf.
    Clinic,
}

impl Appellant {
    fn as_str(self) -> &'static str {
        match self {
            Appellant::Member => "member",
            Appellant::Prescriber => "prescriber",
            Appellant::Clinic => "clinic",
        }
    }
}

pub use super::attachments::AttachmentBody;

/// An appeal as filed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealBody {
    pub appellant: Appellant,
    /// `expedited` when waiting the standard time could seriously jeopardize the member's
    /// life, health or ability to regain maximum function.
    #[serde(default)]
    pub urgency: Urgency,
    /// Why another decision is asked for, with the new information.
    pub grounds: String,
    #[serde(default)]
    pub attachments: Vec<AttachmentBody>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppealOutcome {
    /// The determination appealed stands.
    Uphold,
    /// The request is approved: as an approval would grant it, or with `changes`.
    Overturn,
}

/// A reviewer's decision on an appeal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealDecisionBody {
    pub decision: AppealOutcome,
    /// The specific reason, in plain language.
    pub reason: String,
    /// For an overturn: what the approval grants instead of the request (within the label's
    /// bounds), as a determination's `changes`.
    #[serde(default)]
    pub changes: Option<Changes>,
}

/// Why an appeal needs more time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionBody {
    /// What information is awaited and how the delay is in the member's interest.
    pub reason: String,
}

/// The most characters of an appeal's grounds and of notes; of a reason.
pub(super) const GROUNDS_MAX: usize = 20_000;
const REASON_MAX: usize = 2_000;
const DAY_MS: i64 = 86_400_000;

/// Files an appeal of a request's adverse determination.
pub async fn file(
    service: &Service,
    caller: &Caller,
    request_id: &str,
    body: &AppealBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let grounds = text("grounds", &body.grounds, GROUNDS_MAX)?;
    let (attachments_json, attachments) = attachments::appeal_files(&body.attachments)?;
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, request_id).await?;
    let determination = adverse_determination(&mut tx, &row).await?;
    // The request's row lock, held to the commit: a reopening or an overturn of it waits,
    // then finds the appeal (or this filing finds the request changed).
    if !requests::lock_in(&mut tx, &row.id, &row.status).await? {
        return Err(Error::Conflict("the request changed meanwhile".into()));
    }
    let plan = plan_of(service, &row)?;
    let clocks = plan.appeal_clocks();
    let now = now_ms();
    if now > determination.at + clocks.filing_days * DAY_MS {
        return Err(Error::Conflict(format!(
            "the determination was made on {}; this plan takes appeals within {} days of it",
            timestamp(determination.at),
            clocks.filing_days
        )));
    }
    let expedited = body.urgency == Urgency::Expedited;
    let appeal = NewAppeal {
        id: random_id("apl_"),
        request_id: row.id.clone(),
        filed_by: caller.key_id.clone(),
        appellant: body.appellant.as_str().to_string(),
        urgency: if expedited { "expedited" } else { "standard" }.to_string(),
        grounds,
        attachments_json,
        attachments,
        received_at: now,
        due_at: clocks.due(expedited, now),
    };
    if !records::insert(&mut tx, &appeal).await? {
        return Err(Error::Conflict(
            "the request has an appeal not yet decided".into(),
        ));
    }
    event(
        &mut tx,
        &row,
        "appealed",
        caller,
        now,
        &row.outcome,
        json!({"appeal": appeal.id}),
    )
    .await?;
    answer_appeal(
        service,
        tx,
        caller,
        &appeal.id,
        "appeal.file",
        retry,
        Notice::None,
    )
    .await
}

async fn adverse_determination(tx: &mut Tx, row: &Request) -> Result<Determination, Error> {
    let determination = requests::determination(tx, &row.id).await?;
    match determination {
        Some(d)
            if (row.status == "denied" && d.decision == "deny")
                || (row.status == "approved" && d.decision == "approve_with_changes") =>
        {
            Ok(d)
        }
        _ => Err(Error::Conflict(format!(
            "the request is `{}`: only a clinician's denial or approval with changes is appealed",
            row.status
        ))),
    }
}

fn plan_of<'a>(service: &'a Service, row: &Request) -> Result<&'a Plan, Error> {
    service
        .plans
        .get(&row.plan)
        .ok_or_else(|| Error::Internal(format!("plan {} is not loaded", row.plan)))
}

/// Appends a step to the request's history, its detail stored as the event's case.
async fn event(
    tx: &mut Tx,
    row: &Request,
    kind: &'static str,
    caller: &Caller,
    at: i64,
    outcome: &str,
    detail: Value,
) -> Result<(), Error> {
    requests::add_event(
        tx,
        &row.id,
        &NewEvent {
            kind,
            actor: &caller.key_id,
            at,
            outcome,
            case_json: &detail.to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    Ok(())
}

/// Whether a write to an appeal sends the request's PAS notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// The request's status changed (an overturn): its subscriber is told.
    Send,
    /// Nothing a PAS subscriber follows changed (an appeal filed, extended or upheld).
    None,
}

/// The end of a write to an appeal: the audit entry binding its request (appeals are part of
/// their request's records), the PAS notification if the request changed, the answer (the
/// appeal, the request's status and authorization) remembered for a retry, the commit.
async fn answer_appeal(
    service: &Service,
    mut tx: Tx,
    caller: &Caller,
    appeal_id: &str,
    action: &'static str,
    retry: Option<&Retry>,
    notice: Notice,
) -> Result<(Value, bool), Error> {
    let appeal = records::fetch(&mut tx, appeal_id)
        .await?
        .ok_or(Error::NotFound)?;
    let request_id = appeal.request_id.clone();
    store::audit(
        &mut tx,
        &caller
            .audit_record(action, &request_id)
            .binding(store::Binds::Request),
    )
    .await?;
    if notice == Notice::Send {
        notifications::enqueue(&mut tx, &request_id).await?;
    }
    let row = fetch(&mut tx, caller, &request_id).await?;
    let authorization = authorization_records::of_request(&mut tx, &request_id)
        .await?
        .map(|a| super::authorizations::view(&a));
    let mut answer = appeal_view(service, &appeal, now_ms());
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("request_status".into(), json!(row.status));
        fields.insert("authorization".into(), json!(authorization));
    }
    if let Some(retry) = retry {
        retry.remember(&mut tx, caller, &answer).await?;
    }
    tx.commit().await?;
    if notice == Notice::Send {
        service.notify.notify_one();
    }
    Ok((answer, false))
}

/// An appeal as its reader sees it.
fn appeal_view(service: &Service, appeal: &Appeal, now: i64) -> Value {
    let decided = appeal.decided_at;
    let late = match decided {
        Some(at) => at > appeal.due_at,
        None => now > appeal.due_at,
    };
    let plan = service.plans.get(&appeal.plan);
    let extension = appeal.extension_reason.as_ref().map(|reason| {
        json!({
            "reason": reason,
            "days": plan.map(|p| p.appeal_clocks().extension_days),
        })
    });
    let decision = decided.map(|at| {
        json!({
            "decision": if appeal.status == "overturned" { "overturn" } else { "uphold" },
            "reason": appeal.decision_reason,
            "reviewer": {"name": appeal.reviewer_name, "credentials": appeal.reviewer_credentials},
            "at": timestamp(at),
        })
    });
    json!({
        "id": appeal.id,
        "request_id": appeal.request_id,
        "organization": appeal.organization,
        "plan": appeal.plan,
        "appellant": appeal.appellant,
        "urgency": appeal.urgency,
        "status": appeal.status,
        "grounds": appeal.grounds,
        "attachments": serde_json::from_str::<Value>(&appeal.attachments_json).unwrap_or(Value::Null),
        "received_at": timestamp(appeal.received_at),
        "due_at": timestamp(appeal.due_at),
        "late": late,
        "minutes_left": (decided.is_none()).then(|| (appeal.due_at - now).div_euclid(60_000)),
        "extension": extension,
        "decision": decision,
    })
}

/// An appeal the caller may see, or NotFound.
async fn fetch_appeal(tx: &mut Tx, caller: &Caller, id: &str) -> Result<Appeal, Error> {
    let appeal = records::fetch(tx, id).await?.ok_or(Error::NotFound)?;
    if !visible(caller, &appeal.organization) {
        return Err(Error::NotFound);
    }
    Ok(appeal)
}

/// A reviewer decides an appeal: not the reviewer of the determination appealed nor of an
/// earlier appeal of it; upholding needs a physician of the same or a similar specialty; an
/// overturn approves the request as an approval would and takes the determination's place
/// (the one it replaces is kept in the history).
pub async fn decide(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &AppealDecisionBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Reviewer])?;
    let reason = text("reason", &body.reason, REASON_MAX)?;
    if body.decision == AppealOutcome::Uphold && body.changes.is_some() {
        return Err(invalid("changes", "only an overturn has changes"));
    }
    // An overturn joins the member's course: held before the transaction opens (see
    // `courses::hold`).
    let _course = match records::request_of(&service.store.reads, id).await? {
        Some(request) => super::courses::hold(service, &request, &Value::Null).await?,
        None => None,
    };
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let appeal = fetch_appeal(&mut tx, caller, id).await?;
    if appeal.status != "pending" || !records::lock_pending(&mut tx, id).await? {
        return Err(Error::Conflict("the appeal is decided already".into()));
    }
    let row = fetch(&mut tx, caller, &appeal.request_id).await?;
    let appealed = adverse_determination(&mut tx, &row).await?;
    // 42 CFR 422.590(g)(1), NCQA UM: decided by someone not involved in the determination.
    let involved = records::of_request(&mut tx, &row.id)
        .await?
        .into_iter()
        .filter_map(|a| Some((a.reviewer_key?, a.reviewer_name.unwrap_or_default())))
        .chain([(
            appealed.reviewer_key.clone(),
            appealed.reviewer_name.clone(),
        )]);
    for (key, name) in involved {
        if key == caller.key_id || same_person(&name, &caller.name) {
            return Err(Error::Forbidden(
                "an appeal is decided by a reviewer who took no part in the determination appealed or an earlier appeal of it".into(),
            ));
        }
    }
    let now = now_ms();
    let outcome = match body.decision {
        AppealOutcome::Uphold => {
            check_specialist(service, &mut tx, &row, &caller.credentials).await?;
            // The request keeps its status (denied, or approved with changes).
            if row.status == "denied" {
                "deny"
            } else {
                "approve"
            }
        }
        AppealOutcome::Overturn => {
            let changes = body.changes.clone().unwrap_or_default();
            if !requests::approve_on_appeal(&mut tx, &row.id, &row.status, now).await? {
                return Err(Error::Conflict("the request changed meanwhile".into()));
            }
            let how = if row.status == "denied" {
                Grant::New
            } else {
                Grant::Replace
            };
            grant(&mut tx, service, caller, &row, &changes, how).await?;
            let superseded = requests::take_determination(&mut tx, &row.id).await?;
            let determination = Determination {
                decision: if body.changes.is_some() {
                    "approve_with_changes"
                } else {
                    "approve"
                }
                .to_string(),
                reason: reason.clone(),
                criterion: appealed.criterion.clone(),
                reviewer_key: caller.key_id.clone(),
                reviewer_name: caller.name.clone(),
                reviewer_credentials: caller.credentials.clone(),
                changes_json: serde_json::to_string(&changes).unwrap_or_default(),
                at: now,
            };
            requests::insert_determination(&mut tx, &row.id, &determination).await?;
            event(
                &mut tx,
                &row,
                "appeal_decided",
                caller,
                now,
                "approve",
                json!({
                    "appeal": appeal.id,
                    "appeal_decision": "overturn",
                    "superseded_determination": superseded.as_ref().map(determination_view),
                }),
            )
            .await?;
            "approve"
        }
    };
    let status = match body.decision {
        AppealOutcome::Uphold => "upheld",
        AppealOutcome::Overturn => "overturned",
    };
    let decision = AppealDecision {
        status,
        reason: &reason,
        reviewer_key: &caller.key_id,
        reviewer_name: &caller.name,
        reviewer_credentials: &caller.credentials,
        at: now,
    };
    if !records::decide(&mut tx, &appeal.id, &decision).await? {
        return Err(Error::Conflict("the appeal was decided meanwhile".into()));
    }
    let notice = if body.decision == AppealOutcome::Uphold {
        event(
            &mut tx,
            &row,
            "appeal_decided",
            caller,
            now,
            outcome,
            json!({"appeal": appeal.id, "appeal_decision": "uphold"}),
        )
        .await?;
        Notice::None
    } else {
        Notice::Send
    };
    answer_appeal(
        service,
        tx,
        caller,
        &appeal.id,
        "appeal.decide",
        retry,
        notice,
    )
    .await
}

/// Two names of one person, compared without case, spacing or punctuation.
fn same_person(a: &str, b: &str) -> bool {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (fold(a), fold(b));
    !a.is_empty() && a == b
}

/// Upholding a medical-necessity denial on appeal needs a physician (MD or DO) of the same or
/// a similar specialty as the service: the plans' `appeal_specialties` for the drug. A drug
/// the plans name no specialty for (a request no policy governs) needs a physician.
async fn check_specialist(
    service: &Service,
    tx: &mut Tx,
    row: &Request,
    credentials: &str,
) -> Result<(), Error> {
    let case: Value =
        serde_json::from_str(&requests::current_case(tx, row).await?).unwrap_or(Value::Null);
    let drug = case
        .pointer("/request/drug")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let specialties = service
        .plans
        .appeal_specialties
        .get(drug)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !is_physician(credentials) {
        return Err(Error::Forbidden(format!(
            "upholding a medical-necessity denial needs a physician (MD or DO){}; this key's credentials are `{credentials}`",
            of_specialty(specialties)
        )));
    }
    let lower = credentials.to_lowercase();
    if !specialties.is_empty() && !specialties.iter().any(|s| lower.contains(s.as_str())) {
        return Err(Error::Forbidden(format!(
            "upholding a medical-necessity denial needs a physician{}; this key's credentials are `{credentials}`",
            of_specialty(specialties)
        )));
    }
    Ok(())
}

fn of_specialty(specialties: &[String]) -> String {
    if specialties.is_empty() {
        String::new()
    } else {
        format!(" in {}", specialties.join(" or "))
    }
}

/// Whether credentials (`MD, Hematology/Oncology`, `D.O.`) name a physician's degree.
fn is_physician(credentials: &str) -> bool {
    credentials
        .replace('.', "")
        .split(|c: char| !c.is_alphanumeric())
        .any(|token| token.eq_ignore_ascii_case("md") || token.eq_ignore_ascii_case("do"))
}

/// Extends an open appeal once, where the plan's rules allow, with the reason; the appeal's
/// notice then states the extension.
pub async fn extend(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &ExtensionBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Reviewer, Role::Admin])?;
    let reason = text("reason", &body.reason, REASON_MAX)?;
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let appeal = fetch_appeal(&mut tx, caller, id).await?;
    if !records::lock_pending(&mut tx, id).await? {
        return Err(Error::Conflict("the appeal is decided".into()));
    }
    let row = fetch(&mut tx, caller, &appeal.request_id).await?;
    let days = plan_of(service, &row)?.appeal_clocks().extension_days;
    if days == 0 {
        return Err(Error::Conflict(format!(
            "plan `{}` does not extend its appeals",
            row.plan
        )));
    }
    if !records::extend(&mut tx, id, appeal.due_at + days * DAY_MS, &reason).await? {
        return Err(Error::Conflict(
            "the appeal is decided, or was extended already (once only)".into(),
        ));
    }
    event(
        &mut tx,
        &row,
        "appeal_extended",
        caller,
        now_ms(),
        &row.outcome,
        json!({"appeal": id, "reason": reason}),
    )
    .await?;
    answer_appeal(
        service,
        tx,
        caller,
        id,
        "appeal.extend",
        retry,
        Notice::None,
    )
    .await
}

/// Reads an appeal.
pub async fn read(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let appeal = fetch_appeal(&mut tx, caller, id).await?;
    store::audit(&mut tx, &caller.audit_record("appeal.read", id)).await?;
    tx.commit().await?;
    Ok(appeal_view(service, &appeal, now_ms()))
}

/// What a caller asks of the open appeals: `GET /v1/appeals?limit=&after=&organization=`.
#[derive(Debug, Default, Deserialize)]
pub struct AppealsQuery {
    pub limit: Option<String>,
    pub after: Option<String>,
    pub organization: Option<String>,
}

/// The open appeals, soonest due first, a page at a time; a submitter sees its own
/// organization's. The audit records the ids shown.
pub async fn open(
    service: &Service,
    caller: &Caller,
    query: &AppealsQuery,
) -> Result<Value, Error> {
    let limit = match query.limit.as_deref() {
        None => 100,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| invalid("limit", "a whole number from 1 to 500"))?,
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(text) => Some(
            text.split_once('.')
                .and_then(|(due, id)| Some((due.parse::<i64>().ok()?, id.to_string())))
                .filter(|(_, id)| id.starts_with("apl_") && id.len() <= 64)
                .ok_or_else(|| invalid("after", "not a cursor this service gave (`next`)"))?,
        ),
    };
    let organization = if caller.role == Role::Submitter {
        Some(caller.organization.clone())
    } else {
        query.organization.clone()
    };
    let page = records::OpenPage {
        limit,
        after,
        organization,
    };
    let mut tx = service.store.pool.begin().await?;
    let rows = records::open(&mut tx, &page).await?;
    let now = now_ms();
    let items: Vec<Value> = rows.iter().map(|a| appeal_view(service, a, now)).collect();
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == limit)
        .map(|a| format!("{}.{}", a.due_at, a.id));
    let shown: Vec<&str> = rows.iter().map(|a| a.id.as_str()).collect();
    store::audit(
        &mut tx,
        &caller.audit_record("appeals.read", &format!("appeals:{}", shown.join(","))),
    )
    .await?;
    tx.commit().await?;
    Ok(json!({"items": items, "next": next}))
}

/// A request's appeals and peer-to-peer discussions.
pub async fn of_request(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    let now = now_ms();
    let appeals: Vec<Value> = records::of_request(&mut tx, &row.id)
        .await?
        .iter()
        .map(|a| appeal_view(service, a, now))
        .collect();
    let discussions: Vec<Value> = records::peer_to_peer_of(&mut tx, &row.id)
        .await?
        .iter()
        .map(super::peer_to_peer::view)
        .collect();
    store::audit(&mut tx, &caller.audit_record("request.appeals.read", id)).await?;
    tx.commit().await?;
    Ok(json!({"request_id": row.id, "appeals": appeals, "peer_to_peer": discussions}))
}

/// An attachment's content type and bytes.
pub async fn attachment(
    service: &Service,
    caller: &Caller,
    id: &str,
    n: &str,
) -> Result<(String, Vec<u8>), Error> {
    let n = attachments::file_number(n, attachments::APPEAL_FILES_MAX)?;
    let mut tx = service.store.pool.begin().await?;
    let appeal = fetch_appeal(&mut tx, caller, id).await?;
    let (content_type, data) = records::attachment(&mut tx, &appeal.id, n)
        .await?
        .ok_or(Error::NotFound)?;
    let bytes = attachments::stored_bytes(&data)?;
    store::audit(
        &mut tx,
        &caller.audit_record("appeal.attachment.read", &format!("{id}/{n}")),
    )
    .await?;
    tx.commit().await?;
    Ok((content_type, bytes))
}

/// The notice of an appeal's decision (or of its extension while it is open): the decision
/// and its specific reason, the criterion and its source for a denial upheld, the reviewer,
/// the authorization an overturn granted, and the rights left (external review).
pub async fn notice(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let appeal = fetch_appeal(&mut tx, caller, id).await?;
    let row = fetch(&mut tx, caller, &appeal.request_id).await?;
    let plan = plan_of(service, &row)?;
    let case: Value =
        serde_json::from_str(&requests::current_case(&mut tx, &row).await?).unwrap_or(Value::Null);
    let service_json = json!({
        "drug": case.pointer("/request/drug"),
        "hcpcs": case.pointer("/request/hcpcs"),
        "dose": case.pointer("/request/dose"),
        "date": case.pointer("/request/date"),
    });
    let letter = match appeal.decided_at {
        None => {
            let Some(reason) = &appeal.extension_reason else {
                return Err(Error::Conflict(
                    "the appeal is not decided: its notice follows the decision".into(),
                ));
            };
            json!({
                "kind": "appeal_extension",
                "request_id": row.id,
                "time_zone": plan.time_zone,
                "appeal_id": appeal.id,
                "service": service_json,
                "received_at": timestamp(appeal.received_at),
                "due_at": timestamp(appeal.due_at),
                "reason": reason,
                "extension_days": plan.appeal_clocks().extension_days,
                "rights": "If you disagree with this extension, you may file a grievance with the plan (42 CFR 438.408(c)(2)).",
            })
        }
        Some(decided_at) => {
            let upheld = appeal.status == "upheld";
            let determination = requests::determination(&mut tx, &row.id).await?;
            let policy = service
                .engine
                .policy_index(&row.policy)
                .and_then(|i| service.engine.policies.get(i));
            let criterion_id = determination.as_ref().map(|d| d.criterion.clone());
            let criterion = policy.and_then(|p| {
                p.criteria
                    .iter()
                    .find(|c| Some(&c.id) == criterion_id.as_ref())
            });
            let authorization = if upheld {
                None
            } else {
                authorization_records::of_request(&mut tx, &row.id)
                    .await?
                    .map(|a| super::authorizations::view(&a))
            };
            json!({
                "kind": "appeal_decision",
                "request_id": row.id,
                "time_zone": plan.time_zone,
                "appeal_id": appeal.id,
                "decision": if upheld { "upheld" } else { "overturned" },
                "service": service_json,
                "reason": appeal.decision_reason,
                "criterion": upheld.then(|| json!({
                    "id": criterion_id,
                    "text": criterion.map(|c| c.text.clone()),
                    "source": criterion.map(|c| c.source.to_string()),
                    "policy": policy.map(|p| p.title.clone()),
                    "policy_version": policy.map(|p| p.version.clone()),
                    "copy": "A copy of the policy and the criteria used is available free of charge on request.",
                })),
                "reviewer": {
                    "name": appeal.reviewer_name,
                    "credentials": appeal.reviewer_credentials,
                    "not_involved": "The reviewer took no part in the determination appealed.",
                },
                "received_at": timestamp(appeal.received_at),
                "due_at": timestamp(appeal.due_at),
                "decided_at": timestamp(decided_at),
                "on_time": decided_at <= appeal.due_at,
                "authorization": authorization,
                "further_rights": upheld.then(|| plan.further_rights()),
                "automation": "A licensed clinician who did not make the first decision reviewed the appeal and made this decision.",
            })
        }
    };
    store::audit(&mut tx, &caller.audit_record("appeal.notice", id)).await?;
    tx.commit().await?;
    Ok(letter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physicians_are_told_from_their_credentials() {
        assert!(is_physician("MD, Hematology/Oncology"));
        assert!(is_physician("D.O., Medical Oncology"));
        assert!(is_physician("md"));
        assert!(!is_physician("PharmD, Oncology"));
        assert!(!is_physician("RN, Oncology"));
        assert!(!is_physician("MDS"));
        assert!(!is_physician(""));
    }

    #[test]
    fn one_person_under_two_spellings_is_one_person() {
        assert!(same_person("Dr. Ana Reyes", "dr ana reyes"));
        assert!(!same_person("Ana Reyes", "Ana Reyes-Lopez"));
        assert!(!same_person("", ""));
    }
}
