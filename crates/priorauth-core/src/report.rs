//! Rendering decisions: the JSON decision contract of `spec/case-format.md`, and a text tree
//! with met / not met / unknown marks for people.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::case::Case;
use crate::date::Date;
use crate::eval::{self, Decision, Granted, Reason, Truth};
use crate::policy::{Outcome, Policy, Source};
use crate::{Engine, Evaluation};

/// The decision contract: one result per policy.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub case: Option<&'a str>,
    pub results: Vec<PolicyResult<'a>>,
}

#[derive(Debug, Serialize)]
pub struct PolicyResult<'a> {
    pub policy: &'a str,
    /// The version of the policy that decided, the one in effect on the request date.
    pub version: &'a str,
    pub outcome: Outcome,
    pub pathway: Option<&'a str>,
    pub authorization: Option<Authorization>,
    /// What the approval covers: units per cycle and cycles, never beyond the pathway's
    /// and the label's ceilings.
    pub quantity: Option<Quantity<'a>>,
    pub missing: Vec<&'static str>,
    pub reasons: Vec<ReasonJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct Authorization {
    pub start: Date,
    pub end: Date,
}

/// The quantity of an approval (docs/case-format.md, Quantities).
#[derive(Debug, Serialize)]
pub struct Quantity<'a> {
    /// The drug's billing code (from the catalog; a request's own code must match it).
    pub hcpcs: &'a str,
    /// Billable units per cycle.
    pub units: u32,
    /// Days of a cycle (`request.cycle_length_days`), when given.
    pub period_days: Option<u32>,
    /// Whole vials the units per cycle take.
    pub vials: u32,
    /// Cycles approved.
    pub cycles: Option<u32>,
    /// Billable units of the whole authorization: `units` times `cycles`.
    pub total_units: u64,
    /// `requested` when the request gave its units, `policy_maximum` when it did not and the
    /// approval carries the ceiling.
    pub units_basis: &'static str,
    /// The most units per cycle and cycles the pathway and the drug's label allow.
    pub ceiling: Ceiling,
    /// Cycles requested, when only a part of them is approved: the rest is a recommended
    /// denial for a clinician to confirm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_cycles: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Ceiling {
    pub units_per_cycle: u32,
    pub cycles: u32,
}

#[derive(Debug, Serialize)]
pub struct ReasonJson<'a> {
    pub criterion: Cow<'a, str>,
    pub id: &'a str,
    pub status: &'static str,
    #[serde(serialize_with = "display")]
    pub source: &'a Source,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub interpretation: &'a str,
    pub pathway: Option<&'a str>,
    pub depth: u8,
    /// The case's value that decided a criterion testing one fact ("patient.weight_kg: 38"),
    /// so that a physician can see what was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

fn display<S: serde::Serializer, T: fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl<'a> Report<'a> {
    pub fn new(engine: &'a Engine, case: &'a Case, evaluation: &Evaluation) -> Report<'a> {
        let results = evaluation
            .decisions
            .iter()
            .filter_map(|(index, decision)| {
                let policy = engine.policies.get(*index)?;
                Some(policy_result(engine, policy, case, evaluation, decision))
            })
            .collect();
        Report {
            case: case.id.as_deref(),
            results,
        }
    }
}

