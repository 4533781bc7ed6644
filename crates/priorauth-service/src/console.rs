//! The reviewer console: a web page served by the service itself (same process and port, no
//! external requests), and the read-only API it uses beyond the request API: questions in
//! plain language, policy outlines and sources, evaluation without storing (intake, decision
//! view, payer comparison) and the authorizations list.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use priorauth_core::eval::{self, Truth};
use priorauth_core::facts::{FactId, Value as FactValue};
use priorauth_core::landscape;
use priorauth_core::report::Report;
use priorauth_core::{Engine, questions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::Caller;
use crate::web::{AppError, AppJson, AppState};

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

pub fn routes(state: &AppState) -> Router<AppState> {
    let data = Router::new()
        .route("/v1/questions", get(questions))
        .route("/v1/plans", get(plans))
        .route("/v1/policies", get(policies))
        .route("/v1/policies/{id}/source", get(source))
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/authorizations", get(authorizations))
        .route("/v1/me", get(me))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::admit,
        ));
    // The page and its assets hold no data: they load without a key.
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .merge(data)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    // Everything the page needs comes from here: no other origin may be contacted.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/me", operation_id = "who_am_i", tag = "Console", summary = "The key's holder: name, organization, role", responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the name, organization, role and credentials of the key", body = crate::answers::Me)))]
/// Who the key is: the console names the signed-in person and their role in its header, and
/// opens each role's own work list.
pub(crate) async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "name": caller.name,
        "organization": caller.organization,
        "role": caller.role.as_str(),
        "credentials": caller.credentials,
    }))
}

/// A question as the intake form reads it.
fn question_json(q: &questions::Question) -> Value {
    let pairs = |list: &[(String, String)]| {
        list.iter()
            .map(|(value, label)| json!({"value": value, "label": label}))
            .collect::<Vec<_>>()
    };
    // A fact declared in data (facts.toml) goes in the case's `facts` object, by its name.
    let declared = !priorauth_core::facts::CASE_KEYS.contains(&q.key);
    json!({"key": q.key, "label": q.label, "kind": q.kind.as_str(), "choices": pairs(&q.choices), "outcomes": pairs(&q.outcomes), "declared": declared})
}

#[utoipa::path(get, path = "/v1/questions", operation_id = "list_questions", tag = "Console", summary = "Every question of the intake form", responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "every case key as the intake form asks it", body = Vec<crate::answers::Question>)))]
pub(crate) async fn questions(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(Value::Array(
        questions::all(&state.service.engine)
            .iter()
            .map(question_json)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/plans", operation_id = "list_plans", tag = "Console", summary = "The plans: line of business, policy per drug, time zone", responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the plans with their line of business and policy per drug", body = Vec<crate::answers::Plan>)))]
