//! The Da Vinci interfaces over HTTP: CRD (CDS Hooks at `/cds-services`), DTR
//! (`/fhir/Questionnaire/$questionnaire-package`, `$next-question`) and PAS
//! (`/fhir/Claim/$submit`, `$inquire`, `/fhir/Subscription`). They use the same API keys,
//! records and audit log as `/v1`; a PAS submission is a request like any other, linked to
//! its Bundle. Errors are OperationOutcomes.

// FHIR JSON is read and written with serde_json's `value["key"]` indexing: a read of a
// missing key is `Null` (never a panic), and writes go only into objects built here or
// already read as that resource type.
#![allow(clippy::indexing_slicing)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use priorauth_fhir::questionnaire::Canonical;
use priorauth_fhir::{Problem, operation_outcome, pas};
use serde_json::{Value, json};

use crate::keys::{Caller, Role};
use crate::lifecycle::request_view;
use crate::lifecycle::requests as lifecycle_requests;
use crate::lifecycle::subscriptions::{self, SubscriptionInput};
use crate::lifecycle::{self, now_ms, timestamp};
use crate::web::{self, AppError, AppState};

mod claims;
mod crd;
mod questionnaires;
mod smart;
pub(crate) use claims::{__path_submit, submit};
pub(crate) use crd::{__path_discovery, __path_hook, discovery, hook};
pub(crate) use questionnaires::{
    __path_next_question, __path_questionnaire_package, __path_read_questionnaire, next_question,
    questionnaire_package, read_questionnaire,
};
pub(crate) use smart::{__path_configuration, __path_token};

/// Largest FHIR body accepted: PAS Bundles may carry documents.
pub const FHIR_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn routes(state: &AppState) -> Router<AppState> {
    // What a client reads before it has a key: the services and the server's capabilities,
    // and where a SMART client gets its access token.
    let public = Router::new()
        .route("/cds-services", get(discovery))
        .route("/fhir/metadata", get(capability_statement))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart::configuration),
        )
        .route(smart::TOKEN_PATH, post(smart::token));
    // The forms' `changedsince` counts from here.
    std::sync::LazyLock::force(&questionnaires::SERVING_SINCE);
    Router::new()
        .route("/cds-services/{id}", post(hook))
        .route("/fhir/Questionnaire/{id}", get(read_questionnaire))
        .route(
            "/fhir/Questionnaire/$questionnaire-package",
            post(questionnaire_package),
        )
        .route("/fhir/Questionnaire/$next-question", post(next_question))
        .route("/fhir/Claim/$submit", post(submit))
        .route("/fhir/Claim/$inquire", post(inquire))
        .route("/fhir/Subscription", post(create_subscription))
        .route(
            "/fhir/Subscription/{id}",
            get(read_subscription)
                .put(update_subscription)
                .delete(delete_subscription),
        )
        // The key is checked before the body (up to FHIR_BODY_LIMIT) is read, and the body
        // waits for its share of memory before it is read.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            within_memory_budget,
        ))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .merge(public)
        // On the FHIR routes only: unknown routes stay the API's problem+json.
        .route_layer(axum::extract::DefaultBodyLimit::max(FHIR_BODY_LIMIT))
        .route_layer(axum::middleware::from_fn(refuse_control_characters))
        // Inside the OperationOutcomes, so that a call out of time is answered one.
        .route_layer(web::time_limit())
        .route_layer(axum::middleware::map_response(bare_errors_as_outcomes))
}

/// A FHIR body is read, parsed (as JSON and as the typed FHIR model) and answered within
/// about this many times its size (a 3.9 MB Bundle took the service from 13 to 119 MB).
const EXPANSION: u64 = 30;

/// The organization's rate of FHIR bytes, then its share of the memory budget, before the
/// body is read.
async fn within_memory_budget(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (bytes, share) = web::memory_share(&request, FHIR_BODY_LIMIT, EXPANSION);
    if share == 0 {
        return next.run(request).await;
    }
    let organization = web::organization_of(&request);
    let admitted = match state.admission.within_fhir_bytes(&organization, bytes) {
        Ok(()) => state.admission.memory(&organization, share).await,
        Err(refusal) => Err(refusal),
    };
    match admitted {
        Ok(_memory) => next.run(request).await,
        Err(refusal) => refusal_outcome(refusal),
    }
}

