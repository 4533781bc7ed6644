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
use sqlx::Row;

use crate::api::{AppError, AppJson, AppState};
use crate::keys::{Caller, Role};

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

pub fn routes() -> Router<AppState> {
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
        .route("/v1/questions", get(questions))
        .route("/v1/plans", get(plans))
        .route("/v1/policies", get(policies))
        .route("/v1/policies/{id}/source", get(source))
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/authorizations", get(authorizations))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    // Everything the page needs comes from here: no other origin may be contacted.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// A question as the intake form reads it.
fn question_json(q: &questions::Question) -> Value {
    let pairs = |list: &[(String, String)]| {
        list.iter()
            .map(|(value, label)| json!({"value": value, "label": label}))
            .collect::<Vec<_>>()
    };
    json!({"key": q.key, "label": q.label, "kind": q.kind.as_str(), "choices": pairs(&q.choices), "outcomes": pairs(&q.outcomes)})
}

#[utoipa::path(get, path = "/v1/questions", responses((status = 200, description = "every case key as the intake form asks it")))]
pub(crate) async fn questions(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(Value::Array(
        questions::all(&state.engine)
            .iter()
            .map(question_json)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/v1/plans", responses((status = 200, description = "the plans with their line of business and policy per drug")))]
pub(crate) async fn plans(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!(state.plans.plans.iter().map(|p| json!({"id": p.id, "name": p.name, "line_of_business": p.line_of_business, "policies": p.policies})).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/v1/policies", responses((status = 200, description = "the policies in effect, with their criteria and the case keys they read")))]
pub(crate) async fn policies(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let engine = &state.engine;
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

#[utoipa::path(get, path = "/v1/policies/{id}/source", params(("id" = String, Path)),
    responses((status = 200, description = "the policy's source document as text"), (status = 404, description = "no such policy")))]
pub(crate) async fn source(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let policy = state
        .engine
        .policy_index(&id)
        .and_then(|i| state.engine.policies.get(i))
        .ok_or(AppError::NotFound)?;
    let text = Engine::bundled_source(&policy.source_file).ok_or(AppError::NotFound)?;
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
#[utoipa::path(post, path = "/v1/evaluate", request_body = EvaluateBody,
    responses((status = 200, description = "every policy's decision with its criterion trees; nothing is stored"), (status = 422, description = "invalid, naming the field")))]
pub(crate) async fn evaluate(
    State(state): State<AppState>,
    _caller: Caller,
    AppJson(body): AppJson<EvaluateBody>,
) -> Result<Json<Value>, AppError> {
    let engine = &state.engine;
    let case = engine
        .parse_case(&body.case_json.to_string())
        .map_err(crate::api::case_invalid)?;
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
#[utoipa::path(get, path = "/v1/authorizations", responses((status = 200, description = "authorizations (a submitter's own organization's only), the nearest end first")))]
pub(crate) async fn authorizations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    let sql = "SELECT number, request_id, organization, drug, hcpcs, start_date, end_date, approved_units, used_units, cycles FROM authorizations";
    let mut tx = state.store.pool.begin().await?;
    let rows = if caller.role == Role::Submitter {
        sqlx::query(&format!(
            "{sql} WHERE organization = $1 ORDER BY end_date LIMIT 500"
        ))
        .bind(&caller.organization)
        .fetch_all(&mut *tx)
        .await?
    } else {
        sqlx::query(&format!("{sql} ORDER BY end_date LIMIT 500"))
            .fetch_all(&mut *tx)
            .await?
    };
    // A read of records, like every other: in the audit log.
    crate::store::audit(
        &mut tx,
        &caller.audit_record("authorization.list", "authorizations"),
    )
    .await?;
    tx.commit().await?;
    let today =
        priorauth_core::date::Date::from_epoch_days(crate::store::now_ms().div_euclid(86_400_000));
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let end: String = r.try_get("end_date")?;
            let (approved, used): (i64, i64) = (r.try_get("approved_units")?, r.try_get("used_units")?);
            let days_left = today.zip(priorauth_core::date::Date::parse(&end)).map(|(today, end)| end.days_since(today));
            Ok(json!({
                "number": r.try_get::<String, _>("number")?, "request_id": r.try_get::<String, _>("request_id")?,
                "organization": r.try_get::<String, _>("organization")?, "drug": r.try_get::<String, _>("drug")?,
                "hcpcs": r.try_get::<String, _>("hcpcs")?, "start": r.try_get::<String, _>("start_date")?, "end": end,
                "approved_units": approved, "used_units": used, "remaining_units": approved - used,
                "cycles": r.try_get::<i64, _>("cycles")?, "days_left": days_left,
                "renewal_due": days_left.is_some_and(|d| (0..=30).contains(&d)),
            }))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(Value::Array(list)))
}
