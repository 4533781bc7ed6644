//! Versions, `policy diff` and `impact`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;

use priorauth_core::generate::{self, Rng};
use priorauth_core::{Engine, Outcome, change, policy};
use serde_json::Value;

fn masshealth() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../policies/masshealth-all-single-agent.toml"),
    )
    .unwrap()
}

/// The current MassHealth policy, and a revision that accepts only oncologists (one criterion).
fn two_versions() -> (String, String) {
    let old = masshealth();
    let new = old
        .replace(r#"version = "2025-09-01""#, r#"version = "2026-07-01""#)
        .replace(r#"effective = "2025-09-01""#, "effective = \"2026-07-01\"\nsupersedes = [\"2025-09-01\"]")
        .replace(
            r#"in = ["medical_oncology", "hematology", "hematology_oncology", "pediatric_hematology_oncology"]"#,
            r#"in = ["medical_oncology", "hematology_oncology", "pediatric_hematology_oncology"]"#,
        );
    assert_ne!(old, new);
    (old, new)
}

#[test]
fn diff_names_the_changed_criterion_in_the_source_words() {
    let engine = Engine::bundled().unwrap();
    let (old, new) = two_versions();
    let old = policy::load_policy("old.toml", &old, engine.drug_names()).unwrap();
    let new = policy::load_policy("new.toml", &new, engine.drug_names()).unwrap();
    let changes = change::diff(&old, &new);
    let whats: Vec<&str> = changes.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(
        whats,
        ["version", "criterion oncologist-or-hematologist"],
        "{changes:#?}"
    );
    let criterion = &changes[1];
    assert!(
        criterion.detail.contains("hematology, hematology_oncology")
            && criterion
                .detail
                .contains("\"Prescriber is an oncologist or hematologist\""),
        "{}",
        criterion.detail
    );
}

#[test]
fn a_request_is_decided_by_the_version_in_effect_on_its_date() {
    let (old, new) = two_versions();
    let bundled = Engine::bundled().unwrap();
    let catalog = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/drugs.toml"),
    )
    .unwrap();
    let engine = Engine::from_texts([
        ("drugs.toml".into(), catalog),
        ("mh-2025.toml".into(), old),
        ("mh-2026.toml".into(), new),
    ])
    .unwrap();
    assert_eq!(engine.current().len(), 1);
    let mut case: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/E01.json"),
        )
        .unwrap(),
    )
    .unwrap();
    case["prescriber"]["specialty"] = Value::from("hematology");
    for (date, version, outcome) in [
        ("2026-06-30", "2025-09-01", Outcome::Approve),
        ("2026-07-01", "2026-07-01", Outcome::Deny),
    ] {
        case["request"]["date"] = Value::from(date);
        let parsed = engine.parse_case(&case.to_string()).unwrap();
        let evaluation = engine.evaluate(&parsed, &[]);
        let (index, decision) = evaluation.decisions[0];
        assert_eq!(engine.policies[index].version, version, "{date}");
        assert_eq!(decision.outcome, outcome, "{date}");
        let report = priorauth_core::report::Report::new(&engine, &parsed, &evaluation);
        assert_eq!(report.results[0].version, version);
    }
    drop(bundled);
}

/// Impact moves exactly the cases the changed criterion decides, computed here from the raw
/// cases: a hematologist's request that the old version approved, or left incomplete only
/// for want of facts the review route no longer needs.
#[test]
fn impact_moves_exactly_the_cases_the_criterion_decides() {
    let engine = Engine::bundled().unwrap();
    let (old, new) = two_versions();
    let old = policy::load_policy("old.toml", &old, engine.drug_names()).unwrap();
    let new = policy::load_policy("new.toml", &new, engine.drug_names()).unwrap();
    let mut rng = Rng::new(11);
    let raw: Vec<Value> = (0..4000).map(|i| generate::case(&mut rng, i, 4)).collect();
    let cases: Vec<_> = raw
        .iter()
        .map(|c| engine.parse_case(&c.to_string()).unwrap())
        .collect();

    let mut expected = BTreeSet::new();
    for (case, value) in cases.iter().zip(&raw) {
        let hematologist = value["prescriber"]["specialty"] == "hematology";
        let known = |section: &str, key: &str| !value[section][key].is_null();
        let before = priorauth_core::eval::decide(
            &old,
            &engine.facts(case),
            case.request.as_ref().and_then(|r| r.date),
        )
        .outcome;
        // An approval needs this criterion; an incomplete case is settled once the
        // approval is impossible, if the review route's facts and applicability are known.
        let settles = known("patient", "new_to_plan_on_treatment")
            && known("request", "drug")
            && known("request", "line_of_business");
        if hematologist
            && (before == Outcome::Approve || (before == Outcome::Incomplete && settles))
        {
            expected.insert(case.id.clone().unwrap());
        }
    }
    let impact = change::impact(&engine, &old, &new, &cases, usize::MAX);
    let moved: BTreeSet<String> = impact
        .moves
        .iter()
        .filter(|((a, b), _)| a != b)
        .flat_map(|(_, (_, ids))| ids.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(moved, expected);
    assert_eq!(impact.moved(), expected.len());
    assert_eq!(impact.cases, 4000);
}

/// A revision that shortens the approvals without moving any outcome is reported as such:
/// every approval under both versions, with the old and the new period.
#[test]
fn impact_reports_approvals_whose_terms_change() {
    let engine = Engine::bundled().unwrap();
    let index = engine.policy_index("masshealth-all-single-agent").unwrap();
    let old_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../policies/masshealth-all-single-agent.toml"),
    )
    .unwrap();
    assert!(old_text.contains("authorization = { months = 6 }"));
    let new_text = old_text.replace(
        "authorization = { months = 6 }",
        "authorization = { months = 3 }",
    );
    let old = policy::load_policy("old.toml", &old_text, engine.drug_names()).unwrap();
    let new = policy::load_policy("new.toml", &new_text, engine.drug_names()).unwrap();
    let mut rng = Rng::new(5);
    let cases: Vec<_> = (0..3000)
        .map(|i| {
            engine
                .parse_case(&generate::case(&mut rng, i, 2).to_string())
                .unwrap()
        })
        .collect();
    let impact = change::impact(&engine, &old, &new, &cases, 3);
    assert_eq!(impact.moved(), 0, "no outcome moves");
    let six_months: usize = cases
        .iter()
        .filter(|case| {
            let decision = priorauth_core::eval::decide(
                &engine.policies[index],
                &engine.facts(case),
                case.request.as_ref().and_then(|r| r.date),
            );
            let pathway = decision
                .pathway
                .map(|p| engine.policies[index].pathways[usize::from(p)].authorization);
            decision.outcome == Outcome::Approve
                && pathway == Some(Some(priorauth_core::date::Duration::Months(6)))
        })
        .count();
    assert!(six_months > 0, "the population has 6-month approvals");
    let shortened: usize = impact
        .terms
        .iter()
        .filter(|((what, from, to), _)| *what == "period days" && from > to)
        .map(|(_, (n, _))| n)
        .sum();
    assert_eq!(shortened, six_months);
}
