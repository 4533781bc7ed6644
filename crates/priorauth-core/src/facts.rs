//! The facts a policy may read, and their values for one case.
//!
//! A fact is either a key of the case (`diagnosis.ph_status`) or a fact derived from several
//! keys (`patient.age_years`, `patient.bsa_m2`, `history.tki_2g_relapsed_or_refractory`).
//! Derived facts are computed here, once per case, and nowhere else. An unknown value carries
//! the case keys that would make it known, so that `incomplete` can name exactly those.

use crate::case::*;
use crate::date::Date;

/// A set of case keys: one bit per entry of [`CASE_KEYS`], and from [`FIRST_DECLARED_BIT`] one
/// per fact declared in data that the policy being decided reads (`Policy::declared`, in its
/// order: the bits of a declared fact are the policy's, set by [`crate::declared::tag`]).
///
/// 64 bits: a `Truth` and a `Value` of 16 bytes are returned in registers. A `u128` set
/// (room for more declared facts per policy) made deciding the six policies take 1,078 ns a
/// case instead of 633 (BENCHMARKS.md).
pub type Missing = u64;

/// The case keys a requester can be asked for, in the spec's order. `missing` lists are
/// reported in this order.
pub const CASE_KEYS: [&str; 50] = [
    "request.drug",
    "request.kind",
    "request.date",
    "request.line_of_business",
    "request.phase",
    "request.regimen",
    "request.dose",
    "request.dose_days",
    "request.cycle_length_days",
    "request.cycles",
    "request.first_cycle",
    "request.hcpcs",
    "request.units",
    "request.units_period_days",
    "request.drug_source",
    "patient.birth_date",
    "patient.weight_kg",
    "patient.height_cm",
    "patient.new_to_plan_on_treatment",
    "diagnosis.icd10",
    "diagnosis.condition",
    "diagnosis.lineage",
    "diagnosis.cd19_positive",
    "diagnosis.cd22_positive",
    "diagnosis.ph_status",
    "diagnosis.disease_status",
    "diagnosis.remission_number",
    "diagnosis.complete_response_to_induction",
    "diagnosis.mrd_status",
    "diagnosis.mrd_percent",
    "diagnosis.mrd_method",
    "history.induction_regimen",
    "history.prior_systemic_therapies",
    "history.tkis",
    "history.cycles_given",
    "history.continued_cycles_given",
    "history.progression_on_blinatumomab",
    "history.hypersensitivity",
    "history.live_vaccine_within_2_weeks",
    "history.live_vaccine_planned",
    "history.unacceptable_toxicity",
    "history.response",
    "history.medications_added",
    "history.authorizations",
    "prescriber.specialty",
    "prescriber.consulting_specialty",
    // The three keys below are never asked for on their own; they complete the table so that
    // every case key has a bit.
    "id",
    "request.dose.value",
    "request.dose.unit",
    // Keys added to the format later take the next bits, so that earlier bits keep their keys.
    "request.setting",
];

/// The bit of `request.units`, which the engine reads as "the policy's maximum" when it is
/// the only thing missing.
pub const UNITS_KEY: Missing = bit(12);

/// The bit of `history.authorizations`, the records that place a request in its course.
pub const AUTHORIZATIONS_KEY: Missing = bit(43);

/// The bit of a case key.
pub fn key_bit(key: &str) -> Option<Missing> {
    CASE_KEYS.iter().position(|k| *k == key).map(|i| 1 << i)
}

/// The case keys of a set, in [`CASE_KEYS`] order.
/// The first bit of a [`Missing`] that names a declared fact (of the policy decided).
pub const FIRST_DECLARED_BIT: usize = CASE_KEYS.len();

/// The most facts declared in data that one policy may read: the bits of a [`Missing`] the
/// case keys leave.
pub const MAX_DECLARED_PER_POLICY: usize = 64 - CASE_KEYS.len();

/// The bits of the case keys in a [`Missing`].
pub const CASE_KEYS_MASK: Missing = (1 << CASE_KEYS.len()) - 1;

/// The case keys of a set, in [`CASE_KEYS`] order. A decision's set may also name declared
/// facts, which its policy names: `Policy::missing_keys`.
pub fn case_keys(missing: Missing) -> impl Iterator<Item = &'static str> {
    CASE_KEYS
        .iter()
        .enumerate()
        .filter(move |(i, _)| missing & (1 << i) != 0)
        .map(|(_, key)| *key)
}

const fn bit(key_index: usize) -> Missing {
    1 << key_index
}

/// The type of a fact, which decides the tests a policy may apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactType {
    Bool,
    Number,
    /// One value of a closed set; the set is listed here, or for `Drug` in the drug catalog.
    Enum(&'static [&'static str]),
    Drug,
}

/// A fact's value for one case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Not given; the set names the case keys that would make it known.
    Unknown(Missing),
    /// Known not to exist: a dose in mcg for a request dosed in mg/m². Every comparison with
    /// it is false.
    NotApplicable,
    Bool(bool),
    Number(f64),
    /// Position of the value in the fact's enum (or in the drug catalog).
    Symbol(u8),
}

/// One fact of the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactDef {
    pub name: &'static str,
    pub fact_type: FactType,
    /// What the fact means, and for derived facts how it is computed.
    pub description: &'static str,
}

/// A fact: its index in [`FACTS`] for the facts of the case format (`FactId::RequestDrug`),
/// or after them for a fact declared in data ([`declare`]). It indexes a case's [`Facts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FactId(u8);

macro_rules! facts {
    ($($id:ident = $name:literal, $fact_type:expr, $description:literal;)+) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u8)]
        enum Builtin { $($id),+ }
        #[allow(non_upper_case_globals)]
        impl FactId { $(pub const $id: FactId = FactId(Builtin::$id as u8);)+ }
        /// The facts of the case format, to `use builtin::*` where many are read.
        #[allow(non_upper_case_globals)]
        pub(crate) mod builtin { use super::FactId; $(pub const $id: FactId = FactId::$id;)+ }
        /// Every fact of the case format a policy may read.
        pub const FACTS: &[FactDef] = &[$(FactDef { name: $name, fact_type: $fact_type, description: $description }),+];
        pub const N_FACTS: usize = FACTS.len();
        pub(crate) const ALL_IDS: &[FactId] = &[$(FactId::$id),+];
        // Each fact needs its own bit in a `u64` when the linter tags unknown facts.
        const _: () = assert!(FACTS.len() <= 64);
    };
}

use FactType::{Bool, Drug, Enum, Number};

