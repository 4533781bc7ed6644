//! DTR over HTTP: a policy's Questionnaire (whole or adaptive), `$questionnaire-package` for
//! a coverage and an order (or the Questionnaire CRD named, or the request a PAS Task names
//! as its context), and the adaptive form's `$next-question`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::Parameters;
use priorauth_fhir::Problem;
use priorauth_fhir::intake::{CaseBuilder, Resources};
use priorauth_fhir::questionnaire as dtr;
use serde_json::{Value, json};

use super::{
    FhirError, FhirResult, caller, canonical, fhir_json, governing, parse_error, parsed, text,
    uuid, with_plan,
};
use crate::keys::Caller;
use crate::lifecycle::members::{self, Membership};
use crate::lifecycle::{self, now_ms, timestamp};
use crate::web::{AppError, AppState};

#[utoipa::path(get, path = "/fhir/Questionnaire/{id}", operation_id = "dtr_read_questionnaire", tag = "FHIR", summary = "Da Vinci DTR: a policy's Questionnaire (`-adaptive` for the adaptive form)", params(("id" = String, Path)),
    responses((status = 200, description = "the Questionnaire", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 404, description = "no such Questionnaire: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn read_questionnaire(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> FhirResult {
    caller(who)?;
    let canonical = canonical(&headers);
    let adaptive = id.ends_with("-adaptive");
    let policy = dtr::policy_of(&id)
        .and_then(|p| state.service.engine.policy_index(p))
        .and_then(|i| state.service.engine.policies.get(i))
        .ok_or_else(|| FhirError::not_found("no such Questionnaire"))?;
    let questionnaire = if adaptive {
        dtr::adaptive_questionnaire(policy, &canonical)
    } else {
        dtr::questionnaire(&state.service.engine, policy, &canonical, &state.fhir)
    };
    Ok(fhir_json(StatusCode::OK, questionnaire))
}

/// The resources of a Parameters' named parameters.
fn parameter_resources(parameters: &Parameters, name: &str) -> Vec<Resource> {
    parameters
        .parameter
        .iter()
        .filter(|p| p.name.value.as_deref() == Some(name))
        .filter_map(|p| p.resource.clone())
        .collect()
}

fn parameter_strings(parameters: &Value, name: &str) -> Vec<String> {
    parameters["parameter"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|p| p["name"] == name)
                .filter_map(|p| {
                    p["valueCanonical"]
                        .as_str()
                        .or(p["valueString"].as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[utoipa::path(post, path = "/fhir/Questionnaire/$questionnaire-package", operation_id = "dtr_questionnaire_package", tag = "FHIR", summary = "Da Vinci DTR $questionnaire-package: the Questionnaires for a coverage and an order, a Questionnaire or a context", request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a Parameters resource (coverage, and order, questionnaire or context: the request a PAS Task names)"),
    responses((status = 200, description = "a Parameters resource holding each package Bundle, and an `outcome` OperationOutcome warning naming each Questionnaire asked for that is not found; a `context` alone naming no request of the caller's organization: no Bundle, and the warning naming it", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn questionnaire_package(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    let caller = caller(who)?;
    let (parameters, raw) = parsed(body.len(), move || {
        let text = text(&body)?;
        let parameters: Parameters = priorauth_fhir::parse_as(text, "Parameters", |r| match r {
            Resource::Parameters(p) => Some(*p),
            _ => None,
        })
        .map_err(parse_error)?;
        let raw: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        Ok::<_, FhirError>((parameters, raw))
    })
    .await??;
    let coverage = parameter_resources(&parameters, "coverage");
    let orders = parameter_resources(&parameters, "order");
    let asked_for = parameter_strings(&raw, "questionnaire");
    let contexts = parameter_strings(&raw, "context");
    let changed_since = changed_since(&raw)?;
    let Some(Resource::Coverage(member_coverage)) = coverage.first() else {
        return Err(FhirError::invalid(&[Problem::new(
            "Parameters.parameter",
            "give the member's `coverage`, and an `order`, the `questionnaire` CRD named or a `context`",
        )]));
    };
    // The OperationDefinition: the coverage and at least one of questionnaire canonicals, a
    // CRD/PAS context id, or orders.
    if orders.is_empty() && asked_for.is_empty() && contexts.is_empty() {
        return Err(FhirError::invalid(&[Problem::new(
            "Parameters.parameter",
            "give an `order`, the `questionnaire` CRD named, or a `context` (the request a PAS Task names)",
        )]));
    }
    let mut resources = Resources::default();
    for resource in coverage.iter().chain(orders.iter()).cloned() {
        resources.add(None, resource);
    }
    let mut builder = CaseBuilder::new(&state.fhir, &state.service.engine);
    builder.records(&resources);
    for order in &orders {
        if let Resource::MedicationRequest(order) = order {
            builder.medication_request(order, &resources);
        }
    }
    let membership = members::find(
        &state.service,
        &builder.member_ids,
        builder.plan.as_deref(),
        &builder.payer_ids,
        &lifecycle::today(),
    )
    .await
    .map_err(|e| FhirError::from(AppError::from(e)))?;
    let Membership::Member { plan, member } = membership else {
        return Err(FhirError::invalid(&[Problem::new(
            "Coverage",
            "no member of this payer's plans has this coverage's member id on this day",
        )]));
    };
    let mut case = with_plan(&state, &plan, builder.case());
    // A context alone names a request of the caller's organization for this member's plan
    // (PAS's Task gives the pended request's id so), or a coverage assertion CRD gave it for
    // an order: its policy's form, pre-populated from the request's case as it now stands or
    // the case CRD read. Anything else (another organization's request or assertion, an
    // unknown id) is nothing found, answered alike.
    // With the `questionnaire` too, the form is not pre-filled from a PAS request the context
    // names. Its stored case holds what the Claim's structure said (a one-day
    // `servicedPeriod` is `request.units_period_days` 1); pre-filled, that comes back from a
    // DTR client as an answer, which overrides the Claim, so the clinician's own answer (42
    // days) is never asked for: an EHR following the guides (tests/ehr) then had its update
    // pended instead of approved. A CRD coverage assertion does pre-fill it: that is DTR's
    // call after CRD (coverage, the Questionnaire CRD named, the assertion as context), and
    // the assertion's case is what CRD read from the order and the chart, which is what the
    // client's own population reads too.
    let mut from_context = None;
    if orders.is_empty() && asked_for.is_empty() {
        for context in &contexts {
            // A request (PAS's Task), else a coverage assertion CRD gave for an order.
            let found =
                match lifecycle::requests::for_questionnaire(&state.service, &caller, context)
                    .await
                    .map_err(|e| FhirError::from(AppError::from(e)))?
                {
                    Some((request, stored)) => Some((request.plan, request.policy, stored, true)),
                    None => lifecycle::assertions::find(&state.service, &caller, context)
                        .await
                        .map_err(|e| FhirError::from(AppError::from(e)))?
                        .map(|(plan, policy, stored)| (plan, policy, stored, false)),
                };
            let Some((request_plan, policy, stored, pas_request)) = found else {
                continue;
            };
            let index = (request_plan == plan)
                .then(|| state.service.engine.policy_index(&policy))
                .flatten();
            if let (Some(index), Ok(stored)) = (index, serde_json::from_str::<Value>(&stored)) {
                // Another member's request or assertion is nothing found, as another
                // organization's: its facts never fill this member's form.
                if another_member(&stored, member.as_deref(), &builder.member_ids) {
                    continue;
                }
                case = with_plan(&state, &plan, stored);
                from_context = Some((index, context.clone(), pas_request));
                break;
            }
        }
        if from_context.is_none() {
            return Ok(fhir_json(
                StatusCode::OK,
                json!({"resourceType": "Parameters", "parameter": [{"name": "outcome", "resource": context_not_found(&contexts)}]}),
            ));
        }
    } else if orders.is_empty() {
        for context in &contexts {
            let found = lifecycle::assertions::find(&state.service, &caller, context)
                .await
                .map_err(|e| FhirError::from(AppError::from(e)))?;
            // Only an assertion for this member, this plan and the Questionnaire asked for:
            // another patient's chart never fills this one's form, and an assertion of
            // another drug does not choose the form in place of the one asked for.
            let Some((assertion_plan, policy, stored)) = found else {
                continue;
            };
            let asked = asked_for
                .iter()
                .any(|q| dtr::policy_of(q) == Some(policy.as_str()));
            let stored = serde_json::from_str::<Value>(&stored)
                .ok()
                .filter(|stored| {
                    assertion_plan == plan
                        && asked
                        && same_member(stored, member.as_deref(), &builder.member_ids)
                });
            if let Some(stored) = stored {
                case = with_plan(&state, &plan, stored);
                break;
            }
        }
    }
    // The policy: the plan's for the order's drug, else the one of the Questionnaire CRD named.
    let from_order = governing(&state, &plan, &case).map(|(index, _)| index);
    // A Questionnaire asked for is known when it names a policy of the member's plan.
    let known = |canonical: &str| {
        dtr::policy_of(canonical)
            .filter(|id| {
                state
                    .service
                    .plans
                    .get(&plan)
                    .is_some_and(|p| p.policies.values().any(|v| v == id))
            })
            .and_then(|id| state.service.engine.policy_index(id))
    };
    let from_questionnaire = asked_for.iter().find_map(|q| known(q));
    // DTR: "If any of the explicitly requested questionnaires cannot be found, a warning
    // SHALL be provided in the 'outcome'".
    let not_found: Vec<&String> = asked_for.iter().filter(|q| known(q).is_none()).collect();
    let policy_index = from_order
        .or(from_questionnaire)
        .or(from_context.as_ref().map(|(index, _, _)| *index))
        .ok_or_else(|| {
            FhirError::invalid(&[Problem::new(
                if orders.is_empty() {
                    "questionnaire"
                } else {
                    "MedicationRequest.medicationCodeableConcept"
                },
                format!("plan `{plan}` has no policy for this drug or Questionnaire"),
            )])
        })?;
    let policy = state
        .service
        .engine
        .policies
        .get(policy_index)
        .ok_or_else(|| FhirError::not_found("policy"))?;
    // DTR `changedsince`: "only Questionnaire bundles whose Questionnaire or associated
    // artifacts have changed since the specified timestamp. If there are no changed artifacts
    // the operation will simply return a 200 Ok". The form is made from the policy's version
    // and this service's code: it last changed when that version took effect or when this
    // process started, whichever is later (a start may bring new code, so a package is never
    // withheld that might have changed).
    if let Some(since) = changed_since {
        let effective = policy
            .effective
            .and_then(|d| d.to_string().parse::<jiff::civil::Date>().ok())
            .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.into()).ok())
            .map_or(0, |t| t.as_millisecond());
        if effective.max(*SERVING_SINCE) <= since {
            let mut parameters = Vec::new();
            if !not_found.is_empty() {
                parameters
                    .push(json!({"name": "outcome", "resource": not_found_outcome(&not_found)}));
            }
            let mut answer = json!({"resourceType": "Parameters"});
            if !parameters.is_empty() {
                answer["parameter"] = Value::Array(parameters);
            }
            return Ok(fhir_json(StatusCode::OK, answer));
        }
    }
    let canonical = canonical(&headers);
    let reference = |resource: &Resource| {
        let id = resource.id()?.value.clone()?;
        Some(json!({"reference": format!("{}/{id}", priorauth_fhir::intake::type_name(resource))}))
    };
    let mut references: Vec<Value> = orders.iter().filter_map(reference).collect();
    references.extend(coverage.first().and_then(reference));
    // A call after CRD names the coverage assertion instead of the order; one from a PAS
    // Task names the pended request, under the Task's identifier system.
    for context in contexts {
        if from_context
            .as_ref()
            .is_some_and(|(_, request, pas_request)| *pas_request && *request == context)
        {
            references.push(json!({"identifier": {"system": format!("{}/information-request", canonical.base), "value": context}, "display": "PAS request pended for information"}));
        } else {
            references.push(json!({"identifier": {"system": "http://hl7.org/fhir/us/davinci-crd/coverage-assertion-id", "value": context}, "display": "CRD coverage assertion"}));
        }
    }
    let draft_context = dtr::DraftContext {
        subject: member_coverage
            .beneficiary
            .reference
            .as_ref()
            .and_then(|r| r.value.clone()),
        authored: timestamp(now_ms()),
        references,
    };
    let adaptive = asked_for.iter().any(|q| q.contains("-adaptive"));
    let (questionnaire, response) = if adaptive {
        let questionnaire = dtr::adaptive_questionnaire(policy, &canonical);
        let response = dtr::adaptive_start(
            &state.service.engine,
            policy,
            &case,
            &canonical,
            &state.fhir,
            &questionnaire,
            &draft_context,
        );
        (questionnaire, response)
    } else {
        let questionnaire =
            dtr::questionnaire(&state.service.engine, policy, &canonical, &state.fhir);
        let response = dtr::draft_response(
            &state.service.engine,
            policy,
            &case,
            &canonical,
            &state.fhir,
            &draft_context,
        );
        (questionnaire, response)
    };
    let bundle = json!({
        "resourceType": "Bundle",
        "meta": {"profile": ["http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/DTR-QPackageBundle"]},
        "type": "collection",
        "timestamp": timestamp(now_ms()),
        "entry": [
            {"fullUrl": format!("{}/Questionnaire/{}", canonical.base, questionnaire["id"].as_str().unwrap_or_default()), "resource": questionnaire},
            {"fullUrl": format!("urn:uuid:{}", uuid()), "resource": response},
        ],
    });
    let mut parameters = vec![json!({"name": "PackageBundle", "resource": bundle})];
    if !not_found.is_empty() {
        parameters.push(json!({"name": "outcome", "resource": not_found_outcome(&not_found)}));
    }
    Ok(fhir_json(
        StatusCode::OK,
        json!({"resourceType": "Parameters", "meta": {"profile": ["http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-qpackage-output-parameters"]}, "parameter": parameters}),
    ))
}

/// When this process began serving (the router is built): the latest its code can have
/// changed a form.
pub(super) static SERVING_SINCE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(now_ms);

/// The `changedsince` parameter (an instant; the OperationDefinition says dateTime, so a date
/// or a time without seconds is read too), in milliseconds; a value that is neither is an
/// error naming it, never ignored.
fn changed_since(parameters: &Value) -> Result<Option<i64>, FhirError> {
    let Some(parameter) = parameters["parameter"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == "changedsince"))
    else {
        return Ok(None);
    };
    let text = ["valueInstant", "valueDateTime", "valueDate", "valueString"]
        .iter()
        .find_map(|k| parameter[*k].as_str())
        .unwrap_or_default();
    let parsed = text
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            text.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d.into()).ok())
        })
        .or_else(|| {
            text.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|d| jiff::tz::TimeZone::UTC.to_timestamp(d).ok())
        });
    match parsed {
        Some(t) => Ok(Some(t.as_millisecond())),
        None => Err(FhirError::invalid(&[Problem::new(
            "Parameters.parameter.where(name = 'changedsince')",
            format!("`{text}` is not an instant (e.g. 2025-01-31T12:00:00Z)"),
        )])),
    }
}

/// Whether a stored case is of the member a call's Coverage names: its member id is the one
/// the payer's eligibility found, or one the Coverage carries.
fn same_member(stored: &Value, member: Option<&str>, member_ids: &[String]) -> bool {
    stored_member(stored).is_some_and(|id| member == Some(id) || member_ids.iter().any(|m| m == id))
}

/// Whether a stored case names a member other than the one a call's Coverage names (a case
/// or a call naming none is not known to be another's: a request pended before eligibility
/// was loaded may name none).
fn another_member(stored: &Value, member: Option<&str>, member_ids: &[String]) -> bool {
    let named = member.is_some() || !member_ids.is_empty();
    named && stored_member(stored).is_some() && !same_member(stored, member, member_ids)
}

fn stored_member(stored: &Value) -> Option<&str> {
    stored.pointer("/patient/member_id").and_then(Value::as_str)
}

/// The `outcome` of a package for Questionnaires asked for that this service does not have
/// for the member's plan: a warning naming each canonical (the package holds what was found).
fn not_found_outcome(canonicals: &[&String]) -> Value {
    let issues: Vec<Value> = canonicals
        .iter()
        .map(|canonical| {
            json!({
                "severity": "warning",
                "code": "not-found",
                "diagnostics": format!("no Questionnaire `{canonical}` for this member's plan: it is not in the package"),
                "expression": ["Parameters.parameter.where(name = 'questionnaire')"],
            })
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// The answer of a package asked for by a `context` alone that names nothing this caller may
/// see: no Bundle (the OperationDefinition returns 0..*) and a warning naming the context as
/// given, the same whether no request has that id or another organization's has.
fn context_not_found(contexts: &[String]) -> Value {
    let issues: Vec<Value> = contexts
        .iter()
        .map(|context| {
            json!({
                "severity": "warning",
                "code": "not-found",
                "diagnostics": format!("no Questionnaire for context `{context}`: it names no request of this organization for this member's plan; send the `questionnaire` CRD named, or the `order`"),
                "expression": ["Parameters.parameter.where(name = 'context')"],
            })
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

#[utoipa::path(post, path = "/fhir/Questionnaire/$next-question", operation_id = "dtr_next_question", tag = "FHIR", summary = "Da Vinci DTR adaptive $next-question", request_body(content = crate::answers::FhirResource, content_type = "application/fhir+json", description = "a QuestionnaireResponse of the adaptive form, or Parameters holding one"),
    responses((status = 200, description = "the QuestionnaireResponse with the next questions, or completed", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 401, description = "no API key, or not a valid one: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json"), (status = 422, description = "not a valid resource, naming the element: an OperationOutcome", body = crate::answers::FhirResource, content_type = "application/fhir+json")))]
pub(crate) async fn next_question(
    State(state): State<AppState>,
    who: Result<Caller, AppError>,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    caller(who)?;
    let (mut response, typed) = parsed(body.len(), move || {
        let raw: Value = serde_json::from_str(text(&body)?)
            .map_err(|e| FhirError::structure(&[Problem::new("", e.to_string())]))?;
        // The response itself, or Parameters holding it.
        let response = if raw["resourceType"] == "Parameters" {
            raw["parameter"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "questionnaire-response"))
                .map(|p| p["resource"].clone())
                .unwrap_or(Value::Null)
        } else {
            raw
        };
        let typed =
            priorauth_fhir::parse_as(
                &response.to_string(),
                "QuestionnaireResponse",
                |r| match r {
                    Resource::QuestionnaireResponse(q) => Some(*q),
                    _ => None,
                },
            )
            .map_err(parse_error)?;
        Ok::<_, FhirError>((response, typed))
    })
    .await??;
    let canonical_url = response["contained"][0]["url"]
        .as_str()
        .or(response["questionnaire"].as_str())
        .unwrap_or_default()
        .to_string();
    let policy_index = dtr::policy_of(&canonical_url)
        .and_then(|p| state.service.engine.policy_index(p))
        .ok_or_else(|| {
            FhirError::invalid(&[Problem::new(
                "QuestionnaireResponse.questionnaire",
                "not a Questionnaire of this service",
            )])
        })?;
    let policy = state
        .service
        .engine
        .policies
        .get(policy_index)
        .ok_or_else(|| FhirError::not_found("policy"))?;
    let mut builder = CaseBuilder::new(&state.fhir, &state.service.engine);
    builder.answers(&typed);
    if !builder.problems.is_empty() {
        return Err(FhirError::invalid(&builder.problems));
    }
    let case = builder.case();
    let step = dtr::next_keys(&state.service.engine, policy_index, &case)
        .map_err(|e| FhirError::from(AppError::from(lifecycle::case_invalid(e))))?;
    let canonical = canonical(&headers);
    let complete = dtr::adaptive_step(
        &state.service.engine,
        policy,
        &mut response,
        &step,
        &canonical,
        &state.fhir,
    );
    response["status"] = json!(if complete { "completed" } else { "in-progress" });
    Ok(fhir_json(StatusCode::OK, response))
}
