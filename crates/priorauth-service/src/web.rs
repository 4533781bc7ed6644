//! What the HTTP adapters share: their state, the errors they answer (problem+json for
//! `/v1` and the console), JSON bodies whose errors name the field, and the caller taken
//! from the API key. No workflow here: that is `crate::lifecycle`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::admission::{self, Admission};
use crate::keys::Caller;
use crate::lifecycle::{self, Service};
use crate::store::StoreError;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The time limit, as a route layer of each adapter: inside an adapter's own error answers,
/// so that a call that runs out of time is answered in its terms (an OperationOutcome on the
/// FHIR routes, problem+json elsewhere).
pub(crate) fn time_limit() -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        REQUEST_TIMEOUT,
    )
}

/// The state every HTTP adapter is given: the lifecycle's service, and the FHIR mapping
/// tables for the FHIR interfaces.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Service,
    /// The FHIR mapping tables (`config/fhir.toml`).
    pub fhir: Arc<priorauth_fhir::map::Map>,
    /// Who may call, and each key's and organization's share of the service.
    pub admission: Arc<Admission>,
    /// Reads an EHR's FHIR server for CDS Hooks calls.
    pub chart: Arc<crate::chart::Chart>,
}

/// Every failure, answered as problem+json.
#[derive(Debug)]
pub enum AppError {
    Unauthorized,
    Forbidden(String),
    NotFound,
    /// (field, message) pairs.
    Invalid(Vec<(String, String)>),
    Conflict(String),
    /// A body over `BODY_LIMIT`.
    TooLarge(String),
    /// A body that is not declared as JSON.
    UnsupportedMediaType(String),
    /// Over a key's or an organization's share: retry after this many seconds.
    TooManyRequests {
        retry_after_seconds: u64,
        /// The exact wait (`retry_after_seconds` is it rounded up).
        wait: Duration,
        detail: String,
    },
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        AppError::Internal(error.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> AppError {
        AppError::Internal(error.to_string())
    }
}

impl From<lifecycle::Error> for AppError {
    fn from(error: lifecycle::Error) -> AppError {
        match error {
            lifecycle::Error::Forbidden(detail) => AppError::Forbidden(detail),
            lifecycle::Error::NotFound => AppError::NotFound,
            lifecycle::Error::Invalid(errors) => AppError::Invalid(errors),
            lifecycle::Error::Conflict(detail) => AppError::Conflict(detail),
            lifecycle::Error::Internal(detail) => AppError::Internal(detail),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title, detail, errors) = match self {
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required".to_string(),
                vec![],
            ),
            AppError::Forbidden(detail) => (StatusCode::FORBIDDEN, "forbidden", detail, vec![]),
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "not found",
                "no such resource".to_string(),
                vec![],
            ),
            AppError::Invalid(errors) => {
                let detail = errors
                    .iter()
                    .map(|(f, m)| format!("`{f}`: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid request",
                    detail,
                    errors,
                )
            }
            AppError::Conflict(detail) => (StatusCode::CONFLICT, "conflict", detail, vec![]),
            AppError::TooLarge(detail) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
                detail.clone(),
                vec![("body".to_string(), detail)],
            ),
            AppError::UnsupportedMediaType(detail) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                detail.clone(),
                vec![("body".to_string(), detail)],
            ),
            AppError::TooManyRequests {
                retry_after_seconds,
                detail,
                ..
            } => {
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests",
                    &detail,
                    &[],
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
                return response;
            }
            AppError::Internal(detail) => {
                // The cause goes to the server's own log (it names no patient data: ids and
                // database messages only), never to the client.
                eprintln!("internal error: {detail}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    "the request could not be completed".to_string(),
                    vec![],
                )
            }
        };
        let mut response = problem(status, title, &detail, &errors);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An RFC 9457 problem: status, title, detail and the (field, message) pairs.