facts! {
    RequestDrug = "request.drug", Drug, "the drug requested";
    RequestKind = "request.kind", Enum(RequestKind::VARIANTS), "first request, or a request to continue an authorized therapy";
    RequestLineOfBusiness = "request.line_of_business", Enum(LineOfBusiness::VARIANTS), "the member's coverage";
    RequestPhase = "request.phase", Enum(Phase::VARIANTS), "treatment phase; absent for relapsed/refractory therapy";
    RequestRegimen = "request.regimen", Enum(Regimen::VARIANTS), "how the drug is given: alone, or with which partners";
    RequestDoseUnit = "request.dose_unit", Enum(DoseUnit::VARIANTS), "the unit of the requested dose";
    RequestDoseMcgPerDay = "request.dose_mcg_per_day", Number, "derived: the highest daily dose in mcg/day; a dose in mcg/m²/day times the body surface area";
    RequestDoseMcgPerM2Day = "request.dose_mcg_per_m2_day", Number, "derived: the highest daily dose in mcg/m²/day; a dose in mcg/day divided by the body surface area";
    RequestDoseMgPerM2 = "request.dose_mg_per_m2", Number, "derived: the highest single dose in mg/m²";
    RequestDoseDays = "request.dose_days", Number, "days of a cycle on which the drug is given (each infusion day of Blincyto, each dose day of Besponsa; deprecated name: request.infusion_days)";
    RequestCycleLengthDays = "request.cycle_length_days", Number, "days per cycle";
    RequestTreatmentFreeDays = "request.treatment_free_days", Number, "derived: cycle length minus dose days";
    RequestCycles = "request.cycles", Number, "cycles requested in this authorization";
    RequestFirstCycle = "request.first_cycle", Number, "number in the whole course of the first requested cycle: request.first_cycle, or history.cycles_given + 1; never before the cycles the current course's authorizations already cover (history.authorizations and their cycles: the records outrank the request; unknown when they contradict it without saying how many)";
    RequestLastCycle = "request.last_cycle", Number, "derived: number in the whole course of the last requested cycle: first_cycle + cycles - 1, or, without first_cycle, history.cycles_given + cycles";
    RequestContinuedCycles = "request.continued_cycles", Number, "derived: continued-therapy cycles (cycle 6 and later of relapsed/refractory therapy) given and requested, through the last requested cycle";
    RequestUnits = "request.units", Number, "billable units requested per request.units_period_days; a test with `per_days` rescales it to that period";
    RequestUnitsPerCycle = "request.units_per_cycle", Number, "derived: billable units requested for each cycle (docs/case-format.md, Quantities): request.units when they cover one cycle (request.units_period_days absent or the cycle length, or a period between the dose days and the cycle length), else rescaled from their period to the cycle's dose days or its length; a drug given on set days of its cycle (catalog dose_days) scales the doses falling in a shorter period to the cycle's";
    RequestUnitsPeriodDays = "request.units_period_days", Number, "the period the units cover";
    RequestDrugSource = "request.drug_source", Enum(DrugSource::VARIANTS), "where the drug the member receives now comes from";
    RequestSetting = "request.setting", Enum(Setting::VARIANTS), "what the course of therapy treats: frontline or relapsed/refractory (salvage) disease";
    RequestRelapsedRefractoryCourse = "request.relapsed_refractory_course", Bool, "derived: the course treats relapsed or refractory disease: request.setting when given, else diagnosis.disease_status is relapsed or refractory, or a second or later remission without MRD reached during this course of the drug (one without MRD reached before the drug: unknown, request.setting asked)";
    RequestLabelUnitsPerCycle = "request.label_units_per_cycle", Number, "derived: the drug label's most billable units in one cycle (drug catalog `limits`): whole vials of the highest daily dose per dose day, or each dose of the cycle per m² of body surface area (counted at most 3.0 m²) in whole vials, none above the requested highest single dose (request.dose in mg/m²)";
    RequestLabelCourseCycles = "request.label_course_cycles", Number, "derived: the drug label's most cycles in one course (drug catalog `limits`)";
    RequestOnLabel = "request.on_label", Bool, "derived: the request falls within a labeled indication of the drug (drug catalog)";
    PatientWeightKg = "patient.weight_kg", Number, "body weight";
    PatientHeightCm = "patient.height_cm", Number, "height";
    PatientNewToPlanOnTreatment = "patient.new_to_plan_on_treatment", Bool, "member is new to the plan and already receiving the drug";
    PatientAgeDays = "patient.age_days", Number, "derived: completed days of age on request.date";
    PatientAgeMonths = "patient.age_months", Number, "derived: completed months of age on request.date (month arithmetic clamps)";
    PatientAgeYears = "patient.age_years", Number, "derived: completed years of age on request.date";
    PatientBsaM2 = "patient.bsa_m2", Number, "derived: body surface area by Mosteller, sqrt(height_cm x weight_kg / 3600)";
    DiagnosisCondition = "diagnosis.condition", Enum(Condition::VARIANTS), "what is being treated";
    DiagnosisLineage = "diagnosis.lineage", Enum(Lineage::VARIANTS), "immunophenotype of the leukemia";
    DiagnosisCd19Positive = "diagnosis.cd19_positive", Bool, "leukemic blasts express CD19";
    DiagnosisCd22Positive = "diagnosis.cd22_positive", Bool, "leukemic blasts express CD22";
    DiagnosisPhStatus = "diagnosis.ph_status", Enum(PhStatus::VARIANTS), "Philadelphia chromosome (BCR-ABL1); Ph-like disease is Ph-negative";
    DiagnosisDiseaseStatus = "diagnosis.disease_status", Enum(DiseaseStatus::VARIANTS), "status when the drug is requested";
    DiagnosisRemissionNumber = "diagnosis.remission_number", Number, "with complete_remission: 1 = first CR, 2 = second CR";
    DiagnosisCompleteResponseToInduction = "diagnosis.complete_response_to_induction", Bool, "a complete response was reached after induction therapy";
    DiagnosisMrdStatus = "diagnosis.mrd_status", Enum(MrdStatus::VARIANTS), "minimal residual disease";
    DiagnosisMrdPercent = "diagnosis.mrd_percent", Number, "MRD level in percent";
    DiagnosisMrdMethod = "diagnosis.mrd_method", Enum(MrdMethod::VARIANTS), "how MRD was measured";
    HistoryInductionRegimen = "history.induction_regimen", Enum(InductionRegimen::VARIANTS), "the induction the patient received";
    HistoryPriorSystemicTherapies = "history.prior_systemic_therapies", Number, "lines of systemic therapy for ALL already received";
    HistoryTkiFailure = "history.tki_failure", Bool, "derived: a TKI was tried without success (any outcome but responding)";
    HistoryTki2gRelapsedOrRefractory = "history.tki_2g_relapsed_or_refractory", Bool, "derived: relapsed on, refractory to, or inadequate response to a second-generation or later TKI";
    HistoryTki2gIntolerant = "history.tki_2g_intolerant", Bool, "derived: intolerant of (or adverse reaction to) a second-generation or later TKI";
    HistoryImatinibIntolerantOrRefractory = "history.imatinib_intolerant_or_refractory", Bool, "derived: imatinib was tried without success (intolerant, adverse reaction, relapsed, refractory, inadequate response)";
    HistoryCyclesGiven = "history.cycles_given", Number, "cycles of the requested drug already given in this course (deprecated name for Blincyto: history.blinatumomab_cycles)";
    HistoryContinuedCyclesGiven = "history.continued_cycles_given", Number, "of those, continued-therapy cycles (deprecated name for Blincyto: history.blinatumomab_continued_cycles)";
    HistoryProgressionOnBlinatumomab = "history.progression_on_blinatumomab", Bool, "disease progressed on or after blinatumomab";
    HistoryHypersensitivity = "history.hypersensitivity", Bool, "known hypersensitivity to the requested drug or a component";
    HistoryLiveVaccineWithin2Weeks = "history.live_vaccine_within_2_weeks", Bool, "a live vaccine was given within 2 weeks before starting";
    HistoryLiveVaccinePlanned = "history.live_vaccine_planned", Bool, "a live vaccine is planned during therapy";
    HistoryUnacceptableToxicity = "history.unacceptable_toxicity", Bool, "unacceptable toxicity on the requested drug";
    HistoryResponse = "history.response", Enum(Response::VARIANTS), "disease response on the requested drug so far";
    HistoryMedicationsAdded = "history.medications_added", Bool, "other medications are added to this continuation request";
    HistoryAuthorizationCount = "history.authorization_count", Number, "derived: earlier authorizations of the requested drug in the current course: the latest one, if it ended at most COURSE_GAP_DAYS before request.date, and those before it, each ending at most COURSE_GAP_DAYS before the next began";
    HistoryRenewalCount = "history.renewal_count", Number, "derived: renewals already granted in the current course: its authorizations after the first, whatever their `renewal` flags say";
    HistoryAuthorizationsEver = "history.authorizations_ever", Number, "derived: earlier authorizations of the requested drug in the records (history.authorizations), in any course, begun on or before request.date: the records' answer to whether the drug was given before";
    HistoryLapseDays = "history.lapse_days", Number, "derived: the longest run of days without an active authorization in the year before request.date, between authorizations or from the latest one's end to request.date (0 or less when contiguous or still active; unbounded when none was active in that year)";
    PrescriberSpecialty = "prescriber.specialty", Enum(Specialty::VARIANTS), "the prescriber's specialty";
    PrescriberConsultingSpecialty = "prescriber.consulting_specialty", Enum(Specialty::VARIANTS), "specialty of a physician the prescriber consulted";
}

