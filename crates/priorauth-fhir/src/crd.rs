//! CRD over CDS Hooks 2.0: the discovery document, a hook request's orders read as cases, and
//! the answer: a systemAction that adds `ext-coverage-information` to each order the plan's
//! policies govern (the guide's only channel for coverage information), plus an info card.

// FHIR JSON is read and written with serde_json's `value["key"]` indexing: a read of a
// missing key is `Null` (never a panic), and writes go only into objects built here or
// already read as that resource type.
#![allow(clippy::indexing_slicing)]

use fhirbolt::model::r4::Resource;
use priorauth_core::{Engine, Outcome};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};

use crate::intake::{CaseBuilder, Resources};
use crate::map::Map;
use crate::{CRD, Problem};

const COVERAGE_INFORMATION: &str =
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information";
/// Codes of coverage-assertion reasons (CRD 2.0.1).
const REASONS: &str = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp";

/// The hooks priorauth answers: the primary order-sign and the secondary order-select.
pub const SERVICES: [(&str, &str); 2] = [
    ("order-sign", "order-sign-crd"),
    ("order-select", "order-select-crd"),
];

/// The discovery document (`GET /cds-services`).
pub fn discovery(map: &Map) -> Value {
    let observation_codes: Vec<String> = map
        .observations
        .iter()
        .flat_map(|o| o.loinc.iter().map(|c| format!("http://loinc.org|{c}")))
        .collect();
    let prefetch = json!({
        "patient": "Patient/{{context.patientId}}",
        "coverage": "Coverage?patient={{context.patientId}}&status=active",
        "conditions": "Condition?patient={{context.patientId}}&clinical-status=active",
        "observations": format!("Observation?patient={{{{context.patientId}}}}&code={}", observation_codes.join(",")),
        "practitionerRoles": "PractitionerRole?practitioner={{userPractitionerId}}",
    });
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|(hook, id)| {
            json!({
                "hook": hook,
                "id": id,
                "title": format!("priorauth coverage requirements ({hook})"),
                "description": "Whether the member's plan needs prior authorization for a drug order, and whether the order's facts already meet the plan's policy; the questions still needed come through DTR.",
                "prefetch": prefetch,
                "extension": {"davinci-crd.configuration-options": []},
            })
        })
        .collect();
    json!({"services": services})
}

/// A CDS Hooks request (only the parts CRD reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub hook: String,
    pub hook_instance: String,
    #[serde(default)]
    pub context: JsonMap<String, Value>,
    #[serde(default)]
    pub prefetch: JsonMap<String, Value>,
}

/// An order of the hook and what the records say about it.
#[derive(Debug)]
pub struct OrderCase {
    /// The order as the EHR sent it; the systemAction returns it with the extension added.
    pub order: Value,
    pub case: Value,
    pub plan: Option<String>,
    /// The `Coverage/id` the assertion is about.
    pub coverage: Option<String>,
    pub expedited: bool,
}

fn read(value: &Value, path: &str) -> Result<Resource, Problem> {
    crate::parse(&value.to_string()).map_err(|p| Problem::new(path, p.message))
}

/// The MedicationRequests of a hook (for order-select, only the selected ones) as cases.
pub fn order_cases(
    map: &Map,
    engine: &Engine,
    request: &HookRequest,
) -> Result<Vec<OrderCase>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut records = Resources::default();
    for (key, value) in &request.prefetch {
        if value.is_null() {
            continue;
        }
        match read(value, &format!("prefetch.{key}")) {
            Ok(resource) => records.add(None, resource),
            Err(problem) => problems.push(problem),
        }
    }
    let orders = match request.context.get("draftOrders") {
        Some(bundle) => match read(bundle, "context.draftOrders") {
            Ok(Resource::Bundle(bundle)) => bundle,
            Ok(_) => {
                return Err(vec![Problem::new(
                    "context.draftOrders",
                    "must be a Bundle",
                )]);
            }
            Err(problem) => return Err(vec![problem]),
        },
        None => {
            return Err(vec![Problem::new(
                "context.draftOrders",
                "is required for an order hook",
            )]);
        }
    };
    let selections: Option<Vec<&str>> = request
        .context
        .get("selections")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect());
    if !problems.is_empty() {
        return Err(problems);
    }
    let raw_orders = request
        .context
        .get("draftOrders")
        .and_then(|b| b["entry"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut cases = Vec::new();
    for (index, entry) in orders.entry.iter().enumerate() {
        let Some(Resource::MedicationRequest(order)) = &entry.resource else {
            continue;
        };
        let id = order
            .id
            .as_ref()
            .and_then(|i| i.value.clone())
            .unwrap_or_default();
        if selections
            .as_ref()
            .is_some_and(|s| !s.contains(&format!("MedicationRequest/{id}").as_str()))
        {
            continue;
        }
        let mut builder = CaseBuilder::new(map, engine);
        builder.records(&records);
        builder.medication_request(order, &records);
        if !builder.is_set("request.drug") {
            continue; // no policy here governs this drug
        }
        let coverage = records.iter().find_map(|r| match r {
            Resource::Coverage(c) => {
                c.id.as_ref()
                    .and_then(|i| i.value.clone())
                    .map(|id| format!("Coverage/{id}"))
            }
            _ => None,
        });
        cases.push(OrderCase {
            order: raw_orders
                .get(index)
                .map(|e| e["resource"].clone())
                .unwrap_or(Value::Null),
            case: builder.case(),
            plan: builder.plan.clone(),
            coverage,
            expedited: builder.expedited,
        });
    }
    Ok(cases)
}

/// What the payer asserts about one order.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub id: String,
    pub date: String,
    pub coverage: Option<String>,
    /// `None`: no coverage found for the member.
    pub outcome: Option<Outcome>,
    /// The authorization number when the facts already meet the policy.
    pub satisfied_pa_id: Option<String>,
    /// Canonical of the DTR Questionnaire that collects what is needed.
    pub questionnaire: Option<String>,
    /// `order-sign` (primary) may say documentation is needed; `order-select` may not.
    pub primary: bool,
}

