//! DTR: a Questionnaire per policy, generated from the facts the policy reads (linkId = case
//! key), a draft QuestionnaireResponse pre-filled from what the order and the records say, and
//! the adaptive form (`$next-question`) that asks only what can still change the outcome.

// FHIR JSON is read and written with serde_json's `value["key"]` indexing: a read of a
// missing key is `Null` (never a panic), and writes go only into objects built here or
// already read as that resource type.
#![allow(clippy::indexing_slicing)]

use priorauth_core::case::RequestKind;
use priorauth_core::facts::{CASE_KEYS, key_bit};
use priorauth_core::questions::{self, Kind, Question};
use priorauth_core::{Engine, Outcome, Policy};
use serde_json::{Value, json};

use crate::DTR;
use crate::map::Map;

const UCUM: &str = "http://unitsofmeasure.org";
const UNIT_OPTION: &str = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption";
const ADAPTIVE: &str =
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-questionnaireAdaptive";

/// Keys the plan or the records give, never asked of the requester.
const NOT_ASKED: [&str; 2] = ["request.line_of_business", "history.authorizations"];

/// Where the service publishes its Questionnaires and code systems.
#[derive(Debug, Clone)]
pub struct Canonical {
    pub base: String,
}

impl Canonical {
    pub fn questionnaire(&self, policy: &str) -> String {
        format!("{}/Questionnaire/{policy}", self.base)
    }
    pub fn adaptive(&self, policy: &str) -> String {
        format!("{}/Questionnaire/{policy}-adaptive", self.base)
    }
    /// The code system of one case key's values.
    pub fn values(&self, key: &str) -> String {
        format!("{}/CodeSystem/{key}", self.base)
    }
}

/// The policy id a Questionnaire canonical names (`…/Questionnaire/ID[-adaptive][|version]`),
/// or an adaptive response's reference to its contained form (`#ID-adaptive`).
pub fn policy_of(canonical: &str) -> Option<&str> {
    let url = canonical.split('|').next()?;
    let last = url.rsplit('/').next()?.trim_start_matches('#');
    Some(last.strip_suffix("-adaptive").unwrap_or(last))
}

/// Conditions under which a question matters, beyond the request kind: (key, controlling
/// key, operator, answer).
fn dependencies(canonical: &Canonical) -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let coding = |key: &str, code: &str| json!({"answerCoding": {"system": canonical.values(key), "code": code}});
    vec![
        (
            "diagnosis.remission_number",
            "diagnosis.disease_status",
            "=",
            coding("diagnosis.disease_status", "complete_remission"),
        ),
        (
            "diagnosis.mrd_percent",
            "diagnosis.mrd_status",
            "exists",
            json!({"answerBoolean": true}),
        ),
        (
            "diagnosis.mrd_method",
            "diagnosis.mrd_status",
            "exists",
            json!({"answerBoolean": true}),
        ),
        (
            "history.blinatumomab_continued_cycles",
            "history.blinatumomab_cycles",
            ">",
            json!({"answerInteger": 0}),
        ),
        (
            "prescriber.consulting_specialty",
            "prescriber.specialty",
            "=",
            coding("prescriber.specialty", "other"),
        ),
    ]
}

/// The keys a policy's form asks, in the case's order.
pub fn asked_keys(engine: &Engine, policy: &Policy) -> Vec<&'static str> {
    questions::policy_keys(engine, policy)
        .into_iter()
        .filter(|k| {
            !NOT_ASKED.contains(k)
                || (*k == "request.line_of_business" && policy.lines_of_business.is_some())
        })
        .collect()
}

