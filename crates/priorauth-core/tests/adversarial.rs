//! Adversarial requests against every policy: each starts from a valid case that the policy
//! approves and changes what a requester controls (quantities, cycles, the course position,
//! billing and diagnosis codes, implausible measures, the renewal history), then checks the
//! JSON report. No approval may go beyond its ceiling (the pathway's and the label's), and
//! no approval may be obtained by declaring what the records contradict.
//!
//! The cases are inline: the project's tests do not read the shared example directory.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use priorauth_core::date::Date;
use priorauth_core::report::Report;
use priorauth_core::{CaseError, Engine};
use serde_json::{Value, json};

const BCBSNC: &str = "bcbsnc-blinatumomab";
const EOCCO: &str = "eocco-0382";
const EVOLENT: &str = "evolent-cg-3258";
const EXPRESS_SCRIPTS: &str = "express-scripts-blincyto";
const MASSHEALTH: &str = "masshealth-all-single-agent";
const POLICIES: [&str; 5] = [BCBSNC, EOCCO, EVOLENT, EXPRESS_SCRIPTS, MASSHEALTH];

/// The outcome of a Blincyto request whose units per cycle are beyond the ceiling: each
/// policy's `dosing_outside` route.
const UNITS_OVER_OUTCOME: [(&str, &str); 5] = [
    (BCBSNC, "review"),
    (EOCCO, "deny"),
    (EVOLENT, "deny"),
    (EXPRESS_SCRIPTS, "review"),
    (MASSHEALTH, "deny"),
];

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::bundled().unwrap())
}

/// Adult relapsed Ph-negative B-ALL, Blincyto as a single agent, cycles 1-2 of 42 days at
/// 980 units each (the shared example E01): every policy approves it.
fn blincyto_initial() -> Value {
    json!({
        "id": "ADV-blincyto-initial",
        "request": {
            "drug": "blinatumomab",
            "kind": "initial",
            "date": "2026-05-18",
            "line_of_business": "medicaid",
            "regimen": "single_agent",
            "dose": {"value": 28, "unit": "mcg/day"},
            "infusion_days": 28,
            "cycle_length_days": 42,
            "cycles": 2,
            "first_cycle": 1,
            "hcpcs": "J9039",
            "units": 980,
            "units_period_days": 42,
            "drug_source": "plan"
        },
        "patient": {
            "birth_date": "1966-02-11",
            "weight_kg": 71,
            "height_cm": 168,
            "new_to_plan_on_treatment": false
        },
        "diagnosis": {
            "icd10": ["C91.02"],
            "condition": "acute_lymphoblastic_leukemia",
            "lineage": "b_cell_precursor",
            "cd19_positive": true,
            "ph_status": "negative",
            "disease_status": "relapsed"
        },
        "history": {
            "induction_regimen": "standard_chemotherapy",
            "prior_systemic_therapies": 1,
            "blinatumomab_cycles": 0,
            "progression_on_blinatumomab": false,
            "hypersensitivity": false,
            "live_vaccine_within_2_weeks": false,
            "live_vaccine_planned": false
        },
        "prescriber": {"specialty": "medical_oncology"}
    })
}

/// A renewal for continued therapy, cycles 6-7 of 84 days, after five cycles with stable
/// disease and one earlier authorization (the shared example E10): BCBSNC, EOCCO, Express
/// Scripts and MassHealth (a 12-month reauthorization) approve it.
fn blincyto_renewal() -> Value {
    json!({
        "id": "ADV-blincyto-renewal",
        "request": {
            "drug": "blinatumomab",
            "kind": "renewal",
            "date": "2026-05-18",
            "line_of_business": "medicaid",
            "regimen": "single_agent",
            "dose": {"value": 28, "unit": "mcg/day"},
            "infusion_days": 28,
            "cycle_length_days": 84,
            "cycles": 2,
            "first_cycle": 6,
            "hcpcs": "J9039",
            "units": 980,
            "units_period_days": 84,
            "drug_source": "plan"
        },
        "patient": {
            "birth_date": "1966-02-11",
            "weight_kg": 71,
            "height_cm": 168,
            "new_to_plan_on_treatment": false
        },
        "diagnosis": {
            "icd10": ["C91.02"],
            "condition": "acute_lymphoblastic_leukemia",
            "lineage": "b_cell_precursor",
            "cd19_positive": true,
            "ph_status": "negative",
            "disease_status": "relapsed"
        },
        "history": {
            "induction_regimen": "standard_chemotherapy",
            "prior_systemic_therapies": 1,
            "blinatumomab_cycles": 5,
            "blinatumomab_continued_cycles": 0,
            "progression_on_blinatumomab": false,
            "hypersensitivity": false,
            "live_vaccine_within_2_weeks": false,
            "live_vaccine_planned": false,
            "unacceptable_toxicity": false,
            "response": "stable",
            "medications_added": false,
            "authorizations": [{"start": "2025-10-13", "end": "2026-05-10", "renewal": false}]
        },
        "prescriber": {"specialty": "medical_oncology"}
    })
}

/// Besponsa for relapsed Ph-positive B-ALL after dasatinib failed (the shared example E07):
/// only MassHealth governs it, and approves. 71 kg and 168 cm are 1.82 m², so the label's
/// cycle (0.8 + 0.5 + 0.5 mg/m², each dose in whole 0.9 mg vials) is 2 + 2 + 2 vials: 54 units.
fn besponsa_initial() -> Value {
    json!({
        "id": "ADV-besponsa-initial",
        "request": {
            "drug": "inotuzumab_ozogamicin",
            "kind": "initial",
            "date": "2026-05-18",
            "line_of_business": "medicaid",
            "regimen": "single_agent",
            "dose": {"value": 0.8, "unit": "mg/m2"},
            "infusion_days": 3,
            "cycle_length_days": 21,
            "cycles": 2,
            "first_cycle": 1,
            "hcpcs": "J9229",
            "units": 14,
            "units_period_days": 21,
            "drug_source": "plan"
        },
        "patient": {
            "birth_date": "1966-02-11",
            "weight_kg": 71,
            "height_cm": 168,
            "new_to_plan_on_treatment": false
        },
        "diagnosis": {
            "icd10": ["C91.02"],
            "condition": "acute_lymphoblastic_leukemia",
            "lineage": "b_cell_precursor",
            "cd19_positive": true,
            "cd22_positive": true,
            "ph_status": "positive",
            "disease_status": "relapsed"
        },
        "history": {
            "induction_regimen": "standard_chemotherapy",
            "prior_systemic_therapies": 1,
            "blinatumomab_cycles": 0,
            "progression_on_blinatumomab": false,
            "hypersensitivity": false,
            "live_vaccine_within_2_weeks": false,
            "live_vaccine_planned": false,
            "tkis": [{"drug": "dasatinib", "outcome": "inadequate_response"}]
        },
        "prescriber": {"specialty": "medical_oncology"}
    })
}

/// The Besponsa label's most units per cycle for 1.82 m² (see [`besponsa_initial`]).
const BESPONSA_CEILING: u64 = 54;

/// Sets a dotted key (`request.units`), creating the sections on the way.
fn set(case: &mut Value, path: &str, value: Value) {
    let mut node = case;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.as_object_mut()
                .unwrap()
                .insert(part.to_string(), value);
            return;
        }
        node = node
            .as_object_mut()
            .unwrap()
            .entry(part.to_string())
            .or_insert_with(|| json!({}));
    }
}

/// Removes a dotted key: the fact becomes unknown.
fn remove(case: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').unwrap();
    let mut node = &mut *case;
    for part in parent.split('.') {
        node = node.get_mut(part).unwrap();
    }
    node.as_object_mut().unwrap().remove(key);
}

/// The case with some keys set.
fn with(mut case: Value, changes: &[(&str, Value)]) -> Value {
    for (path, value) in changes {
        set(&mut case, path, value.clone());
    }
    case
}

/// The case with some keys removed.
fn without(mut case: Value, paths: &[&str]) -> Value {
    for path in paths {
        remove(&mut case, path);
    }
    case
}

/// Parses the case (it must be valid), decides it against every policy and returns the JSON
/// report, after checking every approval's quantity against its ceilings.
fn decide(case: &Value) -> Value {
    decide_received(case, None)
}

fn decide_received(case: &Value, received: Option<Date>) -> Value {
    let engine = engine();
    let parsed = engine
        .parse_case(&case.to_string())
        .unwrap_or_else(|e| panic!("{e}\n{case:#}"));
    let evaluation = engine
        .evaluate_received(&parsed, &[], received)
        .unwrap_or_else(|e| panic!("{e}\n{case:#}"));
    let report = serde_json::to_value(Report::new(engine, &parsed, &evaluation)).unwrap();
    assert_within_ceilings(case, &report);
    report
}

