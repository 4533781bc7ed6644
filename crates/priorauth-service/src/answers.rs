//! The shapes of the HTTP API's answers, for the OpenAPI document (`/openapi.json`) and the
//! clients generated from it. The handlers build their answers as JSON; these types describe
//! them, and the service's tests validate every answer they receive against these schemas
//! (`tests/http.rs`, `answers_match_the_openapi_document`), so the document cannot drift
//! from what is sent. Nothing here is constructed at run time.

// Descriptions only: the fields are read by the schema derive, never by code.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;

/// An RFC 9457 problem: every error answer, naming each field at fault.
#[derive(Debug, ToSchema)]
pub struct Problem {
    /// `about:blank`.
    r#type: String,
    /// A short summary of the kind of problem ("invalid request", "not found", "conflict").
    title: String,
    /// The HTTP status code.
    status: u16,
    /// The first problem in a sentence, naming its field.
    detail: String,
    /// Every problem with its field (`case.request.date`, `decision`, a header's name).
    errors: Vec<FieldProblem>,
}

#[derive(Debug, ToSchema)]
pub struct FieldProblem {
    field: String,
    message: String,
}

/// A request's status (see ARCHITECTURE.md, "The request lifecycle").
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Status {
    PendingInformation,
    PendingReview,
    Approved,
    Denied,
    NotApplicable,
    /// By the requester, while it was pending.
    Withdrawn,
}

/// The engine's outcome under a policy (docs/case-format.md, "The decision"). `deny` is a
/// recommendation: only a clinician denies.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    Deny,
    Review,
    Incomplete,
    NotApplicable,
}

/// One policy's decision on a case: the decision contract of docs/case-format.md.
#[derive(Debug, ToSchema)]
pub struct Decision {
    /// The policy's id.
    policy: String,
    /// The version of the policy that decided: the one in effect on the request's date.
    version: String,
    outcome: Outcome,
    /// The pathway that decided, when one did.
    pathway: Option<String>,
    /// The approved period, when the policy states one.
    authorization: Option<Period>,
    /// What an approval covers, never beyond the pathway's and the label's ceilings.
    quantity: Option<Quantity>,
    /// The dotted keys of the facts the outcome turns on and the case did not give.
    missing: Vec<String>,
    /// Every criterion that decided the outcome, with the passage of the policy it encodes.
    reasons: Vec<Reason>,
}

/// Inclusive first and last covered days, `YYYY-MM-DD`.
#[derive(Debug, ToSchema)]
pub struct Period {
    #[schema(format = Date)]
    start: String,
    #[schema(format = Date)]
    end: String,
}

/// The quantity of an approval (docs/case-format.md, "Quantities").
#[derive(Debug, ToSchema)]
pub struct Quantity {
    /// The drug's billing code.
    hcpcs: String,
    /// Billable units per cycle.
    units: u32,
    /// Days of a cycle, when the request gave them.
    period_days: Option<u32>,
    /// Whole vials the units per cycle take.
    vials: u32,
    /// Cycles approved.
    cycles: Option<u32>,
    /// Billable units of the whole authorization.
    total_units: u64,
    /// `requested` or `policy_maximum`.
    units_basis: String,
    ceiling: Ceiling,
    /// Cycles requested, when only a part of them is approved.
    requested_cycles: Option<u32>,
}

/// The most units per cycle and cycles the pathway and the drug's label allow.
#[derive(Debug, ToSchema)]
pub struct Ceiling {
    units_per_cycle: u32,
    cycles: u32,
}

/// A criterion that decided, tied to its source.
#[derive(Debug, ToSchema)]
pub struct Reason {
    /// The criterion as the policy states it.
    criterion: String,
    /// The criterion's id (what a determination cites).
    id: String,
    /// `met`, `not met` or `unknown`.
    status: String,
    /// Where in the source document the criterion is.
    source: String,
    /// How unclear text was read, in the policy file next to the criterion.
    interpretation: Option<String>,
    pathway: Option<String>,
    /// Depth in the criterion tree (0 for a pathway's top).
    depth: u8,
    /// The case's value that decided a criterion testing one fact.
    value: Option<String>,
}

