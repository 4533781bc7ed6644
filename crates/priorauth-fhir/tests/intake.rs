//! FHIR data to case facts, by the mapping tables, and the DTR forms' round trip: every
//! fact of every example case written as questionnaire answers reads back as the same fact.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhirbolt::model::r4::Resource;
use priorauth_core::Engine;
use priorauth_fhir::intake::{CaseBuilder, Resources};
use priorauth_fhir::map::{BUNDLED, Map};
use priorauth_fhir::questionnaire::{self, Canonical};
use serde_json::{Value, json};

fn setup() -> (Engine, Map) {
    let engine = Engine::bundled().unwrap();
    let map = Map::load(BUNDLED, &engine).unwrap();
    (engine, map)
}

fn resource(value: Value) -> Resource {
    priorauth_fhir::parse(&value.to_string()).unwrap()
}

/// The case a set of resources gives.
fn case_of(resources: Vec<Value>) -> (Value, Vec<priorauth_fhir::Problem>) {
    let (engine, map) = setup();
    let mut all = Resources::default();
    for r in resources {
        all.add(None, resource(r));
    }
    let mut builder = CaseBuilder::new(&map, &engine);
    builder.records(&all);
    for r in all.iter() {
        match r {
            Resource::MedicationRequest(order) => builder.medication_request(order, &all),
            Resource::PractitionerRole(role) => builder.practitioner_role(role),
            Resource::QuestionnaireResponse(qr) => builder.answers(qr),
            _ => {}
        }
    }
    (builder.case(), builder.problems)
}

fn observation(loinc: &str, value: Value, date: &str) -> Value {
    let mut o = json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]}, "effectiveDateTime": date});
    let key = if value.get("coding").is_some() {
        "valueCodeableConcept"
    } else {
        "valueQuantity"
    };
    o[key] = value;
    o
}

#[test]
fn order_codes_name_the_drug_in_every_system() {
    let (_, map) = setup();
    let hcpcs = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets";
    assert_eq!(map.drug_of(hcpcs, "J9039"), Some("blinatumomab"));
    assert_eq!(
        map.drug_of(&hcpcs.replace("http:", "https:"), "j9039"),
        Some("blinatumomab")
    );
    assert_eq!(map.drug_of(hcpcs, "J9229"), Some("inotuzumab_ozogamicin"));
    assert_eq!(
        map.drug_of("http://www.nlm.nih.gov/research/umls/rxnorm", "1597262"),
        Some("blinatumomab")
    );
    // NDCs match whatever their hyphens.
    assert_eq!(
        map.drug_of("http://hl7.org/fhir/sid/ndc", "55513016001"),
        Some("blinatumomab")
    );
    assert_eq!(
        map.drug_of("http://hl7.org/fhir/sid/ndc", "0008-0100-01"),
        Some("inotuzumab_ozogamicin")
    );
    assert_eq!(map.drug_of(hcpcs, "J9999"), None);
    assert_eq!(map.drug_of("http://snomed.info/sct", "J9039"), None);
}

#[test]
fn observations_give_weight_height_and_philadelphia_status_in_the_cases_units() {
    let (case, problems) = case_of(vec![
        observation(
            "29463-7",
            json!({"value": 154.3, "unit": "lb", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}),
            "2026-05-01",
        ),
        observation(
            "8302-2",
            json!({"value": 66, "unit": "in", "system": "http://unitsofmeasure.org", "code": "[in_i]"}),
            "2026-05-01",
        ),
        observation(
            "21823-0",
            json!({"coding": [{"system": "http://loinc.org", "code": "LA6577-6"}]}),
            "2026-05-01",
        ),
        observation(
            "67128-9",
            json!({"value": 0.4, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}),
            "2026-05-01",
        ),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(case["patient"]["weight_kg"], json!(69.989));
    assert_eq!(case["patient"]["height_cm"], json!(167.64));
    assert_eq!(case["diagnosis"]["ph_status"], "negative");
    assert_eq!(case["diagnosis"]["mrd_percent"], json!(0.4));
    assert_eq!(case["diagnosis"]["mrd_method"], "flow_cytometry");
    // The MRD status is never derived from the percentage.
    assert!(case["diagnosis"].get("mrd_status").is_none());
}

#[test]
fn the_newest_final_observation_wins_and_others_are_ignored() {
    let kg = |v: f64| json!({"value": v, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"});
    let mut preliminary = observation("29463-7", kg(90.0), "2026-06-01");
    preliminary["status"] = json!("preliminary");
    let (case, _) = case_of(vec![
        observation("29463-7", kg(70.0), "2026-05-01"),
        observation("29463-7", kg(72.0), "2026-05-10"),
        observation("29463-7", kg(60.0), "2026-01-01"),
        preliminary,
    ]);
    assert_eq!(case["patient"]["weight_kg"], json!(72.0));
}

#[test]
fn an_observation_in_an_unknown_unit_is_a_problem_not_a_fact() {
    let (case, problems) = case_of(vec![observation(
        "29463-7",
        json!({"value": 70, "unit": "stone", "system": "http://unitsofmeasure.org", "code": "[stone_av]"}),
        "2026-05-01",
    )]);
    assert!(case.get("patient").is_none());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("[stone_av]"), "{problems:?}");
}

#[test]
fn diagnosis_codes_state_condition_and_status_only_where_the_code_says_it() {
    let condition = |code: &str, status: &str| {
        json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]}})
    };
    let (case, _) = case_of(vec![condition("C91.02", "active")]);
    assert_eq!(
        case["diagnosis"]["condition"],
        "acute_lymphoblastic_leukemia"
    );
    assert_eq!(case["diagnosis"]["disease_status"], "relapsed");
    assert_eq!(case["diagnosis"]["icd10"], json!(["C91.02"]));
    // Not achieved remission: new or refractory, so no status.
    let (case, _) = case_of(vec![condition("C91.00", "active")]);
    assert_eq!(
        case["diagnosis"]["condition"],
        "acute_lymphoblastic_leukemia"
    );
    assert!(case["diagnosis"].get("disease_status").is_none());
    let (case, _) = case_of(vec![condition("C83.5A", "active")]);
    assert_eq!(case["diagnosis"]["condition"], "lymphoblastic_lymphoma");
    // A resolved condition says nothing now; an unmapped code only lists itself.
    let (case, _) = case_of(vec![condition("C91.02", "resolved")]);
    assert!(case.get("diagnosis").is_none());
    let (case, _) = case_of(vec![condition("C50.911", "active")]);
    assert!(case["diagnosis"].get("condition").is_none());
    assert_eq!(case["diagnosis"]["icd10"], json!(["C50.911"]));
}

