//! The case: one prior-authorization request in the format of `spec/case-format.md`.
//!
//! Parsing is strict: an unknown key, a wrong type, a bad enum value or an impossible value
//! (a negative weight, a birth date after the request date) is an error that names the dotted
//! key. A key that is absent or `null` is an unknown fact, never an error.

use std::fmt;

use serde::Deserialize;

use crate::date::Date;

/// A validated case. Every fact is optional: `None` is "unknown".
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub request: Option<Request>,
    #[serde(default)]
    pub patient: Option<Patient>,
    #[serde(default)]
    pub diagnosis: Option<Diagnosis>,
    #[serde(default)]
    pub history: Option<History>,
    #[serde(default)]
    pub prescriber: Option<Prescriber>,
    /// Facts declared in data by the loaded policies (`facts.toml`), by name: checked against
    /// their declarations when the engine parses the case ([`crate::Engine::parse_case`]).
    /// Each value is JSON as given (its declaration says which type is right; `null` is
    /// unknown): read as `serde_json::Value`, which keeps numbers whatever serde_json's
    /// features, where an untagged enum would not.
    #[serde(default)]
    pub facts: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Validated against the drug catalog, so that a drug can be added as data.
    #[serde(default)]
    pub drug: Option<String>,
    /// The drug's position in the catalog, found when the case is validated.
    #[serde(skip)]
    pub drug_index: Option<u8>,
    #[serde(default)]
    pub kind: Option<RequestKind>,
    #[serde(default)]
    pub date: Option<Date>,
    #[serde(default)]
    pub line_of_business: Option<LineOfBusiness>,
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub regimen: Option<Regimen>,
    #[serde(default)]
    pub dose: Option<Dose>,
    /// Days of a cycle on which the drug is given: each day of Blincyto's continuous
    /// infusion, each of Besponsa's dose days. Read it with [`Request::dose_days`].
    #[serde(default)]
    pub dose_days: Option<u32>,
    /// Deprecated name of `dose_days` (docs/case-format.md): the same for every drug.
    #[serde(default)]
    pub infusion_days: Option<u32>,
    #[serde(default)]
    pub cycle_length_days: Option<u32>,
    #[serde(default)]
    pub cycles: Option<u32>,
    #[serde(default)]
    pub first_cycle: Option<u32>,
    #[serde(default)]
    pub hcpcs: Option<String>,
    #[serde(default)]
    pub units: Option<u32>,
    #[serde(default)]
    pub units_period_days: Option<u32>,
    #[serde(default)]
    pub drug_source: Option<DrugSource>,
    #[serde(default)]
    pub setting: Option<Setting>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dose {
    pub value: f64,
    pub unit: DoseUnit,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// The member's id on the plan's card. Identity, not a clinical fact: no policy reads it.
    #[serde(default)]
    pub member_id: Option<String>,
    /// The member's name as the clinic records it. Identity: no policy reads it.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub birth_date: Option<Date>,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub height_cm: Option<f64>,
    #[serde(default)]
    pub new_to_plan_on_treatment: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    #[serde(default)]
    pub icd10: Option<Vec<String>>,
    #[serde(default)]
    pub condition: Option<Condition>,
    #[serde(default)]
    pub lineage: Option<Lineage>,
    #[serde(default)]
    pub cd19_positive: Option<bool>,
    #[serde(default)]
    pub cd22_positive: Option<bool>,
    #[serde(default)]
    pub ph_status: Option<PhStatus>,
    #[serde(default)]
    pub disease_status: Option<DiseaseStatus>,
    #[serde(default)]
    pub remission_number: Option<u32>,
    #[serde(default)]
    pub complete_response_to_induction: Option<bool>,
    #[serde(default)]
    pub mrd_status: Option<MrdStatus>,
    #[serde(default)]
    pub mrd_percent: Option<f64>,
    #[serde(default)]
    pub mrd_method: Option<MrdMethod>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct History {
    #[serde(default)]
    pub induction_regimen: Option<InductionRegimen>,
    #[serde(default)]
    pub prior_systemic_therapies: Option<u32>,
    #[serde(default)]
    pub tkis: Option<Vec<TkiTrial>>,
    /// Cycles of the requested drug already given in this course.
    #[serde(default)]
    pub cycles_given: Option<u32>,
    /// Of those, continued-therapy cycles (Blincyto's cycles 6 to 9 in relapsed or
    /// refractory disease).
    #[serde(default)]
    pub continued_cycles_given: Option<u32>,
    /// Deprecated name of `cycles_given`, read for a Blincyto request or one that names no
    /// drug ([`History::cycles_given_for`]); on another drug's request it is that drug's
    /// history, not the requested one's, and is not read.
    #[serde(default)]
    pub blinatumomab_cycles: Option<u32>,
    /// Deprecated name of `continued_cycles_given`, read as `blinatumomab_cycles` is.
    #[serde(default)]
    pub blinatumomab_continued_cycles: Option<u32>,
    #[serde(default)]
    pub progression_on_blinatumomab: Option<bool>,
    #[serde(default)]
    pub hypersensitivity: Option<bool>,
    #[serde(default)]
    pub live_vaccine_within_2_weeks: Option<bool>,
    #[serde(default)]
    pub live_vaccine_planned: Option<bool>,
    #[serde(default)]
    pub unacceptable_toxicity: Option<bool>,
    #[serde(default)]
    pub response: Option<Response>,
    #[serde(default)]
    pub medications_added: Option<bool>,
    #[serde(default)]
    pub authorizations: Option<Vec<PastAuthorization>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TkiTrial {
    pub drug: Tki,
    pub outcome: TkiOutcome,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PastAuthorization {
    pub start: Date,
    /// Inclusive.
    pub end: Date,
    #[serde(default)]
    pub renewal: Option<bool>,
    /// Cycles the authorization covered, when the records say: they place the course's
    /// next cycle (docs/case-format.md, Course).
    #[serde(default)]
    pub cycles: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prescriber {
    /// The prescriber's name. Identity: no policy reads it.
    #[serde(default)]
    pub name: Option<String>,
    /// The prescriber's National Provider Identifier, its check digit verified. Identity: no
    /// policy reads it.
    #[serde(default)]
    pub npi: Option<String>,
    #[serde(default)]
    pub specialty: Option<Specialty>,
    #[serde(default)]
    pub consulting_specialty: Option<Specialty>,
}

impl Request {
    /// Days of a cycle on which the drug is given: `dose_days`, or its deprecated name
    /// `infusion_days`.
    pub fn dose_days(&self) -> Option<u32> {
        self.dose_days.or(self.infusion_days)
    }
}

impl History {
    /// Cycles of the requested drug (`drug`, `None` when the request names none) already
    /// given in this course: `cycles_given`, or its deprecated name `blinatumomab_cycles`
    /// on a Blincyto request or one that names no drug.
    pub fn cycles_given_for(&self, drug: Option<&str>) -> Option<u32> {
        self.cycles_given
            .or(self.blinatumomab_cycles.filter(|_| old_names_apply(drug)))
    }

    /// Of those, continued-therapy cycles, as [`History::cycles_given_for`].
    pub fn continued_cycles_given_for(&self, drug: Option<&str>) -> Option<u32> {
        self.continued_cycles_given.or(self
            .blinatumomab_continued_cycles
            .filter(|_| old_names_apply(drug)))
    }
}

/// The deprecated `history.blinatumomab_*` keys describe the requested drug's course only when
/// it is Blincyto (or the request names no drug, as cases written before other drugs did).
fn old_names_apply(drug: Option<&str>) -> bool {
    drug.is_none_or(|d| d == "blinatumomab")
}

/// Declares a closed set of case values: the serde names are the spec's, and `VARIANTS`
/// lists them in declaration order, which is the order the fact registry indexes them by.
macro_rules! case_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }
        impl $name {
            pub const VARIANTS: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            /// Position in `VARIANTS`.
            pub fn index(self) -> u8 {
                self as u8
            }
        }
    };
}

case_enum!(RequestKind { Initial = "initial", Renewal = "renewal" });
case_enum!(LineOfBusiness {
    Commercial = "commercial",
    Exchange = "exchange",
    Medicaid = "medicaid",
    Chip = "chip",
    MedicareAdvantage = "medicare_advantage",
});
case_enum!(Phase { Induction = "induction", Consolidation = "consolidation", Maintenance = "maintenance" });
case_enum!(Regimen {
    SingleAgent = "single_agent",
    InotuzumabMiniHyperCvd = "inotuzumab_mini_hypercvd",
    Interfant = "interfant",
    TkiCombination = "tki_combination",
    ChemotherapyCombination = "chemotherapy_combination",
    OtherCombination = "other_combination",
});
case_enum!(DoseUnit { McgPerDay = "mcg/day", McgPerM2PerDay = "mcg/m2/day", MgPerM2 = "mg/m2" });
case_enum!(
    /// What the course of therapy treats, whatever the disease's status today: a patient in a
    /// second remission after salvage cycles is still treated for relapsed/refractory disease.
    Setting {
        Frontline = "frontline",
        RelapsedRefractory = "relapsed_refractory",
    }
);
case_enum!(DrugSource { Plan = "plan", Samples = "samples", ManufacturerAssistance = "manufacturer_assistance" });
case_enum!(Condition {
    AcuteLymphoblasticLeukemia = "acute_lymphoblastic_leukemia",
    LymphoblasticLymphoma = "lymphoblastic_lymphoma",
    OtherCancer = "other_cancer",
    NonCancer = "non_cancer",
});
case_enum!(Lineage { BCellPrecursor = "b_cell_precursor", TCell = "t_cell", MixedPhenotype = "mixed_phenotype" });
case_enum!(PhStatus { Positive = "positive", Negative = "negative", PhLike = "ph_like" });
case_enum!(DiseaseStatus {
    NewlyDiagnosed = "newly_diagnosed",
    CompleteRemission = "complete_remission",
    Relapsed = "relapsed",
    Refractory = "refractory",
});
case_enum!(MrdStatus { Positive = "positive", Negative = "negative" });
case_enum!(MrdMethod { FlowCytometry = "flow_cytometry", Pcr = "pcr", Ngs = "ngs" });
case_enum!(InductionRegimen {
    StandardChemotherapy = "standard_chemotherapy",
    InotuzumabMiniHyperCvd = "inotuzumab_mini_hypercvd",
    TkiBased = "tki_based",
    Other = "other",
});
case_enum!(
    /// Tyrosine kinase inhibitors of the case format. Their generations are in [`Tki::generation`].
    Tki {
        Imatinib = "imatinib",
        Dasatinib = "dasatinib",
        Nilotinib = "nilotinib",
        Bosutinib = "bosutinib",
        Ponatinib = "ponatinib",
        Asciminib = "asciminib",
        Olverembatinib = "olverembatinib",
    }
);
case_enum!(TkiOutcome {
    Relapsed = "relapsed",
    Refractory = "refractory",
    Intolerant = "intolerant",
    InadequateResponse = "inadequate_response",
    AdverseReaction = "adverse_reaction",
    Responding = "responding",
});
case_enum!(Response { Response = "response", Stable = "stable", Progression = "progression" });
case_enum!(Specialty {
    MedicalOncology = "medical_oncology",
    Hematology = "hematology",
    HematologyOncology = "hematology_oncology",
    PediatricHematologyOncology = "pediatric_hematology_oncology",
    Other = "other",
});

impl Tki {
    /// Generation of the inhibitor. Imatinib is the first; dasatinib, nilotinib and bosutinib
    /// the second; ponatinib and olverembatinib the third. Asciminib (an allosteric STAMP
    /// inhibitor, later than all of these) is counted as "second-generation or later", as the
    /// policies that speak of generations intend (reference/clinical.md, section C).
    pub fn generation(self) -> u8 {
        match self {
            Tki::Imatinib => 1,
            Tki::Dasatinib | Tki::Nilotinib | Tki::Bosutinib => 2,
            Tki::Ponatinib | Tki::Olverembatinib => 3,
            Tki::Asciminib => 4,
        }
    }
}

/// One problem with a case, tied to the dotted key it concerns (`patient.weight_kg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseProblem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for CaseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

/// A case that breaks the format. Lists every problem found, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid case: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CaseError {
    pub problems: Vec<CaseProblem>,
}