/// The coverage-information extension of an assertion.
pub fn coverage_information(assertion: &Assertion) -> Value {
    let code = |url: &str, code: &str| json!({"url": url, "valueCode": code});
    let mut parts = vec![
        json!({"url": "coverage", "valueReference": {"reference": assertion.coverage.clone().unwrap_or_else(|| "Coverage/unknown".into())}}),
    ];
    match (assertion.outcome, &assertion.satisfied_pa_id) {
        (None, _) => {
            parts.push(code("covered", "not-covered"));
            parts.push(json!({"url": "reason", "valueCodeableConcept": {"coding": [{"system": REASONS, "code": "coverage-not-found"}], "text": "No active coverage with a plan priorauth knows"}}));
        }
        (Some(Outcome::Approve), Some(number)) => {
            parts.push(code("covered", "covered"));
            parts.push(code("pa-needed", "satisfied"));
            parts.push(json!({"url": "satisfied-pa-id", "valueString": number}));
        }
        _ => {
            parts.push(code("covered", "covered"));
            parts.push(code("pa-needed", "auth-needed"));
            if assertion.primary {
                parts.push(code("doc-needed", "clinical"));
                if let Some(questionnaire) = &assertion.questionnaire {
                    parts.push(json!({"url": "questionnaire", "valueCanonical": questionnaire}));
                }
            }
        }
    }
    parts.push(json!({"url": "date", "valueDate": assertion.date}));
    parts.push(json!({"url": "coverage-assertion-id", "valueString": assertion.id}));
    // The sub-extensions in the order the guide's profile lists them.
    let order = [
        "coverage",
        "covered",
        "pa-needed",
        "doc-needed",
        "reason",
        "questionnaire",
        "date",
        "coverage-assertion-id",
        "satisfied-pa-id",
    ];
    parts.sort_by_key(|p| {
        order
            .iter()
            .position(|o| p["url"] == *o)
            .unwrap_or(order.len())
    });
    json!({"url": COVERAGE_INFORMATION, "extension": parts})
}

/// The systemAction that returns the order with its coverage information.
pub fn system_action(order: &Value, assertion: &Assertion) -> Value {
    let mut order = order.clone();
    if let Some(object) = order.as_object_mut() {
        let extensions = object.entry("extension").or_insert_with(|| json!([]));
        if let Some(list) = extensions.as_array_mut() {
            // An earlier assertion of this payer is replaced, others are kept.
            list.retain(|e| e["url"] != COVERAGE_INFORMATION);
            list.push(coverage_information(assertion));
        }
    }
    json!({"type": "update", "description": "Add coverage information", "resource": order})
}

/// An information card summarizing the assertion for the clinician.
pub fn card(assertion: &Assertion, drug: &str, plan: &str) -> Value {
    let summary = match (assertion.outcome, &assertion.satisfied_pa_id) {
        (None, _) => "No coverage found for this member".to_string(),
        (Some(Outcome::Approve), Some(number)) => {
            format!("Prior authorization {number} issued for {drug}")
        }
        _ if assertion.primary => {
            format!("Prior authorization needed for {drug}: complete the plan's questions")
        }
        _ => format!("Prior authorization needed for {drug}"),
    };
    json!({
        "uuid": assertion.id,
        "summary": summary.chars().take(139).collect::<String>(),
        "indicator": "info",
        "source": {"label": format!("priorauth ({plan})"), "topic": {"system": format!("{CRD}/CodeSystem/temp"), "code": "coverage-info"}},
    })
}