fn policy_result<'a>(
    engine: &'a Engine,
    policy: &'a Policy,
    case: &'a Case,
    evaluation: &Evaluation,
    decision: &Decision,
) -> PolicyResult<'a> {
    let reasons = eval::explain(policy, &evaluation.facts, decision);
    let mut reasons_json: Vec<ReasonJson<'a>> = Vec::with_capacity(reasons.len() + 1);
    if decision.outcome == Outcome::NotApplicable
        || (decision.outcome == Outcome::Incomplete && reasons.is_empty())
    {
        reasons_json.push(ReasonJson {
            criterion: Cow::Borrowed("the policy governs this drug and line of business"),
            id: "applies",
            status: if decision.outcome == Outcome::NotApplicable {
                "not_met"
            } else {
                "unknown"
            },
            source: &policy.applicability,
            interpretation: &policy.applicability.interpretation,
            pathway: None,
            depth: 0,
            value: None,
        });
    }
    if decision.dosing_outside {
        reasons_json.push(ReasonJson {
            criterion: Cow::Borrowed("requests outside the policy's dosing go to clinical review"),
            id: "dosing-outside",
            status: "met",
            source: &policy.dosing_outside_source,
            interpretation: &policy.dosing_outside_source.interpretation,
            pathway: None,
            depth: 0,
            value: None,
        });
    }
    if decision.codes_not_covered {
        let given = case
            .diagnosis
            .as_ref()
            .and_then(|d| d.icd10.as_deref())
            .unwrap_or_default()
            .join(", ");
        reasons_json.push(ReasonJson {
            criterion: Cow::Owned(format!(
                "a covered diagnosis code ({}); the request gives {given}",
                policy.codes.icd10.join(", ")
            )),
            id: "covered-diagnosis-codes",
            status: "not_met",
            source: &policy.codes.icd10_source,
            interpretation: &policy.codes.icd10_source.interpretation,
            pathway: None,
            depth: 0,
            value: None,
        });
    }
    // Units beyond a ceiling come first: they are what stands between the request and an
    // approval by a pathway whose criteria are met.
    if let (Some((index, requested, ceiling)), Outcome::Deny | Outcome::Review) =
        (decision.units_over, decision.outcome)
    {
        if let Some(over) = policy.pathways.get(usize::from(index)) {
            reasons_json.push(ReasonJson {
                criterion: Cow::Owned(format!(
                    "at most {ceiling} billable units per cycle; {requested} requested per cycle{}",
                    area_counted(engine, &evaluation.facts)
                )),
                id: "units-per-cycle",
                status: "not_met",
                source: quantity_source(over),
                interpretation: &quantity_source(over).interpretation,
                pathway: Some(&over.id),
                depth: 0,
                value: None,
            });
        }
    }
    // A request past the label's course: its criteria are met, no cycle is left to approve.
    if let (Some(index), Outcome::Deny | Outcome::Review) =
        (decision.course_spent, decision.outcome)
    {
        if let Some(spent) = policy.pathways.get(usize::from(index)) {
            use crate::facts::{FactId, Value};
            let number = |id| match evaluation.facts.get(id) {
                Value::Number(n) => Some(n),
                _ => None,
            };
            let course = number(FactId::RequestLabelCourseCycles).unwrap_or(0.0);
            let first = number(FactId::RequestFirstCycle).unwrap_or(1.0);
            let frontline = matches!(
                evaluation
                    .facts
                    .get(FactId::RequestRelapsedRefractoryCourse),
                Value::Bool(false)
            );
            reasons_json.push(ReasonJson {
                criterion: Cow::Owned(format!(
                    "no cycle left in the label's course: at most {course} cycles in a {}course, and this request starts at cycle {first}",
                    if frontline { "frontline " } else { "" }
                )),
                id: "label-course-spent",
                status: "not_met",
                source: quantity_source(spent),
                interpretation: &quantity_source(spent).interpretation,
                pathway: Some(&spent.id),
                depth: 0,
                value: None,
            });
        }
    }
    reasons_json.extend(
        reasons
            .iter()
            .filter_map(|reason| reason_json(engine, policy, &evaluation.facts, reason)),
    );
    let pathway = decision
        .pathway
        .and_then(|p| policy.pathways.get(usize::from(p)));
    if let (Some(granted), Some(pathway), Outcome::Approve) =
        (decision.quantity, pathway, decision.outcome)
    {
        let source = quantity_source(pathway);
        reasons_json.push(ReasonJson {
            criterion: Cow::Owned(format!(
                "at most {} billable units per cycle and {} cycles in this authorization; {} units per cycle {}",
                granted.ceiling_units_per_cycle,
                granted.ceiling_cycles,
                granted.units_per_cycle,
                if granted.units_requested {
                    "as requested"
                } else {
                    "approved, the most allowed (no units were requested)"
                }
            )),
            id: "quantity",
            status: "met",
            source,
            interpretation: &source.interpretation,
            pathway: Some(&pathway.id),
            depth: 0,
            value: None,
        });
        if let (true, Some(requested)) = (granted.is_partial(), granted.requested_cycles) {
            reasons_json.push(ReasonJson {
                criterion: Cow::Owned(format!(
                    "{} of the {requested} cycles requested are approved; denial of the other {} is recommended (at most {} cycles in this authorization)",
                    granted.cycles,
                    requested - granted.cycles,
                    granted.ceiling_cycles
                )),
                id: "cycles-beyond-authorization",
                status: "not_met",
                source,
                interpretation: &source.interpretation,
                pathway: Some(&pathway.id),
                depth: 0,
                value: None,
            });
        }
    }
    PolicyResult {
        policy: &policy.id,
        version: &policy.version,
        outcome: decision.outcome,
        pathway: pathway.map(|p| p.id.as_str()),
        authorization: decision
            .authorization
            .map(|(start, end)| Authorization { start, end }),
        quantity: match (decision.outcome, decision.quantity) {
            (Outcome::Approve, Some(granted)) => {
                quantity(engine, case, &evaluation.facts, &granted)
            }
            _ => None,
        },
        missing: policy.missing_keys(decision.missing).collect(),
        reasons: reasons_json,
    }
}