/// The billing code, units per vial and the label's most units per cycle and cycles of a
/// course for a drug of the catalog, as the catalog states them (`policies/drugs.toml`).
fn label(case: &Value) -> (&'static str, u64, u64, u64) {
    match case["request"]["drug"].as_str() {
        Some("blinatumomab") => {
            // One 35 mcg vial (35 units) per infusion day, at most 28 days: 980 units.
            let days = case["request"]["infusion_days"]
                .as_u64()
                .unwrap_or(28)
                .min(28);
            ("J9039", 35, 35 * days, 9)
        }
        // Whole 0.9 mg vials of 0.1 mg units; the most per cycle depends on the body
        // surface area, counted at most 3.0 m²: 3 doses of at most 0.8 mg/m² are at most
        // 3 x 3 vials, however large the weight and height given.
        Some("inotuzumab_ozogamicin") => ("J9229", 9, 3 * 3 * 9, 6),
        other => panic!("no label for {other:?}"),
    }
}

/// The case format's billable units per cycle (docs/case-format.md, Quantities), computed
/// here apart from the engine: units for the cycle as they are; for a period holding the
/// infusion days but shorter than the cycle, as they are; for a shorter period, a rate over
/// the infusion days; for a longer one, a rate over the cycle; rescaled figures round up.
fn units_per_cycle(case: &Value) -> Option<u64> {
    let request = &case["request"];
    let units = request["units"].as_u64()?;
    let days = |key: &str| request[key].as_u64();
    match (days("units_period_days"), days("cycle_length_days")) {
        (None, _) => Some(units),
        (Some(period), Some(cycle)) if period == cycle => Some(units),
        (Some(period), Some(cycle)) if period > cycle => Some((units * cycle).div_ceil(period)),
        (Some(period), Some(_)) => {
            let infusion = days("infusion_days").or(days("dose_days"))?;
            // Besponsa's doses fall on days 1, 8 and 15: a period holds those up to its end.
            if request["drug"] == "inotuzumab_ozogamicin" {
                let doses = infusion.min(3);
                let in_period = [1, 8, 15][..doses as usize]
                    .iter()
                    .filter(|day| **day <= period)
                    .count() as u64;
                if in_period >= 1 && in_period < doses {
                    return Some((units * doses).div_ceil(in_period));
                }
            }
            if period >= infusion {
                Some(units)
            } else {
                Some((units * infusion).div_ceil(period))
            }
        }
        (Some(_), None) => None,
    }
}

/// Every approval carries a quantity within its ceilings, and its ceilings within the
/// label's: `total_units == units * cycles <= ceiling.units_per_cycle * ceiling.cycles`.
fn assert_within_ceilings(case: &Value, report: &Value) {
    for result in report["results"].as_array().unwrap() {
        let policy = result["policy"].as_str().unwrap();
        let quantity = &result["quantity"];
        if result["outcome"] != "approve" {
            assert!(
                quantity.is_null(),
                "{policy}: a quantity without an approval\n{result:#}"
            );
            continue;
        }
        assert!(
            quantity.is_object(),
            "{policy}: an approval without a quantity\n{result:#}"
        );
        let number = |key: &str| quantity[key].as_u64().unwrap();
        let (units, cycles, total) = (number("units"), number("cycles"), number("total_units"));
        let ceiling_units = quantity["ceiling"]["units_per_cycle"].as_u64().unwrap();
        let ceiling_cycles = quantity["ceiling"]["cycles"].as_u64().unwrap();
        let (hcpcs, units_per_vial, label_units, label_cycles) = label(case);
        let context = format!("{policy}\n{result:#}\n{case:#}");
        assert_eq!(quantity["hcpcs"], hcpcs, "{context}");
        assert_eq!(total, units * cycles, "{context}");
        assert!(units <= ceiling_units, "{context}");
        assert!(cycles <= ceiling_cycles, "{context}");
        assert!(total <= ceiling_units * ceiling_cycles, "{context}");
        assert!(ceiling_units <= label_units, "{context}");
        assert!(ceiling_cycles <= label_cycles, "{context}");
        assert!(cycles >= 1, "{context}");
        assert_eq!(number("vials"), units.div_ceil(units_per_vial), "{context}");
        match quantity["units_basis"].as_str() {
            Some("policy_maximum") => {
                assert!(case["request"]["units"].is_null(), "{context}");
                assert_eq!(units, ceiling_units, "{context}");
            }
            Some("requested") => {
                assert_eq!(Some(units), units_per_cycle(case), "{context}");
            }
            other => panic!("units_basis {other:?}\n{context}"),
        }
        if let Some(requested) = case["request"]["cycles"].as_u64() {
            assert_eq!(cycles, requested.min(ceiling_cycles), "{context}");
            if requested > cycles {
                assert_eq!(quantity["requested_cycles"], requested, "{context}");
                assert!(reason_ids(result).contains(&"cycles-beyond-authorization"));
            } else {
                assert!(quantity.get("requested_cycles").is_none(), "{context}");
            }
        }
    }
}

/// One policy's result in a report.
fn result<'a>(report: &'a Value, policy: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == policy)
        .unwrap_or_else(|| panic!("no result for {policy}"))
}

fn reason_ids(result: &Value) -> Vec<&str> {
    result["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

/// The reason of a result with an id.
fn reason<'a>(result: &'a Value, id: &str) -> &'a Value {
    result["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no reason `{id}`\n{result:#}"))
}

fn outcome(report: &Value, policy: &str) -> String {
    result(report, policy)["outcome"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The case must be rejected as bad input; every problem names a key, and one names `key`.
fn assert_rejected_naming(case: &Value, key: &str) -> CaseError {
    let error = match engine().parse_case(&case.to_string()) {
        Ok(_) => panic!("accepted, expected an error naming `{key}`\n{case:#}"),
        Err(error) => error,
    };
    assert!(!error.problems.is_empty());
    for problem in &error.problems {
        assert!(!problem.key.is_empty(), "a problem without a key: {error}");
    }
    assert!(
        error.problems.iter().any(|p| p.key == key),
        "expected a problem naming `{key}`, got: {error}\n{case:#}"
    );
    assert!(error.to_string().contains(key), "{error}");
    error
}

/// The approved quantity of one policy, which must approve.
fn approved<'a>(report: &'a Value, policy: &str) -> &'a Value {
    let result = result(report, policy);
    assert_eq!(result["outcome"], "approve", "{policy}\n{result:#}");
    &result["quantity"]
}

// ---- The base cases ----

#[test]
fn the_base_cases_are_approved_as_requested() {
    let report = decide(&blincyto_initial());
    for policy in POLICIES {
        let quantity = approved(&report, policy);
        assert_eq!(quantity["units"], 980, "{policy}");
        assert_eq!(quantity["vials"], 28, "{policy}");
        assert_eq!(quantity["cycles"], 2, "{policy}");
        assert_eq!(quantity["total_units"], 1960, "{policy}");
        assert_eq!(quantity["units_basis"], "requested", "{policy}");
        assert_eq!(quantity["hcpcs"], "J9039", "{policy}");
        assert_eq!(quantity["ceiling"]["units_per_cycle"], 980, "{policy}");
    }
    // Cycles per authorization: EOCCO's initial 5, the cycles that start within Express
    // Scripts' 12 months (7: cycles 1-5 of 42 days, then continued therapy's 84-day cycles 6
    // and 7, on days 210 and 294; cycle 8 would start on day 378), as within the year an
    // authorization of BCBSNC (a course of 9) and Evolent (the label's 9), which state no
    // duration, covers at most, and the 42-day cycles that start within MassHealth's 6 months (5).
    for (policy, cycles) in [
        (BCBSNC, 7),
        (EOCCO, 5),
        (EVOLENT, 7),
        (EXPRESS_SCRIPTS, 7),
        (MASSHEALTH, 5),
    ] {
        assert_eq!(
            approved(&report, policy)["ceiling"]["cycles"],
            cycles,
            "{policy}"
        );
    }

    let report = decide(&blincyto_renewal());
    for policy in [BCBSNC, EOCCO, EXPRESS_SCRIPTS, MASSHEALTH] {
        let quantity = approved(&report, policy);
        assert_eq!(quantity["units"], 980, "{policy}");
        assert_eq!(quantity["cycles"], 2, "{policy}");
    }
    // Cycles 6-9 are what is left of the 9-cycle course; EOCCO renews 2 at a time.
    assert_eq!(approved(&report, EOCCO)["ceiling"]["cycles"], 2);
    assert_eq!(approved(&report, BCBSNC)["ceiling"]["cycles"], 4);
    assert_eq!(
        result(&report, MASSHEALTH)["pathway"],
        "reauthorization",
        "a renewal with an authorization in the current course is a reauthorization"
    );
    assert_eq!(
        result(&report, MASSHEALTH)["authorization"]["end"],
        "2027-05-17"
    );

    let report = decide(&besponsa_initial());
    for policy in [BCBSNC, EOCCO, EVOLENT, EXPRESS_SCRIPTS] {
        assert_eq!(outcome(&report, policy), "not_applicable", "{policy}");
    }
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["hcpcs"], "J9229");
    assert_eq!(quantity["units"], 14);
    assert_eq!(quantity["vials"], 2);
    assert_eq!(quantity["cycles"], 2);
    assert_eq!(quantity["ceiling"]["units_per_cycle"], BESPONSA_CEILING);
    assert_eq!(quantity["ceiling"]["cycles"], 6);
}

// ---- Units per cycle ----

