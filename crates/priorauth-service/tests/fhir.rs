//! The Da Vinci interfaces driven over HTTP as an EHR uses them: the official PAS examples,
//! the example cases as PAS request Bundles (same outcomes as the case files), CRD, DTR
//! (whole and adaptive), subscriptions and notifications. Every resource the service emits
//! here is kept and, at the end, checked by an independent FHIR R4 validator
//! (`tests/fhir/validate.py`, the `fhir.resources` package).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

use priorauth_service::keys::Role;
use serde_json::{Value, json};
use support::{Server, emitted_dir, for_each_backend, keep, validate};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

fn review_action(bundle: &Value) -> String {
    let response = &bundle["entry"][0]["resource"];
    assert_eq!(response["resourceType"], "ClaimResponse", "{bundle}");
    let action = &response["item"][0]["adjudication"][0]["extension"][0];
    assert!(
        action["url"]
            .as_str()
            .unwrap()
            .ends_with("extension-reviewAction")
    );
    action["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .unwrap()
                .ends_with("extension-reviewActionCode")
        })
        .map(|e| {
            e["valueCodeableConcept"]["coding"][0]["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .expect("a review action code")
}

fn extension<'v>(list: &'v Value, url_end: &str) -> Option<&'v Value> {
    list.as_array()?
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(url_end)))
}

// ---- The case files as PAS request Bundles ----

const NUCC: [(&str, &str); 4] = [
    ("medical_oncology", "207RX0202X"),
    ("hematology", "207RH0000X"),
    ("hematology_oncology", "207RH0003X"),
    ("pediatric_hematology_oncology", "2080P0207X"),
];

