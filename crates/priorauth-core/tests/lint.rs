//! `policy lint` on the shipped policies (nothing but what they acknowledge) and on fixtures
//! with seeded contradictions, overlaps, hidden pathways and unused criteria.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use priorauth_core::lint::{Finding, lint};
use priorauth_core::{Engine, policy};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn lint_text(name: &str, text: &str) -> Vec<Finding> {
    let engine = Engine::bundled().unwrap();
    let policy = policy::load_policy(name, text, engine.drug_names()).unwrap();
    let source = Engine::bundled_source(&policy.source_file);
    lint(&policy, source, engine.catalog.drugs.len())
}

fn codes(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.code.as_str()).collect()
}

fn eocco() -> String {
    std::fs::read_to_string(root().join("policies/eocco-0382.toml")).unwrap()
}

#[test]
fn the_shipped_policies_have_only_acknowledged_findings() {
    let engine = Engine::bundled().unwrap();
    for policy in &engine.policies {
        let findings = lint(
            policy,
            Engine::bundled_source(&policy.source_file),
            engine.catalog.drugs.len(),
        );
        let open: Vec<_> = findings.iter().filter(|f| !f.acknowledged).collect();
        assert!(open.is_empty(), "{}: {open:#?}", policy.id);
    }
}

#[test]
fn the_literal_eocco_consolidation_branch_can_never_be_met() {
    let text = std::fs::read_to_string(
        root().join("crates/priorauth-core/tests/fixtures/eocco-0382-literal.toml"),
    )
    .unwrap();
    let findings = lint_text("eocco-0382-literal.toml", &text);
    let unsat = findings
        .iter()
        .find(|f| f.code == "unsatisfiable:adult-consolidation")
        .expect("the MRD+ AND MRD- branch");
    assert!(
        unsat.message.contains("`mrd-negative`") && unsat.message.contains("`mrd-positive`"),
        "{}",
        unsat.message
    );
    assert!(
        unsat
            .message
            .contains("positive minimal residual disease (MRD+)"),
        "the finding quotes the source words"
    );
    assert_eq!(unsat.line, 39);
    // Read literally, "Pediatric" (at least 1 month, no upper age) overlaps the adult pathways.
    assert!(
        codes(&findings).contains(&"overlap:adult-relapsed-refractory:pediatric-mrd-positive"),
        "{findings:#?}"
    );
    // The shipped encoding has none of these.
    assert!(
        !codes(&lint_text("eocco-0382.toml", &eocco()))
            .iter()
            .any(|c| c.starts_with("unsatisfiable") || c.starts_with("overlap"))
    );
}

#[test]
fn an_age_contradiction_is_found() {
    let mut text = eocco().replace(
        r#"criteria = ["no-authorization-in-course", "universal-live-vaccine", "adult-age", "b-cell-precursor-all", "adult-relapsed-refractory"]"#,
        r#"criteria = ["no-authorization-in-course", "universal-live-vaccine", "adult-age", "under-15", "b-cell-precursor-all", "adult-relapsed-refractory"]"#,
    );
    text.push_str(
        r#"
[criteria.under-15]
text = "under 15 years of age"
section = "III. Initial Approval Criteria, Pediatric Acute Lymphoblastic Leukemia (ALL)"
quote = "Pediatric Acute Lymphoblastic Leukemia (ALL)"
fact = "patient.age_years"
lt = 15
"#,
    );
    let findings = lint_text("eocco-age.toml", &text);
    let unsat = findings
        .iter()
        .find(|f| f.code == "unsatisfiable:adult-relapsed-refractory")
        .expect("age >= 15 and < 15");
    assert!(
        unsat.message.contains("`adult-age`") && unsat.message.contains("`under-15`"),
        "{}",
        unsat.message
    );
}