#[test]
fn units_far_beyond_the_ceiling_are_never_approved() {
    for (units, period, per_cycle) in [
        (99_999, 42, 99_999),
        // A rate per day over the 28 infusion days.
        (99_999, 1, 99_999 * 28),
        // A longer period: a rate over the cycle, rounded up.
        (99_999, 366, (99_999u64 * 42).div_ceil(366)),
        (100_000, 42, 100_000),
        (981, 42, 981),
    ] {
        let case = with(
            blincyto_initial(),
            &[
                ("request.units", json!(units)),
                ("request.units_period_days", json!(period)),
            ],
        );
        let report = decide(&case);
        for (policy, expected) in UNITS_OVER_OUTCOME {
            let result = result(&report, policy);
            assert_eq!(result["outcome"], expected, "{policy} {units}/{period}");
            assert!(result["quantity"].is_null(), "{policy}");
            let over = reason(result, "units-per-cycle");
            assert_eq!(over["status"], "not_met");
            let text = over["criterion"].as_str().unwrap();
            assert!(
                text.contains("at most 980 billable units per cycle")
                    && text.contains(&format!("{per_cycle} requested per cycle")),
                "{policy}: {text}"
            );
        }
    }
}

#[test]
fn units_beyond_a_shorter_infusion_are_beyond_the_label() {
    // 14 infusion days take at most 14 vials: 980 units for them are twice the label's most.
    let short = with(blincyto_initial(), &[("request.infusion_days", json!(14))]);
    let report = decide(&short);
    for policy in POLICIES {
        assert_ne!(outcome(&report, policy), "approve", "{policy}");
        let text = reason(result(&report, policy), "units-per-cycle")["criterion"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("at most 490 billable units"),
            "{policy}: {text}"
        );
    }
    let report = decide(&with(short, &[("request.units", json!(490))]));
    for policy in POLICIES {
        let quantity = approved(&report, policy);
        assert_eq!(quantity["units"], 490, "{policy}");
        assert_eq!(quantity["ceiling"]["units_per_cycle"], 490, "{policy}");
    }
}

#[test]
fn no_units_are_approved_with_the_policy_maximum() {
    for case in [
        without(blincyto_initial(), &["request.units"]),
        without(
            blincyto_initial(),
            &["request.units", "request.units_period_days"],
        ),
        with(blincyto_initial(), &[("request.units", Value::Null)]),
    ] {
        let report = decide(&case);
        for policy in POLICIES {
            let quantity = approved(&report, policy);
            assert_eq!(quantity["units_basis"], "policy_maximum", "{policy}");
            assert_eq!(quantity["units"], 980, "{policy}");
            assert_eq!(quantity["vials"], 28, "{policy}");
            assert_eq!(quantity["cycles"], 2, "{policy}");
            assert_eq!(quantity["total_units"], 1960, "{policy}");
            let text = reason(result(&report, policy), "quantity")["criterion"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(text.contains("no units were requested"), "{policy}: {text}");
        }
    }
    // Without units or cycles, the ceiling's cycles: never more than the label's course, nor
    // than start within the period (Express Scripts' 12 months hold 7, as above, and so does
    // the year that bounds an authorization of a policy that states no duration).
    let report = decide(&without(
        blincyto_initial(),
        &["request.units", "request.cycles"],
    ));
    for (policy, cycles) in [
        (BCBSNC, 7),
        (EOCCO, 5),
        (EVOLENT, 7),
        (EXPRESS_SCRIPTS, 7),
        (MASSHEALTH, 5),
    ] {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert_eq!(result["quantity"]["cycles"], cycles, "{policy}");
            assert_eq!(result["quantity"]["total_units"], 980 * cycles, "{policy}");
        }
    }
}

#[test]
fn units_for_another_period_are_converted_to_the_cycle() {
    // (units, period, infusion days, cycle length, units per cycle)
    for (units, period, per_cycle) in [
        // Two 42-day cycles' worth over 84 days: 980 per cycle.
        (1960, 84, 980),
        // 35 units a day for the 28 infusion days.
        (35, 1, 980),
        (245, 7, 980),
        // A period holding the infusion days but shorter than the cycle is one cycle.
        (784, 28, 784),
        (980, 28, 980),
        (980, 30, 980),
        // 8,540 units a year: 980 per 42 days exactly.
        (8540, 366, 980),
    ] {
        let case = with(
            blincyto_initial(),
            &[
                ("request.units", json!(units)),
                ("request.units_period_days", json!(period)),
            ],
        );
        let report = decide(&case);
        for policy in POLICIES {
            let quantity = approved(&report, policy);
            assert_eq!(quantity["units"], per_cycle, "{policy} {units}/{period}");
            assert_eq!(quantity["units_basis"], "requested", "{policy}");
            assert_eq!(quantity["total_units"], per_cycle * 2, "{policy}");
        }
    }
    // Rounded up, a fraction of a unit beyond the ceiling is beyond it.
    for (units, period) in [(1961, 84), (36, 1), (246, 7), (981, 28), (8541, 366)] {
        let case = with(
            blincyto_initial(),
            &[
                ("request.units", json!(units)),
                ("request.units_period_days", json!(period)),
            ],
        );
        let report = decide(&case);
        for (policy, expected) in UNITS_OVER_OUTCOME {
            assert_eq!(
                outcome(&report, policy),
                expected,
                "{policy} {units}/{period}"
            );
        }
    }
}

#[test]
fn eocco_approves_784_units_per_28_days_of_a_42_day_cycle() {
    let case = with(
        blincyto_initial(),
        &[
            ("request.units", json!(784)),
            ("request.units_period_days", json!(28)),
            ("request.infusion_days", json!(28)),
            ("request.cycle_length_days", json!(42)),
        ],
    );
    let report = decide(&case);
    let result = result(&report, EOCCO);
    assert_eq!(result["outcome"], "approve");
    assert_eq!(result["pathway"], "adult-relapsed-refractory");
    assert_eq!(result["quantity"]["units"], 784);
    assert_eq!(result["quantity"]["vials"], 23);
    assert_eq!(result["quantity"]["period_days"], 42);
    assert_eq!(result["quantity"]["total_units"], 1568);
    assert_eq!(result["quantity"]["units_basis"], "requested");
}

#[test]
fn eocco_reads_1960_units_per_84_days_as_980_per_42_day_cycle() {
    let case = with(
        blincyto_initial(),
        &[
            ("request.units", json!(1960)),
            ("request.units_period_days", json!(84)),
        ],
    );
    let report = decide(&case);
    let quantity = approved(&report, EOCCO);
    assert_eq!(quantity["units"], 980);
    assert_eq!(quantity["period_days"], 42);
    assert_eq!(quantity["cycles"], 2);
    assert_eq!(quantity["total_units"], 1960);
    assert_eq!(quantity["ceiling"]["units_per_cycle"], 980);
}

// ---- Cycles ----

#[test]
fn cycles_beyond_any_plausible_count_are_bad_input() {
    for cycles in [
        json!(25),
        json!(1000),
        json!(2_147_483_647u64),
        json!(2_147_483_648u64),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(9_223_372_036_854_775_808u64),
        json!(u64::MAX),
        json!(0),
        json!(-1),
        json!(-4_294_967_295i64),
        json!(1e300),
        json!(2.5),
        json!("NaN"),
        json!("9"),
    ] {
        let case = with(blincyto_initial(), &[("request.cycles", cycles.clone())]);
        assert_rejected_naming(&case, "request.cycles");
    }
    // Also against the renewal and Besponsa cases.
    for base in [blincyto_renewal(), besponsa_initial()] {
        for cycles in [json!(4_294_967_295u64), json!(2_147_483_648u64), json!(25)] {
            assert_rejected_naming(
                &with(base.clone(), &[("request.cycles", cycles)]),
                "request.cycles",
            );
        }
    }
}

#[test]
fn the_largest_plausible_request_is_cut_to_each_ceiling() {
    let case = with(blincyto_initial(), &[("request.cycles", json!(24))]);
    let report = decide(&case);
    // EOCCO's initial authorization covers cycles 1-5; the rest is a recommended denial.
    let quantity = approved(&report, EOCCO);
    assert_eq!(quantity["cycles"], 5);
    assert_eq!(quantity["requested_cycles"], 24);
    assert_eq!(quantity["total_units"], 4900);
    for policy in POLICIES {
        if outcome(&report, policy) == "approve" {
            let quantity = &result(&report, policy)["quantity"];
            assert!(quantity["cycles"].as_u64().unwrap() <= 9, "{policy}");
            assert!(
                quantity["total_units"].as_u64().unwrap() <= 9 * 980,
                "{policy}"
            );
        }
    }
}

#[test]
fn eocco_grants_5_of_9_cycles_and_recommends_denying_the_rest() {
    let case = with(blincyto_initial(), &[("request.cycles", json!(9))]);
    let report = decide(&case);
    let result = result(&report, EOCCO);
    assert_eq!(result["outcome"], "approve");
    assert_eq!(result["pathway"], "adult-relapsed-refractory");
    let quantity = &result["quantity"];
    assert_eq!(quantity["cycles"], 5);
    assert_eq!(quantity["requested_cycles"], 9);
    assert_eq!(quantity["units"], 980);
    assert_eq!(quantity["total_units"], 4900);
    assert_eq!(quantity["ceiling"]["cycles"], 5);
    assert_eq!(quantity["ceiling"]["units_per_cycle"], 980);
    let partial = reason(result, "cycles-beyond-authorization");
    assert_eq!(partial["status"], "not_met");
    assert_eq!(partial["pathway"], "adult-relapsed-refractory");
    let text = partial["criterion"].as_str().unwrap();
    assert!(
        text.contains("5 of the 9 cycles") && text.contains("other 4"),
        "{text}"
    );
    // 30 weeks from the request date, as for any initial relapsed/refractory approval.
    assert_eq!(result["authorization"]["end"], "2026-12-13");
}

