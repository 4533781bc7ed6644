//! The `/v1` API: requests, the review queue, determinations, denial letters,
//! authorizations and their usage, appeals (`appeals.rs`), each handler a translation to and from
//! `crate::lifecycle`. Errors are RFC 9457 problem+json naming the field.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

pub(crate) mod appeals;
pub(crate) mod attachments;
pub(crate) mod report;

use crate::keys::Caller;
use crate::lifecycle::authorizations::{self, CancellationBody, UsageBody};
use crate::lifecycle::notices;
use crate::lifecycle::request_view;
use crate::lifecycle::requests::{self, SubmitBody, WithdrawalBody};
use crate::lifecycle::retries::Retry;
use crate::lifecycle::review::{
    self, AssignmentBody, DeterminationBody, InformationRequestBody, QueueQuery,
};
use crate::lifecycle::worklist::{self, ListQuery};
use crate::web::{AppError, AppJson, AppQuery, AppState};

pub fn routes(state: &AppState) -> Router<AppState> {
    // A file is its own body, under its own limit rather than the JSON bodies', and waits
    // for its share of the memory budget before it is read (after `admit`, the outer layer).
    let files = Router::new()
        .route("/v1/requests/{id}/attachments", post(attachments::add))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            attachments::within_memory_budget,
        ))
        .route_layer(axum::extract::DefaultBodyLimit::max(
            crate::lifecycle::attachments::FILE_BYTES_MAX,
        ));
    Router::new()
        .merge(files)
        .route("/v1/requests/{id}/attachments/{n}", get(attachments::read))
        .route("/v1/requests/{id}/comments", post(attachments::comment))
        .route("/v1/requests", post(submit).get(list_requests))
        .route(
            "/v1/requests/{id}",
            get(read_request).patch(complete_request),
        )
        .route("/v1/requests/{id}/determination", post(determine))
        .route(
            "/v1/requests/{id}/determination/preview",
            post(preview_determination),
        )
        .route("/v1/requests/{id}/denial-letter", get(denial_letter))
        .route(
            "/v1/requests/{id}/denial-letter.pdf",
            get(denial_letter_pdf),
        )
        .route("/v1/requests/{id}/approval-notice", get(approval_notice))
        .route(
            "/v1/requests/{id}/approval-notice.pdf",
            get(approval_notice_pdf),
        )
        .route("/v1/requests/{id}/withdrawal", post(withdraw))
        .route("/v1/requests/{id}/assignment", post(assign))
        .route(
            "/v1/requests/{id}/information-request",
            post(ask_for_information),
        )
        .route("/v1/requests/{id}/reopening", post(appeals::reopen))
        .route("/v1/requests/{id}/extension", post(appeals::extend_request))
        .route(
            "/v1/requests/{id}/appeals",
            post(appeals::file).get(appeals::of_request),
        )
        .route(
            "/v1/requests/{id}/peer-to-peer",
            post(appeals::peer_to_peer),
        )
        .route("/v1/appeals", get(appeals::open))
        .route("/v1/appeals/{id}", get(appeals::read))
        .route("/v1/appeals/{id}/decision", post(appeals::decide))
        .route("/v1/appeals/{id}/extension", post(appeals::extend))
        .route("/v1/appeals/{id}/notice", get(appeals::notice))
        .route("/v1/appeals/{id}/attachments/{n}", get(appeals::attachment))
        .route("/v1/queue", get(queue))
        .route("/v1/authorizations/{number}", get(read_authorization))
        .route("/v1/authorizations/{number}/usage", post(record_usage))
        .route(
            "/v1/authorizations/{number}/cancellation",
            post(cancel_authorization),
        )
        .route("/v1/notifications/dead", get(dead_notifications))
        .route("/v1/reports/um", get(report::um))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::admit,
        ))
        .route_layer(axum::middleware::from_fn(
            crate::web::refuse_control_characters,
        ))
}

