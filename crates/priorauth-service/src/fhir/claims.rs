//! PAS `Claim/$submit`: a new request for each item of the Claim (one answer holding every
//! item's), an update that replaces the pending requests of the Claim it names, and a
//! cancellation that withdraws them, or cancels their authorizations once approved (PAS
//! 2.2.1, *Updates and cancellations*). The documents
//! a Claim sends (`supportingInfo`: attachments, DocumentReferences) are kept with each of
//! its requests for the reviewer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use priorauth_fhir::{Problem, operation_outcome, pas};
use serde_json::{Value, json};

use super::{
    FhirError, FhirResult, bounded, bundle_text, caller, canonical, dated_on_receipt, fhir_json,
    governing, parsed, pas_response, response_for, submitter, text,
};
use crate::keys::{Caller, Role};
use crate::lifecycle::attachments::{self, SentFile};
use crate::lifecycle::authorizations::{self as lifecycle_authorizations, CancellationBody};
use crate::lifecycle::members::{self, Membership};
use crate::lifecycle::request_view;
use crate::lifecycle::requests::{
    self as lifecycle_requests, ClaimLink, NamedClaimRequest, ReceivedBundle, SubmitBody,
    Successor, Urgency,
};
use crate::lifecycle::{self, now_ms, timestamp};
use crate::web::{AppError, AppState};

/// Reading a Claim into cases takes, for each item, a pass over the Bundle's resources and a
/// search of them for each reference the Claim makes (diagnoses, supporting information,
/// insurance, care team), and a decision. Up to this many resource visits (a PAS request as
/// EHRs send it makes one to a few hundred) it is done where the call runs, in under a
/// millisecond or two; a Claim of many items or references is heavy work
/// ([`super::bounded`]), whatever its size in bytes.
pub(super) const INLINE_INTAKE_VISITS: usize = 4096;

/// The resource visits reading `request` into cases takes, about: items × resources ×
/// (references + 1).
pub(super) fn intake_visits(request: &pas::ClaimRequest) -> usize {
    let resources = request.resources.iter().count();
    let Some(claim) = request.claim() else {
        return resources;
    };
    // The Claim's insurer and the requested service of an item are searched for too.
    let references = claim.diagnosis.len()
        + claim.supporting_info.len()
        + claim.insurance.len()
        + claim.care_team.len()
        + 2;
    claim
        .item
        .len()
        .max(1)
        .saturating_mul(resources.saturating_mul(references + 1))
}

