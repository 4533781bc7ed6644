//! A policy's decision on one request kind as a GoRules JDM (JSON Decision Model): one ZEN
//! expression node, written from the loaded policy, so that the model ZEN runs is the policy
//! file priorauth runs and a change to any criterion or ceiling changes both.
//!
//! The node's expressions, in order (a later one reads an earlier one as `$.key`):
//!
//! - `pathway`: when the policy applies (the request's drug is one it governs, its line of
//!   business one it names, when it names any), the request is of the kind exported, no
//!   exclusion is met and the request's ICD-10-CM codes are not all outside the policy's list
//!   (`eval::deny_uncovered_codes`), the id of the first `approve` pathway serving the kind
//!   that approves, else `null`. A pathway approves when its criteria are met, its dosing is
//!   met by the whole request or, for a request of more cycles than one authorization covers
//!   (`eval::ceiling_cycles`), by the part it covers, whose course position is recomputed as
//!   `Facts::set_course_position` does, and its units per cycle are within the lower of its
//!   and the label's ceilings, none requested being within (`eval::ceiling`,
//!   `eval::units_within`);
//! - `approve`: a pathway approves;
//! - `cycles`, `units_per_cycle`: what the approval covers (`eval::grant`), `null` without one.
//!
//! priorauth's facts reach ZEN as its input, a fact that does not apply or is unknown as
//! `null`; the facts priorauth does not know are also named in the input's [`UNKNOWN`] list,
//! so a test with `if_unknown` reads as the policy says when its fact is unknown, and as false
//! when it does not apply. The request's ICD-10-CM codes are the input's [`ICD10`] list.
//! In ZEN, `null == x` and `null in [..]` are false, but an ordering (`>=`) or a product of
//! `null` is an error, so every number test first asks for a value (`x != null and x >= 15`).
//!
//! A test of a `null` fact is false (or, with `if_unknown`, as stated): the answer is then one
//! of those the case can have once its unknown facts are known. Where priorauth's three-valued
//! answer is settled, every one of those is the same, so ZEN's is priorauth's; where it is not,
//! priorauth's outcome is `incomplete`. Exclusions are the exception: priorauth takes one that
//! is not settled as absent, so they are written to be true exactly when settled as met.
//!
//! Every construct of the policy types is matched by name, without a wildcard: a field or a
//! variant added to `Policy`, `Codes`, `Pathway`, `QuantityLimit`, `Criterion`, `Node`, `Test`
//! or `Check` stops this file from compiling until it is exported (or shown not to bear on
//! the decision), and a construct the model cannot carry is an [`Error`], never a silently
//! different model.

use std::cell::Cell;
use std::fmt;

use priorauth_core::Engine;
use priorauth_core::Facts;
use priorauth_core::case::RequestKind;
use priorauth_core::facts::{FACTS, FactId, FactType, Value};
use priorauth_core::policy::{
    Bound, Check, Codes, Criterion, CriterionIdx, Node, Outcome, Pathway, Policy, QuantityLimit,
    Test,
};
use serde_json::{Map, json};

/// The input's list of the facts priorauth does not know, by name (`'request.units' in
/// unknown`). A fact that does not apply is `null` without being listed.
pub const UNKNOWN: &str = "unknown";
/// The input's list of the request's ICD-10-CM codes, as priorauth compares them with the
/// policy's list: [`plain_code`].
pub const ICD10: &str = "icd10";

/// What the input gives for an unbounded fact (`f64::INFINITY`): ZEN's numbers are decimals of
/// at most 7.9e28, without an infinity. Every bound of the model is below it ([`number`]).
pub const UNBOUNDED: f64 = 1e28;

/// A diagnosis code as `Codes::icd10_covered` compares it: without its dot, in capitals.
pub fn plain_code(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '.')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// priorauth's facts and the request's diagnosis codes as ZEN's input: `{"patient":
/// {"age_years": 16, …}, …, "unknown": ["diagnosis.mrd_percent", …], "icd10": ["C9102"]}`, a
/// fact unknown or not applying as `null`.
pub fn input(engine: &Engine, facts: &Facts, codes: &[String]) -> serde_json::Value {
    let mut sections: Map<String, serde_json::Value> = Map::new();
    let mut unknown = Vec::new();
    let builtin = FACTS
        .iter()
        .map(|def| FactId::by_name(def.name).expect("fact"));
    // Then the facts the policies declare in data (facts.toml), by name like the others.
    for id in builtin.chain(engine.declared.iter().copied()) {
        let def = id.def();
        let value = match facts.get(id) {
            Value::Bool(b) => json!(b),
            // JSON and ZEN's decimals have no infinity (a lapse with no authorization in the
            // year): a number beyond every bound of the model stands for it.
            Value::Number(n) if n.is_infinite() => json!(UNBOUNDED.copysign(n)),
            Value::Number(n) => json!(n),
            Value::Symbol(s) => match def.fact_type {
                FactType::Enum(variants) => json!(variants[usize::from(s)]),
                _ => json!(engine.drug_names()[usize::from(s)]),
            },
            Value::Unknown(_) => {
                unknown.push(json!(def.name));
                serde_json::Value::Null
            }
            Value::NotApplicable => serde_json::Value::Null,
        };
        let (section, key) = def.name.split_once('.').expect("section.key");
        sections
            .entry(section)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(key.to_string(), value);
    }
    sections.insert(UNKNOWN.to_string(), serde_json::Value::Array(unknown));
    sections.insert(
        ICD10.to_string(),
        codes.iter().map(|code| json!(plain_code(code))).collect(),
    );
    serde_json::Value::Object(sections)
}

