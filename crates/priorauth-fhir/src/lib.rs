//! priorauth over HL7 Da Vinci (FHIR R4 4.0.1): CRD coverage information for CDS Hooks, DTR
//! Questionnaires (whole and adaptive), and PAS request and response Bundles.
//!
//! FHIR input is read through fhirbolt's typed R4 model; output is written as FHIR JSON in
//! the shape of the implementation guides' examples, and the tests read every kind of output
//! back through the same strict model and through an independent validator. The service
//! (`priorauth-service`) serves these over HTTP and keeps the records.

pub mod crd;
pub mod intake;
pub mod map;
pub mod pas;
pub mod questionnaire;

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Value, json};

/// The PAS implementation guide's canonical base.
pub const PAS: &str = "http://hl7.org/fhir/us/davinci-pas";
/// The CRD implementation guide's canonical base.
pub const CRD: &str = "http://hl7.org/fhir/us/davinci-crd";
/// The DTR implementation guide's canonical base.
pub const DTR: &str = "http://hl7.org/fhir/us/davinci-dtr";
/// HCPCS as PAS binds it.
pub const HCPCS: &str = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets";

/// One problem with FHIR input, at a FHIRPath-like location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Reads a FHIR resource as R4. Unknown elements are refused (strict), so that a misspelt or
/// misplaced element is an error naming where it is rather than a fact silently lost.
///
/// Always read as the generic `Resource`: fhirbolt 0.4 reads a `Bundle`'s `fullUrl` only that
/// way (its typed `Bundle` reader refuses every fullUrl).
///
/// fhirbolt 0.4 panics on an empty JSON array (which FHIR forbids anyway): those are refused
/// first, naming the element, and any other panic of the reader is caught and answered as
/// invalid input.
pub fn parse(json: &str) -> Result<fhirbolt::model::r4::Resource, Problem> {
    parse_in(json, DeserializationMode::Strict)
}

/// Reads a FHIR resource as R4, leaving out what does not read (unknown elements, an element
/// of the wrong shape where the reader can skip it). Only for advice that decides nothing: a
/// CDS Hooks draft order an EHR sends as it is being written (`crd`), never for a request
/// that could be approved.
pub fn parse_lax(json: &str) -> Result<fhirbolt::model::r4::Resource, Problem> {
    parse_in(json, DeserializationMode::Lax)
}

fn parse_in(
    json: &str,
    mode: DeserializationMode,
) -> Result<fhirbolt::model::r4::Resource, Problem> {
    parse_read(json, &read_json(json)?, mode)
}

/// A body's JSON, or the problem that it is not JSON.
pub(crate) fn read_json(json: &str) -> Result<Value, Problem> {
    serde_json::from_str(json).map_err(|e| Problem::new("", format!("not JSON: {e}")))
}

fn parse_read(
    json: &str,
    value: &Value,
    mode: DeserializationMode,
) -> Result<fhirbolt::model::r4::Resource, Problem> {
    // Found first, its path spelt only then: spelling every element's path cost as much
    // as reading the JSON.
    if has_empty_array(value) {
        let root = value
            .get("resourceType")
            .unwrap_or(&Value::Null)
            .as_str()
            .unwrap_or("Resource")
            .to_string();
        if let Some(path) = empty_array(value, root) {
            return Err(Problem::new(
                path,
                "an empty array: FHIR leaves out an element that has no value",
            ));
        }
    }
    let read = std::panic::catch_unwind(|| {
        fhirbolt::json::from_str(json, Some(DeserializationConfig { mode }))
    });
    match read {
        Ok(resource) => {
            resource.map_err(|e| Problem::new("", format!("not a valid FHIR R4 resource: {e}")))
        }
        Err(_) => Err(Problem::new("", "not a valid FHIR R4 resource")),
    }
}

fn has_empty_array(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty() || items.iter().any(has_empty_array),
        Value::Object(fields) => fields.values().any(has_empty_array),
        _ => false,
    }
}

/// The path of the first empty array in a JSON value.
fn empty_array(value: &Value, path: String) -> Option<String> {
    match value {
        Value::Array(items) if items.is_empty() => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| empty_array(item, format!("{path}[{i}]"))),
        Value::Object(fields) => fields
            .iter()
            .find_map(|(name, field)| empty_array(field, format!("{path}.{name}"))),
        _ => None,
    }
}

/// Reads a resource of one type (`pick` takes it out of the generic resource).
pub fn parse_as<T>(
    json: &str,
    type_name: &str,
    pick: impl FnOnce(fhirbolt::model::r4::Resource) -> Option<T>,
) -> Result<T, Problem> {
    picked(parse(json)?, type_name, pick)
}

/// Reads a resource of one type as [`parse_as`] does, from its text and the JSON its caller
/// already read from that same text (a `$submit` body is read as JSON first, to find its
/// Bundle).
pub fn parse_json_as<T>(
    json: &str,
    value: &Value,
    type_name: &str,
    pick: impl FnOnce(fhirbolt::model::r4::Resource) -> Option<T>,
) -> Result<T, Problem> {
    picked(
        parse_read(json, value, DeserializationMode::Strict)?,
        type_name,
        pick,
    )
}

fn picked<T>(
    resource: fhirbolt::model::r4::Resource,
    type_name: &str,
    pick: impl FnOnce(fhirbolt::model::r4::Resource) -> Option<T>,
) -> Result<T, Problem> {
    pick(resource)
        .ok_or_else(|| Problem::new("resourceType", format!("a {type_name} is expected here")))
}

/// An OperationOutcome of errors (`code` from the FHIR issue-type value set).
pub fn operation_outcome(code: &str, problems: &[Problem]) -> Value {
    let issues: Vec<Value> = problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                json!({"severity": "error", "code": code, "diagnostics": p.message})
            } else {
                json!({"severity": "error", "code": code, "diagnostics": p.message, "expression": [p.path]})
            }
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}
