//! Requests: submission (with renewals read from the records), completion of missing facts,
//! withdrawal, and the request a caller may see (`fetch`). How a request reads is
//! `request_view.rs`.

use priorauth_core::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::authorizations::{self, Changes};
use super::courses;
use super::evaluate::{Version, decision_record, decision_sha256, evaluate, recompute};
use super::retries::{Begun, Retry, begin};
use super::{Error, Service, day_of, invalid, require, status_of, timestamp, visible};
use crate::keys::{Caller, Role};
use crate::store::authorizations as records;
use crate::store::packed::Packed;
use crate::store::requests::{self, Member, NewEvent, NewRequest, Request};
pub use crate::store::requests::{ClaimLink, ReceivedBundle, StoredClaim};
use crate::store::writer::{self, Write, Written};
use crate::store::{self, Tx, notifications, now_ms, random_id, sha256_hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    #[default]
    Standard,
    Expedited,
}

/// A prior-authorization request for a member of a plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Plan id (`config/plans.toml`).
    pub plan: String,
    /// The case, in the case format (docs/case-format.md).
    #[schema(value_type = Object)]
    pub case: Value,
    #[serde(default)]
    pub urgency: Urgency,
    /// The authorization number this request continues (a renewal). Its history, renewal
    /// count and cycles given are then taken from the records.
    #[serde(default)]
    pub renews: Option<String>,
}

/// Replaces the history the requester gave with the records of the authorization chain.
async fn history_from_records(
    service: &Service,
    tx: &mut Tx,
    caller: &Caller,
    plan: &str,
    number: &str,
    case_json: &mut Value,
) -> Result<(), Error> {
    if number.chars().any(char::is_control) {
        return Err(invalid("renews", "control characters are not allowed"));
    }
    // Another organization's authorization is answered as a missing one, before anything
    // about it (that it was renewed, and by what) can show.
    let renewed = records::fetch(tx, number)
        .await?
        .filter(|a| visible(caller, &a.organization))
        .ok_or_else(|| invalid("renews", format!("no authorization `{number}`")))?;
    if let Some(renewal) = records::renewal_of(tx, number).await? {
        return Err(authorizations::already_renewed(number, &renewal));
    }
    // A renewal continues its member's course under its plan: not another member's, not
    // under another plan (whose policy did not approve the course).
    if let Some((recorded_plan, recorded_member, _)) =
        requests::course_of(&service.store.reads, number).await?
    {
        if recorded_plan != plan {
            return Err(invalid(
                "renews",
                format!("authorization `{number}` is of plan `{recorded_plan}`, not `{plan}`"),
            ));
        }
        if let Some(member) = recorded_member {
            let patient = case_json
                .as_object_mut()
                .ok_or_else(|| invalid("case", "must be an object"))?
                .entry("patient")
                .or_insert_with(|| json!({}));
            if patient.is_null() {
                *patient = json!({});
            }
            if let Some(patient) = patient.as_object_mut() {
                match patient.get("member_id") {
                    // The records name the member a request that names none is for.
                    None | Some(Value::Null) => {
                        patient.insert("member_id".into(), Value::from(member));
                    }
                    Some(given) if given.as_str().map(str::trim) == Some(member.as_str()) => {}
                    Some(_) => {
                        return Err(invalid(
                            "case.patient.member_id",
                            format!("authorization `{number}` is another member's"),
                        ));
                    }
                }
            }
        }
    }
    // The chain back to the course's first authorization, all of the same organization.
    let mut next = renewed.renews.clone();
    let mut chain = vec![renewed];
    while let Some(number) = next.take() {
        let authorization = records::fetch(tx, &number)
            .await?
            .filter(|a| visible(caller, &a.organization))
            .ok_or_else(|| Error::Internal("broken authorization chain".into()))?;
        next = authorization.renews.clone();
        chain.push(authorization);
        if chain.len() > 100 {
            return Err(Error::Internal("authorization chain too long".into()));
        }
    }
    let drug = chain.first().map(|a| a.drug.clone()).unwrap_or_default();
    let given_drug = case_json
        .pointer("/request/drug")
        .and_then(Value::as_str)
        .map(str::to_string);
    if given_drug.as_deref().is_some_and(|d| d != drug) {
        return Err(invalid(
            "renews",
            format!("authorization `{number}` is for `{drug}`"),
        ));
    }
    let mut past = Vec::new();
    let (mut cycles_given, mut continued_given) = (0i64, 0i64);
    for authorization in &chain {
        let (first, cycles) = (authorization.first_cycle, authorization.cycles);
        cycles_given = cycles_given.max(first + cycles - 1);
        continued_given += (first..first + cycles).filter(|c| *c >= 6).count() as i64;
        past.push(json!({
            "start": authorization.start_date,
            "end": authorization.end_date,
            "renewal": authorization.renews.is_some(),
            "cycles": authorization.cycles,
        }));
    }
    let object = case_json
        .as_object_mut()
        .ok_or_else(|| invalid("case", "must be an object"))?;
    let request = object.entry("request").or_insert_with(|| json!({}));
    if let Some(request) = request.as_object_mut() {
        request.insert("drug".into(), Value::from(drug.clone()));
        // A request that continues an authorization is a renewal, whatever it declares.
        match request.get("kind").and_then(Value::as_str) {
            Some("renewal") | None => {
                request.insert("kind".into(), Value::from("renewal"));
            }
            Some(kind) => {
                return Err(invalid(
                    "case.request.kind",
                    format!(
                        "`{kind}` contradicts `renews`: a request continuing authorization `{number}` is a renewal"
                    ),
                ));
            }
        }
        // The course continues where the records say it stands, whichever the drug.
        request.insert("first_cycle".into(), Value::from(cycles_given + 1));
    }
    let history = object.entry("history").or_insert_with(|| json!({}));
    if history.is_null() {
        *history = json!({});
    }
    if let Some(history) = history.as_object_mut() {
        history.insert("authorizations".into(), Value::Array(past));
        // The records' counts, under the keys' current names: what the request declared,
        // under either name, gives way to them.
        history.remove("blinatumomab_cycles");
        history.remove("blinatumomab_continued_cycles");
        history.insert("cycles_given".into(), Value::from(cycles_given));
        // Continued-therapy cycles are Blincyto's (cycles 6 and later).
        if drug == "blinatumomab" {
            history.insert(
                "continued_cycles_given".into(),
                Value::from(continued_given),
            );
        } else {
            history.remove("continued_cycles_given");
        }
    }
    Ok(())
}