impl FactId {
    /// The fact's definition: the case format's, or its declaration's.
    pub fn def(self) -> &'static FactDef {
        match FACTS.get(self.index()) {
            Some(def) => def,
            None => self
                .declaration()
                .map_or(&UNDECLARED, |declared| &declared.def),
        }
    }

    /// A fact of the case format by name (declared facts are found through their engine,
    /// [`crate::declared::find`] among an engine's `declared`).
    pub fn by_name(name: &str) -> Option<FactId> {
        // Deprecated names, which policy files written before them may read.
        let name = match name {
            "history.blinatumomab_cycles" => "history.cycles_given",
            "history.blinatumomab_continued_cycles" => "history.continued_cycles_given",
            "request.infusion_days" => "request.dose_days",
            name => name,
        };
        FACTS
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| ALL_IDS.get(i).copied())
    }

    /// Position in a case's [`Facts`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Every place of a case's [`Facts`]: the case format's facts, then every place a
    /// declared fact may take.
    pub(crate) fn every_place() -> impl Iterator<Item = FactId> {
        (0..N_FACTS + MAX_DECLARED).filter_map(|i| u8::try_from(i).ok().map(FactId))
    }

    /// The declaration of a fact declared in data; `None` for the case format's facts.
    pub fn declaration(self) -> Option<&'static crate::declared::Declared> {
        let position = self.index().checked_sub(N_FACTS)?;
        crate::declared::table().get(position).copied()
    }

    /// The id of the `position`-th place for declared facts.
    pub(crate) fn declared_place(position: usize) -> Option<FactId> {
        (position < MAX_DECLARED)
            .then(|| u8::try_from(N_FACTS + position).ok().map(FactId))
            .flatten()
    }

    /// Whether the fact is declared in data (not the case format's).
    pub fn is_declared(self) -> bool {
        self.index() >= N_FACTS
    }
}

const UNDECLARED: FactDef = FactDef {
    name: "(undeclared)",
    fact_type: FactType::Bool,
    description: "",
};

/// The most distinct facts declared in data in one process: places in every fact table. A
/// declaration repeated word for word (the same directory loaded again) takes no new place.
pub const MAX_DECLARED: usize = 64;
// Each case key needs its own bit, and some bits are left for declared facts.
const _: () = assert!(CASE_KEYS.len() < 64);

/// The values of every fact for one case: the case format's facts, then the declared ones.
#[derive(Debug, Clone)]
pub struct Facts {
    values: [Value; N_FACTS + MAX_DECLARED],
    /// The requested drug's shortest cycle by its label, in days (drug catalog `limits`),
    /// filled in by the engine: not a fact a policy reads (the table of facts is full), but
    /// a bound on the cycles an approval counts in its period.
    label_shortest_cycle_days: Option<u32>,
    /// The label's longer cycles from a cycle of the course on (Blincyto's cycles 6-9, 84
    /// days), filled in with the shortest cycle: each cycle an approval counts in its period
    /// takes its own length.
    label_later_cycles: Option<crate::policy::LaterCycles>,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            values: [Value::Unknown(0); N_FACTS + MAX_DECLARED],
            label_shortest_cycle_days: None,
            label_later_cycles: None,
        }
    }
}