#[utoipa::path(post, path = "/fhir/Claim/$submit", operation_id = "pas_submit", tag = "FHIR", summary = "Da Vinci PAS $submit: a prior-authorization request Bundle", request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a PAS Request Bundle (Claim, Patient, Coverage, ...)"),
    responses((status = 200, description = "a PAS Response Bundle with the ClaimResponse", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "an update or cancellation names no request of the caller's: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, or a `Claim.related` the Bundle does not identify, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 409, description = "an update or cancellation of a request decided while it was being applied: an OperationOutcome (one of a request already decided is answered 200, with the request as it stands and a note that the update was not applied)", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 403, description = "not a submitter: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 429, description = "over the rate; Retry-After says when: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    let caller = caller(who)?;
    submitter(&caller)?;
    let (map, engine) = (state.fhir.clone(), state.service.engine.clone());
    let (request, bundle_json) = parsed(body.len(), move || {
        let (text, bundle_json) = bundle_text(text(&body)?)?;
        drop(body);
        let request =
            pas::read_request_json(&text, &bundle_json).map_err(|p| FhirError::structure(&p))?;
        Ok::<_, FhirError>((request, bundle_json))
    })
    .await??;
    let light = intake_visits(&request) <= INLINE_INTAKE_VISITS;
    let (request, intakes, bundle, source) = bounded(light, move || {
        // A Claim of several items: each item is a request of its own.
        // Each with whether the item is cancelled (certification type `3`).
        let intakes: Vec<_> = match pas::item_count(&request) {
            0 | 1 => vec![(
                pas::intake(&map, &engine, &request),
                request.item_cancelled(0),
            )],
            n => (0..n)
                .map(|i| {
                    let intake = pas::item_intake(&map, &engine, &request, i);
                    (intake, request.item_cancelled(i))
                })
                .collect(),
        };
        // Packed and hashed once for all its items.
        let bundle = ReceivedBundle::new(&bundle_json.to_string());
        let source = pas::response_source(&bundle_json);
        (request, intakes, bundle, source)
    })
    .await?;
    if intakes.len() > MAX_CLAIM_ITEMS {
        return Err(FhirError::invalid(&[Problem::new(
            "Claim.item",
            format!(
                "{} items: a Claim holds at most {MAX_CLAIM_ITEMS} (each is a request of its own); send the rest in another Claim",
                intakes.len()
            ),
        )]));
    }
    let canonical = canonical(&headers);
    if request.intent() == pas::Intent::UnknownPrior {
        return Err(FhirError::invalid(&[Problem::new(
            "Claim.related.claim",
            "the Claim this one updates is not identified: PAS says \"The Claim that is being updated SHALL be referenced in the Claim.related.claim element and included in the Bundle\"; give its identifier on the reference, or include it (with its identifier) in the Bundle",
        )]));
    }
    if let pas::Intent::Cancel { prior: prior_claim } = request.intent() {
        let mut prior = prior_requests(&state, &caller, &prior_claim).await?;
        // Answered in item order, as the Claim was.
        prior.sort_by_key(|r| r.item_sequence);
        if let Some(decided) =
            decided_answer(&state, &caller, &prior, Change::Cancel, &canonical).await?
        {
            return Ok(decided);
        }
        // A cancellation with an identifier of its own is recorded as what cancelled each
        // request, so that an inquiry by that identifier finds them (cancelled).
        let by = (prior_claim != request.claim_identifier)
            .then(|| Successor::CancelledBy(request.claim_identifier.clone()));
        for request in &prior {
            cancel_prior(&state, &caller, &request.id, by.clone()).await?;
        }
        let answers: Vec<_> = prior.into_iter().map(|r| Answer::Stored(r.id)).collect();
        return answer(&state, &caller, &answers, &source, &canonical).await;
    }
    // The documents it sends for the reviewer, checked before anything is stored.
    let documents = attachments::check_sent(
        &request
            .documents()
            .into_iter()
            .map(|d| SentFile {
                field: d.element,
                title: d.title,
                content_type: d.content_type,
                data: d.data,
            })
            .collect::<Vec<_>>(),
    )?;
    // Each item's plan (the member's, by the payer's eligibility; the declared one until any
    // is loaded) and whether a policy of it governs what the item asks.
    // In an update, an item cancelled is a service no longer required, which needs no
    // authorization (PAS 2.2.1): no request is made for it, and it is answered by the
    // request of the named Claim's item of its sequence, cancelled.
    let update = matches!(request.intent(), pas::Intent::Update { .. });
    // In a new Claim, a cancelled item cancels nothing and asks for nothing: it is refused
    // (it was decided, and authorized, like any other item: "A PAS cancellation or update
    // cannot authorize", SECURITY.md).
    if !update {
        if let Some(i) = intakes.iter().position(|(_, cancelled)| *cancelled) {
            return Err(FhirError::invalid(&[Problem::new(
                format!("Claim.item[{i}].extension(certificationType)"),
                "a cancelled item (certification type 3, or infoCancelled) in a Claim that updates none: a cancellation names the Claim it cancels in Claim.related, or cancels every item of it; leave the item out of a new Claim",
            )]));
        }
    }
    let mut cancelled_items = Vec::new();
    let mut items = Vec::new();
    for (mut intake, cancelled) in intakes {
        if update && cancelled {
            cancelled_items.push(i64::from(intake.item_sequence.unwrap_or(1)));
            continue;
        }
        let plan = match members::find(
            &state.service,
            &intake.member_ids,
            intake.plan.as_deref(),
            &intake.payer_ids,
            &lifecycle::today(),
        )
        .await
        .map_err(|e| FhirError::from(AppError::from(e)))?
        {
            Membership::Member { plan, member } => {
                with_member(&mut intake.case, member.as_deref());
                Some(plan)
            }
            Membership::Inactive | Membership::Unknown => None,
        };
        // The member's recorded birth date outranks the Patient's: checked for every item
        // before anything is withdrawn or stored (an update failing on it later had already
        // withdrawn the request it replaces).
        if let Some(plan) = &plan {
            lifecycle::members::check_birth_date(&state.service, plan, &intake.case)
                .await
                .map_err(|e| FhirError::from(AppError::from(on_patient_birth_date(e))))?;
        }
        let governed = plan
            .as_ref()
            .is_some_and(|p| governing(&state, p, &intake.case).is_some());
        if governed && !intake.problems.is_empty() {
            return Err(FhirError::invalid(&intake.problems));
        }
        items.push((intake, plan, governed));
    }
    // An update is decided as a request of its own; the requests it replaces, still pending,
    // are withdrawn first, once the update is known to be readable. A decided request is
    // not updated (PAS: after a denial, a new request; after an approval, an extension
    // naming the authorization).
    let mut cancelled_answers = Vec::new();
    if let pas::Intent::Update { prior } = request.intent() {
        let reason = format!(
            "Replaced by an update (PAS Claim {})",
            request.claim_identifier
        );
        let prior = prior_requests(&state, &caller, &prior).await?;
        if let Some(decided) =
            decided_answer(&state, &caller, &prior, Change::Update, &canonical).await?
        {
            return Ok(decided);
        }
        for prior in prior {
            if cancelled_items.contains(&prior.item_sequence) {
                let reason = "Cancelled by the provider (PAS certification type 3)";
                let by = Successor::CancelledBy(request.claim_identifier.clone());
                withdraw_prior(&state, &caller, &prior.id, reason, "cancelled", Some(by)).await?;
                // Newest first: an item answered once, by its latest request.
                cancelled_items.retain(|sequence| *sequence != prior.item_sequence);
                cancelled_answers.push(Answer::Stored(prior.id));
            } else {
                let by = Successor::ReplacedBy(request.claim_identifier.clone());
                withdraw_prior(&state, &caller, &prior.id, &reason, "updated", Some(by)).await?;
            }
        }
    }
    // Told apart by sequence whenever the Claim has several items, cancelled ones or not.
    let several = pas::item_count(&request) > 1;
    let mut answers = Vec::new();
    for (intake, plan, governed) in items {
        let sequence = intake.item_sequence.unwrap_or(1);
        let link = ClaimLink {
            base: canonical.base.clone(),
            claim_identifier: request.claim_identifier.clone(),
            item_sequence: sequence,
            bundle: bundle.clone(),
        };
        // The Bundle's identifier makes a submission sent again the same one; an item of a
        // Claim with several is told apart by its sequence.
        let key = if several {
            format!("pas:{}#{sequence}", request.bundle_identifier)
        } else {
            format!("pas:{}", request.bundle_identifier)
        };
        let (created, id, decided) = match plan {
            Some(plan) if governed => {
                let body = SubmitBody {
                    plan,
                    case: cycles_asked(dated_on_receipt(intake.case.clone()), &state),
                    urgency: if intake.expedited {
                        Urgency::Expedited
                    } else {
                        Urgency::Standard
                    },
                    renews: intake.renews.clone(),
                };
                let (created, response) = lifecycle_requests::submit(
                    &state.service,
                    &caller,
                    body,
                    Some(key),
                    Some(link),
                )
                .await?;
                let id = response["id"].as_str().unwrap_or_default().to_string();
                (created, id, created.then_some(response))
            }
            // No plan of this payer, or no policy for what is asked: a clinician handles it.
            plan => {
                let (created, id) = lifecycle_requests::submit_for_review(
                    &state.service,
                    &caller,
                    &intake.case,
                    plan.as_deref(),
                    intake.expedited,
                    &key,
                    link,
                )
                .await?;
                (created, id, None)
            }
        };
        // A submission sent again is answered as the first was: its documents were kept
        // then (a decided request takes new ones with an appeal).
        if created {
            attachments::add_sent(&state.service, &caller, &id, &documents).await?;
        }
        answers.push(match decided {
            Some(mut record) => {
                record["organization"] = json!(caller.organization);
                Answer::Decided(record, sequence)
            }
            None => Answer::Stored(id),
        });
    }
    // After the new requests, whose answer heads the response (this Claim's).
    answers.extend(cancelled_answers);
    answer(&state, &caller, &answers, &source, &canonical).await
}

/// How an item of a Claim is answered.
enum Answer {
    /// A new request, from its decision in hand (the answer `POST /v1/requests` gives, with
    /// its organization), as the stored record would read: reading it back would cost a
    /// transaction, the explanation recomputed and the Bundle unpacked, for what is here.
    Decided(Value, u32),
    /// A request sent again, withdrawn or sent to review, by its id: from its record.
    Stored(String),
}

/// One response Bundle for the requests of a Claim's items; `source` is the part of the
/// request Bundle a response repeats.
async fn answer(
    state: &AppState,
    caller: &Caller,
    answers: &[Answer],
    source: &Value,
    canonical: &priorauth_fhir::questionnaire::Canonical,
) -> FhirResult {
    let mut responses = Vec::new();
    for answer in answers {
        responses.push(match answer {
            Answer::Decided(record, sequence) => {
                let created = timestamp(now_ms());
                pas_response(state, source, record, *sequence, &canonical.base, &created)
            }
            Answer::Stored(id) => response_for(state, caller, id, canonical).await?,
        });
    }
    Ok(fhir_json(StatusCode::OK, pas::merge_responses(responses)))
}

/// The requests of the one Claim an update or a cancellation names (one per item), among the
/// caller's organization's own: by that Claim's identifier, system and value
/// (`lifecycle::requests::find_named_claim`), never a Claim with the same value under another
/// system.
async fn prior_requests(
    state: &AppState,
    caller: &Caller,
    prior: &str,
) -> Result<Vec<NamedClaimRequest>, FhirError> {
    let mut own = caller.clone();
    // Even an admin cancels or updates only its own organization's requests here.
    own.role = Role::Submitter;
    let found = lifecycle_requests::find_named_claim(&state.service, &own, prior).await?;
    if !found.is_empty() {
        return Ok(found);
    }
    Err(FhirError(
        StatusCode::NOT_FOUND,
        operation_outcome(
            "not-found",
            &[Problem::new(
                "Claim.related",
                "no prior authorization request of yours has the Claim this one updates or cancels",
            )],
        ),
    ))
}

/// The answer to an update or a cancellation of a Claim whose requests are already decided
/// (approved, denied, approved with changes), or `None` when every one is still pending (or
/// already withdrawn). PAS 2.2.1: "Servers MAY reject updates and require that a new request
/// is made", with the rejection in a ClaimResponse (its example, RejectionResponseBundleExample);
/// "If the prior authorization response is a denial, it is not permitted to send an 'update'
/// to the request. Instead, a new request must be initiated." A decided request is not
/// withdrawn here (its authorization stays as given), so the update is not applied at all,
/// none of its items: the EHR is answered with the ClaimResponse of the Claim it named, each
/// item as it stands (A1 with its authorization number, A3, A6), and a note saying the update
/// was not applied and what to send instead: a PAS response it reads as any other, not a
/// bare error.
///
/// A cancellation of an approved request is applied (`cancel_prior`): it is not counted here,
/// and a cancellation that cancels anything is applied to what it can.
async fn decided_answer(
    state: &AppState,
    caller: &Caller,
    prior: &[NamedClaimRequest],
    change: Change,
    canonical: &priorauth_fhir::questionnaire::Canonical,
) -> Result<Option<axum::response::Response>, FhirError> {
    let verb = match change {
        Change::Update => "updated",
        Change::Cancel => "cancelled",
    };
    let mut decided = Vec::new();
    let mut current = Vec::new();
    let mut open = 0;
    for request in prior {
        let view = request_view::read(&state.service, caller, &request.id).await?;
        let status = view["status"].as_str().unwrap_or_default().to_string();
        if status == "withdrawn" {
            continue;
        }
        let cancellable = change == Change::Cancel && status == "approved";
        if lifecycle_requests::is_pending(&status) || cancellable {
            open += 1;
        } else {
            decided.push(status);
        }
        current.push(request.id.clone());
    }
    // A cancellation cancels what it can (a denied item has nothing to cancel and is answered
    // as it stands); only one that can cancel nothing is answered with the note.
    if decided.is_empty() || (change == Change::Cancel && open > 0) {
        return Ok(None);
    }
    let mut responses = Vec::new();
    for id in &current {
        responses.push(response_for(state, caller, id, canonical).await?);
    }
    let mut answer = pas::merge_responses(responses);
    decided.sort();
    decided.dedup();
    let text = format!(
        "This Claim was not {verb}: the request it names is already decided ({}), and a decided request is not changed by an update. After a denial, submit a new request; to extend or change an approved authorization, submit a new request naming its authorization number (certification type 4, extension). Each item above is answered as it stands.",
        decided.join(", ")
    );
    if let Some(notes) = answer["entry"][0]["resource"]["processNote"].as_array_mut() {
        let number = notes.len() + 1;
        notes.push(json!({"number": number, "type": "display", "text": text}));
    } else {
        answer["entry"][0]["resource"]["processNote"] =
            json!([{"number": 1, "type": "display", "text": text}]);
    }
    Ok(Some(fhir_json(StatusCode::OK, answer)))
}

/// What a Claim naming an earlier one (`Claim.related`) does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Update,
    Cancel,
}

