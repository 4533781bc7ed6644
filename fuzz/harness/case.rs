//! The `case` fuzz target: bytes read as a case file, as `priorauth evaluate --format json`
//! reads one. A case that parses is decided by every bundled policy and rendered as the JSON
//! report and the text tree; one that does not must come with its problems.
//!
//! Shared by `fuzz_targets/case.rs` and `crates/priorauth-core/tests/fuzz_regressions.rs`,
//! so that every finding replays in plain `cargo test`.

use std::sync::OnceLock;

use priorauth_core::Engine;
use priorauth_core::report::{self, Report};

/// The bundled engine, loaded once per process.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| match Engine::bundled() {
        Ok(engine) => engine,
        Err(error) => panic!("the bundled policies do not load: {error}"),
    })
}

/// Runs one input: `Ok` with the JSON report when the case parses, `Err` with the message a
/// user would see when it does not. Panics on what must never happen.
pub fn run(data: &[u8]) -> Result<String, String> {
    let engine = engine();
    let text = std::str::from_utf8(data).map_err(|error| format!("not UTF-8: {error}"))?;
    let case = match engine.parse_case(text) {
        Ok(case) => case,
        Err(error) => {
            // A rejected case always says what is wrong with it.
            assert!(
                !error.problems.is_empty() && error.problems.iter().all(|p| !p.message.is_empty()),
                "a case error without a problem: {error:?}"
            );
            return Err(error.to_string());
        }
    };
    let evaluation = engine.evaluate(&case, &[]);
    assert_eq!(
        evaluation.decisions.len(),
        engine.current().len(),
        "every policy decides every valid case"
    );
    let json = match serde_json::to_string_pretty(&Report::new(engine, &case, &evaluation)) {
        Ok(json) => json,
        Err(error) => panic!("a decided case has no JSON report: {error}"),
    };
    let tree = report::text(engine, &case, &evaluation);
    assert!(!tree.is_empty(), "a decided case has no text report");
    Ok(json)
}