/// The items of one question (two for the TKI list: whether any was tried, and the list).
pub fn items(
    question: &Question,
    canonical: &Canonical,
    map: &Map,
    enable_when: Vec<Value>,
) -> Vec<Value> {
    let options = |key: &str, list: &[(String, String)]| -> Vec<Value> {
        list.iter()
            .map(|(code, display)| json!({"valueCoding": {"system": canonical.values(key), "code": code, "display": display}}))
            .collect()
    };
    let mut item = json!({"linkId": question.key, "text": question.label});
    let kind = match question.kind {
        Kind::Choice => {
            item["answerOption"] = json!(options(question.key, &question.choices));
            "choice"
        }
        Kind::Date => "date",
        Kind::Integer => "integer",
        Kind::Decimal => "decimal",
        Kind::Boolean => "boolean",
        Kind::Text => "string",
        Kind::Dose => {
            item["extension"] = json!(question
                .choices
                .iter()
                .map(|(unit, _)| json!({"url": UNIT_OPTION, "valueCoding": {"system": UCUM, "code": ucum_of(map, unit), "display": unit}}))
                .collect::<Vec<_>>());
            "quantity"
        }
        Kind::Tkis => {
            let tried = json!({"linkId": "history.tkis.tried", "text": "A tyrosine kinase inhibitor was tried", "type": "boolean"});
            let mut tried = with_conditions(tried, &enable_when);
            tried["required"] = json!(false);
            let group = json!({
                "linkId": "history.tkis", "text": question.label, "type": "group", "repeats": true,
                "enableWhen": [{"question": "history.tkis.tried", "operator": "=", "answerBoolean": true}],
                "item": [
                    {"linkId": "history.tkis.drug", "text": "Inhibitor", "type": "choice", "answerOption": options("history.tkis.drug", &question.choices)},
                    {"linkId": "history.tkis.outcome", "text": "How it went", "type": "choice", "answerOption": options("history.tkis.outcome", &question.outcomes)},
                ],
            });
            return vec![tried, group];
        }
    };
    item["type"] = json!(kind);
    if question.key == "diagnosis.icd10" {
        item["repeats"] = json!(true);
    }
    if question.key == "request.line_of_business" {
        item["readOnly"] = json!(true);
    }
    vec![with_conditions(item, &enable_when)]
}

fn with_conditions(mut item: Value, enable_when: &[Value]) -> Value {
    if !enable_when.is_empty() {
        item["enableWhen"] = json!(enable_when);
        if enable_when.len() > 1 {
            item["enableBehavior"] = json!("all");
        }
    }
    item
}

/// The conditions of a question within a policy's form.
fn conditions(
    key: &str,
    engine: &Engine,
    policy: &Policy,
    asked: &[&str],
    canonical: &Canonical,
) -> Vec<Value> {
    let mut when = Vec::new();
    if let Some((_, kind)) = questions::kind_only_keys(engine, policy)
        .into_iter()
        .find(|(k, _)| *k == key)
    {
        if asked.contains(&"request.kind") && key != "request.kind" {
            let code = match kind {
                RequestKind::Initial => "initial",
                RequestKind::Renewal => "renewal",
            };
            when.push(json!({"question": "request.kind", "operator": "=", "answerCoding": {"system": canonical.values("request.kind"), "code": code}}));
        }
    }
    for (dependent, on, operator, answer) in dependencies(canonical) {
        if dependent == key && asked.contains(&on) {
            let mut condition = json!({"question": on, "operator": operator});
            if let (Some(condition), Some(answer)) = (condition.as_object_mut(), answer.as_object())
            {
                condition.extend(answer.clone());
            }
            when.push(condition);
        }
    }
    when
}

/// How a DTR client fills a question from the member's chart before anyone answers it:
/// (key, FHIRPath over the launch context and the variables of `CHART_QUERIES`). SDC
/// expression-based population in FHIRPath and x-fhir-query, which DTR 2.0.1 lets a payer's
/// library use instead of CQL (ARCHITECTURE.md, "DTR pre-population", says why). Only facts a
/// chart states in a standard code are filled; the rest is the clinician's to answer.
const CHART_EXPRESSIONS: [(&str, &str); 3] = [
    ("patient.birth_date", "%patient.birthDate"),
    (
        "patient.weight_kg",
        "%weight.entry.resource.ofType(Observation).valueQuantity.where(system = 'http://unitsofmeasure.org' and code = 'kg').value.first()",
    ),
    (
        "patient.height_cm",
        "%height.entry.resource.ofType(Observation).valueQuantity.where(system = 'http://unitsofmeasure.org' and code = 'cm').value.first()",
    ),
];

/// The chart queries the expressions read (name, x-fhir-query): the member's latest body
/// weight (LOINC 29463-7) and height (LOINC 8302-2). (The diagnosis codes come with the PAS
/// Claim and the order, which the draft response already carries.)
const CHART_QUERIES: [(&str, &str); 2] = [
    (
        "weight",
        "Observation?patient={{%patient.id}}&code=http://loinc.org|29463-7&_sort=-date&_count=1",
    ),
    (
        "height",
        "Observation?patient={{%patient.id}}&code=http://loinc.org|8302-2&_sort=-date&_count=1",
    ),
];

const SDC: &str = "http://hl7.org/fhir/uv/sdc/StructureDefinition";