#[test]
fn a_declared_course_position_must_follow_the_cycles_given() {
    // Restarting the course at cycle 1 after 4 cycles would reset the label's 9.
    let restart = with(
        blincyto_initial(),
        &[
            ("request.first_cycle", json!(1)),
            ("history.blinatumomab_cycles", json!(4)),
        ],
    );
    assert_rejected_naming(&restart, "request.first_cycle");
    // Skipping ahead, or claiming an earlier position in a renewal, as well.
    for (first, given) in [(9, 4), (6, 4), (1, 5), (5, 5), (2, 0)] {
        let case = with(
            blincyto_renewal(),
            &[
                ("request.first_cycle", json!(first)),
                ("history.blinatumomab_cycles", json!(given)),
            ],
        );
        assert_rejected_naming(&case, "request.first_cycle");
    }
    for first in [
        json!(0),
        json!(101),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(-1),
    ] {
        let case = with(blincyto_initial(), &[("request.first_cycle", first)]);
        assert_rejected_naming(&case, "request.first_cycle");
    }
}

#[test]
fn the_cycles_left_in_the_course_bound_every_approval() {
    // After 8 cycles, one is left of the label's 9.
    let case = with(
        blincyto_renewal(),
        &[
            ("request.first_cycle", json!(9)),
            ("history.blinatumomab_cycles", json!(8)),
            ("history.blinatumomab_continued_cycles", json!(3)),
            ("request.cycles", json!(4)),
        ],
    );
    let report = decide(&case);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert_eq!(result["quantity"]["cycles"], 1, "{policy}\n{result:#}");
            assert_eq!(result["quantity"]["ceiling"]["cycles"], 1, "{policy}");
        }
    }
    // After the whole course, nothing is left.
    let case = with(
        blincyto_renewal(),
        &[
            ("request.first_cycle", json!(10)),
            ("history.blinatumomab_cycles", json!(9)),
            ("history.blinatumomab_continued_cycles", json!(4)),
            ("request.cycles", json!(1)),
        ],
    );
    let report = decide(&case);
    for policy in POLICIES {
        assert_ne!(outcome(&report, policy), "approve", "{policy}");
    }
}

/// A renewal whose history shows the course has begun (an authorization ended 8 days ago)
/// but that omits its course position (`request.first_cycle` and
/// `history.blinatumomab_cycles`) is counted from cycle 1: Evolent, Express Scripts and
/// MassHealth (a reauthorization) approve it with a ceiling of the label's whole 9-cycle
/// course, each time it is renewed so. It should be asked for its position (incomplete) or
/// bounded by the cycles a begun course has left (at most 8).
#[test]
fn a_renewal_without_its_course_position_is_not_given_a_whole_course() {
    let case = with(
        without(
            blincyto_renewal(),
            &["request.first_cycle", "history.blinatumomab_cycles"],
        ),
        &[("request.cycles", json!(4))],
    );
    let report = decide(&case);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            let ceiling = result["quantity"]["ceiling"]["cycles"].as_u64().unwrap();
            assert!(
                ceiling < 9,
                "{policy}: ceiling of {ceiling} cycles\n{result:#}"
            );
        }
    }
}

/// "at most C billable units per cycle; R requested per cycle": (C, R).
fn units_over_figures(text: &str) -> (u64, u64) {
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 2, "{text}");
    (numbers[0], numbers[1])
}

/// A request past the label's course (no cycle left: a ceiling of 0 cycles) is not approved,
/// rightly, but the report explains it by a `units-per-cycle` reason whose own figures are
/// within the ceiling ("at most 980 billable units per cycle; 980 requested per cycle";
/// Besponsa from cycle 7: "at most 54 ...; 14 requested"): `eval::decide_with` records
/// `units_over` whenever `units_within` is false, which it also is for a ceiling of 0 cycles.
/// The reason a clinician reads should be the course, not the units.
#[test]
fn a_request_past_the_course_is_not_explained_as_units_over() {
    let after_the_course = with(
        blincyto_renewal(),
        &[
            ("request.first_cycle", json!(10)),
            ("history.blinatumomab_cycles", json!(9)),
            ("history.blinatumomab_continued_cycles", json!(4)),
            ("request.cycles", json!(1)),
        ],
    );
    let besponsa_after = with(besponsa_initial(), &[("request.first_cycle", json!(7))]);
    for case in [after_the_course, besponsa_after] {
        let report = decide(&case);
        for policy in POLICIES {
            let result = result(&report, policy);
            assert_ne!(result["outcome"], "approve", "{policy}");
            for reason in result["reasons"].as_array().unwrap() {
                if reason["id"] == "units-per-cycle" {
                    let (ceiling, requested) =
                        units_over_figures(reason["criterion"].as_str().unwrap());
                    assert!(
                        requested > ceiling,
                        "{policy}: {}\n{result:#}",
                        reason["criterion"]
                    );
                }
            }
        }
    }
}

#[test]
fn eocco_does_not_approve_continued_therapy_as_an_initial_request() {
    for cycle_length in [42, 84] {
        for cycles in 1..=4 {
            let case = with(
                blincyto_initial(),
                &[
                    ("request.first_cycle", json!(6)),
                    ("history.blinatumomab_cycles", json!(5)),
                    ("request.cycles", json!(cycles)),
                    ("request.cycle_length_days", json!(cycle_length)),
                    ("request.units_period_days", json!(cycle_length)),
                ],
            );
            let report = decide(&case);
            let result = result(&report, EOCCO);
            assert_eq!(
                result["outcome"],
                "deny",
                "cycles 6-{} of {cycle_length} days\n{result:#}",
                5 + cycles
            );
            assert!(result["quantity"].is_null());
            assert!(result["authorization"].is_null());
        }
    }
    // Spanning cycles 5 and 6 approves only what the initial authorization covers.
    let case = with(
        blincyto_initial(),
        &[
            ("request.first_cycle", json!(5)),
            ("history.blinatumomab_cycles", json!(4)),
            ("request.cycles", json!(3)),
        ],
    );
    let report = decide(&case);
    let result = result(&report, EOCCO);
    if result["outcome"] == "approve" {
        assert_eq!(result["quantity"]["cycles"], 1, "{result:#}");
        assert_eq!(result["quantity"]["requested_cycles"], 3);
    }
}

// ---- Renewals and the course ----

/// An authorization of the history.
fn authorization(start: &str, end: &str, renewal: Option<bool>) -> Value {
    match renewal {
        Some(flag) => json!({"start": start, "end": end, "renewal": flag}),
        None => json!({"start": start, "end": end}),
    }
}

/// A course before the request of 2026-05-18: the initial authorization (cycles 1-5, 30
/// weeks) and `renewals` renewals (24 weeks each), back to back, the last ending 36 days
/// before the request.
fn course(renewals: usize, flags: Option<bool>) -> Vec<Value> {
    let periods = [
        ("2024-10-14", "2025-05-11"),
        ("2025-05-12", "2025-10-26"),
        ("2025-10-27", "2026-04-12"),
    ];
    periods[2 - renewals.min(2)..]
        .iter()
        .enumerate()
        .map(|(i, (start, end))| authorization(start, end, flags.map(|renewal| renewal && i > 0)))
        .collect()
}

#[test]
fn a_third_eocco_renewal_is_not_approved_whatever_the_flags_say() {
    for flags in [None, Some(false), Some(true)] {
        // Two renewals granted already: the request declares itself the first.
        let case = with(
            blincyto_renewal(),
            &[("history.authorizations", json!(course(2, flags)))],
        );
        let report = decide(&case);
        let result = result(&report, EOCCO);
        assert_eq!(result["outcome"], "deny", "flags {flags:?}\n{result:#}");
        assert!(result["quantity"].is_null());
        assert_eq!(reason(result, "renewals-left")["status"], "not_met");

        // One renewal granted: this is the second, and the last.
        let case = with(
            blincyto_renewal(),
            &[("history.authorizations", json!(course(1, flags)))],
        );
        let report = decide(&case);
        let quantity = approved(&report, EOCCO);
        assert_eq!(quantity["cycles"], 2);
        assert_eq!(quantity["total_units"], 1960);
    }
    // Listed in any order, the course is the same.
    let mut history = course(2, None);
    history.reverse();
    let case = with(
        blincyto_renewal(),
        &[("history.authorizations", json!(history))],
    );
    assert_eq!(outcome(&decide(&case), EOCCO), "deny");
    // An authorization still active on the request date is in the course too.
    let mut history = course(2, None);
    history.push(authorization("2026-04-13", "2026-06-30", None));
    let case = with(
        blincyto_renewal(),
        &[("history.authorizations", json!(history))],
    );
    assert_ne!(outcome(&decide(&case), EOCCO), "approve");
}