/// A policy the exporter cannot write as a ZEN model with the same meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// The expressions, `(key, expression)` in order, that decide a request of `kind`
/// (`"initial"`, `"renewal"`) by `policy`.
pub fn decision_expressions(
    engine: &Engine,
    policy: &Policy,
    kind: &str,
) -> Result<Vec<(String, String)>, Error> {
    // Each field is named: one added to `Policy` must be placed here before this compiles.
    let Policy {
        file: _,
        id,
        title: _,
        payer: _,
        document: _,
        source_file: _,
        version: _,
        // Chooses among versions of a policy (`Engine::version_for`); deciding by one version
        // does not read it.
        effective: _,
        drugs,
        lines_of_business,
        applicability: _,
        // The outcome of a met pathway whose dosing is not met: `deny`, or `review`. Neither
        // approves.
        dosing_outside,
        dosing_outside_source: _,
        codes,
        criteria,
        // `criteria`, compiled; the exporter reads the criteria themselves.
        arena: _,
        exclusions,
        pathways,
        supersedes: _,
        // Which declared facts its criteria read, for naming them in `missing`; the exporter
        // reads the criteria themselves.
        declared: _,
        acknowledged: _,
    } = policy;
    let Codes {
        // A request's billing code is checked when the case is read (`Engine::parse_case`,
        // by the drug catalog): a case with another drug's code is refused, not decided.
        hcpcs: _,
        ndc: _,
        icd10,
        icd10_source: _,
        // The same codes made plain on load; the model makes `icd10` plain itself.
        icd10_plain: _,
    } = codes;
    match dosing_outside {
        Outcome::Deny | Outcome::Review => {}
        Outcome::Approve | Outcome::Incomplete | Outcome::NotApplicable => {
            return error(format!(
                "{id}: `dosing_outside = \"{}\"` is not an outcome the exporter knows for dosing outside the limits",
                dosing_outside.as_str()
            ));
        }
    }
    let writer = Writer::new(engine, criteria, Vec::new());
    for def in FACTS {
        if let Some((section, _)) = def.name.split_once('.')
            && [UNKNOWN, ICD10].contains(&section)
        {
            return error(format!(
                "fact `{}` is in a section named as one of the model's other inputs",
                def.name
            ));
        }
    }

    let kind_position = RequestKind::VARIANTS
        .iter()
        .position(|k| *k == kind)
        .ok_or_else(|| {
            Error(format!(
                "`{kind}` is not a request kind (one of {})",
                RequestKind::VARIANTS.join(", ")
            ))
        })?;

    let mut conjuncts = Vec::new();
    // Applicability.
    let drug_mask = drugs.iter().try_fold(0u64, |mask, drug| {
        1u64.checked_shl(u32::from(*drug))
            .map(|bit| mask | bit)
            .ok_or_else(|| Error(format!("{id}: drug position {drug} out of range")))
    })?;
    conjuncts.push(writer.one_of(FactId::RequestDrug, drug_mask)?);
    if let Some(lines) = lines_of_business {
        conjuncts.push(writer.one_of(FactId::RequestLineOfBusiness, u64::from(*lines))?);
    }
    // The kind.
    conjuncts.push(writer.one_of(FactId::RequestKind, 1 << kind_position)?);
    // Exclusions: one met is a denial; one not settled is taken as absent.
    for exclusion in exclusions {
        conjuncts.push(format!(
            "not ({})",
            writer.criterion(*exclusion, 0, Mode::Surely(true))?
        ));
    }
    // Covered diagnosis codes: none given is not a denial, all outside the list is.
    if !icd10.is_empty() {
        let listed = icd10
            .iter()
            .map(|code| string(&plain_code(code)))
            .collect::<Result<Vec<_>, _>>()?;
        conjuncts.push(format!(
            "(len({ICD10}) == 0 or some({ICD10}, # in [{}]))",
            listed.join(", ")
        ));
    }

    // The facts of the ceilings and of the part of a request an authorization covers.
    let first = writer.fact_name(FactId::RequestFirstCycle)?;
    let course = writer.fact_name(FactId::RequestLabelCourseCycles)?;
    let label_units = writer.fact_name(FactId::RequestLabelUnitsPerCycle)?;
    let cycles = writer.fact_name(FactId::RequestCycles)?;
    let units = writer.fact_name(FactId::RequestUnitsPerCycle)?;
    let units_unknown = format!("{} in {UNKNOWN}", string(&units)?);
    let continued_given = writer.fact_name(FactId::HistoryContinuedCyclesGiven)?;
    // The label's course left from the request's first cycle, when the course is known
    // (`eval::ceiling`): cycles 6-9 after cycle 5 of a 9-cycle course, none after cycle 9.
    let left = format!("max([{course} - (({first} != null ? max([{first}, 1]) : 1) - 1), 0])");

    // Pathways: each approving one as `(approved ? 'its id' : the next)`, in order, so the
    // first that approves decides, as in `eval::decide`.
    let mut approving: Vec<(&str, String, [String; 2])> = Vec::new();
    for pathway in pathways {
        // Each field is named, as for `Policy`.
        let Pathway {
            id: pathway_id,
            title: _,
            kinds,
            outcome,
            criteria: pathway_criteria,
            dosing,
            // An approval with a duration and no request date is `incomplete`: counted apart.
            authorization: _,
            authorization_source: _,
            quantity,
            // Only a shortcut: re-evaluating a dosing that does not read the course position
            // for fewer cycles gives the same truth, which the model computes anyway.
            dosing_reads_course: _,
            line: _,
        } = pathway;
        match outcome {
            Outcome::Approve => {}
            // A review pathway routes to a clinician; it never approves.
            Outcome::Review => continue,
            Outcome::Deny | Outcome::Incomplete | Outcome::NotApplicable => {
                return error(format!(
                    "{id}: pathway `{pathway_id}` has outcome `{}`, which the exporter does not know for a pathway",
                    outcome.as_str()
                ));
            }
        }
        let every_kind = (1u32 << RequestKind::VARIANTS.len()) - 1;
        if kinds & !every_kind != 0 {
            return error(format!(
                "{id}: pathway `{pathway_id}` serves a request kind the exporter does not know"
            ));
        }
        if kinds & (1 << kind_position) == 0 {
            continue;
        }
        let (most_cycles, most_units) = match quantity {
            Some(QuantityLimit {
                cycles,
                units_per_cycle,
                // Where the document states it.
                source: _,
            }) => (*cycles, *units_per_cycle),
            None => (None, None),
        };
        // The lower of the pathway's and the label's ceilings (`eval::ceiling`); either one
        // unbounded is a ceiling of nothing.
        let ceiling_cycles = match most_cycles {
            Some(most) => format!("({course} != null ? floor(min([{most}, {left}])) : {most})"),
            None => format!("({course} != null ? floor({left}) : 0)"),
        };
        let ceiling_units = match most_units {
            Some(most) => format!(
                "({label_units} != null ? max([floor(min([{most}, {label_units}])), 0]) : {most})"
            ),
            None => format!(
                "({label_units} != null ? min([max([floor({label_units}), 0]), {}]) : 0)",
                u32::MAX
            ),
        };
        // The cycles one authorization covers (`eval::ceiling_cycles`): none without a course.
        let part_cycles = match most_cycles {
            Some(most) => format!("({course} != null ? floor(min([{most}, {left}])) : 0)"),
            None => format!("({course} != null ? floor({left}) : 0)"),
        };

        // The criteria, and the dosing of the whole request.
        let mut parts = vec![writer.all(pathway_criteria, Mode::Some)?];
        let whole = writer.all(dosing, Mode::Some)?;
        // The dosing of the part one authorization covers, when the request asks for more
        // cycles: its course position recomputed as `Facts::set_course_position` does, `null`
        // (unknown) without a first cycle.
        let part_last = format!(
            "(({first} != null and {first} >= 0) ? max([trunc({first}) + {part_cycles} - 1, 0]) : null)"
        );
        let part_continued = format!(
            "({part_last} == null ? null : (({continued_given} != null and {continued_given} >= 0) ? trunc({continued_given}) + max([{part_last} + 1 - max([trunc({first}), 6]), 0]) : max([{part_last} - 5, 0])))"
        );
        let part_writer = Writer::new(
            engine,
            criteria,
            vec![
                (FactId::RequestLastCycle, part_last),
                (FactId::RequestContinuedCycles, part_continued),
                (FactId::RequestCycles, part_cycles.clone()),
            ],
        );
        let part_dosing = part_writer.all(dosing, Mode::Some)?;
        if part_writer.used().contains(&true) {
            parts.push(format!(
                "({whole} or ({cycles} != null and {part_cycles} > 0 and {cycles} > {part_cycles} and {part_dosing}))"
            ));
        } else {
            // The part's dosing reads as the whole's: not met either.
            parts.push(whole);
        }
        // Units per cycle within the ceiling (`eval::units_within`); none requested is within.
        parts.push(format!(
            "({ceiling_cycles} > 0 and {ceiling_units} > 0 and ({units} != null ? {units} <= {ceiling_units} : {units_unknown}))"
        ));
        // What an approval covers (`eval::grant`): the cycles and the units per cycle
        // requested, each at most the ceiling, which an approval without them carries.
        let grant = [
            format!("({cycles} != null ? min([{cycles}, {ceiling_cycles}]) : {ceiling_cycles})"),
            format!("({units} != null ? min([{units}, {ceiling_units}]) : {ceiling_units})"),
        ];
        approving.push((pathway_id, group(&parts, "and"), grant));
    }

    // The first approving pathway, when the policy applies and nothing denies.
    let mut chosen = "null".to_string();
    for (pathway_id, approves, _) in approving.iter().rev() {
        chosen = format!("({approves} ? {} : {chosen})", string(pathway_id)?);
    }
    let mut expressions = vec![(
        "pathway".to_string(),
        format!("(({}) ? {chosen} : null)", conjuncts.join(" and ")),
    )];
    expressions.push(("approve".to_string(), "$.pathway != null".to_string()));
    for (key, position) in [("cycles", 0), ("units_per_cycle", 1)] {
        let mut value = "null".to_string();
        for (pathway_id, _, grant) in approving.iter().rev() {
            value = format!(
                "($.pathway == {} ? {} : {value})",
                string(pathway_id)?,
                grant[position]
            );
        }
        expressions.push((key.to_string(), value));
    }
    Ok(expressions)
}

