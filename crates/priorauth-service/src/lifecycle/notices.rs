//! The notices a member and a prescriber are sent about a decision, in words composed once
//! (`paragraphs`) for every form they take: the JSON of the API, the console's printable
//! page and the PDF (`crate::pdf`). A clinician's denial states the reason, the criterion and
//! the passage it rests on, the reviewer and the appeal rights; an approval states what the
//! authorization covers and, when a clinician changed what was asked, the change and the
//! right to appeal it. Times are stated in the plan's zone.

use serde_json::{Value, json};

use super::requests::fetch;
use super::{Error, Service, timestamp};
use crate::keys::Caller;
use crate::store::authorizations as authorization_records;
use crate::store::requests::{self, Request};
use crate::store::{self, Tx};

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
    let letter = denial_notice(&mut tx, service, &row).await?;
    store::audit(&mut tx, &caller.audit_record("request.denial_letter", id)).await?;
    tx.commit().await?;
    Ok(letter)
}

/// The denial notice of a request a clinician denied, from its records in `tx`.
pub(super) async fn denial_notice(
    tx: &mut Tx,
    service: &Service,
    row: &Request,
) -> Result<Value, Error> {
    let id = row.id.as_str();
    let d = requests::determination(&mut *tx, id)
        .await?
        .ok_or_else(|| Error::Internal("a denial without its determination".into()))?;
    // None for a request no policy governs: its letter names the reviewer's stated basis.
    let policy = service
        .engine
        .policy_index(&row.policy)
        .and_then(|i| service.engine.policies.get(i));
    let criterion = policy.and_then(|p| p.criteria.iter().find(|c| c.id == d.criterion));
    let case: Value =
        serde_json::from_str(&requests::current_case(&mut *tx, row).await?).unwrap_or(Value::Null);
    let plan = service.plans.get(&row.plan);
    let text = |pointer: &str| {
        case.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let zone = plan.map_or("UTC", |p| p.time_zone.as_str());
    let parties = Parties::of(&case, plan, &row.plan, &row.organization);
    let notice = DenialNotice {
        received: local_time(row.created_at, zone),
        decided: local_time(d.at, zone),
        service: service_words(&case),
        reason: d.reason.clone(),
        criterion: criterion.map_or_else(|| d.criterion.clone(), |c| c.text.clone()),
        source: criterion.map(|c| c.source.to_string()),
        policy: policy.map(|p| format!("{} (version {})", p.title, p.version)),
        reviewer: format!("{}, {}", d.reviewer_name, d.reviewer_credentials),
        appeal: plan.map(|p| p.appeal.clone()),
        parties,
    };
    let letter = json!({
        "request_id": id,
        "decision": "denied",
        "plan": {"id": row.plan, "name": notice.parties.plan, "contact": notice.parties.contact},
        "member": {"id": text("/patient/member_id"), "name": text("/patient/name"), "birth_date": text("/patient/birth_date")},
        "prescriber": {"name": text("/prescriber/name"), "npi": text("/prescriber/npi")},
        "organization": row.organization,
        "received_at": timestamp(row.created_at),
        "paragraphs": notice.paragraphs(),
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
            "policy": policy.map(|p| p.title.clone()),
            "policy_version": policy.map(|p| p.version.clone()),
            "copy": "A copy of the policy and the criteria used is available free of charge on request.",
        },
        "reviewer": {
            "name": d.reviewer_name,
            "credentials": d.reviewer_credentials,
            "peer_to_peer": "The prescriber may discuss this decision with the reviewer (peer-to-peer) by contacting the plan.",
        },
        "decided_at": timestamp(d.at),
        "time_zone": plan.map(|p| p.time_zone.clone()),
        "appeal": plan.map(|p| p.appeal.clone()),
        "automation": "Software evaluated the request against the policy; a licensed clinician reviewed the request and made this decision.",
    });
    Ok(letter)
}

