//! The fuzz targets' inputs replayed without cargo-fuzz: every input a fault was found with
//! (`fuzz/regressions/TARGET/`) and the committed corpora (`fuzz/corpus/TARGET/`), run through
//! the targets' own code (`fuzz/harness/TARGET.rs`). Each must end in a decision or an error
//! with a message, without a panic, within seconds.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../../fuzz/harness/case.rs"]
mod case_target;
#[path = "../../../fuzz/harness/policy.rs"]
mod policy_target;
#[path = "../../../fuzz/harness/replay.rs"]
mod replay;

use replay::{fuzz_dir, replay};

#[test]
fn case_inputs_found_by_fuzzing() {
    replay("regressions/case", case_target::run);
}

#[test]
fn policy_inputs_found_by_fuzzing() {
    replay("regressions/policy", policy_target::run);
}

#[test]
fn the_case_corpus() {
    let (decided, rejected) = replay("corpus/case", case_target::run);
    // The corpus keeps the shared examples' kinds: cases decided and cases rejected.
    assert!(
        decided >= 10 && rejected >= 5,
        "{decided} decided, {rejected} rejected"
    );
}

#[test]
fn the_policy_corpus() {
    let (decided, rejected) = replay("corpus/policy", policy_target::run);
    assert!(
        decided >= 3 && rejected >= 1,
        "{decided} decided, {rejected} rejected"
    );
}

/// The targets reach what they are meant to: a shared example is decided by every policy, and
/// two versions of one policy in one input load side by side.
#[test]
fn the_targets_reach_decisions() {
    let example = std::fs::read(fuzz_dir().join("../tests/cases/E01.json")).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&case_target::run(&example).unwrap()).unwrap();
    assert_eq!(
        report["results"].as_array().unwrap().len(),
        case_target::engine().current().len()
    );

    let policy =
        std::fs::read_to_string(fuzz_dir().join("../policies/express-scripts-blincyto.toml"))
            .unwrap();
    let older = policy
        .replace("version = \"2025-09-10\"", "version = \"2024-01-01\"")
        .replace("effective = \"2025-09-10\"", "effective = \"2024-01-01\"");
    let both = format!("{older}{}{policy}", policy_target::FILE_SEPARATOR);
    assert!(policy_target::run(both.as_bytes()).is_ok());
    // The same version twice is an error, located.
    let twice = format!("{policy}{}{policy}", policy_target::FILE_SEPARATOR);
    let error = policy_target::run(twice.as_bytes()).unwrap_err();
    assert!(error.contains("versions of a policy"), "{error}");
}
