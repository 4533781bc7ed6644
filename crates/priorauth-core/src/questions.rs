//! The questions a requester is asked: each case key in plain language with its answer type
//! and choices, and which keys a policy reads. The reviewer console's intake form and the
//! FHIR Questionnaires are both built from these.

use crate::Engine;
use crate::case;
use crate::declared::DeclaredType;
use crate::facts::{CASE_KEYS, FactId, FactType, Missing, Value as FactValue, key_bit};
use crate::policy::{CriterionIdx, Node, Outcome, Policy};

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of `choices`.
    Choice,
    Date,
    /// A number and one of `choices` as its unit.
    Dose,
    Integer,
    Decimal,
    Boolean,
    Text,
    /// A list of inhibitors (`choices`), each with an outcome (`outcomes`).
    Tkis,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Choice => "enum",
            Kind::Date => "date",
            Kind::Dose => "dose",
            Kind::Integer => "integer",
            Kind::Decimal => "number",
            Kind::Boolean => "bool",
            Kind::Text => "text",
            Kind::Tkis => "tkis",
        }
    }
}

/// A case key as a requester is asked it.
#[derive(Debug, Clone)]
pub struct Question {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    /// (value in the case format, label).
    pub choices: Vec<(String, String)>,
    /// For `Tkis`: the outcomes of each inhibitor tried.
    pub outcomes: Vec<(String, String)>,
}