/// Decides and stores a request: one transaction holds the request, its first event, its
/// audit entry, its authorization if approved and its FHIR link. Answers (created, the
/// response); a retry with the same idempotency key answers the first response.
pub async fn submit(
    service: &Service,
    caller: &Caller,
    body: SubmitBody,
    idempotency_key: Option<String>,
    link: Option<ClaimLink>,
) -> Result<(bool, Value), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let plan = service
        .plans
        .get(&body.plan)
        .ok_or_else(|| invalid("plan", format!("unknown plan `{}`", body.plan)))?
        .clone();
    if idempotency_key
        .as_ref()
        .is_some_and(|k| !super::retries::valid_key(k))
    {
        return Err(super::retries::invalid_key());
    }
    // The body's hash tells a retry from a reuse of its key; without a key there is nothing
    // to tell apart, and nothing is hashed or stored.
    let body_hash = match &idempotency_key {
        Some(_) => sha256_hex(&serde_json::to_string(&body).unwrap_or_default()),
        None => String::new(),
    };
    if let Some(key) = &idempotency_key {
        if let Some(answer) = replay(service, caller, key, &body_hash).await? {
            return Ok((false, answer));
        }
    }

    // A renewal reads the authorization chain and writes in one transaction of its own, so
    // that two renewals of one authorization cannot both be decided on the same records.
    // Every other request is written by the group commit.
    let mut renewal_tx = None;
    let mut case_json = body.case.clone();
    // A member the request declares is the payer's (a PAS Claim's was found in the
    // eligibility by its adapter).
    if link.is_none() {
        super::members::check_declared(service, &plan.id, &case_json).await?;
    }
    super::members::check_birth_date(service, &plan.id, &case_json).await?;
    // Every other request of the member's course waits until this one's decision is stored.
    let mut _course = None;
    if let Some(number) = &body.renews {
        _course = courses::hold(service, number, &case_json).await?;
        let mut tx = service.store.pool.begin().await?;
        history_from_records(service, &mut tx, caller, &plan.id, number, &mut case_json).await?;
        courses::merge_records(service, &plan.id, None, &mut case_json).await?;
        renewal_tx = Some(tx);
    } else {
        _course = courses::with_records(service, caller, &plan.id, &mut case_json).await?;
    }
    let now = now_ms();
    let evaluated = evaluate(service, &plan, case_json, day_of(now), Version::InEffect)?;
    let policy = service
        .engine
        .policies
        .get(evaluated.policy_index)
        .ok_or_else(|| Error::Internal("policy".into()))?;
    let id = random_id("req_");
    let status = status_of(evaluated.outcome);
    // The plan's clock runs from receipt whether a clinician reviews the request or the
    // provider owes information: the payer must decide by then either way.
    let due_at =
        is_pending(status).then(|| plan.clocks.due(body.urgency == Urgency::Expedited, now));
    let authorization = if evaluated.outcome == Outcome::Approve {
        Some(authorizations::plan(
            service,
            &caller.organization,
            &id,
            &evaluated,
            &Changes::default(),
            body.renews.as_deref(),
        )?)
    } else {
        None
    };
    // The first answer is stored for replays without its decision, and the decision as what
    // it rests on with its hash: its explanation is recomputed on read from the case and the
    // policy version (a decision is several kilobytes; the facts it comes from are not).
    let mut response = json!({
        "id": id,
        "status": status,
        "outcome": evaluated.outcome,
        "plan": plan.id,
        "policy": policy.id,
        "policy_version": policy.version,
        "urgency": body.urgency,
        "due_at": due_at.map(timestamp),
        "authorization": authorization.as_ref().map(authorizations::answer),
    });
    let request = NewRequest {
        id,
        organization: caller.organization.clone(),
        submitted_by: caller.key_id.clone(),
        plan: plan.id.clone(),
        drug: evaluated
            .case
            .request
            .as_ref()
            .and_then(|r| r.drug.clone())
            .unwrap_or_default(),
        member: Member::of_case(&evaluated.case_json),
        policy: policy.id.clone(),
        policy_version: policy.version.clone(),
        idempotency_key: idempotency_key.clone(),
        body_hash: body_hash.clone(),
        status,
        outcome: evaluated.outcome.as_str(),
        urgency: urgency_str(body.urgency),
        due_at,
        case_json: Packed::new(&evaluated.case_json.to_string()),
        decision_json: Packed::new(&decision_record(&evaluated.result).to_string()),
        response_json: Packed::new(&response.to_string()),
        renews: body.renews.clone(),
        created_at: now,
        event_case_json: Packed::new(""),
        event_decision_json: Packed::new(""),
        decision_sha256: Some(decision_sha256(&evaluated.result)),
        authorization,
        link,
    };
    if let Some(object) = response.as_object_mut() {
        object.insert("decision".into(), evaluated.result);
    }
    let written = match renewal_tx {
        Some(mut tx) => {
            // The renewal checks first; the authorization then goes in with the request row,
            // both bound by their audit entries.
            let renews = match &request.authorization {
                Some(authorization) => {
                    authorizations::check_not_renewed(&mut tx, authorization).await?;
                    authorization.renews.clone()
                }
                None => None,
            };
            let request = Write::Request(Box::new(request));
            let mut chain = store::AuditChain::lock(&mut tx).await?;
            let written = writer::write_one(&mut tx, &mut chain, &request)
                .await
                .map_err(|error| authorizations::renewed_meanwhile(error, renews.as_deref()))?;
            if written == Written::Stored {
                chain.save(&mut tx).await?;
                tx.commit().await?;
            }
            written
        }
        None => {
            service
                .writer
                .write(Write::Request(Box::new(request)))
                .await?
        }
    };
    if written == Written::DuplicateKey {
        // Another submission with this key won the race: answer with its first answer.
        if let Some(key) = &idempotency_key {
            if let Some(answer) = replay(service, caller, key, &body_hash).await? {
                return Ok((false, answer));
            }
        }
        return Err(Error::Conflict("the request could not be stored".into()));
    }
    Ok((true, response))
}