/// `web::admit` answering an OperationOutcome, with `Retry-After` on a 429.
async fn admit(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    web::admit_with(&state, request, next, refusal_outcome).await
}

/// A refusal before the handler as an OperationOutcome, with `Retry-After` on a 429.
fn refusal_outcome(refusal: AppError) -> Response {
    let retry_after = match &refusal {
        AppError::TooManyRequests {
            retry_after_seconds,
            ..
        } => Some(*retry_after_seconds),
        _ => None,
    };
    let mut response = FhirError::from(refusal).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

/// `web::control_characters_in` as a route layer answering an OperationOutcome.
async fn refuse_control_characters(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if web::control_characters_in(request.uri()) {
        let problem = Problem::new("", web::CONTROL_CHARACTERS.to_string());
        return FhirError(
            StatusCode::UNPROCESSABLE_ENTITY,
            operation_outcome("value", &[problem]),
        )
        .into_response();
    }
    next.run(request).await
}

/// The framework's own error answers (body limit, method, path) as OperationOutcomes.
async fn bare_errors_as_outcomes(response: Response) -> Response {
    match web::bare_error(response).await {
        Ok((status, text, headers)) => {
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-costly"
            } else {
                "processing"
            };
            let mut answer = FhirError(status, operation_outcome(code, &[Problem::new("", text)]))
                .into_response();
            web::keep_headers(&mut answer, &headers);
            answer
        }
        Err(response) => response,
    }
}

/// What this server supports, for clients that look before they call.
#[utoipa::path(get, path = "/fhir/metadata", operation_id = "fhir_capabilities", tag = "FHIR", summary = "The server's CapabilityStatement (FHIR R4, Da Vinci PAS, DTR)", security(()),
    responses((status = 200, description = "the CapabilityStatement", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 431, description = "request headers too large")))]
pub(crate) async fn capability_statement() -> Response {
    fhir_json(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-24",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "implementation": {"description": "priorauth: prior authorization decisions (Da Vinci CRD, DTR, PAS)"},
            "rest": [{
                "mode": "server",
                "security": {
                    "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                    "description": "SMART Backend Services (client credentials with private_key_jwt; see .well-known/smart-configuration), or an API key: Authorization: Bearer <token or key>",
                },
                "resource": [
                    {"type": "Claim", "operation": [
                        {"name": "submit", "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"},
                        {"name": "inquire", "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry"}]},
                    {"type": "Questionnaire", "interaction": [{"code": "read"}], "operation": [
                        {"name": "questionnaire-package", "definition": "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition/questionnaire-package"},
                        {"name": "next-question", "definition": "http://hl7.org/fhir/uv/sdc/OperationDefinition/Questionnaire-next-question"}]},
                    {"type": "Subscription", "interaction": [{"code": "create"}, {"code": "read"}, {"code": "update"}, {"code": "delete"}]},
                ],
            }],
        }),
    )
}

/// A FHIR error: an OperationOutcome with its status.
#[derive(Debug)]
pub struct FhirError(StatusCode, Value);

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let unauthorized = self.0 == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.0,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            Json(self.1),
        )
            .into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl FhirError {
    fn invalid(problems: &[Problem]) -> FhirError {
        FhirError(
            StatusCode::UNPROCESSABLE_ENTITY,
            operation_outcome("invalid", problems),
        )
    }
    fn structure(problems: &[Problem]) -> FhirError {
        FhirError(
            StatusCode::BAD_REQUEST,
            operation_outcome("structure", problems),
        )
    }
    fn not_found(what: &str) -> FhirError {
        FhirError(
            StatusCode::NOT_FOUND,
            operation_outcome("not-found", &[Problem::new("", what)]),
        )
    }
}