#[utoipa::path(post, path = "/v1/requests", operation_id = "submit_request", tag = "Requests", summary = "Submit a request for a member of a plan; it is decided and stored", request_body = SubmitBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried submission with the same key returns the first answer")),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 201, description = "decided and stored", body = crate::answers::Submitted, headers(("Location" = String, description = "the request's address"))), (status = 200, description = "the first answer to this Idempotency-Key", body = crate::answers::Submitted), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 429, description = "over the key's or the organization's rate; `Retry-After` says when to try again", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    AppJson(body): AppJson<SubmitBody>,
) -> Result<Response, AppError> {
    let idempotency_key = idempotency_key(&headers);
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

#[utoipa::path(get, path = "/v1/requests/{id}", operation_id = "read_request", tag = "Requests", summary = "Read a request with its history and decision", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the request with its history", body = crate::answers::RequestRecord), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn read_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        request_view::read(&state.service, &caller, &id).await?,
    ))
}

#[utoipa::path(patch, path = "/v1/requests/{id}", operation_id = "complete_request", tag = "Requests", summary = "Give the missing facts of an incomplete request; it is decided again", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body(content = Object, description = "the missing facts, by section: {\"diagnosis\": {\"mrd_percent\": 0.8}}"),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "re-evaluated", body = crate::answers::RequestRecord), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not waiting for information", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn complete_request(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(facts): AppJson<Value>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "request.update", &id, &facts)?;
    let (body, replayed) =
        requests::complete(&state.service, &caller, &id, &facts, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, body))
}

/// The `Idempotency-Key` header as sent; not dropped when it is not ASCII: the lifecycle
/// refuses it, naming the header.
fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// A stored file: its declared type (checked against its content when it came), to be saved,
/// never sniffed into something a browser would run.
fn file_response(content_type: String, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, "attachment".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response()
}

/// A write's answer; a retry's says it is the first answer given again.
fn answered(status: StatusCode, replayed: bool, body: Value) -> Response {
    if replayed {
        (
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            Json(body),
        )
            .into_response()
    } else {
        (status, Json(body)).into_response()
    }
}