/// A PAS request Bundle saying what a case says: the member (birth date), the coverage
/// (plan), the prescriber's role (NUCC specialty), diagnoses (ICD-10-CM), the drug item
/// (HCPCS, units, service period) and every other fact as a DTR questionnaire answer.
fn pas_bundle(
    case: &Value,
    plan: &str,
    identifier: &str,
    engine: &priorauth_core::Engine,
) -> Value {
    let map = priorauth_fhir::map::Map::load(priorauth_fhir::map::BUNDLED, engine).unwrap();
    let canonical = priorauth_fhir::questionnaire::Canonical {
        base: "http://payer.example/fhir".into(),
    };
    let request = &case["request"];
    let drug = request["drug"].as_str().unwrap();
    let hcpcs = map.hcpcs_of(drug).unwrap();
    // Structured facts travel in their resources; the rest as answers.
    let structured = [
        "request.drug",
        "request.hcpcs",
        "request.line_of_business",
        "patient.birth_date",
        "prescriber.specialty",
        "diagnosis.icd10",
        "request.units",
        "request.date",
        "request.units_period_days",
    ];
    let mut answers = Vec::new();
    for question in priorauth_core::questions::all(engine) {
        if structured.contains(&question.key) {
            continue;
        }
        if let Some(value) = priorauth_fhir::questionnaire::case_value(case, question.key) {
            answers.extend(priorauth_fhir::questionnaire::answer_items(
                &question, value, &canonical, &map,
            ));
        }
    }
    let mut item = json!({
        "sequence": 1,
        "category": {"coding": [{"system": "https://codesystem.x12.org/005010/1365", "code": "1", "display": "Medical Care"}]},
        "productOrService": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": hcpcs}]},
        "locationCodeableConcept": {"coding": [{"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": "11"}]},
        "extension": [{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType",
            "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1322", "code": if request["kind"] == "renewal" { "4" } else { "I" }}]}}],
    });
    if let Some(units) = request["units"].as_u64() {
        item["quantity"] = json!({"value": units});
    }
    if let Some(start) = request["date"].as_str() {
        let days = request["units_period_days"].as_i64().unwrap_or(1);
        let start_date = priorauth_core::date::Date::parse(start).unwrap();
        let end = priorauth_core::date::Date::from_epoch_days(
            start_date.days_since(priorauth_core::date::Date::parse("1970-01-01").unwrap()) + days
                - 1,
        )
        .unwrap();
        item["servicedPeriod"] = json!({"start": start, "end": end.to_string()});
    }
    let mut claim = json!({
        "resourceType": "Claim", "id": "claim",
        "identifier": [{"system": "urn:trnorg:1234567890", "value": identifier}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization",
        "patient": {"reference": "Patient/member"},
        "created": "2026-05-01T09:00:00Z",
        "insurer": {"reference": "Organization/payer"},
        "provider": {"reference": "PractitionerRole/prescriber"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "Coverage/coverage"}}],
        "supportingInfo": [{"sequence": 1, "category": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}]},
            "valueReference": {"reference": "QuestionnaireResponse/answers"}}],
        "item": [item],
    });
    if let Some(codes) = case["diagnosis"]["icd10"].as_array() {
        claim["diagnosis"] = json!(codes.iter().enumerate().map(|(i, c)| json!({"sequence": i + 1,
            "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c}]}})).collect::<Vec<_>>());
    }
    let mut patient = json!({"resourceType": "Patient", "id": "member", "name": [{"family": "Example", "given": ["Member"]}]});
    if let Some(birth) = case["patient"]["birth_date"].as_str() {
        patient["birthDate"] = json!(birth);
    }
    let mut role = json!({"resourceType": "PractitionerRole", "id": "prescriber", "practitioner": {"display": "Prescribing physician"}});
    if let Some(specialty) = case["prescriber"]["specialty"].as_str() {
        let code = NUCC
            .iter()
            .find(|(s, _)| *s == specialty)
            .map_or("207Q00000X", |(_, c)| c);
        role["specialty"] =
            json!([{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": code}]}]);
    }
    let entries = vec![
        claim,
        patient,
        json!({"resourceType": "Coverage", "id": "coverage", "status": "active", "beneficiary": {"reference": "Patient/member"},
            "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": plan}]}),
        json!({"resourceType": "Organization", "id": "payer", "name": "The payer"}),
        role,
        json!({"resourceType": "QuestionnaireResponse", "id": "answers", "status": "completed",
            "questionnaire": "http://payer.example/fhir/Questionnaire/answers", "subject": {"reference": "Patient/member"}, "item": answers}),
    ];
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{identifier}")},
        "type": "collection",
        "timestamp": "2026-05-01T09:00:00Z",
        "entry": entries.into_iter().map(|r| json!({"fullUrl": format!("http://ehr.example/fhir/{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()), "resource": r})).collect::<Vec<_>>(),
    })
}

/// A PAS response Bundle without the times it was made at.
fn without_times(bundle: &Value) -> Value {
    let mut bundle = bundle.clone();
    bundle["timestamp"] = Value::Null;
    for entry in bundle["entry"].as_array_mut().into_iter().flatten() {
        entry["resource"]["created"] = Value::Null;
    }
    bundle
}

/// The authorization a PAS response Bundle gives (its `preAuthRef`), as `/v1` reads it.
async fn authorization_of(server: &Server, key: &str, response: &Value) -> Value {
    let number = response["entry"][0]["resource"]["preAuthRef"]
        .as_str()
        .unwrap_or_else(|| panic!("no preAuthRef: {response}"));
    let authorization = server
        .get(&format!("/v1/authorizations/{number}"), key)
        .await;
    authorization.expect(200);
    authorization.body
}

/// The PAS review action an engine outcome gets before any clinician has looked.
fn action_of(outcome: &str) -> &'static str {
    if outcome == "approve" { "A1" } else { "A4" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_example_cases_give_the_same_outcomes_through_pas() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, key) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let expected = read(&repo().join("tests/cases/expected.json"));
        let plans = &server.state.service.plans.plans;
        let dir = emitted_dir("cases");
        let bundles_dir = repo().join("tests/fhir/cases");
        let mut compared = 0;
        for (name, expectation) in expected.as_object().unwrap() {
            // As recorded: the committed Bundles carry the case's own dates, years old
            // soon, as the guides' examples do. The service decides a FHIR submission on the
            // day it receives it (docs/case-format.md, Periods).
            let case = support::recorded_case(name);
            if case["history"]["authorizations"].is_array() {
                // A renewal's history comes from the service's own records through PAS (it
                // is tested in http.rs), not from what the requester states.
                continue;
            }
            let line = case["request"]["line_of_business"].as_str();
            for plan in plans
                .iter()
                .filter(|p| line.is_none_or(|l| l == p.line_of_business))
            {
                let drug = case["request"]["drug"].as_str().unwrap();
                let Some(policy) = plan.policies.get(drug) else {
                    continue;
                };
                let Some(expect) = expectation["expect"].get(policy) else {
                    continue;
                };
                let identifier = format!("{name}-{}", plan.id);
                let bundle = pas_bundle(&case, &plan.id, &identifier, &server.state.service.engine);
                let file = bundles_dir.join(format!("{identifier}.json"));
                if std::env::var("UPDATE_FHIR_BUNDLES").is_ok() {
                    let _ = std::fs::create_dir_all(&bundles_dir);
                    std::fs::write(&file, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
                }
                assert_eq!(
                    read(&file),
                    bundle,
                    "{} is not current: run with UPDATE_FHIR_BUNDLES=1",
                    file.display()
                );
                let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
                assert_eq!(reply.status, 200, "{identifier}: {}", reply.body);
                keep(&dir, &identifier, &reply.body);
                // A new request is answered from its decision in hand, a replay from the
                // stored record: the two answers are one, but for when each was made.
                let again = server.post("/fhir/Claim/$submit", &key, &bundle).await;
                assert_eq!(
                    without_times(&again.body),
                    without_times(&reply.body),
                    "{identifier}"
                );
                let want = expect["outcome"].as_str().unwrap();
                assert_eq!(
                    review_action(&reply.body),
                    action_of(want),
                    "{identifier}: {}",
                    reply.body
                );
                let request_id = reply.body["entry"][0]["resource"]["preAuthRef"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let record = if want == "approve" {
                    // The authorization number is the preAuthRef; the request is found by it.
                    let number = request_id.clone();
                    let authorization = server
                        .get(&format!("/v1/authorizations/{number}"), &key)
                        .await;
                    authorization.expect(200);
                    server
                        .get(
                            &format!(
                                "/v1/requests/{}",
                                authorization.body["request_id"].as_str().unwrap()
                            ),
                            &key,
                        )
                        .await
                } else {
                    server
                        .get(&format!("/v1/requests/{request_id}"), &key)
                        .await
                };
                record.expect(200);
                assert_eq!(
                    record.body["outcome"], want,
                    "{identifier}: {}",
                    record.body["decision"]
                );
                // The Bundle's service period starts on the case's own date, months before
                // receipt: the facts are dated on the day the service read them.
                assert_eq!(
                    record.body["case"]["request"]["date"],
                    support::days_after_receipt(0),
                    "{identifier}"
                );
                if want == "approve" {
                    let period = &reply.body["entry"][0]["resource"]["item"][0]["extension"];
                    let end = extension(period, "extension-itemPreAuthPeriod")
                        .map(|e| e["valuePeriod"]["end"].clone());
                    if expect["end"].is_string() {
                        // The same period as `evaluate` gives, started on the day of receipt,
                        // for the facts dated that day.
                        let engine = &server.state.service.engine;
                        let mut dated = case.clone();
                        dated["request"]["date"] = json!(support::days_after_receipt(0));
                        let parsed = engine.parse_case(&dated.to_string()).unwrap();
                        let index = engine.policy_index(policy).unwrap();
                        let received =
                            priorauth_core::date::Date::parse(&support::days_after_receipt(0));
                        let evaluation = engine
                            .evaluate_received(&parsed, &[index], received)
                            .unwrap();
                        let expected_end = evaluation.decisions[0]
                            .1
                            .authorization
                            .map(|(_, end)| json!(end.to_string()));
                        assert_eq!(end, expected_end, "{identifier}");
                    }
                    let detail = extension(period, "extension-itemAuthorizedDetail")
                        .expect("the authorized quantity");
                    assert!(extension(&detail["extension"], "quantity").is_some());
                }
                compared += 1;
            }
        }
        assert!(
            compared >= 15,
            "only {compared} case and plan pairs compared"
        );
        eprintln!("{compared} case and plan pairs decided through PAS as through evaluate");
        validate(&dir);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_pas_examples_get_well_formed_responses() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let dir = emitted_dir("examples");
        let examples = repo().join("tests/fhir/pas-examples");
        let mut answered = 0;
        for name in [
            "Bundle-HomecareAuthorizationBundleExample",
            "Bundle-MedicalServicesAuthorizationBundleExample",
            "Bundle-ReferralAuthorizationBundleExample",
            "Bundle-SurgicalRequestBundleExample",
        ] {
            // Each from its own submitter: the examples share a Bundle identifier.
            let (_, key) = server.key(name, Role::Submitter, "EHR", "").await;
            let bundle = read(&examples.join(format!("{name}.json")));
            let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
            assert_eq!(reply.status, 200, "{name}: {}", reply.body);
            // No policy here governs these services: pended for a clinician, never denied.
            assert_eq!(review_action(&reply.body), "A4", "{name}");
            assert_eq!(reply.body["type"], "collection");
            assert_eq!(reply.body["identifier"], bundle["identifier"]);
            keep(&dir, name, &reply.body);
            // A resubmission is idempotent; an inquiry finds the same request.
            let again = server.post("/fhir/Claim/$submit", &key, &bundle).await;
            assert_eq!(
                again.body["entry"][0]["resource"]["preAuthRef"],
                reply.body["entry"][0]["resource"]["preAuthRef"]
            );
            // The documents it sends are kept for the reviewer, once.
            let sent = documents_sent(&bundle);
            let listed = server.get("/v1/requests", &key).await;
            let id = listed.body["items"][0]["id"].as_str().unwrap();
            let request = server.get(&format!("/v1/requests/{id}"), &key).await;
            let files = request.body["attachments"].as_array().unwrap();
            assert_eq!(files.len(), sent, "{name}: {}", request.body["attachments"]);
            answered += 1;
        }
        let (_, key) = server
            .key(
                "Bundle-ReferralAuthorizationBundleExample",
                Role::Submitter,
                "EHR",
                "",
            )
            .await;
        let inquiry = read(&examples.join("Bundle-PASClaimInquiryBundleExample.json"));
        let reply = server.post("/fhir/Claim/$inquire", &key, &inquiry).await;
        keep(&dir, "inquiry", &reply.body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["resourceType"], "Parameters");
        // The guide's inquiry (trace number 111099, the same member) finds its Referral request.
        let found = reply.body["parameter"].as_array().map_or(0, Vec::len);
        assert_eq!(found, 1, "{}", reply.body);
        assert_eq!(
            review_action(&reply.body["parameter"][0]["resource"]),
            "A4",
            "{}",
            reply.body
        );
        // Not a request Bundle: an OperationOutcome naming where.
        let bad = server
            .post(
                "/fhir/Claim/$submit",
                &key,
                &json!({"resourceType": "Bundle", "type": "collection", "entry": []}),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body["resourceType"], "OperationOutcome");
        keep(&dir, "error", &bad.body);
        assert_eq!(answered, 4);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// How many documents with inline data a PAS request Bundle sends in `Claim.supportingInfo`.
fn documents_sent(bundle: &Value) -> usize {
    let claim = &bundle["entry"][0]["resource"];
    claim["supportingInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|info| {
            if info["valueAttachment"]["data"].is_string() {
                return 1;
            }
            let reference = info["valueReference"]["reference"].as_str().unwrap_or("#");
            priorauth_fhir::pas::find_entry(bundle, reference).map_or(0, |entry| {
                entry["resource"]["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["attachment"]["data"].is_string())
                    .count()
            })
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pas_request_keeps_its_documents_and_refuses_one_it_cannot_keep() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, reviewer) = server.key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology").await;
        let mut bundle = read(&repo().join("tests/fhir/pas-examples/Bundle-ReferralAuthorizationBundleExample.json"));
        assert_eq!(documents_sent(&bundle), 1, "the example sends its procedure note");
        // A PDF as an attachment beside the example's DocumentReference.
        let pdf = "JVBERi0xLjQKJSVFT0YK"; // "%PDF-1.4\n%%EOF\n"
        bundle["entry"][0]["resource"]["supportingInfo"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "sequence": 2,
                "category": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}]},
                "valueAttachment": {"contentType": "application/pdf", "data": pdf, "title": "Bone marrow report"}
            }));
        // The same PDF named twice is kept once.
        let twice = bundle["entry"][0]["resource"]["supportingInfo"][1].clone();
        bundle["entry"][0]["resource"]["supportingInfo"]
            .as_array_mut()
            .unwrap()
            .push(twice);
        let reply = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        // Its Bundle identifier sent again with another document is refused (a new
        // submission has a new identifier); nothing is added.
        let mut again = bundle.clone();
        again["entry"][0]["resource"]["supportingInfo"][2]["valueAttachment"]["data"] = json!("JVBERi0xLjcKJSVFT0YK");
        let replayed = server.post("/fhir/Claim/$submit", &ehr, &again).await;
        assert_eq!(replayed.status, 422, "{}", replayed.body);
        let listed = server.get("/v1/requests", &reviewer).await;
        let id = listed.body["items"][0]["id"].as_str().unwrap().to_string();
        let request = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        let files = request.body["attachments"].as_array().unwrap().clone();
        assert_eq!(files.len(), 2, "{}", request.body["attachments"]);
        assert_eq!(files[0]["content_type"], "text/plain");
        assert_eq!(files[1]["title"], "Bone marrow report");
        assert_eq!(files[1]["added_by"], "Clinic A EHR");
        let file = server.get(&format!("/v1/requests/{id}/attachments/2"), &reviewer).await;
        assert_eq!(file.status, 200);
        assert_eq!(file.body, json!("%PDF-1.4\n%%EOF\n"));

        // The reviewer asks for more in words; the EHR's inquiry gets PAS's Task with them.
        server
            .post(
                &format!("/v1/requests/{id}/information-request"),
                &reviewer,
                &json!({"questions": ["Send the operative report of the last procedure."], "answer_by": support::days_after_receipt(1)}),
            )
            .await
            .expect(200);
        let inquiry = server.post("/fhir/Claim/$inquire", &ehr, &bundle).await;
        assert_eq!(inquiry.status, 200, "{}", inquiry.body);
        let answer = &inquiry.body["parameter"][0]["resource"];
        let task = answer["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .find(|r| r["resourceType"] == "Task")
            .unwrap_or_else(|| panic!("no Task: {answer}"));
        assert_eq!(task["note"][0]["text"], "Send the operative report of the last procedure.");
        assert!(task["description"].as_str().unwrap().starts_with("The reviewer asks, by "));
        let dir = emitted_dir("documents");
        keep(&dir, "inquiry", &inquiry.body);
        validate(&dir);

        // A document it cannot keep (a Word file, or one that is not what it says) is refused
        // before anything is stored, naming it.
        let mut word = bundle.clone();
        word["identifier"]["value"] = json!("another-bundle");
        word["entry"][0]["resource"]["identifier"][0]["value"] = json!("another-claim");
        word["entry"][0]["resource"]["supportingInfo"][1]["valueAttachment"]["contentType"] = json!("application/msword");
        let refused = server.post("/fhir/Claim/$submit", &ehr, &word).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["resourceType"], "OperationOutcome");
        assert!(refused.body.to_string().contains("Claim.supportingInfo[1]"), "{}", refused.body);
        assert_eq!(server.count("requests").await, 1);
        server.stop().await;
    })
    .await;
}

/// A subscriber's endpoint: records every notification posted to it (the handshakes of its
/// subscription too).
async fn subscriber() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/notify"), receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ehr_goes_from_order_to_a_clinicians_decision() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, reviewer) = server.key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology").await;
        let dir = emitted_dir("ehr");
        let (endpoint, mut notifications) = subscriber().await;

        // The EHR subscribes to its organization's PAS results.
        let mut subscription = read(&repo().join("tests/fhir/pas-examples/Subscription-PASSubscriptionExample.json"));
        subscription["channel"]["endpoint"] = json!(endpoint);
        let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
        assert_eq!(created.status, 201, "{}", created.body);
        keep(&dir, "subscription", &created.body);
        // The endpoint is sent the handshake first, and answered it: the subscription is active.
        let handshake = notifications.recv().await.unwrap();
        assert!(support::is_handshake(&handshake), "{handshake}");
        keep(&dir, "handshake", &handshake);
        assert_eq!(created.body["status"], "active");

        // CRD: a Blincyto order for a member of the EOCCO plan, with what the chart holds.
        let coverage = json!({"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/pat"},
            "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "eocco-medicaid"}]});
        let order = json!({"resourceType": "MedicationRequest", "id": "blin", "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"}]},
            "subject": {"reference": "Patient/pat"}, "authoredOn": "2026-05-18",
            "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 28, "unit": "mcg/day", "system": "http://unitsofmeasure.org", "code": "ug/d"}}]}]});
        let hook = json!({
            "hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/doc", "patientId": "pat", "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}},
            "prefetch": {
                "patient": {"resourceType": "Patient", "id": "pat", "birthDate": "1966-02-11"},
                "coverage": coverage,
                "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/pat"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C91.02"}]}}}]},
                "observations": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Observation", "id": "w", "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2026-05-10",
                    "valueQuantity": {"value": 71, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}}]},
            },
        });
        keep(&dir, "metadata", &server.get("/fhir/metadata", &ehr).await.body);
        let discovery = server.get("/cds-services", &ehr).await;
        assert_eq!(discovery.body["services"][0]["hook"], "order-sign");
        let started = std::time::Instant::now();
        let answer = server.post("/cds-services/order-sign-crd", &ehr, &hook).await;
        let crd_time = started.elapsed();
        assert_eq!(answer.status, 200, "{}", answer.body);
        keep(&dir, "crd-answer", &answer.body);
        let info = &answer.body["systemActions"][0]["resource"]["extension"][0];
        assert!(info["url"].as_str().unwrap().ends_with("ext-coverage-information"), "{}", answer.body);
        let part = |name: &str| info["extension"].as_array().unwrap().iter().find(|e| e["url"] == name).cloned();
        assert_eq!(part("pa-needed").unwrap()["valueCode"], "auth-needed");
        assert_eq!(part("doc-needed").unwrap()["valueCode"], "clinical");
        let questionnaire = part("questionnaire").unwrap()["valueCanonical"].as_str().unwrap().to_string();
        assert!(questionnaire.contains("/Questionnaire/eocco-0382"), "{questionnaire}");
        assert!(part("coverage-assertion-id").is_some() && part("date").is_some());

        // DTR: the package for this coverage and order: the policy's questions and a draft
        // response already holding what the order says.
        let package = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}, {"name": "order", "resource": order}]})).await;
        assert_eq!(package.status, 200, "{}", package.body);
        keep(&dir, "package", &package.body);
        let bundle = &package.body["parameter"][0]["resource"];
        let form = &bundle["entry"][0]["resource"];
        assert_eq!(form["resourceType"], "Questionnaire");
        let links: Vec<&str> = form["item"].as_array().unwrap().iter().map(|i| i["linkId"].as_str().unwrap()).collect();
        assert!(links.contains(&"diagnosis.mrd_status") || links.contains(&"diagnosis.disease_status"), "{links:?}");
        let draft = &bundle["entry"][1]["resource"];
        assert_eq!(draft["resourceType"], "QuestionnaireResponse");
        let drafted: Vec<&str> = draft["item"].as_array().unwrap().iter().map(|i| i["linkId"].as_str().unwrap()).collect();
        assert!(drafted.contains(&"request.drug") && drafted.contains(&"request.dose"), "{drafted:?}");

        // The clinician answers: a Ph-negative relapsed B-ALL, but a T-cell lineage answer
        // makes the policy's criteria fail: a recommended denial, which pends (A4).
        let mut response = draft.clone();
        let canonical = "http://localhost/fhir/CodeSystem";
        let mut items = response["item"].as_array().unwrap().clone();
        for (key, answer) in [
            ("diagnosis.lineage", json!({"valueCoding": {"system": format!("{canonical}/diagnosis.lineage"), "code": "t_cell"}})),
            ("diagnosis.ph_status", json!({"valueCoding": {"system": format!("{canonical}/diagnosis.ph_status"), "code": "negative"}})),
            ("request.kind", json!({"valueCoding": {"system": format!("{canonical}/request.kind"), "code": "initial"}})),
        ] {
            items.push(json!({"linkId": key, "answer": [answer]}));
        }
        response["item"] = json!(items);
        response["status"] = json!("completed");
        response["id"] = json!("answers");
        let mut claim_bundle = pas_bundle(&json!({"request": {"drug": "blinatumomab", "date": "2026-05-18", "units": 784, "units_period_days": 42},
            "patient": {"birth_date": "1966-02-11"}, "diagnosis": {"icd10": ["C91.02"]}, "prescriber": {"specialty": "hematology"}}),
            "eocco-medicaid", "ehr-1", &server.state.service.engine);
        let entries = claim_bundle["entry"].as_array_mut().unwrap();
        let last = entries.len() - 1;
        entries[last]["resource"] = response;
        let submitted = server.post("/fhir/Claim/$submit", &ehr, &claim_bundle).await;
        assert_eq!(submitted.status, 200, "{}", submitted.body);
        keep(&dir, "pas-pended", &submitted.body);
        assert_eq!(review_action(&submitted.body), "A4", "{}", submitted.body);
        let request_id = submitted.body["entry"][0]["resource"]["preAuthRef"].as_str().unwrap().to_string();

        // A clinician decides over the service API; the subscriber hears the final answer.
        let criterion = server.get(&format!("/v1/requests/{request_id}"), &reviewer).await.body["decision"]["reasons"][0]["id"].as_str().unwrap_or("b-cell-precursor").to_string();
        server.determine(&reviewer, &request_id, "deny", &criterion, "T-cell lineage: the policy covers B-cell precursor ALL only").await.expect(200);
        let notification = tokio::time::timeout(std::time::Duration::from_secs(20), notifications.recv()).await.expect("a notification within 20 s").unwrap();
        keep(&dir, "notification", &notification);
        assert_eq!(notification["type"], "history");
        let final_bundle = &notification["entry"][1]["resource"];
        assert_eq!(review_action(final_bundle), "A3");
        let reviewer_flag = extension(&final_bundle["entry"][0]["resource"]["extension"], "extension-claimResponseReviewer").unwrap();
        assert_eq!(reviewer_flag["extension"][0]["valueBoolean"], true);
        let note = final_bundle["entry"][0]["resource"]["processNote"][0]["text"].as_str().unwrap();
        assert!(note.contains("Dr. Rivera") && note.contains(&criterion), "{note}");

        // The inquiry answers the same final state.
        let inquiry = server.post("/fhir/Claim/$inquire", &ehr, &claim_bundle).await;
        assert_eq!(review_action(&inquiry.body["parameter"][0]["resource"]), "A3");
        eprintln!("CRD order-sign answered in {crd_time:?}");
        validate(&dir);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_adaptive_form_asks_only_what_can_change_the_outcome() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let dir = emitted_dir("adaptive");
        let case = support::case("E01");
        let coverage = json!({"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/pat"}, "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "eocco-medicaid"}]});
        let order = json!({"resourceType": "MedicationRequest", "id": "blin", "status": "draft", "intent": "order", "subject": {"reference": "Patient/pat"}, "authoredOn": "2026-05-18",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "J9039"}]}});
        let package = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}, {"name": "order", "resource": order},
            {"name": "questionnaire", "valueCanonical": "http://localhost/fhir/Questionnaire/eocco-0382-adaptive"}]})).await;
        assert_eq!(package.status, 200, "{}", package.body);
        let response = package.body["parameter"][0]["resource"]["entry"][1]["resource"].clone();
        let whole = server.get("/fhir/Questionnaire/eocco-0382", &ehr).await;
        keep(&dir, "questionnaire", &whole.body);
        let total = whole.body["item"].as_array().unwrap().len();
        // Questions asked beyond what the order already answered.
        let prefilled = response["item"].as_array().map_or(0, Vec::len);
        let (response, _, rounds) = answer_adaptive_form(&server, &ehr, response, &case, 60).await;
        keep(&dir, "adaptive-final", &response);
        assert_eq!(response["status"], "completed", "{response}");
        let asked = response["contained"][0]["item"].as_array().unwrap().len() - prefilled;
        assert!(asked < total - prefilled, "asked {asked} of the {total} questions");
        eprintln!("adaptive: {asked} questions asked in {rounds} rounds, of {total} in the whole form ({prefilled} answered by the order)");
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// A policy and the facts it declares, loaded from a directory (not bundled), decided by
/// the service and asked by DTR as the bundled ones are.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_with_declared_facts_from_a_directory_is_decided_and_asked_by_dtr() {
    for_each_backend(|url| async move {
        let authored = repo().join("tests/authoring/acme");
        let dir = emitted_dir("authored-policy").join("policies");
        std::fs::create_dir_all(dir.join("sources")).unwrap();
        for name in ["acme-widget.toml", "facts.toml", "sources/acme-widget.txt"] {
            std::fs::copy(authored.join(name), dir.join(name)).unwrap();
        }
        let engine = priorauth_core::Engine::from_dir(&dir).unwrap();
        let plans = std::fs::read_to_string(repo().join("tests/authoring/acme-plans.toml")).unwrap();
        let server = Server::start_engine(&url, engine, Some(&plans), priorauth_service::admission::Limits::UNLIMITED, priorauth_service::connections::ConnectionLimits::DEFAULT).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let today = support::days_after_receipt(0);
        let ecg = priorauth_core::date::Date::parse(&today).unwrap().add_days(-8).unwrap().to_string();
        let mut case = read(&repo().join("tests/authoring/acme-case.json"));
        case["request"]["date"] = json!(today);
        case["facts"] = json!({"labs.qtc": 452, "labs.ecg_date": ecg, "diagnosis.tp53": "wild_type"});

        // The service decides by the declared facts; an unknown one is asked for by name.
        let approved = server.submitted(&ehr, "acme-commercial", case.clone()).await;
        assert_eq!(approved["status"], "approved", "{approved}");
        let mut partial = case.clone();
        partial["facts"]["labs.qtc"] = Value::Null;
        let pending = server.submitted(&ehr, "acme-commercial", partial).await;
        assert_eq!(pending["status"], "pending_information", "{pending}");
        assert!(pending.to_string().contains("labs.qtc"), "{pending}");
        let mut wrong = case.clone();
        wrong["facts"]["labs.qtc"] = json!("high");
        server.submit(&ehr, "acme-commercial", wrong).await.expect_problem(422, "case.facts.labs.qtc");

        // DTR: the policy's Questionnaire asks the declared facts with their types.
        let form = server.get("/fhir/Questionnaire/acme-widget", &ehr).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let item = |key: &str| form.body["item"].as_array().unwrap().iter().find(|i| i["linkId"] == key).cloned().unwrap_or_else(|| panic!("no item {key}: {}", form.body));
        assert_eq!(item("labs.qtc")["type"], "decimal");
        assert_eq!(item("labs.ecg_date")["type"], "date");
        assert_eq!(item("diagnosis.tp53")["type"], "choice");
        // The adaptive form asks them one by one and ends decided.
        let coverage = json!({"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/pat"}, "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "acme-commercial"}]});
        let order = json!({"resourceType": "MedicationRequest", "id": "ino", "status": "draft", "intent": "order", "subject": {"reference": "Patient/pat"}, "authoredOn": today,
            "medicationCodeableConcept": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "J9229"}]}});
        let package = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}, {"name": "order", "resource": order},
            {"name": "questionnaire", "valueCanonical": "http://localhost/fhir/Questionnaire/acme-widget-adaptive"}]})).await;
        assert_eq!(package.status, 200, "{}", package.body);
        let response = package.body["parameter"][0]["resource"]["entry"][1]["resource"].clone();
        let (response, asked, _) = answer_adaptive_form(&server, &ehr, response, &case, 30).await;
        assert_eq!(response["status"], "completed", "{response}");
        for key in ["labs.qtc", "labs.ecg_date", "diagnosis.tp53"] {
            assert!(asked.iter().any(|k| k == key), "{key} was not asked: {asked:?}");
        }
        server.stop().await;
    })
    .await;
}

