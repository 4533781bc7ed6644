//! Deciding a request for a plan: the plan's policy for the drug, the engine's evaluation as
//! of the day of receipt, and the most an authorization of it may cover.

use priorauth_core::Outcome;
use priorauth_core::date::Date;
use priorauth_core::report::Report;
use serde_json::{Value, json};

use super::{Error, Service, case_invalid, invalid};
use crate::plans::Plan;

/// The evaluated request: its case (with the plan's line of business), the policy used and
/// the policy's result in the decision contract.
#[derive(Debug)]
pub struct Evaluated {
    pub case: priorauth_core::Case,
    pub case_json: Value,
    pub policy_index: usize,
    pub outcome: Outcome,
    pub result: Value,
    /// The day the payer received the request: an approval's period starts then.
    pub received: Date,
    /// The most an authorization of this request may cover, per cycle and in cycles: the
    /// engine's granted quantity for an approval, else (a reviewer's approval) the label's
    /// limits applied to the request.
    pub bound: QuantityBound,
}

#[derive(Debug, Clone, Copy)]
pub struct QuantityBound {
    /// The request's first cycle in its course, where the engine placed it: what the request
    /// says (`request.first_cycle`, or `history.cycles_given` + 1), never before the cycles
    /// the records' authorizations cover. An authorization records it, so that a renewal
    /// continues from its last cycle.
    pub first_cycle: u32,
    /// Units per cycle the authorization carries unless a reviewer changes them.
    pub units_per_cycle: u32,
    /// The most units per cycle a reviewer may approve (the label's).
    pub max_units_per_cycle: u32,
    pub cycles: u32,
    pub max_cycles: u32,
    /// For a clinician's approval of a request the policy did not approve: the latest last day
    /// its approving pathways' stated periods allow (`None`: the policy states none).
    pub end: Option<Date>,
    /// For a clinician's approval of a request the policy did not approve: what the request
    /// asks (units per cycle, cycles) when either is more than may be approved. Approving it
    /// grants less than asked, which is an approval with changes and its notice, not a plain
    /// approval.
    pub asked_beyond: Option<(u32, u32)>,
}