/// Cancels one request a PAS cancellation names: an approved request's authorization is
/// cancelled as of today (`authorizations::cancel`: drug given through today stays covered),
/// a pending request is withdrawn (`withdraw_prior`); both then answer X12 306 `C`; a denied
/// one has nothing to cancel and is answered as it stands (A3). PAS
/// 2.2.1: "the returned ClaimResponse SHALL include the current results for all submitted
/// items, including any items changed or canceled". Sent again, it is done.
async fn cancel_prior(
    state: &AppState,
    caller: &Caller,
    id: &str,
    by: Option<Successor>,
) -> Result<(), FhirError> {
    let reason = "Cancelled by the provider (PAS certification type 3)";
    let view = request_view::read(&state.service, caller, id).await?;
    let status = view["status"].as_str().unwrap_or_default();
    if status != "approved" && !lifecycle_requests::is_pending(status) {
        // Denied, or withdrawn already: nothing to cancel; answered as it stands.
        return Ok(());
    }
    let authorization = &view["authorization"];
    if let (true, Some(number)) = (status == "approved", authorization["number"].as_str()) {
        if authorization["cancelled_on"].is_string() {
            return Ok(());
        }
        let body = CancellationBody {
            reason: reason.to_string(),
        };
        let claim = by.as_ref().map(Successor::claim);
        return match lifecycle_authorizations::cancel_for_claim(
            &state.service,
            caller,
            number,
            &body,
            claim,
        )
        .await
        {
            // Cancelled meanwhile by another call: done.
            Ok(_) | Err(lifecycle::Error::Conflict(_)) => Ok(()),
            Err(other) => Err(other.into()),
        };
    }
    withdraw_prior(state, caller, id, reason, "cancelled", by).await
}