/// The JDM of one expression node: request → decision → response.
pub fn jdm(name: &str, expressions: &[(String, String)]) -> serde_json::Value {
    let node = |id: &str, kind: &str, name: &str, x: u32| json!({"id": id, "type": kind, "name": name, "position": {"x": x, "y": 0}});
    let mut expression_node = node("decision", "expressionNode", name, 300);
    let expressions: Vec<_> = expressions
        .iter()
        .map(|(key, value)| json!({"id": key, "key": key, "value": value}))
        .collect();
    expression_node["content"] = json!({"expressions": expressions});
    json!({
        "contentType": "application/vnd.gorules.decision",
        "nodes": [node("request", "inputNode", "Request", 0), expression_node, node("response", "outputNode", "Response", 600)],
        "edges": [
            {"id": "request-decision", "sourceId": "request", "targetId": "decision", "type": "edge"},
            {"id": "decision-response", "sourceId": "decision", "targetId": "response", "type": "edge"},
        ],
    })
}

/// `(a and b)`, or `a` alone.
fn group(parts: &[String], operator: &str) -> String {
    match parts {
        [one] => one.clone(),
        _ => format!("({})", parts.join(&format!(" {operator} "))),
    }
}

/// How a criterion is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each test of a `null` fact false, or as its `if_unknown` says when the fact is
    /// unknown: one of the answers the criterion can have once the unknown facts are known,
    /// the answer itself when it is settled.
    Some,
    /// True exactly when the criterion is settled as met (`Surely(true)`) or as not met
    /// (`Surely(false)`).
    Surely(bool),
}

