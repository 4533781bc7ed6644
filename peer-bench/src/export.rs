//! A policy's approval of one request kind as a GoRules JDM (JSON Decision Model): one ZEN
//! expression, written from the loaded policy, so that the model ZEN runs is the policy file
//! priorauth runs and a change to any criterion changes both.
//!
//! The expression is `approve` with every fact known, as `eval::decide` reaches it:
//!
//! - the policy applies: the request's drug is one it governs, and its line of business one it
//!   names (when it names any);
//! - the request is of the kind exported;
//! - no exclusion is met;
//! - some `approve` pathway serving that kind has all its criteria and all its dosing met.
//!
//! priorauth's facts reach ZEN as its input, a fact that does not apply (or is unknown) as
//! `null`. A comparison with such a value is false in priorauth; in ZEN, `null == x` and
//! `null in [..]` are false, but an ordering (`>=`) or a product of `null` is an error, so every
//! number test first asks for a value (`x != null and x >= 15`).
//!
//! Every construct of the policy types is matched by name, without a wildcard: a field or a
//! variant added to `Policy`, `Pathway`, `Criterion`, `Node`, `Test` or `Check` stops this file
//! from compiling until it is exported (or shown not to bear on approval), and a construct the
//! expression cannot carry is an [`Error`], never a silently different model.

use std::fmt;

use priorauth_core::Engine;
use priorauth_core::case::RequestKind;
use priorauth_core::facts::{FactId, FactType};
use priorauth_core::policy::{
    Bound, Check, Criterion, CriterionIdx, Node, Outcome, Pathway, Policy, Test,
};
use serde_json::json;

/// A policy the exporter cannot write as a ZEN expression with the same meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// The ZEN expression that is true when `policy` approves a request of `kind` (`"initial"`,
/// `"renewal"`), every fact being known.
pub fn approval_expression(engine: &Engine, policy: &Policy, kind: &str) -> Result<String, Error> {
    // Each field is named: one added to `Policy` must be placed here before this compiles.
    let Policy {
        file: _,
        id,
        title: _,
        payer: _,
        document: _,
        source_file: _,
        version: _,
        // Chooses among versions of a policy (`Engine::version_for`); `decide` on one version
        // does not read it.
        effective: _,
        drugs,
        lines_of_business,
        applicability: _,
        // The outcome of a met pathway whose dosing is not met: `deny`, or `review`. Neither
        // approves.
        dosing_outside,
        dosing_outside_source: _,
        codes: _,
        criteria,
        // `criteria`, compiled; the exporter reads the criteria themselves.
        arena: _,
        exclusions,
        pathways,
        supersedes: _,
        acknowledged: _,
    } = policy;
    match dosing_outside {
        Outcome::Deny | Outcome::Review => {}
        Outcome::Approve | Outcome::Incomplete | Outcome::NotApplicable => {
            return error(format!(
                "{id}: `dosing_outside = \"{}\"` is not an outcome the exporter knows for dosing outside the limits",
                dosing_outside.as_str()
            ));
        }
    }
    let writer = Writer { engine, criteria };

    let kind_position = RequestKind::VARIANTS
        .iter()
        .position(|k| *k == kind)
        .ok_or_else(|| {
            Error(format!(
                "`{kind}` is not a request kind (one of {})",
                RequestKind::VARIANTS.join(", ")
            ))
        })?;

    let mut conjuncts = Vec::new();
    // Applicability.
    let drug_mask = drugs.iter().try_fold(0u64, |mask, drug| {
        1u64.checked_shl(u32::from(*drug))
            .map(|bit| mask | bit)
            .ok_or_else(|| Error(format!("{id}: drug position {drug} out of range")))
    })?;
    conjuncts.push(writer.one_of(FactId::RequestDrug, drug_mask)?);
    if let Some(lines) = lines_of_business {
        conjuncts.push(writer.one_of(FactId::RequestLineOfBusiness, u64::from(*lines))?);
    }
    // The kind.
    conjuncts.push(writer.one_of(FactId::RequestKind, 1 << kind_position)?);
    // Exclusions: one met is a denial.
    for exclusion in exclusions {
        conjuncts.push(format!("not ({})", writer.criterion(*exclusion, 0)?));
    }
    // Pathways.
    let mut routes = Vec::new();
    for pathway in pathways {
        // Each field is named, as for `Policy`.
        let Pathway {
            id: pathway_id,
            title: _,
            kinds,
            outcome,
            criteria: pathway_criteria,
            dosing,
            // An approval with a duration and no request date is `incomplete`: counted apart.
            authorization: _,
            authorization_source: _,
            line: _,
        } = pathway;
        match outcome {
            Outcome::Approve => {}
            // A review pathway routes to a clinician; it never approves.
            Outcome::Review => continue,
            Outcome::Deny | Outcome::Incomplete | Outcome::NotApplicable => {
                return error(format!(
                    "{id}: pathway `{pathway_id}` has outcome `{}`, which the exporter does not know for a pathway",
                    outcome.as_str()
                ));
            }
        }
        let every_kind = (1u32 << RequestKind::VARIANTS.len()) - 1;
        if kinds & !every_kind != 0 {
            return error(format!(
                "{id}: pathway `{pathway_id}` serves a request kind the exporter does not know"
            ));
        }
        if kinds & (1 << kind_position) == 0 {
            continue;
        }
        let parts = pathway_criteria
            .iter()
            .chain(dosing)
            .map(|idx| writer.criterion(*idx, 0))
            .collect::<Result<Vec<_>, _>>()?;
        routes.push(group(&parts, "and"));
    }
    conjuncts.push(if routes.is_empty() {
        "false".to_string()
    } else {
        group(&routes, "or")
    });
    Ok(conjuncts.join(" and "))
}