/// The launch context and chart queries of a form whose items are filled from the chart.
fn population_extensions() -> Vec<Value> {
    let mut extensions = vec![json!({
        "url": format!("{SDC}/sdc-questionnaire-launchContext"),
        "extension": [
            {"url": "name", "valueCoding": {"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext", "code": "patient"}},
            {"url": "type", "valueCode": "Patient"},
            {"url": "description", "valueString": "The member the request is for"},
        ],
    })];
    extensions.extend(CHART_QUERIES.iter().map(|(name, query)| {
        json!({
            "url": "http://hl7.org/fhir/StructureDefinition/variable",
            "valueExpression": {"name": name, "language": "application/x-fhir-query", "expression": query},
        })
    }));
    extensions
}

/// An item with the expression that fills it from the chart, if its fact is one a chart
/// states.
fn with_chart_expression(mut item: Value) -> Value {
    let link = item["linkId"].as_str().unwrap_or_default();
    if let Some((_, expression)) = CHART_EXPRESSIONS.iter().find(|(key, _)| *key == link) {
        let extension = json!({
            "url": format!("{SDC}/sdc-questionnaire-initialExpression"),
            "valueExpression": {"language": "text/fhirpath", "expression": expression},
        });
        match item["extension"].as_array_mut() {
            Some(list) => list.push(extension),
            None => item["extension"] = json!([extension]),
        }
    }
    item
}

/// The whole Questionnaire of a policy.
pub fn questionnaire(engine: &Engine, policy: &Policy, canonical: &Canonical, map: &Map) -> Value {
    let asked = asked_keys(engine, policy);
    let items: Vec<Value> = asked
        .iter()
        .filter_map(|key| questions::question(key, engine))
        .flat_map(|q| {
            let when = conditions(q.key, engine, policy, &asked, canonical);
            items(&q, canonical, map, when)
        })
        .map(with_chart_expression)
        .collect();
    let filled_from_chart = CHART_EXPRESSIONS.iter().any(|(key, _)| asked.contains(key));
    let mut questionnaire = json!({
        "resourceType": "Questionnaire",
        "id": policy.id,
        "meta": {"profile": [format!("{DTR}/StructureDefinition/dtr-std-questionnaire")]},
        "text": narrative(&format!("{}: prior authorization questions", policy.title), &items),
        "url": canonical.questionnaire(&policy.id),
        "version": policy.version,
        "name": policy.id.replace(['-', '.'], "_"),
        "title": format!("{}: prior authorization questions", policy.title),
        "status": "active",
        "subjectType": ["Patient"],
        "description": format!("The facts {} reads, each linkId a key of the case format.", policy.document),
        "item": items,
    });
    if filled_from_chart {
        questionnaire["extension"] = json!(population_extensions());
    }
    questionnaire
}

/// The adaptive Questionnaire of a policy: no items yet; `$next-question` adds them. As read
/// by its canonical and returned in a package it is DTR's `dtr-questionnaire-adapt-search`
/// ("returning the empty Questionnaire in a Questionnaire package", url 1..1); the copy a
/// response contains while it is filled is `dtr-questionnaire-adapt` (url 0..0,
/// [`adaptive_start`]).
pub fn adaptive_questionnaire(policy: &Policy, canonical: &Canonical) -> Value {
    let title = format!(
        "{}: prior authorization questions, asked one at a time",
        policy.title
    );
    json!({
        "resourceType": "Questionnaire",
        "id": format!("{}-adaptive", policy.id),
        "meta": {"profile": [format!("{DTR}/StructureDefinition/dtr-questionnaire-adapt-search")]},
        "text": narrative(&title, &[]),
        "url": canonical.adaptive(&policy.id),
        // The adaptive form asks the standard form's questions.
        "derivedFrom": [canonical.questionnaire(&policy.id)],
        "version": policy.version,
        "name": format!("{}_adaptive", policy.id.replace(['-', '.'], "_")),
        "title": title,
        "status": "active",
        "subjectType": ["Patient"],
        // SDC: the base of the service whose `Questionnaire/$next-question` asks the next
        // questions (a client posts to `{valueUrl}/Questionnaire/$next-question`).
        "extension": [{"url": ADAPTIVE, "valueUrl": canonical.base}],
    })
}