#[test]
fn a_nucc_taxonomy_gives_the_specialty_and_any_other_code_is_other() {
    let role = |code: &str| json!({"resourceType": "PractitionerRole", "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": code}]}]});
    assert_eq!(
        case_of(vec![role("207RH0000X")]).0["prescriber"]["specialty"],
        "hematology"
    );
    assert_eq!(
        case_of(vec![role("2080P0207X")]).0["prescriber"]["specialty"],
        "pediatric_hematology_oncology"
    );
    // A hematopathologist (207ZH0000X) is not a prescribing hematologist.
    assert_eq!(
        case_of(vec![role("207ZH0000X")]).0["prescriber"]["specialty"],
        "other"
    );
    assert!(
        case_of(vec![json!({"resourceType": "PractitionerRole"})])
            .0
            .get("prescriber")
            .is_none()
    );
}

#[test]
fn an_order_gives_drug_code_dose_and_date() {
    let (case, problems) = case_of(vec![
        json!({"resourceType": "MedicationRequest", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"}]},
        "authoredOn": "2026-05-01",
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-05-18"}}},
            "doseAndRate": [{"doseQuantity": {"value": 15, "system": "http://unitsofmeasure.org", "code": "ug/(m2.d)"}}]}]}),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(case["request"]["drug"], "blinatumomab");
    assert_eq!(case["request"]["hcpcs"], "J9039");
    assert_eq!(case["request"]["date"], "2026-05-18");
    assert_eq!(
        case["request"]["dose"],
        json!({"value": 15.0, "unit": "mcg/m2/day"})
    );
    // A dose in a unit the tables do not know is a problem naming the element.
    let (_, problems) = case_of(vec![
        json!({"resourceType": "MedicationRequest", "status": "draft", "intent": "order", "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"}]},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 15, "system": "http://unitsofmeasure.org", "code": "mg"}}]}]}),
    ]);
    assert!(
        problems.iter().any(|p| p.path.contains("doseQuantity")),
        "{problems:?}"
    );
}