/// The JDM of one expression `approve`: request → expression node → response.
pub fn jdm(name: &str, expression: &str) -> serde_json::Value {
    let node = |id: &str, kind: &str, name: &str, x: u32| json!({"id": id, "type": kind, "name": name, "position": {"x": x, "y": 0}});
    let mut expression_node = node("approval", "expressionNode", name, 300);
    expression_node["content"] =
        json!({"expressions": [{"id": "approve", "key": "approve", "value": expression}]});
    json!({
        "contentType": "application/vnd.gorules.decision",
        "nodes": [node("request", "inputNode", "Request", 0), expression_node, node("response", "outputNode", "Response", 600)],
        "edges": [
            {"id": "request-approval", "sourceId": "request", "targetId": "approval", "type": "edge"},
            {"id": "approval-response", "sourceId": "approval", "targetId": "response", "type": "edge"},
        ],
    })
}

/// `(a and b)`, or `a` alone.
fn group(parts: &[String], operator: &str) -> String {
    match parts {
        [one] => one.clone(),
        _ => format!("({})", parts.join(&format!(" {operator} "))),
    }
}

struct Writer<'a> {
    engine: &'a Engine,
    criteria: &'a [Criterion],
}

/// Criteria nest at most this deep in a loaded policy (`policy::MAX_NESTING`); deeper is a
/// loop the loader did not catch.
const MAX_DEPTH: usize = priorauth_core::policy::MAX_NESTING + 1;

