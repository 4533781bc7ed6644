//! The request lifecycle: every state a prior-authorization request and its authorization
//! can be in, and every transition between them, as functions that take the caller and its
//! input, check who may do it, write the records and the audit entry in one transaction, and
//! answer a domain result or a domain [`Error`]. No HTTP and no FHIR here: `/v1`
//! (`crate::api`), the FHIR interfaces (`crate::fhir`), the console (`crate::console`) and
//! the CLI's `serve` are adapters that translate to and from these functions, and none of
//! them imports another.
//!
//! # States
//!
//! | request status        | meaning                                                        |
//! |-----------------------|----------------------------------------------------------------|
//! | `pending_information` | the policy needs facts the request did not give; due by the plan's clock like a review |
//! | `pending_review`      | a clinician decides (a `review` outcome or a recommended denial; also a PAS request no policy governs) |
//! | `approved`            | by the policy's criteria, or by a clinician; holds an authorization |
//! | `denied`              | by a clinician only: software never denies                    |
//! | `not_applicable`      | no pathway of the policy concerns the request                 |
//! | `withdrawn`           | by its requester while it was pending; nothing decides it now |
//!
//! An appeal of a clinician's denial or approval with changes is `pending` until a reviewer
//! decides it `upheld` or `overturned`; its request keeps its status meanwhile, and the
//! appeal's rows are part of the request's audited state.
//!
//! An authorization is created with an approval, holds approved units over a period, and is
//! spent by usage; it is renewed at most once (the renewal is a new request naming it). Its
//! provider may cancel it once no longer needed: drug given through that day stays covered.
//!
//! # Transitions
//!
//! | transition | roles | from → to | writes (one transaction, with an audit entry) |
//! |---|---|---|---|
//! | [`requests::submit`] | submitter, admin | — → any status | request, first event, authorization if approved, PAS link (group commit; a renewal in its own transaction after reading its chain) |
//! | [`requests::submit_for_review`] | submitter, admin | — → `pending_review` | request, first event, PAS link |
//! | [`requests::complete`] | submitter, admin | `pending_information` → any status | request's facts and decision, `completed` event, authorization if approved, PAS notification |
//! | [`review::determine`] | reviewer | `pending_review` → `approved` / `denied` | status, determination, authorization if approved, `determination` event, PAS notification (a request no policy governs: the basis named by the reviewer, and an approval states its units, cycles and period) |
//! | [`review::ask_for_information`] | reviewer | `pending_review` → `pending_information` | status (released by whoever had it), `information_requested` event with the questions and the day answers are asked by, PAS notification; answered by [`requests::complete`] with `answers` (an `information_given` event), the request returns to `pending_review` unless the policy then approves it |
//! | [`review::preview`] | reviewer | none (`pending_review`, checked as [`review::determine`]) | nothing: the determination is recorded in a transaction that is rolled back once its notice is composed; the preview's read is audited |
//! | [`review::assign`] | reviewer | `pending_review` (who has it) | the reviewer it is assigned to, or none (released); audited with the request's state |
//! | [`review::extend`] | reviewer, admin | pending standard request, not extended, the plan allows it | due time and the reason, `extended` event |
//! | [`review::reopen`] | reviewer | `denied` (no appeal open) → `pending_review` | status and due time, the determination moved into a `reopened` event with the reason, PAS notification |
//! | [`appeals::file`] | submitter, admin | a clinician's `denied`, or `approved` with changes, within the plan's filing window | appeal (pending, due by the plan's appeal clock) and its files, `appealed` event |
//! | [`appeals::decide`] | reviewer not involved in the determination or an earlier appeal; to uphold, a physician of the drug's specialty | appeal pending → upheld / overturned; an overturn: request → `approved` | appeal decision, `appeal_decided` event; an overturn: the authorization (or the approval with changes' one given new terms), the determination replaced (the old one kept in the event), PAS notification |
//! | [`appeals::extend`] | reviewer, admin | appeal pending, not extended, the plan allows it | due time and the reason, `appeal_extended` event |
//! | [`peer_to_peer::record`] | reviewer | any | the discussion (prescriber, when, outcome, notes) |
//! | [`attachments::add`] | submitter, reviewer | `pending_information` / `pending_review` | the file (type checked by content, size, SHA-256), audited with the request's state |
//! | [`comments::add`] | reviewer | any | the comment on the request or one of its criteria, audited with the request's state |
//! | [`requests::withdraw`] | submitter, admin | `pending_information` / `pending_review` → `withdrawn` | status, `withdrawn` event with the reason, PAS notification (review action `C`, cancelled) |
//! | [`authorizations::record_usage`] | submitter, admin | authorization → units spent | used units, usage row |
//! | [`authorizations::cancel`] | submitter, admin | `approved`, authorization not cancelled → authorization cancelled as of today | the authorization's `cancelled_on`, `authorization_cancelled` event with the reason, PAS notification (review action `C`); usage dated after that day is refused |
//! | [`subscriptions::save`], [`subscriptions::delete`] | submitter, admin | — | the organization's subscription (one: a second create is a conflict naming it) |
//! | [`requests::for_questionnaire`] | the request's own organization only (DTR's `context`) | none | the audit entry of the read (`request.read`) |
//! | [`members::import`] | admin (the CLI's operator) | — | enrolments (eligibility), one audit entry naming how many |
//! | [`request_view::read`], [`worklist::list`], [`review::queue`], [`notices::denial_letter`], [`notices::approval_notice`], [`report::um`], [`appeals::read`], [`appeals::open`], [`appeals::of_request`], [`appeals::notice`], [`appeals::attachment`], [`attachments::read`], [`authorizations::read`], [`subscriptions::read`], [`subscriptions::dead_letters`] | by visibility, reviewer for the queue, admin for dead letters | none | the audit entry of the read (the work list's, the queue's and the dead letters' with the ids shown) |
//!
//! Completions, determinations and usage sent with an `Idempotency-Key` store their first
//! answer in their own transaction and give it again to a retry ([`retries`]).
//!
//! A submitter sees only its own organization's records; to anyone else they do not exist.

