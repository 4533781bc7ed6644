//! The payer's eligibility: importing it, and finding a request's member and plan in it.
//!
//! The EHR's Coverage says who the member is (its member ids); the payer's records say which
//! plan covers them and on which days. Once eligibility is loaded, the plan a Coverage
//! declares decides nothing: a member id no record holds is no member, whatever plan it
//! names. Before any is loaded, the declared plan is taken (the service's behaviour before
//! this table), so that a payer who sends no eligibility keeps working.

use priorauth_core::date::Date;
use serde_json::Value;

use super::{Error, Service, now_ms};
use crate::keys::{Caller, Role};
use crate::store::members::{self, Enrolment};
use crate::store::{self, AuditRecord};

/// Fields of an eligibility file, in this order (a header line names them).
pub const COLUMNS: [&str; 5] = [
    "member_id",
    "plan",
    "effective_from",
    "effective_to",
    "birth_date",
];

/// The most rows one import takes: a larger file is split.
pub const MAX_ROWS: usize = 1_000_000;

/// Reads an eligibility file: a header line naming [`COLUMNS`] (the last two may be left
/// empty in a row), then one enrolment per line, comma-separated, no quoting. Every row is
/// checked (a known plan, real dates, the span in order) before any is written; each problem
/// names its line and field.
pub fn parse(service: &Service, text: &str) -> Result<Vec<Enrolment>, Error> {
    parse_rows(text, &|plan| service.plans.get(plan).is_some())
}

fn parse_rows(text: &str, known_plan: &dyn Fn(&str) -> bool) -> Result<Vec<Enrolment>, Error> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<&str> = match lines.next() {
        Some((_, header)) => header.split(',').map(str::trim).collect(),
        None => {
            return Err(invalid(
                "line 1",
                "the file is empty: a header line is expected",
            ));
        }
    };
    if header != COLUMNS {
        return Err(invalid(
            "line 1",
            format!("the header must be `{}`", COLUMNS.join(",")),
        ));
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in lines {
        let at = |field: &str| format!("line {}: {field}", index + 1);
        if rows.len() >= MAX_ROWS {
            return Err(invalid(at("line"), format!("more than {MAX_ROWS} rows")));
        }
        if line.contains('"') {
            problems.push((
                at("line"),
                "quoted fields are not read: no field holds a comma".into(),
            ));
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != COLUMNS.len() {
            problems.push((
                at("line"),
                format!(
                    "{} fields where {} are expected",
                    fields.len(),
                    COLUMNS.len()
                ),
            ));
            continue;
        }
        let field = |n: usize| fields.get(n).copied().unwrap_or_default();
        let member_id = field(0);
        if !super::could_be_id(member_id) {
            problems.push((at("member_id"), "1 to 64 printable characters".into()));
        }
        let plan = field(1);
        if !known_plan(plan) {
            problems.push((
                at("plan"),
                format!("`{plan}` is not a plan of this service"),
            ));
        }
        let date = |n: usize, required: bool, problems: &mut Vec<(String, String)>| {
            let text = field(n);
            if text.is_empty() && !required {
                return None;
            }
            match Date::parse(text) {
                Some(_) => Some(text.to_string()),
                None => {
                    problems.push((
                        at(COLUMNS.get(n).copied().unwrap_or("field")),
                        format!("`{text}` is not a date (YYYY-MM-DD)"),
                    ));
                    None
                }
            }
        };
        let from = date(2, true, &mut problems);
        let to = date(3, false, &mut problems);
        let birth_date = date(4, false, &mut problems);
        if let (Some(from), Some(to)) = (&from, &to) {
            if to < from {
                problems.push((at("effective_to"), "is before effective_from".into()));
            }
        }
        if let Some(from) = from {
            rows.push(Enrolment {
                member_id: member_id.to_string(),
                plan: plan.to_string(),
                effective_from: from,
                effective_to: to,
                birth_date,
            });
        }
    }
    if !problems.is_empty() {
        problems.truncate(50);
        return Err(Error::Invalid(problems));
    }
    Ok(rows)
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid(vec![(field.into(), message.into())])
}

/// Writes an eligibility file's rows in one transaction, with one audit entry naming how many.
pub async fn import(service: &Service, caller: &Caller, rows: &[Enrolment]) -> Result<(), Error> {
    if caller.role != Role::Admin {
        return Err(Error::Forbidden("only an admin imports eligibility".into()));
    }
    let mut tx = service
        .store
        .pool
        .begin()
        .await
        .map_err(store::StoreError)?;
    members::upsert(&mut tx, rows, now_ms()).await?;
    let mut record: AuditRecord =
        caller.audit_record("members.import", &format!("{} enrolments", rows.len()));
    record.binds = None;
    store::audit(&mut tx, &record).await?;
    tx.commit().await.map_err(store::StoreError)?;
    if !rows.is_empty() {
        members::note_loaded(&service.store);
    }
    Ok(())
}

/// Who a request's Coverage names, by the payer's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// A member whose enrolment in `plan` covers the day: `member` is the member id the
    /// eligibility knows them by (with none loaded, the first id the Coverage gives), which
    /// the request is stored under, so that the member's course is found by it.
    Member {
        plan: String,
        member: Option<String>,
    },
    /// A member, but no enrolment covers the day.
    Inactive,
    /// No member has these ids (or the Coverage gave none).
    Unknown,
}

