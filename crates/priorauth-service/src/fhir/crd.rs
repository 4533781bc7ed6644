//! CRD over HTTP: the CDS Hooks discovery document and the order hooks.
//!
//! A hook is answered for every order it carries: the member is found in the payer's
//! eligibility by the Coverage's member ids, what prefetch left out is read from the EHR's
//! FHIR server, and each order gets coverage information as a systemAction: a drug a policy
//! of the member's plan governs, by that policy; anything else, "no prior authorization rule
//! known". An order that does not read is left out; only JSON that is no hook request is 400.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use fhirbolt::model::r4::resources::Coverage;
use priorauth_core::Outcome;
use priorauth_fhir::crd::{self, Answer, HookRequest, OrderRead};
use priorauth_fhir::intake::{CaseBuilder, Resources};
use priorauth_fhir::questionnaire as dtr;
use priorauth_fhir::{Problem, operation_outcome};
use serde_json::{Value, json};

use super::{
    FhirError, FhirResult, caller, canonical, dated_on_receipt, governing, submitter, text,
    with_plan,
};
use crate::keys::Caller;
use crate::lifecycle::members::{self, Membership};
use crate::lifecycle::requests::{self as lifecycle_requests, SubmitBody, Urgency};
use crate::lifecycle::{self, sha256_hex};
use crate::web::{AppError, AppState};

#[utoipa::path(get, path = "/cds-services", operation_id = "cds_discovery", tag = "CDS Hooks", summary = "CDS Hooks discovery: the CRD services offered", security(()),
    responses((status = 200, description = "the services", body = crate::answers::CdsServices), (status = 431, description = "request headers too large")))]
pub(crate) async fn discovery() -> Json<Value> {
    Json(crd::discovery())
}

#[utoipa::path(post, path = "/cds-services/{id}", operation_id = "cds_hook", tag = "CDS Hooks", summary = "Da Vinci CRD: coverage requirements for each order (order-select, order-sign)", params(("id" = String, Path, description = "`order-select-crd` or `order-sign-crd`")), request_body = crate::answers::CdsHookRequest,
    responses((status = 200, description = "coverage information on each order, as systemActions", body = crate::answers::CdsHookResponse), (status = 400, description = "not a CDS Hooks request: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "no such service: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 412, description = "the member's coverage was neither prefetched nor readable from `fhirServer`: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn hook(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> FhirResult {
    let caller = caller(who)?;
    submitter(&caller)?;
    let Some((hook_name, _)) = crd::SERVICES.iter().find(|(_, service)| *service == id) else {
        return Err(FhirError::not_found("no such CDS service"));
    };
    let request: HookRequest = serde_json::from_str(text(&body)?).map_err(|e| {
        FhirError::structure(&[Problem::new("", format!("not a CDS Hooks request: {e}"))])
    })?;
    if request.hook != *hook_name {
        return Err(FhirError::structure(&[Problem::new(
            "hook",
            format!("this service answers `{hook_name}`"),
        )]));
    }
    let configuration = request
        .configuration()
        .map_err(|p| FhirError::structure(&[p]))?;
    let (map, engine) = (&state.fhir, &state.service.engine);

    let mut records = Resources::default();
    for value in request.prefetch.values().filter(|v| !v.is_null()) {
        crd::add_records(&mut records, value);
    }
    let mut orders =
        crd::orders(map, engine, &request, &records).map_err(|p| FhirError::structure(&[p]))?;
    if !configuration.coverage_info || orders.is_empty() {
        return Ok(Json(json!({"cards": [], "systemActions": []})).into_response());
    }
    let clinical = orders
        .iter()
        .any(|o| matches!(o.read, OrderRead::Drug { .. }));
    let queries = crd::queries(map, &request, crd::held(&request, &records), clinical);
    if !queries.is_empty() {
        read_chart(&state, &request, &queries, &mut records).await;
        orders =
            crd::orders(map, engine, &request, &records).map_err(|p| FhirError::structure(&[p]))?;
    }
    if !crd::held(&request, &records).coverage {
        return Err(FhirError(
            StatusCode::PRECONDITION_FAILED,
            operation_outcome(
                "incomplete",
                &[Problem::new(
                    "prefetch.coverage",
                    "the member's Coverage is needed: prefetch did not give it, and it could not be read from fhirServer with fhirAuthorization",
                )],
            ),
        ));
    }

    let today = lifecycle::today();
    let (coverage, membership) = membership(&state, &request, &records, &today).await?;
    let coverage_reference = coverage
        .and_then(|c| c.id.as_ref()?.value.clone())
        .map(|id| format!("Coverage/{id}"));
    let primary = *hook_name == "order-sign";
    let canonical = canonical(&headers);
    let patient = request.patient_id().unwrap_or_default();
    let mut actions = Vec::new();
    for order in orders {
        // One assertion id per order of a patient at a clinic, so a re-sign keeps it.
        let assertion_id = format!(
            "cra_{}",
            sha256_hex(&format!(
                "{}\n{patient}\n{}",
                caller.organization, order.reference
            ))
            .get(..32)
            .unwrap_or_default()
        );
        let answer = match (&membership, order.read) {
            (Membership::Unknown, _) => Answer::NoMember,
            (Membership::Inactive, _) => Answer::NoActiveCoverage,
            (Membership::Member { .. }, OrderRead::Other) => Answer::NoRule,
            (
                Membership::Member { plan, member },
                OrderRead::Drug {
                    mut case,
                    expedited,
                    lenient,
                    ..
                },
            ) => {
                super::claims::with_member(&mut case, member.as_deref());
                let order_case = OrderCase {
                    plan,
                    case,
                    expedited,
                    lenient,
                    assertion_id: &assertion_id,
                };
                governed(&state, &caller, &canonical, primary, order_case).await?
            }
        };
        let assertion = crd::Assertion {
            id: assertion_id,
            date: today.clone(),
            coverage: coverage_reference.clone(),
            answer,
            primary,
        };
        actions.push(crd::system_action(&order.resource, &assertion));
    }
    Ok(Json(json!({"cards": [], "systemActions": actions})).into_response())
}

/// The most Coverages of one hook tried against the eligibility: a patient has a handful at
/// most, and each try is a read of the store.
const COVERAGES_TRIED: usize = 8;

/// The Coverage this payer answers on, and what the eligibility says of its member: the first
/// of the patient's Coverages (see [`crd::coverages`]) whose member this payer covers on
/// `today`, else the first whose member it knows but does not cover, else the first one.
async fn membership<'r>(
    state: &AppState,
    request: &HookRequest,
    records: &'r Resources,
    today: &str,
) -> Result<(Option<&'r Coverage>, Membership), FhirError> {
    let (map, engine) = (&state.fhir, &state.service.engine);
    let rank = |m: &Membership| match m {
        Membership::Member { .. } => 0,
        Membership::Inactive => 1,
        Membership::Unknown => 2,
    };
    let mut best: Option<(&Coverage, Membership)> = None;
    for coverage in crd::coverages(request, records)
        .into_iter()
        .take(COVERAGES_TRIED)
    {
        let mut builder = CaseBuilder::new(map, engine);
        builder.coverage(coverage, records);
        let membership = members::find(
            &state.service,
            &builder.member_ids,
            builder.plan.as_deref(),
            &builder.payer_ids,
            today,
        )
        .await
        .map_err(|e| FhirError::from(AppError::from(e)))?;
        if best
            .as_ref()
            .is_none_or(|(_, b)| rank(&membership) < rank(b))
        {
            best = Some((coverage, membership));
        }
        if matches!(best, Some((_, Membership::Member { .. }))) {
            break;
        }
    }
    Ok(match best {
        Some((coverage, membership)) => (Some(coverage), membership),
        None => (None, Membership::Unknown),
    })
}

