//! The HTTP API: requests, the review queue, determinations, denial letters,
//! authorizations and their usage. Errors are RFC 9457 problem+json naming the field.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use priorauth_core::date::Date;
use priorauth_core::report::Report;
use priorauth_core::{Engine, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{OpenApi, ToSchema};

use crate::keys::{self, Caller, Role};
use crate::plans::{Plan, Plans};
use crate::store::{self, Store, StoreError, Tx, now_ms, random_id, sha256_hex};
use crate::writer::{self, NewAuthorization, NewRequest, Write, Writer, Written};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub plans: Arc<Plans>,
    pub store: Store,
    /// The FHIR mapping tables (`config/fhir.toml`).
    pub fhir: Arc<priorauth_fhir::map::Map>,
    /// Wakes the notification worker after a decision.
    pub notify: Arc<tokio::sync::Notify>,
    /// The group commit of new requests and audit entries.
    pub writer: Writer,
}

pub fn app(state: AppState) -> Router {
    // PAS notifications are delivered by the process that serves.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(crate::notify::run(state.clone()));
    }
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
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .merge(crate::console::routes())
        .merge(crate::fhir::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Outermost, so that it also sees the time limit's answer.
        .layer(axum::middleware::map_response(bare_errors_as_problems))
        .with_state(state)
}

// ---- Errors ----

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

/// A case that breaks the format: each problem named by its key under `case.`.
pub(crate) fn case_invalid(error: priorauth_core::CaseError) -> AppError {
    AppError::Invalid(
        error
            .problems
            .iter()
            .map(|p| (format!("case.{}", p.key), p.message.clone()))
            .collect(),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid(vec![(field.to_string(), message.into())])
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
fn problem(status: StatusCode, title: &str, detail: &str, errors: &[(String, String)]) -> Response {
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
async fn bare_errors_as_problems(response: Response) -> Response {
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
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .ok_or(AppError::Unauthorized)?;
        keys::authenticate(&state.store, secret.trim())
            .await?
            .ok_or(AppError::Unauthorized)
    }
}

fn require(caller: &Caller, roles: &[Role]) -> Result<(), AppError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!(
            "this needs the {} role",
            names.join(" or ")
        )))
    }
}

/// A submitter sees only its own organization's records; to anyone else they do not exist.
fn visible(caller: &Caller, organization: &str) -> bool {
    caller.role != Role::Submitter || caller.organization == organization
}

// ---- Bodies ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    #[default]
    Standard,
    Expedited,
}

/// A prior-authorization request for a member of a plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Plan id (`config/plans.toml`).
    pub plan: String,
    /// The case, in the case format (docs/case-format.md).
    #[schema(value_type = Object)]
    pub case: Value,
    #[serde(default)]
    pub urgency: Urgency,
    /// The authorization number this request continues (a renewal). Its history, renewal
    /// count and cycles given are then taken from the records.
    #[serde(default)]
    pub renews: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeterminationDecision {
    Approve,
    ApproveWithChanges,
    Deny,
}

/// A clinician's determination on a request in review.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeterminationBody {
    pub decision: DeterminationDecision,
    /// The specific reason, in plain language.
    pub reason: String,
    /// Id of the policy criterion the determination rests on.
    pub criterion: String,
    /// For `approve_with_changes`: what the approval grants instead of the request.
    #[serde(default)]
    pub changes: Option<Changes>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    pub units: Option<u32>,
    pub period_days: Option<u32>,
    pub cycles: Option<u32>,
    /// Inclusive last day, `YYYY-MM-DD`.
    pub end: Option<String>,
}

/// Units used on a date of service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBody {
    pub units: u32,
    /// `YYYY-MM-DD`.
    pub date_of_service: String,
}

// ---- Requests ----

fn status_of(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Approve => "approved",
        Outcome::Incomplete => "pending_information",
        Outcome::Review | Outcome::Deny => "pending_review",
        Outcome::NotApplicable => "not_applicable",
    }
}

/// The evaluated request: its case (with the plan's line of business), the policy used and
/// the policy's result in the decision contract.
struct Evaluated {
    case: priorauth_core::Case,
    case_json: Value,
    policy_index: usize,
    outcome: Outcome,
    result: Value,
    /// The day the payer received the request: an approval's period starts then.
    received: Date,
    /// The most an authorization of this request may cover, per cycle and in cycles: the
    /// engine's granted quantity for an approval, else (a reviewer's approval) the label's
    /// limits applied to the request.
    bound: QuantityBound,
}

#[derive(Debug, Clone, Copy)]
struct QuantityBound {
    /// Units per cycle the authorization carries unless a reviewer changes them.
    units_per_cycle: u32,
    /// The most units per cycle a reviewer may approve (the label's).
    max_units_per_cycle: u32,
    cycles: u32,
    max_cycles: u32,
}

/// The calendar day (UTC) of a time in milliseconds since 1970.
pub(crate) fn day_of(ms: i64) -> Date {
    Date::from_epoch_days(ms.div_euclid(86_400_000))
        .unwrap_or_else(|| Date::from_ymd_unchecked(1970, 1, 1))
}