#[utoipa::path(get, path = "/v1/requests", operation_id = "list_requests", tag = "Requests", summary = "The requests the caller may see, newest first (a submitter: its own organization's)",
    params(("status" = Option<String>, Query, description = "`pending_information`, `pending_review`, `approved`, `denied`, `not_applicable` or `withdrawn`"),
        ("plan" = Option<String>, Query, description = "a plan id"),
        ("drug" = Option<String>, Query, description = "a drug id"),
        ("urgency" = Option<String>, Query, description = "`standard` or `expedited`"),
        ("due_before" = Option<String>, Query, description = "pending requests due before this day (`YYYY-MM-DD`, UTC) or time (RFC 3339)"),
        ("member" = Option<String>, Query, description = "a member id, or part of a member's name"),
        ("organization" = Option<String>, Query, description = "reviewers and admins: one organization's requests"),
        ("limit" = Option<u32>, Query, description = "rows per page, 1 to 500 (50)"),
        ("after" = Option<String>, Query, description = "the `next` of the page before")),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "one page, with `next` when more may follow", body = crate::answers::RequestList), (status = 422, description = "a bad or unknown parameter, named", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(worklist::list(&state.service, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/queue", operation_id = "review_queue", tag = "Review", summary = "The review queue, most urgent first (reviewers)",
    params(("limit" = Option<u32>, Query, description = "rows per page, 1 to 500 (100)"),
        ("after" = Option<String>, Query, description = "the `next` of the page before"),
        ("organization" = Option<String>, Query, description = "only this organization's requests"),
        ("urgency" = Option<String>, Query, description = "`standard` or `expedited`"),
        ("assigned" = Option<String>, Query, description = "`me`: those you have taken; `nobody`: those no reviewer has"),
        ("format" = Option<String>, Query, description = "`json` (the default) or `csv` (the page as a spreadsheet)")),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "one page of the requests awaiting a clinician, most urgent first, with `next` when more may follow", content((crate::answers::QueuePage = "application/json"), (String = "text/csv"))), (status = 403, description = "not a reviewer or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "a bad parameter, named", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<QueueQuery>,
) -> Result<Response, AppError> {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(invalid_parameter("format", "`json` or `csv`")),
    };
    let page = review::queue(&state.service, &caller, &query).await?;
    if !csv {
        return Ok(Json(page).into_response());
    }
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let body = crate::csv::of_items(
        items,
        &[
            ("request", "/id"),
            ("member id", "/member/id"),
            ("member", "/member/name"),
            ("drug", "/drug"),
            ("clinic", "/organization"),
            ("plan", "/plan"),
            ("recommendation", "/recommendation"),
            ("urgency", "/urgency"),
            ("received", "/received_at"),
            ("due", "/due_at"),
            ("minutes left", "/minutes_left"),
            ("assigned to", "/assigned_to/name"),
        ],
    );
    Ok(crate::csv::answer("queue.csv", body))
}

/// A query parameter refused, named.
fn invalid_parameter(field: &str, message: &str) -> AppError {
    AppError::Invalid(vec![(field.to_string(), message.to_string())])
}

#[utoipa::path(post, path = "/v1/requests/{id}/information-request", operation_id = "ask_for_information", tag = "Review", summary = "Send a request in review back to its requester with questions in plain words (reviewers); it is answered by `PATCH` with `answers`", params(("id" = String, Path)), request_body = InformationRequestBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the request, waiting for information", body = crate::answers::RequestRecord), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not in review", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn ask_for_information(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<InformationRequestBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        review::ask_for_information(&state.service, &caller, &id, &body).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/assignment", operation_id = "assign_request", tag = "Review", summary = "Take a request in review (assign it to yourself), or give it back to the queue (reviewers)", params(("id" = String, Path)), request_body = AssignmentBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "who has it now", body = crate::answers::Assignment), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not in review", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<AssignmentBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        review::assign(&state.service, &caller, &id, &body).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/determination", operation_id = "record_determination", tag = "Review", summary = "Record a reviewer's determination", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = DeterminationBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "recorded; the request as it now is", body = crate::answers::RequestRecord), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not in review", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn determine(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<DeterminationBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(
        idempotency_key(&headers),
        "request.determination",
        &id,
        &body,
    )?;
    let (answer, replayed) =
        review::determine(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(post, path = "/v1/requests/{id}/determination/preview", operation_id = "preview_determination", tag = "Review", summary = "The notice a determination would send, checked as the determination is and recorded nowhere (the read is audited)", params(("id" = String, Path)), request_body = DeterminationBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the notice it would send", body = crate::answers::DeterminationPreview), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not in review", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field (as the determination would be)", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn preview_determination(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<DeterminationBody>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        review::preview(&state.service, &caller, &id, &body).await?,
    ))
}

#[utoipa::path(post, path = "/v1/requests/{id}/withdrawal", operation_id = "withdraw_request", tag = "Requests", summary = "Withdraw a pending request (the requester)", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = WithdrawalBody,
    responses((status = 200, description = "withdrawn; the request as it now is", body = crate::answers::RequestRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a submitter or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is no longer pending", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<WithdrawalBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(idempotency_key(&headers), "request.withdraw", &id, &body)?;
    let (answer, replayed) =
        requests::withdraw(&state.service, &caller, &id, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(get, path = "/v1/requests/{id}/denial-letter", operation_id = "read_denial_letter", tag = "Review", summary = "The data of a denial notice", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the data of the denial notice", body = crate::answers::DenialLetter), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not denied", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn denial_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        notices::denial_letter(&state.service, &caller, &id).await?,
    ))
}

#[utoipa::path(get, path = "/v1/requests/{id}/denial-letter.pdf", operation_id = "read_denial_letter_pdf", tag = "Review", summary = "The denial notice as PDF, in the words of its `paragraphs`", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the notice, a PDF", body = crate::answers::PdfFile, content_type = "application/pdf"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not denied", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn denial_letter_pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let letter = notices::denial_letter(&state.service, &caller, &id).await?;
    Ok(notice_pdf(&letter, &format!("denial-{id}.pdf")))
}