async fn replay(
    service: &Service,
    caller: &Caller,
    key: &str,
    body_hash: &str,
) -> Result<Option<Value>, Error> {
    let Some(first) =
        requests::first_answer(&service.store.pool, &caller.organization, key).await?
    else {
        return Ok(None);
    };
    if first.body_hash != body_hash {
        return Err(invalid(
            "Idempotency-Key",
            "this key was used for a different request body",
        ));
    }
    service
        .writer
        .write(Write::Audit(
            caller.audit_record("request.replay", &first.id),
        ))
        .await?;
    let mut response: Value = serde_json::from_str(&first.response_json).unwrap_or(Value::Null);
    // The first answer's decision is the first event's (see `submit`).
    let decision = match (first.decision_json.as_deref(), &first.decision_sha256) {
        (Some(stored), _) if !stored.is_empty() => {
            serde_json::from_str(stored).unwrap_or(Value::Null)
        }
        (_, Some(sha256)) => {
            let decision = recompute(
                service,
                &first.case_json,
                &first.policy,
                &first.policy_version,
                day_of(first.created_at),
            )?;
            if decision_sha256(&decision) != *sha256 {
                // As a read shows it: the decision recomputed, marked unverified, the request
                // id logged (never patient data). A retry still gets its first answer, not an
                // error (a drug catalog corrected in place recomputes some old decisions
                // otherwise: policies/versions.lock).
                eprintln!(
                    "request {}: the recomputed decision differs from the one answered",
                    first.id
                );
                if let Some(object) = response.as_object_mut() {
                    object.insert("decision_verified".into(), Value::Bool(false));
                }
            }
            decision
        }
        _ => Value::Null,
    };
    if let Some(object) = response.as_object_mut() {
        if !object.contains_key("decision") {
            object.insert("decision".into(), decision);
        }
    }
    Ok(Some(response))
}