impl From<AppError> for FhirError {
    fn from(error: AppError) -> FhirError {
        let (status, code, problems) = match error {
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "login",
                vec![Problem::new(
                    "",
                    "a valid API key is required (Authorization: Bearer …)",
                )],
            ),
            AppError::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                vec![Problem::new("", m)],
            ),
            AppError::NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                vec![Problem::new("", "not found")],
            ),
            AppError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                fields
                    .into_iter()
                    .map(|(f, m)| Problem::new(f, m))
                    .collect(),
            ),
            AppError::Conflict(m) => (StatusCode::CONFLICT, "conflict", vec![Problem::new("", m)]),
            AppError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-costly",
                vec![Problem::new("", m)],
            ),
            AppError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                vec![Problem::new("", m)],
            ),
            AppError::TooManyRequests { detail, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                vec![Problem::new("", detail)],
            ),
            other => {
                // The detail stays in the server's log.
                eprintln!("fhir: {other:?}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    vec![Problem::new("", "the request could not be processed")],
                )
            }
        };
        FhirError(status, operation_outcome(code, &problems))
    }
}

impl From<lifecycle::Error> for FhirError {
    fn from(error: lifecycle::Error) -> FhirError {
        FhirError::from(AppError::from(error))
    }
}

type FhirResult = Result<Response, FhirError>;

fn fhir_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Json(body),
    )
        .into_response()
}

/// The caller, or an OperationOutcome.
fn caller(caller: Result<Caller, AppError>) -> Result<Caller, FhirError> {
    caller.map_err(FhirError::from)
}

fn submitter(caller: &Caller) -> Result<(), FhirError> {
    if matches!(caller.role, Role::Submitter | Role::Admin) {
        Ok(())
    } else {
        Err(FhirError::from(AppError::Forbidden(
            "this needs the submitter or admin role".into(),
        )))
    }
}

/// The service's FHIR base as the caller reached it.
fn canonical(headers: &HeaderMap) -> Canonical {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    Canonical {
        base: format!("{scheme}://{host}/fhir"),
    }
}

fn text(body: &Bytes) -> Result<&str, FhirError> {
    std::str::from_utf8(body)
        .map_err(|_| FhirError::structure(&[Problem::new("", "the body is not UTF-8")]))
}

fn parse_error(problem: Problem) -> FhirError {
    FhirError::structure(&[problem])
}

/// The policy a plan applies to a case's drug.
fn governing(state: &AppState, plan: &str, case: &Value) -> Option<(usize, String)> {
    let plan = state.service.plans.get(plan)?;
    let drug = case["request"]["drug"].as_str()?;
    let policy = plan.policies.get(drug)?;
    Some((state.service.engine.policy_index(policy)?, policy.clone()))
}

/// The case with the plan's line of business, as the service decides it.
fn with_plan(state: &AppState, plan: &str, mut case: Value) -> Value {
    if let (Some(plan), Some(object)) = (state.service.plans.get(plan), case.as_object_mut()) {
        let request = object.entry("request").or_insert_with(|| json!({}));
        if let Some(request) = request.as_object_mut() {
            request
                .entry("line_of_business")
                .or_insert_with(|| json!(plan.line_of_business));
        }
    }
    case
}

/// The case of a FHIR submission (a PAS Claim, or an order at CRD time) dated on the day the
/// payer reads it: the Bundle carries the member's records as the EHR holds them when it
/// sends them, so the facts are those of the day of receipt. The Bundle's own dates
/// (`Claim.item.serviced[x]`, the order's `authoredOn`, timing or validity, an answer for
/// `request.date`) date the order or the requested service, which for a prior authorization
/// is often still to come, and in the Da Vinci guides' examples is years past; read as the
/// facts' date they would be outside the window before receipt (`case::check_received`)
/// and refuse requests an EHR sends as the guides show. `request.date` therefore is the
/// day of receipt here (docs/case-format.md, Periods).
fn dated_on_receipt(mut case: Value) -> Value {
    if let Some(object) = case.as_object_mut() {
        let request = object.entry("request").or_insert_with(|| json!({}));
        if let Some(request) = request.as_object_mut() {
            request.insert("date".into(), json!(lifecycle::today()));
        }
    }
    case
}