impl Facts {
    /// The requested drug's shortest cycle by its label, in days, when the engine knows it.
    pub fn label_shortest_cycle_days(&self) -> Option<u32> {
        self.label_shortest_cycle_days
    }

    /// Set by the engine with the label's other limits.
    pub fn set_label_shortest_cycle_days(&mut self, days: Option<u32>) {
        self.label_shortest_cycle_days = days;
    }

    /// The requested drug's longer cycles from a cycle of its course on, when the engine
    /// knows them.
    pub fn label_later_cycles(&self) -> Option<crate::policy::LaterCycles> {
        self.label_later_cycles
    }

    /// Set by the engine with the label's other limits.
    pub fn set_label_later_cycles(&mut self, later: Option<crate::policy::LaterCycles>) {
        self.label_later_cycles = later;
    }

    /// A fact's value (unknown for an id beyond the table; none is made).
    pub fn get(&self, id: FactId) -> Value {
        self.values
            .get(id.index())
            .copied()
            .unwrap_or(Value::Unknown(0))
    }

    pub fn set(&mut self, id: FactId, value: Value) {
        if let Some(slot) = self.values.get_mut(id.index()) {
            *slot = value;
        }
    }

    /// Computes every fact but `request.on_label`, which needs the drug catalog's criteria
    /// and is filled in by [`crate::Engine`]. `drug_index` maps a drug name to its position
    /// in the catalog.
    pub fn of_case(case: &Case, drug_index: impl Fn(&str) -> Option<u8>) -> Facts {
        let mut facts = Facts::default();
        facts.fill(case, drug_index);
        facts
    }

    /// [`Facts::of_case`] into an existing table, which hot paths reuse from case to case.
    pub fn fill(&mut self, case: &Case, drug_index: impl Fn(&str) -> Option<u8>) {
        self.fill_as_of(case, drug_index, None);
    }

    /// [`Facts::fill`] for a decision made on `as_of` (the day the payer received the
    /// request): the authorization history (course, renewals, lapse) is read as of that day,
    /// which an approval would start; without it, as of `request.date`.
    pub fn fill_as_of(
        &mut self,
        case: &Case,
        drug_index: impl Fn(&str) -> Option<u8>,
        as_of: Option<Date>,
    ) {
        let facts = self;
        let empty_request = Request::default();
        let empty_patient = Patient::default();
        let empty_diagnosis = Diagnosis::default();
        let empty_history = History::default();
        let empty_prescriber = Prescriber::default();
        let request = case.request.as_ref().unwrap_or(&empty_request);
        let patient = case.patient.as_ref().unwrap_or(&empty_patient);
        let diagnosis = case.diagnosis.as_ref().unwrap_or(&empty_diagnosis);
        let history = case.history.as_ref().unwrap_or(&empty_history);
        let prescriber = case.prescriber.as_ref().unwrap_or(&empty_prescriber);

        use builtin::*;
        let mut put = |id: FactId, key: usize, value: Option<Value>| {
            facts.set(id, value.unwrap_or(Value::Unknown(bit(key))));
        };
        let sym = |index: u8| Value::Symbol(index);
        let num = |n: u32| Value::Number(f64::from(n));

        let drug = request
            .drug_index
            .or_else(|| request.drug.as_deref().and_then(&drug_index));
        put(RequestDrug, 0, drug.map(sym));
        put(RequestKind, 1, request.kind.map(|v| sym(v.index())));
        put(
            RequestLineOfBusiness,
            3,
            request.line_of_business.map(|v| sym(v.index())),
        );
        put(RequestPhase, 4, request.phase.map(|v| sym(v.index())));
        put(RequestRegimen, 5, request.regimen.map(|v| sym(v.index())));
        put(
            RequestDoseUnit,
            6,
            request.dose.map(|d| sym(d.unit.index())),
        );
        put(RequestDoseDays, 7, request.dose_days().map(num));
        put(
            RequestCycleLengthDays,
            8,
            request.cycle_length_days.map(num),
        );
        // The next cycle of the course follows the ones already given (Blincyto's count
        // positions a Blincyto course only).
        let drug_name = request.drug.as_deref();
        let cycles_given = history.cycles_given_for(drug_name);
        let first_cycle = request
            .first_cycle
            .or(cycles_given.map(|given| given.saturating_add(1)));
        put(RequestFirstCycle, 10, first_cycle.map(num));
        put(RequestUnits, 12, request.units.map(num));
        put(
            RequestUnitsPeriodDays,
            13,
            request.units_period_days.map(num),
        );
        put(
            RequestDrugSource,
            14,
            request.drug_source.map(|v| sym(v.index())),
        );
        put(RequestSetting, 49, request.setting.map(|v| sym(v.index())));
        put(
            RequestRelapsedRefractoryCourse,
            25,
            match (request.setting, diagnosis.disease_status) {
                (Some(setting), _) => Some(Value::Bool(setting == Setting::RelapsedRefractory)),
                (None, Some(DiseaseStatus::Relapsed | DiseaseStatus::Refractory)) => {
                    Some(Value::Bool(true))
                }
                (None, Some(_)) => Some(salvage_in_second_remission(request, diagnosis, history)),
                (None, None) => None,
            },
        );
        put(PatientWeightKg, 16, patient.weight_kg.map(Value::Number));
        put(PatientHeightCm, 17, patient.height_cm.map(Value::Number));
        put(
            PatientNewToPlanOnTreatment,
            18,
            patient.new_to_plan_on_treatment.map(Value::Bool),
        );
        put(
            DiagnosisCondition,
            20,
            diagnosis.condition.map(|v| sym(v.index())),
        );
        put(
            DiagnosisLineage,
            21,
            diagnosis.lineage.map(|v| sym(v.index())),
        );
        put(
            DiagnosisCd19Positive,
            22,
            diagnosis.cd19_positive.map(Value::Bool),
        );
        put(
            DiagnosisCd22Positive,
            23,
            diagnosis.cd22_positive.map(Value::Bool),
        );
        put(
            DiagnosisPhStatus,
            24,
            diagnosis.ph_status.map(|v| sym(v.index())),
        );
        put(
            DiagnosisDiseaseStatus,
            25,
            diagnosis.disease_status.map(|v| sym(v.index())),
        );
        put(
            DiagnosisRemissionNumber,
            26,
            diagnosis.remission_number.map(num),
        );
        put(
            DiagnosisCompleteResponseToInduction,
            27,
            diagnosis.complete_response_to_induction.map(Value::Bool),
        );
        put(
            DiagnosisMrdStatus,
            28,
            diagnosis.mrd_status.map(|v| sym(v.index())),
        );
        put(
            DiagnosisMrdPercent,
            29,
            diagnosis.mrd_percent.map(Value::Number),
        );
        put(
            DiagnosisMrdMethod,
            30,
            diagnosis.mrd_method.map(|v| sym(v.index())),
        );
        put(
            HistoryInductionRegimen,
            31,
            history.induction_regimen.map(|v| sym(v.index())),
        );
        put(
            HistoryPriorSystemicTherapies,
            32,
            history.prior_systemic_therapies.map(num),
        );
        put(HistoryCyclesGiven, 34, cycles_given.map(num));
        put(
            HistoryContinuedCyclesGiven,
            35,
            history.continued_cycles_given_for(drug_name).map(num),
        );
        put(
            HistoryProgressionOnBlinatumomab,
            36,
            history.progression_on_blinatumomab.map(Value::Bool),
        );
        put(
            HistoryHypersensitivity,
            37,
            history.hypersensitivity.map(Value::Bool),
        );
        put(
            HistoryLiveVaccineWithin2Weeks,
            38,
            history.live_vaccine_within_2_weeks.map(Value::Bool),
        );
        put(
            HistoryLiveVaccinePlanned,
            39,
            history.live_vaccine_planned.map(Value::Bool),
        );
        put(
            HistoryUnacceptableToxicity,
            40,
            history.unacceptable_toxicity.map(Value::Bool),
        );
        put(
            HistoryResponse,
            41,
            history.response.map(|v| sym(v.index())),
        );
        put(
            HistoryMedicationsAdded,
            42,
            history.medications_added.map(Value::Bool),
        );
        put(
            PrescriberSpecialty,
            44,
            prescriber.specialty.map(|v| sym(v.index())),
        );
        put(
            PrescriberConsultingSpecialty,
            45,
            prescriber.consulting_specialty.map(|v| sym(v.index())),
        );

        facts.derive(request, patient, history, as_of);
    }