/// A Questionnaire's narrative: its title and each question's text, escaped for XHTML.
fn narrative(title: &str, items: &[Value]) -> Value {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let rows: String = items
        .iter()
        .filter_map(|item| item["text"].as_str())
        .map(|text| format!("<li>{}</li>", escape(text)))
        .collect();
    let list = if rows.is_empty() {
        String::new()
    } else {
        format!("<ul>{rows}</ul>")
    };
    json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{}</p>{list}</div>", escape(title))})
}

/// The answer items of a case value, for a draft or an adaptive response.
pub fn answer_items(
    question: &Question,
    value: &Value,
    canonical: &Canonical,
    map: &Map,
) -> Vec<Value> {
    let coding = |key: &str, code: &str| json!({"valueCoding": {"system": canonical.values(key), "code": code, "display": code.replace('_', " ")}});
    let answers: Vec<Value> = match question.kind {
        Kind::Choice => value
            .as_str()
            .map(|c| vec![coding(question.key, c)])
            .unwrap_or_default(),
        Kind::Date => value
            .as_str()
            .map(|d| vec![json!({"valueDate": d})])
            .unwrap_or_default(),
        Kind::Integer => value
            .as_i64()
            .map(|n| vec![json!({"valueInteger": n})])
            .unwrap_or_default(),
        Kind::Decimal => value
            .as_f64()
            .map(|n| vec![json!({"valueDecimal": n})])
            .unwrap_or_default(),
        Kind::Boolean => value
            .as_bool()
            .map(|b| vec![json!({"valueBoolean": b})])
            .unwrap_or_default(),
        Kind::Text => match value {
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(|s| json!({"valueString": s}))
                .collect(),
            Value::String(s) => vec![json!({"valueString": s})],
            _ => vec![],
        },
        Kind::Dose => {
            let unit = value["unit"].as_str().unwrap_or_default();
            let code = ucum_of(map, unit);
            value["value"].as_f64().map(|n| vec![json!({"valueQuantity": {"value": n, "unit": unit, "system": UCUM, "code": code}})]).unwrap_or_default()
        }
        Kind::Tkis => {
            let list = value.as_array().cloned().unwrap_or_default();
            let mut out = vec![
                json!({"linkId": "history.tkis.tried", "answer": [{"valueBoolean": !list.is_empty()}]}),
            ];
            for trial in list {
                out.push(json!({"linkId": "history.tkis", "item": [
                    {"linkId": "history.tkis.drug", "answer": [coding("history.tkis.drug", trial["drug"].as_str().unwrap_or_default())]},
                    {"linkId": "history.tkis.outcome", "answer": [coding("history.tkis.outcome", trial["outcome"].as_str().unwrap_or_default())]},
                ]}));
            }
            return out;
        }
    };
    if answers.is_empty() {
        return vec![];
    }
    vec![json!({"linkId": question.key, "text": question.label, "answer": answers})]
}

/// The value of a dotted key in a case: a key of the case format in its section, a fact
/// declared in data (`facts.toml`) in the case's `facts` object.
pub fn case_value<'c>(case: &'c Value, key: &str) -> Option<&'c Value> {
    let value = if is_case_key(key) {
        let (section, name) = key.split_once('.')?;
        case.get(section)?.get(name)
    } else {
        case.get("facts")?.get(key)
    };
    match value.filter(|v| !v.is_null()) {
        Some(value) => Some(value),
        // A case written with a key's deprecated name, for the drug it applies to: the
        // `history.blinatumomab_*` names describe a Blincyto course only, `infusion_days`
        // means the same for every drug.
        None => {
            let old = deprecated_name(key)?;
            let applies = !old.starts_with("history.blinatumomab")
                || case["request"]["drug"]
                    .as_str()
                    .is_none_or(|drug| drug == "blinatumomab");
            let (section, name) = old.split_once('.')?;
            case.get(section)?
                .get(name)
                .filter(|v| applies && !v.is_null())
        }
    }
}

/// The deprecated name of a case key (docs/case-format.md, history): read in cases and in
/// answers to forms generated before the key was renamed.
pub fn deprecated_name(key: &str) -> Option<&'static str> {
    match key {
        "history.cycles_given" => Some("history.blinatumomab_cycles"),
        "history.continued_cycles_given" => Some("history.blinatumomab_continued_cycles"),
        "request.dose_days" => Some("request.infusion_days"),
        _ => None,
    }
}