fn reason_json<'a>(
    engine: &Engine,
    policy: &'a Policy,
    facts: &crate::Facts,
    reason: &Reason,
) -> Option<ReasonJson<'a>> {
    let criterion = policy.criteria.get(usize::from(reason.criterion))?;
    let value = match &criterion.node {
        crate::policy::Node::Test(test) => Some(fact_value(engine, test.fact, facts)),
        _ => None,
    };
    // A negative criterion not met reads as what was found, not as a double negative.
    let text = if reason.truth == Truth::False && !criterion.unmet.is_empty() {
        &criterion.unmet
    } else {
        &criterion.text
    };
    Some(ReasonJson {
        criterion: Cow::Borrowed(text),
        id: &criterion.id,
        status: reason.truth.as_str(),
        source: &criterion.source,
        interpretation: &criterion.source.interpretation,
        pathway: reason
            .pathway
            .and_then(|p| policy.pathways.get(usize::from(p)))
            .map(|p| p.id.as_str()),
        depth: reason.depth,
        value,
    })
}

/// A fact's value as a reason shows it: `name: value`, numbers to two decimals at most.
pub fn fact_value(engine: &Engine, fact: crate::FactId, facts: &crate::Facts) -> String {
    use crate::facts::{FactType, Value};
    let def = fact.def();
    let shown = match facts.get(fact) {
        Value::Unknown(_) => "not given".to_string(),
        Value::NotApplicable => "not applicable".to_string(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Number(n) if n.is_infinite() => "none".to_string(),
        Value::Number(n) => {
            let text = format!("{n:.2}");
            let number = text.trim_end_matches('0').trim_end_matches('.').to_string();
            match fact.declaration() {
                Some(d) if d.value_type == crate::declared::DeclaredType::Date => {
                    format!("{number} days before receipt")
                }
                Some(crate::declared::Declared {
                    unit: Some(unit), ..
                }) => {
                    format!("{number} {unit}")
                }
                _ => number,
            }
        }
        Value::Symbol(index) => match def.fact_type {
            FactType::Enum(variants) => variants
                .get(usize::from(index))
                .map_or_else(String::new, |v| (*v).to_string()),
            _ => engine
                .drug_names()
                .get(usize::from(index))
                .cloned()
                .unwrap_or_default(),
        },
    };
    format!("{}: {shown}", def.name)
}

/// Where a pathway's quantity ceiling is stated: its `[pathway.quantity]`, or else its
/// authorization (the label's limits apply alone then).
fn quantity_source(pathway: &crate::policy::Pathway) -> &Source {
    pathway
        .quantity
        .as_ref()
        .map_or(&pathway.authorization_source, |q| &q.source)
}

/// For a drug dosed per m² and a body surface area beyond the most an approval is sized on
/// ([`crate::policy::MOST_BSA_M2_SIZED`]), what a reader of a units-per-cycle reason needs
/// to know: its ceiling counts that much, and a larger patient's dose is a clinician's.
fn area_counted(engine: &Engine, facts: &crate::Facts) -> String {
    use crate::facts::{FactId, Value};
    let per_m2 = match facts.get(FactId::RequestDrug) {
        Value::Symbol(drug) => engine
            .catalog
            .drugs
            .get(usize::from(drug))
            .is_some_and(|d| !d.limits.doses_mg_per_m2.is_empty()),
        _ => false,
    };
    match facts.get(FactId::PatientBsaM2) {
        Value::Number(area) if per_m2 && area > crate::policy::MOST_BSA_M2_SIZED => format!(
            " (the ceiling counts a body surface area of at most {:.1} m², not the {area:.2} m² of the weight and height given: a larger patient's dose is a clinician's to confirm)",
            crate::policy::MOST_BSA_M2_SIZED
        ),
        _ => String::new(),
    }
}

/// The days in which an authorization's units per cycle may be spent: the request's cycle,
/// never shorter than the label's from the request's first cycle (the derived
/// `request.first_cycle`, where the engine placed it; docs/case-format.md, Quantities), as the
/// service sizes the authorization: a Blincyto request declaring 28-day cycles, without the
/// 14 treatment-free days, is paced at 42. None without a cycle length.
fn spending_period(drug: &crate::policy::Drug, case: &Case, facts: &crate::Facts) -> Option<u32> {
    let declared = case.request.as_ref()?.cycle_length_days?;
    let first_cycle = match facts.get(crate::facts::FactId::RequestFirstCycle) {
        crate::facts::Value::Number(n) if n >= 1.0 => n.min(f64::from(u32::MAX)) as u32,
        _ => 1,
    };
    Some(declared.max(drug.limits.shortest_cycle_from(first_cycle).unwrap_or(1)))
}

/// The granted quantity with the vials it takes (whole vials, as billed with wastage).
fn quantity<'a>(
    engine: &'a Engine,
    case: &'a Case,
    facts: &crate::Facts,
    granted: &Granted,
) -> Option<Quantity<'a>> {
    let request = case.request.as_ref()?;
    let drug = engine
        .catalog
        .drugs
        .iter()
        .find(|d| Some(&d.id) == request.drug.as_ref())?;
    let units_per_vial = (drug.vial_amount / drug.hcpcs_unit_amount).round().max(1.0) as u32;
    Some(Quantity {
        hcpcs: &drug.hcpcs,
        units: granted.units_per_cycle,
        period_days: spending_period(drug, case, facts),
        vials: granted.units_per_cycle.div_ceil(units_per_vial),
        cycles: Some(granted.cycles),
        total_units: granted.total_units(),
        units_basis: if granted.units_requested {
            "requested"
        } else {
            "policy_maximum"
        },
        ceiling: Ceiling {
            units_per_cycle: granted.ceiling_units_per_cycle,
            cycles: granted.ceiling_cycles,
        },
        requested_cycles: granted.requested_cycles.filter(|_| granted.is_partial()),
    })
}