/// A short authorization inside a longer one (an amended or interim authorization: it starts
/// after the course's last one starts and ends before it does) hides the whole course:
/// `facts::current_course` walks the authorizations by start date from the latest and stops
/// at the first that ended more than 90 days before, which is the nested one, so the course
/// counts 0 authorizations. EOCCO then approves a third renewal ("renewals-left" met), and
/// MassHealth takes a renewal whose authorization ended 17 days before for an initial request
/// (6 months instead of a 12-month reauthorization).
#[test]
fn a_nested_authorization_does_not_hide_the_course() {
    let mut history = course(2, None);
    history.push(authorization("2025-11-01", "2025-11-02", None));
    let case = with(
        blincyto_renewal(),
        &[("history.authorizations", json!(history))],
    );
    let report = decide(&case);
    let eocco = result(&report, EOCCO);
    assert_eq!(eocco["outcome"], "deny", "a third renewal\n{eocco:#}");
    assert_eq!(reason(eocco, "renewals-left")["status"], "not_met");

    let history = json!([
        {"start": "2025-01-01", "end": "2026-05-01"},
        {"start": "2025-06-01", "end": "2025-07-01"}
    ]);
    let case = with(blincyto_renewal(), &[("history.authorizations", history)]);
    let report = decide(&case);
    let masshealth = result(&report, MASSHEALTH);
    assert_eq!(masshealth["pathway"], "reauthorization", "{masshealth:#}");
    assert_eq!(masshealth["authorization"]["end"], "2027-05-17");
}

/// An initial request that declares no cycle given (`history.blinatumomab_cycles: 0`,
/// `request.first_cycle: 1`) while its own authorization history shows the current course
/// (three authorizations back to back, the last ended 36 days before) restarted the course:
/// every policy approved it with a fresh ceiling, EOCCO 5 more initial cycles (a course of
/// 5 + 5 + 4) and the others the label's whole 9. The records now place the request
/// (`facts::course_position`, docs/case-format.md, Course): authorizations that state their
/// `cycles` move its first cycle past them, so the course has only what they leave; ones
/// that do not state them contradict "no cycle given" without saying how many, and the
/// position is asked (`history.authorizations`). EOCCO refuses either way: its initial
/// approval starts a course.
#[test]
fn an_initial_request_does_not_restart_a_current_course() {
    for history in [
        json!(course(2, None)),
        json!([{"start": "2025-10-13", "end": "2026-05-10"}]),
    ] {
        let case = with(blincyto_initial(), &[("history.authorizations", history)]);
        let report = decide(&case);
        assert_ne!(
            outcome(&report, EOCCO),
            "approve",
            "a second initial course"
        );
        for policy in POLICIES {
            let result = result(&report, policy);
            if result["outcome"] == "approve" {
                let ceiling = result["quantity"]["ceiling"]["cycles"].as_u64().unwrap();
                assert!(ceiling < 9, "{policy}: a whole course again\n{result:#}");
            }
            // Records without cycles: nothing is approved until they say how many.
            assert_ne!(result["outcome"], "approve", "{policy}\n{result:#}");
            if result["outcome"] == "incomplete" {
                let missing = result["missing"].as_array().unwrap();
                assert!(
                    missing.contains(&json!("history.authorizations")),
                    "{policy}\n{result:#}"
                );
            }
        }
    }

    // Two cycles authorized in the current course: the request's two cycles are cycles 3-4,
    // and the course has 7 left. Express Scripts' 12 months cover 6 of them (3-5 of 42 days,
    // 6-8 of 84, starting on days 0, 42, 84, 126, 210 and 294), as does the year that bounds
    // BCBSNC's and Evolent's, MassHealth's 6 months 4 (cycle 7 would start on day 210).
    let case = with(
        blincyto_initial(),
        &[(
            "history.authorizations",
            json!([{"start": "2025-10-13", "end": "2026-05-10", "cycles": 2}]),
        )],
    );
    let report = decide(&case);
    assert_eq!(outcome(&report, EOCCO), "deny");
    for (policy, ceiling) in [
        (BCBSNC, 6),
        (EVOLENT, 6),
        (EXPRESS_SCRIPTS, 6),
        (MASSHEALTH, 4),
    ] {
        let quantity = approved(&report, policy);
        assert_eq!(quantity["cycles"], 2, "{policy}");
        assert_eq!(quantity["ceiling"]["cycles"], ceiling, "{policy}");
    }

    // The whole label course authorized already (5 + 2 + 2): nothing is left to approve.
    let mut history = course(2, None);
    for (authorization, cycles) in history.iter_mut().zip([5, 2, 2]) {
        authorization["cycles"] = json!(cycles);
    }
    let case = with(
        blincyto_initial(),
        &[("history.authorizations", json!(history))],
    );
    let report = decide(&case);
    for policy in POLICIES {
        assert_ne!(outcome(&report, policy), "approve", "{policy}");
    }

    // A request that says more cycles were given than the records hold (cycles before the
    // plan's records) starts where it says: cycles 5-6 after 4, not 3-4.
    let case = with(
        blincyto_initial(),
        &[
            (
                "history.authorizations",
                json!([{"start": "2025-10-13", "end": "2026-05-10", "cycles": 2}]),
            ),
            ("history.blinatumomab_cycles", json!(4)),
            ("request.first_cycle", json!(5)),
        ],
    );
    let report = decide(&case);
    assert_eq!(approved(&report, EXPRESS_SCRIPTS)["ceiling"]["cycles"], 5);
}

/// A renewal is placed by the records too: after 5 + 2 authorized cycles, a renewal that
/// declares cycles 6-7 again (5 given) is for cycles 8-9, the last two of the label's
/// course, and EOCCO's second renewal approves those.
#[test]
fn a_renewal_starts_after_the_cycles_its_course_authorized() {
    let history = json!([
        {"start": "2025-05-12", "end": "2025-10-26", "cycles": 5},
        {"start": "2025-10-27", "end": "2026-04-12", "cycles": 2}
    ]);
    let case = with(blincyto_renewal(), &[("history.authorizations", history)]);
    let report = decide(&case);
    let eocco = result(&report, EOCCO);
    assert_eq!(eocco["outcome"], "approve", "{eocco:#}");
    assert_eq!(eocco["quantity"]["cycles"], 2);
    assert_eq!(eocco["quantity"]["ceiling"]["cycles"], 2);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert!(
                result["quantity"]["ceiling"]["cycles"].as_u64().unwrap() <= 2,
                "{policy}: beyond cycle 9\n{result:#}"
            );
        }
    }
    // Three more cycles than the course has left: 2 approved, the third a recommended denial.
    let case = with(case, &[("request.cycles", json!(3))]);
    let report = decide(&case);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert!(
                result["quantity"]["cycles"].as_u64().unwrap() <= 2,
                "{policy}"
            );
        }
    }
    // An authorization that covered 0 cycles is not one.
    let case = with(
        blincyto_renewal(),
        &[(
            "history.authorizations",
            json!([{"start": "2025-10-13", "end": "2026-05-10", "cycles": 0}]),
        )],
    );
    assert_rejected_naming(&case, "history.authorizations[0].cycles");
}

#[test]
fn renewals_of_a_course_years_ago_do_not_count_against_a_new_course() {
    // A whole course with two renewals in 2019-2020, then a new course: one authorization.
    let history = json!([
        {"start": "2019-01-07", "end": "2019-08-04", "renewal": false},
        {"start": "2019-08-05", "end": "2020-01-19", "renewal": true},
        {"start": "2020-01-20", "end": "2020-07-05", "renewal": true},
        {"start": "2025-10-13", "end": "2026-05-10"}
    ]);
    let case = with(blincyto_renewal(), &[("history.authorizations", history)]);
    let report = decide(&case);
    let eocco = result(&report, EOCCO);
    assert_eq!(eocco["outcome"], "approve", "{eocco:#}");
    assert_eq!(eocco["pathway"], "relapsed-refractory-continued");
    assert_eq!(reason(eocco, "renewals-left")["status"], "met");
    assert_eq!(eocco["quantity"]["cycles"], 2);
    assert_eq!(eocco["quantity"]["ceiling"]["cycles"], 2);
    assert_eq!(eocco["authorization"]["end"], "2026-11-01");
    // MassHealth renews the current course: a 12-month reauthorization.
    assert_eq!(approved(&report, MASSHEALTH)["cycles"], 2);
    assert_eq!(result(&report, MASSHEALTH)["pathway"], "reauthorization");

    // An initial request after that old course starts a new one.
    let old_course = json!([
        {"start": "2019-01-07", "end": "2019-08-04"},
        {"start": "2019-08-05", "end": "2020-01-19"},
        {"start": "2020-01-20", "end": "2020-07-05"}
    ]);
    let case = with(
        blincyto_initial(),
        &[("history.authorizations", old_course)],
    );
    let report = decide(&case);
    for policy in POLICIES {
        assert_eq!(approved(&report, policy)["cycles"], 2, "{policy}");
    }
    assert_eq!(approved(&report, EOCCO)["ceiling"]["cycles"], 5);
}