// ---- PAS ----

/// A body of up to this many bytes is parsed where its call runs. A PAS request Bundle with
/// its Claim and the resources it references is 7 to 14 KB, read in a fraction of a
/// millisecond, less than handing it to another thread and back costs; one of 32 KB takes
/// about a millisecond (a 64 KB Bundle's replay answered 1.7 to 2.2 ms later than a 13.5 KB
/// one's), and the organization's FHIR byte rate bounds how many it sends. Reading JSON and
/// FHIR is linear in the body; what is not (a Claim read into cases) is weighed on its own
/// (`claims::INLINE_INTAKE_VISITS`).
const INLINE_PARSE_BYTES: usize = 32 * 1024;

/// The `nice` value of a heavy parse's thread: the kernel gives it about a tenth of a core's
/// time while a thread at the default priority wants that core.
const HEAVY_WORK_NICENESS: i32 = 10;

/// Parses a FHIR body of `bytes` bytes with `parse`: where the call runs if the body is small
/// ([`INLINE_PARSE_BYTES`]), else as [`bounded`] heavy work.
async fn parsed<T: Send + 'static>(
    bytes: usize,
    parse: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FhirError> {
    bounded(bytes <= INLINE_PARSE_BYTES, parse).await
}

/// Runs `work` where the call runs when it is `light` (bounded to about a millisecond or two
/// by its caller), else on a thread of its own at a lowered priority.
///
/// Parsing a FHIR body is the service's heaviest work per byte: a 3.7 MB Bundle takes tens
/// of MB and a core for a few hundred milliseconds while typed. Heavy work never runs on the
/// async workers that answer `/healthz` and the other calls, and it runs at a lowered
/// priority (on Linux; elsewhere at the service's own): while calls at the default priority
/// want the cores, theirs goes first and heavy work takes what is left, so one
/// organization's large Bundles slow the calls that carry large Bundles, not the others.
/// (A CPU quota, such as a container's, is still spent by it.) At most one heavy work per
/// core runs at a time, so the memory of parses in progress is bounded by the cores, not by
/// the callers. A call waits for its turn within the request's time limit; its turn is held
/// by the work itself, so a call given up on still counts until its work ends. A panic
/// answers 500 on either path.
async fn bounded<T: Send + 'static>(
    light: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FhirError> {
    if light {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| work_failed());
    }
    static TURNS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    let turns = TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        std::sync::Arc::new(tokio::sync::Semaphore::new(cores))
    });
    let turn =
        turns.clone().acquire_owned().await.map_err(|_| {
            FhirError::from(AppError::Internal("the heavy work turns closed".into()))
        })?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("priorauth-parse".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(work());
            drop(turn);
        })
        .map_err(|_| FhirError::from(AppError::Internal("no thread for heavy work".into())))?;
    finished.await.map_err(|_| work_failed())
}

fn work_failed() -> FhirError {
    FhirError::from(AppError::Internal("reading the FHIR body failed".into()))
}

/// Lowers the calling thread's priority to [`HEAVY_WORK_NICENESS`], never raising it (a
/// service started at a higher nice value keeps it). On Linux `setpriority(PRIO_PROCESS, 0,
/// …)` applies to the calling thread alone; elsewhere it would lower the whole process, so it
/// is not done. Not fatal: the work runs either way.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if rustix::process::getpriority_process(None).is_ok_and(|now| now < HEAVY_WORK_NICENESS) {
        let _ = rustix::process::setpriority_process(None, HEAVY_WORK_NICENESS);
    }
}

/// The Bundle of a `$submit`/`$inquire` body: the Bundle itself or Parameters with `resource`,
/// as text and as JSON (read once: a 4 MB Bundle's JSON tree takes tens of MB).
fn bundle_text(text: &str) -> Result<(String, Value), FhirError> {
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| FhirError::structure(&[Problem::new("", format!("not JSON: {e}"))]))?;
    if value["resourceType"] == "Parameters" {
        let bundle = value["parameter"]
            .as_array_mut()
            .and_then(|p| p.iter_mut().find(|p| p["name"] == "resource"))
            .map(|p| p["resource"].take());
        return bundle.map(|b| (b.to_string(), b)).ok_or_else(|| {
            FhirError::structure(&[Problem::new(
                "Parameters.parameter",
                "no `resource` parameter",
            )])
        });
    }
    Ok((text.to_string(), value))
}