/// The readable tree: per policy, the outcome, period, quantity, missing facts, and every
/// pathway of the request's kind with its criteria marked.
pub fn text(engine: &Engine, case: &Case, evaluation: &Evaluation) -> String {
    let mut out = String::new();
    let report = Report::new(engine, case, evaluation);
    let _ = writeln!(out, "case {}", case.id.as_deref().unwrap_or("(no id)"));
    for ((index, decision), result) in evaluation.decisions.iter().zip(&report.results) {
        let Some(policy) = engine.policies.get(*index) else {
            continue;
        };
        let _ = writeln!(out, "\n{}  {}", policy.id, policy.title);
        let _ = write!(out, "  outcome: {}", result.outcome.as_str().to_uppercase());
        if let Some(pathway) = decision
            .pathway
            .and_then(|p| policy.pathways.get(usize::from(p)))
        {
            let _ = write!(out, " ({}: {})", pathway.id, pathway.title);
        }
        if decision.outcome == Outcome::Deny {
            out.push_str("  [recommendation: a clinician must confirm a denial]");
        }
        out.push('\n');
        if let Some(auth) = &result.authorization {
            let _ = writeln!(
                out,
                "  authorization: {} to {} (inclusive)",
                auth.start, auth.end
            );
        } else if decision.outcome == Outcome::Approve {
            out.push_str("  authorization: the policy states no duration\n");
        }
        if let Some(q) = &result.quantity {
            let _ = write!(out, "  quantity: {} x {} units per cycle", q.hcpcs, q.units);
            if let Some(days) = q.period_days {
                let _ = write!(out, " of {days} days");
            }
            let _ = write!(out, " ({} vials)", q.vials);
            if let Some(cycles) = q.cycles {
                let _ = write!(out, ", {cycles} cycles, {} units in all", q.total_units);
            }
            if q.units_basis == "policy_maximum" {
                out.push_str(" [no units requested: the most the policy allows]");
            }
            if let Some(requested) = q.requested_cycles {
                let _ = write!(
                    out,
                    " [partial: {requested} cycles requested; denial of the rest recommended]"
                );
            }
            out.push('\n');
        }
        for reason in result.reasons.iter().filter(|r| {
            matches!(
                r.id,
                "units-per-cycle" | "cycles-beyond-authorization" | "label-course-spent"
            )
        }) {
            let _ = writeln!(
                out,
                "  [not met]  {}\n      {}",
                reason.criterion, reason.source
            );
        }
        if !result.missing.is_empty() {
            let _ = writeln!(out, "  missing: {}", result.missing.join(", "));
        }
        if let Some(exclusion) = decision.exclusion {
            out.push_str("  exclusion:\n");
            let mut reasons = Vec::new();
            eval::explain_criterion(
                &policy.criteria,
                &policy.arena,
                exclusion,
                &evaluation.facts,
                0,
                None,
                true,
                &mut reasons,
            );
            write_tree(&mut out, engine, policy, &evaluation.facts, &reasons, 2);
            continue;
        }
        if decision.outcome == Outcome::NotApplicable {
            let _ = writeln!(
                out,
                "  [not met] governs this drug and line of business\n      {}",
                policy.applicability
            );
            continue;
        }
        for (index, pathway) in policy.pathways.iter().enumerate() {
            let Some(truth) = eval::pathway_truth(policy, index, &evaluation.facts) else {
                continue;
            };
            if truth.kind == Truth::False {
                continue;
            }
            let all = truth.kind.and(truth.criteria).and(truth.dosing);
            let _ = writeln!(
                out,
                "  {} pathway {} ({}; {})",
                mark(all),
                pathway.id,
                pathway.title,
                pathway.outcome.as_str()
            );
            // Once a pathway decided, the others are listed without their trees.
            if decision.pathway.is_some_and(|p| usize::from(p) != index) {
                continue;
            }
            write_tree(
                &mut out,
                engine,
                policy,
                &evaluation.facts,
                &eval::pathway_tree(policy, index, &evaluation.facts),
                2,
            );
        }
    }
    out
}