/// The question of a case key; `None` for keys that are never asked on their own.
pub fn question(key: &'static str, engine: &Engine) -> Option<Question> {
    let named = |variants: &[&str]| {
        variants
            .iter()
            .map(|v| (v.to_string(), v.replace('_', " ")))
            .collect::<Vec<_>>()
    };
    let (label, kind, choices): (&'static str, Kind, Vec<(String, String)>) = match key {
        "request.drug" => (
            "Drug requested",
            Kind::Choice,
            engine
                .catalog
                .drugs
                .iter()
                .map(|d| (d.id.clone(), d.name.clone()))
                .collect(),
        ),
        "request.kind" => (
            "First request, or continuation of an authorized therapy",
            Kind::Choice,
            vec![
                ("initial".into(), "first request".into()),
                ("renewal".into(), "continuation (renewal)".into()),
            ],
        ),
        "request.date" => ("Date of the clinical facts", Kind::Date, vec![]),
        "request.line_of_business" => (
            "The member's coverage",
            Kind::Choice,
            named(case::LineOfBusiness::VARIANTS),
        ),
        "request.phase" => (
            "Treatment phase (none for relapsed or refractory disease)",
            Kind::Choice,
            named(case::Phase::VARIANTS),
        ),
        "request.setting" => (
            "What the course treats: frontline, or relapsed or refractory disease (salvage), whatever the disease's status today",
            Kind::Choice,
            named(case::Setting::VARIANTS),
        ),
        "request.regimen" => (
            "Given alone, or with which partners",
            Kind::Choice,
            named(case::Regimen::VARIANTS),
        ),
        "request.dose" => (
            "Highest daily dose (Besponsa: highest single dose)",
            Kind::Dose,
            named(case::DoseUnit::VARIANTS),
        ),
        "request.dose_days" => (
            "Days of a cycle the drug is given (infusion or dose days)",
            Kind::Integer,
            vec![],
        ),
        "request.cycle_length_days" => (
            "Days per cycle, infusion and treatment-free interval",
            Kind::Integer,
            vec![],
        ),
        "request.cycles" => (
            "Cycles requested in this authorization",
            Kind::Integer,
            vec![],
        ),
        "request.first_cycle" => (
            "Number of the first requested cycle in the course (1 = start)",
            Kind::Integer,
            vec![],
        ),
        "request.hcpcs" => ("Billing code (HCPCS)", Kind::Text, vec![]),
        "request.units" => ("Billing units requested per period", Kind::Integer, vec![]),
        "request.units_period_days" => ("Days those units cover", Kind::Integer, vec![]),
        "request.drug_source" => (
            "Where the drug the member receives now comes from",
            Kind::Choice,
            named(case::DrugSource::VARIANTS),
        ),
        "patient.birth_date" => ("Date of birth", Kind::Date, vec![]),
        "patient.weight_kg" => ("Weight (kg)", Kind::Decimal, vec![]),
        "patient.height_cm" => ("Height (cm)", Kind::Decimal, vec![]),
        "patient.new_to_plan_on_treatment" => (
            "New to the plan and already receiving the drug",
            Kind::Boolean,
            vec![],
        ),
        "diagnosis.condition" => (
            "Condition treated",
            Kind::Choice,
            named(case::Condition::VARIANTS),
        ),
        "diagnosis.lineage" => (
            "Immunophenotype (lineage) of the leukemia",
            Kind::Choice,
            named(case::Lineage::VARIANTS),
        ),
        "diagnosis.cd19_positive" => ("Leukemic blasts express CD19", Kind::Boolean, vec![]),
        "diagnosis.cd22_positive" => ("Leukemic blasts express CD22", Kind::Boolean, vec![]),
        "diagnosis.ph_status" => (
            "Philadelphia chromosome (BCR-ABL1)",
            Kind::Choice,
            named(case::PhStatus::VARIANTS),
        ),
        "diagnosis.disease_status" => (
            "Disease status now",
            Kind::Choice,
            named(case::DiseaseStatus::VARIANTS),
        ),
        "diagnosis.remission_number" => (
            "Which complete remission (1 = first, 2 = second)",
            Kind::Integer,
            vec![],
        ),
        "diagnosis.complete_response_to_induction" => (
            "Complete response after induction therapy",
            Kind::Boolean,
            vec![],
        ),
        "diagnosis.mrd_status" => (
            "Minimal residual disease (MRD)",
            Kind::Choice,
            named(case::MrdStatus::VARIANTS),
        ),
        "diagnosis.mrd_percent" => ("MRD level (%)", Kind::Decimal, vec![]),
        "diagnosis.mrd_method" => (
            "How MRD was measured",
            Kind::Choice,
            named(case::MrdMethod::VARIANTS),
        ),
        "history.induction_regimen" => (
            "Induction therapy received",
            Kind::Choice,
            named(case::InductionRegimen::VARIANTS),
        ),
        "history.prior_systemic_therapies" => (
            "Lines of systemic therapy already received",
            Kind::Integer,
            vec![],
        ),
        "history.tkis" => (
            "Tyrosine kinase inhibitors tried, and how each went",
            Kind::Tkis,
            named(case::Tki::VARIANTS),
        ),
        "history.cycles_given" => (
            "Cycles of the requested drug already given in this course",
            Kind::Integer,
            vec![],
        ),
        "history.continued_cycles_given" => {
            ("Of those, continued-therapy cycles", Kind::Integer, vec![])
        }
        "history.progression_on_blinatumomab" => (
            "Disease progressed on or after Blincyto",
            Kind::Boolean,
            vec![],
        ),
        "history.hypersensitivity" => (
            "Known hypersensitivity to the drug or a component",
            Kind::Boolean,
            vec![],
        ),
        "history.live_vaccine_within_2_weeks" => (
            "A live vaccine was given within 2 weeks before starting",
            Kind::Boolean,
            vec![],
        ),
        "history.live_vaccine_planned" => (
            "A live vaccine is planned during therapy",
            Kind::Boolean,
            vec![],
        ),
        "history.unacceptable_toxicity" => (
            "Unacceptable toxicity on the drug (CRS, neurotoxicity, …)",
            Kind::Boolean,
            vec![],
        ),
        "history.response" => (
            "Response on the drug so far",
            Kind::Choice,
            named(case::Response::VARIANTS),
        ),
        "history.medications_added" => (
            "Other medications added to this continuation",
            Kind::Boolean,
            vec![],
        ),
        "prescriber.specialty" => (
            "Prescriber's specialty",
            Kind::Choice,
            named(case::Specialty::VARIANTS),
        ),
        "prescriber.consulting_specialty" => (
            "Specialty of a physician the prescriber consulted",
            Kind::Choice,
            named(case::Specialty::VARIANTS),
        ),
        _ => return declared_question(key, engine),
    };
    let outcomes = if key == "history.tkis" {
        named(case::TkiOutcome::VARIANTS)
    } else {
        Vec::new()
    };
    Some(Question {
        key,
        label,
        kind,
        choices,
        outcomes,
    })
}

/// The question of a fact the engine's policies declared in data (`facts.toml`).
fn declared_question(key: &str, engine: &Engine) -> Option<Question> {
    let id = crate::declared::find(&engine.declared, key)?;
    let declared = id.declaration()?;
    let (kind, choices) = match (declared.value_type, declared.def.fact_type) {
        (DeclaredType::Bool, _) => (Kind::Boolean, vec![]),
        (DeclaredType::Number { .. }, _) => (Kind::Decimal, vec![]),
        (DeclaredType::Date, _) => (Kind::Date, vec![]),
        (DeclaredType::Enum, FactType::Enum(values)) => (
            Kind::Choice,
            values
                .iter()
                .map(|v| (v.to_string(), v.replace('_', " ")))
                .collect(),
        ),
        (DeclaredType::Enum, _) => return None,
    };
    Some(Question {
        key: declared.def.name,
        label: declared.question,
        kind,
        choices,
        outcomes: Vec::new(),
    })
}

/// Every question, in the case's order, then the declared facts' in their file's order.
pub fn all(engine: &Engine) -> Vec<Question> {
    CASE_KEYS
        .iter()
        .copied()
        .chain(engine.declared.iter().map(|id| id.def().name))
        .filter_map(|k| question(k, engine))
        .collect()
}