fn urgency_str(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Standard => "standard",
        Urgency::Expedited => "expedited",
    }
}

/// Stores a request no policy of the plan can decide (no plan, or a service no policy
/// governs) straight into the review queue: a clinician answers it. Idempotent by `key`.
/// Answers (created, the request id).
pub async fn submit_for_review(
    service: &Service,
    caller: &Caller,
    case: &Value,
    plan: Option<&str>,
    expedited: bool,
    key: &str,
    link: ClaimLink,
) -> Result<(bool, String), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let body_hash = link.bundle.sha256.clone();
    let id_of = |answer: Value| {
        answer
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(answer) = replay(service, caller, key, &body_hash).await? {
        return Ok((false, id_of(answer)));
    }
    let plan = plan.and_then(|p| service.plans.get(p));
    let now = now_ms();
    let id = random_id("req_");
    // Without a plan, the strictest clock of any plan applies.
    let due_at = match plan {
        Some(plan) => plan.clocks.due(expedited, now),
        None => service
            .plans
            .plans
            .iter()
            .map(|p| p.clocks.due(expedited, now))
            .min()
            .unwrap_or(now),
    };
    let decision = json!({"outcome": "not_applicable", "missing": [], "reasons": []});
    let urgency = if expedited {
        Urgency::Expedited
    } else {
        Urgency::Standard
    };
    // Stored without its decision, as `submit_case` does.
    let response = json!({"id": id, "status": "pending_review", "outcome": "not_applicable", "authorization": null});
    let (case_text, decision_text) = (
        Packed::new(&case.to_string()),
        Packed::new(&decision.to_string()),
    );
    let request = NewRequest {
        id: id.clone(),
        organization: caller.organization.clone(),
        submitted_by: caller.key_id.clone(),
        plan: plan.map(|p| p.id.clone()).unwrap_or_default(),
        drug: case
            .pointer("/request/drug")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        member: Member::of_case(case),
        policy: String::new(),
        policy_version: String::new(),
        idempotency_key: Some(key.to_string()),
        body_hash: body_hash.clone(),
        status: "pending_review",
        outcome: Outcome::NotApplicable.as_str(),
        urgency: urgency_str(urgency),
        due_at: Some(due_at),
        case_json: case_text.clone(),
        decision_json: decision_text.clone(),
        response_json: Packed::new(&response.to_string()),
        renews: None,
        created_at: now,
        // No policy decided it: nothing to recompute, the small decision is stored whole.
        event_case_json: case_text,
        event_decision_json: decision_text,
        decision_sha256: None,
        authorization: None,
        link: Some(link),
    };
    match service
        .writer
        .write(Write::Request(Box::new(request)))
        .await?
    {
        Written::Stored => Ok((true, id)),
        Written::DuplicateKey => match replay(service, caller, key, &body_hash).await? {
            Some(answer) => Ok((false, id_of(answer))),
            None => Err(Error::Conflict("the request could not be stored".into())),
        },
    }
}

/// A completion's body is the case's sections themselves: its errors name `request.date`,
/// not `case.request.date`.
fn without_case_prefix(error: Error) -> Error {
    match error {
        Error::Invalid(errors) => Error::Invalid(
            errors
                .into_iter()
                .map(|(f, m)| (f.trim_start_matches("case.").to_string(), m))
                .collect(),
        ),
        other => other,
    }
}