impl CaseError {
    fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        CaseError {
            problems: vec![CaseProblem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

// Bounds of plausible values. A value beyond them is a typing error or an attempt to make
// the arithmetic of cycles and units wrap, never a fact to decide on.
/// Days in one cycle (and infusion days, and the period units are given for): a year.
pub const MAX_CYCLE_DAYS: u32 = 366;
/// Cycles in one request: more than any label's whole course (Blincyto 9, Besponsa 6).
pub const MAX_CYCLES_REQUESTED: u32 = 24;
/// A cycle's number in a course, and cycles or lines of therapy already given.
pub const MAX_COURSE_CYCLES: u32 = 100;
/// Billable units in one request: a hundred times a Blincyto cycle's 980.
pub const MAX_UNITS: u32 = 100_000;
/// Earlier authorizations of one drug.
pub const MAX_PAST_AUTHORIZATIONS: usize = 100;
/// Complete remissions.
pub const MAX_REMISSIONS: u32 = 10;
/// Age on the request date.
pub const MAX_AGE_YEARS: i64 = 130;
/// Dates of a case: birth dates, request dates, authorizations.
pub const EARLIEST_DATE: Date = Date::from_ymd_unchecked(1900, 1, 1);
pub const LATEST_DATE: Date = Date::from_ymd_unchecked(2199, 12, 31);

/// The most days `request.date`, the clinical date of the facts, may be before the day the
/// payer received the request (issue 13: "`request.date` stays the clinical date of the facts
/// and must lie within a stated window before receipt"). 90 days: a decision rests on the
/// patient as the facts describe them on that date (disease status and remission, MRD,
/// weight and height that size the dose), and within a course they change from cycle to
/// cycle (Blincyto's cycles are 42 days, 84 in continued therapy), so facts older than a
/// continued-therapy cycle and its margin no longer describe the course's present; 90 days
/// is also `facts::COURSE_GAP_DAYS`, after which a course has ended, so older facts may be
/// those of a course that is over. 180 days would span two continued-therapy cycles and let
/// a date six months back make a patient six months younger at an age limit.
pub const REQUEST_DATE_MAX_DAYS_BEFORE_RECEIPT: i64 = 90;

/// The most days `request.date` may be after the day of receipt: 1, for a requester whose
/// calendar day is ahead of the payer's clock (UTC) in another time zone. Facts cannot be
/// dated on a day that has not come: a later date is a planned start of service, not the
/// date of the facts.
pub const REQUEST_DATE_MAX_DAYS_AFTER_RECEIPT: i64 = 1;

/// A case received by the payer on `received` (the service's clock, or `evaluate
/// --received`): its clinical date must lie within the stated window around receipt
/// ([`REQUEST_DATE_MAX_DAYS_BEFORE_RECEIPT`], [`REQUEST_DATE_MAX_DAYS_AFTER_RECEIPT`]).
/// Without `request.date` there is nothing to check (the engine asks for it when it matters).
pub fn check_received(case: &Case, received: Date) -> Result<(), CaseError> {
    let Some(date) = case.request.as_ref().and_then(|r| r.date) else {
        return Ok(());
    };
    let after = date.days_since(received);
    let message = if after > REQUEST_DATE_MAX_DAYS_AFTER_RECEIPT {
        format!(
            "{date} is {after} days after the request was received ({received}): the clinical date of the facts cannot be later than the day of receipt (1 day allowed for time zones); a planned start of service is not the date of the facts"
        )
    } else if -after > REQUEST_DATE_MAX_DAYS_BEFORE_RECEIPT {
        format!(
            "{date} is {} days before the request was received ({received}): the clinical date of the facts may be at most {REQUEST_DATE_MAX_DAYS_BEFORE_RECEIPT} days before receipt; send the current facts",
            -after
        )
    } else {
        return Ok(());
    };
    Err(CaseError::single("request.date", message))
}

/// Parses and validates a case. `known_drugs` are the drug names of the catalog.
pub fn parse_case(json: &str, known_drugs: &[impl AsRef<str>]) -> Result<Case, CaseError> {
    // The plain parse is the fast path; on failure, parse again to learn the key's path.
    let mut case: Case = match serde_json::from_str(json) {
        // A case is a JSON object; serde would also read a struct from an array of its fields.
        Ok(_) if !json.trim_start().starts_with('{') => {
            return Err(CaseError::single("", "a case is a JSON object"));
        }
        Ok(case) => case,
        Err(_) => return Err(locate_syntax_error(json)),
    };
    validate(&case, known_drugs)?;
    if let Some(request) = &mut case.request {
        request.drug_index = request
            .drug
            .as_deref()
            .and_then(|drug| known_drugs.iter().position(|known| known.as_ref() == drug))
            .and_then(|position| u8::try_from(position).ok());
    }
    Ok(case)
}

fn locate_syntax_error(json: &str) -> CaseError {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, Case>(&mut deserializer) {
        Ok(_) => CaseError::single("", "invalid case"),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let key = if path == "." { String::new() } else { path };
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("not valid JSON: {inner}")
            } else {
                // serde's message for an unknown key names only its last segment; the key
                // field carries the full path.
                inner.to_string()
            };
            CaseError::single(key, message)
        }
    }
}

/// Checks the values serde cannot: ranges, patterns, dates and their order.
pub fn validate(case: &Case, known_drugs: &[impl AsRef<str>]) -> Result<(), CaseError> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(CaseProblem {
            key: key.to_string(),
            message,
        })
    };
    let request_date = case.request.as_ref().and_then(|r| r.date);

    if let Some(request) = &case.request {
        if let Some(drug) = &request.drug {
            if !known_drugs.iter().any(|known| known.as_ref() == drug) {
                let names: Vec<&str> = known_drugs.iter().map(AsRef::as_ref).collect();
                problem(
                    "request.drug",
                    format!(
                        "unknown drug `{drug}`, expected one of {}",
                        quoted_list(&names)
                    ),
                );
            }
        }
        if let Some(dose) = &request.dose {
            if dose.value <= 0.0 || !dose.value.is_finite() {
                problem(
                    "request.dose.value",
                    format!("must be greater than 0, got {}", dose.value),
                );
            }
        }
        if let Some(dose) = &request.dose {
            // The highest plausible figure of each unit, about ten times the label's highest
            // dose: beyond it a number is a typing error, not a dose (28 mcg/day; 15 mcg/m²/day;
            // 0.8 mg/m²). The smallest: a thousandth of the label's lowest step dose.
            let (min, max) = match dose.unit {
                DoseUnit::McgPerDay => (0.001, 300.0),
                DoseUnit::McgPerM2PerDay => (0.001, 150.0),
                DoseUnit::MgPerM2 => (0.0001, 10.0),
            };
            if dose.value.is_finite() && dose.value > 0.0 && !(min..=max).contains(&dose.value) {
                problem(
                    "request.dose.value",
                    format!(
                        "{} {} is not a possible dose (between {min} and {max})",
                        dose.value,
                        dose.unit.as_str()
                    ),
                );
            }
        }
        if let (Some(new), Some(old)) = (request.dose_days, request.infusion_days) {
            if new != old {
                problem(
                    "request.dose_days",
                    format!(
                        "{new} differs from {old} given under its deprecated name (request.infusion_days): give one"
                    ),
                );
            }
        }
        for (key, value, max) in [
            ("request.dose_days", request.dose_days, MAX_CYCLE_DAYS),
            (
                "request.infusion_days",
                request.infusion_days,
                MAX_CYCLE_DAYS,
            ),
            (
                "request.cycle_length_days",
                request.cycle_length_days,
                MAX_CYCLE_DAYS,
            ),
            ("request.cycles", request.cycles, MAX_CYCLES_REQUESTED),
            (
                "request.first_cycle",
                request.first_cycle,
                MAX_COURSE_CYCLES,
            ),
            (
                "request.units_period_days",
                request.units_period_days,
                MAX_CYCLE_DAYS,
            ),
        ] {
            match value {
                Some(0) => problem(key, "must be at least 1, got 0".to_string()),
                Some(n) if n > max => {
                    problem(key, format!("{n} is not a possible value (at most {max})"))
                }
                _ => {}
            }
        }
        if let Some(units) = request.units {
            if units > MAX_UNITS {
                problem(
                    "request.units",
                    format!(
                        "{units} is not a possible number of billable units (at most {MAX_UNITS})"
                    ),
                );
            }
        }
        if let Some(date) = request.date {
            if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
                problem(
                    "request.date",
                    format!(
                        "{date} is not a possible date (between {EARLIEST_DATE} and {LATEST_DATE})"
                    ),
                );
            }
        }
        if let (Some(days), Some(cycle)) = (request.dose_days(), request.cycle_length_days) {
            if days > cycle {
                let key = if request.dose_days.is_some() {
                    "request.dose_days"
                } else {
                    "request.infusion_days"
                };
                problem(
                    key,
                    format!(
                        "{days} dose days do not fit in a cycle of {cycle} days (request.cycle_length_days)"
                    ),
                );
            }
        }
        if let Some(hcpcs) = &request.hcpcs {
            if !is_hcpcs(hcpcs) {
                problem(
                    "request.hcpcs",
                    format!("`{hcpcs}` is not a HCPCS code (a capital letter and four digits)"),
                );
            }
        }
    }
    // A renewal continues a course: it cannot start one at cycle 1.
    if let Some(request) = &case.request {
        let given = case
            .history
            .as_ref()
            .and_then(|h| h.cycles_given_for(request.drug.as_deref()));
        let drug_stated = request.drug.is_some();
        if request.kind == Some(RequestKind::Renewal) {
            if request.first_cycle == Some(1) {
                problem(
                    "request.first_cycle",
                    "cycle 1 starts a course; a renewal (request.kind) continues one".to_string(),
                );
            } else if drug_stated && given == Some(0) {
                problem(
                    "history.cycles_given",
                    "no cycle given yet; a renewal (request.kind) continues a course".to_string(),
                );
            }
        }
        if request.units == Some(0) {
            problem(
                "request.units",
                "0 units approve nothing; leave units out for the policy's maximum".to_string(),
            );
        }
    }
    // The course a request says it treats must fit the disease: relapsed or refractory
    // disease is not treated in the frontline, newly diagnosed disease is not salvage, and a
    // first remission reached by induction followed no relapse and no refractory disease.
    let setting = case.request.as_ref().and_then(|r| r.setting);
    let status = case.diagnosis.as_ref().and_then(|d| d.disease_status);
    if let (Some(Setting::RelapsedRefractory), Some(diagnosis)) = (setting, &case.diagnosis) {
        if diagnosis.disease_status == Some(DiseaseStatus::CompleteRemission)
            && diagnosis.remission_number == Some(1)
            && diagnosis.complete_response_to_induction == Some(true)
        {
            problem(
                "request.setting",
                "`relapsed_refractory` contradicts a first complete remission after a complete response to induction (diagnosis.remission_number, diagnosis.complete_response_to_induction)".to_string(),
            );
        }
    }
    let contradiction = matches!(
        (setting, status),
        (
            Some(Setting::Frontline),
            Some(DiseaseStatus::Relapsed | DiseaseStatus::Refractory)
        ) | (
            Some(Setting::RelapsedRefractory),
            Some(DiseaseStatus::NewlyDiagnosed)
        )
    );
    if let (true, Some(setting), Some(status)) = (contradiction, setting, status) {
        problem(
            "request.setting",
            format!(
                "`{}` contradicts diagnosis.disease_status `{}`",
                setting.as_str(),
                status.as_str()
            ),
        );
    }
    if let Some(patient) = &case.patient {
        check_identity(
            &mut problem,
            "patient.member_id",
            patient.member_id.as_deref(),
            64,
        );
        check_identity(&mut problem, "patient.name", patient.name.as_deref(), 200);
        // From a very premature newborn to the heaviest and tallest people recorded.
        check_measure(
            &mut problem,
            "patient.weight_kg",
            patient.weight_kg,
            0.3,
            700.0,
        );
        check_measure(
            &mut problem,
            "patient.height_cm",
            patient.height_cm,
            20.0,
            300.0,
        );
        if let Some(birth) = patient.birth_date {
            if birth < EARLIEST_DATE {
                problem(
                    "patient.birth_date",
                    format!("{birth} is not a possible birth date (on or after {EARLIEST_DATE})"),
                );
            }
        }
        if let (Some(birth), Some(date)) = (patient.birth_date, request_date) {
            if birth > date {
                problem(
                    "patient.birth_date",
                    format!("{birth} is after the request date {date}"),
                );
            } else if date.months_since(birth) > 12 * MAX_AGE_YEARS {
                problem(
                    "patient.birth_date",
                    format!(
                        "{birth} makes the patient older than {MAX_AGE_YEARS} years on the request date {date}"
                    ),
                );
            }
        }
    }
    if let Some(prescriber) = &case.prescriber {
        check_identity(
            &mut problem,
            "prescriber.name",
            prescriber.name.as_deref(),
            200,
        );
        if let Some(npi) = &prescriber.npi {
            if !is_npi(npi) {
                problem(
                    "prescriber.npi",
                    format!(
                        "`{npi}` is not an NPI: ten digits whose last is the check digit of the other nine"
                    ),
                );
            }
        }
    }
    if let Some(diagnosis) = &case.diagnosis {
        if let Some(codes) = &diagnosis.icd10 {
            for (index, code) in codes.iter().enumerate() {
                if !is_icd10(code) {
                    problem(
                        &format!("diagnosis.icd10[{index}]"),
                        format!("`{code}` is not an ICD-10-CM code"),
                    );
                }
            }
        }
        match diagnosis.remission_number {
            Some(0) => problem(
                "diagnosis.remission_number",
                "must be at least 1, got 0".to_string(),
            ),
            Some(n) if n > MAX_REMISSIONS => problem(
                "diagnosis.remission_number",
                format!("{n} is not a possible value (at most {MAX_REMISSIONS})"),
            ),
            _ => {}
        }
        if let Some(percent) = diagnosis.mrd_percent {
            if !(0.0..=100.0).contains(&percent) {
                problem(
                    "diagnosis.mrd_percent",
                    format!("must be between 0 and 100, got {percent}"),
                );
            }
        }
    }
    if let Some(history) = &case.history {
        // The course position a request declares must be the one its history gives: a
        // request cannot restart a course at cycle 1 after 4 cycles, nor skip ahead.
        let drug = case.request.as_ref().and_then(|r| r.drug.as_deref());
        let first = case.request.as_ref().and_then(|r| r.first_cycle);
        let given = history.cycles_given_for(drug);
        let continued_given = history.continued_cycles_given_for(drug);
        if let (true, Some(first), Some(given)) = (drug.is_some(), first, given) {
            if u64::from(first) != u64::from(given) + 1 {
                problem(
                    "request.first_cycle",
                    format!(
                        "cycle {first} does not follow the {given} cycles already given (history.cycles_given): the request starts at cycle {}",
                        u64::from(given) + 1
                    ),
                );
            }
        }
        if let (Some(all), Some(continued)) = (given, continued_given) {
            if continued > all {
                problem(
                    "history.continued_cycles_given",
                    format!(
                        "{continued} continued cycles are more than the {all} cycles given (history.cycles_given)"
                    ),
                );
            }
        }
        // A new key and its deprecated name must not disagree.
        for (key, old_key, new, old) in [
            (
                "history.cycles_given",
                "history.blinatumomab_cycles",
                history.cycles_given,
                history.blinatumomab_cycles,
            ),
            (
                "history.continued_cycles_given",
                "history.blinatumomab_continued_cycles",
                history.continued_cycles_given,
                history.blinatumomab_continued_cycles,
            ),
        ] {
            if let (Some(new), Some(old), true) = (new, old, old_names_apply(drug)) {
                if new != old {
                    problem(
                        key,
                        format!(
                            "{new} differs from {old} given under its deprecated name ({old_key}): give one"
                        ),
                    );
                }
            }
        }
        for (key, value, max) in [
            (
                "history.prior_systemic_therapies",
                history.prior_systemic_therapies,
                MAX_COURSE_CYCLES,
            ),
            (
                "history.cycles_given",
                history.cycles_given,
                MAX_COURSE_CYCLES,
            ),
            (
                "history.continued_cycles_given",
                history.continued_cycles_given,
                MAX_COURSE_CYCLES,
            ),
            (
                "history.blinatumomab_cycles",
                history.blinatumomab_cycles,
                MAX_COURSE_CYCLES,
            ),
            (
                "history.blinatumomab_continued_cycles",
                history.blinatumomab_continued_cycles,
                MAX_COURSE_CYCLES,
            ),
        ] {
            if let Some(n) = value.filter(|n| *n > max) {
                problem(key, format!("{n} is not a possible value (at most {max})"));
            }
        }
        let authorizations = history.authorizations.as_deref().unwrap_or_default();
        if authorizations.len() > MAX_PAST_AUTHORIZATIONS {
            problem(
                "history.authorizations",
                format!(
                    "{} earlier authorizations are more than a course can have (at most {MAX_PAST_AUTHORIZATIONS})",
                    authorizations.len()
                ),
            );
        }
        for (index, past) in authorizations.iter().enumerate() {
            match past.cycles {
                Some(0) => problem(
                    &format!("history.authorizations[{index}].cycles"),
                    "must be at least 1, got 0: an authorization covers a cycle".to_string(),
                ),
                Some(n) if n > MAX_CYCLES_REQUESTED => problem(
                    &format!("history.authorizations[{index}].cycles"),
                    format!("{n} is not a possible value (at most {MAX_CYCLES_REQUESTED})"),
                ),
                _ => {}
            }
            if past.end < past.start {
                problem(
                    &format!("history.authorizations[{index}].end"),
                    format!("{} is before its start {}", past.end, past.start),
                );
            }
            for (field, date) in [("start", past.start), ("end", past.end)] {
                if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
                    problem(
                        &format!("history.authorizations[{index}].{field}"),
                        format!(
                            "{date} is not a possible date (between {EARLIEST_DATE} and {LATEST_DATE})"
                        ),
                    );
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CaseError { problems })
    }
}