/// Answers an adaptive DTR form from `case` until it is completed (at most `rounds` rounds):
/// each round answers the questions added last and leaves unanswered what the case does not
/// say, as a clinician would. Answers the last response, the keys asked and the rounds.
/// Marks each answer of an item (nested ones too) as DTR's `information-origin` `manual`, by
/// the clinician answering.
fn entered_by_user(item: &mut Value) {
    if let Some(answers) = item.get_mut("answer").and_then(Value::as_array_mut) {
        for answer in answers {
            answer["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin",
                "extension": [{"url": "source", "valueCode": "manual"},
                    {"url": "author", "extension": [{"url": "practitioner", "valueReference": {"reference": "Practitioner/doc"}}]}]}]);
        }
    }
    if let Some(nested) = item.get_mut("item").and_then(Value::as_array_mut) {
        nested.iter_mut().for_each(entered_by_user);
    }
}

async fn answer_adaptive_form(
    server: &Server,
    key: &str,
    mut response: Value,
    case: &Value,
    rounds: usize,
) -> (Value, Vec<String>, usize) {
    let engine = server.state.service.engine.clone();
    let map = priorauth_fhir::map::Map::load(priorauth_fhir::map::BUNDLED, &engine).unwrap();
    let canonical = priorauth_fhir::questionnaire::Canonical {
        base: "http://localhost/fhir".into(),
    };
    let questions = priorauth_core::questions::all(&engine);
    let mut asked = Vec::new();
    let mut done = 0;
    while done < rounds && response["status"] != "completed" {
        let contained = response["contained"][0]["item"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let answered: Vec<String> = response["item"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["linkId"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut items = response["item"].as_array().cloned().unwrap_or_default();
        for item in contained {
            let link = item["linkId"].as_str().unwrap();
            // The TKI list is answered as a whole, through its `tried` item.
            if answered.iter().any(|a| a == link)
                || link.starts_with("history.tkis") && link != "history.tkis.tried"
            {
                continue;
            }
            asked.push(link.to_string());
            let question_key = if link == "history.tkis.tried" {
                "history.tkis"
            } else {
                link
            };
            let question = questions.iter().find(|q| q.key == question_key).unwrap();
            let Some(value) =
                priorauth_fhir::questionnaire::case_value(case, question_key).cloned()
            else {
                continue;
            };
            // As a DTR client answers: each answer says it was entered by the user.
            let mut answered =
                priorauth_fhir::questionnaire::answer_items(question, &value, &canonical, &map);
            for item in &mut answered {
                entered_by_user(item);
            }
            items.extend(answered);
        }
        response["item"] = json!(items);
        done += 1;
        let next = server
            .post("/fhir/Questionnaire/$next-question", key, &response)
            .await;
        assert_eq!(next.status, 200, "{}", next.body);
        response = next.body;
    }
    (response, asked, done)
}

/// Text that would show the service's insides.
const INTERNALS: &[&str] = &[
    "panicked",
    "backtrace",
    "/src/",
    ".rs:",
    "sqlx",
    "SELECT ",
    "INSERT ",
    "priorauth_service",
    "fhirbolt",
    "unwrap",
];

fn assert_outcome(reply: &support::Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{what}: {}",
        reply.body
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/fhir+json"),
        "{what}"
    );
    let text = reply.body.to_string();
    for internal in INTERNALS {
        assert!(!text.contains(internal), "{what}: `{internal}` in {text}");
    }
}

async fn raw(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> support::Reply {
    let mut call = server
        .client
        .request(method, format!("{}{path}", server.base))
        .body(body);
    if let Some(key) = key {
        call = call.header("authorization", format!("Bearer {key}"));
    }
    let answer = call.send().await.expect("the server answers");
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    support::Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fhir_interfaces_refuse_bad_keys_roles_organizations_and_hostile_bodies() {
    use reqwest::Method;
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;
        let (_, reviewer) = server.key("payer", Role::Reviewer, "Dr. Rivera", "MD").await;
        let (revoked_id, revoked) = server.key("clinic-a", Role::Submitter, "old EHR", "").await;
        priorauth_service::keys::revoke(server.store(), &revoked_id).await.unwrap();
        let case = support::case("E01");
        let bundle = pas_bundle(&case, "eocco-medicaid", "access-1", &server.state.service.engine);
        let submitted = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(submitted.status, 200);
        let mut subscription = read(&repo().join("tests/fhir/pas-examples/Subscription-PASSubscriptionExample.json"));
        subscription["channel"]["endpoint"] = json!("http://127.0.0.1:9/notify");
        let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
        let subscription_path = format!("/fhir/Subscription/{}", created.body["id"].as_str().unwrap());
        let routes: Vec<(Method, String, Value)> = vec![
            (Method::POST, "/cds-services/order-sign-crd".into(), json!({"hook": "order-sign", "hookInstance": "x", "context": {}})),
            (Method::GET, "/fhir/Questionnaire/eocco-0382".into(), Value::Null),
            (Method::POST, "/fhir/Questionnaire/$questionnaire-package".into(), json!({"resourceType": "Parameters"})),
            (Method::POST, "/fhir/Questionnaire/$next-question".into(), json!({"resourceType": "QuestionnaireResponse", "status": "in-progress"})),
            (Method::POST, "/fhir/Claim/$submit".into(), bundle.clone()),
            (Method::POST, "/fhir/Claim/$inquire".into(), bundle.clone()),
            (Method::POST, "/fhir/Subscription".into(), subscription.clone()),
            (Method::GET, subscription_path.clone(), Value::Null),
            (Method::DELETE, subscription_path.clone(), Value::Null),
        ];
        for (method, path, body) in &routes {
            let body = if body.is_null() { vec![] } else { body.to_string().into_bytes() };
            for (what, key) in [("no key", None), ("a wrong key", Some("pak_0123456789abcdef0123456789abcdef")), ("a revoked key", Some(revoked.as_str()))] {
                let reply = raw(&server, method.clone(), path, key, body.clone()).await;
                assert_outcome(&reply, 401, &format!("{method} {path}: {what}"));
                assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{method} {path}: {what}");
            }
        }
        // Submitting is a provider system's act: a reviewer's key may not.
        for path in ["/cds-services/order-sign-crd", "/fhir/Claim/$submit", "/fhir/Subscription"] {
            let reply = raw(&server, Method::POST, path, Some(&reviewer), bundle.to_string().into_bytes()).await;
            assert_outcome(&reply, 403, &format!("{path}: reviewer"));
        }
        // Another organization: the inquiry finds nothing (PAS: 0..* Bundles, so an empty
        // Parameters, as for a trace number no one sent), the subscription does not exist.
        let inquiry = server.post("/fhir/Claim/$inquire", &other, &bundle).await;
        assert_eq!(inquiry.status, 200, "{}", inquiry.body);
        assert_eq!(inquiry.body, json!({"resourceType": "Parameters"}));
        let mut unsent = bundle.clone();
        unsent["entry"][0]["resource"]["identifier"][0]["value"] = json!("never-sent");
        let nowhere = server.post("/fhir/Claim/$inquire", &other, &unsent).await;
        assert_eq!((nowhere.status, &nowhere.body), (inquiry.status, &inquiry.body), "the answer tells that another organization's Claim exists");
        // Another organization's claims with the same identifier, more than an inquiry
        // answers at once, cannot crowd out one's own: the organization is filtered first.
        for n in 0..21 {
            let mut theirs = bundle.clone();
            theirs["identifier"]["value"] = json!(format!("urn:uuid:crowd-{n}"));
            let reply = server.post("/fhir/Claim/$submit", &other, &theirs).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        let ours = server.post("/fhir/Claim/$inquire", &ehr, &bundle).await;
        assert_eq!(ours.status, 200, "{}", ours.body);
        assert_eq!(ours.header("cache-control"), Some("no-store"));
        let theirs = raw(&server, Method::GET, &subscription_path, Some(&other), vec![]).await;
        assert_outcome(&theirs, 404, "another organization's subscription");
        let made_up = raw(&server, Method::GET, "/fhir/Subscription/sub-0000", Some(&other), vec![]).await;
        assert_eq!(theirs.body, made_up.body, "the answer tells that the subscription exists");
        let deleted = raw(&server, Method::DELETE, &subscription_path, Some(&other), vec![]).await;
        assert_outcome(&deleted, 404, "deleting another organization's subscription");
        // Hostile bodies on every operation that takes one.
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
        let deep_object = format!("{}1{}", "{\"a\":".repeat(40_000), "}".repeat(40_000)).into_bytes();
        let oversized = vec![b' '; FHIR_LIMIT + 1];
        let hostile: Vec<(&str, Vec<u8>)> = vec![
            ("deeply nested arrays", nested),
            ("deeply nested objects", deep_object),
            ("not UTF-8", vec![0xff, 0xfe, 0x7b]),
            ("not JSON", b"<Bundle/>".to_vec()),
            ("truncated", bundle.to_string().as_bytes()[..200].to_vec()),
            ("an empty array", br#"{"resourceType":"Bundle","type":"collection","identifier":{"value":"x"},"entry":[]}"#.to_vec()),
            ("an empty body", vec![]),
        ];
        for (method, path, _) in routes.iter().filter(|(m, _, _)| *m == Method::POST) {
            for (what, body) in &hostile {
                let reply = raw(&server, method.clone(), path, Some(&ehr), body.clone()).await;
                assert!(reply.status >= 400 && reply.status < 500, "{path}: {what}: {}", reply.status);
                assert_outcome(&reply, reply.status, &format!("{path}: {what}"));
            }
            let reply = raw(&server, method.clone(), path, Some(&ehr), oversized.clone()).await;
            assert_outcome(&reply, 413, &format!("{path}: oversized"));
        }
        raw(&server, Method::GET, "/healthz", None, vec![]).await.expect(200);
        // What the service supports is public, as FHIR and CDS Hooks clients expect.
        raw(&server, Method::GET, "/fhir/metadata", None, vec![]).await.expect(200);
        raw(&server, Method::GET, "/cds-services", None, vec![]).await.expect(200);
        let report = priorauth_service::store::verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

const FHIR_LIMIT: usize = priorauth_service::fhir::FHIR_BODY_LIMIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_the_policy_covers_in_part_is_answered_modified() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, key) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        // E01 asks 8 cycles: 7,840 units over the 336 days they take (a PAS item's quantity
        // is for its service period); EOCCO's initial authorization covers 5.
        let mut case = support::case("E01");
        case["request"]["cycles"] = json!(8);
        case["request"]["units"] = json!(7840);
        case["request"]["units_period_days"] = json!(336);
        let bundle = pas_bundle(
            &case,
            "eocco-medicaid",
            "partial-1",
            &server.state.service.engine,
        );
        let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(review_action(&reply.body), "A6", "{}", reply.body);
        let response = &reply.body["entry"][0]["resource"];
        // What is authorized instead of the request: 5 cycles of 980 units.
        assert_eq!(
            response["addItem"][0]["quantity"]["value"], 4900,
            "{response}"
        );
        let authorization = authorization_of(&server, &key, &reply.body).await;
        assert_eq!(authorization["cycles"], 5);
        assert_eq!(authorization["approved_units"], 4900);

        // A Claim for service that starts next week, as a prior authorization usually is:
        // decided on the facts as read on receipt, its period from receipt.
        let mut case = support::case("E01");
        case["request"]["date"] = json!(support::days_after_receipt(7));
        let bundle = pas_bundle(
            &case,
            "eocco-medicaid",
            "planned-1",
            &server.state.service.engine,
        );
        let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(review_action(&reply.body), "A1", "{}", reply.body);
        let authorization = authorization_of(&server, &key, &reply.body).await;
        assert_eq!(authorization["start"], support::days_after_receipt(0));

        // A quantity of 0 approves nothing: refused naming it, not read as absent (which
        // approved the policy's most), as `/v1` refuses `request.units` of 0.
        let case = support::case("E01");
        let mut bundle = pas_bundle(
            &case,
            "eocco-medicaid",
            "zero-1",
            &server.state.service.engine,
        );
        bundle["entry"][0]["resource"]["item"][0]["quantity"] = json!({"value": 0});
        let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
        assert_outcome(&reply, 422, "a quantity of 0");
        assert!(
            reply
                .body
                .to_string()
                .contains("Claim.item[0].quantity.value"),
            "{}",
            reply.body
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pas_request_is_decided_under_the_plan_the_payers_eligibility_gives() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
            .await;
        support::import_members(&server, "M-100,eocco-medicaid,2026-01-01,,\n").await;
        let service = &server.state.service;
        let case = support::recorded_case("E01");
        // The EHR's own plan code on the Coverage, with the member's id.
        let submit = |identifier: &'static str, member: &'static str, declared: &'static str| {
            let mut bundle = pas_bundle(&case, declared, identifier, &service.engine);
            for entry in bundle["entry"].as_array_mut().unwrap() {
                if entry["resource"]["resourceType"] == "Coverage" {
                    entry["resource"]["subscriberId"] = json!(member);
                }
            }
            bundle
        };
        let member = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &submit("elig-1", "M-100", "EHR-PLAN-7"),
            )
            .await;
        assert_eq!(member.status, 200, "{}", member.body);
        // Approved by the plan's policy, with an authorization number.
        assert_eq!(review_action(&member.body), "A1", "{}", member.body);
        let request_id = |body: &Value| {
            body["entry"][0]["resource"]["id"]
                .as_str()
                .unwrap()
                .replacen("req-", "req_", 1)
        };
        let id = request_id(&member.body);
        let record = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(record.body["plan"], "eocco-medicaid", "{}", record.body);
        // An id no member has goes to a clinician undecided, though it declares a plan of
        // the service's: the payer's records outrank the Coverage.
        let stranger = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &submit("elig-2", "M-999", "eocco-medicaid"),
            )
            .await;
        assert_eq!(review_action(&stranger.body), "A4", "{}", stranger.body);
        let id = request_id(&stranger.body);
        let record = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(record.body["status"], "pending_review", "{}", record.body);
        assert!(record.body["authorization"].is_null(), "{}", record.body);
        assert_eq!(
            record.body["plan"], "",
            "no plan is taken from the Coverage: {}",
            record.body
        );
        // A member whose recorded birth date is not the Patient's: refused, never decided
        // on the age the Claim declares (E01's patient was born in 1966).
        support::import_members(&server, "M-101,eocco-medicaid,2026-01-01,,2012-02-11\n").await;
        let other_age = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &submit("elig-3", "M-101", "EHR-PLAN-7"),
            )
            .await;
        assert_eq!(other_age.status, 422, "{}", other_age.body);
        assert!(
            other_age.body.to_string().contains("Patient.birthDate"),
            "{}",
            other_age.body
        );
        // An update of a pending request failing on it withdraws nothing: the birth date is
        // checked before the request it replaces is.
        let requests = server.count("requests").await;
        let mut update = submit("elig-4", "M-101", "EHR-PLAN-7");
        update["entry"][0]["resource"]["related"] = json!([{"claim": {"identifier": {"system": "urn:trnorg:1234567890", "value": "elig-2"}},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
        let refused = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        let pending = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(pending.body["status"], "pending_review", "{}", pending.body);
        assert_eq!(server.count("requests").await, requests);
        server.stop().await;
    })
    .await;
}

/// A PAS request names its payer on the Coverage's `payor` and the Claim's `insurer`: where
/// the plan lists its payer's identifiers and the request names another payer, a member id
/// this payer also issued is not taken for its member (a clinician gets it, with no plan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pas_request_for_another_payer_is_not_decided_under_this_payers_plan() {
    for_each_backend(|url| async move {
        let server = Server::start_with_plans(&url, &support::plans_naming_the_payer()).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
            .await;
        support::import_members(&server, "M-100,eocco-medicaid,2026-01-01,,\n").await;
        let service = &server.state.service;
        let case = support::recorded_case("E01");
        let submit = |identifier: &'static str, npi: &'static str| {
            let mut bundle = pas_bundle(&case, "EHR-PLAN-7", identifier, &service.engine);
            for entry in bundle["entry"].as_array_mut().unwrap() {
                let resource = &mut entry["resource"];
                if resource["resourceType"] == "Coverage" {
                    resource["subscriberId"] = json!("M-100");
                }
                if resource["resourceType"] == "Organization" {
                    resource["identifier"] =
                        json!([{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]);
                }
            }
            bundle
        };
        // Submits a Bundle; answers its review action and the request's record.
        let decided = |bundle: Value| {
            let (server, ehr, reviewer) = (&server, ehr.clone(), reviewer.clone());
            async move {
                let answer = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
                let id = answer.body["entry"][0]["resource"]["id"].as_str().unwrap().replacen("req-", "req_", 1);
                let record = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
                (review_action(&answer.body), record.body)
            }
        };
        let (action, record) = decided(submit("payer-1", "1234567893")).await;
        assert_eq!(action, "A1", "{record}");
        assert_eq!(record["plan"], "eocco-medicaid", "{record}");
        // The Coverage names another payer on its reference while the Claim is sent to this
        // one: the Coverage's payer is the member id's, not the insurer's.
        let mut other_coverage = submit("payer-3", "1234567893");
        for entry in other_coverage["entry"].as_array_mut().unwrap() {
            if entry["resource"]["resourceType"] == "Coverage" {
                entry["resource"]["payor"] = json!([{"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1999999984"}, "display": "Another plan"}]);
            }
        }
        let (action, record) = decided(other_coverage).await;
        assert_eq!(action, "A4", "{record}");
        assert_eq!(record["plan"], "", "{record}");
        let (action, record) = decided(submit("payer-2", "1999999984")).await;
        assert_eq!(action, "A4", "{record}");
        assert_eq!(record["plan"], "", "another payer's member is not this plan's: {record}");
        assert!(record["authorization"].is_null(), "{record}");
        server.stop().await;
    })
    .await;
}

/// DTR as a client reads it after CRD: the package asked for with the coverage, the
/// Questionnaire CRD named and the coverage assertion (no order), under the profile's names;
/// the Questionnaire with its narrative; the draft response with its patient, time, context,
/// intended use and the origin of each pre-filled answer; the adaptive form's service found
/// from `questionnaireAdaptive` at the path SDC gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dtr_package_is_as_dtr_clients_read_it() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let dir = emitted_dir("dtr-package");
        let coverage = json!({"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/pat"}, "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "eocco-medicaid"}]});
        let package = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage},
            {"name": "questionnaire", "valueCanonical": "http://localhost/fhir/Questionnaire/eocco-0382|2025-03"},
            {"name": "context", "valueString": "cra_0123456789abcdef"}]})).await;
        assert_eq!(package.status, 200, "{}", package.body);
        keep(&dir, "package", &package.body);
        let parameter = &package.body["parameter"][0];
        assert_eq!(parameter["name"], "PackageBundle");
        let bundle = &parameter["resource"];
        assert!(bundle["meta"]["profile"][0].as_str().unwrap().ends_with("DTR-QPackageBundle"));
        let form = &bundle["entry"][0]["resource"];
        assert_eq!(form["resourceType"], "Questionnaire");
        let narrative = form["text"]["div"].as_str().unwrap();
        assert!(narrative.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">") && narrative.contains("<li>"), "{narrative}");
        let draft = &bundle["entry"][1]["resource"];
        assert_eq!(draft["subject"]["reference"], "Patient/pat");
        assert!(draft["authored"].as_str().unwrap().contains('T'));
        let extensions = draft["extension"].as_array().unwrap();
        let named = |end: &str| extensions.iter().filter(|e| e["url"].as_str().unwrap().ends_with(end)).cloned().collect::<Vec<_>>();
        let contexts = named("/qr-context");
        assert_eq!(contexts.len(), 2, "{extensions:?}");
        assert_eq!(contexts[0]["valueReference"]["reference"], "Coverage/cov");
        assert_eq!(contexts[1]["valueReference"]["identifier"]["value"], "cra_0123456789abcdef");
        assert_eq!(named("/intendedUse")[0]["valueCodeableConcept"]["coding"][0]["code"], "withpa");
        // With the order, what the payer filled in from it says so.
        let order = json!({"resourceType": "MedicationRequest", "id": "blin", "status": "draft", "intent": "order", "subject": {"reference": "Patient/pat"}, "authoredOn": "2026-05-18",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "J9039"}]}});
        let with_order = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}, {"name": "order", "resource": order}]})).await;
        assert_eq!(with_order.status, 200, "{}", with_order.body);
        keep(&dir, "package-with-order", &with_order.body);
        let draft = &with_order.body["parameter"][0]["resource"]["entry"][1]["resource"];
        let contexts: Vec<&Value> = draft["extension"].as_array().unwrap().iter().filter(|e| e["url"].as_str().unwrap().ends_with("/qr-context")).collect();
        assert_eq!(contexts[0]["valueReference"]["reference"], "MedicationRequest/blin");
        let answered: Vec<&Value> = draft["item"].as_array().unwrap().iter().flat_map(|i| i["answer"].as_array().into_iter().flatten()).collect();
        assert!(!answered.is_empty(), "{draft}");
        for answer in answered {
            assert_eq!(answer["extension"][0]["extension"][0]["valueCode"], "auto", "{answer}");
        }
        assert_eq!(with_order.body["parameter"].as_array().unwrap().len(), 1, "nothing to warn of: {}", with_order.body);
        // A Questionnaire asked for that this payer does not have: the package for the order,
        // and a warning in `outcome` naming it (DTR: "a warning SHALL be provided in the
        // 'outcome'").
        let unknown = "http://payer.example/fhir/Questionnaire/no-such-form|1.0";
        let with_unknown = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}, {"name": "order", "resource": order},
            {"name": "questionnaire", "valueCanonical": unknown}]})).await;
        assert_eq!(with_unknown.status, 200, "{}", with_unknown.body);
        keep(&dir, "package-with-unknown-questionnaire", &with_unknown.body);
        let parameters = with_unknown.body["parameter"].as_array().unwrap();
        assert_eq!(parameters[0]["name"], "PackageBundle");
        let outcome = parameters.iter().find(|p| p["name"] == "outcome").expect("an outcome");
        let issues = outcome["resource"]["issue"].as_array().unwrap();
        assert_eq!(outcome["resource"]["resourceType"], "OperationOutcome");
        assert_eq!(issues.len(), 1, "{outcome}");
        assert_eq!(issues[0]["severity"], "warning");
        assert!(issues[0]["diagnostics"].as_str().unwrap().contains(unknown), "{outcome}");

        // The adaptive form: its service is found at `{valueUrl}/Questionnaire/$next-question`,
        // and its contained Questionnaire is known by its local id only.
        let adaptive = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage},
            {"name": "questionnaire", "valueCanonical": "http://localhost/fhir/Questionnaire/eocco-0382-adaptive"},
            {"name": "context", "valueString": "cra_0123456789abcdef"}]})).await;
        assert_eq!(adaptive.status, 200, "{}", adaptive.body);
        let bundle = &adaptive.body["parameter"][0]["resource"];
        let base = bundle["entry"][0]["resource"]["extension"][0]["valueUrl"].as_str().unwrap().to_string();
        let response = bundle["entry"][1]["resource"].clone();
        assert!(response["contained"][0].get("url").is_none(), "{response}");
        keep(&dir, "adaptive-start", &response);
        // DTR's profiles: the empty form a package returns, found by its canonical, is
        // `dtr-questionnaire-adapt-search` (url 1..1); the form being filled, contained in the
        // response without a url, is `dtr-questionnaire-adapt` (url 0..0). Each is checked.
        let packaged = &bundle["entry"][0]["resource"];
        assert!(packaged["meta"]["profile"][0].as_str().unwrap().ends_with("/dtr-questionnaire-adapt-search"), "{packaged}");
        assert!(packaged["url"].as_str().unwrap().ends_with("/Questionnaire/eocco-0382-adaptive"), "{packaged}");
        keep(&dir, "adaptive-packaged", packaged);
        let filled = &response["contained"][0];
        assert!(filled["meta"]["profile"][0].as_str().unwrap().ends_with("/dtr-questionnaire-adapt"), "{filled}");
        keep(&dir, "adaptive-contained", filled);
        let read = server.get("/fhir/Questionnaire/eocco-0382-adaptive", &ehr).await;
        assert_eq!(read.status, 200, "{}", read.body);
        keep(&dir, "adaptive-read", &read.body);
        let path = format!("{}/Questionnaire/$next-question", base.trim_start_matches(&server.base));
        assert!(path.starts_with("/fhir/"), "{base} is this server's FHIR base");
        let next = server.post(&path, &ehr, &json!({"resourceType": "Parameters", "parameter": [{"name": "questionnaire-response", "resource": response}]})).await;
        assert_eq!(next.status, 200, "{}", next.body);

        // Neither an order nor a Questionnaire: nothing to package.
        let neither = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage}]})).await;
        assert_eq!(neither.status, 422, "{}", neither.body);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// DTR launched from PAS's Task: the package asked for with the coverage and the Task's