/// A draft response to a policy's Questionnaire with the answers the case already holds.
pub fn draft_response(
    engine: &Engine,
    policy: &Policy,
    case: &Value,
    canonical: &Canonical,
    map: &Map,
    context: &DraftContext,
) -> Value {
    let asked = asked_keys(engine, policy);
    let mut items: Vec<Value> = asked
        .iter()
        .filter_map(|key| Some((questions::question(key, engine)?, case_value(case, key)?)))
        .flat_map(|(q, value)| answer_items(&q, value, canonical, map))
        .collect();
    for item in &mut items {
        mark_prefilled(item);
    }
    let mut response = json!({
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [format!("{DTR}/StructureDefinition/dtr-questionnaireresponse")]},
        "extension": context.extensions(),
        "questionnaire": format!("{}|{}", canonical.questionnaire(&policy.id), policy.version),
        "status": "in-progress",
        "authored": context.authored,
        "item": items,
    });
    if let Some(subject) = &context.subject {
        response["subject"] = json!({"reference": subject});
    }
    drop_empty(&mut response, "item");
    response
}

/// FHIR leaves out an element with no value: an empty list is removed.
fn drop_empty(resource: &mut Value, key: &str) {
    if resource[key].as_array().is_some_and(Vec::is_empty) || resource[key].is_null() {
        if let Some(object) = resource.as_object_mut() {
            object.remove(key);
        }
    }
}

/// What a draft response is about: DTR's QuestionnaireResponse names its patient, when it was
/// written, what it is for (prior authorization) and its context (the order and the coverage,
/// or the CRD coverage assertion).
#[derive(Debug, Clone, Default)]
pub struct DraftContext {
    /// `Patient/{id}`.
    pub subject: Option<String>,
    /// RFC 3339.
    pub authored: String,
    /// `qr-context` references: `{"reference": "MedicationRequest/…"}`, `{"reference":
    /// "Coverage/…"}`, or a CRD assertion as `{"identifier": …}`.
    pub references: Vec<Value>,
}

impl DraftContext {
    fn extensions(&self) -> Value {
        let mut extensions: Vec<Value> = self
            .references
            .iter()
            .map(|r| json!({"url": format!("{DTR}/StructureDefinition/qr-context"), "valueReference": r}))
            .collect();
        extensions.push(json!({"url": format!("{DTR}/StructureDefinition/intendedUse"), "valueCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp", "code": "withpa", "display": "Include with prior authorization"}]}}));
        json!(extensions)
    }
}

/// Marks each answer of an item (and of its nested items) as filled in by the payer's
/// service from the records (DTR's `information-origin`, source `auto`).
fn mark_prefilled(item: &mut Value) {
    // `get_mut`, not `item["…"]`: indexing a missing key mutably would insert a null.
    let answers = item.get_mut("answer").and_then(Value::as_array_mut);
    for answer in answers.into_iter().flatten() {
        answer["extension"] = json!([{"url": format!("{DTR}/StructureDefinition/information-origin"), "extension": [{"url": "source", "valueCode": "auto"}]}]);
    }
    let nested = item.get_mut("item").and_then(Value::as_array_mut);
    for nested in nested.into_iter().flatten() {
        mark_prefilled(nested);
    }
}

/// Where an adaptive form stands: the outcome so far and the facts that can still change it
/// (the engine's `missing`), in the case's order.
#[derive(Debug, Clone)]
pub struct Step {
    pub outcome: Outcome,
    pub next: Vec<&'static str>,
}

/// Decides the answers so far under a policy.
pub fn next_keys(
    engine: &Engine,
    policy_index: usize,
    case_json: &Value,
) -> Result<Step, priorauth_core::CaseError> {
    let case = engine.parse_case(&case_json.to_string())?;
    let evaluation = engine.evaluate(&case, &[policy_index]);
    let Some((_, decision)) = evaluation.decisions.first() else {
        return Ok(Step {
            outcome: Outcome::NotApplicable,
            next: vec![],
        });
    };
    let skip = NOT_ASKED
        .iter()
        .filter_map(|k| key_bit(k))
        .fold(0, |a, b| a | b);
    let policy = engine
        .policies
        .get(evaluation.decisions.first().map_or(policy_index, |d| d.0));
    let next = if decision.outcome == Outcome::Incomplete {
        policy.map_or_else(Vec::new, |p| {
            p.missing_keys(decision.missing & !skip).collect()
        })
    } else {
        vec![]
    };
    Ok(Step {
        outcome: decision.outcome,
        next,
    })
}

/// The UCUM code of a case dose unit (the first the tables list for it).
pub fn ucum_of<'m>(map: &'m Map, unit: &'m str) -> &'m str {
    map.dose_units
        .iter()
        .find(|(_, case_unit)| *case_unit == unit)
        .map_or(unit, |(ucum, _)| ucum.as_str())
}