/// The answer to a submission.
#[derive(Debug, ToSchema)]
pub struct Submitted {
    id: String,
    status: Status,
    outcome: Outcome,
    plan: String,
    policy: String,
    policy_version: String,
    /// `standard` or `expedited`.
    urgency: String,
    /// When a clinician's determination is due by the plan's clock (pending requests).
    #[schema(format = DateTime)]
    due_at: Option<String>,
    /// The authorization an approval created.
    authorization: Option<NewAuthorization>,
    decision: Decision,
}

/// A stored request with its history, as a reader sees it.
#[derive(Debug, ToSchema)]
pub struct RequestRecord {
    id: String,
    /// The requesting organization (the submitting key's).
    organization: String,
    plan: String,
    policy: String,
    policy_version: String,
    status: Status,
    outcome: Outcome,
    urgency: String,
    #[schema(format = DateTime)]
    due_at: Option<String>,
    /// Decided after its due time, or pending past it.
    late: bool,
    /// The authorization this request renews.
    renews: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// The case as decided last, in the case format.
    #[schema(value_type = Object)]
    case: Value,
    /// The last decision, recomputed from the case and the policy version it was made under.
    #[schema(value_type = Object)]
    decision: Value,
    authorization: Option<AuthorizationRecord>,
    determination: Option<Determination>,
    /// Every event, the first first.
    history: Vec<HistoryEvent>,
    /// To a reviewer, while the request is in review: the criteria a denial may cite (not
    /// met, not settled by the case, or an exclusion that applies), each once.
    denial_grounds: Option<Vec<DenialGround>>,
    /// The files sent with the request, without their bytes
    /// (`GET /v1/requests/{id}/attachments/{n}` reads one).
    attachments: Vec<RequestFile>,
    /// To the payer's readers only: the reviewers' comments.
    comments: Option<Vec<Comment>>,
}

/// A file sent with a request, as checked when it came.
#[derive(Debug, ToSchema)]
pub struct RequestFile {
    /// Its number among the request's files, from 1.
    n: i64,
    title: String,
    /// `application/pdf`, `image/png` or `image/jpeg` (and `text/plain` for a PAS Claim's
    /// documents), checked against the file's first bytes.
    content_type: String,
    bytes: i64,
    sha256: String,
    /// The name of the key holder who sent it.
    added_by: String,
    #[schema(format = DateTime)]
    added_at: String,
    /// In the answer to the upload only: the request it was sent with.
    request_id: Option<String>,
}

/// A reviewer's comment on a request, or on one of its policy's criteria.
#[derive(Debug, ToSchema)]
pub struct Comment {
    n: i64,
    /// The criterion's id; null for the request as a whole.
    criterion: Option<String>,
    text: String,
    /// The reviewer's name.
    by: String,
    #[schema(format = DateTime)]
    at: String,
}

/// A request's comments, after one is added.
#[derive(Debug, ToSchema)]
pub struct Comments {
    request_id: String,
    comments: Vec<Comment>,
}

/// The notice a determination would send, recorded nowhere.
#[derive(Debug, ToSchema)]
pub struct DeterminationPreview {
    request_id: String,
    /// Always false: nothing was recorded.
    recorded: bool,
    /// The notice as `GET …/denial-letter` or `GET …/approval-notice` would give it once the
    /// determination is recorded (its authorization's number not yet drawn: null).
    #[schema(value_type = Object)]
    notice: Value,
}

#[derive(Debug, ToSchema)]
pub struct DenialGround {
    id: String,
    text: String,
    /// `not_met`, `unknown`, or `met` for an exclusion that applies.
    status: String,
    /// The pathway whose requirement it is; null for an exclusion.
    pathway: Option<String>,
}

/// One event of a request's history.
#[derive(Debug, ToSchema)]
pub struct HistoryEvent {
    seq: i64,
    /// `submitted`, `completed`, `determination`, …
    kind: String,
    /// The id of the key that acted.
    actor: String,
    #[schema(format = DateTime)]
    at: String,
    outcome: String,
    #[schema(value_type = Object)]
    case: Value,
    #[schema(value_type = Object)]
    decision: Value,
    /// Whether the decision recomputed from the records is the one answered at the time.
    decision_verified: Option<bool>,
    /// The reason of a withdrawal, an extension or a reopening.
    reason: Option<String>,
    /// A withdrawal by a PAS update: the update's Claim (`system|value`) that replaced the
    /// request, whose requests an inquiry about it answers.
    replaced_by: Option<String>,
    /// A withdrawal by a PAS update that cancelled the request's item: the update's Claim
    /// (`system|value`), whose answer holds it.
    cancelled_by: Option<String>,
    /// An extension's hours.
    extension_hours: Option<i64>,
    /// The appeal an `appealed`, `appeal_extended` or `appeal_decided` event is of.
    appeal: Option<String>,
    /// An `appeal_decided` event's `uphold` or `overturn`.
    appeal_decision: Option<String>,
    /// The determination a reopening or an overturn replaced.
    superseded_determination: Option<Determination>,
}