/// `questionnaire-context` alone (the pended request's id) is that request's policy's form,
/// pre-populated from the request's stored case; a context naming nothing the caller may see
/// (no such request, another organization's, a CRD assertion) is nothing found, a 200 without
/// a Bundle and a warning, the same for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_package_for_a_pas_tasks_context_alone_is_its_requests_form() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "Clinic B EHR", "").await;
        let engine = &server.state.service.engine;
        let mut partial = support::recorded_case("E01");
        partial["diagnosis"].as_object_mut().unwrap().remove("lineage");
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pas_bundle(&partial, "eocco-medicaid", "ctx-1", engine)).await;
        assert_eq!(review_action(&pended.body), "A4", "{}", pended.body);
        let task = pended.body["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).find(|r| r["resourceType"] == "Task").expect("a Task asks for the information");
        let input = |code: &str| task["input"].as_array().unwrap().iter().find(|i| i["type"]["coding"][0]["code"] == code).cloned().unwrap();
        let context = input("questionnaire-context")["valueString"].as_str().unwrap().to_string();
        assert!(input("payer-url")["valueUrl"].as_str().unwrap().ends_with("/Questionnaire/$questionnaire-package"));
        let policy = server.get(&format!("/v1/requests/{context}"), &ehr).await.body["policy"].as_str().unwrap().to_string();
        let coverage = json!({"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/pat"}, "payor": [{"reference": "Organization/payer"}],
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "eocco-medicaid"}]});
        let package = |key: String, parameter: Value| {
            let (server, coverage) = (&server, &coverage);
            async move {
                let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "coverage", "resource": coverage}, parameter]});
                server.post("/fhir/Questionnaire/$questionnaire-package", &key, &parameters).await
            }
        };
        let with_context = |context: &str| json!({"name": "context", "valueString": context});

        // The Task's context alone: the request's policy's form, filled in from its case.
        let found = package(ehr.clone(), with_context(&context)).await;
        assert_eq!(found.status, 200, "{}", found.body);
        let dir = emitted_dir("dtr-package-context");
        keep(&dir, "package", &found.body);
        assert_eq!(found.body["parameter"][0]["name"], "PackageBundle", "{}", found.body);
        let bundle = &found.body["parameter"][0]["resource"];
        assert_eq!(bundle["entry"][0]["resource"]["id"], json!(policy), "{bundle}");
        let draft = &bundle["entry"][1]["resource"];
        let contexts: Vec<&Value> = draft["extension"].as_array().unwrap().iter().filter(|e| e["url"].as_str().unwrap().ends_with("/qr-context")).collect();
        assert!(contexts.iter().any(|c| c["valueReference"]["identifier"]["value"] == json!(context)), "{contexts:?}");
        let answered = |draft: &Value| draft["item"].as_array().map_or(0, |items| items.iter().filter(|i| i["answer"].is_array()).count());
        let linked = |draft: &Value, key: &str| draft["item"].as_array().is_some_and(|items| items.iter().any(|i| i["linkId"] == key && i["answer"].is_array()));
        // The same form asked for by its canonical, with nothing known of the case.
        let blank = package(ehr.clone(), json!({"name": "questionnaire", "valueCanonical": format!("http://localhost/fhir/Questionnaire/{policy}")})).await;
        assert_eq!(blank.status, 200, "{}", blank.body);
        let blank_draft = &blank.body["parameter"][0]["resource"]["entry"][1]["resource"];
        assert!(answered(draft) > answered(blank_draft), "pre-populated from the stored case: {draft} against {blank_draft}");
        assert!(!linked(draft, "diagnosis.lineage"), "what the request lacks stays to be answered: {draft}");
        let canonical = json!({"name": "questionnaire", "valueCanonical": format!("http://localhost/fhir/Questionnaire/{policy}")});
        // `changedsince`: nothing has changed since now (a 200 without a Bundle); everything
        // has since 2000; a value that is no instant is refused, naming the parameter.
        let since = |value: &str| {
            let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "coverage", "resource": coverage}, canonical, {"name": "changedsince", "valueInstant": value}]});
            let (server, ehr) = (&server, ehr.clone());
            async move { server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &parameters).await }
        };
        let now = jiff::Timestamp::now().to_string();
        let unchanged = since(&now).await;
        assert_eq!(unchanged.status, 200, "{}", unchanged.body);
        assert!(unchanged.body["parameter"].is_null(), "nothing changed since {now}: {}", unchanged.body);
        let changed = since("2000-01-01T00:00:00Z").await;
        assert_eq!(changed.body["parameter"][0]["name"], "PackageBundle", "{}", changed.body);
        let bad = since("last week").await;
        assert_eq!(bad.status, 422, "{}", bad.body);
        assert!(bad.body["issue"][0]["expression"][0].as_str().unwrap().contains("changedsince"), "{}", bad.body);

        // Another organization's request, an unknown id, a CRD assertion: nothing found, alike.
        let foreign = package(other.clone(), with_context(&context)).await;
        let unknown = package(other.clone(), with_context("req_0000000000000000")).await;
        let assertion = package(ehr.clone(), with_context("cra_0123456789abcdef")).await;
        for (what, reply, named) in [("another organization's", &foreign, context.as_str()), ("unknown", &unknown, "req_0000000000000000"), ("a CRD assertion", &assertion, "cra_0123456789abcdef")] {
            assert_eq!(reply.status, 200, "{what}: {}", reply.body);
            let parameters = reply.body["parameter"].as_array().unwrap();
            assert!(parameters.iter().all(|p| p["name"] == "outcome"), "{what}: no Bundle: {}", reply.body);
            let issue = &parameters[0]["resource"]["issue"][0];
            assert_eq!((issue["severity"].as_str(), issue["code"].as_str()), (Some("warning"), Some("not-found")), "{what}: {}", reply.body);
            assert!(issue["diagnostics"].as_str().unwrap().contains(named), "{what}: {}", reply.body);
        }
        assert_eq!(
            foreign.body.to_string().replace(&context, "ID"),
            unknown.body.to_string().replace("req_0000000000000000", "ID"),
            "another organization's request is answered as an unknown id"
        );
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// PAS 2.2.1's updates and cancellations: an update (`Claim.related`) replaces the pending
/// request it names and is decided on its own; a cancellation (certification type `3`)
/// withdraws a pending request, or cancels an approved one's authorization, and never
/// authorizes anything; an approved request is not updated; urgency comes from
/// `levelOfServiceCode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_and_cancellations_act_on_the_request_they_name() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "Clinic B EHR", "").await;
        let (_, reviewer) = server.key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology").await;
        let engine = &server.state.service.engine;
        let full = support::recorded_case("E01");
        let mut partial = full.clone();
        partial["diagnosis"].as_object_mut().unwrap().remove("lineage");
        let request_id = |body: &Value| body["entry"][0]["resource"]["id"].as_str().unwrap().replacen("req-", "req_", 1);
        let status = |id: String| {
            let server = &server;
            let reviewer = reviewer.clone();
            async move { server.get(&format!("/v1/requests/{id}"), &reviewer).await.body["status"].as_str().unwrap_or_default().to_string() }
        };
        let relate = |bundle: &mut Value, prior: &str| {
            bundle["entry"][0]["resource"]["related"] = json!([{"claim": {"identifier": {"system": "urn:trnorg:1234567890", "value": prior}},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
            bundle["entry"][0]["resource"]["meta"] = json!({"profile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update"]});
        };
        let cancel_items = |bundle: &mut Value| {
            for item in bundle["entry"][0]["resource"]["item"].as_array_mut().unwrap() {
                item["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = json!("3");
                item["modifierExtension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/modifierextension-infoCancelled", "valueBoolean": true}]);
            }
        };

        // A request pended for a missing fact, then updated with it: the update is approved,
        // the original withdrawn (not left pending).
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pas_bundle(&partial, "eocco-medicaid", "orig-1", engine)).await;
        assert_eq!(review_action(&pended.body), "A4", "{}", pended.body);
        let original = request_id(&pended.body);
        let dir = emitted_dir("pas-lifecycle");
        keep(&dir, "pended-for-information", &pended.body);
        // What is missing, in plain words and with the date it is due, and PAS's request for
        // it: the questionnaire to answer, with this request as its context.
        let note = pended.body["entry"][0]["resource"]["processNote"][0]["text"].as_str().unwrap().to_string();
        assert!(!note.contains("diagnosis.lineage") && note.contains("Still needed by 20"), "{note}");
        let task = pended.body["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).find(|r| r["resourceType"] == "Task").expect("a Task asks for the information");
        assert_eq!(task["code"]["coding"][0]["code"], "attachment-request-questionnaire");
        assert!(task["restriction"]["period"]["end"].is_string(), "{task}");
        assert_eq!(task["input"][1]["valueString"], original);
        let record = server.get(&format!("/v1/requests/{original}"), &reviewer).await;
        assert!(record.body["due_at"].is_string(), "a request pended for information runs on the plan's clock: {}", record.body);
        let mut update = pas_bundle(&full, "eocco-medicaid", "upd-1", engine);
        relate(&mut update, "orig-1");
        let updated = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        assert_eq!(review_action(&updated.body), "A1", "{}", updated.body);
        assert_eq!(status(original.clone()).await, "withdrawn");
        // Sent again: the same answer, nothing more withdrawn or approved.
        let again = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(request_id(&again.body), request_id(&updated.body));
        // An approved request is not changed by an update (PAS: "Servers MAY reject updates and
        // require that a new request is made"): the answer is a PAS response, as the guide's
        // rejection example, each item as it stands (approved) and a note saying why.
        let requests = server.count("requests").await;
        let mut late = pas_bundle(&full, "eocco-medicaid", "upd-2", engine);
        relate(&mut late, "upd-1");
        let refused = server.post("/fhir/Claim/$submit", &ehr, &late).await;
        assert_eq!(refused.status, 200, "{}", refused.body);
        keep(&dir, "update-of-approved", &refused.body);
        assert_eq!(refused.body["entry"][0]["resource"]["resourceType"], "ClaimResponse", "{}", refused.body);
        assert_eq!(review_action(&refused.body), "A1", "{}", refused.body);
        let notes = refused.body["entry"][0]["resource"]["processNote"].to_string();
        assert!(notes.contains("was not updated") && notes.contains("approved"), "{notes}");
        assert_eq!(status(request_id(&updated.body)).await, "approved", "the approval stands");
        assert_eq!(server.count("requests").await, requests, "nothing new requested");
        // A Claim.related naming a Claim neither identified nor in the Bundle (PAS: "The Claim
        // that is being updated SHALL be referenced in the Claim.related.claim element and
        // included in the Bundle") is refused, not taken for a new request.
        let mut dangling = pas_bundle(&full, "eocco-medicaid", "upd-3", engine);
        relate(&mut dangling, "x");
        dangling["entry"][0]["resource"]["related"][0]["claim"] = json!({"reference": "Claim/not-in-the-bundle"});
        let refused = server.post("/fhir/Claim/$submit", &ehr, &dangling).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["resourceType"], "OperationOutcome", "{}", refused.body);
        assert_eq!(refused.body["issue"][0]["expression"][0], "Claim.related.claim");
        assert_eq!(server.count("requests").await, requests, "nothing new requested");

        // A cancellation of an approved request cancels its authorization as of today (PAS:
        // "the returned ClaimResponse SHALL include the current results for all submitted
        // items, including any items changed or canceled"; X12 306 `C`): the request stays
        // approved, drug given through today stays covered, nothing after.
        let approved = request_id(&updated.body);
        let mut cancel = pas_bundle(&full, "eocco-medicaid", "cancel-1", engine);
        relate(&mut cancel, "upd-1");
        cancel_items(&mut cancel);
        let cancelled = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        keep(&dir, "cancellation-of-approved", &cancelled.body);
        assert_eq!(request_id(&cancelled.body), approved, "the answer is the cancelled request's");
        assert_eq!(review_action(&cancelled.body), "C", "{}", cancelled.body);
        let notes = cancelled.body["entry"][0]["resource"]["processNote"].to_string();
        assert!(notes.contains("cancelled by the provider"), "{notes}");
        let record = server.get(&format!("/v1/requests/{approved}"), &reviewer).await.body;
        assert_eq!(record["status"], "approved", "{record}");
        let number = record["authorization"]["number"].as_str().unwrap().to_string();
        assert_eq!(record["authorization"]["cancelled_on"], json!(support::days_after_receipt(0)), "{record}");
        assert_eq!(server.count("requests").await, requests, "nothing new requested");
        let spend = |days: i64| {
            let (server, ehr, number) = (&server, ehr.clone(), number.clone());
            async move {
                server
                    .post(&format!("/v1/authorizations/{number}/usage"), &ehr,
                        &json!({"units": 10, "date_of_service": support::days_after_receipt(days)}))
                    .await
            }
        };
        spend(1).await.expect_problem(422, "date_of_service");
        spend(0).await.expect(201);
        // Sent again: the same answer, the day unchanged.
        let again = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(review_action(&again.body), "C", "{}", again.body);
        // Another clinic cannot cancel it: the Claim is not theirs.
        let mut foreign = pas_bundle(&full, "eocco-medicaid", "cancel-5", engine);
        relate(&mut foreign, "upd-1");
        cancel_items(&mut foreign);
        assert_eq!(server.post("/fhir/Claim/$submit", &other, &foreign).await.status, 404);

        // A cancellation withdraws the pending request it names and authorizes nothing.
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pas_bundle(&partial, "eocco-medicaid", "orig-2", engine)).await;
        let original = request_id(&pended.body);
        let authorizations = server.count("authorizations").await;
        let mut cancel = pas_bundle(&full, "eocco-medicaid", "cancel-2", engine);
        relate(&mut cancel, "orig-2");
        cancel_items(&mut cancel);
        let cancelled = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        assert_eq!(request_id(&cancelled.body), original, "the answer is the cancelled request's");
        assert_eq!(review_action(&cancelled.body), "C", "{}", cancelled.body);
        assert_eq!(status(original.clone()).await, "withdrawn");
        assert_eq!(server.count("authorizations").await, authorizations, "a cancellation authorizes nothing");
        // A cancellation of a Claim no request of this clinic has, or another clinic's: 404.
        let mut stray = pas_bundle(&full, "eocco-medicaid", "cancel-3", engine);
        relate(&mut stray, "never-sent");
        cancel_items(&mut stray);
        assert_eq!(server.post("/fhir/Claim/$submit", &ehr, &stray).await.status, 404);
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pas_bundle(&partial, "eocco-medicaid", "orig-4", engine)).await;
        let mut foreign = pas_bundle(&full, "eocco-medicaid", "cancel-4", engine);
        relate(&mut foreign, "orig-4");
        cancel_items(&mut foreign);
        assert_eq!(server.post("/fhir/Claim/$submit", &other, &foreign).await.status, 404);
        assert_eq!(status(request_id(&pended.body)).await, "pending_information");

        // Urgency from PAS 2.2.1's `levelOfServiceCode`: U is expedited.
        let mut urgent = pas_bundle(&partial, "eocco-medicaid", "urgent-1", engine);
        urgent["entry"][0]["resource"]["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-levelOfServiceCode",
            "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1338", "code": "U"}]}}]);
        let answered = server.post("/fhir/Claim/$submit", &ehr, &urgent).await;
        assert_eq!(answered.status, 200, "{}", answered.body);
        let record = server.get(&format!("/v1/requests/{}", request_id(&answered.body)), &reviewer).await;
        assert_eq!(record.body["urgency"], "expedited", "{}", record.body);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// The request ids a PAS response Bundle answers for, item by item (a pended item carries
