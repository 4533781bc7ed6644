//! The mapping tables (`config/fhir.toml`): which codes give which case facts.

use std::collections::BTreeMap;

use priorauth_core::{Engine, case, policy};
use serde::Deserialize;

/// The bundled tables.
pub const BUNDLED: &str = include_str!("../../../config/fhir.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Map {
    pub systems: Systems,
    #[serde(rename = "drug")]
    pub drugs: Vec<DrugCodes>,
    pub icd10: Vec<Icd10>,
    #[serde(rename = "observation")]
    pub observations: Vec<ObservationMap>,
    pub specialty: BTreeMap<String, String>,
    pub dose_units: BTreeMap<String, String>,
    pub certification_type: BTreeMap<String, String>,
    pub coverage: CoverageMap,
    /// X12 886 review decision reason codes (HCR02; PAS `reviewAction.reasonCode`) of a
    /// denial, by `policy/criterion` the denial cites, else by criterion id, else `default`.
    #[serde(default)]
    pub x12_denial_reasons: BTreeMap<String, String>,
    /// HCPCS code of each catalog drug, from the engine's catalog.
    #[serde(skip)]
    pub hcpcs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systems {
    pub icd10: Vec<String>,
    pub loinc: Vec<String>,
    pub snomed: Vec<String>,
    pub rxnorm: Vec<String>,
    pub hcpcs: Vec<String>,
    pub ndc: Vec<String>,
    pub nucc: Vec<String>,
    pub ucum: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugCodes {
    pub drug: String,
    #[serde(default)]
    pub rxnorm: Vec<String>,
    #[serde(default)]
    pub ndc: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icd10 {
    pub code: String,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub disease_status: Option<String>,
    pub why: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationMap {
    pub loinc: Vec<String>,
    pub fact: String,
    /// UCUM unit to the fact's unit (a factor).
    #[serde(default)]
    pub units: BTreeMap<String, f64>,
    /// Coded answer (LOINC answer list or SNOMED) to the fact's value.
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
    /// `diagnosis.mrd_method` stated by the code itself.
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageMap {
    pub plan_class: String,
}

/// A table that names something the engine does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the FHIR map (config/fhir.toml or PRIORAUTH_FHIR_MAP): {0}")]
pub struct MapError(pub String);

impl Map {
    /// The X12 886 reason code of a denial citing `criterion` of `policy`, if the payer gave
    /// one ([`Map::x12_denial_reasons`]); an empty `criterion` takes `default` only.
    pub fn denial_reason(&self, policy: &str, criterion: &str) -> Option<&str> {
        let reasons = &self.x12_denial_reasons;
        let own = (!criterion.is_empty()).then(|| {
            reasons
                .get(&format!("{policy}/{criterion}"))
                .or_else(|| reasons.get(criterion))
        });
        own.flatten()
            .or_else(|| reasons.get("default"))
            .map(String::as_str)
    }

    /// Reads and checks the tables against the engine: drugs, enum values and fact keys
    /// must be the case format's.
    pub fn load(text: &str, engine: &Engine) -> Result<Map, MapError> {
        let mut map: Map = toml::from_str(text).map_err(|e| MapError(e.to_string()))?;
        let check = |what: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(MapError(format!(
                    "{what} `{value}` is not one of {}",
                    allowed.join(", ")
                )))
            }
        };
        for (key, code) in &map.x12_denial_reasons {
            if code.is_empty()
                || code.len() > 10
                || !code.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(MapError(format!(
                    "x12_denial_reasons `{key}`: `{code}` is not an X12 886 code (1 to 10 letters and digits)"
                )));
            }
            // A misspelt key would never be looked up, and its denials would quietly carry
            // `default` (or no code): every key must name what a denial can cite.
            let cites = |policy: &policy::Policy, criterion: &str| {
                policy.criteria.iter().any(|c| c.id == criterion)
            };
            let known = key == "default"
                || match key.split_once('/') {
                    Some((policy, criterion)) => engine
                        .policies
                        .iter()
                        .any(|p| p.id == policy && cites(p, criterion)),
                    None => engine.policies.iter().any(|p| cites(p, key)),
                };
            if !known {
                return Err(MapError(format!(
                    "x12_denial_reasons `{key}`: not `default`, `policy/criterion` or a criterion id of a loaded policy"
                )));
            }
        }
        let drugs: Vec<&str> = engine.drug_names().iter().map(String::as_str).collect();
        for drug in &map.drugs {
            check("drug", &drug.drug, &drugs)?;
        }
        for icd in &map.icd10 {
            if let Some(c) = &icd.condition {
                check("condition", c, case::Condition::VARIANTS)?;
            }
            if let Some(s) = &icd.disease_status {
                check("disease_status", s, case::DiseaseStatus::VARIANTS)?;
            }
        }
        for observation in &map.observations {
            // A number declared in data (facts.toml) may be read from an Observation too, by
            // its units (`units`), as the case format's weight is.
            let declared_number =
                priorauth_core::declared::find(&engine.declared, &observation.fact)
                    .and_then(|id| id.declaration())
                    .is_some_and(|d| {
                        matches!(
                            d.value_type,
                            priorauth_core::declared::DeclaredType::Number { .. }
                        )
                    });
            if declared_number && observation.answers.is_empty() && !observation.units.is_empty() {
                continue;
            }
            check(
                "observation fact",
                &observation.fact,
                &[
                    "patient.weight_kg",
                    "patient.height_cm",
                    "diagnosis.ph_status",
                    "diagnosis.mrd_percent",
                ],
            )?;
            for value in observation.answers.values() {
                check("answer", value, case::PhStatus::VARIANTS)?;
            }
            if let Some(method) = &observation.method {
                check("method", method, case::MrdMethod::VARIANTS)?;
            }
        }
        for value in map.specialty.values() {
            check("specialty", value, case::Specialty::VARIANTS)?;
        }
        for value in map.dose_units.values() {
            check("dose unit", value, case::DoseUnit::VARIANTS)?;
        }
        for value in map.certification_type.values() {
            check("request kind", value, case::RequestKind::VARIANTS)?;
        }
        map.hcpcs = engine
            .catalog
            .drugs
            .iter()
            .map(|d| (d.hcpcs.clone(), d.id.clone()))
            .collect();
        Ok(map)
    }

    /// The catalog drug an order code names.
    pub fn drug_of(&self, system: &str, code: &str) -> Option<&str> {
        let is = |systems: &[String]| systems.iter().any(|s| s == system);
        if is(&self.systems.hcpcs) {
            return self
                .hcpcs
                .iter()
                .find(|(hcpcs, _)| hcpcs.eq_ignore_ascii_case(code))
                .map(|(_, drug)| drug.as_str());
        }
        let digits = |c: &str| c.chars().filter(char::is_ascii_digit).collect::<String>();
        self.drugs
            .iter()
            .find(|d| {
                (is(&self.systems.rxnorm) && d.rxnorm.iter().any(|c| c == code))
                    || (is(&self.systems.ndc) && d.ndc.iter().any(|c| digits(c) == digits(code)))
            })
            .map(|d| d.drug.as_str())
    }

    /// The HCPCS code of a catalog drug.
    pub fn hcpcs_of(&self, drug: &str) -> Option<&str> {
        self.hcpcs
            .iter()
            .find(|(_, d)| d == drug)
            .map(|(hcpcs, _)| hcpcs.as_str())
    }

    /// The entries an ICD-10-CM code matches, broadest first.
    pub fn icd10_of(&self, code: &str) -> impl Iterator<Item = &Icd10> {
        let plain = |c: &str| c.replace('.', "").to_ascii_uppercase();
        let code = plain(code);
        self.icd10
            .iter()
            .filter(move |entry| code.starts_with(&plain(&entry.code)))
    }

    pub fn observation_of(&self, system: &str, code: &str) -> Option<&ObservationMap> {
        if !self.systems.loinc.iter().any(|s| s == system) {
            return None;
        }
        self.observations
            .iter()
            .find(|o| o.loinc.iter().any(|c| c == code))
    }

    /// The prescriber specialty of a NUCC code: a listed one, else `other`.
    pub fn specialty_of(&self, system: &str, code: &str) -> Option<&str> {
        if !self.systems.nucc.iter().any(|s| s == system) {
            return None;
        }
        Some(self.specialty.get(code).map_or("other", String::as_str))
    }
}