/// Withdraws the request an update replaces or a cancellation cancels; an update's Claim is
/// recorded as its `successor` (what an inquiry about it answers). Sent again (the request
/// already withdrawn), it is done; a request already decided is a conflict.
async fn withdraw_prior(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: &str,
    verb: &str,
    successor: Option<Successor>,
) -> Result<(), FhirError> {
    let body = lifecycle_requests::WithdrawalBody {
        reason: reason.to_string(),
    };
    let withdrawn = match &successor {
        Some(successor) => {
            lifecycle_requests::withdraw_for_claim(&state.service, caller, id, &body, successor)
                .await
        }
        None => lifecycle_requests::withdraw(&state.service, caller, id, &body, None).await,
    };
    match withdrawn {
        Ok(_) => Ok(()),
        Err(lifecycle::Error::Conflict(_)) => {
            let view = request_view::read(&state.service, caller, id).await?;
            let status = view["status"].as_str().unwrap_or_default();
            if status == "withdrawn" {
                return Ok(());
            }
            Err(FhirError(
                StatusCode::CONFLICT,
                operation_outcome(
                    "business-rule",
                    &[Problem::new(
                        "Claim.related",
                        format!(
                            "the request is `{status}`: only a pending request is {verb}; after a decision, submit a new request (or an extension naming the authorization)"
                        ),
                    )],
                ),
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// The most items one Claim may hold: each is a request of its own, and an update or a
/// cancellation of the Claim reaches every one of them (`store::requests::by_claim_identifier`
/// reads at most twice this many); PAS requests ask for a few services at a time.
const MAX_CLAIM_ITEMS: usize = 50;

/// A PAS item asks for its `quantity` over its service period (`servicedPeriod`, read as
/// `request.units_period_days`), as an X12 278 service line does: the cycles asked are those
/// that start within that period (at the request's cycle length, never shorter than the
/// label's), or one cycle without a period, and no more than the label's units a cycle need
/// to hold the item's quantity, which they share. A `request.cycles` answer asks for no more
/// than the period holds: the item's quantity is what the Claim asks to be paid for.
///
/// Without this, the engine approved the policy's most cycles, or the answer's: a Claim of
/// 980 units of Blincyto over 42 days was authorized 9 cycles, 8,820 units for a year, and
/// with a `request.cycles` answer of 2, 1,960 units.
fn cycles_asked(mut case: Value, state: &AppState) -> Value {
    use priorauth_core::case::{MAX_CYCLE_DAYS, MAX_CYCLES_REQUESTED, MAX_UNITS};
    // The label's most units in a cycle of this item, when its case tells them.
    let label_per_cycle = label_units_per_cycle(&case, &state.service.engine);
    let Some(request) = case.get_mut("request").and_then(Value::as_object_mut) else {
        return case;
    };
    let given = |key: &str| request.get(key).is_some_and(|v| !v.is_null());
    if !given("units") {
        return case;
    }
    let answered = request.get("cycles").and_then(Value::as_u64);
    if given("cycles") && (answered.is_none() || !given("units_period_days")) {
        // An answer that is not a count is the engine's to refuse, naming it; without a
        // period, the item's units are one cycle's and the answer says how many.
        return case;
    }
    if !given("units_period_days") {
        // No period: the item's units are one cycle's.
        request.insert("cycles".into(), json!(1));
        return case;
    }
    // A period or a quantity out of bounds is the engine's to refuse, naming it.
    let period = request
        .get("units_period_days")
        .and_then(Value::as_u64)
        .filter(|days| (1..=u64::from(MAX_CYCLE_DAYS)).contains(days));
    let units = request
        .get("units")
        .and_then(Value::as_f64)
        .filter(|units| *units >= 1.0 && *units <= f64::from(MAX_UNITS));
    let (Some(period), Some(units)) = (period, units) else {
        return case;
    };
    let shortest = request
        .get("drug")
        .and_then(Value::as_str)
        .and_then(|id| {
            state
                .service
                .engine
                .catalog
                .drugs
                .iter()
                .find(|d| d.id == id)
        })
        .and_then(|d| d.limits.shortest_cycle_days)
        .map_or(1, u64::from);
    let cycle = request
        .get("cycle_length_days")
        .and_then(Value::as_u64)
        .map_or(shortest, |days| days.max(shortest))
        .max(1);
    let starting = period
        .div_ceil(cycle)
        .clamp(1, u64::from(MAX_CYCLES_REQUESTED));
    let starting = answered.map_or(starting, |answered| answered.min(starting));
    // The item's quantity is all it asks for: its cycles are as many as the label's units a
    // cycle need to hold it (at most those starting in the period), each its share of it.
    // Read as a rate over the period, 980 units over 43 days were 957 a cycle for the two
    // cycles starting in them (1,914), and 35 units over a day a daily dose for a cycle's 28
    // infusion days (980); split by the cycles starting in the period alone, the cycle-1
    // length of the label cut a later cycle (Blincyto's 84 days, Besponsa's 28) in two
    // halves too small to be given at its pace.
    let most = label_per_cycle
        .map_or(units, |label| label.min(units))
        .max(1.0);
    let cycles = ((units / most).ceil() as u64).clamp(1, starting);
    let per_cycle = if cycles == 1 {
        units
    } else {
        (units / cycles as f64).floor()
    };
    request.insert("cycles".into(), json!(cycles));
    if per_cycle.fract() == 0.0 {
        request.insert("units".into(), json!(per_cycle as u64));
    } else {
        request.insert("units".into(), json!(per_cycle));
    }
    request.remove("units_period_days");
    case
}

/// A lifecycle refusal of the case's birth date, named as the Bundle gives it.
fn on_patient_birth_date(error: lifecycle::Error) -> lifecycle::Error {
    match error {
        lifecycle::Error::Invalid(errors) => lifecycle::Error::Invalid(
            errors
                .into_iter()
                .map(|(field, message)| {
                    let field = if field.ends_with("patient.birth_date") {
                        "Patient.birthDate".to_string()
                    } else {
                        field
                    };
                    (field, message)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The drug label's most units in one cycle for a case (its drug, dose days and body surface
/// area), when it parses and says enough.
fn label_units_per_cycle(case: &Value, engine: &priorauth_core::Engine) -> Option<f64> {
    use priorauth_core::facts::{FactId, Value as Fact};
    match lifecycle::evaluate::facts_of(engine, case)?.get(FactId::RequestLabelUnitsPerCycle) {
        Fact::Number(n) if n.is_finite() && n >= 1.0 => Some(n),
        _ => None,
    }
}

/// The member's id as the payer's eligibility knows it, in the case a request is decided on
/// (`patient.member_id`): the member's course is found by it (`lifecycle::courses`). A case
/// that already names the member keeps its own (the intake's, from the same Coverage).
pub(crate) fn with_member(case: &mut Value, member: Option<&str>) {
    let Some(member) = member.map(str::trim).filter(|m| !m.is_empty()) else {
        return;
    };
    let Some(case) = case.as_object_mut() else {
        return;
    };
    let patient = case.entry("patient").or_insert_with(|| json!({}));
    if patient.is_null() {
        *patient = json!({});
    }
    if let Some(patient) = patient.as_object_mut() {
        if patient.get("member_id").is_none_or(Value::is_null) {
            patient.insert("member_id".into(), Value::from(member));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{INLINE_INTAKE_VISITS, intake_visits};
    use priorauth_fhir::pas;
    use serde_json::{Value, json};

    fn read(bundle: &Value) -> pas::ClaimRequest {
        pas::read_request_json(&bundle.to_string(), bundle).expect("a PAS request Bundle")
    }

    fn example_bundles() -> Vec<Value> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fhir");
        let mut bundles = Vec::new();
        for dir in ["pas-examples", "cases"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).expect("examples") {
                let path = entry.expect("an example").path();
                let text = std::fs::read_to_string(&path).expect("readable");
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if value["resourceType"] == "Bundle"
                    && pas::read_request_json(&text, &value).is_ok_and(|r| r.claim().is_some())
                {
                    bundles.push(value);
                }
            }
        }
        bundles
    }

    #[test]
    fn a_claim_as_ehrs_send_it_is_read_where_its_call_runs() {
        let bundles = example_bundles();
        assert!(bundles.len() >= 10, "{} example Bundles", bundles.len());
        for bundle in &bundles {
            let visits = intake_visits(&read(bundle));
            assert!(
                visits <= INLINE_INTAKE_VISITS / 4,
                "{visits} visits: {}",
                bundle["id"]
            );
        }
    }

    /// A 64 KB Claim can make reading it into cases cost items × references × resources: it is
    /// heavy work however small its bytes.
    #[test]
    fn a_claim_of_many_items_or_references_is_heavy_work() {
        let base = example_bundles().remove(0);
        let at = base["entry"]
            .as_array()
            .and_then(|entries| {
                entries
                    .iter()
                    .position(|e| e["resource"]["resourceType"] == "Claim")
            })
            .expect("a Claim");

        let mut items = base.clone();
        let item = items["entry"][at]["resource"]["item"][0].clone();
        items["entry"][at]["resource"]["item"] = Value::Array(
            (1..=460)
                .map(|sequence| {
                    let mut item = item.clone();
                    item["sequence"] = json!(sequence);
                    item
                })
                .collect(),
        );
        assert!(intake_visits(&read(&items)) > INLINE_INTAKE_VISITS);

        let mut references = base.clone();
        references["entry"][at]["resource"]["careTeam"] = Value::Array(
            (1..=480)
                .map(|sequence| json!({"sequence": sequence, "provider": {"reference": "Practitioner/missing"}}))
                .collect(),
        );
        for i in 0..440 {
            references["entry"]
                .as_array_mut()
                .expect("entries")
                .push(json!({"fullUrl": format!("urn:uuid:00000000-0000-0000-0000-{i:012}"), "resource": {"resourceType": "Patient", "id": format!("p{i}")}}));
        }
        assert!(intake_visits(&read(&references)) > INLINE_INTAKE_VISITS);
    }
}