pub(crate) fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    errors: &[(String, String)],
) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "errors": errors.iter().map(|(field, message)| json!({"field": field, "message": message})).collect::<Vec<_>>(),
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The errors axum answers by itself (no such route, method not allowed, a path segment that
/// does not parse, the time limit) come empty or as plain text; they are answered as
/// problem+json like every other error. Errors that already have a media type are kept.
/// A path or query with a control character (NUL included, sent as `%00`) names nothing the
/// service holds, and PostgreSQL refuses NUL in text outright: such a call is refused before
/// any handler reads it. (A raw control character never gets this far: the HTTP layer
/// refuses it.)
pub(crate) fn control_characters_in(uri: &axum::http::Uri) -> bool {
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    target.as_bytes().windows(3).any(|w| {
        matches!(w, [b'%', b'0' | b'1', h] if h.is_ascii_hexdigit())
            || matches!(w, [b'%', b'7', b'f' | b'F'])
    })
}

pub(crate) const CONTROL_CHARACTERS: &str =
    "control characters are not allowed in the path or the query";

/// `control_characters_in` as a route layer answering problem+json.
pub(crate) async fn refuse_control_characters(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if control_characters_in(request.uri()) {
        let errors = [("path".to_string(), CONTROL_CHARACTERS.to_string())];
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid request",
            CONTROL_CHARACTERS,
            &errors,
        );
    }
    next.run(request).await
}

/// Every answer may carry patient data or a decision about one: no cache (a browser's, a
/// proxy's) may keep it. An answer that says otherwise (none does today) keeps its own.
pub(crate) async fn not_stored(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// An error answered to a call that sent a body closes its connection (`Connection: close`).
///
/// Why: an error is often answered before the body is read (a missing key, a content type
/// refused, a body over the limit, an unknown route), and hyper then reads what has arrived
/// of the body once: if the rest is still on its way, it closes the connection after the
/// answer. A client told nothing sends its next call on that connection, and that call fails
/// as an incomplete message (one test in thirty sending a body over the limit after a
/// refused content type). Said in the answer, the client opens a new connection for the
/// next call. Errors are few; a connection per error costs little.
pub(crate) async fn close_after_refused_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let sent_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut response = next.run(request).await;
    let status = response.status();
    if sent_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub(crate) async fn bare_errors_as_problems(response: Response) -> Response {
    match bare_error(response).await {
        Ok((status, text, headers)) => {
            let title = status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase();
            let mut response = problem(status, &title, &text, &[]);
            keep_headers(&mut response, &headers);
            response
        }
        Err(response) => response,
    }
}

/// An error answer the framework produced itself (no body type, or plain text): its status,
/// its text (or the status's name) and its headers. Any other answer is handed back.
pub(crate) async fn bare_error(
    response: Response,
) -> Result<(StatusCode, String, HeaderMap), Response> {
    let status = response.status();
    let bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !bare || !(status.is_client_error() || status.is_server_error()) {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    // axum's own texts name the problem (`Cannot parse "x" to a u32`); keep them when short.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        });
    Ok((status, text, parts.headers))
}

/// Keeps what an answer said besides its body (`Allow` on 405, `WWW-Authenticate`).
pub(crate) fn keep_headers(response: &mut Response, headers: &HeaderMap) {
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name, value.clone());
        }
    }
}

/// JSON bodies whose errors are problem+json naming the field.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(AppError::UnsupportedMediaType(
                "the body must be sent as `Content-Type: application/json`".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::TooLarge(format!("the body is over the limit of {BODY_LIMIT} bytes"))
                } else {
                    AppError::Invalid(vec![(
                        "body".into(),
                        format!("the body is unreadable: {}", rejection.body_text()),
                    )])
                }
            })?;
        // NUL and other control characters have no place in any field (PostgreSQL cannot
        // even hold NUL in text); JSON can carry them only escaped, so a scan for escapes
        // finds them, and only then is the body read again to name the field.
        if has_escaped_control_character(&bytes) {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::Invalid(vec![("body".into(), format!("not JSON: {e}"))]))?;
            let field = control_character_field(&value, "").unwrap_or_else(|| "body".into());
            return Err(AppError::Invalid(vec![(
                field,
                "control characters are not allowed (tab, line feed and carriage return are)"
                    .into(),
            )]));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// Query strings whose errors are problem+json: an unknown or malformed parameter is named