/// Fills facts a request waiting for information lacked, and decides it again.
pub async fn complete(
    service: &Service,
    caller: &Caller,
    id: &str,
    facts: &Value,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let Some(sections) = facts.as_object() else {
        return Err(invalid("body", "must be an object of case sections"));
    };
    // Answers in words to a reviewer's questions come beside the facts, one per question.
    let answers = match sections.get("answers") {
        None => None,
        Some(Value::Array(list))
            if !list.is_empty()
                && list.len() <= QUESTIONS_MAX
                && list
                    .iter()
                    .all(|a| a.as_str().is_some_and(|t| t.chars().count() <= REASON_MAX)) =>
        {
            Some(list.clone())
        }
        Some(_) => {
            return Err(invalid(
                "answers",
                format!(
                    "a list of 1 to {QUESTIONS_MAX} answers in words, each at most {REASON_MAX} characters"
                ),
            ));
        }
    };
    // The member's course is held before the transaction opens (see `courses::hold`).
    let _course = courses::hold(service, id, facts).await?;
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, id).await?;
    if row.status != "pending_information" {
        return Err(Error::Conflict(format!(
            "the request is `{}`, not waiting for information",
            row.status
        )));
    }
    // Of concurrent completions one wins: the others wait here, then find it changed.
    if !requests::lock_in(&mut tx, id, "pending_information").await? {
        return Err(Error::Conflict(
            "the request was completed meanwhile".into(),
        ));
    }
    // A reviewer's questions, if a reviewer sent the request back: the answers go to them.
    let events = requests::events(&mut tx, id).await?;
    let asked = events
        .last()
        .filter(|e| e.kind == "information_requested")
        .is_some();
    if answers.is_some() && !asked {
        return Err(invalid(
            "answers",
            "no reviewer asked questions of this request: give the missing facts",
        ));
    }
    // A completion cannot make a request a renewal: a renewal names the authorization it
    // continues when it is sent, and takes its history from the records.
    let renewing = row.renews.is_some();
    if !renewing && facts.pointer("/request/kind").and_then(Value::as_str) == Some("renewal") {
        return Err(invalid(
            "request.kind",
            "a request is a renewal only when it is sent naming the authorization it continues (`renews`)",
        ));
    }
    let current = requests::current_case(&mut tx, &row).await?;
    let mut case: Value = serde_json::from_str(&current).unwrap_or(json!({}));
    for (section, values) in sections.iter().filter(|(s, _)| s.as_str() != "answers") {
        let Some(values) = values.as_object() else {
            return Err(invalid(section, "must be an object of facts"));
        };
        let target = case
            .as_object_mut()
            .map(|c| c.entry(section.clone()).or_insert_with(|| json!({})));
        if let Some(target) = target {
            if target.is_null() {
                *target = json!({});
            }
            if let Some(target) = target.as_object_mut() {
                for (key, value) in values {
                    // A completion fills only what is missing: it cannot rewrite a fact the
                    // request gave or one the service took from its records (a renewal's
                    // history and course position).
                    if target.get(key).is_some_and(|given| !given.is_null()) {
                        return Err(invalid(
                            &format!("{section}.{key}"),
                            "is already given; a completion fills only missing facts",
                        ));
                    }
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
    // A member the completion names is the payer's, as one a request names when it is sent.
    if facts.pointer("/patient/member_id").is_some() {
        super::members::check_declared(service, &row.plan, &case)
            .await
            .map_err(without_case_prefix)?;
    }
    // Every completion: one of a request sent before the eligibility held its member's birth
    // date is decided now, on the date as the records hold it then.
    super::members::check_birth_date(service, &row.plan, &case)
        .await
        .map_err(without_case_prefix)?;
    // The member's course as the records hold it now (a renewal's too), for a member or a
    // drug the completion named as well as the request's.
    courses::merge_records(service, &row.plan, Some(&row.id), &mut case).await?;
    let plan = service
        .plans
        .get(&row.plan)
        .ok_or_else(|| Error::Internal(format!("plan {} is gone", row.plan)))?
        .clone();
    let received = day_of(row.created_at);
    let stored = Version::Stored {
        policy: &row.policy,
        version: &row.policy_version,
        check_date: facts.pointer("/request/date").is_some(),
    };
    let evaluated =
        evaluate(service, &plan, case, received, stored).map_err(without_case_prefix)?;
    // Asked by a reviewer, the request goes back to them unless the policy now approves it.
    let status = match status_of(evaluated.outcome) {
        "approved" => "approved",
        _ if asked => "pending_review",
        other => other,
    };
    let due_at =
        is_pending(status).then(|| plan.clocks.due(row.urgency == "expedited", row.created_at));
    let now = now_ms();
    if let Some(answers) = &answers {
        requests::add_event(
            &mut tx,
            id,
            &NewEvent {
                kind: "information_given",
                actor: &caller.key_id,
                at: now,
                outcome: &row.outcome,
                case_json: &json!({"answers": answers}).to_string(),
                decision_json: "",
                decision_sha256: None,
            },
        )
        .await?;
    }
    let member = Member::of_case(&evaluated.case_json);
    let completed = requests::complete(
        &mut tx,
        id,
        &requests::Completion {
            status,
            outcome: evaluated.outcome.as_str(),
            due_at,
            decision_json: &decision_record(&evaluated.result).to_string(),
            at: now,
            member_id: member.id.as_deref(),
        },
    )
    .await?;
    if !completed {
        return Err(Error::Conflict(
            "the request was completed meanwhile".into(),
        ));
    }
    if evaluated.outcome == Outcome::Approve {
        // The request's organization holds the authorization, also when an admin completes it.
        authorizations::create(
            &mut tx,
            service,
            caller,
            &row,
            &evaluated,
            &Changes::default(),
        )
        .await?;
    }
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "completed",
            actor: &caller.key_id,
            at: now,
            outcome: evaluated.outcome.as_str(),
            case_json: &evaluated.case_json.to_string(),
            decision_json: "",
            decision_sha256: Some(&decision_sha256(&evaluated.result)),
        },
    )
    .await?;
    let view = finish_decision(service, tx, caller, id, "request.update", retry).await?;
    Ok((view, false))
}

/// Why a requester withdraws a pending request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalBody {
    /// In plain language: the order was cancelled, the member changed plans, …
    pub reason: String,
}

