//! CRD as an unchanged EHR calls it: the guide's own order-sign request, records read from the
//! EHR's FHIR server with the token it hands over, members found in the payer's eligibility
//! by the EHR's member ids, every order answered, and the per-call configuration honoured.
//! On SQLite and PostgreSQL.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use priorauth_service::keys::Role;
use serde_json::{Value, json};
use support::{Server, emitted_dir, for_each_backend, keep, validate};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRD guide's `order_sign_hook_request.json`, as published.
fn official_order_sign() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fhir/order_sign_hook_request.json"))
        .expect("read");
    serde_json::from_str(&text).expect("JSON")
}

/// What the EHR's FHIR server was asked: (path and query, Authorization header).
type Asked = Arc<Mutex<Vec<(String, String)>>>;

/// An EHR's FHIR server on loopback holding one patient's chart, answering only the bearer
/// token `SAMPLE_TOKEN`. Answers its base URL and what it was asked.
async fn ehr_fhir_server(coverage: Value) -> (String, Asked) {
    let asked: Asked = Arc::default();
    let chart = Arc::new(coverage);
    let app = axum::Router::new()
        .fallback(
            |State((asked, coverage)): State<(Asked, Arc<Value>)>,
             uri: Uri,
             headers: HeaderMap| async move {
                let authorization = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                asked.lock().unwrap().push((path.clone(), authorization.clone()));
                if authorization != "Bearer SAMPLE_TOKEN" {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let searchset = |resources: Vec<Value>| {
                    json!({"resourceType": "Bundle", "type": "searchset",
                        "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
                };
                let path = path.trim_start_matches("/r4/");
                let body = if path.starts_with("Patient/") {
                    json!({"resourceType": "Patient", "id": path.trim_start_matches("Patient/"), "birthDate": "1966-02-11"})
                } else if path.starts_with("Coverage?") {
                    searchset(vec![(*coverage).clone()])
                } else if path.starts_with("Condition?") {
                    searchset(vec![json!({"resourceType": "Condition", "id": "c1",
                        "subject": {"reference": "Patient/example"},
                        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C91.02"}]}})])
                } else if path.starts_with("Observation?") {
                    searchset(vec![json!({"resourceType": "Observation", "id": "w", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2026-05-10",
                        "valueQuantity": {"value": 71, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})])
                } else if path.starts_with("PractitionerRole?") {
                    searchset(vec![json!({"resourceType": "PractitionerRole", "id": "r1",
                        "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207RH0000X"}]}]})])
                } else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                ([("content-type", "application/fhir+json")], body.to_string()).into_response()
            },
        )
        .with_state((asked.clone(), chart));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/r4"), asked)
}

fn coverage(member_id: &str, declared_plan: &str) -> Value {
    json!({"resourceType": "Coverage", "id": "cov", "status": "active",
        "subscriberId": member_id,
        "beneficiary": {"reference": "Patient/example"},
        "payor": [{"reference": "Organization/payer"}],
        "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": declared_plan}]})
}

/// The coverage information of each systemAction's order, by the order's `Type/id`.
fn answers(body: &Value) -> Vec<(String, Value)> {
    body["systemActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| {
            let order = &action["resource"];
            let info = order["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| {
                    e["url"]
                        .as_str()
                        .unwrap()
                        .ends_with("ext-coverage-information")
                })
                .cloned()
                .expect("coverage information on every order");
            (
                format!(
                    "{}/{}",
                    order["resourceType"].as_str().unwrap(),
                    order["id"].as_str().unwrap()
                ),
                info,
            )
        })
        .collect()
}

