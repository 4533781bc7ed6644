//! CRD over CDS Hooks 2.0: the discovery document, a hook request's records and orders read
//! one by one (an order that does not read is left out, not the hook), and the answer: a
//! systemAction that adds `ext-coverage-information` to every order (the guide's only channel
//! for coverage information; no card repeats it).

// FHIR JSON is read and written with serde_json's `value["key"]` indexing: a read of a
// missing key is `Null` (never a panic), and writes go only into objects built here or
// already read as that resource type.
#![allow(clippy::indexing_slicing)]

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::Coverage;
use priorauth_core::{Engine, Outcome};
use serde::Deserialize;
use serde_json::{Map as JsonMap, Value, json};

use crate::Problem;
use crate::intake::{CaseBuilder, Resources};
use crate::map::Map;

const COVERAGE_INFORMATION: &str =
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information";
/// CRD 2.2's codes of coverage-assertion reasons; 2.0.1 has none for a member not found.
const REASONS_2_2: &str =
    "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes";

/// The hooks priorauth answers: the primary order-sign and the secondary order-select.
pub const SERVICES: [(&str, &str); 2] = [
    ("order-sign", "order-sign-crd"),
    ("order-select", "order-select-crd"),
];

/// The discovery document (`GET /cds-services`). Prefetch asks only for what every order
/// needs (the patient, the coverage, the prescriber's roles); a drug's conditions and
/// laboratory results are queried from `fhirServer` only when an order is for a drug a policy
/// governs, so an EHR is not made to search a leukemia panel for every order it signs.
pub fn discovery() -> Value {
    let prefetch = json!({
        "patient": "Patient/{{context.patientId}}",
        "coverage": "Coverage?patient={{context.patientId}}&status=active",
        "practitionerRoles": "PractitionerRole?practitioner={{userPractitionerId}}",
    });
    let options = json!([{
        "code": "coverage-info",
        "type": "boolean",
        "name": "Coverage information",
        "description": "Return coverage information (whether prior authorization is needed, and the DTR questionnaire) on each order as a systemAction. Set to false to receive nothing for this call.",
        "default": true,
    }]);
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|(hook, id)| {
            json!({
                "hook": hook,
                "id": id,
                "title": format!("priorauth coverage requirements ({hook})"),
                "description": "Whether the member's plan needs prior authorization for each order, and whether a drug order's facts already meet the plan's policy; the questions still needed come through DTR.",
                "prefetch": prefetch,
                "extension": {"davinci-crd.configuration-options": options},
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
    /// The EHR's FHIR base, which the service may query for what prefetch left out.
    #[serde(default)]
    pub fhir_server: Option<String>,
    #[serde(default)]
    pub fhir_authorization: Option<FhirAuthorization>,
    #[serde(default)]
    pub context: JsonMap<String, Value>,
    #[serde(default)]
    pub prefetch: JsonMap<String, Value>,
    /// CRD's request extensions (`davinci-crd.configuration`).
    #[serde(default)]
    pub extension: JsonMap<String, Value>,
}

/// The bearer token an EHR hands the service for its FHIR server. Its `Debug` never shows the
/// token.
#[derive(Clone, Deserialize)]
pub struct FhirAuthorization {
    pub access_token: String,
    #[serde(default)]
    pub token_type: String,
}

impl std::fmt::Debug for FhirAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FhirAuthorization({} token)", self.token_type)
    }
}

/// The options a client may set per call (`extension."davinci-crd.configuration"`), as the
/// discovery document offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configuration {
    /// `coverage-info`: return coverage information (the systemAction) at all.
    pub coverage_info: bool,
}

impl HookRequest {
    /// The call's configuration; an option the service does not offer is ignored (CDS Hooks
    /// clients send one configuration to many services), a known one of the wrong type is
    /// refused, naming it.
    pub fn configuration(&self) -> Result<Configuration, Problem> {
        let mut configuration = Configuration {
            coverage_info: true,
        };
        let Some(options) = self.extension.get("davinci-crd.configuration") else {
            return Ok(configuration);
        };
        let Some(options) = options.as_object() else {
            return Err(Problem::new(
                "extension.davinci-crd.configuration",
                "must be an object of option codes and values",
            ));
        };
        if let Some(value) = options.get("coverage-info") {
            configuration.coverage_info = value.as_bool().ok_or_else(|| {
                Problem::new(
                    "extension.davinci-crd.configuration.coverage-info",
                    "must be true or false",
                )
            })?;
        }
        Ok(configuration)
    }

    /// `context.patientId`, when it is a FHIR id (so that it can go into a query).
    pub fn patient_id(&self) -> Option<&str> {
        self.context
            .get("patientId")
            .and_then(Value::as_str)
            .filter(|id| is_fhir_id(id))
    }

    /// The practitioner of `context.userId` (`Practitioner/{id}`), when there is one.
    pub fn practitioner_id(&self) -> Option<&str> {
        self.context
            .get("userId")
            .and_then(Value::as_str)
            .and_then(|u| u.strip_prefix("Practitioner/"))
            .filter(|id| is_fhir_id(id))
    }
}

