//! A member's course of a drug under a plan, as the payer's records hold it. The records
//! outrank what a request declares: a request that renews nothing is given the member's
//! recorded authorizations as its history (so an initial request within a current course is
//! placed after the cycles already authorized, or refused where the policy refuses it), a
//! request cannot declare itself a renewal of something the records do not name, and two
//! requests of one member are decided one after the other, never both on the same records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::{Error, Service, invalid, visible};
use crate::keys::Caller;
use crate::store::{self, Store, Tx, authorizations as records};

/// The courses being decided now, one lock each: a request holds its member's from reading
/// the records to storing its decision. Only courses with a request in flight are kept.
///
/// One process's; on PostgreSQL a held course is also held on the database
/// (`store::courses::hold_shared`), so several services on one database take turns too. On
/// SQLite one service has the file.
#[derive(Debug, Default)]
pub struct CourseLocks {
    held: Mutex<HashMap<CourseKey, Arc<AsyncMutex<()>>>>,
}

type CourseKey = (String, String, String);

/// A held course: released when dropped, after the request's decision is stored.
#[derive(Debug)]
pub struct HeldCourse {
    // Dropped in this order: the database's hold (rolled back), then this process's.
    _shared: Option<Tx>,
    _guard: OwnedMutexGuard<()>,
}

impl CourseLocks {
    /// This process's lock first, then the database's: a service's requests of one course
    /// queue here, and only one of them at a time waits on the database.
    async fn lock(&self, store: &Store, key: CourseKey) -> Result<HeldCourse, Error> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            // A lock no request holds or waits for is dropped, so the map holds only the
            // courses in flight.
            held.retain(|_, lock| Arc::strong_count(lock) > 1);
            held.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        let (plan, member, drug) = &key;
        Ok(HeldCourse {
            _shared: store::courses::hold_shared(store, plan, member, drug).await?,
            _guard: guard,
        })
    }
}

/// A request that renews nothing (`renews` absent): refuses a declared renewal, and gives the
/// case the member's recorded authorizations of its drug under `plan`, whichever
/// organization asked for them. Returns the member's course, held until the request's
/// decision is stored; None when the case names no member or no drug (nothing to match).
pub async fn with_records(
    service: &Service,
    caller: &Caller,
    plan: &str,
    case_json: &mut Value,
) -> Result<Option<HeldCourse>, Error> {
    let (member, drug) = member_and_drug(case_json);
    let declares_renewal =
        case_json.pointer("/request/kind").and_then(Value::as_str) == Some("renewal");
    let (Some(member), Some(drug)) = (member, drug) else {
        if declares_renewal {
            return Err(renewal_without_record(&[]));
        }
        return Ok(None);
    };
    let held = service
        .courses
        .lock(
            &service.store,
            (plan.to_string(), member.clone(), drug.clone()),
        )
        .await?;
    let recorded = records::of_member(&service.store.reads, plan, &member, &drug).await?;
    if declares_renewal {
        let numbers: Vec<&str> = recorded
            .iter()
            .filter(|a| visible(caller, &a.organization))
            .map(|a| a.number.as_str())
            .collect();
        return Err(renewal_without_record(&numbers));
    }
    add_recorded(&recorded, case_json);
    Ok(Some(held))
}

/// Holds the course a renewal (`reference`: the authorization it renews) or a completion
/// (`reference`: the request) joins, before its transaction opens (a course is never waited
/// for inside one: a held course's request may wait for the writer). The member and drug are
/// the case's where it names them (a completion may name the member), else the records'.
/// None when neither names a member.
pub async fn hold(
    service: &Service,
    reference: &str,
    case_json: &Value,
) -> Result<Option<HeldCourse>, Error> {
    let Some((plan, member, drug)) =
        crate::store::requests::course_of(&service.store.reads, reference).await?
    else {
        return Ok(None);
    };
    let (given_member, given_drug) = member_and_drug(case_json);
    Ok(match (given_member.or(member), given_drug.or(drug)) {
        (Some(member), Some(drug)) => Some(
            service
                .courses
                .lock(&service.store, (plan, member, drug))
                .await?,
        ),
        _ => None,
    })
}