/// The quantity bound of an evaluated request (see [`Evaluated::bound`]).
fn quantity_bound(result: &Value, facts: &priorauth_core::Facts) -> QuantityBound {
    use priorauth_core::FactId;
    use priorauth_core::facts::Value as Fact;
    let number = |id: FactId| match facts.get(id) {
        Fact::Number(n) if n.is_finite() && n >= 0.0 => Some(n.min(f64::from(u32::MAX)) as u32),
        _ => None,
    };
    let label_units = number(FactId::RequestLabelUnitsPerCycle).unwrap_or(0);
    let first = number(FactId::RequestFirstCycle).unwrap_or(1).max(1);
    let course_left = number(FactId::RequestLabelCourseCycles)
        .map_or(0, |course| course.saturating_sub(first - 1));
    let granted = |key: &str| {
        result
            .pointer(&format!("/quantity/{key}"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    match (granted("units"), granted("cycles")) {
        (Some(units), Some(cycles)) => QuantityBound {
            units_per_cycle: units,
            max_units_per_cycle: label_units.max(units),
            cycles,
            max_cycles: course_left.max(cycles),
        },
        _ => {
            let requested_units = number(FactId::RequestUnitsPerCycle).unwrap_or(label_units);
            let requested_cycles = number(FactId::RequestCycles).unwrap_or(1);
            QuantityBound {
                units_per_cycle: requested_units.min(label_units),
                max_units_per_cycle: label_units,
                cycles: requested_cycles.min(course_left),
                max_cycles: course_left,
            }
        }
    }
}

fn evaluate(
    state: &AppState,
    plan: &Plan,
    mut case_json: Value,
    received: Date,
) -> Result<Evaluated, AppError> {
    let Some(object) = case_json.as_object_mut() else {
        return Err(invalid("case", "must be an object"));
    };
    // The plan's line of business is the member's.
    let request = object.entry("request").or_insert_with(|| json!({}));
    if request.is_null() {
        *request = json!({});
    }
    if let Some(request) = request.as_object_mut() {
        match request.get("line_of_business").and_then(Value::as_str) {
            None => {
                request.insert(
                    "line_of_business".into(),
                    Value::from(plan.line_of_business.clone()),
                );
            }
            Some(given) if given != plan.line_of_business => {
                return Err(invalid(
                    "case.request.line_of_business",
                    format!(
                        "`{given}` is not the plan's line of business (`{}`)",
                        plan.line_of_business
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let case = state
        .engine
        .parse_case(&case_json.to_string())
        .map_err(case_invalid)?;
    let drug = case
        .request
        .as_ref()
        .and_then(|r| r.drug.clone())
        .ok_or_else(|| {
            invalid(
                "case.request.drug",
                "the drug decides which of the plan's policies applies",
            )
        })?;
    let policy_id = plan.policies.get(&drug).ok_or_else(|| {
        invalid(
            "case.request.drug",
            format!("plan `{}` has no policy for `{drug}`", plan.id),
        )
    })?;
    let policy_index = state
        .engine
        .policy_index(policy_id)
        .ok_or_else(|| AppError::Internal(format!("policy {policy_id} missing")))?;
    // The payer's clock, not the request, dates the decision: the versions in effect on the
    // day of receipt decide, and an approval starts that day.
    let evaluation = state
        .engine
        .evaluate_received(&case, &[policy_index], Some(received))
        .map_err(case_invalid)?;
    let report = Report::new(&state.engine, &case, &evaluation);
    let result = report
        .results
        .first()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let outcome = evaluation
        .decisions
        .first()
        .map_or(Outcome::Incomplete, |(_, d)| d.outcome);
    // The version in effect on the day of receipt decided; it is the one recorded.
    let policy_index = evaluation
        .decisions
        .first()
        .map_or(policy_index, |(index, _)| *index);
    let bound = quantity_bound(&result, &evaluation.facts);
    Ok(Evaluated {
        case,
        case_json,
        policy_index,
        outcome,
        result,
        received,
        bound,
    })
}

/// The authorization that renews `number`, if one does.
async fn renewal_of(tx: &mut Tx, number: &str) -> Result<Option<String>, AppError> {
    Ok(
        sqlx::query("SELECT number FROM authorizations WHERE renews = $1")
            .bind(number)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get::<String, _>("number"))
            .transpose()?,
    )
}

/// An authorization is renewed once: a second renewal would authorize the same cycles again.
fn already_renewed(number: &str, renewal: &str) -> AppError {
    AppError::Conflict(format!(
        "authorization `{number}` is already renewed by `{renewal}`; renew that one"
    ))
}

/// Replaces the history the requester gave with the records of the authorization chain.
async fn history_from_records(
    tx: &mut Tx,
    caller: &Caller,
    number: &str,
    case_json: &mut Value,
) -> Result<(), AppError> {
    if let Some(renewal) = renewal_of(tx, number).await? {
        return Err(already_renewed(number, &renewal));
    }
    let mut chain = Vec::new();
    let mut next = Some(number.to_string());
    while let Some(number) = next.take() {
        let row = sqlx::query("SELECT number, organization, drug, start_date, end_date, cycles, first_cycle, renews FROM authorizations WHERE number = $1")
            .bind(&number)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Err(if chain.is_empty() {
                invalid("renews", format!("no authorization `{number}`"))
            } else {
                AppError::Internal("broken authorization chain".into())
            });
        };
        let organization: String = row.try_get("organization")?;
        if !visible(caller, &organization) {
            return Err(invalid("renews", format!("no authorization `{number}`")));
        }
        next = row.try_get::<Option<String>, _>("renews")?;
        chain.push(row);
        if chain.len() > 100 {
            return Err(AppError::Internal("authorization chain too long".into()));
        }
    }
    let drug: String = chain
        .first()
        .map(|r| r.try_get("drug"))
        .transpose()?
        .unwrap_or_default();
    let given_drug = case_json
        .pointer("/request/drug")
        .and_then(Value::as_str)
        .map(str::to_string);
    if given_drug.as_deref().is_some_and(|d| d != drug) {
        return Err(invalid(
            "renews",
            format!("authorization `{number}` is for `{drug}`"),
        ));
    }
    let mut past = Vec::new();
    let (mut cycles_given, mut continued_given) = (0i64, 0i64);
    for row in &chain {
        let (first, cycles): (i64, i64) = (row.try_get("first_cycle")?, row.try_get("cycles")?);
        cycles_given = cycles_given.max(first + cycles - 1);
        continued_given += (first..first + cycles).filter(|c| *c >= 6).count() as i64;
        past.push(json!({
            "start": row.try_get::<String, _>("start_date")?,
            "end": row.try_get::<String, _>("end_date")?,
            "renewal": row.try_get::<Option<String>, _>("renews")?.is_some(),
        }));
    }
    let object = case_json
        .as_object_mut()
        .ok_or_else(|| invalid("case", "must be an object"))?;
    let request = object.entry("request").or_insert_with(|| json!({}));
    if let Some(request) = request.as_object_mut() {
        request.insert("drug".into(), Value::from(drug.clone()));
        // A request that continues an authorization is a renewal, whatever it declares.
        match request.get("kind").and_then(Value::as_str) {
            Some("renewal") | None => {
                request.insert("kind".into(), Value::from("renewal"));
            }
            Some(kind) => {
                return Err(invalid(
                    "case.request.kind",
                    format!(
                        "`{kind}` contradicts `renews`: a request continuing authorization `{number}` is a renewal"
                    ),
                ));
            }
        }
        // The course continues where the records say it stands.
        if drug == "blinatumomab" {
            request.insert("first_cycle".into(), Value::from(cycles_given + 1));
        }
    }
    let history = object.entry("history").or_insert_with(|| json!({}));
    if history.is_null() {
        *history = json!({});
    }
    if let Some(history) = history.as_object_mut() {
        history.insert("authorizations".into(), Value::Array(past));
        if drug == "blinatumomab" {
            history.insert("blinatumomab_cycles".into(), Value::from(cycles_given));
            history.insert(
                "blinatumomab_continued_cycles".into(),
                Value::from(continued_given),
            );
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/requests", request_body = SubmitBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried submission with the same key returns the first answer")),
    responses((status = 201, description = "decided and stored"), (status = 200, description = "the first answer to this Idempotency-Key"), (status = 422, description = "invalid, naming the field")))]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    AppJson(body): AppJson<SubmitBody>,
) -> Result<Response, AppError> {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (created, response) = submit_case(&state, &caller, body, idempotency_key, None).await?;
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

/// A PAS submission's link to its request: the request Bundle as received and the Claim's
/// identifier (what `$inquire` finds it by).
#[derive(Debug, Clone)]
pub struct ClaimLink {
    /// The FHIR base the request reached, for the full URLs of later notifications.
    pub base: String,
    pub claim_identifier: String,
    pub item_sequence: u32,
    pub bundle_json: String,
}

/// Decides and stores a request: one transaction holds the request, its first event, its
/// audit entry, its authorization if approved and its FHIR link. Answers (created, the
/// response); a retry with the same idempotency key answers the first response.
pub(crate) async fn submit_case(
    state: &AppState,
    caller: &Caller,
    body: SubmitBody,
    idempotency_key: Option<String>,
    link: Option<ClaimLink>,
) -> Result<(bool, Value), AppError> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let plan = state
        .plans
        .get(&body.plan)
        .ok_or_else(|| invalid("plan", format!("unknown plan `{}`", body.plan)))?
        .clone();
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 255)
    {
        return Err(invalid("Idempotency-Key", "must be 1 to 255 characters"));
    }
    let body_hash = sha256_hex(&serde_json::to_string(&body).unwrap_or_default());
    if let Some(key) = &idempotency_key {
        if let Some(answer) = replay(state, caller, key, &body_hash).await? {
            return Ok((false, answer));
        }
    }

    // A renewal reads the authorization chain and writes in one transaction of its own, so
    // that two renewals of one authorization cannot both be decided on the same records.
    // Every other request is written by the group commit.
    let mut renewal_tx = None;
    let mut case_json = body.case.clone();
    if let Some(number) = &body.renews {
        let mut tx = state.store.pool.begin().await?;
        history_from_records(&mut tx, caller, number, &mut case_json).await?;
        renewal_tx = Some(tx);
    }
    let now = now_ms();
    let evaluated = evaluate(state, &plan, case_json, day_of(now))?;
    let policy = state
        .engine
        .policies
        .get(evaluated.policy_index)
        .ok_or_else(|| AppError::Internal("policy".into()))?;
    let id = random_id("req_");
    let status = status_of(evaluated.outcome);
    let due_at = (status == "pending_review")
        .then(|| plan.clocks.due(body.urgency == Urgency::Expedited, now));
    let authorization = if evaluated.outcome == Outcome::Approve {
        Some(plan_authorization(
            state,
            &caller.organization,
            &id,
            &evaluated,
            &Changes::default(),
            body.renews.as_deref(),
        )?)
    } else {
        None
    };
    // The first answer is stored for replays without its decision, which the first event
    // already holds (a decision is several kilobytes, and each stored copy costs the database
    // compression and write time).
    let mut response = json!({
        "id": id,
        "status": status,
        "outcome": evaluated.outcome,
        "plan": plan.id,
        "policy": policy.id,
        "policy_version": policy.version,
        "urgency": body.urgency,
        "due_at": due_at.map(timestamp),
        "authorization": authorization.as_ref().map(authorization_answer),
    });
    let response_json = response.to_string();
    let decision_json = evaluated.result.to_string();
    let mut request = NewRequest {
        id,
        organization: caller.organization.clone(),
        submitted_by: caller.key_id.clone(),
        plan: plan.id.clone(),
        policy: policy.id.clone(),
        policy_version: policy.version.clone(),
        idempotency_key: idempotency_key.clone(),
        body_hash: body_hash.clone(),
        status,
        outcome: evaluated.outcome.as_str(),
        urgency: urgency_str(body.urgency),
        due_at,
        case_json: evaluated.case_json.to_string(),
        decision_json,
        response_json,
        renews: body.renews.clone(),
        created_at: now,
        authorization,
        link,
    };
    if let Some(object) = response.as_object_mut() {
        object.insert("decision".into(), evaluated.result);
    }
    let written = match renewal_tx {
        Some(mut tx) => {
            // The authorization goes in after the request row, with the renewal checks.
            let authorization = request.authorization.take();
            let request = Write::Request(Box::new(request));
            let mut chain = store::AuditChain::lock(&mut tx).await?;
            let written = writer::write_in(&mut tx, &mut chain, &request).await?;
            if written == Written::Stored {
                if let Some(authorization) = &authorization {
                    insert_authorization(&mut tx, authorization).await?;
                }
                chain.save(&mut tx).await?;
                tx.commit().await?;
            }
            written
        }
        None => {
            state
                .writer
                .write(Write::Request(Box::new(request)))
                .await?
        }
    };
    if written == Written::DuplicateKey {
        // Another submission with this key won the race: answer with its first answer.
        if let Some(key) = &idempotency_key {
            if let Some(answer) = replay(state, caller, key, &body_hash).await? {
                return Ok((false, answer));
            }
        }
        return Err(AppError::Conflict("the request could not be stored".into()));
    }
    Ok((true, response))
}

async fn replay(
    state: &AppState,
    caller: &Caller,
    key: &str,
    body_hash: &str,
) -> Result<Option<Value>, AppError> {
    let row = sqlx::query("SELECT r.id, r.body_hash, r.response_json, e.decision_json FROM requests r LEFT JOIN request_events e ON e.request_id = r.id AND e.seq = 1 WHERE r.organization = $1 AND r.idempotency_key = $2")
        .bind(&caller.organization)
        .bind(key)
        .fetch_optional(&state.store.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored_hash: String = row.try_get("body_hash")?;
    if stored_hash != body_hash {
        return Err(invalid(
            "Idempotency-Key",
            "this key was used for a different request body",
        ));
    }
    let id: String = row.try_get("id")?;
    state
        .writer
        .write(Write::Audit(caller.audit_record("request.replay", &id)))
        .await?;
    let mut response: Value =
        serde_json::from_str(&row.try_get::<String, _>("response_json")?).unwrap_or(Value::Null);
    // The first answer's decision is the first event's (see `submit_case`).
    if let Some(object) = response.as_object_mut() {
        if !object.contains_key("decision") {
            let decision: Option<String> = row.try_get("decision_json")?;
            let decision = decision
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or(Value::Null);
            object.insert("decision".into(), decision);
        }
    }
    Ok(Some(response))
}

fn urgency_str(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Standard => "standard",
        Urgency::Expedited => "expedited",
    }
}

/// Stores a request no policy of the plan can decide (no plan, or a service no policy
/// governs) straight into the review queue: a clinician answers it. Idempotent by `key`.
/// Answers the request id.
pub(crate) async fn submit_for_review(
    state: &AppState,
    caller: &Caller,
    case: &Value,
    plan: Option<&str>,
    expedited: bool,
    key: &str,
    link: ClaimLink,
) -> Result<String, AppError> {
    require(caller, &[Role::Submitter, Role::Admin])?;
    let body_hash = sha256_hex(&link.bundle_json);
    if let Some(answer) = replay(state, caller, key, &body_hash).await? {
        return Ok(answer
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string());
    }
    let plan = plan.and_then(|p| state.plans.get(p));
    let now = now_ms();
    let id = random_id("req_");
    // Without a plan, the strictest clock of any plan applies.
    let due_at = match plan {
        Some(plan) => plan.clocks.due(expedited, now),
        None => state
            .plans
            .plans
            .iter()
            .map(|p| p.clocks.due(expedited, now))
            .min()
            .unwrap_or(now),
    };
    let decision = json!({"outcome": "not_applicable", "missing": [], "reasons": []});
    let urgency = if expedited {
        Urgency::Expedited
    } else {
        Urgency::Standard
    };
    // Stored without its decision, as `submit_case` does.
    let response = json!({"id": id, "status": "pending_review", "outcome": "not_applicable", "authorization": null});
    let request = NewRequest {
        id: id.clone(),
        organization: caller.organization.clone(),
        submitted_by: caller.key_id.clone(),
        plan: plan.map(|p| p.id.clone()).unwrap_or_default(),
        policy: String::new(),
        policy_version: String::new(),
        idempotency_key: Some(key.to_string()),
        body_hash: body_hash.clone(),
        status: "pending_review",
        outcome: Outcome::NotApplicable.as_str(),
        urgency: urgency_str(urgency),
        due_at: Some(due_at),
        case_json: case.to_string(),
        decision_json: decision.to_string(),
        response_json: response.to_string(),
        renews: None,
        created_at: now,
        authorization: None,
        link: Some(link),
    };
    match state
        .writer
        .write(Write::Request(Box::new(request)))
        .await?
    {
        Written::Stored => Ok(id),
        Written::DuplicateKey => match replay(state, caller, key, &body_hash).await? {
            Some(answer) => Ok(answer
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()),
            None => Err(AppError::Conflict("the request could not be stored".into())),
        },
    }
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    Date::from_epoch_days(now_ms().div_euclid(86_400_000))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

pub(crate) fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn add_event(
    tx: &mut Tx,
    id: &str,
    kind: &str,
    actor: &str,
    outcome: Outcome,
    case: &Value,
    decision: &Value,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO request_events (request_id, seq, kind, actor, at, outcome, case_json, decision_json) \
         VALUES ($1, (SELECT COUNT(*) + 1 FROM request_events WHERE request_id = $1), $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(kind)
    .bind(actor)
    .bind(now_ms())
    .bind(outcome.as_str())
    .bind(case.to_string())
    .bind(decision.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates the authorization of an approval inside `tx` and answers it as JSON.
async fn create_authorization(
    tx: &mut Tx,
    state: &AppState,
    organization: &str,
    request_id: &str,
    evaluated: &Evaluated,
    changes: &Changes,
    renews: Option<&str>,
) -> Result<Value, AppError> {
    let authorization =
        plan_authorization(state, organization, request_id, evaluated, changes, renews)?;
    insert_authorization(tx, &authorization).await?;
    Ok(authorization_answer(&authorization))
}

/// Stores an authorization. A renewal checks first that its authorization was not renewed
/// meanwhile; two renewals approved at once (two PostgreSQL sessions) meet the unique index
/// on `renews`, which lets one commit.
async fn insert_authorization(
    tx: &mut Tx,
    authorization: &NewAuthorization,
) -> Result<(), AppError> {
    if let Some(renews) = &authorization.renews {
        // A renewal submitted before the other was approved: the first approval wins.
        if let Some(renewal) = renewal_of(tx, renews).await? {
            return Err(already_renewed(renews, &renewal));
        }
    }
    writer::insert_authorization(tx, authorization)
        .await
        .map_err(|error| renewed_meanwhile(error, authorization.renews.as_deref()))
}

/// A unique violation on a renewal's insert: another renewal of the same authorization won.
fn renewed_meanwhile(error: StoreError, renews: Option<&str>) -> AppError {
    match (&error.0, renews) {
        (sqlx::Error::Database(database), Some(renews)) if database.is_unique_violation() => {
            AppError::Conflict(format!("authorization `{renews}` was renewed meanwhile"))
        }
        _ => error.into(),
    }
}

/// The authorization of an approval: its period, units and cycles.
fn plan_authorization(
    state: &AppState,
    organization: &str,
    request_id: &str,
    evaluated: &Evaluated,
    changes: &Changes,
    renews: Option<&str>,
) -> Result<NewAuthorization, AppError> {
    let request = evaluated.case.request.clone().unwrap_or_default();
    let drug_id = request.drug.clone().unwrap_or_default();
    let drug = state.engine.catalog.drugs.iter().find(|d| d.id == drug_id);
    // The period starts on the day the payer received the request, never on a date the
    // requester sends.
    let start = evaluated.received;
    let bound = evaluated.bound;
    // A reviewer may change the quantity, within the label's limits.
    let cycles = changes.cycles.unwrap_or(bound.cycles);
    if cycles == 0 || cycles > bound.max_cycles {
        return Err(invalid(
            if changes.cycles.is_some() {
                "changes.cycles"
            } else {
                "case.request.cycles"
            },
            format!(
                "{cycles} cycles: an authorization covers from 1 to {} cycles here (the label's course from the request's first cycle)",
                bound.max_cycles
            ),
        ));
    }
    let units = changes.units.unwrap_or(bound.units_per_cycle);
    if units > bound.max_units_per_cycle {
        return Err(invalid(
            "changes.units",
            format!(
                "{units} units per cycle are more than the label's {} per cycle",
                bound.max_units_per_cycle
            ),
        ));
    }
    let period_days = changes
        .period_days
        .or(request.cycle_length_days)
        .or(request.units_period_days)
        .unwrap_or(0);
    // The engine's period, which starts on the day of receipt.
    let stated_end = evaluated
        .result
        .pointer("/authorization/end")
        .and_then(Value::as_str)
        .and_then(Date::parse);
    // Without a duration in the policy, the authorization covers the cycles approved (or a year).
    let course_end = request.cycle_length_days.and_then(|length| {
        let days = i64::from(length).checked_mul(i64::from(cycles))?;
        start.add_days(days - 1)
    });
    let end = match &changes.end {
        Some(text) => Date::parse(text)
            .filter(|end| *end >= start)
            .ok_or_else(|| invalid("changes.end", "must be a date on or after the start"))?,
        None => stated_end
            .or(course_end)
            .or_else(|| start.inclusive_end(priorauth_core::date::Duration::Years(1)))
            .unwrap_or(start),
    };
    let first_cycle = request
        .first_cycle
        .or_else(|| {
            evaluated
                .case
                .history
                .as_ref()
                .and_then(|h| h.blinatumomab_cycles)
                .map(|c| c + 1)
        })
        .unwrap_or(1);
    let hcpcs = request
        .hcpcs
        .clone()
        .or_else(|| drug.map(|d| d.hcpcs.clone()))
        .unwrap_or_default();
    Ok(NewAuthorization {
        number: format!("PA-{}", &random_id("")[..12].to_uppercase()),
        request_id: request_id.to_string(),
        organization: organization.to_string(),
        drug: drug_id,
        hcpcs,
        start_date: start.to_string(),
        end_date: end.to_string(),
        units_per_period: i64::from(units),
        period_days: i64::from(period_days),
        cycles: i64::from(cycles),
        first_cycle: i64::from(first_cycle),
        // Two u32 factors: the product fits an i64.
        approved_units: i64::from(units) * i64::from(cycles),
        renews: renews.map(str::to_string),
        created_at: now_ms(),
    })
}

/// A new authorization as the answer to its request shows it.
fn authorization_answer(a: &NewAuthorization) -> Value {
    json!({
        "number": a.number, "drug": a.drug, "hcpcs": a.hcpcs, "start": a.start_date, "end": a.end_date,
        "units_per_period": a.units_per_period, "period_days": a.period_days, "cycles": a.cycles, "first_cycle": a.first_cycle,
        "approved_units": a.approved_units, "used_units": 0, "renews": a.renews,
    })
}

fn authorization_json(row: &AnyRow) -> Result<Value, sqlx::Error> {
    let approved: i64 = row.try_get("approved_units")?;
    let used: i64 = row.try_get("used_units")?;
    Ok(json!({
        "number": row.try_get::<String, _>("number")?,
        "request_id": row.try_get::<String, _>("request_id")?,
        "drug": row.try_get::<String, _>("drug")?,
        "hcpcs": row.try_get::<String, _>("hcpcs")?,
        "start": row.try_get::<String, _>("start_date")?,
        "end": row.try_get::<String, _>("end_date")?,
        "units_per_period": row.try_get::<i64, _>("units_per_period")?,
        "period_days": row.try_get::<i64, _>("period_days")?,
        "cycles": row.try_get::<i64, _>("cycles")?,
        "first_cycle": row.try_get::<i64, _>("first_cycle")?,
        "approved_units": approved,
        "used_units": used,
        "remaining_units": approved - used,
        "renews": row.try_get::<Option<String>, _>("renews")?,
    }))
}

const AUTHORIZATION_COLUMNS: &str = "number, request_id, organization, drug, hcpcs, start_date, end_date, units_per_period, period_days, cycles, first_cycle, approved_units, used_units, renews";

/// A request as stored, or 404 when it does not exist or the caller may not see it.
pub(crate) async fn fetch_request(
    tx: &mut Tx,
    caller: &Caller,
    id: &str,
) -> Result<AnyRow, AppError> {
    let row = sqlx::query("SELECT id, organization, plan, policy, policy_version, status, outcome, urgency, due_at, case_json, decision_json, renews, created_at, updated_at FROM requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(AppError::NotFound)?;
    let organization: String = row.try_get("organization")?;
    if !visible(caller, &organization) {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

pub(crate) async fn request_json(tx: &mut Tx, row: &AnyRow) -> Result<Value, AppError> {
    let id: String = row.try_get("id")?;
    let events = sqlx::query("SELECT seq, kind, actor, at, outcome, case_json, decision_json FROM request_events WHERE request_id = $1 ORDER BY seq")
        .bind(&id)
        .fetch_all(&mut **tx)
        .await?;
    let history: Vec<Value> = events
        .iter()
        .map(|e| {
            Ok(json!({
                "seq": e.try_get::<i64, _>("seq")?,
                "kind": e.try_get::<String, _>("kind")?,
                "actor": e.try_get::<String, _>("actor")?,
                "at": timestamp(e.try_get::<i64, _>("at")?),
                "outcome": e.try_get::<String, _>("outcome")?,
                "case": serde_json::from_str::<Value>(&e.try_get::<String, _>("case_json")?).unwrap_or(Value::Null),
                "decision": serde_json::from_str::<Value>(&e.try_get::<String, _>("decision_json")?).unwrap_or(Value::Null),
            }))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let authorization = sqlx::query(&format!(
        "SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE request_id = $1"
    ))
    .bind(&id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| authorization_json(&r))
    .transpose()?;
    let determination = sqlx::query("SELECT decision, reason, criterion, reviewer_name, reviewer_credentials, changes_json, at FROM determinations WHERE request_id = $1")
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|d| -> Result<Value, sqlx::Error> {
            Ok(json!({
                "decision": d.try_get::<String, _>("decision")?,
                "reason": d.try_get::<String, _>("reason")?,
                "criterion": d.try_get::<String, _>("criterion")?,
                "reviewer": {"name": d.try_get::<String, _>("reviewer_name")?, "credentials": d.try_get::<String, _>("reviewer_credentials")?},
                "changes": serde_json::from_str::<Value>(&d.try_get::<String, _>("changes_json")?).unwrap_or(Value::Null),
                "at": timestamp(d.try_get::<i64, _>("at")?),
            }))
        })
        .transpose()?;
    Ok(json!({
        "id": id,
        "plan": row.try_get::<String, _>("plan")?,
        "policy": row.try_get::<String, _>("policy")?,
        "policy_version": row.try_get::<String, _>("policy_version")?,
        "status": row.try_get::<String, _>("status")?,
        "outcome": row.try_get::<String, _>("outcome")?,
        "urgency": row.try_get::<String, _>("urgency")?,
        "due_at": row.try_get::<Option<i64>, _>("due_at")?.map(timestamp),
        "renews": row.try_get::<Option<String>, _>("renews")?,
        "created_at": timestamp(row.try_get::<i64, _>("created_at")?),
        "updated_at": timestamp(row.try_get::<i64, _>("updated_at")?),
        "case": serde_json::from_str::<Value>(&row.try_get::<String, _>("case_json")?).unwrap_or(Value::Null),
        "decision": serde_json::from_str::<Value>(&row.try_get::<String, _>("decision_json")?).unwrap_or(Value::Null),
        "authorization": authorization,
        "determination": determination,
        "history": history,
    }))
}

#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the request with its history"), (status = 404, description = "no such request, or another organization's")))]
async fn read_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let body = request_json(&mut tx, &row).await?;
    store::audit(&mut tx, &caller.audit_record("request.read", &id)).await?;
    tx.commit().await?;
    Ok(Json(body))
}

#[utoipa::path(patch, path = "/v1/requests/{id}", params(("id" = String, Path)), request_body(content = Object, description = "the missing facts, by section: {\"diagnosis\": {\"mrd_percent\": 0.8}}"),
    responses((status = 200, description = "re-evaluated"), (status = 409, description = "the request is not waiting for information")))]
async fn complete_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(facts): AppJson<Value>,
) -> Result<Json<Value>, AppError> {
    require(&caller, &[Role::Submitter, Role::Admin])?;
    let Some(sections) = facts.as_object() else {
        return Err(invalid("body", "must be an object of case sections"));
    };
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let status: String = row.try_get("status")?;
    if status != "pending_information" {
        return Err(AppError::Conflict(format!(
            "the request is `{status}`, not waiting for information"
        )));
    }
    let mut case: Value =
        serde_json::from_str(&row.try_get::<String, _>("case_json")?).unwrap_or(json!({}));
    for (section, values) in sections {
        let Some(values) = values.as_object() else {
            return Err(invalid(section, "must be an object of facts"));
        };
        let target = case
            .as_object_mut()
            .map(|c| c.entry(section.clone()).or_insert_with(|| json!({})));
        if let Some(target) = target {
            if target.is_null() {
                *target = json!({});
            }
            if let Some(target) = target.as_object_mut() {
                for (key, value) in values {
                    // A completion fills only what is missing: it cannot rewrite a fact the
                    // request gave or one the service took from its records (a renewal's
                    // history and course position).
                    if target.get(key).is_some_and(|given| !given.is_null()) {
                        return Err(invalid(
                            &format!("{section}.{key}"),
                            "is already given; a completion fills only missing facts",
                        ));
                    }
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let plan_id: String = row.try_get("plan")?;
    let plan = state
        .plans
        .get(&plan_id)
        .ok_or_else(|| AppError::Internal(format!("plan {plan_id} is gone")))?
        .clone();
    let received = day_of(row.try_get::<i64, _>("created_at")?);
    let evaluated = evaluate(&state, &plan, case, received).map_err(|error| match error {
        AppError::Invalid(errors) => AppError::Invalid(
            errors
                .into_iter()
                .map(|(f, m)| (f.trim_start_matches("case.").to_string(), m))
                .collect(),
        ),
        other => other,
    })?;
    let urgency: String = row.try_get("urgency")?;
    let created_at: i64 = row.try_get("created_at")?;
    let status = status_of(evaluated.outcome);
    let due_at =
        (status == "pending_review").then(|| plan.clocks.due(urgency == "expedited", created_at));
    // Only while still waiting for information: of concurrent completions one wins (the
    // others wait on the row, then find it changed) and only it creates an authorization.
    let updated = sqlx::query("UPDATE requests SET status = $1, outcome = $2, due_at = $3, case_json = $4, decision_json = $5, updated_at = $6 WHERE id = $7 AND status = 'pending_information'")
        .bind(status)
        .bind(evaluated.outcome.as_str())
        .bind(due_at)
        .bind(evaluated.case_json.to_string())
        .bind(evaluated.result.to_string())
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() != 1 {
        return Err(AppError::Conflict(
            "the request was completed meanwhile".into(),
        ));
    }
    if evaluated.outcome == Outcome::Approve {
        let renews: Option<String> = row.try_get("renews")?;
        // The request's organization holds the authorization, also when an admin completes it.
        create_authorization(
            &mut tx,
            &state,
            &row.try_get::<String, _>("organization")?,
            &id,
            &evaluated,
            &Changes::default(),
            renews.as_deref(),
        )
        .await?;
    }
    add_event(
        &mut tx,
        &id,
        "completed",
        &caller.key_id,
        evaluated.outcome,
        &evaluated.case_json,
        &evaluated.result,
    )
    .await?;
    store::audit(&mut tx, &caller.audit_record("request.update", &id)).await?;
    crate::notify::enqueue(&mut tx, &id).await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let body = request_json(&mut tx, &row).await?;
    tx.commit().await?;
    state.notify.notify_one();
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v1/queue", responses((status = 200, description = "requests awaiting a clinician, most urgent first")))]
async fn queue(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, AppError> {
    require(&caller, &[Role::Reviewer, Role::Admin])?;
    let mut tx = state.store.pool.begin().await?;
    let rows = sqlx::query("SELECT id, organization, plan, policy, outcome, urgency, due_at, created_at FROM requests WHERE status = 'pending_review' ORDER BY due_at, created_at LIMIT 500")
        .fetch_all(&mut *tx)
        .await?;
    let now = now_ms();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let due: i64 = r.try_get::<Option<i64>, _>("due_at")?.unwrap_or(now);
            Ok(json!({
                "id": r.try_get::<String, _>("id")?,
                "organization": r.try_get::<String, _>("organization")?,
                "plan": r.try_get::<String, _>("plan")?,
                "policy": r.try_get::<String, _>("policy")?,
                "recommendation": r.try_get::<String, _>("outcome")?,
                "urgency": r.try_get::<String, _>("urgency")?,
                "received_at": timestamp(r.try_get::<i64, _>("created_at")?),
                "due_at": timestamp(due),
                "minutes_left": (due - now) / 60_000,
            }))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    store::audit(&mut tx, &caller.audit_record("queue.read", "queue")).await?;
    tx.commit().await?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(post, path = "/v1/requests/{id}/determination", params(("id" = String, Path)), request_body = DeterminationBody,
    responses((status = 200, description = "recorded"), (status = 403, description = "not a reviewer"), (status = 409, description = "the request is not in review")))]
async fn determine(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<DeterminationBody>,
) -> Result<Json<Value>, AppError> {
    require(&caller, &[Role::Reviewer])?;
    if body.reason.trim().is_empty() {
        return Err(invalid("reason", "give the specific reason"));
    }
    if body.decision == DeterminationDecision::Deny && caller.credentials.trim().is_empty() {
        return Err(AppError::Forbidden(
            "a denial is recorded with the reviewer's credentials; this key has none".into(),
        ));
    }
    if body.decision != DeterminationDecision::ApproveWithChanges && body.changes.is_some() {
        return Err(invalid(
            "changes",
            "only an approval with changes has changes",
        ));
    }
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let status: String = row.try_get("status")?;
    if status != "pending_review" {
        return Err(AppError::Conflict(format!(
            "the request is `{status}`, not in review"
        )));
    }
    let policy_id: String = row.try_get("policy")?;
    let policy = state
        .engine
        .policy_index(&policy_id)
        .and_then(|i| state.engine.policies.get(i))
        .ok_or_else(|| AppError::Internal("policy".into()))?;
    if !policy.criteria.iter().any(|c| c.id == body.criterion) {
        return Err(invalid(
            "criterion",
            format!("`{}` is not a criterion of {policy_id}", body.criterion),
        ));
    }
    let changes = body.changes.clone().unwrap_or_default();
    let new_status = match body.decision {
        DeterminationDecision::Deny => "denied",
        _ => "approved",
    };
    // Only while still in review: of concurrent determinations one wins (the others wait on
    // the row, then find it decided).
    let updated = sqlx::query(
        "UPDATE requests SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending_review'",
    )
    .bind(new_status)
    .bind(now_ms())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(AppError::Conflict(
            "the request was decided meanwhile".into(),
        ));
    }
    if new_status == "approved" {
        let plan_id: String = row.try_get("plan")?;
        let plan = state
            .plans
            .get(&plan_id)
            .ok_or_else(|| AppError::Internal("plan".into()))?
            .clone();
        let case: Value =
            serde_json::from_str(&row.try_get::<String, _>("case_json")?).unwrap_or(json!({}));
        let received = day_of(row.try_get::<i64, _>("created_at")?);
        let evaluated = evaluate(&state, &plan, case, received)?;
        let renews: Option<String> = row.try_get("renews")?;
        create_authorization(
            &mut tx,
            &state,
            &row.try_get::<String, _>("organization")?,
            &id,
            &evaluated,
            &changes,
            renews.as_deref(),
        )
        .await?;
    }
    let decision_text = match body.decision {
        DeterminationDecision::Approve => "approve",
        DeterminationDecision::ApproveWithChanges => "approve_with_changes",
        DeterminationDecision::Deny => "deny",
    };
    sqlx::query("INSERT INTO determinations (request_id, decision, reason, criterion, reviewer_key, reviewer_name, reviewer_credentials, changes_json, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&id)
        .bind(decision_text)
        .bind(body.reason.trim())
        .bind(&body.criterion)
        .bind(&caller.key_id)
        .bind(&caller.name)
        .bind(&caller.credentials)
        .bind(serde_json::to_string(&changes).unwrap_or_default())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    let outcome = if new_status == "denied" {
        Outcome::Deny
    } else {
        Outcome::Approve
    };
    let decision: Value =
        serde_json::from_str(&row.try_get::<String, _>("decision_json")?).unwrap_or(Value::Null);
    add_event(
        &mut tx,
        &id,
        "determination",
        &caller.key_id,
        outcome,
        &json!({}),
        &decision,
    )
    .await?;
    store::audit(&mut tx, &caller.audit_record("request.determination", &id)).await?;
    crate::notify::enqueue(&mut tx, &id).await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let body = request_json(&mut tx, &row).await?;
    tx.commit().await?;
    state.notify.notify_one();
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v1/requests/{id}/denial-letter", params(("id" = String, Path)),
    responses((status = 200, description = "the data of the denial notice"), (status = 409, description = "the request is not denied")))]
async fn denial_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_request(&mut tx, &caller, &id).await?;
    let status: String = row.try_get("status")?;
    if status != "denied" {
        return Err(AppError::Conflict(format!(
            "the request is `{status}`: only a clinician's denial has a denial notice"
        )));
    }
    let d = sqlx::query("SELECT decision, reason, criterion, reviewer_name, reviewer_credentials, at FROM determinations WHERE request_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    let policy_id: String = row.try_get("policy")?;
    let plan_id: String = row.try_get("plan")?;
    let policy = state
        .engine
        .policy_index(&policy_id)
        .and_then(|i| state.engine.policies.get(i))
        .ok_or_else(|| AppError::Internal("policy".into()))?;
    let criterion_id: String = d.try_get("criterion")?;
    let criterion = policy.criteria.iter().find(|c| c.id == criterion_id);
    let case: Value =
        serde_json::from_str(&row.try_get::<String, _>("case_json")?).unwrap_or(Value::Null);
    let plan = state.plans.get(&plan_id);
    let letter = json!({
        "request_id": id,
        "decision": "denied",
        "service": {
            "drug": case.pointer("/request/drug"),
            "hcpcs": case.pointer("/request/hcpcs"),
            "dose": case.pointer("/request/dose"),
            "date": case.pointer("/request/date"),
        },
        "reason": d.try_get::<String, _>("reason")?,
        "criterion": {
            "id": criterion_id,
            "text": criterion.map(|c| c.text.clone()),
            "source": criterion.map(|c| c.source.to_string()),
            "interpretation": criterion.map(|c| c.source.interpretation.clone()).filter(|i| !i.is_empty()),
            "policy": policy.title,
            "policy_version": policy.version,
            "copy": "A copy of the policy and the criteria used is available free of charge on request.",
        },
        "reviewer": {
            "name": d.try_get::<String, _>("reviewer_name")?,
            "credentials": d.try_get::<String, _>("reviewer_credentials")?,
            "peer_to_peer": "The prescriber may discuss this decision with the reviewer (peer-to-peer) by contacting the plan.",
        },
        "decided_at": timestamp(d.try_get::<i64, _>("at")?),
        "appeal": plan.map(|p| p.appeal.clone()),
        "automation": "Software evaluated the request against the policy; a licensed clinician reviewed the request and made this decision.",
    });
    store::audit(&mut tx, &caller.audit_record("request.denial_letter", &id)).await?;
    tx.commit().await?;
    Ok(Json(letter))
}

// ---- Authorizations ----

async fn fetch_authorization(
    tx: &mut Tx,
    caller: &Caller,
    number: &str,
) -> Result<AnyRow, AppError> {
    let row = sqlx::query(&format!(
        "SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE number = $1"
    ))
    .bind(number)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if !visible(caller, &row.try_get::<String, _>("organization")?) {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

#[utoipa::path(get, path = "/v1/authorizations/{number}", params(("number" = String, Path)), responses((status = 200, description = "the authorization with units used and left")))]
async fn read_authorization(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> Result<Json<Value>, AppError> {
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_authorization(&mut tx, &caller, &number).await?;
    let body = authorization_json(&row)?;
    store::audit(&mut tx, &caller.audit_record("authorization.read", &number)).await?;
    tx.commit().await?;
    Ok(Json(body))
}

#[utoipa::path(post, path = "/v1/authorizations/{number}/usage", params(("number" = String, Path)), request_body = UsageBody,
    responses((status = 201, description = "recorded"), (status = 409, description = "beyond the approved units"), (status = 422, description = "outside the authorization period")))]
async fn record_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
    AppJson(body): AppJson<UsageBody>,
) -> Result<Response, AppError> {
    require(&caller, &[Role::Submitter, Role::Admin])?;
    if body.units == 0 {
        return Err(invalid("units", "must be at least 1"));
    }
    let date = Date::parse(&body.date_of_service)
        .ok_or_else(|| invalid("date_of_service", "must be a date as YYYY-MM-DD"))?;
    let mut tx = state.store.pool.begin().await?;
    let row = fetch_authorization(&mut tx, &caller, &number).await?;
    let (start, end): (String, String) = (row.try_get("start_date")?, row.try_get("end_date")?);
    if date < Date::parse(&start).unwrap_or(date) || date > Date::parse(&end).unwrap_or(date) {
        return Err(invalid(
            "date_of_service",
            format!("{date} is outside the authorization period {start} to {end}"),
        ));
    }
    // One statement checks and spends: concurrent calls can never overspend.
    let spent = sqlx::query("UPDATE authorizations SET used_units = used_units + $1 WHERE number = $2 AND used_units + $1 <= approved_units RETURNING used_units, approved_units")
        .bind(i64::from(body.units))
        .bind(&number)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(spent) = spent else {
        let approved: i64 = row.try_get("approved_units")?;
        let used: i64 = row.try_get("used_units")?;
        return Err(AppError::Conflict(format!(
            "{} units would exceed the approved {approved} ({} left)",
            body.units,
            approved - used
        )));
    };
    let (used, approved): (i64, i64) = (
        spent.try_get("used_units")?,
        spent.try_get("approved_units")?,
    );
    let usage_id = random_id("use_");
    sqlx::query("INSERT INTO usage (id, authorization_number, units, service_date, actor, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&usage_id)
        .bind(&number)
        .bind(i64::from(body.units))
        .bind(date.to_string())
        .bind(&caller.key_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    store::audit(
        &mut tx,
        &caller.audit_record("authorization.usage", &number),
    )
    .await?;
    tx.commit().await?;
    let body = json!({"id": usage_id, "authorization": number, "units": body.units, "date_of_service": date.to_string(), "used_units": used, "remaining_units": approved - used});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

// ---- Operations ----

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.store.ping().await?;
    Ok("ready")
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "priorauth",
        description = "Prior-authorization decisions against payer policies, with clinician review."
    ),
    paths(
        submit,
        read_request,
        complete_request,
        queue,
        determine,
        denial_letter,
        read_authorization,
        record_usage,
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
