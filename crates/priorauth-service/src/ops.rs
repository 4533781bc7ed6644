//! Operations routes: liveness, readiness (the database answers), and the OpenAPI document
//! of the HTTP API (`/v1` and the console's).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::lifecycle::authorizations::{Changes, UsageBody};
use crate::lifecycle::requests::{SubmitBody, Urgency};
use crate::lifecycle::review::{
    AssignmentBody, DeterminationBody, DeterminationDecision, InformationRequestBody,
};
use crate::web::{AppError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "Operations", summary = "Liveness: the process answers", security(()),
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"), (status = 431, description = "request headers too large")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "Operations", summary = "Readiness: the database answers", security(()),
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"), (status = 431, description = "request headers too large"), (status = 500, description = "the database does not answer", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, AppError> {
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
        crate::api::list_requests,
        crate::api::assign,
        crate::api::ask_for_information,
        crate::api::denial_letter_pdf,
        crate::api::approval_notice,
        crate::api::approval_notice_pdf,
        crate::api::determine,
        crate::api::preview_determination,
        crate::api::attachments::add,
        crate::api::attachments::read,
        crate::api::attachments::comment,
        crate::api::denial_letter,
        crate::api::withdraw,
        crate::api::appeals::reopen,
        crate::api::appeals::extend_request,
        crate::api::appeals::file,
        crate::api::appeals::of_request,
        crate::api::appeals::peer_to_peer,
        crate::api::appeals::open,
        crate::api::appeals::read,
        crate::api::appeals::decide,
        crate::api::appeals::extend,
        crate::api::appeals::notice,
        crate::api::appeals::attachment,
        crate::api::read_authorization,
        crate::api::record_usage,
        crate::api::cancel_authorization,
        crate::api::dead_notifications,
        crate::api::report::um,
        crate::console::questions,
        crate::console::plans,
        crate::console::policies,
        crate::console::source,
        crate::console::evaluate,
        crate::console::authorizations,
        crate::console::me,
        crate::fhir::discovery,
        crate::fhir::hook,
        crate::fhir::configuration,
        crate::fhir::token,
        crate::fhir::capability_statement,
        crate::fhir::read_questionnaire,
        crate::fhir::questionnaire_package,
        crate::fhir::next_question,
        crate::fhir::submit,
        crate::fhir::inquire,
        crate::fhir::create_subscription,
        crate::fhir::read_subscription,
        crate::fhir::update_subscription,
        crate::fhir::delete_subscription,
        healthz,
        readyz,
        openapi
    ),
    tags(
        (name = "Requests", description = "Submit, read and complete prior-authorization requests"),
        (name = "Review", description = "The review queue, determinations and denial notices (reviewers)"),
        (name = "Appeals", description = "Appeals of a clinician's adverse determination, their clocks, decisions and notices; peer-to-peer discussions"),
        (name = "Reports", description = "The UM program's record: outcomes, turnaround, timeliness, appeals, CMS-0057-F metrics"),
        (name = "Authorizations", description = "Authorizations and the units spent on them"),
        (name = "Console", description = "What the web console reads: plans, policies, questions, decisions without storing"),
        (name = "FHIR", description = "FHIR R4 (4.0.1): Da Vinci DTR and PAS, with the same API keys"),
        (name = "CDS Hooks", description = "Da Vinci CRD over CDS Hooks 2.0"),
        (name = "Operations", description = "Liveness, readiness and this document, without a key")
    ),
    components(schemas(
        SubmitBody,
        Urgency,
        DeterminationBody,
        DeterminationDecision,
        AssignmentBody,
        InformationRequestBody,
        crate::lifecycle::comments::CommentBody,
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

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "Operations", summary = "This document", security(()),
    responses((status = 200, description = "the OpenAPI document", body = Object), (status = 431, description = "request headers too large")))]
pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(SERVED.clone())
}

/// The document is the same for the life of the process: built once, on first ask.
static SERVED: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(document);

/// The JSON Schema of the case format (docs/case-format.md), the `Case` of the document.
const CASE_SCHEMA: &str = include_str!("../../../docs/case.schema.json");
/// The first example case (an adult with relapsed B-ALL asking for Blincyto), the document's
/// example of a case.
const EXAMPLE_CASE: &str = include_str!("../../../tests/cases/E01.json");