/// The most characters of a withdrawal's reason.
const REASON_MAX: usize = 2_000;
/// The most questions a reviewer asks at once, and answers a requester gives.
pub(super) const QUESTIONS_MAX: usize = 10;

/// A requester withdraws a request still pending (waiting for information or for a
/// clinician): it leaves the queue, keeps its history, and no decision is made on it. A
/// decided request is not withdrawn (its authorization simply goes unused).
pub async fn withdraw(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &WithdrawalBody,
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    withdraw_with(service, caller, id, body, retry, None).await
}

/// What became of a PAS request that a later Claim withdrew: replaced by that Claim's
/// requests (an update), or cancelled by it (an item the update cancels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Successor {
    /// `system|value` of the update's Claim, whose requests answer for this one.
    ReplacedBy(String),
    /// `system|value` of the update's Claim, whose answer holds this one, cancelled.
    CancelledBy(String),
}

impl Successor {
    /// The event's field and the Claim.
    fn field(&self) -> (&'static str, &str) {
        match self {
            Successor::ReplacedBy(claim) => ("replaced_by", claim),
            Successor::CancelledBy(claim) => ("cancelled_by", claim),
        }
    }

    /// What a request's record (as [`super::request_view::read`] shows it) says became of
    /// it: its withdrawal's `replaced_by` or `cancelled_by`. A request an update withdrew
    /// before these were recorded says so in its reason only (`Replaced by an update (PAS
    /// Claim …)`, written by the FHIR adapter), which is read too.
    pub fn of(record: &Value) -> Option<Successor> {
        if record["status"] != "withdrawn" {
            return None;
        }
        let withdrawal = record["history"]
            .as_array()?
            .iter()
            .rev()
            .find(|event| event["kind"] == "withdrawn")?;
        let text = |field: &str| withdrawal[field].as_str().map(str::to_string);
        text("replaced_by")
            .map(Successor::ReplacedBy)
            .or_else(|| text("cancelled_by").map(Successor::CancelledBy))
            .or_else(|| {
                let reason = withdrawal["reason"].as_str()?;
                let claim = reason
                    .strip_prefix("Replaced by an update (PAS Claim ")?
                    .strip_suffix(')')?;
                Some(Successor::ReplacedBy(claim.to_string()))
            })
    }

    pub fn claim(&self) -> &str {
        self.field().1
    }
}

/// Withdraws a PAS request that a later Claim of its organization replaces or cancels (an
/// update), recording that Claim with the withdrawal so that an inquiry about this one can
/// answer the current one (PAS: "If a search is for a 'replaced' prior authorization, the
/// search result SHALL include the 'current' prior authorization response").
pub async fn withdraw_for_claim(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &WithdrawalBody,
    successor: &Successor,
) -> Result<(Value, bool), Error> {
    withdraw_with(service, caller, id, body, None, Some(successor)).await
}

async fn withdraw_with(
    service: &Service,
    caller: &Caller,
    id: &str,
    body: &WithdrawalBody,
    retry: Option<&Retry>,
    successor: Option<&Successor>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_MAX {
        return Err(invalid(
            "reason",
            format!("give the reason in 1 to {REASON_MAX} characters"),
        ));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, id).await?;
    let now = now_ms();
    let mut detail = serde_json::Map::new();
    detail.insert("reason".into(), json!(reason));
    if let Some((field, claim)) = successor.map(Successor::field) {
        detail.insert(field.into(), json!(claim));
    }
    let detail = Value::Object(detail);
    // One statement decides it against a concurrent completion or determination: whichever
    // commits first wins, the other finds the request no longer pending.
    if !requests::withdraw(&mut tx, id, now).await? {
        return Err(Error::Conflict(format!(
            "the request is `{}`: only a pending request is withdrawn",
            row.status
        )));
    }
    requests::add_event(
        &mut tx,
        id,
        &NewEvent {
            kind: "withdrawn",
            actor: &caller.key_id,
            at: now,
            outcome: &row.outcome,
            case_json: &detail.to_string(),
            decision_json: "",
            decision_sha256: None,
        },
    )
    .await?;
    // An inquiry by the withdrawing Claim's identifier finds this request (PAS: the inquiry
    // answers "the current results for all submitted items, including any items changed or
    // canceled").
    if let Some(successor) = successor {
        requests::add_successor(&mut tx, id, &row.organization, successor.claim(), now).await?;
    }
    let view = finish_decision(service, tx, caller, id, "request.withdraw", retry).await?;
    Ok((view, false))
}