#[test]
fn a_hidden_pathway_and_an_unused_criterion_are_found() {
    // A copy of the adult relapsed pathway after the original never decides anything.
    let copy = r#"
[[pathway]]
id = "adult-relapsed-refractory-again"
title = "copy"
kinds = ["initial"]
outcome = "approve"
criteria = ["no-authorization-in-course", "universal-live-vaccine", "adult-age", "b-cell-precursor-all", "adult-relapsed-refractory"]
dosing = ["dose-by-weight", "induction-consolidation-cycles"]
authorization = { weeks = 30 }
authorization_source = { section = "I. Length of Authorization", quote = "Initial coverage will be provided for 30 weeks" }
quantity = { cycles = 5, units_per_cycle = 980, section = "I. Length of Authorization", quote = "Initial coverage will be provided for 30 weeks" }

[criteria.never-used]
text = "never used"
section = "III"
quote = "Patient is at least 15 years of age"
fact = "patient.age_years"
ge = 15
"#;
    let text = eocco().replacen(
        "# ---- Renewal (section IV)",
        &format!("{copy}\n# ---- Renewal (section IV)"),
        1,
    );
    let findings = lint_text("eocco-hidden.toml", &text);
    let codes = codes(&findings);
    assert!(
        codes.contains(&"hidden:adult-relapsed-refractory-again"),
        "{codes:?}"
    );
    assert!(codes.contains(&"unused:never-used"), "{codes:?}");
}

#[test]
fn quotes_outside_the_document_and_missing_rules_are_found() {
    let text = eocco()
        .replace(
            r#"quote = "Patient is at least 15 years of age""#,
            r#"quote = "Patient is at least 18 years of age""#,
        )
        .replace(r#"kinds = ["renewal"]"#, r#"kinds = ["initial"]"#);
    let codes: Vec<String> = lint_text("eocco-quote.toml", &text)
        .into_iter()
        .map(|f| f.code)
        .collect();
    assert!(codes.contains(&"quote:adult-age".to_string()), "{codes:?}");
    assert!(codes.contains(&"no-renewal-rule".to_string()), "{codes:?}");
}

#[test]
fn a_fact_read_but_never_asked_is_found_and_can_be_acknowledged() {
    let text =
        std::fs::read_to_string(root().join("policies/masshealth-all-single-agent.toml")).unwrap();
    let findings = lint_text("masshealth.toml", &text);
    let finding = findings
        .iter()
        .find(|f| f.code == "never-asked:request.drug_source")
        .expect("drug_source is only read as an exception");
    assert!(finding.acknowledged);
    let unacknowledged = text.replace("\"never-asked:request.drug_source: the samples/manufacturer exception applies only when documented\",", "");
    let findings = lint_text("masshealth.toml", &unacknowledged);
    assert!(
        findings
            .iter()
            .any(|f| f.code == "never-asked:request.drug_source" && !f.acknowledged)
    );
}

#[test]
fn an_approving_pathway_without_a_quantity_is_a_finding() {
    // Take the quantity table out of the Interfant pathway.
    let start = eocco()
        .find("[pathway.quantity]\ncycles = 1\n")
        .expect("Interfant quantity");
    let end = start + eocco()[start..].find("\n\n").expect("end of table");
    let mut text = eocco();
    text.replace_range(start..end, "");
    let findings = lint_text("eocco-no-quantity.toml", &text);
    let codes = codes(&findings);
    assert!(
        codes.contains(&"no-quantity:pediatric-interfant"),
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| c.starts_with("no-quantity:"))
            .count(),
        1,
        "{codes:?}"
    );
}

#[test]
fn a_negative_criterion_without_its_unmet_words_is_a_finding() {
    let text = eocco().replacen(
        "unmet = \"a live vaccine planned during therapy (or not documented)\"\n",
        "",
        1,
    );
    assert_ne!(text, eocco());
    let findings = lint_text("eocco-double-negative.toml", &text);
    let codes = codes(&findings);
    assert!(
        codes.contains(&"double-negative:no-live-vaccine-during"),
        "{codes:?}"
    );
}