/// A renewal, a completion, a clinician's approval or an appeal's: the member's recorded
/// authorizations, as [`with_records`] gives them, for the member and drug the case names (a
/// renewal's chain is among them; the member's other authorizations of the drug, an earlier
/// course or another clinic's, place it after them). A request decided again (`own`: its id)
/// is not placed after its own authorization. Run with the course held ([`hold`]).
///
/// Renewals too: a renewal left waiting for information, or for a clinician, while another
/// request of the member was approved, was placed by the records as they stood when it was
/// sent, and authorized the cycles the other had been given (16 cycles of a 9-cycle course).
pub async fn merge_records(
    service: &Service,
    plan: &str,
    own: Option<&str>,
    case_json: &mut Value,
) -> Result<(), Error> {
    if let (Some(member), Some(drug)) = member_and_drug(case_json) {
        let mut recorded = records::of_member(&service.store.reads, plan, &member, &drug).await?;
        recorded.retain(|a| Some(a.request_id.as_str()) != own);
        add_recorded(&recorded, case_json);
    }
    Ok(())
}

/// The member (as requests are stored by it, `Member::of_case`: without the spaces around)
/// and the drug a case names.
fn member_and_drug(case_json: &Value) -> (Option<String>, Option<String>) {
    let text = |pointer: &str| {
        case_json
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(|text| text.trim().to_string())
    };
    (text("/patient/member_id"), text("/request/drug"))
}

/// Gives a case's history the recorded authorizations.
fn add_recorded(recorded: &[records::Authorization], case_json: &mut Value) {
    if recorded.is_empty() {
        return;
    }
    let periods: Vec<(String, String)> = recorded
        .iter()
        .map(|a| (a.start_date.clone(), a.end_date.clone()))
        .collect();
    let Some(case) = case_json.as_object_mut() else {
        return;
    };
    let history = case.entry("history").or_insert_with(|| json!({}));
    if history.is_null() {
        *history = json!({});
    }
    let Some(history) = history.as_object_mut() else {
        // Not an object: the engine refuses it, naming `history`.
        return;
    };
    // A declared authorization of a recorded period is the recorded one (its cycles are the
    // records'); the others are kept (cycles given before the payer's records began).
    let mut authorizations: Vec<Value> = match history.remove("authorizations") {
        Some(Value::Array(declared)) => declared
            .into_iter()
            .filter(|a| {
                let period = (
                    a.get("start").and_then(Value::as_str).unwrap_or_default(),
                    a.get("end").and_then(Value::as_str).unwrap_or_default(),
                );
                !periods
                    .iter()
                    .any(|(start, end)| (start.as_str(), end.as_str()) == period)
            })
            .collect(),
        Some(other) if !other.is_null() => {
            // Not a list: the engine refuses it, naming the key.
            history.insert("authorizations".into(), other);
            return;
        }
        _ => Vec::new(),
    };
    authorizations.extend(recorded.iter().map(|a| {
        json!({
            "start": a.start_date,
            "end": a.end_date,
            "renewal": a.renews.is_some(),
            "cycles": a.cycles,
        })
    }));
    authorizations.sort_by(|a, b| a["start"].as_str().cmp(&b["start"].as_str()));
    history.insert("authorizations".into(), Value::Array(authorizations));
}

/// A request that declares itself a renewal but names no authorization it renews: its
/// history and its place in the course would be only what it declares.
fn renewal_without_record(numbers: &[&str]) -> Error {
    let on_record = match numbers {
        [] => String::new(),
        numbers => format!(" (this member's on record: {})", numbers.join(", ")),
    };
    invalid(
        "renews",
        format!(
            "a renewal names the authorization it continues in `renews`: its history and the cycles given come from the payer's records{on_record}; a course the payer has no authorization of is asked for as `initial`"
        ),
    )
}
