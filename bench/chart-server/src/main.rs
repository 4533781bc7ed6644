//! An EHR's FHIR server for `bench/fhir-load.sh`'s CRD hooks without prefetch: it answers
//! each query the CRD service makes (`Patient/{id}`, `Coverage?patient=…`,
//! `Condition?patient=…`, `Observation?patient=…`, `PractitionerRole?practitioner=…`) with
//! what that hook's prefetch held, serialized once at start, to one bearer token only.
//!
//!     chart-server HOOKS.jsonl PORT TOKEN
//!
//! Written in Rust so that the server the service reads from costs microseconds per query:
//! the benchmark measures the CRD service, not the EHR (Python's threading server took most of
//! a core at 700 queries a second).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

struct Chart {
    /// (resource type, patient or practitioner id) -> the answer's JSON; a read of
    /// `Patient/{id}` is keyed ("Patient", id) as well.
    answers: HashMap<(String, String), Vec<u8>>,
    bearer: String,
}

fn load(hooks: &str) -> HashMap<(String, String), Vec<u8>> {
    let mut answers = HashMap::new();
    let text = std::fs::read_to_string(hooks).unwrap_or_else(|e| panic!("{hooks}: {e}"));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let hook: Value = serde_json::from_str(line).expect("a hook per line");
        let prefetch = &hook["prefetch"];
        let patient = hook["context"]["patientId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let practitioner = hook["context"]["userId"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        let searchset = |resource: &Value| serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resource}]});
        for (kind, id, answer) in [
            ("Patient", &patient, prefetch["patient"].clone()),
            ("Coverage", &patient, searchset(&prefetch["coverage"])),
            ("Condition", &patient, prefetch["conditions"].clone()),
            ("Observation", &patient, prefetch["observations"].clone()),
            (
                "PractitionerRole",
                &practitioner,
                prefetch["practitionerRoles"].clone(),
            ),
        ] {
            if !answer.is_null() {
                answers.insert(
                    (kind.to_string(), id.clone()),
                    serde_json::to_vec(&answer).expect("JSON"),
                );
            }
        }
    }
    answers
}

fn fhir(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body,
    )
        .into_response()
}

async fn answer(
    State(chart): State<Arc<Chart>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(chart.bearer.as_str())
    {
        return fhir(
            StatusCode::UNAUTHORIZED,
            br#"{"resourceType":"OperationOutcome"}"#.to_vec(),
        );
    }
    let (kind, id) = match path.split_once('/') {
        Some((kind, id)) => (kind.to_string(), id.to_string()),
        None => {
            let who = query.get("patient").or_else(|| query.get("practitioner"));
            (path.clone(), who.cloned().unwrap_or_default())
        }
    };
    match chart.answers.get(&(kind, id)) {
        Some(body) => fhir(StatusCode::OK, body.clone()),
        None if !path.contains('/') => fhir(
            StatusCode::OK,
            br#"{"resourceType":"Bundle","type":"searchset"}"#.to_vec(),
        ),
        None => fhir(
            StatusCode::NOT_FOUND,
            br#"{"resourceType":"OperationOutcome"}"#.to_vec(),
        ),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, hooks, port, token] = args.as_slice() else {
        eprintln!("usage: chart-server HOOKS.jsonl PORT TOKEN");
        std::process::exit(2);
    };
    let chart = Arc::new(Chart {
        answers: load(hooks),
        bearer: format!("Bearer {token}"),
    });
    let app = Router::new()
        .route("/fhir/{*path}", axum::routing::get(answer))
        .with_state(chart);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind");
    println!("chart server on 127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}