/// The PAS response Bundle answering the caller's own write on a request (a submission, its
/// replay, an update or a cancellation), from its current record: read without an entry of
/// its own, the write's entry records it (`request_view::answer_to_own_write`).
async fn response_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
    canonical: &Canonical,
) -> Result<Value, FhirError> {
    let read = request_view::answer_to_own_write(&state.service, caller, id).await?;
    Ok(response_of(state, read, canonical, INLINE_PARSE_BYTES)
        .await?
        .0)
}

/// Each question of the case format in plain words, for what a pended request still needs.
fn question_labels(state: &AppState) -> Vec<(String, String)> {
    priorauth_core::questions::all(&state.service.engine)
        .into_iter()
        .map(|q| (q.key.to_string(), q.label.to_string()))
        .collect()
}

/// The PAS response Bundle of a request as read (its record and its stored claim), and the
/// part of the request Bundle it came in that says whom it is for (`pas::member_source`);
/// the Bundle read where the call runs up to `inline_bytes` (`stored_sources`).
async fn response_of(
    state: &AppState,
    (record, claim): request_view::ReadWithClaim,
    canonical: &Canonical,
    inline_bytes: usize,
) -> Result<(Value, Value), FhirError> {
    let Some(claim) = claim else {
        return Err(FhirError::not_found(
            "this request was not submitted through PAS",
        ));
    };
    let sequence = u32::try_from(claim.item_sequence).unwrap_or(1);
    let (source, member) = stored_sources(claim, inline_bytes).await?;
    let created = timestamp(now_ms());
    let response = pas_response(state, &source, &record, sequence, &canonical.base, &created);
    Ok((response, member))
}

/// What an answer about a stored PAS request needs of the Bundle it came in: the part its
/// response repeats (`pas::response_source`) and the part that says whom it is for
/// (`pas::member_source`), both small whatever the Bundle's size.
///
/// Why bounded: a Bundle is parsed as heavy work when it arrives (`parsed`), but once stored
/// it is read back by every inquiry, replay and notification about it, and restoring and
/// reading it is the same work again (a 3.9 MB Bundle of copies of one entry is stored in
/// about a hundredth of that, and takes tens of milliseconds to restore and read). So it is
/// read where the call runs only when it restores to at most `inline_bytes`
/// (`packed::unpack_within` stops there), else as [`bounded`] heavy work. A call reading
/// several shares [`INLINE_PARSE_BYTES`] among them.
async fn stored_sources(
    claim: request_view::StoredClaim,
    inline_bytes: usize,
) -> Result<(Value, Value), FhirError> {
    fn sources(text: &str) -> (Value, Value) {
        let bundle: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        (pas::response_source(&bundle), pas::member_source(&bundle))
    }
    let damaged = |e| FhirError::from(AppError::from(e));
    if let Some(text) = claim.bundle_within(inline_bytes).map_err(damaged)? {
        return Ok(sources(&text));
    }
    bounded(false, move || {
        claim
            .into_bundle()
            .map(|text| sources(&text))
            .map_err(damaged)
    })
    .await?
}

/// The PAS response Bundle of a request's record, for the request Bundle it answers (or the
/// part of it `pas::response_source` keeps) and the item of its Claim it is.
fn pas_response(
    state: &AppState,
    bundle: &Value,
    record: &Value,
    item_sequence: u32,
    base: &str,
    created: &str,
) -> Value {
    // The questions' labels name what an incomplete request still needs, and nothing else.
    let questions = if record["decision"]["outcome"] == "incomplete" {
        question_labels(state)
    } else {
        Vec::new()
    };
    pas::response_bundle(
        bundle,
        record,
        &pas::ResponseContext {
            base,
            created,
            item_sequence,
            questions: &questions,
            map: Some(&state.fhir),
        },
    )
}