struct Writer<'a> {
    engine: &'a Engine,
    criteria: &'a [Criterion],
    /// Facts read from another value of the model than the input's (a part of the request),
    /// `null` there when unknown; and whether a criterion read them.
    substitutes: Vec<(FactId, String, Cell<bool>)>,
}

/// Criteria nest at most this deep in a loaded policy (`policy::MAX_NESTING`); deeper is a
/// loop the loader did not catch.
const MAX_DEPTH: usize = priorauth_core::policy::MAX_NESTING + 1;

impl<'a> Writer<'a> {
    fn new(
        engine: &'a Engine,
        criteria: &'a [Criterion],
        substitutes: Vec<(FactId, String)>,
    ) -> Writer<'a> {
        Writer {
            engine,
            criteria,
            substitutes: substitutes
                .into_iter()
                .map(|(fact, name)| (fact, name, Cell::new(false)))
                .collect(),
        }
    }

    /// Whether each of the first three substitutes was read.
    fn used(&self) -> [bool; 3] {
        std::array::from_fn(|i| self.substitutes.get(i).is_some_and(|s| s.2.get()))
    }

    /// Every criterion of a list met (`true` for none).
    fn all(&self, list: &[CriterionIdx], mode: Mode) -> Result<String, Error> {
        let parts = list
            .iter()
            .map(|idx| self.criterion(*idx, 0, mode))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if parts.is_empty() {
            "true".to_string()
        } else {
            group(&parts, "and")
        })
    }

    fn criterion(&self, idx: CriterionIdx, depth: usize, mode: Mode) -> Result<String, Error> {
        let Some(criterion) = self.criteria.get(usize::from(idx)) else {
            return error(format!("criterion #{idx} does not exist"));
        };
        if depth > MAX_DEPTH {
            return error(format!(
                "criterion `{}` nests deeper than {MAX_DEPTH}",
                criterion.id
            ));
        }
        let Criterion {
            id,
            text: _,
            unmet: _,
            source: _,
            node,
            line: _,
        } = criterion;
        let children = |list: &[CriterionIdx], operator: &str| {
            let parts = list
                .iter()
                .map(|child| self.criterion(*child, depth + 1, mode))
                .collect::<Result<Vec<_>, _>>()?;
            if parts.is_empty() {
                return error(format!("criterion `{id}` groups no criteria"));
            }
            Ok(group(&parts, operator))
        };
        // Settled as not met: a group of all is when one of its children is, of any when all
        // are; `not` turns the one into the other.
        let (all, any) = match mode {
            Mode::Some | Mode::Surely(true) => ("and", "or"),
            Mode::Surely(false) => ("or", "and"),
        };
        match node {
            Node::Test(test) => self.test(id, test, mode),
            Node::All(list) => children(list, all),
            Node::Any(list) => children(list, any),
            Node::Not(inner) => match mode {
                Mode::Some => Ok(format!(
                    "not ({})",
                    self.criterion(*inner, depth + 1, mode)?
                )),
                Mode::Surely(met) => self.criterion(*inner, depth + 1, Mode::Surely(!met)),
            },
        }
    }

    fn test(&self, id: &str, test: &Test, mode: Mode) -> Result<String, Error> {
        let Test {
            fact,
            check,
            if_unknown,
        } = test;
        let (name, mut unknown) = self.fact_ref(*fact)?;
        // Met: false for a `null` fact, known or not.
        let met = match (check, fact.def().fact_type) {
            (Check::Is(expected), FactType::Bool) => format!("{name} == {expected}"),
            (Check::OneOf(mask), FactType::Enum(_) | FactType::Drug) => {
                self.one_of_named(&name, *fact, *mask)?
            }
            (Check::Range { min, max, per_days }, FactType::Number) => {
                // `value / period` against `bound / per_days`, cross-multiplied as `eval` does.
                let (value, scale, mut known) = match per_days {
                    None => (name.clone(), String::new(), format!("{name} != null")),
                    Some(per_days) => {
                        let (period, period_unknown) =
                            self.fact_ref(FactId::RequestUnitsPeriodDays)?;
                        // Unknown too when the fact is known and its period is not.
                        unknown = format!("({unknown} or ({name} != null and {period_unknown}))");
                        (
                            format!("{name} * {}", number(id, *per_days)?),
                            format!(" * {period}"),
                            format!("{name} != null and {period} != null"),
                        )
                    }
                };
                for (bound, strict, inclusive) in [(min, ">", ">="), (max, "<", "<=")] {
                    if let Some(Bound {
                        value: limit,
                        inclusive: is_inclusive,
                    }) = bound
                    {
                        let operator = if *is_inclusive { inclusive } else { strict };
                        known.push_str(&format!(
                            " and {value} {operator} {}{scale}",
                            number(id, *limit)?
                        ));
                    }
                }
                format!("({known})")
            }
            (check, fact_type) => {
                return error(format!(
                    "criterion `{id}`: a {check:?} test of `{name}`, a fact of type {fact_type:?}"
                ));
            }
        };
        // `met` is false whenever `unknown` is true, which the forms below rely on.
        Ok(match (mode, if_unknown) {
            (Mode::Some | Mode::Surely(true), Some(true)) => format!("({unknown} or {met})"),
            (Mode::Some | Mode::Surely(true), None | Some(false)) => met,
            (Mode::Surely(false), Some(false)) => format!("not ({met})"),
            (Mode::Surely(false), None | Some(true)) => {
                format!("(not ({unknown}) and not ({met}))")
            }
        })
    }

    /// The fact's name in the model and the expression true when it is unknown.
    fn fact_ref(&self, fact: FactId) -> Result<(String, String), Error> {
        if let Some((_, name, used)) = self.substitutes.iter().find(|s| s.0 == fact) {
            used.set(true);
            return Ok((name.clone(), format!("{name} == null")));
        }
        let name = self.fact_name(fact)?;
        let unknown = format!("{} in {UNKNOWN}", string(&name)?);
        Ok((name, unknown))
    }

    /// `fact == 'a'`, `fact in ['a', 'b']`, or `false` for the empty set.
    fn one_of(&self, fact: FactId, mask: u64) -> Result<String, Error> {
        let (name, _) = self.fact_ref(fact)?;
        self.one_of_named(&name, fact, mask)
    }

    fn one_of_named(&self, name: &str, fact: FactId, mask: u64) -> Result<String, Error> {
        let drug_names: Vec<&str>;
        let values: &[&str] = match fact.def().fact_type {
            FactType::Enum(variants) => variants,
            FactType::Drug => {
                drug_names = self
                    .engine
                    .drug_names()
                    .iter()
                    .map(String::as_str)
                    .collect();
                &drug_names
            }
            other => {
                return error(format!(
                    "`{name}` is a fact of type {other:?}, tested for a set of values"
                ));
            }
        };
        if values.len() < 64 && mask >> values.len() != 0 {
            return error(format!(
                "a test of `{name}` names a value it cannot take (bits {mask:#b})"
            ));
        }
        let chosen = values
            .iter()
            .enumerate()
            .filter(|(position, _)| mask & (1 << position) != 0)
            .map(|(_, value)| string(value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match chosen.as_slice() {
            [] => "false".to_string(),
            [one] => format!("{name} == {one}"),
            many => format!("{name} in [{}]", many.join(", ")),
        })
    }

    /// The fact's path in ZEN's input: `patient.age_years`.
    fn fact_name(&self, fact: FactId) -> Result<String, Error> {
        let name = fact.def().name;
        match name.split_once('.') {
            Some((section, key)) if plain(section) && plain(key) => Ok(name.to_string()),
            _ => error(format!(
                "fact `{name}` is not a `section.key` path ZEN can read"
            )),
        }
    }
}