#[test]
fn masshealth_does_not_reauthorize_from_an_authorization_years_ago() {
    let case = with(
        blincyto_renewal(),
        &[(
            "history.authorizations",
            json!([{"start": "2020-11-16", "end": "2021-05-15", "renewal": false}]),
        )],
    );
    let report = decide(&case);
    let masshealth = result(&report, MASSHEALTH);
    assert_eq!(masshealth["outcome"], "approve", "{masshealth:#}");
    assert_ne!(masshealth["pathway"], "reauthorization");
    assert_eq!(masshealth["pathway"], "initial");
    // 6 months, not the reauthorization's 12.
    assert_eq!(masshealth["authorization"]["start"], "2026-05-18");
    assert_eq!(masshealth["authorization"]["end"], "2026-11-17");
    // Declaring it a renewal with renewal flags does not make it one either.
    let case = with(
        blincyto_renewal(),
        &[(
            "history.authorizations",
            json!([
                {"start": "2020-11-16", "end": "2021-05-15", "renewal": true},
                {"start": "2021-05-16", "end": "2021-11-15", "renewal": true}
            ]),
        )],
    );
    let report = decide(&case);
    let masshealth = result(&report, MASSHEALTH);
    assert_eq!(masshealth["pathway"], "initial", "{masshealth:#}");
    assert_eq!(masshealth["authorization"]["end"], "2026-11-17");
}

#[test]
fn a_receipt_date_starts_the_period() {
    let received = Date::parse("2026-06-01").unwrap();
    let report = decide_received(&blincyto_initial(), Some(received));
    let result = result(&report, EOCCO);
    assert_eq!(result["outcome"], "approve");
    assert_eq!(result["authorization"]["start"], "2026-06-01");
    assert_eq!(result["quantity"]["cycles"], 2);
}

/// The clinical date lies within the window before receipt (`case::check_received`): a
/// date a year before receipt, or a week after it, is bad input naming `request.date`,
/// whoever passes the receipt date (the service's clock, `evaluate --received`).
#[test]
fn a_request_date_outside_the_window_before_receipt_is_bad_input() {
    let engine = engine();
    let case = engine.parse_case(&blincyto_initial().to_string()).unwrap();
    // Request date 2026-05-18: received a year later, 91 days later, a week before, 2 days
    // before.
    for received in ["2027-05-18", "2026-08-17", "2026-05-11", "2026-05-16"] {
        let received = Date::parse(received).unwrap();
        let error = engine
            .evaluate_received(&case, &[], Some(received))
            .unwrap_err();
        assert_eq!(error.problems.len(), 1, "{error}");
        assert_eq!(error.problems[0].key, "request.date", "{error}");
    }
    // Received the day before the request date (a time zone ahead), on it, and 90 days later.
    for received in ["2026-05-17", "2026-05-18", "2026-08-16"] {
        let report = decide_received(&blincyto_initial(), Some(Date::parse(received).unwrap()));
        assert_eq!(result(&report, EOCCO)["authorization"]["start"], received);
    }
    // Without a receipt date the case decides as of its own date, however old.
    let old = with(blincyto_initial(), &[("request.date", json!("2019-03-01"))]);
    assert_eq!(outcome(&decide(&old), EOCCO), "approve");
}

// ---- Codes ----

#[test]
fn a_billing_code_of_another_drug_is_bad_input() {
    for (base, code) in [
        (blincyto_initial(), "J9229"),
        (blincyto_renewal(), "J9229"),
        (blincyto_initial(), "J9999"),
        (besponsa_initial(), "J9039"),
    ] {
        let case = with(base, &[("request.hcpcs", json!(code))]);
        let error = assert_rejected_naming(&case, "request.hcpcs");
        assert!(error.to_string().contains(code), "{error}");
    }
    for code in ["j9039", "J903", "J90391", "", "9039J"] {
        let case = with(blincyto_initial(), &[("request.hcpcs", json!(code))]);
        assert_rejected_naming(&case, "request.hcpcs");
    }
}

#[test]
fn eocco_denies_diagnosis_codes_outside_appendix_1() {
    for codes in [json!(["C92.00"]), json!(["C92.00", "C83.30"])] {
        let case = with(blincyto_initial(), &[("diagnosis.icd10", codes.clone())]);
        let report = decide(&case);
        let result = result(&report, EOCCO);
        assert_eq!(result["outcome"], "deny", "{codes}\n{result:#}");
        assert!(result["pathway"].is_null());
        assert!(result["quantity"].is_null());
        assert!(result["authorization"].is_null());
        let covered = reason(result, "covered-diagnosis-codes");
        assert_eq!(covered["status"], "not_met");
        assert!(
            covered["criterion"].as_str().unwrap().contains("C92.00"),
            "{covered:#}"
        );
        // The other policies list no codes: their decisions stand.
        for policy in [BCBSNC, EVOLENT, EXPRESS_SCRIPTS, MASSHEALTH] {
            assert_eq!(outcome(&report, policy), "approve", "{policy}");
        }
    }
    // One covered code among others is covered.
    let case = with(
        blincyto_initial(),
        &[("diagnosis.icd10", json!(["C92.00", "C91.02"]))],
    );
    assert_eq!(outcome(&decide(&case), EOCCO), "approve");
    // The same with a renewal: codes are checked whatever the kind.
    let case = with(
        blincyto_renewal(),
        &[("diagnosis.icd10", json!(["C92.00"]))],
    );
    let report = decide(&case);
    assert_eq!(outcome(&report, EOCCO), "deny");
    assert!(reason_ids(result(&report, EOCCO)).contains(&"covered-diagnosis-codes"));
}

// ---- Implausible values ----

#[test]
fn implausible_values_are_bad_input_naming_their_key() {
    let cases: Vec<(&str, Value)> = vec![
        ("patient.height_cm", json!(1e-320)),
        ("patient.height_cm", json!(1e308)),
        ("patient.height_cm", json!(19.9)),
        ("patient.height_cm", json!(301)),
        ("patient.height_cm", json!(-168)),
        ("patient.weight_kg", json!(5000)),
        ("patient.weight_kg", json!(1e-320)),
        ("patient.weight_kg", json!(0.29)),
        ("patient.weight_kg", json!(0)),
        ("patient.birth_date", json!("0001-01-01")),
        ("patient.birth_date", json!("1800-01-01")),
        ("patient.birth_date", json!("1899-12-31")),
        ("patient.birth_date", json!("2026-05-19")),
        ("request.dose.value", json!(1e-300)),
        ("request.dose.value", json!(1e300)),
        ("request.dose.value", json!(0)),
        ("request.dose.value", json!(301)),
        ("request.units", json!(100_001)),
        ("request.units", json!(4_294_967_296u64)),
        ("request.units", json!(u64::MAX)),
        ("request.units", json!(-1)),
        ("request.units", json!(1.5)),
        ("request.units_period_days", json!(0)),
        ("request.units_period_days", json!(367)),
        ("request.units_period_days", json!(4_294_967_295u64)),
        ("request.infusion_days", json!(0)),
        ("request.infusion_days", json!(43)),
        ("request.infusion_days", json!(4_294_967_295u64)),
        ("request.cycle_length_days", json!(367)),
        ("request.date", json!("1899-12-31")),
        ("request.date", json!("2200-01-01")),
        ("history.blinatumomab_cycles", json!(4_294_967_295u64)),
        ("history.prior_systemic_therapies", json!(101)),
    ];
    for (key, value) in cases {
        let case = with(blincyto_initial(), &[(key, value.clone())]);
        assert_rejected_naming(&case, key);
    }
    // A dose per m² too small to be one, for Besponsa.
    let case = with(besponsa_initial(), &[("request.dose.value", json!(1e-300))]);
    assert_rejected_naming(&case, "request.dose.value");
    let case = with(besponsa_initial(), &[("request.dose.value", json!(10.1))]);
    assert_rejected_naming(&case, "request.dose.value");
    // An earlier authorization from before 1900.
    let case = with(
        blincyto_renewal(),
        &[(
            "history.authorizations",
            json!([{"start": "1800-01-01", "end": "2026-05-10"}]),
        )],
    );
    assert_rejected_naming(&case, "history.authorizations[0].start");
}

// ---- Besponsa ----

#[test]
fn besponsa_units_beyond_the_body_surface_area_are_not_approved() {
    for units in [BESPONSA_CEILING + 1, 63, 99_999] {
        let case = with(besponsa_initial(), &[("request.units", json!(units))]);
        let report = decide(&case);
        let result = result(&report, MASSHEALTH);
        assert_eq!(result["outcome"], "deny", "{units}\n{result:#}");
        assert!(result["quantity"].is_null());
        let text = reason(result, "units-per-cycle")["criterion"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains(&format!("at most {BESPONSA_CEILING} billable units"))
                && text.contains(&format!("{units} requested")),
            "{text}"
        );
    }
    let case = with(
        besponsa_initial(),
        &[("request.units", json!(BESPONSA_CEILING))],
    );
    let quantity = approved(&decide(&case), MASSHEALTH).clone();
    assert_eq!(quantity["units"], BESPONSA_CEILING);
    assert_eq!(quantity["vials"], 6);
    assert_eq!(quantity["total_units"], 2 * BESPONSA_CEILING);
    // A heavier, taller patient has a larger ceiling: never more than the label's doses.
    // sqrt(190 x 120 / 3600) = 2.52 m²: 0.8 x 2.52 = 2.0 mg (3 vials), 0.5 x 2.52 = 1.3 mg
    // (2 vials) twice: 7 vials.
    let case = with(
        besponsa_initial(),
        &[
            ("patient.weight_kg", json!(120)),
            ("patient.height_cm", json!(190)),
            ("request.units", Value::Null),
        ],
    );
    let quantity = approved(&decide(&case), MASSHEALTH).clone();
    assert_eq!(quantity["units"], 7 * 9);
    assert_eq!(quantity["units_basis"], "policy_maximum");
}