/// Whether a key is one of the case format's.
pub fn is_case_key(key: &str) -> bool {
    CASE_KEYS.contains(&key)
}

/// The first response of an adaptive form: its Questionnaire contained, holding the items of
/// the answers the order and records already give, and the first question still needed.
pub fn adaptive_start(
    engine: &Engine,
    policy: &Policy,
    case: &Value,
    canonical: &Canonical,
    map: &Map,
    questionnaire: &Value,
    context: &DraftContext,
) -> Value {
    let draft = draft_response(engine, policy, case, canonical, map, context);
    let known: Vec<&'static str> = asked_keys(engine, policy)
        .into_iter()
        .filter(|k| case_value(case, k).is_some())
        .collect();
    let mut contained = questionnaire.clone();
    // A contained resource is known by its local id; its canonical is the standalone form's
    // (`derivedFrom` names the standard form). It is the form being filled: DTR's
    // `dtr-questionnaire-adapt`, which has no url.
    if let Some(object) = contained.as_object_mut() {
        object.remove("url");
        object.insert(
            "meta".into(),
            json!({"profile": [format!("{DTR}/StructureDefinition/dtr-questionnaire-adapt")]}),
        );
    }
    contained["item"] = json!(
        known
            .iter()
            .filter_map(|k| questions::question(k, engine))
            .flat_map(|q| items(&q, canonical, map, vec![]))
            .collect::<Vec<_>>()
    );
    let mut response = json!({
        "resourceType": "QuestionnaireResponse",
        "meta": draft["meta"],
        "contained": [contained],
        "extension": draft["extension"],
        "questionnaire": "#".to_string() + contained_id(questionnaire),
        "status": "in-progress",
        "authored": draft["authored"],
        "item": draft["item"],
    });
    if !draft["subject"].is_null() {
        response["subject"] = draft["subject"].clone();
    }
    drop_empty(&mut response, "item");
    if let Some(contained) = response["contained"].get_mut(0) {
        drop_empty(contained, "item");
    }
    if let Some(index) = engine.policy_index(&policy.id) {
        if let Ok(step) = next_keys(engine, index, case) {
            adaptive_step(engine, policy, &mut response, &step, canonical, map);
        }
    }
    response
}

fn contained_id(questionnaire: &Value) -> &str {
    questionnaire["id"].as_str().unwrap_or("questionnaire")
}

/// Adds the items of `keys` not asked yet to an adaptive response's contained Questionnaire.
/// Answers how many were added.
pub fn append_questions(
    engine: &Engine,
    policy: &Policy,
    response: &mut Value,
    keys: &[&'static str],
    canonical: &Canonical,
    map: &Map,
) -> usize {
    let _ = policy;
    let present: Vec<String> = response["contained"][0]["item"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| i["linkId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<Value> = keys
        .iter()
        .filter_map(|k| questions::question(k, engine))
        .flat_map(|q| items(&q, canonical, map, vec![]))
        .filter(|item| !present.iter().any(|p| item["linkId"] == p.as_str()))
        .collect();
    let added = new.len();
    if let (Some(contained), false) = (response["contained"].get_mut(0), new.is_empty()) {
        match contained.get_mut("item").and_then(Value::as_array_mut) {
            Some(list) => list.extend(new),
            None => contained["item"] = json!(new),
        }
    }
    added
}

/// One step of an adaptive form: asks the first fact that can still change the outcome and
/// was not asked yet. Answers whether the form is complete (decided, or nothing left to ask).
pub fn adaptive_step(
    engine: &Engine,
    policy: &Policy,
    response: &mut Value,
    step: &Step,
    canonical: &Canonical,
    map: &Map,
) -> bool {
    let asked = asked_links(response);
    // One question at a time: each answer can make other facts moot, and a question the
    // requester leaves unanswered gives way to the next one.
    let next: Vec<&'static str> = step
        .next
        .iter()
        .copied()
        .filter(|key| {
            !asked
                .iter()
                .any(|a| a == key || (*key == "history.tkis" && a == "history.tkis.tried"))
        })
        .take(1)
        .collect();
    append_questions(engine, policy, response, &next, canonical, map) == 0
}

/// The linkIds an adaptive response's Questionnaire already holds.
fn asked_links(response: &Value) -> Vec<String> {
    response["contained"][0]["item"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| i["linkId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