/// A name ZEN reads as one: lower-case letters, digits and `_`, not a keyword.
fn plain(part: &str) -> bool {
    part.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            part,
            "and" | "or" | "not" | "in" | "true" | "false" | "null"
        )
}

/// A ZEN string literal.
fn string(value: &str) -> Result<String, Error> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.+ /".contains(c))
    {
        Ok(format!("'{value}'"))
    } else {
        error(format!(
            "value `{value}` needs quoting the exporter does not do"
        ))
    }
}

/// A ZEN number literal that reads back as the same `f64`, below what stands for an unbounded
/// fact.
fn number(id: &str, value: f64) -> Result<String, Error> {
    let text = format!("{value}");
    if !value.is_finite() || value.abs() >= UNBOUNDED || text.parse::<f64>() != Ok(value) {
        return error(format!(
            "criterion `{id}`: bound {value} is not a number ZEN can read"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
id = "p"
title = "t"
payer = "x"
document = "d"
source_file = "d.txt"
version = "1"
dosing_outside = "deny"
dosing_outside_source = { section = "s", quote = "q" }
applies = { drugs = ["blinatumomab"], lines_of_business = ["medicaid"], section = "s", quote = "q" }
exclusions = ["hypersensitive", "vaccine"]

[codes]
icd10 = ["C91.00", "c9101"]

[[pathway]]
id = "first-line"
title = "t"
kinds = ["initial"]
outcome = "approve"
criteria = ["adult", "frontline"]
dosing = ["units", "up-to-4"]
authorization = { years = 1 }
authorization_source = { section = "s", quote = "q" }
[pathway.quantity]
cycles = 4
units_per_cycle = 980
section = "s"
quote = "q"

[[pathway]]
id = "again"
title = "t"
kinds = ["renewal"]
outcome = "approve"
criteria = ["adult"]
dosing = ["rate"]
authorization = { years = 1 }
authorization_source = { section = "s", quote = "q" }

[criteria.adult]
text = "adult"
section = "s"
quote = "q"
fact = "patient.age_years"
ge = 18

[criteria.frontline]
text = "not relapsed"
section = "s"
quote = "q"
not = "relapsed"

[criteria.relapsed]
text = "relapsed"
section = "s"
quote = "q"
fact = "diagnosis.disease_status"
in = ["relapsed", "refractory"]

[criteria.units]
text = "units"
section = "s"
quote = "q"
fact = "request.units_per_cycle"
le = 980
if_unknown = true

[criteria.up-to-4]
text = "up to cycle 4"
section = "s"
quote = "q"
fact = "request.last_cycle"
le = 4

[criteria.rate]
text = "rate"
section = "s"
quote = "q"
fact = "request.units"
per_days = 42
gt = 0
le = 980

[criteria.hypersensitive]
text = "hypersensitive"
section = "s"
quote = "q"
fact = "history.hypersensitivity"
is = true

[criteria.vaccine]
text = "a live vaccine planned, unless documented otherwise"
section = "s"
quote = "q"
not = "no-vaccine"

[criteria.no-vaccine]
text = "no live vaccine planned"
section = "s"
quote = "q"
fact = "history.live_vaccine_planned"
is = false
"#;

    fn export(text: &str, kind: &str) -> Result<Vec<(String, String)>, Error> {
        let engine = Engine::bundled().expect("bundled policies");
        let policy = priorauth_core::policy::load_policy("p.toml", text, engine.drug_names())
            .expect("policy loads");
        decision_expressions(&engine, &policy, kind)
    }

    fn get<'a>(expressions: &'a [(String, String)], key: &str) -> &'a str {
        expressions
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e.as_str())
            .unwrap_or_else(|| panic!("no `{key}` in {expressions:#?}"))
    }

    #[test]
    fn every_construct_is_written() {
        let initial = export(POLICY, "initial").unwrap();
        let keys: Vec<&str> = initial.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["pathway", "approve", "cycles", "units_per_cycle"]);
        let gate = |kind: &str| {
            format!(
                "request.drug == 'blinatumomab' and request.line_of_business == 'medicaid' and request.kind == '{kind}' \
                 and not (history.hypersensitivity == true) \
                 and not ((not ('history.live_vaccine_planned' in unknown) and not (history.live_vaccine_planned == false))) \
                 and (len(icd10) == 0 or some(icd10, # in ['C9100', 'C9101']))"
            )
        };
        // The course left from the first cycle; the pathway's ceilings and its part.
        let left = "max([request.label_course_cycles - ((request.first_cycle != null ? max([request.first_cycle, 1]) : 1) - 1), 0])";
        let ceiling_cycles =
            format!("(request.label_course_cycles != null ? floor(min([4, {left}])) : 4)");
        let part_cycles =
            format!("(request.label_course_cycles != null ? floor(min([4, {left}])) : 0)");
        let ceiling_units = "(request.label_units_per_cycle != null ? max([floor(min([980, request.label_units_per_cycle])), 0]) : 980)";
        let part_last = format!(
            "((request.first_cycle != null and request.first_cycle >= 0) ? max([trunc(request.first_cycle) + {part_cycles} - 1, 0]) : null)"
        );
        let units = "('request.units_per_cycle' in unknown or (request.units_per_cycle != null and request.units_per_cycle <= 980))";
        let approves = format!(
            "(((patient.age_years != null and patient.age_years >= 18) and not (diagnosis.disease_status in ['relapsed', 'refractory'])) \
             and (({units} and (request.last_cycle != null and request.last_cycle <= 4)) \
             or (request.cycles != null and {part_cycles} > 0 and request.cycles > {part_cycles} \
             and ({units} and ({part_last} != null and {part_last} <= 4)))) \
             and ({ceiling_cycles} > 0 and {ceiling_units} > 0 \
             and (request.units_per_cycle != null ? request.units_per_cycle <= {ceiling_units} : 'request.units_per_cycle' in unknown)))"
        );
        assert_eq!(
            get(&initial, "pathway"),
            format!(
                "(({}) ? ({approves} ? 'first-line' : null) : null)",
                gate("initial")
            )
        );
        assert_eq!(get(&initial, "approve"), "$.pathway != null");
        assert_eq!(
            get(&initial, "cycles"),
            format!(
                "($.pathway == 'first-line' ? (request.cycles != null ? min([request.cycles, {ceiling_cycles}]) : {ceiling_cycles}) : null)"
            )
        );
        assert_eq!(
            get(&initial, "units_per_cycle"),
            format!(
                "($.pathway == 'first-line' ? (request.units_per_cycle != null ? min([request.units_per_cycle, {ceiling_units}]) : {ceiling_units}) : null)"
            )
        );

        // The renewal pathway: no quantity stated, the label's ceilings alone; a rate; and
        // no part, since its dosing does not read the course position.
        let renewal = export(POLICY, "renewal").unwrap();
        let ceiling_cycles = format!("(request.label_course_cycles != null ? floor({left}) : 0)");
        let ceiling_units = "(request.label_units_per_cycle != null ? min([max([floor(request.label_units_per_cycle), 0]), 4294967295]) : 0)";
        assert_eq!(
            get(&renewal, "pathway"),
            format!(
                "(({}) ? (((patient.age_years != null and patient.age_years >= 18) \
                 and (request.units != null and request.units_period_days != null \
                 and request.units * 42 > 0 * request.units_period_days and request.units * 42 <= 980 * request.units_period_days) \
                 and ({ceiling_cycles} > 0 and {ceiling_units} > 0 \
                 and (request.units_per_cycle != null ? request.units_per_cycle <= {ceiling_units} : 'request.units_per_cycle' in unknown))) \
                 ? 'again' : null) : null)",
                gate("renewal")
            )
        );
    }

    #[test]
    fn a_test_reads_as_stated_when_its_fact_is_unknown() {
        // Taken as met when unknown, in an exclusion: met when unknown or met, not met only
        // when known and not met.
        let text = POLICY.replace(
            "fact = \"history.hypersensitivity\"",
            "if_unknown = true\nfact = \"history.hypersensitivity\"",
        );
        assert!(get(&export(&text, "initial").unwrap(), "pathway").contains(
            "not (('history.hypersensitivity' in unknown or history.hypersensitivity == true))"
        ));
        // Taken as not met when unknown, under a `not`: settled as not met when unknown too.
        let text = POLICY.replace(
            "fact = \"history.live_vaccine_planned\"",
            "if_unknown = false\nfact = \"history.live_vaccine_planned\"",
        );
        assert!(
            get(&export(&text, "initial").unwrap(), "pathway")
                .contains("not (not (history.live_vaccine_planned == false))")
        );
    }

    #[test]
    fn every_bundled_policy_exports() {
        let engine = Engine::bundled().expect("bundled policies");
        for policy in &engine.policies {
            for kind in RequestKind::VARIANTS {
                if let Err(error) = decision_expressions(&engine, policy, kind) {
                    panic!("{} ({kind}): {error}", policy.id);
                }
            }
        }
    }

    /// The part of a request an authorization covers differs from the request in the three
    /// facts the model recomputes, and in no other.
    #[test]
    fn a_part_changes_the_course_position_only() {
        let engine = Engine::bundled().expect("bundled policies");
        let mut rng = priorauth_core::generate::Rng::new(3);
        let positioned = [
            FactId::RequestLastCycle,
            FactId::RequestContinuedCycles,
            FactId::RequestCycles,
        ];
        for i in 0..500 {
            let case = priorauth_core::generate::case(&mut rng, i, 10);
            let facts = engine.facts(&engine.parse_case(&case.to_string()).unwrap());
            for cycles in 0..6 {
                let mut part = facts.clone();
                part.set_course_position(Some(cycles));
                for (index, def) in FACTS.iter().enumerate() {
                    let id = FactId::by_name(def.name).unwrap();
                    assert_eq!(id.index(), index);
                    if !positioned.contains(&id) {
                        assert_eq!(part.get(id), facts.get(id), "{}", def.name);
                    }
                }
            }
        }
    }

    #[test]
    fn codes_compare_as_the_policy_compares_them() {
        let codes = Codes {
            icd10: vec!["C91.00".into(), "c9101".into()],
            ..Codes::default()
        };
        for given in [
            vec!["C91.00"],
            vec!["C9100"],
            vec!["c91.01"],
            vec!["C92.00"],
            vec!["C92.00", "C91.01"],
            vec![],
        ] {
            let given: Vec<String> = given.into_iter().map(String::from).collect();
            let plain_given: Vec<String> = given.iter().map(|c| plain_code(c)).collect();
            let listed: Vec<String> = codes.icd10.iter().map(|c| plain_code(c)).collect();
            let ours = (!given.is_empty()).then(|| plain_given.iter().any(|c| listed.contains(c)));
            assert_eq!(codes.icd10_covered(&given), ours, "{given:?}");
        }
    }

    #[test]
    fn an_unbounded_fact_is_beyond_every_bound() {
        let engine = Engine::bundled().expect("bundled policies");
        let case = engine
            .parse_case(r#"{"request": {"date": "2026-06-01"}, "history": {"authorizations": []}}"#)
            .unwrap();
        let facts = engine.facts(&case);
        assert_eq!(
            facts.get(FactId::HistoryLapseDays),
            Value::Number(f64::INFINITY)
        );
        let model = jdm(
            "t",
            &[(
                "beyond".to_string(),
                format!("history.lapse_days > {}", number("t", 9.9e27).unwrap()),
            )],
        );
        let content: zen_engine::model::DecisionContent = serde_json::from_value(model).unwrap();
        let decision = zen_engine::DecisionEngine::default().create_decision(content.into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = runtime
            .block_on(decision.evaluate(input(&engine, &facts, &[]).into()))
            .unwrap();
        assert_eq!(serde_json::Value::from(response.result)["beyond"], true);
        assert!(number("t", UNBOUNDED).is_err());
    }
}