/// A denial notice in words, the same in every form it is given (JSON `paragraphs`, the
/// console's printable page, PDF): who it is for, what was asked, the decision with the
/// reason and the criterion and passage it rests on, who decided, and the appeal rights.
struct DenialNotice {
    parties: Parties,
    received: String,
    decided: String,
    service: String,
    reason: String,
    criterion: String,
    source: Option<String>,
    policy: Option<String>,
    reviewer: String,
    appeal: Option<String>,
}

impl DenialNotice {
    fn paragraphs(&self) -> Vec<String> {
        let mut out = vec![
            format!("Notice of denial from {}", self.parties.plan),
            self.parties.addressed(),
            format!(
                "We received the request for prior authorization on {} and decided it on {}.",
                self.received, self.decided
            ),
            format!("What was asked: {}.", self.service),
            format!(
                "Our decision: we do not approve this request. {}",
                self.reason
            ),
            match (&self.policy, &self.source) {
                (Some(policy), Some(source)) => format!(
                    "The decision rests on this criterion of {policy}: {}. Its source: {source}. A copy of the policy and the criteria used is free on request.",
                    self.criterion
                ),
                _ => format!("The decision rests on: {}.", self.criterion),
            },
            format!(
                "Decided by {}, a licensed clinician who reviewed the request; software evaluated it against the policy. The prescriber may discuss the decision with the reviewer (peer to peer) by contacting the plan.",
                self.reviewer
            ),
        ];
        if let Some(appeal) = &self.appeal {
            out.push(format!("Your right to appeal: {appeal}"));
        }
        out.push(format!("Questions: contact {}.", self.parties.contact));
        out
    }
}

/// What a request asked, in words: the drug, its code, dose, cycles and units.
fn service_words(case: &Value) -> String {
    let text = |pointer: &str| case.pointer(pointer).and_then(Value::as_str);
    let number = |pointer: &str| case.pointer(pointer).and_then(Value::as_f64);
    let mut parts = vec![
        text("/request/drug")
            .unwrap_or("the drug")
            .replace('_', " "),
    ];
    if let Some(code) = text("/request/hcpcs") {
        parts.push(format!("HCPCS {code}"));
    }
    if let (Some(value), Some(unit)) = (number("/request/dose/value"), text("/request/dose/unit")) {
        parts.push(format!("{value} {unit}"));
    }
    if let Some(cycles) = number("/request/cycles") {
        parts.push(format!("{cycles} cycles"));
    }
    if let (Some(units), Some(days)) = (
        number("/request/units"),
        number("/request/units_period_days"),
    ) {
        parts.push(format!("{units} units per {days} days"));
    }
    parts.join(", ")
}

/// A time in the plan's zone, as a notice states it (`2026-12-03 09:17 EST`).
fn local_time(ms: i64, zone: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| t.in_tz(zone).ok())
        .map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_else(|| timestamp(ms))
}

/// The approval notice of an approved request: who it is for, what the authorization covers
/// (its number, drug, units, cycles and period), who decided (the policy's criteria, or a
/// clinician), and for an approval with changes what changed and how to appeal it.
pub async fn approval_notice(service: &Service, caller: &Caller, id: &str) -> Result<Value, Error> {
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    if row.status != "approved" {
        return Err(Error::Conflict(format!(
            "the request is `{}`: only an approval has an approval notice",
            row.status
        )));
    }
    let notice = approval_notice_of(&mut tx, service, &row, Numbered::Drawn).await?;
    store::audit(&mut tx, &caller.audit_record("request.approval_notice", id)).await?;
    tx.commit().await?;
    Ok(notice)
}

/// Whether an approval's authorization number is drawn: it is once the approval is recorded;
/// a preview's is not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Numbered {
    Drawn,
    NotYet,
}

