//! The `/v1` API: requests, the review queue, determinations, denial letters,
//! authorizations and their usage, each handler a translation to and from
//! `crate::lifecycle`. Errors are RFC 9457 problem+json naming the field.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::keys::Caller;
use crate::lifecycle::authorizations::{self, UsageBody};
use crate::lifecycle::requests::{self, SubmitBody};
use crate::lifecycle::review::{self, DeterminationBody};
use crate::web::{AppError, AppJson, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/requests", post(submit))
        .route(
            "/v1/requests/{id}",
            get(read_request).patch(complete_request),
        )
        .route("/v1/requests/{id}/determination", post(determine))
        .route("/v1/requests/{id}/denial-letter", get(denial_letter))
        .route("/v1/queue", get(queue))
        .route("/v1/authorizations/{number}", get(read_authorization))
        .route("/v1/authorizations/{number}/usage", post(record_usage))
        .route_layer(axum::middleware::from_fn(
            crate::web::refuse_control_characters,
        ))
}

#[utoipa::path(post, path = "/v1/requests", request_body = SubmitBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried submission with the same key returns the first answer")),
    responses((status = 201, description = "decided and stored"), (status = 200, description = "the first answer to this Idempotency-Key"), (status = 422, description = "invalid, naming the field")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    AppJson(body): AppJson<SubmitBody>,
) -> Result<Response, AppError> {
    let idempotency_key = headers
        .get("idempotency-key")
        // Not dropped when it is not ASCII: the lifecycle refuses it, naming the header.
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (created, response) =
        requests::submit(&state.service, &caller, body, idempotency_key, None).await?;
    if !created {
        return Ok((
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            Json(response),
        )
            .into_response());
    }
    let location = format!(
        "/v1/requests/{}",
        response
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(response),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the request with its history"), (status = 404, description = "no such request, or another organization's")))]
pub(crate) async fn read_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(requests::read(&state.service, &caller, &id).await?))
}

#[utoipa::path(patch, path = "/v1/requests/{id}", params(("id" = String, Path)), request_body(content = Object, description = "the missing facts, by section: {\"diagnosis\": {\"mrd_percent\": 0.8}}"),
    responses((status = 200, description = "re-evaluated"), (status = 409, description = "the request is not waiting for information")))]
pub(crate) async fn complete_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(facts): AppJson<Value>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        requests::complete(&state.service, &caller, &id, &facts).await?,
    ))
}

#[utoipa::path(get, path = "/v1/queue", responses((status = 200, description = "requests awaiting a clinician, most urgent first")))]
pub(crate) async fn queue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    Ok(Json(review::queue(&state.service, &caller).await?))
}

#[utoipa::path(post, path = "/v1/requests/{id}/determination", params(("id" = String, Path)), request_body = DeterminationBody,
    responses((status = 200, description = "recorded"), (status = 403, description = "not a reviewer"), (status = 409, description = "the request is not in review")))]
pub(crate) async fn determine(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<DeterminationBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        review::determine(&state.service, &caller, &id, &body).await?,
    ))
}

#[utoipa::path(get, path = "/v1/requests/{id}/denial-letter", params(("id" = String, Path)),
    responses((status = 200, description = "the data of the denial notice"), (status = 409, description = "the request is not denied")))]
pub(crate) async fn denial_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        review::denial_letter(&state.service, &caller, &id).await?,
    ))
}

#[utoipa::path(get, path = "/v1/authorizations/{number}", params(("number" = String, Path)), responses((status = 200, description = "the authorization with units used and left")))]
pub(crate) async fn read_authorization(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        authorizations::read(&state.service, &caller, &number).await?,
    ))
}

#[utoipa::path(post, path = "/v1/authorizations/{number}/usage", params(("number" = String, Path)), request_body = UsageBody,
    responses((status = 201, description = "recorded"), (status = 409, description = "beyond the approved units"), (status = 422, description = "outside the authorization period")))]
pub(crate) async fn record_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
    AppJson(body): AppJson<UsageBody>,
) -> Result<Response, AppError> {
    let body = authorizations::record_usage(&state.service, &caller, &number, &body).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