fn write_tree(
    out: &mut String,
    engine: &Engine,
    policy: &Policy,
    facts: &crate::Facts,
    reasons: &[Reason],
    indent: usize,
) {
    for reason in reasons {
        let Some(criterion) = policy.criteria.get(usize::from(reason.criterion)) else {
            continue;
        };
        let pad = " ".repeat(indent + 2 * usize::from(reason.depth));
        let text = if reason.truth == Truth::False && !criterion.unmet.is_empty() {
            &criterion.unmet
        } else {
            &criterion.text
        };
        let _ = write!(out, "{pad}  {} {text}", mark(reason.truth));
        if let crate::policy::Node::Test(test) = &criterion.node {
            let _ = write!(out, "  ({})", fact_value(engine, test.fact, facts));
        }
        out.push('\n');
        let _ = writeln!(out, "{pad}      {}", criterion.source);
        if !criterion.source.interpretation.is_empty() {
            let _ = writeln!(
                out,
                "{pad}      interpretation: {}",
                criterion.source.interpretation
            );
        }
    }
}

fn mark(truth: Truth) -> &'static str {
    match truth {
        Truth::True => "[met]    ",
        Truth::False => "[not met]",
        Truth::Unknown(_) => "[unknown]",
    }
}

/// One line of a batch: parses the case, decides it and appends its decision as one JSON
/// line to `out`, or returns the case's problems (nothing is appended then). `evaluation` is
/// scratch space reused from line to line.
pub fn decide_line(
    engine: &Engine,
    line: &str,
    selected: &[usize],
    received: Option<Date>,
    evaluation: &mut Evaluation,
    out: &mut Vec<u8>,
) -> Result<(), crate::CaseError> {
    decide_line_as(engine, line, selected, received, evaluation, out, None)
}