/// The member of `member_ids` and the plan covering them on `day` (`YYYY-MM-DD`). Where two
/// plans cover the day, the one the Coverage declares is taken, else the earliest enrolled.
/// With no eligibility loaded, the declared plan (if it is one of the service's). Either
/// way, a plan whose payer identifiers disagree with those the Coverage carrying the member
/// id names (`payer_ids`: each member id with its Coverage's payer identifiers,
/// [`crate::plans::Plan::is_payer`]) is not the member's: a member id another payer issued
/// is not this payer's member.
pub async fn find(
    service: &Service,
    member_ids: &[String],
    declared_plan: Option<&str>,
    payer_ids: &[(String, Vec<String>)],
    day: &str,
) -> Result<Membership, Error> {
    let payers_of = |member: &str| {
        payer_ids
            .iter()
            .find(|(id, _)| id == member)
            .map_or(&[][..], |(_, payers)| payers.as_slice())
    };
    let payer_agrees =
        |plan: &str, payers: &[String]| service.plans.get(plan).is_some_and(|p| p.is_payer(payers));
    if !members::any(&service.store).await? {
        // The declared plan, if every Coverage that names a payer names one it agrees with.
        let agrees = |plan: &str| {
            service.plans.get(plan).is_some()
                && payer_ids
                    .iter()
                    .all(|(_, payers)| payer_agrees(plan, payers))
        };
        return Ok(match declared_plan.filter(|p| agrees(p)) {
            Some(plan) => Membership::Member {
                plan: plan.to_string(),
                member: member_ids.first().cloned(),
            },
            None => Membership::Unknown,
        });
    }
    let mut enrolments = members::of_members(&service.store, member_ids).await?;
    enrolments.retain(|e| payer_agrees(&e.plan, payers_of(&e.member_id)));
    if enrolments.is_empty() {
        return Ok(Membership::Unknown);
    }
    let covering: Vec<&Enrolment> = enrolments.iter().filter(|e| e.covers(day)).collect();
    let chosen = covering
        .iter()
        .find(|e| Some(e.plan.as_str()) == declared_plan)
        .or_else(|| covering.first());
    Ok(match chosen {
        Some(enrolment) => Membership::Member {
            plan: enrolment.plan.clone(),
            member: Some(enrolment.member_id.clone()),
        },
        None => Membership::Inactive,
    })
}

/// A request whose case declares its member (`patient.member_id`, `/v1` and CRD): once any
/// eligibility is loaded, the member must be one the payer's records hold, enrolled in
/// `plan` on the day of receipt (whatever `request.date` says). The id is matched as the
/// records spell it (save the spaces around it): `m-100` is not `M-100`, and a request may
/// not start a member's course afresh under a spelling of its own. With none loaded, any id
/// is taken (a payer who sends no eligibility keeps working; its courses are matched by the
/// id as given), and a case may name no member.
///
/// Once eligibility is loaded, a case must name its member: one naming none was decided on
/// what it declared, matched to no course, so that leaving the id out started a course
/// afresh each time (a second initial approval of the same patient).
pub async fn check_declared(service: &Service, plan: &str, case: &Value) -> Result<(), Error> {
    const FIELD: &str = "case.patient.member_id";
    let named = case
        .pointer("/patient/member_id")
        .filter(|m| !m.is_null())
        .map(|m| m.as_str().unwrap_or_default());
    if !members::any(&service.store).await? {
        return Ok(());
    }
    let Some(member) = named else {
        return Err(invalid(
            FIELD,
            "required: the payer's eligibility is loaded, and a request names the member it is for (as the eligibility spells it)",
        ));
    };
    // The day of receipt, when what is authorized starts: a request dated back to a day the
    // member was still enrolled would otherwise authorize months of drug for someone whose
    // coverage has ended.
    let day = super::today();
    let enrolments = members::of_members(&service.store, &[member.trim().to_string()]).await?;
    if enrolments.is_empty() {
        return Err(invalid(
            FIELD,
            "no member of the payer's eligibility has this id (it is matched as the payer spells it)",
        ));
    }
    let in_plan: Vec<&Enrolment> = enrolments.iter().filter(|e| e.plan == plan).collect();
    if in_plan.is_empty() {
        return Err(invalid(
            "plan",
            format!("the member is not enrolled in plan `{plan}`"),
        ));
    }
    if !in_plan.iter().any(|e| e.covers(&day)) {
        return Err(invalid(
            FIELD,
            format!("the member's enrolment in plan `{plan}` does not cover {day}"),
        ));
    }
    Ok(())
}