/// An identity text: 1 to `max` characters, no control characters, not only spaces.
fn check_identity(
    problem: &mut impl FnMut(&str, String),
    key: &str,
    value: Option<&str>,
    max: usize,
) {
    let Some(value) = value else { return };
    if value.trim().is_empty() {
        problem(key, "must not be empty".to_string());
    } else if value.chars().count() > max {
        problem(key, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        problem(key, "must not hold control characters".to_string());
    }
}

/// A National Provider Identifier: ten digits whose last is the Luhn check digit of the first
/// nine prefixed by 80840, the health industry's card issuer number (CMS, "Requirements for
/// National Provider Identifier (NPI) and NPI Enumeration", check digit section).
pub fn is_npi(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first_nine), Some(check)) = (bytes.get(..9), bytes.get(9)) else {
        return false;
    };
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // Luhn over "80840" + the first nine digits, doubling every second digit from the right
    // of that 14-digit number (its last digit is doubled, as the check digit is not in it).
    let digits = b"80840"
        .iter()
        .chain(first_nine)
        .map(|b| u32::from(b - b'0'));
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2 == 0, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    u32::from(check - b'0') == (10 - sum % 10) % 10
}

fn check_measure(
    problem: &mut impl FnMut(&str, String),
    key: &str,
    value: Option<f64>,
    min: f64,
    max: f64,
) {
    if let Some(value) = value {
        if value <= 0.0 || !value.is_finite() {
            problem(key, format!("must be greater than 0, got {value}"));
        } else if !(min..=max).contains(&value) {
            problem(
                key,
                format!("{value} is not a possible value (between {min} and {max})"),
            );
        }
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_hcpcs(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 5
        && bytes.first().is_some_and(u8::is_ascii_uppercase)
        && bytes.iter().skip(1).all(u8::is_ascii_digit)
}

/// `^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$`, the schema's pattern.
fn is_icd10(code: &str) -> bool {
    let bytes = code.as_bytes();
    let head_ok = match bytes {
        [letter, digit, third, ..] => {
            letter.is_ascii_uppercase()
                && *letter != b'U'
                && digit.is_ascii_digit()
                && (third.is_ascii_digit() || third.is_ascii_uppercase())
        }
        _ => false,
    };
    let tail = bytes.get(3..).unwrap_or_default();
    let tail_ok = match tail {
        [] => true,
        [b'.', rest @ ..] => {
            (1..=4).contains(&rest.len())
                && rest
                    .iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }
        _ => false,
    };
    head_ok && tail_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRUGS: &[&str] = &["blinatumomab", "inotuzumab_ozogamicin"];

    /// `request.infusion_days` is the deprecated name of `request.dose_days` for every drug
    /// (Besponsa's three dose days are infusion days too); the two must not disagree.
    #[test]
    fn dose_days_reads_its_deprecated_name_for_every_drug() {
        let request = |fields: &str| {
            parse_case(&format!(r#"{{"request": {{{fields}}}}}"#), DRUGS)
                .map(|c| c.request.and_then(|r| r.dose_days()))
        };
        for drug in DRUGS {
            let drug = format!(r#""drug": "{drug}""#);
            assert_eq!(
                request(&format!(r#"{drug}, "dose_days": 3"#)).unwrap(),
                Some(3)
            );
            assert_eq!(
                request(&format!(r#"{drug}, "infusion_days": 3"#)).unwrap(),
                Some(3)
            );
            assert_eq!(
                request(&format!(r#"{drug}, "dose_days": 3, "infusion_days": 3"#)).unwrap(),
                Some(3)
            );
            let error =
                request(&format!(r#"{drug}, "dose_days": 3, "infusion_days": 28"#)).unwrap_err();
            assert_eq!(error.problems[0].key, "request.dose_days", "{error}");
            assert!(error.problems[0].message.contains("deprecated"), "{error}");
            let error = request(&format!(
                r#"{drug}, "infusion_days": 30, "cycle_length_days": 21"#
            ))
            .unwrap_err();
            assert_eq!(error.problems[0].key, "request.infusion_days", "{error}");
        }
    }

    #[test]
    fn cycles_given_reads_its_deprecated_blincyto_name_only_for_blincyto() {
        let case = |drug: &str, history: &str| {
            parse_case(
                &format!(r#"{{"request": {{"drug": {drug}}}, "history": {history}}}"#),
                DRUGS,
            )
        };
        let old = case(r#""blinatumomab""#, r#"{"blinatumomab_cycles": 2}"#).unwrap();
        let new = case(r#""blinatumomab""#, r#"{"cycles_given": 2}"#).unwrap();
        let given = |c: &Case| {
            let drug = c.request.as_ref().and_then(|r| r.drug.as_deref());
            c.history.as_ref().and_then(|h| h.cycles_given_for(drug))
        };
        assert_eq!(given(&old), Some(2));
        assert_eq!(given(&new), Some(2));
        // Without a drug, as cases written for Blincyto alone were.
        assert_eq!(
            given(&case("null", r#"{"blinatumomab_cycles": 2}"#).unwrap()),
            Some(2)
        );
        // Blincyto's cycles are not Besponsa's.
        assert_eq!(
            given(
                &case(
                    r#""inotuzumab_ozogamicin""#,
                    r#"{"blinatumomab_cycles": 2}"#
                )
                .unwrap()
            ),
            None
        );
        assert_eq!(
            given(&case(r#""inotuzumab_ozogamicin""#, r#"{"cycles_given": 2}"#).unwrap()),
            Some(2)
        );
        // Both names, disagreeing: an error naming the new key.
        let error = case(
            r#""blinatumomab""#,
            r#"{"cycles_given": 2, "blinatumomab_cycles": 3}"#,
        )
        .unwrap_err();
        assert_eq!(error.problems[0].key, "history.cycles_given");
        assert!(error.problems[0].message.contains("deprecated"), "{error}");
    }

    fn first_key(json: &str) -> String {
        parse_case(json, DRUGS).unwrap_err().problems[0].key.clone()
    }

    #[test]
    fn an_npi_is_ten_digits_with_its_check_digit() {
        // The example of CMS's NPI check-digit paper, and two real-format numbers.
        for npi in ["1234567893", "1245319599", "1003000126"] {
            assert!(is_npi(npi), "{npi}");
        }
        for npi in [
            "1234567890",
            "123456789",
            "12345678931",
            "123456789a",
            "",
            "１234567893",
        ] {
            assert!(!is_npi(npi), "{npi}");
        }
    }

    #[test]
    fn identity_is_optional_and_checked_where_given() {
        let case = parse_case(
            r#"{"patient": {"member_id": "M-1001", "name": "Ana Diaz"}, "prescriber": {"name": "Dr. Lee", "npi": "1234567893"}}"#,
            DRUGS,
        )
        .unwrap();
        assert_eq!(case.patient.unwrap().member_id.as_deref(), Some("M-1001"));
        assert_eq!(
            first_key(r#"{"prescriber": {"npi": "1234567890"}}"#),
            "prescriber.npi"
        );
        assert_eq!(
            first_key(r#"{"patient": {"member_id": "  "}}"#),
            "patient.member_id"
        );
        assert_eq!(
            first_key(r#"{"patient": {"name": "a\u0007b"}}"#),
            "patient.name"
        );
        let long = "x".repeat(201);
        assert_eq!(
            first_key(&format!(r#"{{"prescriber": {{"name": "{long}"}}}}"#)),
            "prescriber.name"
        );
    }

    #[test]
    fn a_course_that_contradicts_the_disease_is_bad_input() {
        assert_eq!(
            first_key(
                r#"{"request": {"setting": "frontline"}, "diagnosis": {"disease_status": "relapsed"}}"#
            ),
            "request.setting"
        );
        assert_eq!(
            first_key(
                r#"{"request": {"setting": "relapsed_refractory"}, "diagnosis": {"disease_status": "newly_diagnosed"}}"#
            ),
            "request.setting"
        );
        // In remission after salvage cycles, the course still treats relapsed disease.
        assert!(
            parse_case(
                r#"{"request": {"setting": "relapsed_refractory"}, "diagnosis": {"disease_status": "complete_remission"}}"#,
                DRUGS
            )
            .is_ok()
        );
    }

    #[test]
    fn names_the_key_of_each_kind_of_error() {
        assert_eq!(
            first_key(r#"{"diagnosis": {"mrd_pct": 1}}"#),
            "diagnosis.mrd_pct"
        );
        assert_eq!(
            first_key(r#"{"diagnosis": {"ph_status": "maybe"}}"#),
            "diagnosis.ph_status"
        );
        assert_eq!(
            first_key(r#"{"request": {"cycles": "two"}}"#),
            "request.cycles"
        );
        assert_eq!(
            first_key(r#"{"request": {"cycles": -1}}"#),
            "request.cycles"
        );
        assert_eq!(first_key(r#"{"request": {"cycles": 0}}"#), "request.cycles");
        assert_eq!(
            first_key(r#"{"patient": {"weight_kg": -70}}"#),
            "patient.weight_kg"
        );
        assert_eq!(
            first_key(r#"{"patient": {"weight_kg": 0}}"#),
            "patient.weight_kg"
        );
        assert_eq!(
            first_key(r#"{"request": {"date": "2026-02-30"}}"#),
            "request.date"
        );
        assert_eq!(
            first_key(r#"{"request": {"date": "2026-2-3"}}"#),
            "request.date"
        );
        assert_eq!(
            first_key(r#"{"request": {"drug": "aspirin"}}"#),
            "request.drug"
        );
        assert_eq!(
            first_key(r#"{"request": {"dose": {"value": 0, "unit": "mcg/day"}}}"#),
            "request.dose.value"
        );
        assert_eq!(
            first_key(r#"{"request": {"dose": {"value": 1}}}"#),
            "request.dose"
        );
        assert_eq!(
            first_key(r#"{"request": {"hcpcs": "j9039"}}"#),
            "request.hcpcs"
        );
        assert_eq!(
            first_key(r#"{"diagnosis": {"icd10": ["C91.02", "91"]}}"#),
            "diagnosis.icd10[1]"
        );
        assert_eq!(
            first_key(r#"{"diagnosis": {"mrd_percent": 100.5}}"#),
            "diagnosis.mrd_percent"
        );
        assert_eq!(
            first_key(r#"{"history": {"tkis": [{"drug": "imatinib"}]}}"#),
            "history.tkis[0]"
        );
        assert_eq!(first_key(r#"{"extra": 1}"#), "extra");
        assert_eq!(
            first_key(
                r#"{"request": {"date": "2026-01-01"}, "patient": {"birth_date": "2026-01-02"}}"#
            ),
            "patient.birth_date"
        );
        assert_eq!(
            first_key(
                r#"{"history": {"authorizations": [{"start": "2026-02-01", "end": "2026-01-01"}]}}"#
            ),
            "history.authorizations[0].end"
        );
    }

    #[test]
    fn lists_every_problem_at_once() {
        let error = parse_case(
            r#"{"patient": {"weight_kg": -1, "height_cm": 0}, "request": {"cycles": 0}}"#,
            DRUGS,
        )
        .unwrap_err();
        let keys: Vec<_> = error.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["request.cycles", "patient.weight_kg", "patient.height_cm"]
        );
    }

    #[test]
    fn absent_and_null_are_unknown() {
        let case = parse_case(
            r#"{"request": null, "patient": {"weight_kg": null}}"#,
            DRUGS,
        )
        .unwrap();
        assert_eq!(case.request, None);
        assert_eq!(case.patient.unwrap().weight_kg, None);
        assert_eq!(parse_case("{}", DRUGS).unwrap(), Case::default());
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let error = parse_case(r#"{"request": {"drug": "blinatumomab","#, DRUGS).unwrap_err();
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }

    #[test]
    fn the_request_date_lies_within_a_window_before_receipt() {
        let case = parse_case(r#"{"request": {"date": "2026-05-18"}}"#, DRUGS).unwrap();
        let received = |text: &str| check_received(&case, Date::parse(text).unwrap());
        // The day of receipt, 90 days later, and the day before (a time zone ahead).
        for ok in ["2026-05-18", "2026-08-16", "2026-05-17"] {
            assert!(received(ok).is_ok(), "{ok}");
        }
        // 91 days before receipt, a year before, and a week after.
        for bad in ["2026-08-17", "2027-05-18", "2026-05-11"] {
            let error = received(bad).unwrap_err();
            assert_eq!(error.problems.len(), 1);
            assert_eq!(error.problems[0].key, "request.date", "{bad}");
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert!(
            received("2027-05-18")
                .unwrap_err()
                .to_string()
                .contains("365 days before")
        );
        assert!(
            received("2026-05-11")
                .unwrap_err()
                .to_string()
                .contains("7 days after")
        );
        // No clinical date: nothing to check.
        let undated = parse_case(r#"{"request": {}}"#, DRUGS).unwrap();
        assert!(check_received(&undated, Date::parse("2030-01-01").unwrap()).is_ok());
    }

    #[test]
    fn icd10_pattern() {
        for good in ["C91.02", "C91", "C83.5A", "Z85.6"] {
            assert!(is_icd10(good), "{good}");
        }
        for bad in ["U07.1", "c91.02", "C9", "C91.", "C91.12345", "C91-02"] {
            assert!(!is_icd10(bad), "{bad}");
        }
    }
}