/// its request's id as its administration reference number).
fn answered_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"][0]["resource"]["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            extension(
                &item["extension"],
                "extension-administrationReferenceNumber",
            )
            .and_then(|e| e["valueString"].as_str())
            .expect("a pended item's request id")
            .to_string()
        })
        .collect()
}

/// The guide's example Bundle `name`, with its Bundle identifier made `bundle` (the examples
/// share one) and its Claim's trace number `trace`.
fn pas_example(name: &str, bundle: &str, trace: &str) -> Value {
    let mut example = read(&repo().join(format!("tests/fhir/pas-examples/{name}.json")));
    example["identifier"]["value"] = json!(bundle);
    example["entry"][0]["resource"]["identifier"][0]["value"] = json!(trace);
    example
}

/// An update replaces only the Claim it names: FHIR identifiers match on system and value,
/// so a Claim with the same trace number under another system stays as it was, whether
/// the update names its Claim by a reference into its Bundle (the guide's update example) or
/// by identifier; an identifier without a system that two Claims share is refused, not
/// applied to both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_replaces_only_the_claim_it_names() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let status = |id: String| {
            let server = &server;
            let ehr = ehr.clone();
            async move { server.get(&format!("/v1/requests/{id}"), &ehr).await.body["status"].as_str().unwrap_or_default().to_string() }
        };
        let trace = "T650de189";
        // The guide's Homecare Claim (PATIENT_EVENT_TRACE_NUMBER) and its Referral Claim
        // (urn:trnorg:9012345678), with the same trace number.
        let homecare = server
            .post("/fhir/Claim/$submit", &ehr, &pas_example("Bundle-HomecareAuthorizationBundleExample", "home-1", trace))
            .await;
        assert_eq!(homecare.status, 200, "{}", homecare.body);
        let homecare = answered_ids(&homecare.body);
        let referral = server
            .post("/fhir/Claim/$submit", &ehr, &pas_example("Bundle-ReferralAuthorizationBundleExample", "ref-1", trace))
            .await;
        assert_eq!(referral.status, 200, "{}", referral.body);
        let referral = answered_ids(&referral.body);
        assert_eq!(referral.len(), 1);
        let pending = status(referral[0].clone()).await;
        assert!(pending.starts_with("pending_"), "{pending}");

        // The guide's update, naming the Homecare Claim by a reference into its Bundle.
        let mut update = pas_example("Bundle-HomecareAuthorizationUpdateBundleExample", "upd-1", "T650de189-UPDATE");
        let named = update["entry"].as_array_mut().unwrap().iter_mut().skip(1).find(|e| e["resource"]["resourceType"] == "Claim").unwrap();
        named["resource"]["identifier"][0]["value"] = json!(trace);
        let updated = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        for id in &homecare {
            assert_eq!(status(id.clone()).await, "withdrawn", "{id}");
        }
        assert_eq!(status(referral[0].clone()).await, pending, "another system's Claim is not updated");

        // By identifier without a system, two Claims have the value: refused, neither touched.
        let relate = |bundle: &mut Value, identifier: Value| {
            bundle["entry"][0]["resource"]["related"] = json!([{"claim": {"identifier": identifier},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
        };
        let mut vague = pas_example("Bundle-ReferralAuthorizationBundleExample", "ref-2", "T650de189-2");
        relate(&mut vague, json!({"value": trace}));
        let refused = server.post("/fhir/Claim/$submit", &ehr, &vague).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["issue"][0]["expression"][0], "Claim.related");
        assert_eq!(status(referral[0].clone()).await, pending);

        // By identifier with its system: that Claim, and only it.
        let mut exact = pas_example("Bundle-ReferralAuthorizationBundleExample", "ref-3", "T650de189-3");
        relate(&mut exact, json!({"system": "urn:trnorg:9012345678", "value": trace}));
        let replaced = server.post("/fhir/Claim/$submit", &ehr, &exact).await;
        assert_eq!(replaced.status, 200, "{}", replaced.body);
        assert_eq!(status(referral[0].clone()).await, "withdrawn");
        let replacement = answered_ids(&replaced.body);
        assert_ne!(replacement, referral);
        assert!(status(replacement[0].clone()).await.starts_with("pending_"));
        server.stop().await;
    })
    .await;
}