    fn derive(
        &mut self,
        request: &Request,
        patient: &Patient,
        history: &History,
        as_of: Option<Date>,
    ) {
        use builtin::*;
        const DATE: Missing = bit(2);
        const BIRTH: Missing = bit(15);
        const WEIGHT: Missing = bit(16);
        const HEIGHT: Missing = bit(17);
        const DOSE: Missing = bit(6);

        // Ages on the request date.
        let ages = match (patient.birth_date, request.date) {
            (Some(birth), Some(date)) => {
                let months = date.months_since(birth) as f64;
                let days = date.days_since(birth) as f64;
                [
                    Value::Number(days),
                    Value::Number(months),
                    Value::Number((months / 12.0).floor()),
                ]
            }
            (birth, date) => {
                let missing =
                    if birth.is_none() { BIRTH } else { 0 } | if date.is_none() { DATE } else { 0 };
                [Value::Unknown(missing); 3]
            }
        };
        self.set(PatientAgeDays, ages[0]);
        self.set(PatientAgeMonths, ages[1]);
        self.set(PatientAgeYears, ages[2]);

        // Body surface area (Mosteller).
        let bsa = match (patient.weight_kg, patient.height_cm) {
            (Some(weight), Some(height)) => Value::Number((height * weight / 3600.0).sqrt()),
            (weight, height) => Value::Unknown(
                if weight.is_none() { WEIGHT } else { 0 }
                    | if height.is_none() { HEIGHT } else { 0 },
            ),
        };
        self.set(PatientBsaM2, bsa);

        // The requested dose in each unit family. Converting between mcg/day and mcg/m²/day
        // needs the body surface area; mg/m² is a different drug's unit and compares with neither.
        let (per_day, per_m2_day, mg_per_m2) = match request.dose {
            // A dose checked per m² needs the body surface area too: ask for what that needs
            // along with the dose, so that one answer settles the check.
            None => {
                let bsa_missing = if let Value::Unknown(missing) = bsa {
                    missing
                } else {
                    0
                };
                (
                    Value::Unknown(DOSE | bsa_missing),
                    Value::Unknown(DOSE | bsa_missing),
                    Value::Unknown(DOSE),
                )
            }
            Some(dose) => {
                let scale = |f: fn(f64, f64) -> f64| match bsa {
                    Value::Number(bsa) => Value::Number(f(dose.value, bsa)),
                    other => other,
                };
                match dose.unit {
                    DoseUnit::McgPerDay => (
                        Value::Number(dose.value),
                        scale(|v, bsa| v / bsa),
                        Value::NotApplicable,
                    ),
                    DoseUnit::McgPerM2PerDay => (
                        scale(|v, bsa| v * bsa),
                        Value::Number(dose.value),
                        Value::NotApplicable,
                    ),
                    DoseUnit::MgPerM2 => (
                        Value::NotApplicable,
                        Value::NotApplicable,
                        Value::Number(dose.value),
                    ),
                }
            }
        };
        self.set(RequestDoseMcgPerDay, per_day);
        self.set(RequestDoseMcgPerM2Day, per_m2_day);
        self.set(RequestDoseMgPerM2, mg_per_m2);

        self.set(
            RequestTreatmentFreeDays,
            match (request.cycle_length_days, request.dose_days()) {
                (Some(cycle), Some(infusion)) => {
                    Value::Number(f64::from(cycle) - f64::from(infusion))
                }
                (cycle, infusion) => Value::Unknown(
                    if cycle.is_none() { bit(8) } else { 0 }
                        | if infusion.is_none() { bit(7) } else { 0 },
                ),
            },
        );

        // Earlier authorizations: the current course, and coverage over the last year.
        let course = match (&history.authorizations, as_of.or(request.date)) {
            (None, date) => {
                let date = if date.is_none() { DATE } else { 0 };
                for id in [
                    HistoryAuthorizationCount,
                    HistoryRenewalCount,
                    HistoryLapseDays,
                ] {
                    self.set(id, Value::Unknown(AUTHORIZATIONS_KEY | date));
                }
                // Undocumented: the declared position stands (see `course_position`).
                Ok(Course::default())
            }
            // Without earlier authorizations the date does not matter.
            (Some(past), _) if past.is_empty() => {
                self.set(HistoryAuthorizationCount, Value::Number(0.0));
                self.set(HistoryRenewalCount, Value::Number(0.0));
                self.set(HistoryLapseDays, Value::Number(f64::INFINITY));
                Ok(Course::default())
            }
            (Some(_), None) => {
                for id in [
                    HistoryAuthorizationCount,
                    HistoryRenewalCount,
                    HistoryLapseDays,
                ] {
                    self.set(id, Value::Unknown(DATE));
                }
                Err(DATE)
            }
            (Some(past), Some(date)) => {
                let course = current_course(past, date);
                self.set(
                    HistoryAuthorizationCount,
                    Value::Number(course.authorizations as f64),
                );
                self.set(
                    HistoryRenewalCount,
                    Value::Number(course.authorizations.saturating_sub(1) as f64),
                );
                self.set(HistoryLapseDays, Value::Number(longest_lapse(past, date)));
                Ok(course)
            }
        };
        self.set(
            HistoryAuthorizationsEver,
            match &history.authorizations {
                None => Value::Unknown(AUTHORIZATIONS_KEY),
                Some(past) => {
                    let on = as_of.or(request.date);
                    let count = past
                        .iter()
                        .filter(|a| on.is_none_or(|date| a.start <= date))
                        .count();
                    Value::Number(count as f64)
                }
            },
        );
        let first_cycle = course_position(self.get(RequestFirstCycle), course);
        self.set(RequestFirstCycle, first_cycle);

        self.set_course_position(request.cycles);
        self.set(
            RequestUnitsPerCycle,
            units_per_cycle(
                request.units,
                request.units_period_days,
                request.cycle_length_days,
                request.dose_days(),
            ),
        );

        // TKI history, by generation and outcome.
        const TKIS: Missing = bit(33);
        match &history.tkis {
            None => {
                for id in [
                    HistoryTkiFailure,
                    HistoryTki2gRelapsedOrRefractory,
                    HistoryTki2gIntolerant,
                    HistoryImatinibIntolerantOrRefractory,
                ] {
                    self.set(id, Value::Unknown(TKIS));
                }
            }
            Some(trials) => {
                use TkiOutcome as O;
                let any = |f: &dyn Fn(&TkiTrial) -> bool| Value::Bool(trials.iter().any(f));
                let failed = |o: O| o != O::Responding;
                let relapsed_or_refractory =
                    |o: O| matches!(o, O::Relapsed | O::Refractory | O::InadequateResponse);
                let intolerant = |o: O| matches!(o, O::Intolerant | O::AdverseReaction);
                self.set(HistoryTkiFailure, any(&|t| failed(t.outcome)));
                self.set(
                    HistoryTki2gRelapsedOrRefractory,
                    any(&|t| t.drug.generation() >= 2 && relapsed_or_refractory(t.outcome)),
                );
                self.set(
                    HistoryTki2gIntolerant,
                    any(&|t| t.drug.generation() >= 2 && intolerant(t.outcome)),
                );
                self.set(
                    HistoryImatinibIntolerantOrRefractory,
                    any(&|t| t.drug == Tki::Imatinib && failed(t.outcome)),
                );
            }
        }

        // Filled in by the engine from the drug catalog.
        self.set(RequestOnLabel, Value::Unknown(0));
        self.set(RequestLabelUnitsPerCycle, Value::Unknown(0));
        self.set(RequestLabelCourseCycles, Value::Unknown(0));
        self.label_shortest_cycle_days = None;
        self.label_later_cycles = None;
    }
}