/// The case keys a policy reads, directly or through derived facts, in the case's order.
pub fn policy_keys(engine: &Engine, policy: &Policy) -> Vec<&'static str> {
    let empty = empty_facts(engine, policy);
    let mut mask = key_bit("request.drug").unwrap_or(0)
        | key_bit("request.kind").unwrap_or(0)
        | key_bit("request.date").unwrap_or(0);
    if policy.lines_of_business.is_some() {
        mask |= key_bit("request.line_of_business").unwrap_or(0);
    }
    for criterion in &policy.criteria {
        if let Node::Test(test) = &criterion.node {
            if let FactValue::Unknown(keys) = empty.get(test.fact) {
                mask |= keys;
            }
            if test.fact == FactId::RequestUnits {
                mask |= key_bit("request.units_period_days").unwrap_or(0);
            }
        }
    }
    // An approval's quantity is bounded by the pathway's and the label's ceilings, which read
    // the request's units, cycles and course position (and the body surface area of a drug
    // dosed per m²), whether or not a criterion does.
    if policy
        .pathways
        .iter()
        .any(|p| p.outcome == Outcome::Approve)
    {
        for key in [
            "request.units",
            "request.units_period_days",
            "request.cycle_length_days",
            "request.dose_days",
            "request.cycles",
            "request.first_cycle",
        ] {
            mask |= key_bit(key).unwrap_or(0);
        }
        let per_m2 = policy.drugs.iter().any(|drug| {
            engine
                .catalog
                .drugs
                .get(usize::from(*drug))
                .is_some_and(|d| !d.limits.doses_mg_per_m2.is_empty())
        });
        if per_m2 {
            mask |= key_bit("patient.weight_kg").unwrap_or(0)
                | key_bit("patient.height_cm").unwrap_or(0);
        }
    }
    policy.missing_keys(mask).collect()
}

/// The facts of an empty case as `policy` reads them: each unknown, naming its keys (a
/// declared fact by the policy's own bit for it).
fn empty_facts(engine: &Engine, policy: &Policy) -> crate::Facts {
    let mut empty = engine.facts(&case::Case::default());
    crate::declared::tag(&mut empty, &policy.declared);
    empty
}

/// The keys a policy reads only for one kind of request (initial or renewal): a form shows
/// them only on that branch. Keys read by exclusions, by applicability or by pathways of both
/// kinds are not listed.
pub fn kind_only_keys(engine: &Engine, policy: &Policy) -> Vec<(&'static str, case::RequestKind)> {
    let empty = empty_facts(engine, policy);
    let mut per_kind = [0 as Missing; 2];
    let mut shared: Missing = 0;
    for exclusion in &policy.exclusions {
        shared |= keys_of(policy, &empty, *exclusion, 0);
    }
    for pathway in &policy.pathways {
        let mut mask = 0;
        for criterion in pathway.criteria.iter().chain(&pathway.dosing) {
            mask |= keys_of(policy, &empty, *criterion, 0);
        }
        for (kind, keys) in per_kind.iter_mut().enumerate() {
            if pathway.kinds & (1 << kind) != 0 {
                *keys |= mask;
            }
        }
    }
    // A declared fact asked only for one kind of request (`kinds` in facts.toml) is that
    // kind's, whichever pathways read it.
    for (position, id) in policy.declared.iter().enumerate() {
        let Some(declared) = id.declaration() else {
            continue;
        };
        let bit: Missing = 1 << (crate::facts::FIRST_DECLARED_BIT + position);
        for (kind, keys) in per_kind.iter_mut().enumerate() {
            if declared.kinds & (1 << kind) == 0 {
                *keys &= !bit;
            }
        }
        if declared.kinds.count_ones() == 1 {
            shared &= !bit;
        }
    }
    let [initial, renewal] = per_kind;
    let only = |mask: Missing, kind| {
        policy
            .missing_keys(mask & !shared)
            .map(move |k| (k, kind))
            .collect::<Vec<_>>()
    };
    let mut keys = only(initial & !renewal, case::RequestKind::Initial);
    keys.extend(only(renewal & !initial, case::RequestKind::Renewal));
    keys
}

/// The case keys a criterion reads, through its children.
fn keys_of(policy: &Policy, empty: &crate::Facts, criterion: CriterionIdx, depth: u8) -> Missing {
    let Some(criterion) = policy.criteria.get(usize::from(criterion)) else {
        return 0;
    };
    if depth > 64 {
        return 0;
    }
    match &criterion.node {
        Node::Test(test) => match empty.get(test.fact) {
            FactValue::Unknown(keys) => keys,
            _ => 0,
        },
        Node::All(children) | Node::Any(children) => children
            .iter()
            .map(|c| keys_of(policy, empty, *c, depth + 1))
            .fold(0, |a, b| a | b),
        Node::Not(child) => keys_of(policy, empty, *child, depth + 1),
    }
}