/// FHIR's id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Adds the resources of one prefetch or query answer to `records`, each read on its own: a
/// resource that does not read is left out, not the whole answer. Returns how many were left
/// out.
pub fn add_records(records: &mut Resources, value: &Value) -> usize {
    if value["resourceType"] == "Bundle" {
        let mut skipped = 0;
        for entry in value["entry"].as_array().into_iter().flatten() {
            let resource = &entry["resource"];
            if resource.is_null() {
                continue;
            }
            match read(resource) {
                Ok(resource) => {
                    records.add(entry["fullUrl"].as_str().map(str::to_string), resource)
                }
                Err(_) => skipped += 1,
            }
        }
        return skipped;
    }
    match read(value) {
        Ok(resource) => {
            records.add(None, resource);
            0
        }
        Err(_) => 1,
    }
}

fn read(value: &Value) -> Result<Resource, Problem> {
    crate::parse(&value.to_string())
}

/// Which kinds of record a hook's resources hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    pub patient: bool,
    pub coverage: bool,
    pub conditions: bool,
    pub observations: bool,
    pub practitioner_roles: bool,
}

/// What `records` holds, and what a prefetch key the EHR answered (even with an empty Bundle)
/// says it looked for: an answered search is not asked again.
pub fn held(request: &HookRequest, records: &Resources) -> Held {
    let mut held = Held::default();
    for resource in records.iter() {
        match resource {
            Resource::Patient(_) => held.patient = true,
            Resource::Coverage(_) => held.coverage = true,
            Resource::Condition(_) => held.conditions = true,
            Resource::Observation(_) => held.observations = true,
            Resource::PractitionerRole(_) => held.practitioner_roles = true,
            _ => {}
        }
    }
    for (key, value) in &request.prefetch {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "coverage" => held.coverage = true,
            "conditions" => held.conditions = true,
            "observations" => held.observations = true,
            "practitionerRoles" => held.practitioner_roles = true,
            _ => {}
        }
    }
    held
}

/// The queries (relative to `fhirServer`) for what the records lack: the patient and the
/// coverage always; conditions, observations and the prescriber's roles only when an order
/// is for a drug a policy may govern (`clinical`).
pub fn queries(map: &Map, request: &HookRequest, held: Held, clinical: bool) -> Vec<String> {
    let Some(patient) = request.patient_id() else {
        return Vec::new();
    };
    let mut queries = Vec::new();
    if !held.patient {
        queries.push(format!("Patient/{patient}"));
    }
    if !held.coverage {
        queries.push(format!("Coverage?patient={patient}&status=active"));
    }
    if clinical {
        if !held.conditions {
            queries.push(format!(
                "Condition?patient={patient}&clinical-status=active"
            ));
        }
        if !held.observations {
            queries.push(format!(
                "Observation?patient={patient}&code={}",
                observation_codes(map).join(",")
            ));
        }
        if let (false, Some(practitioner)) = (held.practitioner_roles, request.practitioner_id()) {
            queries.push(format!("PractitionerRole?practitioner={practitioner}"));
        }
    }
    queries
}

fn observation_codes(map: &Map) -> Vec<String> {
    map.observations
        .iter()
        .flat_map(|o| o.loinc.iter().map(|c| format!("http://loinc.org|{c}")))
        .collect()
}

/// An order of the hook, and what it says.
#[derive(Debug)]
pub struct Order {
    /// The order as the EHR sent it; the systemAction returns it with the extension added.
    pub resource: Value,
    /// `MedicationRequest/{id}`.
    pub reference: String,
    pub read: OrderRead,
}

#[derive(Debug)]
pub enum OrderRead {
    /// A MedicationRequest for a drug a policy may govern, as a case.
    Drug {
        case: Value,
        plan: Option<String>,
        member_ids: Vec<String>,
        expedited: bool,
        /// Read only leniently (some element did not read): the order is answered, but never
        /// with an authorization.
        lenient: bool,
    },
    /// Any other order: another drug, or another kind of order.
    Other,
}

/// The orders of a hook (for order-select, only the selected ones). An order that does not
/// read even leniently, or has no type and id, is left out; the others are answered.
pub fn orders(
    map: &Map,
    engine: &Engine,
    request: &HookRequest,
    records: &Resources,
) -> Result<Vec<Order>, Problem> {
    let bundle = match request.context.get("draftOrders") {
        Some(bundle) if bundle["resourceType"] == "Bundle" => bundle,
        Some(_) => return Err(Problem::new("context.draftOrders", "must be a Bundle")),
        None => {
            return Err(Problem::new(
                "context.draftOrders",
                "is required for an order hook",
            ));
        }
    };
    let selections: Option<Vec<&str>> = request
        .context
        .get("selections")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect());
    let mut orders = Vec::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        let resource = &entry["resource"];
        let (Some(kind), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str())
        else {
            continue;
        };
        let reference = format!("{kind}/{id}");
        if selections
            .as_ref()
            .is_some_and(|s| !s.contains(&reference.as_str()))
        {
            continue;
        }
        let text = resource.to_string();
        let (parsed, lenient) = match crate::parse(&text) {
            Ok(parsed) => (parsed, false),
            Err(_) => match crate::parse_lax(&text) {
                Ok(parsed) => (parsed, true),
                Err(_) => continue,
            },
        };
        let read = match parsed {
            Resource::MedicationRequest(order) => {
                let mut builder = CaseBuilder::new(map, engine);
                builder.records(records);
                builder.medication_request(&order, records);
                if builder.is_set("request.drug") {
                    OrderRead::Drug {
                        case: builder.case(),
                        plan: builder.plan.clone(),
                        member_ids: builder.member_ids.clone(),
                        expedited: builder.expedited,
                        lenient,
                    }
                } else {
                    OrderRead::Other
                }
            }
            _ => OrderRead::Other,
        };
        orders.push(Order {
            resource: resource.clone(),
            reference,
            read,
        });
    }
    Ok(orders)
}