/// A clinician's determination.
#[derive(Debug, ToSchema)]
pub struct Determination {
    /// `approve`, `approve_with_changes` or `deny`.
    decision: String,
    reason: String,
    /// The criterion it rests on.
    criterion: String,
    reviewer: Reviewer,
    /// What an approval with changes granted instead.
    #[schema(value_type = Object)]
    changes: Value,
    #[schema(format = DateTime)]
    at: String,
}

#[derive(Debug, ToSchema)]
pub struct Reviewer {
    name: String,
    credentials: String,
}

/// An authorization as its request's answer shows it.
#[derive(Debug, ToSchema)]
pub struct NewAuthorization {
    /// `PA-…`.
    number: String,
    drug: String,
    hcpcs: String,
    #[schema(format = Date)]
    start: String,
    /// The last covered day.
    #[schema(format = Date)]
    end: String,
    units_per_period: i64,
    period_days: i64,
    cycles: i64,
    first_cycle: i64,
    approved_units: i64,
    used_units: i64,
    /// The authorization it renews.
    renews: Option<String>,
}

/// An authorization with the units used and left.
#[derive(Debug, ToSchema)]
pub struct AuthorizationRecord {
    number: String,
    request_id: String,
    drug: String,
    hcpcs: String,
    #[schema(format = Date)]
    start: String,
    #[schema(format = Date)]
    end: String,
    units_per_period: i64,
    period_days: i64,
    cycles: i64,
    first_cycle: i64,
    approved_units: i64,
    used_units: i64,
    remaining_units: i64,
    renews: Option<String>,
    /// The day its provider cancelled it: drug given after it is not covered.
    #[schema(format = Date)]
    cancelled_on: Option<String>,
}

/// A row of the authorizations list.
#[derive(Debug, ToSchema)]
pub struct AuthorizationRow {
    number: String,
    request_id: String,
    organization: String,
    drug: String,
    hcpcs: String,
    #[schema(format = Date)]
    start: String,
    #[schema(format = Date)]
    end: String,
    approved_units: i64,
    used_units: i64,
    remaining_units: i64,
    cycles: i64,
    /// Days from today to the last covered day.
    days_left: Option<i64>,
    /// The day its provider cancelled it.
    #[schema(format = Date)]
    cancelled_on: Option<String>,
    /// Ends within 30 days, not cancelled.
    renewal_due: bool,
}

/// Units spent on a date of service.
#[derive(Debug, ToSchema)]
pub struct Usage {
    id: String,
    authorization: String,
    units: u32,
    #[schema(format = Date)]
    date_of_service: String,
    used_units: i64,
    remaining_units: i64,
}

/// The reviewer a request in review is assigned to.
#[derive(Debug, ToSchema)]
pub struct AssignedTo {
    name: String,
    /// The caller is that reviewer.
    me: bool,
}

/// Who has a request in review now.
#[derive(Debug, ToSchema)]
pub struct Assignment {
    id: String,
    assigned_to: Option<AssignedTo>,
}

/// An approval notice.
#[derive(Debug, ToSchema)]
pub struct ApprovalNotice {
    request_id: String,
    /// `approved`.
    decision: String,
    /// The authorization's number.
    authorization: String,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime)]
    decided_at: String,
    /// The notice in words, its heading first: what the printable page and the PDF say.
    paragraphs: Vec<String>,
}

/// A file's bytes, as sent (a PDF, a PNG or a JPEG).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(Vec<u8>);

/// A PDF file.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct PdfFile(Vec<u8>);

/// The holder of the key that calls.
#[derive(Debug, ToSchema)]
pub struct Me {
    name: String,
    organization: String,
    /// `submitter`, `reviewer` or `admin`.
    role: String,
    /// A reviewer's licence and degree; empty otherwise.
    credentials: String,
}