#[test]
fn hostile_fhir_is_refused_naming_where_and_never_panics() {
    // fhirbolt 0.4 panics on empty arrays: they are refused first.
    let error = priorauth_fhir::parse(r#"{"resourceType":"Patient","name":[]}"#).unwrap_err();
    assert_eq!(error.path, "Patient.name");
    let error = priorauth_fhir::parse(r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","identifier":[]}}]}"#).unwrap_err();
    assert_eq!(error.path, "Bundle.entry[0].resource.identifier");
    assert!(priorauth_fhir::parse(r#"{"resourceType":"Patient","birthDate":12}"#).is_err());
    assert!(priorauth_fhir::parse(r#"{"resourceType":"Patient","unknownElement":true}"#).is_err());
    assert!(priorauth_fhir::parse(r#"{"resourceType":"NoSuchType"}"#).is_err());
    assert!(priorauth_fhir::parse("not json").is_err());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(priorauth_fhir::parse(&deep).is_err());
    // A PAS Bundle must be a collection with an identifier and the Claim first.
    let problems = priorauth_fhir::pas::read_request(r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"}}]}"#).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Bundle.type",
            "Bundle.identifier",
            "Bundle.entry[0].resource"
        ]
    );
}

#[test]
fn every_fact_of_every_example_case_survives_the_questionnaire_round_trip() {
    let (engine, map) = setup();
    let canonical = Canonical {
        base: "http://payer.example/fhir".into(),
    };
    let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases");
    let mut checked = 0;
    for entry in std::fs::read_dir(&cases).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with('E') {
            continue;
        }
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut items = Vec::new();
        for question in priorauth_core::questions::all(&engine) {
            if let Some(value) = questionnaire::case_value(&case, question.key) {
                items.extend(questionnaire::answer_items(
                    &question, value, &canonical, &map,
                ));
            }
        }
        let response = resource(
            json!({"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}),
        );
        let Resource::QuestionnaireResponse(response) = response else {
            panic!()
        };
        let mut builder = CaseBuilder::new(&map, &engine);
        builder.answers(&response);
        assert!(
            builder.problems.is_empty(),
            "{name}: {:?}",
            builder.problems
        );
        let back = builder.case();
        for question in priorauth_core::questions::all(&engine) {
            let original = questionnaire::case_value(&case, question.key);
            let read = questionnaire::case_value(&back, question.key);
            let same = match (original, read) {
                (Some(a), Some(b)) if a.is_number() => a.as_f64() == b.as_f64(),
                (Some(a), Some(b)) if question.key == "request.dose" => {
                    a["value"].as_f64() == b["value"].as_f64() && a["unit"] == b["unit"]
                }
                (a, b) => a == b,
            };
            assert!(
                same,
                "{name} {}: {original:?} came back as {read:?}",
                question.key
            );
            checked += usize::from(original.is_some());
        }
        // The case read back decides as the original does.
        let decide = |c: &Value| {
            let case = engine.parse_case(&c.to_string()).unwrap();
            engine
                .evaluate(&case, &[])
                .decisions
                .iter()
                .map(|(_, d)| d.outcome)
                .collect::<Vec<_>>()
        };
        let mut with_history = back.clone();
        with_history["history"]["authorizations"] = case["history"]["authorizations"].clone();
        if with_history["history"]["authorizations"].is_null() {
            with_history["history"]
                .as_object_mut()
                .unwrap()
                .remove("authorizations");
        }
        assert_eq!(decide(&case), decide(&with_history), "{name}");
    }
    assert!(checked > 200, "only {checked} facts checked");
}

#[test]
fn each_policys_questionnaire_asks_only_case_keys_and_its_conditions_point_at_its_questions() {
    // Case keys, and the facts the policy declares in data (facts.toml), by name.
    let (engine, map) = setup();
    let canonical = Canonical {
        base: "http://payer.example/fhir".into(),
    };
    for &index in engine.current() {
        let policy = &engine.policies[index];
        let form = questionnaire::questionnaire(&engine, policy, &canonical, &map);
        let items = form["item"].as_array().unwrap();
        let links: Vec<&str> = items
            .iter()
            .map(|i| i["linkId"].as_str().unwrap())
            .collect();
        assert!(!links.is_empty());
        for item in items {
            let link = item["linkId"].as_str().unwrap();
            let declared = policy.declared.iter().any(|id| id.def().name == link);
            assert!(
                questionnaire::is_case_key(link) || declared || link == "history.tkis.tried",
                "{}: {link}",
                policy.id
            );
            for condition in item["enableWhen"].as_array().into_iter().flatten() {
                let on = condition["question"].as_str().unwrap();
                assert!(
                    links.contains(&on) || on == "history.tkis.tried",
                    "{}: {link} depends on {on}, not in the form",
                    policy.id
                );
            }
        }
        // The policy's line of business comes from the plan; the drug and kind are asked.
        assert!(
            links.contains(&"request.drug") && links.contains(&"request.kind"),
            "{}",
            policy.id
        );
    }
}

/// Answers keyed by a renamed case key (forms generated before the rename) count under the
/// new name, and declared facts go in the case's `facts` object.
#[test]
fn answers_to_renamed_keys_and_declared_facts_reach_the_case() {
    let (case, problems) = case_of(vec![json!({
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "item": [
            {"linkId": "history.blinatumomab_cycles", "answer": [{"valueInteger": 2}]},
            {"linkId": "request.infusion_days", "answer": [{"valueInteger": 3}]},
            {"linkId": "labs.qtc_ms", "answer": [{"valueDecimal": 452.5}]},
            {"linkId": "labs.liver_tests_date", "answer": [{"valueDate": "2026-05-01"}]},
            {"linkId": "diagnosis.cd22_method", "answer": [{"valueCoding": {"code": "flow_cytometry"}}]}
        ]
    })]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(case["history"]["cycles_given"], json!(2), "{case}");
    assert_eq!(case["request"]["dose_days"], json!(3), "{case}");
    assert_eq!(case["facts"]["labs.qtc_ms"], json!(452.5), "{case}");
    assert_eq!(
        case["facts"]["labs.liver_tests_date"],
        json!("2026-05-01"),
        "{case}"
    );
    assert_eq!(
        case["facts"]["diagnosis.cd22_method"],
        json!("flow_cytometry"),
        "{case}"
    );
    let (engine, _) = setup();
    engine.parse_case(&case.to_string()).unwrap();
}
