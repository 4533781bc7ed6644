//! Operations routes: liveness, readiness (the database answers), and the OpenAPI document
//! of the HTTP API (`/v1` and the console's).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::keys::Role;
use crate::lifecycle::authorizations::{Changes, UsageBody};
use crate::lifecycle::requests::{SubmitBody, Urgency};
use crate::lifecycle::review::{DeterminationBody, DeterminationDecision};
use crate::web::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.service.store.ping().await?;
    Ok("ready")
}
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "priorauth",
        description = "Prior-authorization decisions against payer policies, with clinician review."
    ),
    paths(
        crate::api::submit,
        crate::api::read_request,
        crate::api::complete_request,
        crate::api::queue,
        crate::api::determine,
        crate::api::denial_letter,
        crate::api::read_authorization,
        crate::api::record_usage,
        crate::api::dead_notifications,
        crate::console::questions,
        crate::console::plans,
        crate::console::policies,
        crate::console::source,
        crate::console::evaluate,
        crate::console::authorizations
    ),
    components(schemas(
        SubmitBody,
        Urgency,
        DeterminationBody,
        DeterminationDecision,
        Changes,
        UsageBody,
        Role,
        crate::console::EvaluateBody
    ))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