pub(crate) async fn plans(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!(state.service.plans.plans.iter().map(|p| json!({"id": p.id, "name": p.name, "line_of_business": p.line_of_business, "policies": p.policies, "time_zone": p.time_zone})).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/v1/policies", operation_id = "list_policies", tag = "Console", summary = "The policies in effect, with their criteria and the keys they read", responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the policies in effect, with their criteria and the case keys they read", body = Vec<crate::answers::PolicySummary>)))]
pub(crate) async fn policies(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let engine = &state.service.engine;
    let list: Vec<Value> = engine
        .current()
        .iter()
        .filter_map(|i| engine.policies.get(*i))
        .map(|p| {
            json!({
                "id": p.id, "title": p.title, "payer": p.payer, "document": p.document, "version": p.version,
                "effective": p.effective.map(|d| d.to_string()),
                "drugs": p.drugs.iter().filter_map(|d| engine.catalog.drugs.get(usize::from(*d)).map(|d| d.id.clone())).collect::<Vec<_>>(),
                "questions": questions::policy_keys(engine, p),
                "criteria": p.criteria.iter().map(|c| json!({"id": c.id, "text": c.text})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(Value::Array(list))
}

#[utoipa::path(get, path = "/v1/policies/{id}/source", operation_id = "read_policy_source", tag = "Console", summary = "A policy's source document", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the policy's source document as text", body = String, content_type = "text/plain"), (status = 404, description = "no such policy", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn source(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let policy = state
        .service
        .engine
        .policy_index(&id)
        .and_then(|i| state.service.engine.policies.get(i))
        .ok_or(AppError::NotFound)?;
    let text = Engine::source_document(policy).ok_or(AppError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// A case to decide without storing it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvaluateBody {
    /// The case, in the case format (docs/case-format.md).
    #[serde(rename = "case")]
    #[schema(value_type = Object)]
    case_json: Value,
}

/// Every policy's decision with its full criterion trees, the payer comparison, and the body
/// surface area and label dose: for the intake form and the decision views. Nothing is stored.
#[utoipa::path(post, path = "/v1/evaluate", operation_id = "evaluate_case", tag = "Console", summary = "Decide a case under every policy without storing it", request_body = EvaluateBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "every policy's decision with its criterion trees; nothing is stored", body = crate::answers::Evaluation), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    _caller: Caller,
    AppJson(body): AppJson<EvaluateBody>,
) -> Result<Json<Value>, AppError> {
    let engine = &state.service.engine;
    let case = engine
        .parse_case(&body.case_json.to_string())
        .map_err(crate::lifecycle::case_invalid)?;
    let evaluation = engine.evaluate(&case, &[]);
    let report = Report::new(engine, &case, &evaluation);
    let mut results = Vec::new();
    for ((index, decision), result) in evaluation.decisions.iter().zip(&report.results) {
        let Some(policy) = engine.policies.get(*index) else {
            continue;
        };
        let mut pathways = Vec::new();
        for (p, pathway) in policy.pathways.iter().enumerate() {
            let Some(truth) = eval::pathway_truth(policy, p, &evaluation.facts) else {
                continue;
            };
            if truth.kind == Truth::False {
                continue;
            }
            let reasons = eval::pathway_tree(policy, p, &evaluation.facts);
            let nodes: Vec<Value> = reasons
                .iter()
                .filter_map(|r| {
                    let c = policy.criteria.get(usize::from(r.criterion))?;
                    Some(json!({"id": c.id, "text": c.text, "status": r.truth.as_str(), "depth": r.depth,
                        "section": c.source.section, "quote": c.source.quote, "interpretation": c.source.interpretation}))
                })
                .collect();
            pathways.push(json!({
                "id": pathway.id, "title": pathway.title, "outcome": pathway.outcome,
                "status": truth.kind.and(truth.criteria).and(truth.dosing).as_str(),
                "decided": decision.pathway == Some(p as u16),
                "nodes": nodes,
            }));
        }
        results.push(json!({"result": result, "title": policy.title, "pathways": pathways}));
    }
    let compare = landscape::build(
        engine,
        vec![landscape::Scenario {
            id: String::new(),
            title: String::new(),
            case: case.clone(),
        }],
    );
    let cells: Vec<Value> = compare
        .rows
        .first()
        .map(|(_, cells, _)| {
            cells
                .iter()
                .map(|c| json!({"outcome": c.outcome, "why": c.why, "source": c.source}))
                .collect()
        })
        .unwrap_or_default();
    let bsa = match evaluation.facts.get(FactId::PatientBsaM2) {
        FactValue::Number(n) => Some((n * 100.0).round() / 100.0),
        _ => None,
    };
    let request = case.request.clone().unwrap_or_default();
    let weight = case.patient.as_ref().and_then(|p| p.weight_kg);
    let allowed = request
        .drug_index
        .and_then(|d| engine.catalog.drugs.get(usize::from(d)))
        .zip(weight)
        .and_then(|(drug, weight)| drug.allowed_dose(weight, bsa))
        .map(|(dose, unit)| json!({"value": (dose * 100.0).round() / 100.0, "unit": unit}));
    Ok(Json(
        json!({"results": results, "compare": cells, "bsa_m2": bsa, "allowed_dose": allowed}),
    ))
}

/// Authorizations with units used and left, the nearest end first.
#[utoipa::path(get, path = "/v1/authorizations", operation_id = "list_authorizations", tag = "Authorizations", summary = "Authorizations, the nearest end first", params(("format" = Option<String>, Query, description = "`json` (the default) or `csv` (a spreadsheet)")), responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "authorizations (a submitter's own organization's only), the nearest end first", content((Vec<crate::answers::AuthorizationRow> = "application/json"), (String = "text/csv"))), (status = 422, description = "a bad or unknown parameter, named", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn authorizations(
    State(state): State<AppState>,
    caller: Caller,
    crate::web::AppQuery(query): crate::web::AppQuery<ListFormat>,
) -> Result<Response, AppError> {
    let list = crate::lifecycle::authorizations::list(&state.service, &caller).await?;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(list).into_response()),
        Some("csv") => {
            let items = list.as_array().map_or(&[][..], Vec::as_slice);
            let body = crate::csv::of_items(
                items,
                &[
                    ("number", "/number"),
                    ("request", "/request_id"),
                    ("drug", "/drug"),
                    ("hcpcs", "/hcpcs"),
                    ("start", "/start"),
                    ("end", "/end"),
                    ("approved units", "/approved_units"),
                    ("used units", "/used_units"),
                    ("remaining units", "/remaining_units"),
                    ("days left", "/days_left"),
                    ("renewal due", "/renewal_due"),
                    ("cancelled on", "/cancelled_on"),
                ],
            );
            Ok(crate::csv::answer("authorizations.csv", body))
        }
        Some(_) => Err(AppError::Invalid(vec![(
            "format".into(),
            "`json` or `csv`".into(),
        )])),
    }
}

/// `?format=json|csv` of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFormat {
    pub format: Option<String>,
}