/// Without `request.setting`: a second (or later) remission reached during this course of
/// the drug (cycles already given), with no minimal residual disease found and no frontline
/// phase stated, is the remission of salvage therapy, so the course still treats relapsed
/// disease; one reached before the drug is unknown, `request.setting` asked. An MRD-positive
/// remission is left to the MRD indication.
fn salvage_in_second_remission(
    request: &Request,
    diagnosis: &Diagnosis,
    history: &History,
) -> Value {
    use crate::eval::Truth;
    // A treatment phase is frontline therapy: the case format leaves it out for salvage.
    if diagnosis.disease_status != Some(DiseaseStatus::CompleteRemission) || request.phase.is_some()
    {
        return Value::Bool(false);
    }
    let second_remission = match diagnosis.remission_number {
        Some(n) => Truth::from_bool(n >= 2),
        None => Truth::Unknown(bit(26)),
    };
    let on_the_drug = match (
        history.cycles_given_for(request.drug.as_deref()),
        request.first_cycle,
    ) {
        (Some(given), _) if given >= 1 => Truth::True,
        (_, Some(first)) if first >= 2 => Truth::True,
        (Some(_), Some(_)) => Truth::False,
        _ => Truth::Unknown(bit(34) | bit(10)),
    };
    let no_residual_disease = match diagnosis.mrd_status {
        Some(status) => Truth::from_bool(status == MrdStatus::Negative),
        None => Truth::Unknown(bit(28)),
    };
    // A later remission without residual disease, reached before this course of the drug
    // (reinduction chemotherapy, then the drug as the relapse's consolidation or a bridge to
    // transplant), may be either course: the relapse's therapy, or a frontline multiphase
    // regimen's consolidation. The case says which in `request.setting`; it is asked for,
    // never read as frontline (which denied the relapse's standard therapy).
    if let (Truth::True, Truth::False, Truth::True) =
        (second_remission, on_the_drug, no_residual_disease)
    {
        return Value::Unknown(bit(49));
    }
    match second_remission.and(on_the_drug).and(no_residual_disease) {
        Truth::True => Value::Bool(true),
        Truth::False => Value::Bool(false),
        Truth::Unknown(missing) => Value::Unknown(missing),
    }
}

/// The longest break between two authorizations that still continues one course: a course
/// whose drug was not covered for longer has ended, and the next authorization starts a new
/// one (its cycles, renewals and limits count afresh). 90 days is longer than any cycle of
/// the catalog's drugs with its treatment-free interval (84 days for Blincyto's continued
/// therapy), so a course given on schedule is never split.
pub const COURSE_GAP_DAYS: i64 = 90;

/// The current course as the authorization history records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Course {
    /// Authorizations in the course.
    pub authorizations: usize,
    /// Cycles the course's authorizations state they covered (`cycles`), added up.
    pub cycles: u64,
    /// The course's authorizations that do not state their cycles.
    pub without_cycles: usize,
}

impl Course {
    /// The fewest cycles the course's authorizations covered: those they state, and at least
    /// one for each that states none (an authorization covers a cycle or it is not one).
    pub fn cycles_at_least(&self) -> u64 {
        self.cycles.saturating_add(self.without_cycles as u64)
    }
}