/// The quantity bound of an evaluated request (see [`Evaluated::bound`]).
fn quantity_bound(
    result: &Value,
    facts: &priorauth_core::Facts,
    policy: impl FnOnce() -> Option<priorauth_core::eval::ApprovalBound>,
) -> QuantityBound {
    use priorauth_core::FactId;
    use priorauth_core::facts::Value as Fact;
    let number = |id: FactId| match facts.get(id) {
        Fact::Number(n) if n.is_finite() && n >= 0.0 => Some(n.min(f64::from(u32::MAX)) as u32),
        _ => None,
    };
    let label_units = number(FactId::RequestLabelUnitsPerCycle).unwrap_or(0);
    let first = number(FactId::RequestFirstCycle).unwrap_or(1).max(1);
    let course_left = number(FactId::RequestLabelCourseCycles)
        .map_or(0, |course| course.saturating_sub(first - 1));
    let granted = |key: &str| {
        result
            .pointer(&format!("/quantity/{key}"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    match (granted("units"), granted("cycles")) {
        (Some(units), Some(cycles)) => QuantityBound {
            first_cycle: first,
            units_per_cycle: units,
            max_units_per_cycle: label_units.max(units),
            cycles,
            max_cycles: course_left.max(cycles),
            end: None,
            asked_beyond: None,
        },
        _ => {
            // A clinician approving what the policy sent to review or recommended denying is
            // held to what the policy's approval of such a request covers (MassHealth's 6
            // months, EOCCO's 5 cycles), not the label's whole course.
            // (Computed only here: an approval's own grant needs none of it.)
            let (max_units, max_cycles, end) = match policy() {
                Some(bound) => (
                    bound.units_per_cycle.min(label_units),
                    bound.cycles.min(course_left),
                    bound.end,
                ),
                None => (label_units, course_left, None),
            };
            let requested_units = number(FactId::RequestUnitsPerCycle).unwrap_or(max_units);
            let requested_cycles = number(FactId::RequestCycles).unwrap_or(1);
            QuantityBound {
                first_cycle: first,
                units_per_cycle: requested_units.min(max_units),
                max_units_per_cycle: max_units,
                cycles: requested_cycles.min(max_cycles),
                max_cycles,
                end,
                asked_beyond: (requested_units > max_units || requested_cycles > max_cycles)
                    .then_some((requested_units, requested_cycles)),
            }
        }
    }
}

/// Which policy version decides a request.
#[derive(Debug, Clone, Copy)]
pub enum Version<'a> {
    /// A new request: the version in effect on the day of receipt, and its facts must be
    /// dated within the window before receipt.
    InEffect,
    /// A stored request decided again (a completion, a clinician's approval): the version it
    /// was received under, as it was received. The window was checked on receipt (or the
    /// request predates it); `check_date` checks it again for a `request.date` given now.
    Stored {
        policy: &'a str,
        version: &'a str,
        check_date: bool,
    },
}

pub fn evaluate(
    service: &Service,
    plan: &Plan,
    mut case_json: Value,
    received: Date,
    version: Version<'_>,
) -> Result<Evaluated, Error> {
    let Some(object) = case_json.as_object_mut() else {
        return Err(invalid("case", "must be an object"));
    };
    // The plan's line of business is the member's.
    let request = object.entry("request").or_insert_with(|| json!({}));
    if request.is_null() {
        *request = json!({});
    }
    if let Some(request) = request.as_object_mut() {
        match request.get("line_of_business").and_then(Value::as_str) {
            None => {
                request.insert(
                    "line_of_business".into(),
                    Value::from(plan.line_of_business.clone()),
                );
            }
            Some(given) if given != plan.line_of_business => {
                return Err(invalid(
                    "case.request.line_of_business",
                    format!(
                        "`{given}` is not the plan's line of business (`{}`)",
                        plan.line_of_business
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let case = service
        .engine
        .parse_case(&case_json.to_string())
        .map_err(case_invalid)?;
    let drug = case
        .request
        .as_ref()
        .and_then(|r| r.drug.clone())
        .ok_or_else(|| {
            invalid(
                "case.request.drug",
                "the drug decides which of the plan's policies applies",
            )
        })?;
    let policy_id = plan.policies.get(&drug).ok_or_else(|| {
        invalid(
            "case.request.drug",
            format!("plan `{}` has no policy for `{drug}`", plan.id),
        )
    })?;
    let policy_index = service
        .engine
        .policy_index(policy_id)
        .ok_or_else(|| Error::Internal(format!("policy {policy_id} missing")))?;
    // The payer's clock, not the request, dates the decision: the versions in effect on the
    // day of receipt decide, and an approval starts that day.
    let evaluation = match version {
        Version::Stored {
            policy,
            version,
            check_date,
        } if !policy.is_empty() => {
            if check_date {
                priorauth_core::case::check_received(&case, received).map_err(case_invalid)?;
            }
            let index = version_index(service, policy, version)?;
            service.engine.evaluate_version(&case, index, received)
        }
        _ => service
            .engine
            .evaluate_received(&case, &[policy_index], Some(received))
            .map_err(case_invalid)?,
    };
    let report = Report::new(&service.engine, &case, &evaluation);
    let result = report
        .results
        .first()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let outcome = evaluation
        .decisions
        .first()
        .map_or(Outcome::Incomplete, |(_, d)| d.outcome);
    // The version in effect on the day of receipt decided; it is the one recorded.
    let policy_index = evaluation
        .decisions
        .first()
        .map_or(policy_index, |(index, _)| *index);
    let policy_bound = || {
        service
            .engine
            .policies
            .get(policy_index)
            .and_then(|policy| {
                priorauth_core::eval::approval_bound(policy, &evaluation.facts, received)
            })
    };
    let bound = quantity_bound(&result, &evaluation.facts, policy_bound);
    Ok(Evaluated {
        case,
        case_json,
        policy_index,
        outcome,
        result,
        received,
        bound,
    })
}

/// Every fact of a case as JSON (derived facts and the drug label's included), when it
/// parses: what a bound outside a policy's decision reads (the label's units a cycle, the
/// course position).
pub fn facts_of(
    engine: &priorauth_core::Engine,
    case: &Value,
) -> Option<priorauth_core::facts::Facts> {
    let parsed = engine.parse_case(&case.to_string()).ok()?;
    Some(engine.facts(&parsed))
}

/// What a decision rests on, stored in place of its explanation: the outcome, the pathway
/// and the criteria its reasons name. The explanation is recomputed on read (see
/// [`recompute`]).
pub fn decision_record(result: &Value) -> Value {
    let criteria: Vec<&Value> = result
        .get("reasons")
        .and_then(Value::as_array)
        .map(|reasons| reasons.iter().filter_map(|r| r.get("id")).collect())
        .unwrap_or_default();
    json!({
        "outcome": result.get("outcome"),
        "pathway": result.get("pathway"),
        "criteria": criteria,
    })
}

/// The SHA-256 of a decision as answered: a read that recomputes it proves it is the same.
pub fn decision_sha256(result: &Value) -> String {
    crate::store::sha256_hex(&result.to_string())
}

/// A stored decision recomputed: the case as it was decided, by the policy version that
/// decided it, as of the day of receipt. The engine and the policy versions are pure
/// functions of these, so the result is the decision as answered (its hash proves it).
pub fn recompute(
    service: &Service,
    case_json: &str,
    policy: &str,
    version: &str,
    received: Date,
) -> Result<Value, Error> {
    let (_, case, evaluation) = stored_evaluation(service, case_json, policy, version, received)?;
    let report = Report::new(&service.engine, &case, &evaluation);
    Ok(report
        .results
        .first()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .unwrap_or(Value::Null))
}

/// A criterion a clinician's denial may cite ([`priorauth_core::eval::denial_grounds`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ground {
    pub id: String,
    pub text: String,
    /// `not_met`, `unknown`, or `met` for an exclusion that applies.
    pub status: &'static str,
    /// The pathway whose requirement it is; none for an exclusion.
    pub pathway: Option<String>,
}

/// The grounds a denial of a stored request may rest on, each criterion once, in the
/// policy's order: the case as it now is, by the version that decided it, as of receipt.
pub fn denial_grounds(
    service: &Service,
    case_json: &str,
    policy: &str,
    version: &str,
    received: Date,
) -> Result<Vec<Ground>, Error> {
    let (index, _, evaluation) = stored_evaluation(service, case_json, policy, version, received)?;
    let policy = service
        .engine
        .policies
        .get(index)
        .ok_or_else(|| Error::Internal("policy version".into()))?;
    let mut grounds: Vec<Ground> = Vec::new();
    for reason in priorauth_core::eval::denial_grounds(policy, &evaluation.facts) {
        let Some(criterion) = policy.criteria.get(usize::from(reason.criterion)) else {
            continue;
        };
        if grounds.iter().any(|g| g.id == criterion.id) {
            continue;
        }
        grounds.push(Ground {
            id: criterion.id.clone(),
            text: criterion.text.clone(),
            status: reason.truth.as_str(),
            pathway: reason
                .pathway
                .and_then(|p| policy.pathways.get(usize::from(p)))
                .map(|p| p.id.clone()),
        });
    }
    Ok(grounds)
}

/// A stored case evaluated again by the policy version that decided it, as of receipt: the
/// version's index, the case and the evaluation.
fn stored_evaluation(
    service: &Service,
    case_json: &str,
    policy: &str,
    version: &str,
    received: Date,
) -> Result<(usize, priorauth_core::Case, priorauth_core::Evaluation), Error> {
    let index = version_index(service, policy, version)?;
    let case = service
        .engine
        .parse_case(case_json)
        .map_err(|_| Error::Internal("a stored case no longer parses".into()))?;
    let evaluation = service.engine.evaluate_version(&case, index, received);
    Ok((index, case, evaluation))
}

/// The index of a stored policy version in the engine.
fn version_index(service: &Service, policy: &str, version: &str) -> Result<usize, Error> {
    service
        .engine
        .policies
        .iter()
        .position(|p| p.id == policy && p.version == version)
        .ok_or_else(|| Error::Internal(format!("policy {policy} version {version} is gone")))
}
