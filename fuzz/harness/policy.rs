//! The `policy` fuzz target: bytes read as policy files, as `priorauth --policies DIR` and the
//! service load them. The input is checked as a drug catalog (`load_catalog`) and as one or
//! more policy files beside the bundled catalog (`Engine::from_texts`: `load_policy` for each,
//! then the versions of one policy against each other). A policy that loads decides the
//! shared example cases, rendered as the JSON report and the text tree.
//!
//! Several policy files are one input joined by a line `#%% next file`, so that versions of
//! one policy (`version`, `effective`, `supersedes`) are reachable.
//!
//! Shared by `fuzz_targets/policy.rs` and `crates/priorauth-core/tests/fuzz_regressions.rs`,
//! so that every finding replays in plain `cargo test`.

use std::sync::OnceLock;

use priorauth_core::report::{self, Report};
use priorauth_core::{Case, Engine, policy};

/// Separates policy files within one input.
pub const FILE_SEPARATOR: &str = "\n#%% next file\n";

const CATALOG: &str = include_str!("../../policies/drugs.toml");

/// The shared example cases (`tests/cases/E*.json`), parsed once per process.
fn example_cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let engine = match Engine::from_texts([("drugs.toml".to_string(), CATALOG.to_string())]) {
            Ok(engine) => engine,
            Err(error) => panic!("the bundled catalog does not load: {error}"),
        };
        [
            include_str!("../../tests/cases/E01.json"),
            include_str!("../../tests/cases/E02.json"),
            include_str!("../../tests/cases/E03.json"),
            include_str!("../../tests/cases/E04.json"),
            include_str!("../../tests/cases/E05.json"),
            include_str!("../../tests/cases/E06.json"),
            include_str!("../../tests/cases/E07.json"),
            include_str!("../../tests/cases/E08.json"),
            include_str!("../../tests/cases/E09.json"),
            include_str!("../../tests/cases/E10.json"),
            include_str!("../../tests/cases/E11.json"),
            include_str!("../../tests/cases/E12.json"),
            include_str!("../../tests/cases/E13.json"),
        ]
        .iter()
        .map(|json| match engine.parse_case(json) {
            Ok(case) => case,
            Err(error) => panic!("an example case does not parse: {error}"),
        })
        .collect()
    })
}

/// Runs one input: `Ok` with the JSON reports of the example cases when the policies load,
/// `Err` with the loader's message when they do not. Panics on what must never happen.
pub fn run(data: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(data).map_err(|error| format!("not UTF-8: {error}"))?;
    // The whole input as a drug catalog: loads or is located.
    if let Err(error) = policy::load_catalog("drugs.toml", text) {
        assert!(
            !error.message.is_empty(),
            "a catalog error without a message"
        );
    }
    let files = std::iter::once(("drugs.toml".to_string(), CATALOG.to_string())).chain(
        text.split(FILE_SEPARATOR)
            .enumerate()
            .map(|(n, file)| (format!("policy-{n}.toml"), file.to_string())),
    );
    let engine = match Engine::from_texts(files) {
        Ok(engine) => engine,
        Err(error) => {
            assert!(
                !error.message.is_empty(),
                "a policy error without a message"
            );
            return Err(error.to_string());
        }
    };
    let mut reports = String::new();
    for case in example_cases() {
        let evaluation = engine.evaluate(case, &[]);
        assert_eq!(
            evaluation.decisions.len(),
            engine.current().len(),
            "every policy decides every case"
        );
        match serde_json::to_string(&Report::new(&engine, case, &evaluation)) {
            Ok(json) => reports.push_str(&json),
            Err(error) => panic!("a decided case has no JSON report: {error}"),
        }
        assert!(
            !report::text(&engine, case, &evaluation).is_empty(),
            "a decided case has no text report"
        );
    }
    Ok(reports)
}