/// Whether the payer's eligibility has `member` covered by `plan` on `day` (`YYYY-MM-DD`):
/// true when no eligibility is loaded, or none of the member's in `plan` is held (a course
/// decided before its member's enrolments were loaded is not refused for their absence).
pub async fn covered_on(
    service: &Service,
    plan: &str,
    member: &str,
    day: &str,
) -> Result<bool, Error> {
    if !members::any(&service.store).await? {
        return Ok(true);
    }
    let enrolments = members::of_members(&service.store, &[member.to_string()]).await?;
    let mut in_plan = enrolments.iter().filter(|e| e.plan == plan).peekable();
    if in_plan.peek().is_none() {
        return Ok(true);
    }
    Ok(in_plan.any(|e| e.covers(day)))
}

/// A request naming a member and a birth date (`/v1`, PAS, a completion): once the payer's
/// eligibility holds the member's birth date, the case's must be it: the enrolment's in
/// `plan` covering the day of receipt, else another of the member's in `plan`, else any of
/// the member's. The age decides pathways (a child's, an adult's) and the label's youngest
/// patient, and the records outrank what a request declares: a 60-year-old member declared
/// born in 2012 was decided on the pediatric pathway. The recorded date is not shown; a
/// refusal says only that the two differ (as any refused call, audited and under the
/// caller's rate). A case without one is asked for it as any missing fact is, and checked
/// when it is given.
pub async fn check_birth_date(service: &Service, plan: &str, case: &Value) -> Result<(), Error> {
    let text = |pointer: &str| {
        case.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    let (Some(member), Some(declared)) = (text("/patient/member_id"), text("/patient/birth_date"))
    else {
        return Ok(());
    };
    if !members::any(&service.store).await? {
        return Ok(());
    }
    let enrolments = members::of_members(&service.store, &[member.to_string()]).await?;
    let day = super::today();
    let dated = |pick: &dyn Fn(&&Enrolment) -> bool| -> Vec<&str> {
        enrolments
            .iter()
            .filter(|e| pick(e))
            .filter_map(|e| e.birth_date.as_deref())
            .collect()
    };
    let mut recorded = dated(&|e| e.plan == plan && e.covers(&day));
    if recorded.is_empty() {
        recorded = dated(&|e| e.plan == plan);
    }
    if recorded.is_empty() {
        recorded = dated(&|_| true);
    }
    if !recorded.is_empty() && !recorded.contains(&declared) {
        return Err(invalid(
            "case.patient.birth_date",
            "disagrees with the birth date of the member in the payer's eligibility records: a request is decided on the member the records hold",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_every_field_are_checked_naming_the_line() {
        let plan = "eocco-medicaid";
        let check = |text: &str| -> Result<usize, Vec<(String, String)>> {
            parse_rows(text, &|p| p == plan)
                .map(|r| r.len())
                .map_err(|e| match e {
                    Error::Invalid(problems) => problems,
                    other => vec![("?".into(), format!("{other:?}"))],
                })
        };
        assert_eq!(
            check(&format!(
                "member_id,plan,effective_from,effective_to,birth_date\nM1,{plan},2026-01-01,,\nM2,{plan},2026-01-01,2026-12-31,1970-02-03\n"
            )),
            Ok(2)
        );
        let wrong = check("id,plan\nM1,x").unwrap_err();
        assert_eq!(wrong[0].0, "line 1");
        let bad = check(&format!("member_id,plan,effective_from,effective_to,birth_date\nM1,nope,2026-13-01,2025-01-01,\n,{plan},2026-01-01,2025-01-01,x\n\"M,3\",{plan},2026-01-01,,\n")).unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "line 2: plan",
                "line 2: effective_from",
                "line 3: member_id",
                "line 3: birth_date",
                "line 3: effective_to",
                "line 4: line"
            ]
        );
    }
}
