//! Runs `policies/*.cases.json`: for every policy, each criterion met, not met and unknown,
//! each pathway's duration, each exclusion and the dosing boundaries.
//!
//! A test case is a base case with some keys changed. Each row asserts the status of one
//! criterion (by its id in the policy file) and the policy's outcome, and may assert the
//! authorization end and the missing keys. After all rows ran, every criterion of every
//! policy must have been seen met, not met and unknown, unless the file exempts it with a reason.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use priorauth_core::Engine;
use priorauth_core::eval;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    policy: String,
    /// Named complete cases the tests start from.
    bases: BTreeMap<String, Value>,
    tests: Vec<TestRow>,
    /// Criterion id -> status -> why that status cannot occur.
    #[serde(default)]
    exempt: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRow {
    description: String,
    base: String,
    /// Dotted key -> new value; `null` makes the fact unknown.
    #[serde(default)]
    set: BTreeMap<String, Value>,
    criterion: String,
    /// `met`, `not_met` or `unknown`.
    status: String,
    outcome: String,
    /// The authorization's inclusive end (null: an approval without a stated duration).
    #[serde(default)]
    end: Option<Value>,
    /// Keys that must be among `missing`.
    #[serde(default)]
    missing: Option<Vec<String>>,
    /// An approval's cycles and billable units per cycle (`[cycles, units]`), never more
    /// than its pathway and the label allow; fewer cycles than requested is a partial approval.
    #[serde(default)]
    quantity: Option<[u32; 2]>,
}

fn apply(base: &Value, set: &BTreeMap<String, Value>) -> Value {
    let mut case = base.clone();
    for (key, value) in set {
        // A declared fact is `facts.<its name>`, itself a `section.key`.
        let (section, field) = match key.strip_prefix("facts.") {
            Some(name) => ("facts", name),
            None => {
                let mut parts = key.split('.');
                let (Some(section), Some(field), None) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("`{key}` is not a section.key");
                };
                (section, field)
            }
        };
        let object = case.as_object_mut().expect("a case is an object");
        let section = object
            .entry(section)
            .or_insert_with(|| Value::Object(Default::default()));
        if section.is_null() {
            *section = Value::Object(Default::default());
        }
        section
            .as_object_mut()
            .expect("a section is an object")
            .insert(field.to_string(), value.clone());
    }
    case
}

#[test]
fn every_criterion_met_not_met_and_unknown() {
    let engine = Engine::bundled().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".cases.json"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut covered_policies = BTreeSet::new();
    for path in &files {
        let file: CasesFile = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let index = engine
            .policy_index(&file.policy)
            .unwrap_or_else(|| panic!("unknown policy {}", file.policy));
        let policy = &engine.policies[index];
        covered_policies.insert(file.policy.clone());
        let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (row_number, row) in file.tests.iter().enumerate() {
            let label = format!("{} #{row_number} ({})", file.policy, row.description);
            let base = file
                .bases
                .get(&row.base)
                .unwrap_or_else(|| panic!("{label}: no base `{}`", row.base));
            let json = apply(base, &row.set).to_string();
            let case = match engine.parse_case(&json) {
                Ok(case) => case,
                Err(e) => {
                    failures.push(format!("{label}: invalid case: {e}"));
                    continue;
                }
            };
            let evaluation = engine.evaluate(&case, &[index]);
            let decision = evaluation.decisions[0].1;
            let Some(criterion) = policy.criteria.iter().position(|c| c.id == row.criterion) else {
                failures.push(format!("{label}: no criterion `{}`", row.criterion));
                continue;
            };
            let status = eval::eval(&policy.arena, criterion as u16, &evaluation.facts).as_str();
            seen.entry(policy.criteria[criterion].id.as_str())
                .or_default()
                .insert(status.to_string());
            if status != row.status {
                failures.push(format!(
                    "{label}: criterion `{}` is {status}, expected {}",
                    row.criterion, row.status
                ));
            }
            if decision.outcome.as_str() != row.outcome {
                failures.push(format!(
                    "{label}: outcome {}, expected {} (missing {:?})",
                    decision.outcome.as_str(),
                    row.outcome,
                    engine.policies[evaluation.decisions[0].0]
                        .missing_keys(decision.missing)
                        .collect::<Vec<_>>()
                ));
            }
            if let Some(end) = &row.end {
                let actual = decision
                    .authorization
                    .map_or(Value::Null, |(_, end)| Value::from(end.to_string()));
                if actual != *end {
                    failures.push(format!(
                        "{label}: authorization end {actual}, expected {end}"
                    ));
                }
            }
            let granted = decision.quantity.map(|q| [q.cycles, q.units_per_cycle]);
            if row.quantity.is_some() && granted != row.quantity {
                failures.push(format!(
                    "{label}: quantity {granted:?} (cycles, units per cycle), expected {:?}",
                    row.quantity
                ));
            }
            if let Some(missing) = &row.missing {
                let actual: Vec<&str> = engine.policies[evaluation.decisions[0].0]
                    .missing_keys(decision.missing)
                    .collect();
                for key in missing {
                    if !actual.contains(&key.as_str()) {
                        failures.push(format!("{label}: missing {actual:?} lacks `{key}`"));
                    }
                }
            }
        }
        for criterion in &policy.criteria {
            for status in ["met", "not_met", "unknown"] {
                let exempt = file
                    .exempt
                    .get(&criterion.id)
                    .is_some_and(|e| e.contains_key(status));
                let covered = seen
                    .get(criterion.id.as_str())
                    .is_some_and(|s| s.contains(status));
                if !covered && !exempt {
                    failures.push(format!(
                        "{}: criterion `{}` is never tested {status}",
                        file.policy, criterion.id
                    ));
                }
            }
        }
    }
    for policy in &engine.policies {
        if !covered_policies.contains(&policy.id) {
            failures.push(format!("{}: no {}.cases.json", policy.id, policy.id));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