/// PAS 2.2.1: "To cancel the entire request, clients will send a certificationType extension
/// with a code of 3 (Cancel) in the Claim.extension element of a PAS Claim Update resource":
/// with its items left as they were, the update cancels the request it names, as cancelling
/// every item does: answered `C`, withdrawn, and nothing new requested or authorized.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_level_cancellation_cancels_the_whole_request() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let engine = &server.state.service.engine;
        let mut partial = support::recorded_case("E01");
        partial["diagnosis"].as_object_mut().unwrap().remove("lineage");
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pas_bundle(&partial, "eocco-medicaid", "whole-1", engine)).await;
        assert_eq!(review_action(&pended.body), "A4", "{}", pended.body);
        let original = answered_ids(&pended.body);
        let (requests, authorizations) = (server.count("requests").await, server.count("authorizations").await);

        let mut cancel = pas_bundle(&partial, "eocco-medicaid", "whole-cancel-1", engine);
        let claim = &mut cancel["entry"][0]["resource"];
        claim["related"] = json!([{"claim": {"identifier": {"system": "urn:trnorg:1234567890", "value": "whole-1"}},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
        claim["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType",
            "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1322", "code": "3", "display": "Cancel"}]}}]);
        let cancelled = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        assert_eq!(review_action(&cancelled.body), "C", "{}", cancelled.body);
        assert_eq!(answered_ids(&cancelled.body), original, "the answer is the cancelled request's");
        let record = server.get(&format!("/v1/requests/{}", original[0]), &ehr).await;
        assert_eq!(record.body["status"], "withdrawn", "{}", record.body);
        assert_eq!(server.count("requests").await, requests, "a cancellation requests nothing new");
        assert_eq!(server.count("authorizations").await, authorizations);
        // Sent again: the same answer.
        let again = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(review_action(&again.body), "C");
        assert_eq!(server.count("requests").await, requests);
        server.stop().await;
    })
    .await;
}

/// A cancellation of a Claim whose items were decided apart cancels what it can: the
/// approved item's authorization (answered `C`), while the denied item has nothing to cancel
/// and is answered as it stands (`A3`); a cancellation that can cancel nothing (every item
/// denied) changes nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_cancels_what_it_can_of_a_claim_decided_item_by_item() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, reviewer) = server.key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology").await;
        let trace = "T-decided-apart";
        let submitted = server
            .post("/fhir/Claim/$submit", &ehr, &pas_example("Bundle-HomecareAuthorizationBundleExample", "apart-1", trace))
            .await;
        assert_eq!(submitted.status, 200, "{}", submitted.body);
        let ids = answered_ids(&submitted.body);
        assert_eq!(ids.len(), 2, "{}", submitted.body);
        let basis = "Plan benefit: home health services, medically necessary";
        let determine = |id: &str, body: Value| {
            let (server, reviewer, path) = (&server, reviewer.clone(), format!("/v1/requests/{id}/determination"));
            async move { server.post(&path, &reviewer, &body).await.expect(200); }
        };
        determine(&ids[0], json!({"decision": "approve_with_changes", "criterion": basis, "reason": "Needed after discharge.",
            "changes": {"units": 10, "cycles": 2, "period_days": 14}})).await;
        determine(&ids[1], json!({"decision": "deny", "criterion": "Not a covered benefit of the plan", "reason": "Not covered."})).await;
        let cancellation = |bundle: &str, named: &str| {
            let mut cancel = pas_example("Bundle-HomecareAuthorizationBundleExample", bundle, &format!("{named}-cancel"));
            let claim = &mut cancel["entry"][0]["resource"];
            claim["related"] = json!([{"claim": {"identifier": {"system": "http://example.org/PATIENT_EVENT_TRACE_NUMBER", "value": named}},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
            claim["meta"] = json!({"profile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update"]});
            claim["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType",
                "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1322", "code": "3", "display": "Cancel"}]}}]);
            cancel
        };
        let cancelled = server.post("/fhir/Claim/$submit", &ehr, &cancellation("apart-2", trace)).await;
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        let codes: Vec<String> = item_actions(&cancelled.body).into_iter().map(|(_, code)| code).collect();
        assert_eq!(codes, ["C", "A3"], "{}", cancelled.body);
        let approved = server.get(&format!("/v1/requests/{}", ids[0]), &ehr).await.body;
        assert_eq!(approved["status"], "approved", "{approved}");
        assert!(approved["authorization"]["cancelled_on"].is_string(), "{approved}");
        let denied = server.get(&format!("/v1/requests/{}", ids[1]), &ehr).await.body;
        assert_eq!(denied["status"], "denied", "{denied}");

        // Every item denied: nothing to cancel; the Claim answered as it stands, with a note.
        let trace = "T-all-denied";
        let submitted = server
            .post("/fhir/Claim/$submit", &ehr, &pas_example("Bundle-HomecareAuthorizationBundleExample", "denied-1", trace))
            .await;
        for id in answered_ids(&submitted.body) {
            determine(&id, json!({"decision": "deny", "criterion": "Not a covered benefit of the plan", "reason": "Not covered."})).await;
        }
        let refused = server.post("/fhir/Claim/$submit", &ehr, &cancellation("denied-2", trace)).await;
        assert_eq!(refused.status, 200, "{}", refused.body);
        let codes: Vec<String> = item_actions(&refused.body).into_iter().map(|(_, code)| code).collect();
        assert_eq!(codes, ["A3", "A3"], "{}", refused.body);
        let notes = refused.body["entry"][0]["resource"]["processNote"].to_string();
        assert!(notes.contains("was not cancelled"), "{notes}");
        server.stop().await;
    })
    .await;
}

/// Each item of a PAS response with its review action code: (itemSequence, code).
fn item_actions(bundle: &Value) -> Vec<(Value, String)> {
    bundle["entry"][0]["resource"]["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let action = extension(
                &item["adjudication"][0]["extension"],
                "extension-reviewAction",
            )
            .and_then(|a| extension(&a["extension"], "extension-reviewActionCode"))
            .expect("a review action code");
            (
                item["itemSequence"].clone(),
                action["valueCodeableConcept"]["coding"][0]["code"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// The guide's update example keeps item 1, cancels item 2 (certification type `3`,
/// `infoCancelled`) and adds item 3: "Canceling an item means that the service is no longer
/// required and no authorization is required", so item 2 is no new request: it is answered
/// cancelled (`C`) by the original's item 2, and only items 1 and 3 are requested anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_item_cancelled_in_an_update_is_answered_cancelled_not_requested() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let dir = emitted_dir("pas-item-cancelled");
        let original = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &pas_example(
                    "Bundle-HomecareAuthorizationBundleExample",
                    "home-c",
                    "T-cancel",
                ),
            )
            .await;
        assert_eq!(original.status, 200, "{}", original.body);
        let original = answered_ids(&original.body);
        assert_eq!(original.len(), 2);
        let requests = server.count("requests").await;

        let mut update = pas_example(
            "Bundle-HomecareAuthorizationUpdateBundleExample",
            "upd-c",
            "T-cancel-UPDATE",
        );
        let named = update["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .skip(1)
            .find(|e| e["resource"]["resourceType"] == "Claim")
            .unwrap();
        named["resource"]["identifier"][0]["value"] = json!("T-cancel");
        let updated = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        keep(&dir, "update-answer", &updated.body);
        let mut actions = item_actions(&updated.body);
        actions.sort_by_key(|(sequence, _)| sequence.as_u64());
        assert_eq!(
            actions,
            [
                (json!(1), "A4".to_string()),
                (json!(2), "C".to_string()),
                (json!(3), "A4".to_string())
            ],
            "{}",
            updated.body
        );
        assert_eq!(
            server.count("requests").await,
            requests + 2,
            "items 1 and 3 only are requested anew"
        );
        // Item 2 is answered by the original's item 2, cancelled; both originals withdrawn.
        let ids = answered_ids(&updated.body);
        assert!(ids.contains(&original[1]), "{ids:?} {original:?}");
        for id in &original {
            let record = server.get(&format!("/v1/requests/{id}"), &ehr).await;
            assert_eq!(record.body["status"], "withdrawn", "{}", record.body);
        }
        // Sent again: the same answer, nothing more requested.
        let again = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(answered_ids(&again.body), ids);
        assert_eq!(server.count("requests").await, requests + 2);
        // The same items in a Claim that updates nothing: the cancelled item cancels nothing
        // and is refused naming it, never decided (it was authorized like any other item).
        let mut fresh = pas_example(
            "Bundle-HomecareAuthorizationUpdateBundleExample",
            "new-c",
            "T-new-with-cancelled",
        );
        let entries = fresh["entry"].as_array_mut().unwrap();
        entries.retain(|e| {
            e["resource"]["resourceType"] != "Claim"
                || e["resource"]["identifier"][0]["value"] == "T-new-with-cancelled"
        });
        for entry in entries.iter_mut() {
            if let Some(claim) = entry["resource"].as_object_mut() {
                claim.remove("related");
            }
        }
        let refused = server.post("/fhir/Claim/$submit", &ehr, &fresh).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert!(
            refused.body.to_string().contains("certificationType"),
            "{}",
            refused.body
        );
        assert_eq!(server.count("requests").await, requests + 2);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// An inquiry finds a request by its trace number for the same member only, and answers
/// under PAS's inquiry-response profiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inquiry_matches_the_trace_number_and_the_member() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let dir = emitted_dir("inquiry");
        let engine = &server.state.service.engine;
        let case = support::recorded_case("E01");
        let bundle = pas_bundle(&case, "eocco-medicaid", "trace-1", engine);
        assert_eq!(
            server
                .post("/fhir/Claim/$submit", &ehr, &bundle)
                .await
                .status,
            200
        );
        let inquiry = server.post("/fhir/Claim/$inquire", &ehr, &bundle).await;
        assert_eq!(inquiry.status, 200, "{}", inquiry.body);
        let answer = &inquiry.body["parameter"][0]["resource"];
        keep(&dir, "inquiry-response", answer);
        assert!(
            answer["meta"]["profile"][0]
                .as_str()
                .unwrap()
                .ends_with("profile-pas-inquiry-response-bundle")
        );
        assert!(
            answer["entry"][0]["resource"]["meta"]["profile"][0]
                .as_str()
                .unwrap()
                .ends_with("profile-claiminquiryresponse")
        );
        // The same trace number for another member finds nothing: PAS's inquiry returns
        // 0..* Bundles, so a search that matched none is answered 200 with no Bundle (a 4XX
        // would say the transaction failed), as a trace number never sent is.
        let mut stranger = bundle.clone();
        for entry in stranger["entry"].as_array_mut().unwrap() {
            if entry["resource"]["resourceType"] == "Patient" {
                entry["resource"]["birthDate"] = json!("1999-09-09");
                entry["resource"]["name"] = json!([{"family": "Other", "given": ["Person"]}]);
            }
        }
        let none = server.post("/fhir/Claim/$inquire", &ehr, &stranger).await;
        assert_eq!(none.status, 200, "{}", none.body);
        assert_eq!(none.body, json!({"resourceType": "Parameters"}));
        keep(&dir, "inquiry-none", &none.body);
        let mut unsent = bundle.clone();
        unsent["entry"][0]["resource"]["identifier"][0]["value"] = json!("never-sent");
        let unsent = server.post("/fhir/Claim/$inquire", &ehr, &unsent).await;
        assert_eq!((unsent.status, &unsent.body), (200, &none.body));
        // A trace number is matched as sent: another case of its letters is another one
        // (SQLite's LIKE ignores case), and its `_` or `%` match only themselves.
        let mut elsewhere = bundle.clone();
        elsewhere["entry"][0]["resource"]["identifier"][0]["system"] = json!("urn:other");
        let found = server.post("/fhir/Claim/$inquire", &ehr, &elsewhere).await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert_ne!(
            found.body, none.body,
            "the same trace number under another system"
        );
        for other in ["TRACE-1", "trace_1", "trace%"] {
            let mut other_case = bundle.clone();
            other_case["entry"][0]["resource"]["identifier"][0]["value"] = json!(other);
            other_case["entry"][0]["resource"]["identifier"][0]["system"] = json!("urn:other");
            let found = server.post("/fhir/Claim/$inquire", &ehr, &other_case).await;
            assert_eq!((found.status, &found.body), (200, &none.body), "{other}");
        }
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// A PAS request is stored under the member its Coverage names (`subscriberId`), so the
/// member's course is the records': EOCCO's second initial approval of one member's course,
/// asked for by another Claim, is not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pas_request_is_decided_on_its_members_course() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let engine = &server.state.service.engine;
        let with_member = |trace: &str, member: &str| {
            let mut bundle = pas_bundle(
                &support::recorded_case("E01"),
                "eocco-medicaid",
                trace,
                engine,
            );
            for entry in bundle["entry"].as_array_mut().unwrap() {
                if entry["resource"]["resourceType"] == "Coverage" {
                    entry["resource"]["subscriberId"] = json!(member);
                }
            }
            bundle
        };
        let first = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &with_member("course-1", "M-PAS-1"),
            )
            .await;
        assert_eq!(review_action(&first.body), "A1", "{}", first.body);
        let again = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &with_member("course-2", "M-PAS-1"),
            )
            .await;
        assert_ne!(review_action(&again.body), "A1", "{}", again.body);
        // Another member's first request is approved as the first was.
        let other = server
            .post(
                "/fhir/Claim/$submit",
                &ehr,
                &with_member("course-3", "M-PAS-2"),
            )
            .await;
        assert_eq!(review_action(&other.body), "A1", "{}", other.body);
        assert_eq!(server.count("authorizations").await, 2);
        assert_eq!(
            server.count("requests WHERE member_id = 'M-PAS-1'").await,
            2
        );
        server.stop().await;
    })
    .await;
}

