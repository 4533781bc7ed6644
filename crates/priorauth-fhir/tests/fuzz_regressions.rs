//! The `fhir_bundle` fuzz target's inputs replayed without cargo-fuzz: every input a fault
//! was found with (`fuzz/regressions/fhir_bundle/`) and the committed corpus, through the
//! target's own code (`fuzz/harness/fhir_bundle.rs`). Each must end in decisions or an error
//! with a message, without a panic, within seconds.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../../fuzz/harness/fhir_bundle.rs"]
mod fhir_bundle_target;
#[path = "../../../fuzz/harness/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn fhir_bundle_inputs_found_by_fuzzing() {
    replay("regressions/fhir_bundle", fhir_bundle_target::run);
}

#[test]
fn the_fhir_bundle_corpus() {
    let (decided, rejected) = replay("corpus/fhir_bundle", fhir_bundle_target::run);
    // The corpus keeps the seeds' kinds: Bundles decided and Bundles refused.
    assert!(
        decided >= 10 && rejected >= 1,
        "{decided} decided, {rejected} rejected"
    );
}