/// [`decide_line`] writing the JSON contract (`summary: None`) or the summary rows (with
/// colors or not), and answering the outcomes.
pub fn decide_line_as(
    engine: &Engine,
    line: &str,
    selected: &[usize],
    received: Option<Date>,
    evaluation: &mut Evaluation,
    out: &mut Vec<u8>,
    summary_colored: Option<bool>,
) -> Result<(), crate::CaseError> {
    let case = engine.parse_case(line)?;
    engine.evaluate_received_into(&case, selected, received, evaluation)?;
    match summary_colored {
        None => {
            // Writing JSON into a Vec cannot fail: every value here serializes.
            let _ = serde_json::to_writer(&mut *out, &Report::new(engine, &case, evaluation));
            out.push(b'\n');
        }
        Some(color) => out.extend_from_slice(summary(engine, &case, evaluation, color).as_bytes()),
    }
    Ok(())
}

/// One row per policy: the outcome (in color on a terminal), the period and quantity of an
/// approval, the facts an incomplete decision asks for, or the criterion that decided a
/// denial, a review or a policy that does not apply. `text` is the whole tree.
pub fn summary(engine: &Engine, case: &Case, evaluation: &Evaluation, color: bool) -> String {
    let report = Report::new(engine, case, evaluation);
    let mut out = String::new();
    let _ = writeln!(out, "case {}", case.id.as_deref().unwrap_or("(no id)"));
    let width = report
        .results
        .iter()
        .map(|r| r.policy.len())
        .max()
        .unwrap_or(0);
    for result in &report.results {
        let (paint, outcome) = match result.outcome {
            Outcome::Approve => ("32", "APPROVE"),
            Outcome::Deny => ("31", "DENY"),
            Outcome::Review => ("33", "REVIEW"),
            Outcome::Incomplete => ("36", "INCOMPLETE"),
            Outcome::NotApplicable => ("2", "NOT_APPLICABLE"),
        };
        let padded = format!("{outcome:<14}");
        let outcome = if color {
            format!("\x1b[{paint}m{padded}\x1b[0m")
        } else {
            padded
        };
        let first = |status: &str| {
            result
                .reasons
                .iter()
                .filter(|r| r.status == status)
                .min_by_key(|r| r.depth)
        };
        let detail = match result.outcome {
            Outcome::Approve => {
                let period = result.authorization.as_ref().map_or_else(
                    || "no period stated".to_string(),
                    |a| format!("{} to {}", a.start, a.end),
                );
                let quantity = result.quantity.as_ref().map_or(String::new(), |q| {
                    format!(
                        "; {} x {} units per cycle, {} cycles ({} units)",
                        q.hcpcs,
                        q.units,
                        q.cycles.map_or("?".to_string(), |c| c.to_string()),
                        q.total_units
                    )
                });
                // A partial approval: the cycles beyond it are a recommended denial.
                let partial = result
                    .quantity
                    .as_ref()
                    .and_then(|q| Some((q.requested_cycles?, q.cycles?)))
                    .filter(|(requested, approved)| requested > approved)
                    .map_or(String::new(), |(requested, approved)| {
                        format!(
                            "; the other {} of {requested} cycles: denial recommended, a clinician must confirm",
                            requested - approved
                        )
                    });
                format!("{period}{quantity}{partial}")
            }
            Outcome::Incomplete => format!("missing: {}", result.missing.join(", ")),
            Outcome::NotApplicable => first("not_met").map_or_else(
                || "no pathway met".to_string(),
                |r| format!("not met: {}", r.criterion),
            ),
            Outcome::Deny => {
                // An exclusion met decides outside any pathway; else the criterion not met.
                let exclusion = result
                    .reasons
                    .iter()
                    .find(|r| r.status == "met" && r.pathway.is_none() && r.depth == 0);
                let why = match (exclusion, first("not_met")) {
                    (Some(r), _) => format!("excluded: {}", r.criterion),
                    (None, Some(r)) => format!("not met: {}", r.criterion),
                    (None, None) => "no pathway met".to_string(),
                };
                format!("recommended, a clinician must confirm a denial; {why}")
            }
            // Reviewed by a pathway that sends it to a clinician, or because an approving
            // pathway's dose or quantity is outside the policy: the criterion says which.
            Outcome::Review => match (result.pathway, first("not_met"), first("met")) {
                (Some(pathway), Some(r), _) => {
                    format!("pathway {pathway}; not met: {}", r.criterion)
                }
                (Some(pathway), None, _) => format!("pathway {pathway}"),
                (None, _, Some(r)) => r.criterion.to_string(),
                (None, _, None) => "clinical review".to_string(),
            },
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {outcome}  {detail}",
            result.policy,
            width = width
        );
    }
    out
}