/// A Claim holds at most 50 items (each a request of its own, every one of which an update of
/// the Claim must reach): one more is refused naming `Claim.item`, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_of_more_items_than_an_update_reaches_is_refused() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let engine = &server.state.service.engine;
        let mut bundle = pas_bundle(
            &support::recorded_case("E01"),
            "eocco-medicaid",
            "many-items",
            engine,
        );
        let item = bundle["entry"][0]["resource"]["item"][0].clone();
        let items: Vec<Value> = (1..=51)
            .map(|sequence| {
                let mut item = item.clone();
                item["sequence"] = json!(sequence);
                item
            })
            .collect();
        bundle["entry"][0]["resource"]["item"] = json!(items);
        let refused = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_outcome(&refused, 422, "Claim.item");
        assert_eq!(server.count("requests").await, 0);
        server.stop().await;
    })
    .await;
}

/// PAS 2.2.1: "The Claim.identifier is for the TRN of the ClaimInquiry … To search for a
/// specific authorization, the REF-NT and REF-BB can be used": an inquiry with a trace number
/// of its own finds the request by the authorization number or the administration reference
/// number its answer gave; another organization's number finds nothing, as an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inquiry_finds_a_request_by_its_authorization_or_reference_number() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "Clinic B EHR", "").await;
        let engine = &server.state.service.engine;
        let bundle = pas_bundle(&support::recorded_case("E01"), "eocco-medicaid", "ref-1", engine);
        let submitted = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(review_action(&submitted.body), "A1", "{}", submitted.body);
        let item = &submitted.body["entry"][0]["resource"]["item"][0];
        let number = extension(&item["extension"], "extension-authorizationNumber").unwrap()["valueString"].clone();
        assert!(number.as_str().unwrap().starts_with("PA-"), "{item}");
        // A pended request is followed by its administration reference number.
        let mut partial = support::recorded_case("E01");
        partial["diagnosis"].as_object_mut().unwrap().remove("lineage");
        let pended_bundle = pas_bundle(&partial, "eocco-medicaid", "ref-2", engine);
        let pended = server.post("/fhir/Claim/$submit", &ehr, &pended_bundle).await;
        assert_eq!(review_action(&pended.body), "A4", "{}", pended.body);
        let pended_item = &pended.body["entry"][0]["resource"]["item"][0];
        let reference = extension(&pended_item["extension"], "extension-administrationReferenceNumber").unwrap()["valueString"].clone();
        let inquiry = |url_end: &str, value: &Value, at_item: bool| {
            let mut inquiry = if value == &reference { pended_bundle.clone() } else { bundle.clone() };
            let claim = &mut inquiry["entry"][0]["resource"];
            claim["identifier"][0]["value"] = json!(format!("inquiry-{url_end}"));
            let extension = json!({"url": format!("http://hl7.org/fhir/us/davinci-pas/StructureDefinition/{url_end}"), "valueString": value});
            let holder = if at_item { &mut claim["item"][0] } else { claim };
            match holder["extension"].as_array_mut() {
                Some(list) => list.push(extension),
                None => holder["extension"] = json!([extension]),
            }
            inquiry
        };
        for (url_end, value, at_item) in [
            ("extension-authorizationNumber", &number, false),
            ("extension-authorizationNumber", &number, true),
            ("extension-administrationReferenceNumber", &reference, true),
        ] {
            let found = server.post("/fhir/Claim/$inquire", &ehr, &inquiry(url_end, value, at_item)).await;
            assert_eq!(found.status, 200, "{}", found.body);
            let bundles = found.body["parameter"].as_array().unwrap();
            assert_eq!(bundles.len(), 1, "{url_end}: {}", found.body);
            let expected = if value == &reference { "A4" } else { "A1" };
            assert_eq!(review_action(&bundles[0]["resource"]), expected, "{}", found.body);
            // Another organization, and a number nobody was given: nothing found.
            let theirs = server.post("/fhir/Claim/$inquire", &other, &inquiry(url_end, value, at_item)).await;
            assert_eq!((theirs.status, &theirs.body), (200, &json!({"resourceType": "Parameters"})));
            let unknown = server.post("/fhir/Claim/$inquire", &ehr, &inquiry(url_end, &json!("PA-NOSUCH"), at_item)).await;
            assert_eq!((unknown.status, &unknown.body), (200, &json!({"resourceType": "Parameters"})));
        }
        server.stop().await;
    })
    .await;
}

/// PAS: "If a search is for a 'replaced' prior authorization, the search result SHALL include
/// the 'current' prior authorization response." An inquiry about a Claim an update replaced
/// answers the update's response (and its own update's, along the chain), not the replaced
/// request cancelled; only within the organization, and only for the same member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inquiry_about_a_replaced_claim_answers_the_current_one() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "Clinic B EHR", "").await;
        let engine = &server.state.service.engine;
        let dir = emitted_dir("inquiry-replaced");
        let full = support::recorded_case("E01");
        let mut partial = full.clone();
        partial["diagnosis"].as_object_mut().unwrap().remove("lineage");
        let relate = |bundle: &mut Value, prior: &str| {
            bundle["entry"][0]["resource"]["related"] = json!([{"claim": {"identifier": {"system": "urn:trnorg:1234567890", "value": prior}},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]);
        };
        let inquire = |bundle: Value, key: String| {
            let server = &server;
            async move {
                let reply = server.post("/fhir/Claim/$inquire", &key, &bundle).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                reply.body
            }
        };
        // Pended for a missing fact, then updated twice: pended again, then approved.
        let original = pas_bundle(&partial, "eocco-medicaid", "chain-1", engine);
        let pended = server.post("/fhir/Claim/$submit", &ehr, &original).await;
        assert_eq!(review_action(&pended.body), "A4", "{}", pended.body);
        let mut first = pas_bundle(&partial, "eocco-medicaid", "chain-2", engine);
        relate(&mut first, "chain-1");
        let first = server.post("/fhir/Claim/$submit", &ehr, &first).await;
        assert_eq!(review_action(&first.body), "A4", "{}", first.body);
        // Between the updates, the original's inquiry answers the first update, pended.
        let answer = inquire(original.clone(), ehr.clone()).await;
        let found = answer["parameter"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{answer}");
        assert_eq!(review_action(&found[0]["resource"]), "A4", "{answer}");
        assert_eq!(found[0]["resource"]["entry"][0]["resource"]["request"]["identifier"]["value"], "chain-2");
        let mut second = pas_bundle(&full, "eocco-medicaid", "chain-3", engine);
        relate(&mut second, "chain-2");
        let approved = server.post("/fhir/Claim/$submit", &ehr, &second).await;
        assert_eq!(review_action(&approved.body), "A1", "{}", approved.body);
        let current = &approved.body["entry"][0]["resource"];
        // The original's inquiry, and the first update's: the current response, approved.
        for (name, inquiry) in [("original", original.clone()), ("first-update", pas_bundle(&partial, "eocco-medicaid", "chain-2", engine))] {
            let answer = inquire(inquiry, ehr.clone()).await;
            keep(&dir, name, &answer);
            let found = answer["parameter"].as_array().unwrap();
            assert_eq!(found.len(), 1, "{name}: {answer}");
            let response = &found[0]["resource"]["entry"][0]["resource"];
            assert_eq!(review_action(&found[0]["resource"]), "A1", "{name}: {answer}");
            assert_eq!(response["request"], current["request"], "{name}");
            assert_eq!(response["preAuthRef"], current["preAuthRef"], "{name}");
        }
        // Another organization, or another member: nothing, as before.
        assert_eq!(inquire(original.clone(), other.clone()).await, json!({"resourceType": "Parameters"}));
        let mut stranger = original.clone();
        for entry in stranger["entry"].as_array_mut().unwrap() {
            if entry["resource"]["resourceType"] == "Patient" {
                entry["resource"]["birthDate"] = json!("1999-09-09");
                entry["resource"]["name"] = json!([{"family": "Other", "given": ["Person"]}]);
            }
        }
        assert_eq!(inquire(stranger, ehr.clone()).await, json!({"resourceType": "Parameters"}));

        // The guide's update keeps item 1, cancels item 2 and adds item 3: the original's
        // inquiry answers the update's Claim, with item 2 cancelled, as `$submit` answered it.
        let homecare = pas_example("Bundle-HomecareAuthorizationBundleExample", "home-r", "T-replaced");
        assert_eq!(server.post("/fhir/Claim/$submit", &ehr, &homecare).await.status, 200);
        let mut update = pas_example("Bundle-HomecareAuthorizationUpdateBundleExample", "upd-r", "T-replaced-UPDATE");
        let named = update["entry"].as_array_mut().unwrap().iter_mut().skip(1).find(|e| e["resource"]["resourceType"] == "Claim").unwrap();
        named["resource"]["identifier"][0]["value"] = json!("T-replaced");
        let updated = server.post("/fhir/Claim/$submit", &ehr, &update).await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        let answer = inquire(homecare, ehr.clone()).await;
        keep(&dir, "item-cancelled", &answer);
        let found = answer["parameter"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{answer}");
        let mut actions = item_actions(&found[0]["resource"]);
        actions.sort_by_key(|(sequence, _)| sequence.as_u64());
        let mut answered = item_actions(&updated.body);
        answered.sort_by_key(|(sequence, _)| sequence.as_u64());
        assert_eq!(actions, answered, "{answer}");
        assert_eq!(found[0]["resource"]["entry"][0]["resource"]["request"]["identifier"]["value"], "T-replaced-UPDATE");
        // The update's own identifier finds the same: the whole Claim, its cancelled item too
        // (PAS: "the returned ClaimResponse SHALL include the current results for all
        // submitted items, including any items changed or canceled").
        let answer = inquire(update.clone(), ehr.clone()).await;
        keep(&dir, "by-update-identifier", &answer);
        let found = answer["parameter"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{answer}");
        let mut actions = item_actions(&found[0]["resource"]);
        actions.sort_by_key(|(sequence, _)| sequence.as_u64());
        assert_eq!(actions, answered, "{answer}");

        // A Claim-level cancellation with an identifier of its own: an inquiry by it finds the
        // request it cancelled, answered `C`, as does one by the original.
        let original = pas_bundle(&partial, "eocco-medicaid", "whole-q-1", engine);
        assert_eq!(review_action(&server.post("/fhir/Claim/$submit", &ehr, &original).await.body), "A4");
        let mut cancel = pas_bundle(&partial, "eocco-medicaid", "whole-q-cancel", engine);
        relate(&mut cancel, "whole-q-1");
        cancel["entry"][0]["resource"]["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType",
            "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1322", "code": "3", "display": "Cancel"}]}}]);
        let cancelled = server.post("/fhir/Claim/$submit", &ehr, &cancel).await;
        assert_eq!(review_action(&cancelled.body), "C", "{}", cancelled.body);
        for (name, inquiry) in [("by-cancellation-identifier", cancel), ("cancelled-original", original)] {
            let answer = inquire(inquiry, ehr.clone()).await;
            keep(&dir, name, &answer);
            let found = answer["parameter"].as_array().unwrap();
            assert_eq!(found.len(), 1, "{name}: {answer}");
            assert_eq!(review_action(&found[0]["resource"]), "C", "{name}: {answer}");
        }
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// A subscription is updated in place (`PUT`), only by its organization; each save sends the
/// endpoint the handshake, and an endpoint that does not answer it leaves it in `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_is_updated_and_handshaken() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (_, other) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let (endpoint, mut received) = subscriber().await;
        let mut subscription =
            read(&repo().join("tests/fhir/pas-examples/Subscription-PASSubscriptionExample.json"));
        subscription["channel"]["endpoint"] = json!("http://127.0.0.1:9/closed");
        let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(
            created.body["status"], "error",
            "no handshake answered: {}",
            created.body
        );
        let id = created.body["id"].as_str().unwrap().to_string();

        subscription["channel"]["endpoint"] = json!(endpoint);
        subscription["id"] = json!(id);
        let updated = server
            .call(
                reqwest::Method::PUT,
                &format!("/fhir/Subscription/{id}"),
                Some(&ehr),
                Some(&subscription),
                &[],
            )
            .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        assert_eq!(updated.body["status"], "active");
        assert!(updated.body.get("error").is_none(), "{}", updated.body);
        let handshake = received.recv().await.unwrap();
        assert!(support::is_handshake(&handshake), "{handshake}");
        assert_eq!(
            handshake["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"],
            format!("Subscription/{id}")
        );
        assert_eq!(
            server
                .get(&format!("/fhir/Subscription/{id}"), &ehr)
                .await
                .body["channel"]["endpoint"],
            json!(endpoint)
        );

        // Another id, or another organization's: as if it did not exist.
        let wrong = server
            .call(
                reqwest::Method::PUT,
                "/fhir/Subscription/sub-nothere",
                Some(&ehr),
                Some(&subscription),
                &[],
            )
            .await;
        assert_eq!(wrong.status, 404, "{}", wrong.body);
        let foreign = server
            .call(
                reqwest::Method::PUT,
                &format!("/fhir/Subscription/{id}"),
                Some(&other),
                Some(&subscription),
                &[],
            )
            .await;
        assert_eq!(foreign.status, 404, "{}", foreign.body);
        // The CapabilityStatement says so: every interaction `/fhir/Subscription` serves.
        let metadata = server.get("/fhir/metadata", &ehr).await;
        let resources = metadata.body["rest"][0]["resource"].as_array().unwrap();
        let subscription = resources
            .iter()
            .find(|r| r["type"] == "Subscription")
            .unwrap();
        let mut interactions: Vec<&str> = subscription["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        interactions.sort_unstable();
        assert_eq!(
            interactions,
            ["create", "delete", "read", "update"],
            "{subscription}"
        );
        server.stop().await;
    })
    .await;
}