/// The Coverages among the records, in the order the payer tries them: active before
/// inactive, and otherwise as the EHR sent them. When any names the hook's patient as its
/// beneficiary, only those: another person's Coverage never answers for this patient. A
/// patient may hold several active Coverages (another payer's primary, this payer's
/// secondary), so the caller takes the first one this payer knows, not merely the first one.
pub fn coverages<'r>(request: &HookRequest, records: &'r Resources) -> Vec<&'r Coverage> {
    let patient = request.patient_id();
    let mut found: Vec<&Coverage> = records
        .iter()
        .filter_map(|r| match r {
            Resource::Coverage(c) => Some(c.as_ref()),
            _ => None,
        })
        .collect();
    let mine = |c: &Coverage| {
        let beneficiary = c
            .beneficiary
            .reference
            .as_ref()
            .and_then(|r| r.value.as_deref())
            .unwrap_or_default();
        patient.is_some_and(|p| beneficiary.ends_with(&format!("Patient/{p}")))
    };
    if found.iter().any(|c| mine(c)) {
        found.retain(|c| mine(c));
    }
    found.sort_by_key(|c| c.status.value.as_deref() != Some("active"));
    found
}

/// What the payer can say about one order.
#[derive(Debug, Clone)]
pub enum Answer {
    /// No member of the payer's has the Coverage's member ids.
    NoMember,
    /// The member's enrolment does not cover the order's date.
    NoActiveCoverage,
    /// No rule of the member's plan governs what is ordered.
    NoRule,
    /// A policy of the member's plan governs the drug.
    Governed {
        outcome: Outcome,
        /// The authorization number when the facts already meet the policy.
        satisfied_pa_id: Option<String>,
        /// Canonical of the DTR Questionnaire that collects what is needed.
        questionnaire: Option<String>,
    },
}

/// What the payer asserts about one order.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub id: String,
    pub date: String,
    /// `Coverage/{id}` of the EHR's Coverage, when there is one.
    pub coverage: Option<String>,
    pub answer: Answer,
    /// `order-sign` (primary) may say documentation is needed; `order-select` may not.
    pub primary: bool,
}

/// The coverage-information extension of an assertion.
pub fn coverage_information(assertion: &Assertion) -> Value {
    let code = |url: &str, code: &str| json!({"url": url, "valueCode": code});
    // A reason no 2.0.1 code names: the 2.2 code, with the words (the binding is extensible).
    let reason = |code: &str, text: &str| json!({"url": "reason", "valueCodeableConcept": {"coding": [{"system": REASONS_2_2, "code": code}], "text": text}});
    let coverage = match &assertion.coverage {
        Some(reference) => json!({"reference": reference}),
        None => json!({"display": "no Coverage of the member's was found"}),
    };
    let mut parts = vec![json!({"url": "coverage", "valueReference": coverage})];
    match &assertion.answer {
        Answer::NoMember => {
            parts.push(code("covered", "not-covered"));
            parts.push(reason(
                "no-member-found",
                "No member of the plan has the member id on this coverage",
            ));
        }
        Answer::NoActiveCoverage => {
            parts.push(code("covered", "not-covered"));
            parts.push(reason(
                "no-active-coverage",
                "The member's enrolment does not cover the date of this order",
            ));
        }
        Answer::NoRule => {
            parts.push(code("covered", "conditional"));
            parts.push(code("pa-needed", "conditional"));
            parts.push(json!({"url": "info-needed", "valueCode": "OTH"}));
            parts.push(json!({"url": "reason", "valueCodeableConcept": {"text": "No prior authorization rule known: priorauth holds no policy of this plan for what is ordered; ask the plan"}}));
        }
        Answer::Governed {
            outcome: Outcome::Approve,
            satisfied_pa_id: Some(number),
            ..
        } => {
            parts.push(code("covered", "covered"));
            parts.push(code("pa-needed", "satisfied"));
            parts.push(json!({"url": "satisfied-pa-id", "valueString": number}));
        }
        Answer::Governed { questionnaire, .. } => {
            parts.push(code("covered", "covered"));
            parts.push(code("pa-needed", "auth-needed"));
            if assertion.primary {
                parts.push(code("doc-needed", "clinical"));
                if let Some(questionnaire) = questionnaire {
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
        "info-needed",
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