/// Who a request is for, as its case names them (PHI).
#[derive(Debug, ToSchema)]
pub struct MemberIdentity {
    /// `patient.member_id`.
    id: Option<String>,
    /// `patient.name`.
    name: Option<String>,
}

/// One page of the work list.
#[derive(Debug, ToSchema)]
pub struct RequestList {
    items: Vec<ListedRequest>,
    /// Give as `after` for the next page; null on the last.
    next: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct ListedRequest {
    id: String,
    status: String,
    /// The engine's outcome.
    outcome: String,
    organization: String,
    plan: String,
    /// Empty for a request no policy governs.
    policy: String,
    drug: Option<String>,
    urgency: String,
    member: MemberIdentity,
    #[schema(format = DateTime)]
    received_at: String,
    /// While pending: when the plan's clock runs out.
    #[schema(format = DateTime)]
    due_at: Option<String>,
    /// While pending; negative when late.
    minutes_left: Option<i64>,
    late: Option<bool>,
    #[schema(format = DateTime)]
    decided_at: Option<String>,
    /// The number of the authorization an approval holds.
    authorization: Option<String>,
}

/// One page of the review queue.
#[derive(Debug, ToSchema)]
pub struct QueuePage {
    items: Vec<QueueItem>,
    /// Give as `after` for the next page; null on the last.
    next: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct QueueItem {
    id: String,
    organization: String,
    plan: String,
    policy: String,
    /// The drug asked for; null for requests stored before it was recorded.
    drug: Option<String>,
    member: MemberIdentity,
    /// The reviewer who took it; null when nobody has.
    assigned_to: Option<AssignedTo>,
    /// The engine's outcome: `review` or a recommended `deny`.
    recommendation: String,
    urgency: String,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime)]
    due_at: String,
    /// Negative when late.
    minutes_left: i64,
    /// Past its due time.
    late: bool,
}

/// The data of a clinician's denial notice.
#[derive(Debug, ToSchema)]
pub struct DenialLetter {
    request_id: String,
    /// The plan's id, name and how to contact it.
    #[schema(value_type = Object)]
    plan: Value,
    /// The member's id, name and birth date, as the case names them.
    #[schema(value_type = Object)]
    member: Value,
    /// The prescriber's name and NPI, as the case names them.
    #[schema(value_type = Object)]
    prescriber: Value,
    /// The requesting organization.
    organization: String,
    #[schema(format = DateTime)]
    received_at: String,
    /// The notice in words, its heading first: what the printable page and the PDF say.
    paragraphs: Vec<String>,
    /// `denied`.
    decision: String,
    /// The drug, code, dose and date of the request.
    #[schema(value_type = Object)]
    service: Value,
    /// The specific reason, in plain language.
    reason: String,
    /// The criterion, its text, source and interpretation, the policy and its version.
    #[schema(value_type = Object)]
    criterion: Value,
    /// Name and credentials of the clinician, and how to ask for a peer-to-peer discussion.
    #[schema(value_type = Object)]
    reviewer: Value,
    #[schema(format = DateTime)]
    decided_at: String,
    /// The plan's time zone, in which a letter shows its times (they are given in UTC).
    time_zone: Option<String>,
    /// The plan's appeal rights and clocks, in words.
    appeal: Option<String>,
    /// That software evaluated and a clinician decided.
    automation: String,
}

/// PAS notifications no longer retried.
#[derive(Debug, ToSchema)]
pub struct DeadLetters {
    items: Vec<DeadLetter>,
}

#[derive(Debug, ToSchema)]
pub struct DeadLetter {
    id: String,
    request_id: String,
    organization: String,
    endpoint: String,
    attempts: i64,
    last_error: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    dead_at: String,
}

/// A question of the intake form.
#[derive(Debug, ToSchema)]
pub struct Question {
    /// The case key (`patient.weight_kg`) or a declared fact's name.
    key: String,
    label: String,
    /// `bool`, `number`, `enum`, `date`, `text`, …
    kind: String,
    choices: Vec<Choice>,
    /// The answers that change an outcome.
    outcomes: Vec<Choice>,
    /// A fact declared in data: it goes in the case's `facts` object.
    declared: bool,
}

#[derive(Debug, ToSchema)]
pub struct Choice {
    value: String,
    label: String,
}