/// One subscription per organization: a second create is refused (409) naming the one to
/// update with `PUT`, and the first is left as it was (replacing it would silently take its
/// system's notifications); after a delete, a create creates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_subscription_create_is_refused() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (endpoint, _received) = subscriber().await;
        let mut subscription =
            read(&repo().join("tests/fhir/pas-examples/Subscription-PASSubscriptionExample.json"));
        subscription["channel"]["endpoint"] = json!(endpoint);
        let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        let path = format!("/fhir/Subscription/{id}");
        let before = server.get(&path, &ehr).await;
        assert_eq!(before.status, 200, "{}", before.body);

        let mut another = subscription.clone();
        another["channel"]["endpoint"] = json!("http://127.0.0.1:9/elsewhere");
        another["_criteria"]["extension"][0]["valueString"] = json!("orgIdentifier=9999999999");
        let second = server.post("/fhir/Subscription", &ehr, &another).await;
        assert_outcome(&second, 409, "a second create");
        let said = second.body.to_string();
        assert!(
            said.contains(&format!("PUT /fhir/Subscription/{id}")),
            "names the subscription to update: {said}"
        );
        assert_eq!(second.header("location"), None);
        let after = server.get(&path, &ehr).await;
        assert_eq!(after.status, 200, "{}", after.body);
        assert_eq!(
            after.body, before.body,
            "the first subscription is unchanged"
        );
        assert_eq!(after.body["channel"]["endpoint"], json!(endpoint));

        // Deleted, the organization may create one again.
        let deleted = server
            .call(reqwest::Method::DELETE, &path, Some(&ehr), None, &[])
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.body);
        let again = server.post("/fhir/Subscription", &ehr, &another).await;
        assert_eq!(again.status, 201, "{}", again.body);
        assert_ne!(again.body["id"], json!(id));

        // Creates sent at once: one is created, the others refused.
        let (_, third) = server
            .key("clinic-c", Role::Submitter, "Clinic C EHR", "")
            .await;
        let post = || server.post("/fhir/Subscription", &third, &subscription);
        let (a, b, c, d) = tokio::join!(post(), post(), post(), post());
        let statuses: Vec<u16> = [a, b, c, d].iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            3,
            "{statuses:?}"
        );
        server.stop().await;
    })
    .await;
}

/// A Claim of several items is answered item by item: each item is a request of its own,
/// decided by its own policy (or sent to a clinician), and the one ClaimResponse holds every
/// item's review action.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_item_of_a_claim_gets_its_own_answer() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let dir = emitted_dir("multi-item");
        let case = support::recorded_case("E01");
        let mut bundle = pas_bundle(&case, "eocco-medicaid", "multi-1", &server.state.service.engine);
        let mut oxygen = bundle["entry"][0]["resource"]["item"][0].clone();
        oxygen["sequence"] = json!(2);
        oxygen["productOrService"] = json!({"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": "E0431"}]});
        bundle["entry"][0]["resource"]["item"].as_array_mut().unwrap().push(oxygen);
        let answered = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(answered.status, 200, "{}", answered.body);
        keep(&dir, "answer", &answered.body);
        let items = answered.body["entry"][0]["resource"]["item"].as_array().unwrap().clone();
        let actions: Vec<(Value, Value)> = items
            .iter()
            .map(|i| (i["itemSequence"].clone(), i["adjudication"][0]["extension"][0]["extension"].as_array().unwrap().iter().find(|e| e["url"].as_str().unwrap().ends_with("reviewActionCode")).unwrap()["valueCodeableConcept"]["coding"][0]["code"].clone()))
            .collect();
        assert_eq!(actions, [(json!(1), json!("A1")), (json!(2), json!("A4"))], "{}", answered.body);
        // Sent again: the same answer.
        let again = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(again.body["entry"][0]["resource"]["item"], json!(items));
        // An inquiry finds the one Claim: one Bundle, its ClaimResponse with every item's
        // review action (PAS 2.2.1: a Bundle per matching Claim, results for all its items).
        let inquiry = server.post("/fhir/Claim/$inquire", &ehr, &bundle).await;
        assert_eq!(inquiry.status, 200, "{}", inquiry.body);
        keep(&dir, "inquiry", &inquiry.body);
        let found = inquiry.body["parameter"].as_array().unwrap();
        assert_eq!(found.len(), 1, "one Bundle for the one Claim: {}", inquiry.body);
        let answer = &found[0]["resource"];
        assert_eq!(item_actions(answer), [(json!(1), "A1".to_string()), (json!(2), "A4".to_string())], "{answer}");
        assert!(answer["meta"]["profile"][0].as_str().unwrap().ends_with("profile-pas-inquiry-response-bundle"));
        assert_eq!(answer["entry"][0]["resource"]["request"], answered.body["entry"][0]["resource"]["request"]);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// A member's chart as an EHR's FHIR server holds it: the Patient, conditions and
/// observations of weight (an older one too) and height.
fn chart() -> Value {
    let observation = |id: &str, loinc: &str, value: f64, unit: &str, date: &str| {
        json!({"resource": {"resourceType": "Observation", "id": id, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": "Patient/m1"}, "effectiveDateTime": date,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}})
    };
    let condition = |id: &str, code: &str, status: &str| {
        json!({"resource": {"resourceType": "Condition", "id": id,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]},
            "subject": {"reference": "Patient/m1"}}})
    };
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "m1", "birthDate": "1966-02-11"}},
        condition("c1", "C91.00", "active"),
        condition("c2", "J18.9", "resolved"),
        observation("w-old", "29463-7", 74.0, "kg", "2026-01-10"),
        observation("w-new", "29463-7", 71.0, "kg", "2026-11-20"),
        observation("h", "8302-2", 168.0, "cm", "2026-11-20"),
    ]})
}

#[test]
fn a_dtr_client_fills_the_form_from_the_chart_by_its_expressions() {
    let Some(python) = support::fhir_python() else {
        return;
    };
    let engine = priorauth_core::Engine::bundled().unwrap();
    let map = priorauth_fhir::map::Map::load(priorauth_fhir::map::BUNDLED, &engine).unwrap();
    let canonical = priorauth_fhir::questionnaire::Canonical {
        base: "http://payer.example/fhir".into(),
    };
    // Every policy's form, filled from one chart.
    let dir = emitted_dir("prepopulate");
    keep(&dir, "chart", &chart());
    let mut filled = serde_json::Map::new();
    for policy in &engine.policies {
        let id = policy.id.as_str();
        let questionnaire =
            priorauth_fhir::questionnaire::questionnaire(&engine, policy, &canonical, &map);
        keep(&dir, id, &questionnaire);
        let out = std::process::Command::new(&python)
            .arg(repo().join("tests/fhir/prepopulate.py"))
            .arg(dir.join(format!("{id}.json")))
            .arg(dir.join("chart.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
        filled.extend(answers.as_object().unwrap().clone());
    }
    let filled = Value::Object(filled);
    // The latest weight; the conditions are not the form's to fill (they come with the Claim).
    assert_eq!(
        filled,
        json!({
            "patient.birth_date": ["1966-02-11"],
            "patient.height_cm": ["168.0"],
            "patient.weight_kg": ["71.0"],
        }),
        "{filled}"
    );
    // The form is still what the guides' profiles and the R4 validator take.
    std::fs::remove_file(dir.join("chart.json")).unwrap();
    validate(&dir);
}

/// A PAS item asks for its quantity over its service period: 980 units of Blincyto over one
/// 42-day cycle, without a `request.cycles` answer, was authorized 9 cycles (8,820 units, a
/// year) by Express Scripts' policy, which states no cycles of its own, and with a
/// `request.cycles` answer of 2, 1,960 units. It is one cycle either way. No approval
/// covers more units than the item's quantity.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_is_authorized_no_more_than_its_quantity_asks() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, key) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let mut without_cycles = support::case("E01");
        without_cycles["request"]
            .as_object_mut()
            .unwrap()
            .remove("cycles");
        // A `request.cycles` answer of 2 asks for no more than the item's 980 units over
        // its 42 days either: one cycle.
        let two_cycles = support::case("E01");
        assert_eq!(two_cycles["request"]["cycles"], 2);
        for (case, identifier) in [(without_cycles, "quantity-1"), (two_cycles, "quantity-2")] {
            let bundle = pas_bundle(
                &case,
                "express-scripts-medicare-advantage",
                identifier,
                &server.state.service.engine,
            );
            let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(review_action(&reply.body), "A1", "{}", reply.body);
            let authorization = authorization_of(&server, &key, &reply.body).await;
            assert_eq!(authorization["cycles"], 1, "{identifier}: {authorization}");
            assert_eq!(authorization["approved_units"], 980, "{identifier}");
        }
        // Read as a rate over its period, 980 units over 43 days were 957 a cycle for the
        // two cycles that start in them (1,914 units), and 35 units over one day a daily
        // dose for a cycle's 28 infusion days (980): the item's quantity is all there is.
        // And 980 over 84 days (a continued-therapy cycle's) are one cycle of 980, not two
        // halves too small to be given at that cycle's pace; 1,960 over 84 days two of 980.
        for (units, days, identifier, cycles) in [
            (980, 43, "quantity-3", 1),
            (35, 1, "quantity-4", 1),
            (980, 84, "quantity-5", 1),
            (1960, 84, "quantity-6", 2),
        ] {
            let mut case = support::case("E01");
            let request = case["request"].as_object_mut().unwrap();
            request.remove("cycles");
            request.insert("units".into(), json!(units));
            request.insert("units_period_days".into(), json!(days));
            let bundle = pas_bundle(
                &case,
                "express-scripts-medicare-advantage",
                identifier,
                &server.state.service.engine,
            );
            let reply = server.post("/fhir/Claim/$submit", &key, &bundle).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(review_action(&reply.body), "A1", "{}", reply.body);
            let authorization = authorization_of(&server, &key, &reply.body).await;
            assert_eq!(
                authorization["approved_units"], units,
                "{identifier}: {authorization}"
            );
            assert_eq!(
                authorization["cycles"], cycles,
                "{identifier}: {authorization}"
            );
        }
        server.stop().await;
    })
    .await;
}

/// A request no policy governs (here: a plan code the service does not know) is approved by
/// a clinician within the drug's label when the catalog holds the drug: no more units a
/// cycle or cycles than the label gives, and usage paced at its shortest cycle (24 cycles of
/// 100,000 units of Blincyto were approved, and a course's units spent in a day).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_no_policy_sized_stays_within_the_drugs_label() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
            .await;
        let bundle = pas_bundle(
            &support::recorded_case("E01"),
            "EHR-PLAN-7",
            "unsized-1",
            &server.state.service.engine,
        );
        let submitted = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
        assert_eq!(submitted.status, 200, "{}", submitted.body);
        let ids = answered_ids(&submitted.body);
        let path = format!("/v1/requests/{}/determination", ids[0]);
        let basis = "Plan benefit: oncology drugs per the label";
        let determine = |changes: Value| {
            let (server, reviewer, path) = (&server, reviewer.clone(), path.clone());
            async move {
                server
                    .post(
                        &path,
                        &reviewer,
                        &json!({"decision": "approve_with_changes", "criterion": basis,
                        "reason": "Relapsed B-ALL.", "changes": changes}),
                    )
                    .await
            }
        };
        determine(json!({"units": 100000, "cycles": 2, "end": "2027-12-01"}))
            .await
            .expect_problem(422, "changes.units");
        determine(json!({"units": 980, "cycles": 24, "end": "2027-12-01"}))
            .await
            .expect_problem(422, "changes.cycles");
        determine(json!({"units": 980, "cycles": 2, "period_days": 1}))
            .await
            .expect_problem(422, "changes.period_days");
        let approved = determine(json!({"units": 980, "cycles": 2, "end": "2027-12-01"})).await;
        approved.expect(200);
        let authorization = &approved.body["authorization"];
        assert_eq!(authorization["approved_units"], 1960, "{}", approved.body);
        // Spent at the label's pace: one cycle's units in each 42 days.
        assert_eq!(authorization["period_days"], 42, "{}", approved.body);
        server.stop().await;
    })
    .await;
}