/// Weight and height are declared, each within the largest recorded: together, 700 kg and
/// 300 cm made 7.64 m² and a ceiling of 17 vials a cycle (0.8 x 7.64 = 6.1 mg in 7 vials,
/// 0.5 x 7.64 = 3.8 mg in 5, twice), three times a large adult's. The area is counted at
/// most 3.0 m² (7 vials): what is asked beyond it goes the policy's way for a dose outside
/// its limits (MassHealth: a denial a clinician must confirm), saying why.
#[test]
fn besponsa_is_sized_on_at_most_3_square_metres_without_a_clinician() {
    // 700 kg and 300 cm asking `units` per cycle.
    let giant = |units: Value| {
        with(
            besponsa_initial(),
            &[
                ("patient.weight_kg", json!(700)),
                ("patient.height_cm", json!(300)),
                ("request.units", units),
            ],
        )
    };
    // Met: no units given, the ceiling at 3.0 m² (2.4 mg in 3 vials, 1.5 mg in 2, twice).
    let case = giant(Value::Null);
    let quantity = approved(&decide(&case), MASSHEALTH).clone();
    assert_eq!(quantity["units"], 7 * 9);
    // Within it: 7 vials asked are approved as asked.
    let case = giant(json!(63));
    assert_eq!(approved(&decide(&case), MASSHEALTH)["units"], 63);
    // Not met: the 17 vials the declared size would take, with the reason naming the area.
    let case = giant(json!(17 * 9));
    let report = decide(&case);
    let result = result(&report, MASSHEALTH);
    assert_eq!(result["outcome"], "deny", "{result:#}");
    assert!(result["quantity"].is_null());
    let text = reason(result, "units-per-cycle")["criterion"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("at most 63 billable units")
            && text.contains("at most 3.0 m², not the 7.64 m²"),
        "{text}"
    );
    // Unknown: without the height, the area is asked for, as for any patient.
    let case = with(
        without(besponsa_initial(), &["patient.height_cm"]),
        &[
            ("patient.weight_kg", json!(700)),
            ("request.units", json!(17 * 9)),
        ],
    );
    assert_eq!(outcome(&decide(&case), MASSHEALTH), "incomplete");
    // A patient of 3.37 m² needs no more vials than 3.0 m² gives: not bounded by it.
    let case = with(
        besponsa_initial(),
        &[
            ("patient.weight_kg", json!(227)),
            ("patient.height_cm", json!(180)),
            ("request.units", json!(63)),
        ],
    );
    assert_eq!(approved(&decide(&case), MASSHEALTH)["units"], 63);
}

#[test]
fn besponsa_without_height_asks_for_it() {
    for units in [json!(BESPONSA_CEILING + 1), json!(14), Value::Null] {
        let case = with(
            without(besponsa_initial(), &["patient.height_cm"]),
            &[("request.units", units.clone())],
        );
        let report = decide(&case);
        let result = result(&report, MASSHEALTH);
        assert_eq!(result["outcome"], "incomplete", "{units}\n{result:#}");
        assert!(result["quantity"].is_null());
        let missing: Vec<&str> = result["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert!(missing.contains(&"patient.height_cm"), "{missing:?}");
    }
}

#[test]
fn besponsa_cycles_beyond_the_label_course_are_cut_to_6() {
    let case = with(besponsa_initial(), &[("request.cycles", json!(9))]);
    let report = decide(&case);
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["cycles"], 6);
    assert_eq!(quantity["requested_cycles"], 9);
    assert_eq!(quantity["total_units"], 6 * 14);
    // A course position past the label's 6 cycles leaves nothing.
    let case = with(besponsa_initial(), &[("request.first_cycle", json!(7))]);
    assert_ne!(outcome(&decide(&case), MASSHEALTH), "approve");
}

// ---- The consistency of every approval ----

