//! The `/v1` routes of appeals, reopenings and peer-to-peer discussions: each handler a
//! translation to and from `crate::lifecycle::appeals` (and `review::reopen`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::{answered, idempotency_key};
use crate::keys::Caller;
use crate::lifecycle::appeals::{
    self, AppealBody, AppealDecisionBody, AppealsQuery, ExtensionBody,
};
use crate::lifecycle::peer_to_peer::{self, PeerToPeerBody};
use crate::lifecycle::retries::Retry;
use crate::lifecycle::review::{self, ReopeningBody, RequestExtensionBody};
use crate::web::{AppError, AppJson, AppState};

#[utoipa::path(post, path = "/v1/requests/{id}/appeals", operation_id = "file_appeal", tag = "Appeals", summary = "Appeal a clinician's denial or approval with changes (the requester, for the member, the prescriber or itself)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = AppealBody,
    responses((status = 201, description = "filed; the appeal with its due time", body = crate::answers::AppealRecord), (status = 200, description = "the first answer to this Idempotency-Key", body = crate::answers::AppealRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a submitter or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "nothing to appeal (no clinician's denial or approval with changes), past the plan's filing window, or an appeal is open", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn file(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<AppealBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "appeal.file", &id, &body)?;
    let (answer, replayed) =
        appeals::file(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::CREATED, replayed, answer))
}

#[utoipa::path(get, path = "/v1/requests/{id}/appeals", operation_id = "list_request_appeals", tag = "Appeals", summary = "A request's appeals and peer-to-peer discussions", params(("id" = String, Path)),
    responses((status = 200, description = "its appeals, oldest first, and its peer-to-peer discussions", body = crate::answers::RequestAppeals), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn of_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        appeals::of_request(&state.service, &caller, &id).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/reopening", operation_id = "reopen_request", tag = "Review", summary = "Reopen a clinician's denial on new information (reviewers); the request is in review again", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = ReopeningBody,
    responses((status = 200, description = "reopened; the request as it now is, its determination moved into its history", body = crate::answers::RequestRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not denied, or an appeal of it is open", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<ReopeningBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "request.reopen", &id, &body)?;
    let (answer, replayed) =
        review::reopen(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(post, path = "/v1/requests/{id}/extension", operation_id = "extend_request", tag = "Review", summary = "Extend a pending standard request's decision clock once, where the plan allows, with the reason (reviewers, admins)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = RequestExtensionBody,
    responses((status = 200, description = "extended; the request with its new due time, the reason in its history", body = crate::answers::RequestRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the plan does not extend, or the request is decided, expedited or extended already", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn extend_request(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<RequestExtensionBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "request.extend", &id, &body)?;
    let (answer, replayed) =
        review::extend(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(post, path = "/v1/requests/{id}/peer-to-peer", operation_id = "record_peer_to_peer", tag = "Appeals", summary = "Record a peer-to-peer discussion with the prescriber (reviewers)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = PeerToPeerBody,
    responses((status = 201, description = "recorded", body = crate::answers::PeerToPeerRecord), (status = 200, description = "the first answer to this Idempotency-Key", body = crate::answers::PeerToPeerRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn peer_to_peer(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<PeerToPeerBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(
        idempotency_key(&headers),
        "request.peer_to_peer",
        &id,
        &body,
    )?;
    let (answer, replayed) =
        peer_to_peer::record(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::CREATED, replayed, answer))
}

#[utoipa::path(get, path = "/v1/appeals", operation_id = "list_open_appeals", tag = "Appeals", summary = "Open appeals, soonest due first (a submitter sees its own organization's)",
    params(("limit" = Option<u32>, Query, description = "rows per page, 1 to 500 (100)"),
        ("after" = Option<String>, Query, description = "the `next` of the page before"),
        ("organization" = Option<String>, Query, description = "only this organization's appeals (reviewers and admins)")),
    responses((status = 200, description = "one page of open appeals, with `next` when more may follow", body = crate::answers::AppealPage), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "a bad parameter, named", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AppealsQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(appeals::open(&state.service, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/appeals/{id}", operation_id = "read_appeal", tag = "Appeals", summary = "Read an appeal", params(("id" = String, Path)),
    responses((status = 200, description = "the appeal", body = crate::answers::AppealRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such appeal, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(appeals::read(&state.service, &caller, &id).await?))
}

#[utoipa::path(post, path = "/v1/appeals/{id}/decision", operation_id = "decide_appeal", tag = "Appeals", summary = "Decide an appeal (a reviewer who took no part in the determination; upholding needs a physician of the same or a similar specialty)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = AppealDecisionBody,
    responses((status = 200, description = "decided; the appeal, the request's status and its authorization", body = crate::answers::AppealRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer, the reviewer of the determination appealed, or (to uphold) not a physician of the same or a similar specialty", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such appeal, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the appeal is decided already", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<AppealDecisionBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "appeal.decide", &id, &body)?;
    let (answer, replayed) =
        appeals::decide(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(post, path = "/v1/appeals/{id}/extension", operation_id = "extend_appeal", tag = "Appeals", summary = "Extend an open appeal once, where the plan's rules allow, with the reason (reviewers, admins)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = ExtensionBody,
    responses((status = 200, description = "extended; the appeal with its new due time", body = crate::answers::AppealRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such appeal, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the plan does not extend appeals, or the appeal is decided or extended already", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<ExtensionBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "appeal.extend", &id, &body)?;
    let (answer, replayed) =
        appeals::extend(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(get, path = "/v1/appeals/{id}/notice", operation_id = "read_appeal_notice", tag = "Appeals", summary = "The data of an appeal's notice: its decision, or its extension while open", params(("id" = String, Path)),
    responses((status = 200, description = "the data of the notice", body = crate::answers::AppealNotice), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such appeal, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the appeal is open and not extended: no notice yet", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn notice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(appeals::notice(&state.service, &caller, &id).await?))
}

#[utoipa::path(get, path = "/v1/appeals/{id}/attachments/{n}", operation_id = "read_appeal_attachment", tag = "Appeals", summary = "A file sent with an appeal", params(("id" = String, Path), ("n" = u32, Path, description = "its `n` in the appeal's `attachments`")),
    responses((status = 200, description = "the file, with its content type", content((Vec<u8> = "application/pdf"), (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (String = "text/plain"))), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such appeal or file, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (content_type, bytes) = appeals::attachment(&state.service, &caller, &id, &n).await?;
    Ok(super::file_response(content_type, bytes))
}