/// The end of a transition that decides a request: its audit entry, the PAS notification
/// (an outbox row in the same transaction), the commit, then the request as it now stands.
pub(super) async fn finish_decision(
    service: &Service,
    mut tx: Tx,
    caller: &Caller,
    id: &str,
    action: &'static str,
    retry: Option<&Retry>,
) -> Result<Value, Error> {
    store::audit(
        &mut tx,
        &caller
            .audit_record(action, id)
            .binding(store::Binds::Request),
    )
    .await?;
    notifications::enqueue(&mut tx, id).await?;
    let (row, related) = fetch_related(&mut tx, caller, id).await?;
    let view = super::request_view::view(service, &mut tx, &row, related).await?;
    if let Some(retry) = retry {
        retry.remember(&mut tx, caller, &view).await?;
    }
    tx.commit().await?;
    service.notify.notify_one();
    Ok(view)
}

/// A request, or NotFound when it does not exist or the caller may not see it.
/// [`fetch`], with what else the request has: what its readers are shown.
pub(super) async fn fetch_related(
    tx: &mut Tx,
    caller: &Caller,
    id: &str,
) -> Result<(Request, requests::Related), Error> {
    let (request, related) = requests::fetch_with_related(tx, id)
        .await?
        .ok_or(Error::NotFound)?;
    if !visible(caller, &request.organization) {
        return Err(Error::NotFound);
    }
    Ok((request, related))
}

pub(super) async fn fetch(tx: &mut Tx, caller: &Caller, id: &str) -> Result<Request, Error> {
    let request = requests::fetch(tx, id).await?.ok_or(Error::NotFound)?;
    if !visible(caller, &request.organization) {
        return Err(Error::NotFound);
    }
    Ok(request)
}

/// A request DTR's `$questionnaire-package` names as its `context` (PAS's Task for a request
/// pended for information gives its id so): the caller's organization's own, with its case as
/// it now stands; None when the organization has no request of that id (another
/// organization's is answered the same, whatever the caller's role: the form is pre-populated
/// from the case). The read is audited (`request.read`).
pub async fn for_questionnaire(
    service: &Service,
    caller: &Caller,
    id: &str,
) -> Result<Option<(Request, String)>, Error> {
    let mut tx = service.store.pool.begin().await?;
    let request = match requests::fetch(&mut tx, id).await? {
        Some(request) if request.organization == caller.organization => request,
        _ => return Ok(None),
    };
    let case = requests::current_case(&mut tx, &request).await?;
    drop(tx);
    service
        .writer
        .write(Write::Audit(caller.audit_record("request.read", id)))
        .await?;
    Ok(Some((request, case)))
}

/// Whether a status waits on someone: a clinician (`pending_review`) or the provider
/// (`pending_information`). Both run on the plan's clock.
pub fn is_pending(status: &str) -> bool {
    matches!(status, "pending_review" | "pending_information")
}

/// The requests a PAS Claim identifier finds (`$inquire`) that the caller may see: by the
/// identifier, or by its value under another system; newest first.
pub async fn find_by_claim(
    service: &Service,
    caller: &Caller,
    identifier: &str,
) -> Result<Vec<String>, Error> {
    let value = identifier.rsplit('|').next().unwrap_or_default();
    let only = (caller.role == Role::Submitter).then_some(caller.organization.as_str());
    let found =
        requests::by_claim_identifier(&service.store.pool, identifier, Some(value), only).await?;
    let mut ids: Vec<String> = found
        .into_iter()
        .filter(|found| visible(caller, &found.organization))
        .map(|found| found.request_id)
        .collect();
    // The requests a later Claim with this identifier withdrew (an update's cancelled items, a
    // cancellation's requests): the inquiry answers that Claim's whole current state.
    for id in requests::by_successor(&service.store.pool, identifier, only).await? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The requests of the Claim a PAS 2.2.1 inquiry names by reference: a request's id (its
/// `administrationReferenceNumber`) or an authorization's number (`authorizationNumber`),
/// the caller may see; none for a reference to another organization's, as for one unknown.
pub async fn find_by_reference(
    service: &Service,
    caller: &Caller,
    reference: &str,
) -> Result<Vec<String>, Error> {
    if !super::could_be_id(reference) {
        return Ok(Vec::new());
    }
    match requests::claim_of_reference(&service.store.pool, reference).await? {
        Some((identifier, organization)) => {
            find_successor_claim(service, caller, &organization, &identifier).await
        }
        None => Ok(Vec::new()),
    }
}

/// The requests of the Claim `identifier` (`system|value`, exactly) of `organization`, which
/// the caller may see; newest first. What an inquiry follows from a request an update of that
/// organization withdrew ([`Successor`]): never another organization's Claim.
pub async fn find_successor_claim(
    service: &Service,
    caller: &Caller,
    organization: &str,
    identifier: &str,
) -> Result<Vec<String>, Error> {
    if !visible(caller, organization) {
        return Ok(Vec::new());
    }
    let found =
        requests::by_claim_identifier(&service.store.pool, identifier, None, Some(organization))
            .await?;
    Ok(found
        .into_iter()
        .filter(|found| found.organization == organization && found.claim_identifier == identifier)
        .map(|found| found.request_id)
        .collect())
}

/// A request of the Claim an update or a cancellation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedClaimRequest {
    pub id: String,
    /// The sequence of the Claim's item it answers.
    pub item_sequence: i64,
}