/// The approval notice of an approved request, from its records in `tx`.
pub(super) async fn approval_notice_of(
    tx: &mut Tx,
    service: &Service,
    row: &Request,
    numbered: Numbered,
) -> Result<Value, Error> {
    let id = row.id.as_str();
    let authorization = authorization_records::of_request(&mut *tx, id)
        .await?
        .ok_or_else(|| Error::Internal("an approval without its authorization".into()))?;
    let determination = requests::determination(&mut *tx, id).await?;
    let case: Value =
        serde_json::from_str(&requests::current_case(&mut *tx, row).await?).unwrap_or(Value::Null);
    let plan = service.plans.get(&row.plan);
    let zone = plan.map_or("UTC", |p| p.time_zone.as_str());
    let parties = Parties::of(&case, plan, &row.plan, &row.organization);
    let decided_at = determination
        .as_ref()
        .map_or(row.decided_at.unwrap_or(row.updated_at), |d| d.at);
    let number = (numbered == Numbered::Drawn).then_some(authorization.number.as_str());
    let mut paragraphs = vec![
        format!("Notice of approval from {}", parties.plan),
        parties.addressed(),
        format!(
            "We received the request for prior authorization on {} and decided it on {}.",
            local_time(row.created_at, zone),
            local_time(decided_at, zone)
        ),
        format!("What was asked: {}.", service_words(&case)),
        format!(
            "Our decision: we approve it. Authorization {} covers {} ({}): {} units every {} days, {} cycles, {} units in all, from {} to {} inclusive.",
            number.unwrap_or("(its number is given when it is recorded)"),
            authorization.drug.replace('_', " "),
            authorization.hcpcs,
            authorization.units_per_period,
            authorization.period_days,
            authorization.cycles,
            authorization.approved_units,
            authorization.start_date,
            authorization.end_date
        ),
    ];
    match &determination {
        Some(d) if d.decision == "approve_with_changes" => {
            paragraphs.push(format!(
                "A clinician changed what was asked: {} Decided by {}, {}.",
                d.reason, d.reviewer_name, d.reviewer_credentials
            ));
            if let Some(plan) = plan {
                paragraphs.push(format!("Your right to appeal the change: {}", plan.appeal));
            }
        }
        Some(d) => paragraphs.push(format!(
            "Decided by {}, {}, a licensed clinician who reviewed the request.",
            d.reviewer_name, d.reviewer_credentials
        )),
        None => paragraphs.push(
            "The request met the plan's policy criteria, which software evaluated.".to_string(),
        ),
    }
    paragraphs.push(format!("Questions: contact {}.", parties.contact));
    Ok(json!({
        "request_id": id,
        "decision": "approved",
        "authorization": number,
        "received_at": timestamp(row.created_at),
        "decided_at": timestamp(decided_at),
        "paragraphs": paragraphs,
    }))
}

/// Who a notice is from and to, as the plan and the case name them.
struct Parties {
    plan: String,
    contact: String,
    member: String,
    prescriber: String,
    organization: String,
}

impl Parties {
    fn of(
        case: &Value,
        plan: Option<&crate::plans::Plan>,
        plan_id: &str,
        organization: &str,
    ) -> Parties {
        let text = |pointer: &str| case.pointer(pointer).and_then(Value::as_str);
        let member = match (text("/patient/name"), text("/patient/member_id")) {
            (Some(name), Some(id)) => format!("{name} (member id {id})"),
            (Some(name), None) => name.to_string(),
            (None, Some(id)) => format!("the member with id {id}"),
            (None, None) => "the member".into(),
        };
        let prescriber = match (text("/prescriber/name"), text("/prescriber/npi")) {
            (Some(name), Some(npi)) => format!("{name} (NPI {npi})"),
            (Some(name), None) => name.to_string(),
            (None, _) => "the prescriber".into(),
        };
        Parties {
            plan: plan.map_or(plan_id.to_string(), |p| p.name.clone()),
            contact: plan
                .and_then(|p| p.contact.clone())
                .unwrap_or_else(|| "the member services number on the member's ID card".into()),
            member,
            prescriber,
            organization: organization.to_string(),
        }
    }

    fn addressed(&self) -> String {
        format!(
            "To {}, and to {} at {}.",
            self.member, self.prescriber, self.organization
        )
    }
}