/// A drug order of a member whose plan is known.
struct OrderCase<'a> {
    plan: &'a str,
    case: Value,
    expedited: bool,
    lenient: bool,
    assertion_id: &'a str,
}

/// The answer for a drug order: by the plan's policy for the drug, if it has one. When the
/// facts already meet the policy (and the order read strictly), the authorization is issued
/// now, stored like any request, and its number travels with the order; a re-sign of the
/// same order with the same facts gets the same authorization.
async fn governed(
    state: &AppState,
    caller: &Caller,
    canonical: &dtr::Canonical,
    primary: bool,
    order: OrderCase<'_>,
) -> Result<Answer, FhirError> {
    let Some((policy_index, policy)) = governing(state, order.plan, &order.case) else {
        return Ok(Answer::NoRule);
    };
    let case = dated_on_receipt(with_plan(state, order.plan, order.case));
    let mut outcome = dtr::next_keys(&state.service.engine, policy_index, &case)
        .map_err(|e| FhirError::from(AppError::from(lifecycle::case_invalid(e))))?
        .outcome;
    let version = state
        .service
        .engine
        .policies
        .get(policy_index)
        .map(|p| p.version.as_str())
        .unwrap_or_default();
    let questionnaire = Some(format!("{}|{version}", canonical.questionnaire(&policy)));
    // Kept under the assertion id, which the DTR client sends as `context` with the coverage:
    // its form, filled in from what was read here.
    lifecycle::assertions::record(
        &state.service,
        caller,
        order.assertion_id,
        order.plan,
        &policy,
        &case,
    )
    .await?;
    if outcome == Outcome::Approve && order.lenient {
        outcome = Outcome::Review;
    }
    let mut satisfied_pa_id = None;
    if outcome == Outcome::Approve && primary {
        let body = SubmitBody {
            plan: order.plan.to_string(),
            case,
            urgency: if order.expedited {
                Urgency::Expedited
            } else {
                Urgency::Standard
            },
            renews: None,
        };
        let key = format!(
            "crd:{}",
            sha256_hex(&format!(
                "{}\n{}",
                order.assertion_id,
                serde_json::to_string(&body).unwrap_or_default()
            ))
            .get(..40)
            .unwrap_or_default()
        );
        let (_, response) =
            lifecycle_requests::submit(&state.service, caller, body, Some(key), None).await?;
        satisfied_pa_id = response["authorization"]["number"]
            .as_str()
            .map(str::to_string);
    }
    if satisfied_pa_id.is_none() && outcome == Outcome::Approve {
        outcome = Outcome::Review;
    }
    Ok(Answer::Governed {
        outcome,
        satisfied_pa_id,
        questionnaire,
    })
}

/// Reads each query from the EHR's FHIR server into `records`. A query that fails leaves its
/// records out; whether that matters is the caller's to say (the coverage does). What failed
/// is logged by kind only: never an address, a token or a record.
async fn read_chart(
    state: &AppState,
    request: &HookRequest,
    queries: &[String],
    records: &mut Resources,
) {
    let (Some(base), Some(authorization)) = (&request.fhir_server, &request.fhir_authorization)
    else {
        return;
    };
    let reads = queries
        .iter()
        .map(|query| state.chart.read(base, &authorization.access_token, query));
    let answers = futures_util::future::join_all(reads).await;
    for (query, answer) in queries.iter().zip(answers) {
        match answer {
            Ok(value) => {
                crd::add_records(records, &value);
            }
            Err(why) => {
                let kind = query.split(['/', '?']).next().unwrap_or_default();
                eprintln!("CRD: {kind} could not be read from fhirServer: {}", why.0);
            }
        }
    }
}