/// A notification's payload: the subscription status and the request's PAS response.
pub async fn notification_payload(
    state: &AppState,
    request_id: &str,
    subscription: &str,
    event_number: i64,
) -> Result<Value, AppError> {
    let (record, claim) = request_view::read_for_notification(&state.service, request_id).await?;
    let base = claim.base.clone();
    let sequence = u32::try_from(claim.item_sequence).unwrap_or(1);
    let (source, _) = stored_sources(claim, INLINE_PARSE_BYTES)
        .await
        // Its cause was logged where it was met.
        .map_err(|_| AppError::Internal("the stored PAS Bundle could not be read".into()))?;
    let created = timestamp(now_ms());
    let response = pas_response(state, &source, &record, sequence, &base, &created);
    Ok(pas::notification(
        &base,
        subscription,
        event_number,
        &created,
        &response,
    ))
}

#[utoipa::path(post, path = "/fhir/Claim/$inquire", operation_id = "pas_inquire", tag = "FHIR", summary = "Da Vinci PAS $inquire: the status of a submitted request", request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a PAS Inquiry Request Bundle"),
    responses((status = 200, description = "Parameters with a PAS Inquiry Response Bundle (`return`) for each Claim found; without a parameter when none is found", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn inquire(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    let caller = caller(who)?;
    let (request, inquiry) = parsed(body.len(), move || {
        let (text, inquiry) = bundle_text(text(&body)?)?;
        let request =
            pas::read_request_json(&text, &inquiry).map_err(|p| FhirError::structure(&p))?;
        Ok::<_, FhirError>((request, inquiry))
    })
    .await??;
    // Query by example: the Claim's trace number (identifier value) finds the request, whatever
    // system the inquiring system writes it under, for the same member.
    let mut found =
        lifecycle_requests::find_by_claim(&state.service, &caller, &request.claim_identifier)
            .await?;
    // PAS 2.2.1: "The Claim.identifier is for the TRN of the ClaimInquiry … To search for a
    // specific authorization, the REF-NT and REF-BB can be used": the authorization number and
    // the administration reference number (this service's request id) its answers carried.
    for reference in pas::inquiry_references(&inquiry) {
        found.extend(
            lifecycle_requests::find_by_reference(&state.service, &caller, &reference).await?,
        );
    }
    let canonical = canonical(&headers);
    let mut responses = Vec::new();
    // Requests an update cancelled, answered with that update's Claim: (its `system|value`,
    // the response).
    let mut cancelled = Vec::new();
    let mut queue: std::collections::VecDeque<String> = found.into();
    let mut seen = std::collections::HashSet::new();
    let mut followed = 0;
    // The requests read share the bytes read where the call runs.
    let mut inline_left = INLINE_PARSE_BYTES;
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let inline_bytes = inline_left / (queue.len() + 1);
        inline_left -= inline_bytes;
        let (record, claim) = request_view::read_with_claim(&state.service, &caller, &id).await?;
        let successor = lifecycle_requests::Successor::of(&record);
        let organization = claim.as_ref().map(|c| c.organization.clone());
        let (response, stored) =
            response_of(&state, (record, claim), &canonical, inline_bytes).await?;
        if !pas::same_member(&stored, &inquiry) {
            continue;
        }
        // A request an update withdrew: PAS, "If a search is for a 'replaced' prior
        // authorization, the search result SHALL include the 'current' prior authorization
        // response". The update's Claim, of the same organization, answers instead (its own
        // update in turn, to a bound), and an item the update cancelled is answered within it.
        if let (Some(successor), Some(organization)) = (successor, organization) {
            let current = if followed < MAX_REPLACEMENTS_FOLLOWED {
                lifecycle_requests::find_successor_claim(
                    &state.service,
                    &caller,
                    &organization,
                    successor.claim(),
                )
                .await?
            } else {
                Vec::new()
            };
            if !current.is_empty() {
                followed += 1;
                queue.extend(current);
                if let lifecycle_requests::Successor::CancelledBy(claim) = successor {
                    cancelled.push((claim, response));
                }
                continue;
            }
        }
        responses.push(response);
    }
    // One Bundle per Claim, holding every item's request; after its own items, those its
    // update cancelled (as `$submit` answered the update).
    let mut claims = pas::responses_by_claim(responses);
    for (claim, response) in cancelled {
        match claims.iter_mut().find(|c| claim_identifier_of(c) == claim) {
            Some(current) => *current = pas::merge_responses(vec![current.take(), response]),
            None => claims.push(response),
        }
    }
    let bundles = claims
        .into_iter()
        .map(|response| json!({"name": "return", "resource": pas::as_inquiry_response(response)}))
        .collect();
    Ok(fhir_json(StatusCode::OK, inquiry_answer(bundles)))
}

/// How many updates one inquiry follows from a replaced request to the current one.
const MAX_REPLACEMENTS_FOLLOWED: usize = 8;

/// `system|value` of the Claim a PAS response Bundle answers (`ClaimResponse.request`), as
/// the service records a Claim's identifier.
fn claim_identifier_of(response: &Value) -> String {
    let identifier = &response["entry"][0]["resource"]["request"]["identifier"];
    format!(
        "{}|{}",
        identifier["system"].as_str().unwrap_or_default(),
        identifier["value"].as_str().unwrap_or_default()
    )
}

/// An inquiry's answer: PAS's `Claim-inquiry` returns 0..* Bundles (`return`), so always
/// Parameters, one `return` per Claim found. None found is a query that matched nothing, not
/// a failed transaction (a 4XX): Parameters without a parameter (FHIR JSON leaves out an
/// empty list), the same answer whether no request has the trace number, it is another
/// member's, or another organization's.
fn inquiry_answer(bundles: Vec<Value>) -> Value {
    let mut answer = json!({"resourceType": "Parameters"});
    if !bundles.is_empty() {
        answer["parameter"] = Value::Array(bundles);
    }
    answer
}

#[utoipa::path(post, path = "/fhir/Subscription", operation_id = "pas_create_subscription", tag = "FHIR", summary = "Subscribe to notifications of pended PAS requests (rest-hook)", request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a Subscription"),
    responses((status = 201, description = "created", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 403, description = "not a submitter: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 409, description = "the organization already has a subscription (one per organization): an OperationOutcome naming it, to update with `PUT /fhir/Subscription/{id}`; it is left as it was", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn create_subscription(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    save_subscription(&state, who, &headers, &body, None).await
}

#[utoipa::path(put, path = "/fhir/Subscription/{id}", operation_id = "pas_update_subscription", tag = "FHIR", summary = "Update the organization's subscription", params(("id" = String, Path)), request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a Subscription"),
    responses((status = 200, description = "the Subscription as saved; `status` is `error` when the endpoint did not answer the handshake", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "no such subscription, or another organization's: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn update_subscription(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> FhirResult {
    save_subscription(&state, who, &headers, &body, Some(id)).await
}

/// Saves the organization's subscription (one per organization: a create when it has one is
/// refused, 409, naming the one to update with `PUT`), then sends its endpoint the handshake; an endpoint that does not answer it 2xx leaves the
/// subscription in `error` (notifications are still queued, and retried).
async fn save_subscription(
    state: &AppState,
    who: Result<Caller, AppError>,
    headers: &HeaderMap,
    body: &Bytes,
    updates: Option<String>,
) -> FhirResult {
    let caller = caller(who)?;
    submitter(&caller)?;
    let (subscription, resource) =
        pas::read_subscription(text(body)?).map_err(|p| FhirError::invalid(&p))?;
    let input = |status: &'static str, updates: Option<String>| SubscriptionInput {
        endpoint: subscription.endpoint.clone(),
        headers: subscription.headers.clone(),
        resource: resource.clone(),
        status,
        updates,
    };
    let saved = subscriptions::save(&state.service, &caller, input("active", updates))
        .await
        .map_err(subscription_error)?;
    let handshake = pas::handshake(&canonical(headers).base, &saved.id, &timestamp(now_ms()));
    let answered = send_handshake(&subscription.endpoint, &subscription.headers, &handshake).await;
    let saved = if answered {
        saved
    } else {
        let created = saved.created;
        // The subscription just saved, updated (a create's too: it exists now).
        let again = subscriptions::save(&state.service, &caller, input("error", Some(saved.id)))
            .await
            .map_err(subscription_error)?;
        subscriptions::Saved { created, ..again }
    };
    let (id, resource) = (saved.id, saved.resource);
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut answer = fhir_json(status, resource);
    if let Ok(location) = format!("/fhir/Subscription/{id}").parse() {
        answer.headers_mut().insert(header::LOCATION, location);
    }
    Ok(answer)
}

#[utoipa::path(get, path = "/fhir/Subscription/{id}", operation_id = "pas_read_subscription", tag = "FHIR", summary = "Read a subscription", params(("id" = String, Path)),
    responses((status = 200, description = "the Subscription", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "no such subscription, or another organization's: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn read_subscription(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    Path(id): Path<String>,
) -> FhirResult {
    let caller = caller(who)?;
    let resource = subscriptions::read(&state.service, &caller, &id)
        .await
        .map_err(subscription_error)?;
    Ok(fhir_json(StatusCode::OK, resource))
}

#[utoipa::path(delete, path = "/fhir/Subscription/{id}", operation_id = "pas_delete_subscription", tag = "FHIR", summary = "End a subscription", params(("id" = String, Path)),
    responses((status = 204, description = "ended"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "no such subscription, or another organization's: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn delete_subscription(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    Path(id): Path<String>,
) -> FhirResult {
    let caller = caller(who)?;
    submitter(&caller)?;
    subscriptions::delete(&state.service, &caller, &id)
        .await
        .map_err(subscription_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Posts a handshake to a subscriber's endpoint with its headers; whether it answered 2xx
/// within 5 s.
async fn send_handshake(endpoint: &str, headers: &[String], handshake: &Value) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    else {
        return false;
    };
    let mut call = client
        .post(endpoint)
        .header("content-type", "application/fhir+json")
        .body(handshake.to_string());
    for header in headers {
        if let Some((name, value)) = header.split_once(':') {
            call = call.header(name.trim(), value.trim());
        }
    }
    call.send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

fn subscription_error(error: lifecycle::Error) -> FhirError {
    match error {
        lifecycle::Error::NotFound => FhirError::not_found("no such Subscription"),
        other => other.into(),
    }
}

/// A random UUID (version 4) for `urn:uuid:` full URLs.
fn uuid() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::{HEAVY_WORK_NICENESS, INLINE_PARSE_BYTES, parsed};

    fn niceness() -> i32 {
        rustix::process::getpriority_process(None).expect("the thread's priority")
    }

    #[tokio::test]
    async fn a_large_body_is_parsed_on_a_thread_of_its_own_at_a_lowered_priority() {
        let (caller, here) = (std::thread::current().id(), niceness());
        let small = parsed(INLINE_PARSE_BYTES, || {
            (std::thread::current().id(), niceness())
        })
        .await
        .expect("parsed");
        assert_eq!(
            small,
            (caller, here),
            "a small body is parsed where its call runs"
        );

        let (thread, nice) = parsed(INLINE_PARSE_BYTES + 1, || {
            (std::thread::current().id(), niceness())
        })
        .await
        .expect("parsed");
        assert_ne!(
            thread, caller,
            "a large body is parsed on a thread of its own"
        );
        if cfg!(target_os = "linux") {
            // The parse never raises a priority: under a higher nice value than the
            // parse's, it keeps that one.
            assert_eq!(nice, HEAVY_WORK_NICENESS.max(here));
        }
        assert_eq!(niceness(), here, "the caller's own priority is untouched");
    }

    #[tokio::test]
    async fn a_parse_that_panics_is_an_error_on_either_path() {
        for bytes in [10, INLINE_PARSE_BYTES + 1] {
            let result = parsed(bytes, || -> u8 { panic!("a parser's bug") }).await;
            assert!(result.is_err(), "{bytes} bytes");
        }
    }
}
