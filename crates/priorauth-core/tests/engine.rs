//! The engine against the shared example cases, the source documents and its own promises:
//! every quote is in its document, and unknown facts behave as the spec says.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use priorauth_core::facts::CASE_KEYS;
use priorauth_core::generate::{self, Rng};
use priorauth_core::{Engine, Outcome};
use proptest::prelude::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine() -> Engine {
    Engine::bundled().unwrap()
}

/// `tests/cases/expected.json`: outcome, end date and missing keys of every example.
#[test]
fn the_shared_example_cases() {
    let engine = engine();
    let dir = root().join("tests/cases");
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (id, item) in &expected {
        let case = engine
            .parse_case(&std::fs::read_to_string(dir.join(format!("{id}.json"))).unwrap())
            .unwrap();
        let evaluation = engine.evaluate(&case, &[]);
        for (policy_id, expect) in item["expect"].as_object().unwrap() {
            let index = engine.policy_index(policy_id).unwrap();
            let decision = evaluation
                .decisions
                .iter()
                .find(|(i, _)| *i == index)
                .unwrap()
                .1;
            let wanted: Vec<&str> = match &expect["outcome"] {
                Value::Array(list) => list.iter().map(|v| v.as_str().unwrap()).collect(),
                one => vec![one.as_str().unwrap()],
            };
            assert!(
                wanted.contains(&decision.outcome.as_str()),
                "{id} {policy_id}: {:?}",
                decision
            );
            if let (Some(end), Outcome::Approve) = (expect.get("end"), decision.outcome) {
                let actual = decision
                    .authorization
                    .map_or(Value::Null, |(_, e)| Value::from(e.to_string()));
                assert_eq!(&actual, end, "{id} {policy_id}");
            }
            if let (Some(missing), Outcome::Incomplete) = (expect.get("missing"), decision.outcome)
            {
                let actual: Vec<&str> = engine.policies[index]
                    .missing_keys(decision.missing)
                    .collect();
                for key in missing.as_array().unwrap() {
                    assert!(
                        actual.contains(&key.as_str().unwrap()),
                        "{id} {policy_id}: {actual:?}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 51);
}

#[test]
fn the_shared_invalid_cases_name_their_key() {
    let engine = engine();
    let dir = root().join("tests/cases/invalid");
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    for (file, spec) in &expected {
        let error = engine
            .parse_case(&std::fs::read_to_string(dir.join(file)).unwrap())
            .unwrap_err();
        if let Some(key) = spec["must_fail_naming"].as_str() {
            assert_eq!(error.problems[0].key, key, "{file}: {error}");
            assert!(error.to_string().contains(key), "{file}: {error}");
        }
    }
}

/// Quotes are compared as the linter compares them (`lint::normalize`).
use priorauth_core::lint::normalize;

#[test]
fn every_quote_is_in_its_source_document() {
    let engine = engine();
    let all_sources: Vec<String> = std::fs::read_dir(root().join("policies/sources"))
        .unwrap()
        .map(|e| normalize(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect();
    let mut absent = Vec::new();
    for policy in &engine.policies {
        let text = normalize(
            &std::fs::read_to_string(root().join("policies/sources").join(&policy.source_file))
                .unwrap(),
        );
        let mut quotes: Vec<(String, &str)> = policy
            .criteria
            .iter()
            .map(|c| (format!("criterion `{}`", c.id), c.source.quote.as_str()))
            .collect();
        quotes.push(("applies".into(), &policy.applicability.quote));
        quotes.push((
            "dosing_outside_source".into(),
            &policy.dosing_outside_source.quote,
        ));
        for pathway in &policy.pathways {
            quotes.push((
                format!("pathway `{}`", pathway.id),
                &pathway.authorization_source.quote,
            ));
            if let Some(quantity) = &pathway.quantity {
                quotes.push((
                    format!("pathway `{}` quantity", pathway.id),
                    &quantity.source.quote,
                ));
            }
        }
        if !policy.codes.icd10.is_empty() {
            quotes.push((
                "codes.icd10_source".into(),
                &policy.codes.icd10_source.quote,
            ));
        }
        for (what, quote) in quotes {
            if !text.contains(&normalize(quote)) {
                absent.push(format!("{}: {what}: \"{quote}\"", policy.id));
            }
        }
    }
    // The drug catalog quotes the labels as the policies reproduce them.
    for criterion in &engine.catalog.criteria {
        if !all_sources
            .iter()
            .any(|text| text.contains(&normalize(&criterion.source.quote)))
        {
            absent.push(format!(
                "drugs.toml: criterion `{}`: \"{}\"",
                criterion.id, criterion.source.quote
            ));
        }
    }
    assert!(
        absent.is_empty(),
        "quotes not found in their documents:\n{}",
        absent.join("\n")
    );
}

#[test]
fn every_criterion_is_reachable_from_a_pathway_or_exclusion() {
    let engine = engine();
    for policy in &engine.policies {
        let unused: Vec<_> = priorauth_core::lint::lint(policy, None, engine.catalog.drugs.len())
            .into_iter()
            .filter(|f| f.code.starts_with("unused:"))
            .collect();
        assert!(unused.is_empty(), "{}: {unused:?}", policy.id);
    }
}

#[test]
fn an_empty_case_asks_for_facts_and_never_guesses() {
    let engine = engine();
    let case = engine.parse_case("{}").unwrap();
    for (index, decision) in engine.evaluate(&case, &[]).decisions {
        assert_eq!(
            decision.outcome,
            Outcome::Incomplete,
            "{}",
            engine.policies[index].id
        );
        let missing: Vec<&str> = engine.policies[index]
            .missing_keys(decision.missing)
            .collect();
        assert!(missing.contains(&"request.drug"), "{missing:?}");
    }
}

#[test]
fn every_base_fact_asks_for_its_own_key() {
    let engine = engine();
    let facts = engine.facts(&engine.parse_case("{}").unwrap());
    for def in priorauth_core::facts::FACTS {
        if let Some(bit) = priorauth_core::facts::key_bit(def.name) {
            let id = priorauth_core::FactId::by_name(def.name).unwrap();
            assert_eq!(
                facts.get(id),
                priorauth_core::facts::Value::Unknown(bit),
                "{}",
                def.name
            );
        }
    }
}

/// Case keys whose absence the spec reads as "absent" rather than "unknown": exclusions and
/// contraindications are taken as absent when not documented, so filling them in can move a
/// decided outcome (to a denial). The property tests keep them documented.
/// Absent units are the policy's maximum (docs/case-format.md, Quantities), so units given
/// beyond the ceiling can move an approval to the route for doses outside the limits.
const TAKEN_AS_ABSENT: &[&str] = &[
    "request.units",
    "request.dose",
    "request.phase",
    "request.cycles",
    "request.first_cycle",
    "request.drug_source",
    "patient.weight_kg",
    "patient.height_cm",
    "diagnosis.disease_status",
    "diagnosis.cd19_positive",
    "diagnosis.lineage",
    "history.hypersensitivity",
    "history.progression_on_blinatumomab",
    "history.response",
    "history.blinatumomab_cycles",
];

/// A complete generated case, and the same case with some facts made unknown.
fn complete_and_partial(seed: u64, drop_percent: u64) -> (Value, Value) {
    let mut rng = Rng::new(seed);
    let complete = generate::case(&mut rng, seed, 0);
    let mut partial = complete.clone();
    for (section, facts) in partial.as_object_mut().unwrap() {
        if let Value::Object(facts) = facts {
            for (key, value) in facts.iter_mut() {
                let dotted = format!("{section}.{key}");
                if !TAKEN_AS_ABSENT.contains(&dotted.as_str()) && rng.chance(drop_percent) {
                    *value = Value::Null;
                }
            }
        }
    }
    (complete, partial)
}

fn fill(partial: &Value, complete: &Value, keys: &[&str]) -> Value {
    let mut filled = partial.clone();
    for key in keys {
        let (section, field) = key.split_once('.').unwrap();
        if let Some(value) = complete.get(section).and_then(|s| s.get(field)) {
            filled[section][field] = value.clone();
        }
    }
    filled
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Filling in the unknown facts of a decided case never changes its outcome.
    #[test]
    fn a_decided_outcome_survives_filling_in_unknowns(seed in any::<u64>(), drop in 5u64..60) {
        let engine = engine();
        let (complete, partial) = complete_and_partial(seed, drop);
        let partial_case = engine.parse_case(&partial.to_string()).unwrap();
        let complete_case = engine.parse_case(&complete.to_string()).unwrap();
        let before = engine.evaluate(&partial_case, &[]).decisions;
        let after = engine.evaluate(&complete_case, &[]).decisions;
        for ((index, b), (_, a)) in before.iter().zip(&after) {
            if b.outcome != Outcome::Incomplete {
                prop_assert_eq!(b.outcome, a.outcome, "{}: {}", engine.policies[*index].id, partial);
            }
        }
    }

    /// An incomplete case is decided once its missing facts are given.
    #[test]
    fn giving_the_missing_facts_decides(seed in any::<u64>(), drop in 5u64..60) {
        let engine = engine();
        let (complete, partial) = complete_and_partial(seed, drop);
        let partial_case = engine.parse_case(&partial.to_string()).unwrap();
        for (index, decision) in engine.evaluate(&partial_case, &[]).decisions {
            if decision.outcome == Outcome::Incomplete {
                let keys: Vec<&str> = engine.policies[index].missing_keys(decision.missing).collect();
                prop_assert!(!keys.is_empty());
                // Only a completion that gives every missing fact a value must decide.
                let given = |key: &&str| {
                    let (section, field) = key.split_once('.').unwrap();
                    complete.get(section).and_then(|s| s.get(field)).is_some_and(|v| !v.is_null())
                };
                if !keys.iter().all(given) {
                    continue;
                }
                let filled = engine.parse_case(&fill(&partial, &complete, &keys).to_string()).unwrap();
                let after = engine.evaluate(&filled, &[index]).decisions[0].1;
                prop_assert_ne!(after.outcome, Outcome::Incomplete, "{} asked for {:?}: {}", engine.policies[index].id, keys, partial);
            }
        }
    }

    /// Arbitrary JSON never panics the case parser: it parses or names a problem.
    #[test]
    fn the_case_parser_never_panics(text in ".{0,200}") {
        let engine = engine();
        let _ = engine.parse_case(&text);
    }
}

#[test]
fn case_keys_are_unique() {
    let mut keys = CASE_KEYS.to_vec();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), CASE_KEYS.len());
}

/// A drug dosed per m² is approved for the vials its requested dose needs: Besponsa at
/// 0.5 mg/m² (the label's dose in remission from cycle 2) needs one 0.9 mg vial on each of
/// its three days for 1.66 m², not the two of the label's 0.8 mg/m² on day 1.
#[test]
fn a_dose_per_m2_below_the_label_is_approved_for_its_own_vials() {
    let engine = engine();
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../policies/northwind-rx-onc-118.cases.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let index = engine.policy_index("northwind-rx-onc-118").unwrap();
    let granted = |dose: f64| {
        let mut case = table["bases"]["initial"].clone();
        case["patient"]["weight_kg"] = serde_json::json!(60);
        case["patient"]["height_cm"] = serde_json::json!(165);
        case["request"]["dose"]["value"] = serde_json::json!(dose);
        let case = engine.parse_case(&case.to_string()).unwrap();
        let (_, decision) = engine.evaluate(&case, &[index]).decisions[0];
        assert_eq!(decision.outcome, Outcome::Approve, "{dose}: {decision:?}");
        decision.quantity.unwrap().units_per_cycle
    };
    assert_eq!(granted(0.8), 36, "2 + 1 + 1 vials of 9 units");
    assert_eq!(granted(0.5), 27, "1 + 1 + 1 vials");
}

/// A request for more cycles than one authorization covers, whose drug is not given, asks
/// for what the covered part's dosing needs as well: 3 cycles for an infant on the
/// Interfant-06 regimen (eocco-0382 covers one course of at most 28 infusion days), without
/// the drug or its infusion days, is asked for both at once, so that one answer decides it.
#[test]
fn an_unknown_partial_approval_asks_for_what_its_part_needs() {
    let engine = engine();
    let index = engine.policy_index("eocco-0382").unwrap();
    let case = serde_json::json!({
        "id": "interfant-without-drug",
        "request": {"kind": "initial", "date": "2027-05-09", "regimen": "interfant",
            "dose": {"value": 15.0, "unit": "mcg/m2/day"}, "cycle_length_days": 42,
            "cycles": 3, "first_cycle": 1, "units": 980, "drug_source": "plan"},
        "patient": {"birth_date": "2026-12-08", "weight_kg": 2.4, "height_cm": 55.0,
            "new_to_plan_on_treatment": false},
        "diagnosis": {"icd10": ["C91.02"], "condition": "acute_lymphoblastic_leukemia",
            "lineage": "b_cell_precursor", "cd19_positive": true, "cd22_positive": true,
            "disease_status": "relapsed"},
        "history": {"tkis": [], "blinatumomab_cycles": 0, "blinatumomab_continued_cycles": 0,
            "progression_on_blinatumomab": false, "hypersensitivity": false,
            "live_vaccine_within_2_weeks": false, "live_vaccine_planned": false,
            "unacceptable_toxicity": false, "medications_added": false, "authorizations": []}
    });
    let missing = |case: &Value| {
        let parsed = engine.parse_case(&case.to_string()).unwrap();
        let (_, decision) = engine.evaluate(&parsed, &[index]).decisions[0];
        let keys: Vec<&str> = engine.policies[index]
            .missing_keys(decision.missing)
            .collect();
        (decision.outcome, keys)
    };
    assert_eq!(
        missing(&case),
        (
            Outcome::Incomplete,
            vec!["request.drug", "request.dose_days"]
        )
    );
    let mut answered = case.clone();
    answered["request"]["drug"] = "blinatumomab".into();
    answered["request"]["dose_days"] = 28.into();
    assert_ne!(missing(&answered).0, Outcome::Incomplete);
}

/// The grounds a clinician's denial may cite: what fails the request, never what it meets.
#[test]
fn denial_grounds_are_what_fails_the_request() {
    let engine = engine();
    let grounds = |name: &str, policy: &str| -> Vec<(String, &'static str)> {
        let text =
            std::fs::read_to_string(root().join(format!("tests/cases/{name}.json"))).unwrap();
        let case = engine.parse_case(&text).unwrap();
        let index = engine.policy_index(policy).unwrap();
        let evaluation = engine.evaluate(&case, &[index]);
        let policy = &engine.policies[index];
        priorauth_core::eval::denial_grounds(policy, &evaluation.facts)
            .into_iter()
            .map(|r| {
                (
                    policy.criteria[usize::from(r.criterion)].id.clone(),
                    r.truth.as_str(),
                )
            })
            .collect()
    };
    // An exclusion that applies is a ground, as met.
    let hypersensitive = grounds("E13", "evolent-cg-3258");
    assert!(
        hypersensitive.contains(&("hypersensitivity".to_string(), "met")),
        "{hypersensitive:?}"
    );
    // A dose above the limit: the dosing criterion, not met.
    let overdosed = grounds("E08", "evolent-cg-3258");
    assert!(
        overdosed.contains(&("dose-at-most-28-mcg-per-day".to_string(), "not_met")),
        "{overdosed:?}"
    );
    // Case-by-case review of a member new to the plan: the criteria it meets are no ground,
    // nor an unmet test inside a met `not` (drug from samples or assistance).
    let new_to_plan = grounds("E12", "masshealth-all-single-agent");
    let ids: Vec<&str> = new_to_plan.iter().map(|(id, _)| id.as_str()).collect();
    for met in [
        "new-to-plan-on-treatment",
        "not-samples-or-assistance",
        "samples-or-assistance",
    ] {
        assert!(!ids.contains(&met), "{met} in {ids:?}");
    }
    assert!(!new_to_plan.is_empty());
    // A pathway's own requirement is a ground only unmet or unknown; a met test is one only
    // under a `not` or in an exclusion (relapsed disease fails `not-relapsed-or-refractory`).
    for name in ["E01", "E05", "E08", "E12", "E13"] {
        for policy in ["evolent-cg-3258", "masshealth-all-single-agent"] {
            let index = engine.policy_index(policy).unwrap();
            let evaluation = engine.evaluate(
                &engine
                    .parse_case(
                        &std::fs::read_to_string(root().join(format!("tests/cases/{name}.json")))
                            .unwrap(),
                    )
                    .unwrap(),
                &[index],
            );
            let policy = &engine.policies[index];
            for reason in priorauth_core::eval::denial_grounds(policy, &evaluation.facts) {
                if reason.pathway.is_some() && reason.depth == 0 {
                    assert_ne!(reason.truth.as_str(), "met", "{name}");
                }
            }
        }
    }
}