/// What the CLI prints for a batch: every approval's `total_units == units * cycles <=
/// ceiling.units_per_cycle * ceiling.cycles`, over a grid of requests built from each base
/// case. (`decide` checks it on every report.)
#[test]
fn every_approval_is_within_its_ceilings() {
    // 0 units is bad input (a_units_of_0_is_bad_input).
    let units_grid = [1, 54, 55, 490, 979, 980, 981, 1960, 99_999].map(|n| json!(n));
    let periods = [1, 3, 21, 28, 42, 84, 366].map(|n| json!(n));
    let cycles_grid = [1, 2, 5, 6, 9, 24].map(|n| json!(n));
    let mut approvals = 0;
    for base in [blincyto_initial(), blincyto_renewal(), besponsa_initial()] {
        for units in units_grid.iter().chain([&Value::Null]) {
            for period in periods.iter().chain([&Value::Null]) {
                for cycles in cycles_grid.iter().chain([&Value::Null]) {
                    let case = with(
                        base.clone(),
                        &[
                            ("request.units", units.clone()),
                            ("request.units_period_days", period.clone()),
                            ("request.cycles", cycles.clone()),
                        ],
                    );
                    let report = decide(&case);
                    approvals += report["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| r["outcome"] == "approve")
                        .count();
                }
            }
        }
    }
    assert!(approvals > 1000, "{approvals}");
}

#[test]
fn a_units_of_0_is_bad_input() {
    let mut case = blincyto_initial();
    case["request"]["units"] = json!(0);
    let error = engine().parse_case(&case.to_string()).unwrap_err();
    assert_eq!(error.problems[0].key, "request.units");
}

#[test]
fn a_short_cycle_holds_no_more_infusion_days_than_it_has_days() {
    // One-day cycles without infusion days: at most one vial a cycle, not 28.
    let case = without(
        with(
            blincyto_initial(),
            &[
                ("request.cycle_length_days", json!(1)),
                ("request.cycles", json!(9)),
                ("request.units", json!(980)),
            ],
        ),
        &["request.infusion_days", "request.units_period_days"],
    );
    let report = decide(&case);
    for result in report["results"].as_array().unwrap() {
        assert_ne!(result["outcome"], "approve", "{result}");
    }
    let case = without(
        with(
            blincyto_initial(),
            &[
                ("request.cycle_length_days", json!(1)),
                ("request.cycles", json!(9)),
            ],
        ),
        &[
            "request.infusion_days",
            "request.units_period_days",
            "request.units",
        ],
    );
    let report = decide(&case);
    for result in report["results"].as_array().unwrap() {
        if result["outcome"] == "approve" {
            assert!(
                result["quantity"]["units"].as_u64().unwrap() <= 35,
                "{result}"
            );
        }
    }
}

#[test]
fn a_renewal_cannot_restart_the_course() {
    let mut case = blincyto_renewal();
    case["request"]["first_cycle"] = json!(1);
    remove(&mut case, "history.blinatumomab_cycles");
    remove(&mut case, "history.blinatumomab_continued_cycles");
    let error = engine().parse_case(&case.to_string()).unwrap_err();
    assert_eq!(error.problems[0].key, "request.first_cycle");
}

#[test]
fn a_first_remission_after_induction_is_not_a_relapsed_course() {
    let mut case = blincyto_initial();
    case["request"]["setting"] = json!("relapsed_refractory");
    case["diagnosis"]["disease_status"] = json!("complete_remission");
    case["diagnosis"]["remission_number"] = json!(1);
    case["diagnosis"]["complete_response_to_induction"] = json!(true);
    let error = engine().parse_case(&case.to_string()).unwrap_err();
    assert_eq!(error.problems[0].key, "request.setting");
}

#[test]
fn a_case_is_an_object() {
    for text in ["[]", "[null, null]", "3", "\"case\""] {
        assert!(engine().parse_case(text).is_err(), "{text}");
    }
}

#[test]
fn cycles_declared_shorter_than_the_labels_are_counted_at_the_labels_length() {
    // Blincyto's cycles are 28 days of infusion and 14 treatment-free: 28-day cycles back to
    // back fit five 42-day cycles in MassHealth's 6 months, not seven.
    let mut short = blincyto_initial();
    short["request"]["cycle_length_days"] = json!(28);
    short["request"]["cycles"] = json!(9);
    let report = decide(&short);
    let quantity = result(&report, MASSHEALTH)["quantity"].clone();
    assert_eq!(quantity["ceiling"]["cycles"], 5, "{quantity}");
    assert!(quantity["cycles"].as_u64().unwrap() <= 5, "{quantity}");
    // At the label's length or longer, the request's own cycle counts (met as before).
    for (length, cycles) in [(42, 5), (84, 3)] {
        let mut case = blincyto_initial();
        case["request"]["cycle_length_days"] = json!(length);
        case["request"]["cycles"] = json!(9);
        let report = decide(&case);
        assert_eq!(
            result(&report, MASSHEALTH)["quantity"]["ceiling"]["cycles"],
            cycles,
            "{length}-day cycles"
        );
    }
}

#[test]
fn only_the_cycles_that_start_within_the_period_are_counted() {
    // MassHealth's 6 months from 2026-12-05 end on 2027-06-04: 182 days. Cycles of 46 days
    // start on days 1, 47, 93 and 139 (four; a fifth would start on day 185), and of 37 days
    // on days 1 to 149 (five).
    let received = Date::parse("2026-12-05");
    for (length, cycles) in [(46, 4), (37, 5), (42, 5)] {
        let mut case = blincyto_initial();
        case["request"]["date"] = json!("2026-12-04");
        case["request"]["cycle_length_days"] = json!(length);
        case["request"]["cycles"] = json!(9);
        let report = decide_received(&case, received);
        assert_eq!(
            result(&report, MASSHEALTH)["quantity"]["ceiling"]["cycles"],
            cycles,
            "{length}-day cycles"
        );
    }
}

// ---- Frontline courses, renewals with nothing to renew, cycles without their break ----

/// Adult Ph-negative B-ALL in a first remission after induction, MRD-positive, Blincyto as
/// consolidation from cycle 1, no cycles asked: the label's course for it is 4 cycles.
fn blincyto_frontline_mrd() -> Value {
    with(
        blincyto_initial(),
        &[
            ("request.phase", json!("consolidation")),
            ("diagnosis.disease_status", json!("complete_remission")),
            ("diagnosis.remission_number", json!(1)),
            ("diagnosis.complete_response_to_induction", json!(true)),
            ("diagnosis.mrd_status", json!("positive")),
            ("diagnosis.mrd_percent", json!(0.8)),
            ("diagnosis.mrd_method", json!("flow_cytometry")),
        ],
    )
}

#[test]
fn a_frontline_course_is_never_sized_on_the_relapsed_course() {
    // Asked for 9 cycles, or for none (the policy's most): never more than the label's 4.
    for cycles in [Some(9), None] {
        let case = match cycles {
            Some(n) => with(blincyto_frontline_mrd(), &[("request.cycles", json!(n))]),
            None => without(blincyto_frontline_mrd(), &["request.cycles"]),
        };
        let report = decide(&case);
        for policy in POLICIES {
            let result = result(&report, policy);
            if result["outcome"] == "approve" {
                assert!(
                    result["quantity"]["cycles"].as_u64().unwrap() <= 4,
                    "{policy} {cycles:?}: {result:#}"
                );
            }
        }
        // Express Scripts (12 months) and MassHealth (6 months) approve this course.
        assert_eq!(approved(&report, EXPRESS_SCRIPTS)["cycles"], 4);
        assert_eq!(approved(&report, MASSHEALTH)["cycles"], 4);
    }
}

#[test]
fn a_frontline_course_is_not_renewed_as_continued_therapy() {
    // EOCCO renews relapsed or refractory disease only: "Adult Acute Lymphoblastic Leukemia –
    // Consolidation therapy • Coverage may not be renewed". Continued-therapy cycles asked
    // for an MRD-positive consolidation course, whichever way the course is documented.
    let renewal = with(
        blincyto_renewal(),
        &[
            ("diagnosis.disease_status", json!("complete_remission")),
            ("history.response", json!("response")),
        ],
    );
    for documented in [
        vec![("request.setting", json!("frontline"))],
        vec![("request.phase", json!("consolidation"))],
        vec![
            ("diagnosis.remission_number", json!(1)),
            ("diagnosis.complete_response_to_induction", json!(true)),
        ],
    ] {
        let case = with(renewal.clone(), &documented);
        let report = decide(&case);
        assert_eq!(outcome(&report, EOCCO), "deny", "{documented:?}");
        assert_eq!(
            reason(result(&report, EOCCO), "not-a-frontline-course")["status"],
            "not_met",
            "{documented:?}"
        );
    }
    // In a second remission with nothing documenting a frontline course: continued therapy.
    let second = with(renewal, &[("diagnosis.remission_number", json!(2))]);
    assert_eq!(outcome(&decide(&second), EOCCO), "approve");
}

#[test]
fn a_renewal_needs_an_authorization_to_renew() {
    // No authorization, or none in the current course (the last ended over 90 days before):
    // the renewal's criteria leave out the initial's prerequisites, so it must not pass.
    for authorizations in [
        json!([]),
        json!([{"start": "2025-06-01", "end": "2026-01-31", "renewal": false}]),
    ] {
        let case = with(
            blincyto_renewal(),
            &[("history.authorizations", authorizations.clone())],
        );
        let report = decide(&case);
        assert_eq!(outcome(&report, EOCCO), "deny", "{authorizations}");
        assert_eq!(
            reason(result(&report, EOCCO), "authorized-in-current-course")["status"],
            "not_met"
        );
    }
}

#[test]
fn units_are_spent_no_faster_than_the_labels_cycle() {
    // 28-day cycles with no treatment-free days: each cycle's 980 units are answered over
    // 42 days, the label's shortest, not every 28.
    let case = with(
        blincyto_initial(),
        &[
            ("request.cycle_length_days", json!(28)),
            ("request.units_period_days", json!(28)),
        ],
    );
    let report = decide(&case);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert_eq!(
                result["quantity"]["period_days"], 42,
                "{policy}: {result:#}"
            );
        }
    }
    // Continued therapy (cycles 6-9) declared at 42 days is spent over 84.
    let continued = with(
        blincyto_renewal(),
        &[
            ("request.cycle_length_days", json!(42)),
            ("request.units_period_days", json!(42)),
        ],
    );
    let report = decide(&continued);
    for policy in POLICIES {
        let result = result(&report, policy);
        if result["outcome"] == "approve" {
            assert_eq!(
                result["quantity"]["period_days"], 84,
                "{policy}: {result:#}"
            );
        }
    }
}

#[test]
fn a_request_past_the_labels_course_is_refused_naming_it() {
    // A fifth cycle of a frontline course, every criterion met otherwise: no approval, and the
    // reason says why (not a criterion of another pathway).
    let case = with(
        blincyto_frontline_mrd(),
        &[
            ("request.kind", json!("renewal")),
            ("request.first_cycle", json!(5)),
            ("history.blinatumomab_cycles", json!(4)),
            ("history.unacceptable_toxicity", json!(false)),
            ("history.response", json!("response")),
            (
                "history.authorizations",
                json!([{"start": "2025-12-01", "end": "2026-05-10", "renewal": false}]),
            ),
        ],
    );
    let report = decide(&case);
    for policy in [MASSHEALTH, EXPRESS_SCRIPTS] {
        let result = result(&report, policy);
        assert_ne!(result["outcome"], "approve", "{policy}: {result:#}");
        assert!(
            reason_ids(result).contains(&"label-course-spent"),
            "{policy}: {result:#}"
        );
    }
    // A recommended denial says it first.
    assert_eq!(
        result(&report, MASSHEALTH)["reasons"][0]["id"],
        "label-course-spent"
    );
}

#[test]
fn a_besponsa_cycle_of_fewer_dose_days_holds_only_their_doses() {
    // One dose day a cycle (day 1, 0.8 mg/m² of 1.82 m²: 1.46 mg, 2 vials of 0.9 mg): the
    // ceiling is that dose's 18 units, not the three doses' 54, as Blincyto's units follow its
    // infusion days.
    let one_day = with(besponsa_initial(), &[("request.infusion_days", json!(1))]);
    let report = decide(&without(one_day.clone(), &["request.units"]));
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["units"], 18, "{quantity:#}");
    assert_eq!(quantity["ceiling"]["units_per_cycle"], 18, "{quantity:#}");
    // Asking the three doses' units for one dose day is beyond it.
    let report = decide(&with(one_day, &[("request.units", json!(54))]));
    assert_ne!(outcome(&report, MASSHEALTH), "approve");
}

#[test]
fn besponsa_units_given_a_week_are_read_as_that_weeks_dose() {
    // Besponsa is given on days 1, 8 and 15: 9 units over 7 days are one dose's (0.5 mg/m²
    // of 1.7 m²: one 0.9 mg vial), so a cycle of three doses asks 27, not 9 (read as the
    // cycle's, a plain approval of a third of the regimen).
    let weekly = with(
        besponsa_initial(),
        &[
            ("request.dose", json!({"value": 0.5, "unit": "mg/m2"})),
            ("request.units", json!(9)),
            ("request.units_period_days", json!(7)),
        ],
    );
    let report = decide(&weekly);
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["units"], 27, "{quantity:#}");
    // Two weeks hold two doses: 18 units are the cycle's 27.
    let fortnight = with(
        weekly.clone(),
        &[
            ("request.units", json!(18)),
            ("request.units_period_days", json!(14)),
        ],
    );
    let report = decide(&fortnight);
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["units"], 27, "{quantity:#}");
    // Three weeks hold all three: the units as given.
    let cycle = with(
        weekly,
        &[
            ("request.units", json!(27)),
            ("request.units_period_days", json!(21)),
        ],
    );
    let report = decide(&cycle);
    let quantity = approved(&report, MASSHEALTH);
    assert_eq!(quantity["units"], 27, "{quantity:#}");
}