/// A plan: its line of business and its policy per drug.
#[derive(Debug, ToSchema)]
pub struct Plan {
    id: String,
    name: String,
    line_of_business: String,
    /// Policy id by drug.
    policies: std::collections::BTreeMap<String, String>,
    /// The IANA time zone its times are shown in (they are stored and answered in UTC).
    time_zone: String,
}

/// A policy in effect.
#[derive(Debug, ToSchema)]
pub struct PolicySummary {
    id: String,
    title: String,
    payer: String,
    document: String,
    version: String,
    #[schema(format = Date)]
    effective: Option<String>,
    drugs: Vec<String>,
    /// The case keys it reads.
    questions: Vec<String>,
    criteria: Vec<CriterionText>,
}

#[derive(Debug, ToSchema)]
pub struct CriterionText {
    id: String,
    text: String,
}

/// Every policy's decision on a case, nothing stored.
#[derive(Debug, ToSchema)]
pub struct Evaluation {
    results: Vec<EvaluatedPolicy>,
    /// The payer comparison: one cell per policy.
    #[schema(value_type = Vec<Object>)]
    compare: Vec<Value>,
    /// Body surface area from height and weight.
    bsa_m2: Option<f64>,
    /// The label's dose for this patient.
    #[schema(value_type = Option<Object>)]
    allowed_dose: Option<Value>,
}

#[derive(Debug, ToSchema)]
pub struct EvaluatedPolicy {
    result: Decision,
    title: String,
    /// Each pathway not ruled out, with its criterion tree.
    #[schema(value_type = Vec<Object>)]
    pathways: Vec<Value>,
}

/// A FHIR R4 (4.0.1) resource in JSON (`application/fhir+json`), under the Da Vinci profile
/// each operation names; an error is an `OperationOutcome` naming the element at fault.
#[derive(Debug, ToSchema)]
pub struct FhirResource {
    /// `Bundle`, `Parameters`, `Questionnaire`, `QuestionnaireResponse`, `Subscription`,
    /// `CapabilityStatement`, `OperationOutcome`, …
    #[schema(rename = "resourceType")]
    resource_type: String,
}

/// The CDS services this server offers (CDS Hooks 2.0 discovery).
#[derive(Debug, ToSchema)]
pub struct CdsServices {
    #[schema(value_type = Vec<Object>)]
    services: Vec<Value>,
}

/// A CDS Hooks call (`order-select`, `order-sign`) with its context and prefetch.
#[derive(Debug, ToSchema)]
pub struct CdsHookRequest {
    hook: String,
    #[schema(rename = "hookInstance")]
    hook_instance: String,
    #[schema(value_type = Object)]
    context: Value,
    #[schema(value_type = Option<Object>)]
    prefetch: Option<Value>,
}

/// A CDS Hooks answer: cards, and CRD's coverage information as system actions.
#[derive(Debug, ToSchema)]
pub struct CdsHookResponse {
    #[schema(value_type = Vec<Object>)]
    cards: Vec<Value>,
    #[schema(rename = "systemActions", value_type = Option<Vec<Object>>)]
    system_actions: Option<Vec<Value>>,
}

/// An appeal of a clinician's adverse determination, with its clock.
#[derive(Debug, ToSchema)]
pub struct AppealRecord {
    /// `apl_…`.
    id: String,
    request_id: String,
    organization: String,
    plan: String,
    /// `member`, `prescriber` or `clinic`.
    appellant: String,
    /// `standard` or `expedited`.
    urgency: String,
    /// `pending`, `upheld` or `overturned`.
    status: String,
    /// Why another decision is asked for, with the new information.
    grounds: String,
    /// Each file sent: `n` (its address under `attachments/`), title, content type, size and SHA-256.
    #[schema(value_type = Vec<Object>)]
    attachments: Value,
    #[schema(format = DateTime)]
    received_at: String,
    /// By the plan's appeal clock for its urgency, with an extension if one was made.
    #[schema(format = DateTime)]
    due_at: String,
    /// Open past its due time, or decided after it.
    late: bool,
    /// While open; negative when late.
    minutes_left: Option<i64>,
    /// The extension's reason and days.
    #[schema(value_type = Option<Object>)]
    extension: Option<Value>,
    /// `uphold` or `overturn`, the reason, the reviewer and when.
    #[schema(value_type = Option<Object>)]
    decision: Option<Value>,
    /// After a write: the request's status as the write left it.
    request_status: Option<String>,
    /// After a write: the request's authorization, if it holds one.
    #[schema(value_type = Option<Object>)]
    authorization: Option<Value>,
}