impl Writer<'_> {
    fn criterion(&self, idx: CriterionIdx, depth: usize) -> Result<String, Error> {
        let Some(criterion) = self.criteria.get(usize::from(idx)) else {
            return error(format!("criterion #{idx} does not exist"));
        };
        if depth > MAX_DEPTH {
            return error(format!(
                "criterion `{}` nests deeper than {MAX_DEPTH}",
                criterion.id
            ));
        }
        let Criterion {
            id,
            text: _,
            source: _,
            node,
            line: _,
        } = criterion;
        let children = |list: &[CriterionIdx], operator: &str| {
            let parts = list
                .iter()
                .map(|child| self.criterion(*child, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if parts.is_empty() {
                return error(format!("criterion `{id}` groups no criteria"));
            }
            Ok(group(&parts, operator))
        };
        match node {
            Node::Test(test) => self.test(id, test),
            Node::All(list) => children(list, "and"),
            Node::Any(list) => children(list, "or"),
            Node::Not(inner) => Ok(format!("not ({})", self.criterion(*inner, depth + 1)?)),
        }
    }

    fn test(&self, id: &str, test: &Test) -> Result<String, Error> {
        let Test {
            fact,
            check,
            if_unknown,
        } = test;
        match if_unknown {
            // Unknown is `null` in ZEN's input, and a test of `null` is false: the same.
            None | Some(false) => {}
            Some(true) => {
                return error(format!(
                    "criterion `{id}`: `if_unknown = true` cannot be written: ZEN's input gives an unknown fact and one that does not apply alike, as null"
                ));
            }
        }
        let name = self.fact_name(*fact)?;
        match (check, fact.def().fact_type) {
            (Check::Is(expected), FactType::Bool) => Ok(format!("{name} == {expected}")),
            (Check::OneOf(mask), FactType::Enum(_) | FactType::Drug) => self.one_of(*fact, *mask),
            (Check::Range { min, max, per_days }, FactType::Number) => {
                // `value / period` against `bound / per_days`, cross-multiplied as `eval` does.
                let (value, scale, mut known) = match per_days {
                    None => (name.clone(), String::new(), format!("{name} != null")),
                    Some(per_days) => {
                        let period = self.fact_name(FactId::RequestUnitsPeriodDays)?;
                        (
                            format!("{name} * {}", number(id, *per_days)?),
                            format!(" * {period}"),
                            format!("{name} != null and {period} != null"),
                        )
                    }
                };
                for (bound, strict, inclusive) in [(min, ">", ">="), (max, "<", "<=")] {
                    if let Some(Bound {
                        value: limit,
                        inclusive: is_inclusive,
                    }) = bound
                    {
                        let operator = if *is_inclusive { inclusive } else { strict };
                        known.push_str(&format!(
                            " and {value} {operator} {}{scale}",
                            number(id, *limit)?
                        ));
                    }
                }
                Ok(format!("({known})"))
            }
            (check, fact_type) => error(format!(
                "criterion `{id}`: a {check:?} test of `{name}`, a fact of type {fact_type:?}"
            )),
        }
    }

    /// `fact == 'a'`, `fact in ['a', 'b']`, or `false` for the empty set.
    fn one_of(&self, fact: FactId, mask: u64) -> Result<String, Error> {
        let name = self.fact_name(fact)?;
        let drug_names: Vec<&str>;
        let values: &[&str] = match fact.def().fact_type {
            FactType::Enum(variants) => variants,
            FactType::Drug => {
                drug_names = self
                    .engine
                    .drug_names()
                    .iter()
                    .map(String::as_str)
                    .collect();
                &drug_names
            }
            other => {
                return error(format!(
                    "`{name}` is a fact of type {other:?}, tested for a set of values"
                ));
            }
        };
        if values.len() < 64 && mask >> values.len() != 0 {
            return error(format!(
                "a test of `{name}` names a value it cannot take (bits {mask:#b})"
            ));
        }
        let chosen = values
            .iter()
            .enumerate()
            .filter(|(position, _)| mask & (1 << position) != 0)
            .map(|(_, value)| string(value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match chosen.as_slice() {
            [] => "false".to_string(),
            [one] => format!("{name} == {one}"),
            many => format!("{name} in [{}]", many.join(", ")),
        })
    }

    /// The fact's path in ZEN's input: `patient.age_years`.
    fn fact_name(&self, fact: FactId) -> Result<String, Error> {
        let name = fact.def().name;
        let plain = |part: &str| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !matches!(
                    part,
                    "and" | "or" | "not" | "in" | "true" | "false" | "null"
                )
        };
        match name.split_once('.') {
            Some((section, key)) if plain(section) && plain(key) => Ok(name.to_string()),
            _ => error(format!(
                "fact `{name}` is not a `section.key` path ZEN can read"
            )),
        }
    }
}

/// A ZEN string literal.
fn string(value: &str) -> Result<String, Error> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.+ /".contains(c))
    {
        Ok(format!("'{value}'"))
    } else {
        error(format!(
            "value `{value}` needs quoting the exporter does not do"
        ))
    }
}