/// (a misspelt filter must not silently widen a list).
#[derive(Debug)]
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for AppQuery<T>
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(AppQuery(value)),
            Err(rejection) => Err(AppError::Invalid(vec![(
                "query".into(),
                rejection.body_text(),
            )])),
        }
    }
}

/// `application/json` or any `application/…+json`, as axum's own `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A control character other than tab, line feed and carriage return, or DEL, written as a
/// JSON escape (`\u0000`, `\b`, `\f`). Raw ones are not JSON at all (the parser refuses them).
fn has_escaped_control_character(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escape = rest.get(at + 1..).unwrap_or_default();
        match escape {
            [b'b' | b'f', ..] => return true,
            [b'u', h1, h2, h3, h4, ..] => {
                let hex = [*h1, *h2, *h3, *h4];
                let code = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok());
                if code.is_some_and(|c| (c < 0x20 && !matches!(c, 0x09 | 0x0a | 0x0d)) || c == 0x7f)
                {
                    return true;
                }
            }
            _ => {}
        }
        // Past the backslash and the character it escapes (`\\` included).
        rest = rest.get(at + 2..).unwrap_or_default();
    }
    false
}

fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r') && (c as u32) < 0x80
}

/// The field (`request.renews`, `items[2]`) holding a refused control character.
fn control_character_field(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => text
            .chars()
            .any(is_refused_control)
            .then(|| path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_character_field(item, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.chars().any(is_refused_control) {
                return Some(if path.is_empty() {
                    "body".into()
                } else {
                    path.to_string()
                });
            }
            control_character_field(item, &inner)
        }),
        _ => None,
    }
}

fn json_problem(rejection: &JsonRejection) -> AppError {
    let text = rejection.body_text();
    // axum reports `path: message` for a deserialization error; the path names the field.
    let detail = text
        .rsplit_once("body into the target type: ")
        .map_or(text.as_str(), |(_, rest)| rest);
    let (field, message) = match detail.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => (path.to_string(), message.to_string()),
        _ => ("body".to_string(), detail.to_string()),
    };
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::TooLarge(format!("the body is over the limit of {BODY_LIMIT} bytes"));
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
            "the body must be sent as `Content-Type: application/json`".into(),
        ),
        JsonRejection::BytesRejection(_) => AppError::Invalid(vec![(
            "body".into(),
            format!("the body is too large or unreadable: {text}"),
        )]),
        _ => AppError::Invalid(vec![(field, message)]),
    }
}

// ---- Callers ----

/// `Admission::admit` as a route layer answering problem+json, before any extractor reads
/// the body: the caller is left where the `Caller` extractor finds it, and the call's place
/// among its organization's calls in flight is held until the answer is made.
pub(crate) async fn admit(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    admit_with(&state, request, next, IntoResponse::into_response).await
}

/// `admit` with the adapter's own answer to a refusal (an OperationOutcome for FHIR).
pub(crate) async fn admit_with(
    state: &AppState,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
    refuse: impl FnOnce(AppError) -> Response,
) -> Response {
    let target = format!("{} {}", request.method(), request.uri().path());
    match state
        .admission
        .admit(
            &state.service.store,
            request.headers(),
            &target,
            request.extensions().get::<admission::Peer>().copied(),
        )
        .await
    {
        Ok(admitted) => {
            request.extensions_mut().insert(admitted.caller.clone());
            let response = next.run(request).await;
            if let Some(action) = admission::refusal_action(response.status().as_u16()) {
                state
                    .admission
                    .record_refusal(Some(&admitted.caller), action, &target);
            }
            drop(admitted);
            response
        }
        // Recorded for the audit by `admit`.
        Err(error) => refuse(error),
    }
}