fn part(info: &Value, name: &str) -> Value {
    info["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn code(info: &Value, name: &str) -> String {
    part(info, name)["valueCode"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn reason(info: &Value) -> String {
    part(info, "reason")["valueCodeableConcept"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guides_order_sign_request_is_answered_from_the_ehrs_own_fhir_server() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let (base, asked) = ehr_fhir_server(coverage("M-1", "eocco-medicaid")).await;

        // As published: no prefetch, a NutritionOrder with non-URI extension urls, and an
        // amoxicillin order whose `doseAndRate` is an object where R4 has an array.
        let mut hook = official_order_sign();
        hook["fhirServer"] = json!(base);
        let answer = server
            .post("/cds-services/order-sign-crd", &ehr, &hook)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        // (Its orders are the guide's, which R4 does not read strictly, echoed with the
        // payer's extension: the coverage information is checked on this test's own orders
        // in the next test.)
        let dir = emitted_dir("crd-official");
        assert_eq!(
            answer.body["cards"],
            json!([]),
            "no card repeats the coverage information"
        );
        let answered = answers(&answer.body);
        let orders: Vec<&str> = answered.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            orders,
            [
                "NutritionOrder/pureeddiet-simple",
                "MedicationRequest/smart-MedicationRequest-103"
            ]
        );
        for (order, info) in &answered {
            // Neither is a drug a policy governs: no rule known, said in the guide's codes.
            assert_eq!(code(info, "covered"), "conditional", "{order}: {info}");
            assert_eq!(code(info, "pa-needed"), "conditional", "{order}");
            assert_eq!(code(info, "info-needed"), "OTH", "{order}");
            assert!(
                part(info, "reason")["valueCodeableConcept"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("No prior authorization rule known")
            );
            assert_eq!(
                part(info, "coverage")["valueReference"]["reference"],
                "Coverage/cov"
            );
        }
        // The order's own extensions are kept beside the payer's.
        let nutrition = &answer.body["systemActions"][0]["resource"];
        assert!(
            nutrition["extension"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["url"] == "existing_extension")
        );

        // The patient and the coverage were read with the EHR's token; no laboratory search
        // was made for orders no policy governs.
        let asked_now = asked.lock().unwrap().clone();
        let paths: Vec<&str> = asked_now.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"/r4/Patient/example"), "{paths:?}");
        assert!(
            paths.contains(&"/r4/Coverage?patient=example&status=active"),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.contains("Observation")),
            "{paths:?}"
        );
        assert!(
            asked_now
                .iter()
                .all(|(_, token)| token == "Bearer SAMPLE_TOKEN")
        );

        // Without a server it can read, the coverage is missing: 412, for every kind of
        // unreadable server alike.
        for unreadable in [
            "http://127.0.0.1:9/r4",
            "http://169.254.169.254/latest",
            "https://example/r4",
        ] {
            hook["fhirServer"] = json!(unreadable);
            let refused = server
                .post("/cds-services/order-sign-crd", &ehr, &hook)
                .await;
            assert_eq!(refused.status, 412, "{unreadable}: {}", refused.body);
            assert_eq!(refused.body["resourceType"], "OperationOutcome");
            assert_eq!(
                refused.body["issue"][0]["expression"][0],
                "prefetch.coverage"
            );
        }
        // A wrong token is the EHR server's to refuse; the hook is then 412 as well.
        hook["fhirServer"] = json!(base);
        hook["fhirAuthorization"]["access_token"] = json!("WRONG");
        let refused = server
            .post("/cds-services/order-sign-crd", &ehr, &hook)
            .await;
        assert_eq!(refused.status, 412, "{}", refused.body);
        keep(&dir, "refused", &refused.body);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// An order-sign call with these orders and the member's Coverage prefetched; the clinical
/// records come from `fhir_server`.
fn hook_call(instance: &str, coverage: Value, orders: Vec<Value>, fhir_server: &str) -> Value {
    json!({
        "hook": "order-sign", "hookInstance": instance,
        "fhirServer": fhir_server,
        "fhirAuthorization": {"access_token": "SAMPLE_TOKEN", "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read", "subject": "cds-service"},
        "context": {"userId": "Practitioner/doc", "patientId": "example",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": orders.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()}},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "example", "birthDate": "1966-02-11"}, "coverage": coverage},
    })
}

fn blincyto_order(id: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"}]},
        "subject": {"reference": "Patient/example"}, "authoredOn": "2026-05-18",
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 28, "unit": "mcg/day", "system": "http://unitsofmeasure.org", "code": "ug/d"}}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_are_found_in_the_payers_eligibility_and_every_order_is_answered() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (base, asked) = ehr_fhir_server(json!({})).await;
        support::import_members(&server, "M-100,eocco-medicaid,2026-01-01,,1966-02-11\nM-200,eocco-medicaid,2020-01-01,2020-12-31,\nM-101,eocco-medicaid,2026-01-01,,\n").await;

        // The EHR's own plan code, and its member id: the plan is the payer's record.
        let other_drug = json!({"resourceType": "MedicationRequest", "id": "amox", "status": "draft", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "617993"}]},
            "subject": {"reference": "Patient/example"}});
        let by_reference = json!({"resourceType": "MedicationRequest", "id": "byref", "status": "draft", "intent": "order",
            "contained": [{"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"}]}}],
            "medicationReference": {"reference": "#med"},
            "subject": {"reference": "Patient/example"}});
        let unreadable = json!({"resourceType": "MedicationRequest", "id": "broken", "status": {"not": "a code"}, "intent": 7});
        let orders = vec![blincyto_order("blin"), other_drug, by_reference, unreadable];
        let call = hook_call("a0b1c2d3-0000-4000-8000-000000000001", coverage("M-100", "EHR-PLAN-7"), orders.clone(), &base);
        let answer = server.post("/cds-services/order-sign-crd", &ehr, &call).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let dir = emitted_dir("crd-members");
        keep(&dir, "answer", &answer.body);
        let answered = answers(&answer.body);
        let by_order: std::collections::BTreeMap<String, Value> = answered.iter().cloned().collect();
        assert_eq!(by_order.len(), 3, "the order that does not read is left out, the others answered: {:?}", by_order.keys());
        let blin = &by_order["MedicationRequest/blin"];
        assert_eq!(code(blin, "covered"), "covered");
        assert_eq!(code(blin, "pa-needed"), "auth-needed");
        assert_eq!(code(blin, "doc-needed"), "clinical");
        assert!(part(blin, "questionnaire")["valueCanonical"].as_str().unwrap().contains("/Questionnaire/eocco-0382"));
        assert_eq!(code(&by_order["MedicationRequest/byref"], "pa-needed"), "auth-needed", "a Medication by reference is read");
        assert_eq!(code(&by_order["MedicationRequest/amox"], "covered"), "conditional");
        // A governed drug's records were read from the EHR's server: conditions, laboratory
        // results, the prescriber's roles.
        let paths: Vec<String> = asked.lock().unwrap().iter().map(|(p, _)| p.clone()).collect();
        for kind in ["/r4/Condition?patient=example", "/r4/Observation?patient=example", "/r4/PractitionerRole?practitioner=doc"] {
            assert!(paths.iter().any(|p| p.starts_with(kind)), "{kind} in {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.starts_with("/r4/Coverage") || p.starts_with("/r4/Patient")), "prefetched records are not read again: {paths:?}");

        // A re-sign (a new hook instance) keeps each order's assertion id.
        let again = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000002", coverage("M-100", "EHR-PLAN-7"), orders.clone(), &base)).await;
        let ids = |answered: &[(String, Value)]| -> Vec<Value> { answered.iter().map(|(_, i)| part(i, "coverage-assertion-id")["valueString"].clone()).collect() };
        assert_eq!(ids(&answers(&again.body)), ids(&answered));
        let first_ids = ids(&answered);
        assert_eq!(first_ids.len(), 3);
        assert!(first_ids[0] != first_ids[1], "each order has its own");

        // DTR after CRD: the coverage and the assertion id as `context`, nothing else (DTR's
        // context "May be used to determine what Questionnaires to return and/or to support
        // pre-population"): the form CRD named, filled in from what CRD read; another
        // organization's call with the same id finds nothing.
        let assertion = part(blin, "coverage-assertion-id")["valueString"].as_str().unwrap().to_string();
        let package = |key: String| {
            let (server, assertion) = (&server, assertion.clone());
            async move {
                let parameters = json!({"resourceType": "Parameters", "parameter": [
                    {"name": "coverage", "resource": coverage("M-100", "EHR-PLAN-7")},
                    {"name": "context", "valueString": assertion}]});
                server.post("/fhir/Questionnaire/$questionnaire-package", &key, &parameters).await
            }
        };
        let packaged = package(ehr.clone()).await;
        assert_eq!(packaged.status, 200, "{}", packaged.body);
        keep(&dir, "dtr-package-for-assertion", &packaged.body);
        assert_eq!(packaged.body["parameter"][0]["name"], "PackageBundle", "{}", packaged.body);
        let bundle = &packaged.body["parameter"][0]["resource"];
        assert!(bundle["entry"][0]["resource"]["url"].as_str().unwrap().contains("/Questionnaire/eocco-0382"), "{bundle}");
        let draft = &bundle["entry"][1]["resource"];
        assert!(draft["item"].as_array().unwrap().iter().any(|i| i["answer"].is_array()), "filled in from the order and chart: {draft}");
        assert!(draft.to_string().contains(&assertion), "qr-context names the assertion: {draft}");
        // The usual call after CRD names the Questionnaire CRD named too: filled in alike from
        // what CRD read; without the context, from the coverage alone.
        let answers_in = |body: &Value| body["parameter"][0]["resource"]["entry"][1]["resource"].to_string().matches("\"answer\"").count();
        let named = part(blin, "questionnaire")["valueCanonical"].clone();
        let mut with_canonical = json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage("M-100", "EHR-PLAN-7")},
            {"name": "questionnaire", "valueCanonical": named},
            {"name": "context", "valueString": assertion}]});
        let both = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &with_canonical).await;
        assert_eq!(both.status, 200, "{}", both.body);
        keep(&dir, "dtr-package-for-assertion-and-questionnaire", &both.body);
        assert_eq!(answers_in(&both.body), answers_in(&packaged.body), "{}", both.body);
        // Another member's Coverage with this member's assertion: not filled from it.
        let mut another = with_canonical.clone();
        another["parameter"][0]["resource"] = coverage("M-101", "EHR-PLAN-7");
        let another = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &another).await;
        assert_eq!(another.status, 200, "{}", another.body);
        with_canonical["parameter"].as_array_mut().unwrap().pop();
        let coverage_only = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &with_canonical).await;
        assert_eq!(coverage_only.status, 200, "{}", coverage_only.body);
        assert!(answers_in(&coverage_only.body) < answers_in(&both.body), "{}", coverage_only.body);
        assert!(answers_in(&another.body) < answers_in(&both.body), "{}", another.body);
        assert!(!another.body.to_string().contains("1966-02-11"), "{}", another.body);
        // The context alone with another member's Coverage: nothing found, as for another
        // organization.
        let another_alone = json!({"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": coverage("M-101", "EHR-PLAN-7")},
            {"name": "context", "valueString": assertion}]});
        let another_alone = server.post("/fhir/Questionnaire/$questionnaire-package", &ehr, &another_alone).await;
        assert_eq!(another_alone.status, 200, "{}", another_alone.body);
        assert!(another_alone.body["parameter"].as_array().unwrap().iter().all(|p| p["name"] == "outcome"), "{}", another_alone.body);
        let (_, stranger) = server.key("clinic-b", Role::Submitter, "Clinic B EHR", "").await;
        let foreign = package(stranger).await;
        assert_eq!(foreign.status, 200, "{}", foreign.body);
        assert!(foreign.body["parameter"].as_array().unwrap().iter().all(|p| p["name"] == "outcome"), "{}", foreign.body);

        // A member whose enrolment has ended, and an id no member has (though the Coverage
        // names a plan of the service's): not covered, with the 2.2 reason codes.
        let ended = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000003", coverage("M-200", "eocco-medicaid"), vec![blincyto_order("blin")], &base)).await;
        let ended = &answers(&ended.body)[0].1;
        assert_eq!((code(ended, "covered"), reason(ended)), ("not-covered".into(), "no-active-coverage".into()));
        assert_eq!(code(ended, "pa-needed"), "", "not-covered says nothing of authorization");
        let stranger = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000004", coverage("M-999", "eocco-medicaid"), vec![blincyto_order("blin")], &base)).await;
        keep(&dir, "stranger", &stranger.body);
        let stranger = &answers(&stranger.body)[0].1;
        assert_eq!((code(stranger, "covered"), reason(stranger)), ("not-covered".into(), "no-member-found".into()));
        // The EHR answered the coverage search with no Coverage: no member.
        let none = json!({"resourceType": "Bundle", "type": "searchset"});
        let uncovered = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000005", none, vec![blincyto_order("blin")], &base)).await;
        assert_eq!(uncovered.status, 200, "{}", uncovered.body);
        keep(&dir, "uncovered", &uncovered.body);
        let uncovered = &answers(&uncovered.body)[0].1;
        assert_eq!(code(uncovered, "covered"), "not-covered");
        assert!(part(uncovered, "coverage")["valueReference"]["display"].is_string());

        // Per-call configuration: coverage information can be turned off; a known option of
        // the wrong type is refused naming it; an unknown one is ignored.
        let mut quiet = call.clone();
        quiet["extension"] = json!({"davinci-crd.configuration": {"coverage-info": false, "max-cards": 3}});
        let quiet_answer = server.post("/cds-services/order-sign-crd", &ehr, &quiet).await;
        assert_eq!(quiet_answer.status, 200, "{}", quiet_answer.body);
        assert_eq!(quiet_answer.body, json!({"cards": [], "systemActions": []}));
        quiet["extension"] = json!({"davinci-crd.configuration": {"coverage-info": "no"}});
        let wrong = server.post("/cds-services/order-sign-crd", &ehr, &quiet).await;
        assert_eq!(wrong.status, 400, "{}", wrong.body);
        assert_eq!(wrong.body["issue"][0]["expression"][0], "extension.davinci-crd.configuration.coverage-info");

        // The discovery document offers that option and prefetches no laboratory search.
        let discovery = server.get("/cds-services", &ehr).await;
        let service = &discovery.body["services"][0];
        assert_eq!(service["extension"]["davinci-crd.configuration-options"][0]["code"], "coverage-info");
        assert!(service["prefetch"].get("observations").is_none(), "{service}");
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// A member id is the payer's only under the payer's name: a Coverage naming another payer
/// (by the `payor` reference's identifier, or the Organization it refers to) with a member
/// id this payer also issued is not this payer's member; one naming this payer, or none, is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_id_another_payer_issued_is_not_this_payers_member() {
    for_each_backend(|url| async move {
        let server = Server::start_with_plans(&url, &support::plans_naming_the_payer()).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "Clinic A EHR", "").await;
        let (base, _) = ehr_fhir_server(json!({})).await;
        support::import_members(&server, "M-100,eocco-medicaid,2026-01-01,,\n").await;
        let dir = emitted_dir("crd-payers");
        let ask = |n: u32, payor: Value, contained: Option<Value>| {
            let mut coverage = coverage("M-100", "EHR-PLAN-7");
            coverage["payor"] = json!([payor]);
            if let Some(organization) = contained {
                coverage["contained"] = json!([organization]);
            }
            let call = hook_call(&format!("a0b1c2d3-0000-4000-8000-00000000010{n}"), coverage, vec![blincyto_order("blin")], &base);
            let server = &server;
            let ehr = ehr.clone();
            async move {
                let answer = server.post("/cds-services/order-sign-crd", &ehr, &call).await;
                assert_eq!(answer.status, 200, "{}", answer.body);
                answer.body
            }
        };
        // This payer, by its NPI on the reference; by its payer id in a contained
        // Organization (any system); or not named at all: the member is found.
        let npi = ask(1, json!({"reference": "Organization/p", "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}), None).await;
        assert_eq!(code(&answers(&npi)[0].1, "pa-needed"), "auth-needed", "{npi}");
        let payer_id = json!({"resourceType": "Organization", "id": "p", "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.221.5", "value": "EOCCO01"}]});
        let contained = ask(2, json!({"reference": "#p"}), Some(payer_id)).await;
        assert_eq!(code(&answers(&contained)[0].1, "pa-needed"), "auth-needed", "{contained}");
        let unnamed = ask(3, json!({"reference": "Organization/payer"}), None).await;
        assert_eq!(code(&answers(&unnamed)[0].1, "pa-needed"), "auth-needed", "{unnamed}");
        // Another payer's NPI, on the reference or its Organization: no member of this
        // payer's.
        let elsewhere = json!({"resourceType": "Organization", "id": "p", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1999999984"}]});
        let contained_other = ask(4, json!({"reference": "#p"}), Some(elsewhere)).await;
        assert_eq!(reason(&answers(&contained_other)[0].1), "no-member-found", "{contained_other}");
        let other = ask(5, json!({"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1999999984"}, "display": "Another plan"}), None).await;
        keep(&dir, "another-payer", &other);
        let other = &answers(&other)[0].1;
        assert_eq!((code(other, "covered"), reason(other)), ("not-covered".into(), "no-member-found".into()));

        // Two active Coverages, another payer's first (with the same member id, then with
        // one this payer never issued): the answer is on this payer's, whichever comes first.
        let theirs = |member: &str| {
            let mut coverage = coverage(member, "THEIR-PLAN");
            coverage["id"] = json!("theirs");
            coverage["payor"] = json!([{"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1999999984"}}]);
            coverage
        };
        let mut ours = coverage("M-100", "EHR-PLAN-7");
        ours["id"] = json!("ours");
        for (n, member) in [(6, "M-100"), (7, "THEIRS-55")] {
            let both = json!({"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": theirs(member)}, {"resource": ours.clone()}]});
            let call = hook_call(&format!("a0b1c2d3-0000-4000-8000-00000000010{n}"), both, vec![blincyto_order("blin")], &base);
            let answer = server.post("/cds-services/order-sign-crd", &ehr, &call).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            keep(&dir, &format!("two-coverages-{n}"), &answer.body);
            let info = &answers(&answer.body)[0].1;
            assert_eq!(code(info, "pa-needed"), "auth-needed", "{}", answer.body);
            assert_eq!(part(info, "coverage")["valueReference"]["reference"], "Coverage/ours", "{}", answer.body);
        }
        // Neither is this payer's: no member, as with one Coverage.
        let neither = json!({"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": theirs("THEIRS-55")}, {"resource": coverage("M-999", "EHR-PLAN-7")}]});
        let answer = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000108", neither, vec![blincyto_order("blin")], &base)).await;
        assert_eq!(reason(&answers(&answer.body)[0].1), "no-member-found", "{}", answer.body);
        // Another person's Coverage, with a member id this payer knows, never answers for
        // the hook's patient, whose own Coverage names no member.
        let mut someone_elses = coverage("M-100", "EHR-PLAN-7");
        someone_elses["id"] = json!("someone-elses");
        someone_elses["beneficiary"] = json!({"reference": "Patient/someone-else"});
        let mixed = json!({"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": someone_elses}, {"resource": coverage("M-999", "EHR-PLAN-7")}]});
        let answer = server.post("/cds-services/order-sign-crd", &ehr,
            &hook_call("a0b1c2d3-0000-4000-8000-000000000109", mixed, vec![blincyto_order("blin")], &base)).await;
        let info = &answers(&answer.body)[0].1;
        assert_eq!(reason(info), "no-member-found", "{}", answer.body);
        assert_eq!(part(info, "coverage")["valueReference"]["reference"], "Coverage/cov", "{}", answer.body);
        validate(&dir);
        server.stop().await;
    })
    .await;
}

/// The CRD guide's `CRDServiceRequest.json` as published (order-sign, two ServiceRequests,
/// full prefetch with the Coverage as a searchset): every order answered with coverage
/// information, from the prefetch alone (nothing asked of its `fhirServer`, which is not
/// reachable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guides_order_sign_request_with_prefetch_is_answered_for_every_order() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let text =
            std::fs::read_to_string(repo().join("tests/fhir/crd-examples/CRDServiceRequest.json"))
                .expect("read");
        let hook: Value = serde_json::from_str(&text).expect("JSON");
        let answer = server
            .post("/cds-services/order-sign-crd", &ehr, &hook)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let dir = emitted_dir("crd-official-prefetch");
        keep(&dir, "order-sign", &answer.body);
        let answered = answers(&answer.body);
        let orders: Vec<&str> = answered.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(orders, ["ServiceRequest/1357", "ServiceRequest/2468"]);
        for (order, info) in &answered {
            // The guide's member is not in this payer's eligibility.
            assert_eq!(code(info, "covered"), "not-covered", "{order}: {info}");
            assert!(
                !part(info, "coverage-assertion-id").is_null(),
                "{order}: {info}"
            );
        }
        validate(&dir);
        server.stop().await;
    })
    .await;
}
