//! The `fhir_bundle` fuzz target: bytes read as a PAS request Bundle, as `POST
//! /fhir/Claim/$submit` reads one. A Bundle that passes the checks becomes a case through the
//! mapping tables and the attached answers; that case is parsed and, if valid, decided. A
//! refused Bundle or case must say what is wrong.
//!
//! Shared by `fuzz_targets/fhir_bundle.rs` and
//! `crates/priorauth-fhir/tests/fuzz_regressions.rs`, so that every finding replays in plain
//! `cargo test`.

use std::sync::OnceLock;

use priorauth_core::Engine;
use priorauth_fhir::map::{BUNDLED, Map};

/// The bundled engine and mapping tables, loaded once per process.
fn setup() -> &'static (Engine, Map) {
    static SETUP: OnceLock<(Engine, Map)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let engine = match Engine::bundled() {
            Ok(engine) => engine,
            Err(error) => panic!("the bundled policies do not load: {error}"),
        };
        let map = match Map::load(BUNDLED, &engine) {
            Ok(map) => map,
            Err(error) => panic!("the bundled FHIR tables do not load: {error}"),
        };
        (engine, map)
    })
}

/// Runs one input: `Ok` with the decisions, `Err` with what a client would be told.
pub fn run(data: &[u8]) -> Result<String, String> {
    let (engine, map) = setup();
    let text = std::str::from_utf8(data).map_err(|error| format!("not UTF-8: {error}"))?;
    let request = match priorauth_fhir::pas::read_request(text) {
        Ok(request) => request,
        Err(problems) => {
            assert!(
                !problems.is_empty() && problems.iter().all(|p| !p.message.is_empty()),
                "a refused Bundle without a problem"
            );
            return Err(format!("{problems:?}"));
        }
    };
    let intake = priorauth_fhir::pas::intake(map, engine, &request);
    assert!(
        intake.case.is_object(),
        "the intake's case is not an object"
    );
    let case = match engine.parse_case(&intake.case.to_string()) {
        Ok(case) => case,
        Err(error) => {
            assert!(!error.problems.is_empty(), "a case error without a problem");
            return Err(error.to_string());
        }
    };
    let evaluation = engine.evaluate(&case, &[]);
    let outcomes: Vec<&str> = evaluation
        .decisions
        .iter()
        .map(|(_, d)| d.outcome.as_str())
        .collect();
    serde_json::to_string(&outcomes).map_err(|error| error.to_string())
}