#[utoipa::path(get, path = "/v1/requests/{id}/approval-notice", operation_id = "read_approval_notice", tag = "Review", summary = "The approval notice of an approved request, in words", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the notice: its authorization and its paragraphs", body = crate::answers::ApprovalNotice), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not approved", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn approval_notice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        notices::approval_notice(&state.service, &caller, &id).await?,
    ))
}

#[utoipa::path(get, path = "/v1/requests/{id}/approval-notice.pdf", operation_id = "read_approval_notice_pdf", tag = "Review", summary = "The approval notice as PDF, in the words of its `paragraphs`", params(("id" = String, Path)),
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the notice, a PDF", body = crate::answers::PdfFile, content_type = "application/pdf"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is not approved", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn approval_notice_pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let notice = notices::approval_notice(&state.service, &caller, &id).await?;
    Ok(notice_pdf(&notice, &format!("approval-{id}.pdf")))
}

/// A notice's `paragraphs` as a PDF answer, named for saving.
fn notice_pdf(notice: &Value, name: &str) -> Response {
    let paragraphs: Vec<String> = notice
        .get("paragraphs")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let title = paragraphs.first().cloned().unwrap_or_default();
    let pdf = crate::pdf::notice(&title, &paragraphs);
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}\""),
            ),
        ],
        pdf,
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/authorizations/{number}", operation_id = "read_authorization", tag = "Authorizations", summary = "Read an authorization with units used and left", params(("number" = String, Path)), responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "the authorization with units used and left", body = crate::answers::AuthorizationRecord), (status = 404, description = "no such authorization, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn read_authorization(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        authorizations::read(&state.service, &caller, &number).await?,
    ))
}

#[utoipa::path(post, path = "/v1/authorizations/{number}/usage", operation_id = "record_usage", tag = "Authorizations", summary = "Spend units of an authorization", params(("number" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = UsageBody,
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 201, description = "recorded", body = crate::answers::Usage), (status = 200, description = "the first answer to this Idempotency-Key", body = crate::answers::Usage), (status = 404, description = "no such authorization, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "beyond the approved units, or beyond the units of the period that holds the date of service (the authorization's own, or another of the member's course for the drug)", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "outside the authorization period, or invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn record_usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(number): Path<String>,
    AppJson(body): AppJson<UsageBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(
        idempotency_key(&headers),
        "authorization.usage",
        &number,
        &body,
    )?;
    let (answer, replayed) =
        authorizations::record_usage(&state.service, &caller, &number, &body, retry.as_ref())
            .await?;
    Ok(answered(StatusCode::CREATED, replayed, answer))
}

#[utoipa::path(post, path = "/v1/authorizations/{number}/cancellation", operation_id = "cancel_authorization", tag = "Authorizations", summary = "Cancel an authorization no longer needed (the requester): drug given through today stays covered, nothing after", params(("number" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body is given the first answer again (200, `idempotent-replayed: true`); the key on another call is refused 422")), request_body = CancellationBody,
    responses((status = 200, description = "cancelled; the request as it now is, its authorization with `cancelled_on`", body = crate::answers::RequestRecord), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a submitter or an admin", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such authorization, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "already cancelled, naming the day", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn cancel_authorization(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(number): Path<String>,
    AppJson(body): AppJson<CancellationBody>,
) -> Result<Response, AppError> {
    let retry = Retry::new(
        idempotency_key(&headers),
        "authorization.cancel",
        &number,
        &body,
    )?;
    let (answer, replayed) =
        authorizations::cancel(&state.service, &caller, &number, &body, retry.as_ref()).await?;
    Ok(answered(StatusCode::OK, replayed, answer))
}

#[utoipa::path(get, path = "/v1/notifications/dead", operation_id = "list_dead_notifications", tag = "Operations", summary = "Dead-lettered PAS notifications (admins)",
    responses((status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 200, description = "PAS notifications no longer retried (their schedule spent), the latest first, with their last error", body = crate::answers::DeadLetters), (status = 403, description = "not an admin", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn dead_notifications(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        crate::lifecycle::subscriptions::dead_letters(&state.service, &caller).await?,
    ))
}