/// A page of open appeals, soonest due first.
#[derive(Debug, ToSchema)]
pub struct AppealPage {
    items: Vec<AppealRecord>,
    /// Give as `after` for the next page; null on the last.
    next: Option<String>,
}

/// A peer-to-peer discussion between the prescriber and a reviewer.
#[derive(Debug, ToSchema)]
pub struct PeerToPeerRecord {
    /// `p2p_…`.
    id: String,
    request_id: String,
    /// The appeal it was held during.
    appeal: Option<String>,
    prescriber: String,
    #[schema(format = DateTime)]
    held_at: String,
    /// `agreed_to_approve`, `determination_stands`, `information_requested`, `prescriber_unavailable`.
    outcome: String,
    notes: String,
    reviewer: Reviewer,
    #[schema(format = DateTime)]
    recorded_at: String,
}

/// A request's appeals and peer-to-peer discussions.
#[derive(Debug, ToSchema)]
pub struct RequestAppeals {
    request_id: String,
    appeals: Vec<AppealRecord>,
    peer_to_peer: Vec<PeerToPeerRecord>,
}

/// The data of an appeal's notice: of its decision, or of its extension while open.
#[derive(Debug, ToSchema)]
pub struct AppealNotice {
    /// `appeal_decision` or `appeal_extension`.
    kind: String,
    request_id: String,
    /// The plan's time zone, in which the notice shows its times (they are given in UTC).
    time_zone: String,
    appeal_id: String,
    /// `upheld` or `overturned` (a decision's notice).
    decision: Option<String>,
    /// The drug, code, dose and date of the request.
    #[schema(value_type = Object)]
    service: Value,
    /// The specific reason (of the decision, or of the extension).
    reason: Option<String>,
    /// A denial upheld: the criterion, its text and source, the policy and its version.
    #[schema(value_type = Option<Object>)]
    criterion: Option<Value>,
    /// Name and credentials of the clinician who decided the appeal.
    #[schema(value_type = Option<Object>)]
    reviewer: Option<Value>,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime)]
    due_at: String,
    #[schema(format = DateTime)]
    decided_at: Option<String>,
    /// Whether the decision came within the appeal's clock.
    on_time: Option<bool>,
    /// An overturn: the authorization granted.
    #[schema(value_type = Option<Object>)]
    authorization: Option<Value>,
    /// A denial upheld: external review, fair hearing or the independent review entity.
    further_rights: Option<String>,
    /// An extension: its days and the right to file a grievance.
    extension_days: Option<i64>,
    rights: Option<String>,
    automation: Option<String>,
}

/// The UM report (`crate::lifecycle::report::UmReport`): per plan, drug and urgency the
/// requests and how they were decided, turnaround hours (mean, median, 90th percentile,
/// maximum) and the share decided on time; the appeals per plan and urgency; CMS-0057-F's
/// metrics per plan; how each figure is counted.
#[derive(Debug, ToSchema)]
pub struct UmReport {
    #[schema(format = Date)]
    from: String,
    #[schema(format = Date)]
    to: String,
    #[schema(format = DateTime)]
    generated_at: String,
    #[schema(value_type = Vec<Object>)]
    groups: Value,
    #[schema(value_type = Vec<Object>)]
    appeals: Value,
    #[schema(value_type = Vec<Object>)]
    cms_0057_f: Value,
    definitions: Vec<String>,
}

/// SMART App Launch's discovery document for Backend Services.
#[derive(Debug, ToSchema)]
pub struct SmartConfiguration {
    token_endpoint: String,
    grant_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    scopes_supported: Vec<String>,
    capabilities: Vec<String>,
}

/// An access token (RFC 6749 §5.1).
#[derive(Debug, ToSchema)]
pub struct AccessToken {
    /// `sat_…`, sent as `Authorization: Bearer sat_…` to the FHIR endpoints.
    access_token: String,
    /// `bearer`.
    token_type: String,
    /// Seconds.
    expires_in: i64,
    /// The scopes granted (the `system/` ones asked for).
    scope: String,
}

/// An OAuth 2.0 error (RFC 6749 §5.2).
#[derive(Debug, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`,
    /// `temporarily_unavailable`.
    error: String,
    error_description: String,
}