/// A ZEN number literal that reads back as the same `f64`.
fn number(id: &str, value: f64) -> Result<String, Error> {
    let text = format!("{value}");
    if !value.is_finite() || text.parse::<f64>() != Ok(value) {
        return error(format!(
            "criterion `{id}`: bound {value} is not a number ZEN can read"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
id = "p"
title = "t"
payer = "x"
document = "d"
source_file = "d.txt"
version = "1"
dosing_outside = "deny"
dosing_outside_source = { section = "s", quote = "q" }
applies = { drugs = ["blinatumomab"], lines_of_business = ["medicaid"], section = "s", quote = "q" }
exclusions = ["hypersensitive"]

[[pathway]]
id = "first"
title = "t"
kinds = ["initial"]
outcome = "approve"
criteria = ["adult", "frontline"]
dosing = ["units"]
authorization = { years = 1 }
authorization_source = { section = "s", quote = "q" }

[[pathway]]
id = "again"
title = "t"
kinds = ["renewal"]
outcome = "approve"
criteria = ["adult"]
authorization = { years = 1 }
authorization_source = { section = "s", quote = "q" }

[criteria.adult]
text = "adult"
section = "s"
quote = "q"
fact = "patient.age_years"
ge = 18

[criteria.frontline]
text = "not relapsed"
section = "s"
quote = "q"
not = "relapsed"

[criteria.relapsed]
text = "relapsed"
section = "s"
quote = "q"
fact = "diagnosis.disease_status"
in = ["relapsed", "refractory"]

[criteria.units]
text = "units"
section = "s"
quote = "q"
fact = "request.units"
per_days = 42
gt = 0
le = 980

[criteria.hypersensitive]
text = "hypersensitive"
section = "s"
quote = "q"
fact = "history.hypersensitivity"
is = true
"#;

    fn export(text: &str, kind: &str) -> Result<String, Error> {
        let engine = Engine::bundled().expect("bundled policies");
        let policy = priorauth_core::policy::load_policy("p.toml", text, engine.drug_names())
            .expect("policy loads");
        approval_expression(&engine, &policy, kind)
    }

    #[test]
    fn every_construct_is_written() {
        assert_eq!(
            export(POLICY, "initial").unwrap(),
            "request.drug == 'blinatumomab' and request.line_of_business == 'medicaid' and request.kind == 'initial' \
             and not (history.hypersensitivity == true) \
             and ((patient.age_years != null and patient.age_years >= 18) \
             and not (diagnosis.disease_status in ['relapsed', 'refractory']) \
             and (request.units != null and request.units_period_days != null \
             and request.units * 42 > 0 * request.units_period_days and request.units * 42 <= 980 * request.units_period_days))"
        );
        assert!(export(POLICY, "renewal").unwrap().ends_with("request.kind == 'renewal' and not (history.hypersensitivity == true) and (patient.age_years != null and patient.age_years >= 18)"));
    }

    #[test]
    fn a_test_taken_as_met_when_unknown_is_refused() {
        let text = POLICY.replace(
            "fact = \"history.hypersensitivity\"",
            "if_unknown = true\nfact = \"history.hypersensitivity\"",
        );
        assert!(
            export(&text, "initial")
                .unwrap_err()
                .0
                .contains("if_unknown = true")
        );
        let text = POLICY.replace(
            "fact = \"history.hypersensitivity\"",
            "if_unknown = false\nfact = \"history.hypersensitivity\"",
        );
        assert!(export(&text, "initial").is_ok());
    }

    #[test]
    fn every_bundled_policy_exports() {
        let engine = Engine::bundled().expect("bundled policies");
        for policy in &engine.policies {
            for kind in RequestKind::VARIANTS {
                if let Err(error) = approval_expression(&engine, policy, kind) {
                    assert!(
                        error.0.contains("if_unknown = true"),
                        "{}: {error}",
                        policy.id
                    );
                }
            }
        }
    }
}