pub mod appeals;
pub mod assertions;
pub mod attachments;
pub mod authorizations;
pub mod comments;
pub mod courses;
pub mod evaluate;
pub mod members;
pub mod notices;
pub mod peer_to_peer;
pub mod report;
pub mod request_view;
pub mod requests;
pub mod retries;
pub mod review;
pub mod subscriptions;
pub mod worklist;

use std::sync::Arc;

use priorauth_core::Engine;
use priorauth_core::Outcome;
use priorauth_core::date::Date;

use crate::keys::{Caller, Role};
use crate::plans::Plans;
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
/// The clock and the ids every record uses, for the adapters too.
pub use crate::store::{now_ms, random_id, sha256_hex};

/// What the lifecycle works with: the engine and its policies, the plans, the records.
#[derive(Debug, Clone)]
pub struct Service {
    pub engine: Arc<Engine>,
    pub plans: Arc<Plans>,
    pub store: Store,
    /// Wakes the notification worker after a decision.
    pub notify: Arc<tokio::sync::Notify>,
    /// The group commit of new requests and audit entries.
    pub writer: Writer,
    /// The members' courses being decided: one request of a member's course at a time.
    pub courses: Arc<courses::CourseLocks>,
}

/// Why a transition did not happen. Each adapter answers it in its own terms (problem+json,
/// an OperationOutcome).
#[derive(Debug)]
pub enum Error {
    /// The caller's role may not do this.
    Forbidden(String),
    /// No such record, or one the caller may not see.
    NotFound,
    /// Bad input: (field, message) pairs.
    Invalid(Vec<(String, String)>),
    /// The record is not in a state that allows it.
    Conflict(String),
    /// The records could not be read or written; the detail is for the server's log.
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        Error::Internal(error.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Internal(error.to_string())
    }
}

/// A write that met another's row at the same key (two files, two comments at once) is a
/// conflict the client resolves by sending it again; any other failure is the store's.
fn raced(error: StoreError, what: &str) -> Error {
    match &error.0 {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            Error::Conflict(format!(
                "another {what} was added to the request at the same moment; send this one again"
            ))
        }
        _ => error.into(),
    }
}

/// Text of 1 to `most` characters, trimmed, or the field named.
fn text(field: &str, value: &str, most: usize) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > most {
        return Err(invalid(field, format!("give it in 1 to {most} characters")));
    }
    Ok(value.to_string())
}

/// One field's problem.
pub fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![(field.to_string(), message.into())])
}

/// A case that breaks the format: each problem named by its key under `case.`.
pub fn case_invalid(error: priorauth_core::CaseError) -> Error {
    Error::Invalid(
        error
            .problems
            .iter()
            .map(|p| (format!("case.{}", p.key), p.message.clone()))
            .collect(),
    )
}

fn require(caller: &Caller, roles: &[Role]) -> Result<(), Error> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(Error::Forbidden(format!(
            "this needs the {} role",
            names.join(" or ")
        )))
    }
}

/// A submitter sees only its own organization's records; to anyone else they do not exist.
fn visible(caller: &Caller, organization: &str) -> bool {
    caller.role != Role::Submitter || caller.organization == organization
}

/// The status a request takes from the engine's outcome.
fn status_of(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Approve => "approved",
        Outcome::Incomplete => "pending_information",
        Outcome::Review | Outcome::Deny => "pending_review",
        Outcome::NotApplicable => "not_applicable",
    }
}

/// Whether `text` could name a stored record (an id, a number, a member id): 1 to 64
/// characters, none of them control characters. What cannot is looked up nowhere.
pub fn could_be_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && !text.chars().any(char::is_control)
}

/// The calendar day (UTC) of a time in milliseconds since 1970.
pub fn day_of(ms: i64) -> Date {
    Date::from_epoch_days(ms.div_euclid(86_400_000))
        .unwrap_or_else(|| Date::from_ymd_unchecked(1970, 1, 1))
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    day_of(now_ms()).to_string()
}

/// A time in milliseconds since 1970 as RFC 3339.
pub fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