/// Earlier authorizations in the current course as of `date`: the latest one, if it ended at
/// most [`COURSE_GAP_DAYS`] before `date` (or is still active), and each one before it that
/// ended at most that long before the course's next one began.
pub fn current_course(past: &[PastAuthorization], date: Date) -> Course {
    let mut buffer = Periods::new();
    let periods = buffer.sorted(past.iter().filter(|a| a.start <= date));
    // Chains in start order; an authorization nested in a longer one continues its chain.
    let mut course = Course::default();
    let mut chain_end: Option<Date> = None;
    for &(start, end, cycles) in periods {
        match chain_end {
            Some(covered) if start.days_since(covered) - 1 <= COURSE_GAP_DAYS => {
                chain_end = Some(covered.max(end));
            }
            _ => {
                course = Course::default();
                chain_end = Some(end);
            }
        }
        course.authorizations += 1;
        match cycles {
            Some(n) => course.cycles = course.cycles.saturating_add(u64::from(n)),
            None => course.without_cycles += 1,
        }
    }
    match chain_end {
        Some(covered) if date.days_since(covered) - 1 <= COURSE_GAP_DAYS => course,
        _ => Course::default(),
    }
}

/// The number in the course of the first requested cycle, the records outranking the
/// request: `declared` is `request.first_cycle` as given (or after
/// `history.cycles_given`), `course` the current course of `history.authorizations`
/// (an error: the keys that would place it).
///
/// Issue 13: "The payer's records win: course position (cycles already given, the cycle a
/// request starts at, whether it continues a course) [...] come from the records [...] or,
/// on the CLI, from the case's history checked for consistency. A contradiction between
/// declared and recorded facts is bad input naming both keys, or an unknown that is asked;
/// it never passes." Interpreted as (docs/case-format.md, Course):
/// - No authorization in the current course, or none documented: the declared position.
/// - Every authorization of the course states its `cycles`: the request starts after them
///   all, or later if it says so (cycles given before the plan's records began). An
///   authorized cycle counts whether or not it was given: the label's course is what the
///   payer has authorized, so an initial request after 2 authorized cycles starts at cycle 3
///   and its course has 7 left, never a fresh 9.
/// - Some authorization states no `cycles`: each covered at least one. A declared position
///   at or beyond the cycles the records hold at least stands (the records do not
///   contradict it; cases written before `cycles` decide as they did). One below it, such as
///   an initial request declaring no cycle given within a current course, is contradicted by
///   the records and unknown, asking for `history.authorizations` (their `cycles`): never a
///   guess.
/// - Authorizations whose course cannot be placed (no decision date): unknown.
fn course_position(declared: Value, course: Result<Course, Missing>) -> Value {
    let course = match course {
        Ok(course) if course.authorizations == 0 => return declared,
        Ok(course) => course,
        Err(missing) => {
            return match declared {
                Value::Unknown(declared) => Value::Unknown(declared | missing),
                _ => Value::Unknown(missing),
            };
        }
    };
    let Value::Number(first) = declared else {
        return declared;
    };
    // Cycles before the request, as declared.
    let before = (first - 1.0).max(0.0);
    let recorded = course.cycles_at_least() as f64;
    if course.without_cycles == 0 {
        Value::Number(before.max(recorded) + 1.0)
    } else if before >= recorded {
        declared
    } else {
        Value::Unknown(AUTHORIZATIONS_KEY)
    }
}

/// The longest run of days without an active authorization in the year before `date`:
/// between two authorizations, or from the latest one's end to `date`. Days before the
/// first authorization of that year are not a lapse (the drug was not yet used). Unbounded
/// when no authorization was active in that year.
pub fn longest_lapse(past: &[PastAuthorization], date: Date) -> f64 {
    let year_before = date.add_days(-365).unwrap_or(date);
    let mut buffer = Periods::new();
    let periods = buffer.sorted(
        past.iter()
            .filter(|a| a.end >= year_before && a.start <= date),
    );
    if periods.is_empty() {
        return f64::INFINITY;
    }
    let mut longest = i64::MIN;
    let mut covered_to: Option<Date> = None;
    for &(start, end, _) in periods {
        if let Some(covered) = covered_to {
            longest = longest.max(start.days_since(covered) - 1);
        }
        covered_to = Some(covered_to.map_or(end, |c| c.max(end)));
    }
    if let Some(covered) = covered_to {
        longest = longest.max(date.days_since(covered) - 1);
    }
    longest as f64
}

/// Authorization periods (start, end, cycles) sorted by start, on the stack for the few a
/// case usually has: deriving facts allocates nothing per case.
struct Periods {
    inline: [(Date, Date, Option<u32>); 16],
    spilled: Vec<(Date, Date, Option<u32>)>,
}

impl Periods {
    fn new() -> Periods {
        let epoch = Date::from_ymd_unchecked(1970, 1, 1);
        Periods {
            inline: [(epoch, epoch, None); 16],
            spilled: Vec::new(),
        }
    }

    fn sorted<'a>(
        &'a mut self,
        past: impl Iterator<Item = &'a PastAuthorization>,
    ) -> &'a [(Date, Date, Option<u32>)] {
        let mut count = 0;
        for authorization in past {
            let period = (authorization.start, authorization.end, authorization.cycles);
            match self.inline.get_mut(count) {
                Some(slot) if self.spilled.is_empty() => *slot = period,
                _ => {
                    if self.spilled.is_empty() {
                        self.spilled.extend_from_slice(&self.inline);
                    }
                    self.spilled.push(period);
                }
            }
            count += 1;
        }
        let periods = if self.spilled.is_empty() {
            self.inline.get_mut(..count).unwrap_or_default()
        } else {
            self.spilled.as_mut_slice()
        };
        periods.sort_unstable();
        periods
    }
}

