//! What is added to a request beside its case: the files sent with it (raw bodies, each
//! under its own size limit) and the reviewers' comments.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{answered, file_response, idempotency_key};
use crate::keys::Caller;
use crate::lifecycle::attachments::{self, FILE_BYTES_MAX, FileCall};
use crate::lifecycle::comments::{self, CommentBody};
use crate::lifecycle::retries::Retry;
use crate::web::{AppError, AppJson, AppQuery, AppState};

/// `?title=`: what the file is, as the reviewer's list shows it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    pub title: Option<String>,
}

/// A file is held about this many times over while it is read, checked, encoded for the
/// store (base64) and written: the body, its base64, and the statement's copy of that.
const EXPANSION: u64 = 5;

/// An upload's share of its organization's part of the memory budget, waited for before the
/// file is read, as a FHIR body's is: one organization sending many large files at once waits
/// on its own part, and the rest of the budget stays for everyone else.
pub(crate) async fn within_memory_budget(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (_, share) = crate::web::memory_share(&request, FILE_BYTES_MAX, EXPANSION);
    if share == 0 {
        return next.run(request).await;
    }
    let organization = crate::web::organization_of(&request);
    match state.admission.memory(&organization, share).await {
        Ok(_memory) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[utoipa::path(post, path = "/v1/requests/{id}/attachments", operation_id = "add_request_attachment", tag = "Requests", summary = "Send a file with a pending request (its requester's organization, or a reviewer): the body is the file, `Content-Type` its type, checked against its content",
    params(("id" = String, Path), ("title" = String, Query, description = "what the file is (1 to 200 characters): \"Clinic note 2026-11-30\""), ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and file is given the first answer again (200, `idempotent-replayed: true`)")),
    request_body(content((crate::answers::FileBytes = "application/pdf"), (crate::answers::FileBytes = "image/png"), (crate::answers::FileBytes = "image/jpeg")), description = "the file, at most 4 MiB"),
    responses((status = 201, description = "stored; the file as the request lists it", body = crate::answers::RequestFile), (status = 200, description = "a retry's first answer", body = crate::answers::RequestFile), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a submitter or a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "the request is decided (send files with an appeal)", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 413, description = "the file is over 4 MiB", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "no title, a type not taken, a file that is not of its type, or the request's 20 files reached; naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<FileQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(format!("a file is at most {FILE_BYTES_MAX} bytes"))
        } else {
            AppError::Invalid(vec![(
                "body".into(),
                format!("the file is unreadable: {}", rejection.body_text()),
            )])
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let title = query.title.as_deref();
    let call = FileCall::new(
        title.unwrap_or_default(),
        content_type.unwrap_or_default(),
        &bytes,
    );
    let retry = Retry::new(
        idempotency_key(&headers),
        "request.attachment.add",
        &id,
        &call,
    )?;
    let (answer, replayed) = attachments::add(
        &state.service,
        &caller,
        &id,
        title,
        content_type,
        &bytes,
        retry.as_ref(),
    )
    .await?;
    Ok(answered(StatusCode::CREATED, replayed, answer))
}

#[utoipa::path(get, path = "/v1/requests/{id}/attachments/{n}", operation_id = "read_request_attachment", tag = "Requests", summary = "A file sent with a request (the read is audited)", params(("id" = String, Path), ("n" = u32, Path, description = "its `n` in the request's `attachments`")),
    responses((status = 200, description = "the file, with its content type", content((crate::answers::FileBytes = "application/pdf"), (crate::answers::FileBytes = "image/png"), (crate::answers::FileBytes = "image/jpeg"))), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request or file, or another organization's", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (content_type, bytes) = attachments::read(&state.service, &caller, &id, &n).await?;
    Ok(file_response(content_type, bytes))
}

#[utoipa::path(post, path = "/v1/requests/{id}/comments", operation_id = "comment_on_request", tag = "Review", summary = "A reviewer's comment on a request or on one of its policy's criteria; comments are shown to the payer's readers only", params(("id" = String, Path)), request_body = CommentBody,
    responses((status = 201, description = "recorded; the request's comments", body = crate::answers::Comments), (status = 401, description = "no API key, or not a valid one", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 403, description = "not a reviewer", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 404, description = "no such request", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 409, description = "another comment was made at the same moment: send it again", body = crate::answers::Problem, content_type = "application/problem+json"), (status = 422, description = "invalid, naming the field", body = crate::answers::Problem, content_type = "application/problem+json")))]
pub(crate) async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<CommentBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(comments::add(&state.service, &caller, &id, &body).await?),
    ))
}