/// The requests (one per item) of the one PAS Claim an update or a cancellation names, by
/// `system|value` of that Claim's identifier, among the caller's organization's own; newest
/// first. FHIR identifiers match on system and value: a Claim with the same value under
/// another system is another Claim, and is never touched. A reference that gives no system
/// (`|value`) finds the Claim with that value only when it is the one: two Claims with the
/// value under different systems make it ambiguous (invalid, `Claim.related`), rather than
/// acting on both.
pub async fn find_named_claim(
    service: &Service,
    caller: &Caller,
    identifier: &str,
) -> Result<Vec<NamedClaimRequest>, Error> {
    let (system, value) = identifier.split_once('|').unwrap_or(("", identifier));
    let only = Some(caller.organization.as_str());
    let found = if system.is_empty() {
        requests::by_claim_identifier(&service.store.pool, identifier, Some(value), only).await?
    } else {
        requests::by_claim_identifier(&service.store.pool, identifier, None, only).await?
    };
    // The value exactly: the store's pattern drops `%` and `_` from it (`a_b` would find `ab`).
    let suffix = format!("|{value}");
    let found: Vec<_> = found
        .into_iter()
        .filter(|found| found.organization == caller.organization)
        .filter(|found| found.claim_identifier.ends_with(&suffix))
        .collect();
    let first = found.first().map(|f| f.claim_identifier.as_str());
    if found
        .iter()
        .any(|f| Some(f.claim_identifier.as_str()) != first)
    {
        return Err(invalid(
            "Claim.related",
            format!(
                "the Claim reference names no identifier system, and several of your Claims have the value `{value}`: name the system of the one updated or cancelled"
            ),
        ));
    }
    Ok(found
        .into_iter()
        .map(|found| NamedClaimRequest {
            id: found.request_id,
            item_sequence: found.item_sequence,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Successor;
    use serde_json::json;

    /// What became of a withdrawn request: the Claim its withdrawal records, or, for one
    /// withdrawn by an update before that was recorded, the Claim its reason names.
    #[test]
    fn a_withdrawal_names_the_claim_that_replaced_or_cancelled_it() {
        let withdrawn = |event: serde_json::Value| json!({"status": "withdrawn", "history": [{"kind": "submitted"}, event]});
        assert_eq!(
            Successor::of(&withdrawn(
                json!({"kind": "withdrawn", "reason": "Replaced", "replaced_by": "s|b"})
            )),
            Some(Successor::ReplacedBy("s|b".into()))
        );
        assert_eq!(
            Successor::of(&withdrawn(
                json!({"kind": "withdrawn", "reason": "Cancelled", "cancelled_by": "s|b"})
            )),
            Some(Successor::CancelledBy("s|b".into()))
        );
        assert_eq!(
            Successor::of(&withdrawn(
                json!({"kind": "withdrawn", "reason": "Replaced by an update (PAS Claim urn:trnorg:1|T-2)"})
            )),
            Some(Successor::ReplacedBy("urn:trnorg:1|T-2".into()))
        );
        // Withdrawn by its requester, or not withdrawn: nothing replaced it.
        assert_eq!(
            Successor::of(&withdrawn(
                json!({"kind": "withdrawn", "reason": "The order was cancelled"})
            )),
            None
        );
        assert_eq!(
            Successor::of(&json!({"status": "approved", "history": [
                {"kind": "withdrawn", "replaced_by": "s|b"}]})),
            None
        );
    }
}