/// Billable units for each cycle, from units given for `period` days (the case format's
/// quantity rule): a period absent or equal to the cycle is one cycle; a period that holds
/// the cycle's dose days but is shorter than the cycle is one cycle too (no drug is given
/// in the treatment-free interval: 784 units per 28 days is one 28-day infusion); a shorter
/// period is a rate over the dose days (35 units per day for 28 days is 980);
/// a longer one a rate over the cycle (1,960 units per 84 days is 980 per 42-day cycle).
/// Rescaled figures round up, in the requester's favour only by a fraction of a unit. Absent
/// units are unknown with `request.units` alone, which the engine reads as "the policy's
/// maximum"; a conversion that needs a missing length is unknown with that length too.
pub fn units_per_cycle(
    units: Option<u32>,
    period: Option<u32>,
    cycle_length: Option<u32>,
    dose_days: Option<u32>,
) -> Value {
    const UNITS: Missing = UNITS_KEY;
    const INFUSION: Missing = bit(7);
    const CYCLE: Missing = bit(8);
    let Some(units) = units else {
        return Value::Unknown(UNITS);
    };
    let rescale = |to: u32, from: u32| -> Value {
        // u64: units (at most u32) times days (at most u32) cannot overflow.
        let scaled = (u64::from(units) * u64::from(to)).div_ceil(u64::from(from.max(1)));
        Value::Number(scaled as f64)
    };
    match (period, cycle_length) {
        (None, _) => Value::Number(f64::from(units)),
        (Some(period), Some(cycle)) if period == cycle => Value::Number(f64::from(units)),
        (Some(period), Some(cycle)) if period > cycle => rescale(cycle, period),
        (Some(period), Some(_)) => match dose_days {
            Some(days) if period >= days => Value::Number(f64::from(units)),
            Some(days) => rescale(days, period),
            None => Value::Unknown(INFUSION),
        },
        (Some(_), None) => Value::Unknown(CYCLE | if dose_days.is_none() { INFUSION } else { 0 }),
    }
}

impl Facts {
    /// The position of the requested cycles in the course: the last cycle and the
    /// continued-therapy cycles through it, from `request.first_cycle` (declared, or after
    /// the cycles already given) and the history's counts. `cycles` is the request's, or
    /// fewer when only a part of the request is approved.
    pub fn set_course_position(&mut self, cycles: Option<u32>) {
        use builtin::*;
        let count = |value: Value| match value {
            Value::Number(n) if n >= 0.0 => Some(n as u64),
            _ => None,
        };
        let first = count(self.get(RequestFirstCycle));
        // The keys that would place the first cycle: the declaration's or the records'.
        let first_missing = match self.get(RequestFirstCycle) {
            Value::Unknown(missing) if missing != 0 => missing,
            _ => bit(10),
        };
        // u64: no count the case format bounds can wrap.
        let last_cycle = match (cycles, first) {
            (Some(cycles), Some(first)) => Ok((first + u64::from(cycles)).saturating_sub(1)),
            (cycles, first) => Err(if cycles.is_none() { bit(9) } else { 0 }
                | if first.is_none() { first_missing } else { 0 }),
        };
        self.set(
            RequestLastCycle,
            match last_cycle {
                Ok(n) => Value::Number(n as f64),
                Err(missing) => Value::Unknown(missing),
            },
        );
        // Continued-therapy cycles are cycles 6-9 of relapsed/refractory therapy: those already
        // given, when the history says, and the requested ones from the numbering.
        // A position the records moved past the declared cycles given leaves the declared
        // continued count behind: every cycle from 6 through the last is then counted.
        let declared_given = count(self.get(HistoryCyclesGiven));
        let continued = match last_cycle {
            Ok(last) => match (count(self.get(HistoryContinuedCyclesGiven)), first) {
                (Some(given), Some(first))
                    if declared_given.is_none_or(|all| first <= all.saturating_add(1)) =>
                {
                    Value::Number((given + (last + 1).saturating_sub(first.max(6))) as f64)
                }
                _ => Value::Number(last.saturating_sub(5) as f64),
            },
            Err(missing) => Value::Unknown(missing),
        };
        self.set(RequestContinuedCycles, continued);
        self.set(
            RequestCycles,
            cycles.map_or(Value::Unknown(bit(9)), |n| Value::Number(f64::from(n))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_and_its_ids_agree() {
        for (index, id) in ALL_IDS.iter().enumerate() {
            assert_eq!(id.index(), index);
            assert_eq!(FactId::by_name(FACTS[index].name), Some(*id));
        }
        assert_eq!(key_bit("history.authorizations"), Some(1 << 43));
        assert_eq!(key_bit("history.authorizations"), Some(AUTHORIZATIONS_KEY));
        assert_eq!(key_bit("request.units"), Some(UNITS_KEY));
        assert_eq!(key_bit("request.dose"), Some(1 << 6));
        assert_eq!(key_bit("patient.birth_date"), Some(1 << 15));
    }

    fn past(start: &str, end: &str, cycles: Option<u32>) -> PastAuthorization {
        PastAuthorization {
            start: Date::parse(start).unwrap(),
            end: Date::parse(end).unwrap(),
            renewal: None,
            cycles,
        }
    }

    #[test]
    fn the_current_course_counts_its_authorizations_and_their_cycles() {
        let date = Date::parse("2026-05-18").unwrap();
        let history = [
            // An earlier course, more than 90 days before the next authorization.
            past("2023-01-02", "2023-06-30", Some(5)),
            past("2025-05-12", "2025-10-26", Some(5)),
            past("2025-10-27", "2026-04-12", None),
        ];
        let course = current_course(&history, date);
        assert_eq!(
            course,
            Course {
                authorizations: 2,
                cycles: 5,
                without_cycles: 1
            }
        );
        assert_eq!(course.cycles_at_least(), 6);
        // Ended more than 90 days before: no current course.
        let later = Date::parse("2026-08-01").unwrap();
        assert_eq!(current_course(&history, later), Course::default());
    }

    #[test]
    fn the_records_place_the_first_cycle() {
        let course = |cycles: u64, without_cycles: usize| {
            Ok(Course {
                authorizations: without_cycles + usize::from(cycles > 0),
                cycles,
                without_cycles,
            })
        };
        let first = |n: f64| Value::Number(n);
        // No current course: as declared.
        assert_eq!(
            course_position(first(1.0), Ok(Course::default())),
            first(1.0)
        );
        // Cycles stated: after them, or later when the request says more were given.
        assert_eq!(course_position(first(1.0), course(2, 0)), first(3.0));
        assert_eq!(course_position(first(6.0), course(2, 0)), first(6.0));
        // Cycles not stated: a declaration below one cycle per authorization is asked.
        assert_eq!(
            course_position(first(1.0), course(0, 1)),
            Value::Unknown(AUTHORIZATIONS_KEY)
        );
        assert_eq!(course_position(first(6.0), course(0, 1)), first(6.0));
        assert_eq!(
            course_position(first(3.0), course(2, 1)),
            Value::Unknown(AUTHORIZATIONS_KEY)
        );
        assert_eq!(course_position(first(4.0), course(2, 1)), first(4.0));
        // A course that cannot be placed: unknown, with what would place it.
        assert_eq!(
            course_position(first(1.0), Err(bit(2))),
            Value::Unknown(bit(2))
        );
    }
}
