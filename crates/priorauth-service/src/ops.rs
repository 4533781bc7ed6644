//! Operations routes: liveness, readiness (the database answers), and the OpenAPI document
//! of the HTTP API (`/v1` and the console's).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

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
    servers((url = "/", description = "the service answering this document")),
    modifiers(&ApiKeyScheme),
    security(("api_key" = [])),
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
        crate::console::EvaluateBody
    ))
)]
pub struct ApiDoc;

/// Every documented route takes an API key as a bearer token (`priorauth keys create`); the
/// key's role and organization decide what it may do (403 otherwise).
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("priorauth API key (pak_…)")
            .description(Some(
                "An API key from `priorauth keys create`, as `Authorization: Bearer pak_…`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a linter of OpenAPI documents (Redocly's recommended rules) asks of each
    /// operation, kept true as routes are added: a summary, a 4XX answer, the key scheme.
    #[test]
    fn the_openapi_document_describes_every_operation_and_its_key() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"][0]["api_key"], serde_json::json!([]));
        assert!(doc["servers"].as_array().is_some_and(|s| !s.is_empty()));
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() >= 14, "{} paths", paths.len());
        for (path, item) in paths {
            for (method, operation) in item.as_object().cloned().unwrap_or_default() {
                assert!(
                    operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path}: no summary"
                );
                let responses = operation["responses"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    responses.keys().any(|code| code.starts_with('4')),
                    "{method} {path}: no 4XX answer"
                );
            }
        }
    }
}