/// A call's body size as declared (0 without a body; `limit`, the most a body may be, when
/// its length is not declared, chunked) and its share of the memory budget in MB: `expansion`
/// times its size, the most memory a byte of it takes while it is read, handled and answered.
pub(crate) fn memory_share(
    request: &axum::extract::Request,
    limit: usize,
    expansion: u64,
) -> (u64, u32) {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = match declared {
        Some(bytes) => bytes.min(limit as u64),
        None if request.method() == axum::http::Method::GET => 0,
        None => limit as u64,
    };
    if bytes == 0 {
        return (0, 0);
    }
    let megabytes = (bytes * expansion).div_ceil(1024 * 1024);
    (bytes, u32::try_from(megabytes).unwrap_or(u32::MAX).max(1))
}

/// The organization of the caller `admit` let in (empty before it).
pub(crate) fn organization_of(request: &axum::extract::Request) -> String {
    request
        .extensions()
        .get::<Caller>()
        .map(|c| c.organization.clone())
        .unwrap_or_default()
}

/// Writes the refused calls recorded since the last time to the audit log, every
/// `admission::REFUSALS_FLUSHED_EVERY`, until the process ends.
pub async fn audit_refusals(state: AppState) {
    loop {
        tokio::time::sleep(state.admission.refusals_flushed_every()).await;
        if state.service.store.pool.is_closed() {
            return;
        }
        if let Err(error) = flush_refusals(&state).await {
            eprintln!("audit of refused calls: {error}");
        }
    }
}

/// Writes the refused calls recorded since the last flush to the audit log, one entry per
/// caller and reason (through the group commit).
pub async fn flush_refusals(state: &AppState) -> Result<(), crate::store::StoreError> {
    for record in state.admission.take_refusals() {
        state
            .service
            .writer
            .write(crate::store::writer::Write::Audit(record))
            .await?;
    }
    Ok(())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Admitted by `admit`: the key was checked before the body was read.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let secret = admission::secret(&parts.headers).ok_or(AppError::Unauthorized)?;
        let audiences = crate::trust::hook_audiences(&parts.headers, parts.uri.path());
        match crate::trust::authenticate(
            &state.service.store,
            secret,
            parts.method.as_str(),
            &audiences,
        )
        .await
        {
            Ok(caller) => caller.ok_or(AppError::Unauthorized),
            Err(crate::trust::Refused::Scope(why)) => Err(AppError::Forbidden(why)),
            Err(crate::trust::Refused::Invalid(_)) => Err(AppError::Unauthorized),
            Err(crate::trust::Refused::Store(error)) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_control_characters_are_found_and_nothing_else() {
        for refused in [
            r#"{"a":"\u0000"}"#,
            r#"{"a":"x\u001F"}"#,
            r#"{"a":"\u007f"}"#,
            r#"{"a":"\b"}"#,
            r#"{"a":"\\\f"}"#,
        ] {
            assert!(
                has_escaped_control_character(refused.as_bytes()),
                "{refused}"
            );
        }
        for allowed in [
            r#"{"a":"line\nfeed\r\ttab"}"#,
            r#"{"a":"\u0009\u000a\u000D"}"#,
            r#"{"a":"\\u0000 is text here"}"#,
            r#"{"a":"\\b and \\f too"}"#,
            r#"{"a":"\u00e9 \u0020 \"\\"}"#,
            r#"{"a":"ends with \\"#,
        ] {
            assert!(
                !has_escaped_control_character(allowed.as_bytes()),
                "{allowed}"
            );
        }
    }

    #[test]
    fn the_field_holding_a_control_character_is_named() {
        let value =
            serde_json::json!({"case": {"id": "ok", "diagnosis": {"icd10": ["C91.00", "C\u{0}"]}}});
        assert_eq!(
            control_character_field(&value, "").as_deref(),
            Some("case.diagnosis.icd10[1]")
        );
        let key = serde_json::json!({"case": {"bad\u{1}key": 1}});
        assert_eq!(control_character_field(&key, "").as_deref(), Some("case"));
    }
}