/// The OpenAPI document as JSON, as `/openapi.json` serves it: the routes' document with the
/// case format's own JSON Schema as the `Case` component (inserted as JSON: the schema is
/// JSON Schema 2020-12, which OpenAPI 3.1 takes as it is).
pub fn document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut case: serde_json::Value = serde_json::from_str(CASE_SCHEMA).unwrap_or_default();
    if let Some(object) = case.as_object_mut() {
        object.remove("$schema");
        // A short name for the generated clients' model (the file's title has a version).
        object.insert("title".into(), "Case".into());
        object.insert(
            "description".into(),
            "A prior-authorization case: docs/case-format.md. Unknown keys are refused.".into(),
        );
    }
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        let example: serde_json::Value = serde_json::from_str(EXAMPLE_CASE).unwrap_or_default();
        if let Some(object) = case.as_object_mut() {
            object.insert("examples".into(), serde_json::json!([example]));
        }
        schemas.insert("Case".into(), case);
        // Examples for the bodies a client writes and the problem it reads.
        let examples = [
            (
                "SubmitBody",
                serde_json::json!({"plan": "masshealth", "case": example, "urgency": "standard"}),
            ),
            ("EvaluateBody", serde_json::json!({"case": example})),
            (
                "DeterminationBody",
                serde_json::json!({"decision": "deny", "criterion": "ph-negative-after-prior-therapy",
                    "reason": "The records sent show no earlier line of systemic therapy."}),
            ),
            (
                "UsageBody",
                serde_json::json!({"units": 35, "date_of_service": "2026-05-19"}),
            ),
            ("Changes", serde_json::json!({"cycles": 1})),
            (
                "Problem",
                serde_json::json!({"type": "about:blank", "title": "invalid request", "status": 422,
                    "detail": "`case.patient.weight_kg`: -3 is not a possible weight",
                    "errors": [{"field": "case.patient.weight_kg", "message": "-3 is not a possible weight"}]}),
            ),
        ];
        for (name, example) in examples {
            if let Some(schema) = schemas.get_mut(name).and_then(|s| s.as_object_mut()) {
                schema.insert("examples".into(), serde_json::json!([example]));
            }
        }
        // The bodies that carry a case point to it (the lifecycle's types know only JSON).
        for body in ["SubmitBody", "EvaluateBody"] {
            if let Some(property) = schemas
                .get_mut(body)
                .and_then(|schema| schema.pointer_mut("/properties/case"))
            {
                *property = serde_json::json!({
                    "$ref": "#/components/schemas/Case",
                    "description": "The case, in the case format (docs/case-format.md)."
                });
            }
        }
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a linter of OpenAPI documents (Redocly's recommended rules) asks of each
    /// operation, kept true as routes are added: a summary, a 4XX answer, the key scheme.
    #[test]
    fn the_openapi_document_describes_every_operation_and_its_key() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"][0]["api_key"], serde_json::json!([]));
        assert!(doc["servers"].as_array().is_some_and(|s| !s.is_empty()));
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() >= 27, "{} paths", paths.len());
        for route in ["/fhir/Claim/$submit", "/cds-services/{id}", "/v1/requests"] {
            assert!(paths.contains_key(route), "{route} is not listed");
        }
        assert!(
            doc.pointer("/components/schemas/Case/properties/request")
                .is_some()
        );
        let mut ids = std::collections::BTreeSet::new();
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
                // Every answer with a body says what the body is.
                for (code, response) in &responses {
                    if code != "204" {
                        let content = response["content"].as_object().cloned().unwrap_or_default();
                        assert!(
                            content.values().all(|c| c.get("schema").is_some())
                                && !content.is_empty()
                                || code == "431",
                            "{method} {path} {code}: no schema"
                        );
                    }
                }
                let operation_id = operation["operationId"].as_str().unwrap_or_default();
                assert!(ids.insert(operation_id.to_string()), "{operation_id} twice");
            }
        }
    }
}
