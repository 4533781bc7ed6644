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
pub fn parse<T>(json: &str) -> Result<T, Problem>
where
    T: for<'a> fhirbolt::serde::DeserializeResource<'a>,
{
    fhirbolt::json::from_str(
        json,
        Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        }),
    )
    .map_err(|e| Problem::new("", format!("not a valid FHIR R4 resource: {e}")))
}

/// An OperationOutcome of errors (`code` from the FHIR issue-type value set).
pub fn operation_outcome(code: &str, problems: &[Problem]) -> Value {
    let issues: Vec<Value> = problems
        .iter()
        .map(|p| {
            let mut issue = json!({"severity": "error", "code": code, "diagnostics": p.message});
            if !p.path.is_empty() {
                issue["expression"] = json!([p.path]);
            }
            issue
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}
