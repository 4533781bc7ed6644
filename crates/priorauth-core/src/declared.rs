//! Facts declared in data: a policy directory's `facts.toml` names the facts its policies
//! read that the case format lacks (a laboratory value, a history the format has no key
//! for), with their type, unit, allowed values, meaning and the request kinds that ask them.
//! A clinical pharmacist adds them with a policy; no Rust changes.
//!
//! A case gives them in its `facts` object by name (`"facts": {"labs.qtc_ms": 452}`); they
//! are checked here against their declarations and read by policies with the same
//! three-valued rules as every other fact: absent or `null` is unknown, and an unknown
//! declared fact is asked for by its name.

use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use crate::Case;
use crate::case::{CaseError, CaseProblem, EARLIEST_DATE, LATEST_DATE, RequestKind};
use crate::date::Date;
use crate::facts::{
    CASE_KEYS, CASE_KEYS_MASK, FACTS, FIRST_DECLARED_BIT, FactDef, FactId, FactType, Facts,
    MAX_DECLARED, Value, key_bit,
};
use crate::policy::LoadError;
use serde_json::Value as Json;

/// The declarations' file name in a policy directory.
pub const FACTS_FILE: &str = "facts.toml";

/// How a declared fact is given in a case's `facts` object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeclaredType {
    Bool,
    /// A number within `min..=max`, in the declaration's `unit`.
    Number {
        min: f64,
        max: f64,
    },
    /// One of the declared values.
    Enum,
    /// A date (`YYYY-MM-DD`) no later than `request.date`; policies read the days from it to
    /// the day of receipt (`request.date` without one), so that "within 30 days of the
    /// request" is `le = 30`.
    Date,
}

/// A fact declared in data: a policy directory's `facts.toml` (docs/policy-format.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// Name (the case key in `facts`), type and meaning, as policies read it.
    pub def: FactDef,
    pub value_type: DeclaredType,
    /// The unit of a number (`ms`, `x ULN`, `%`), shown with its question.
    pub unit: Option<&'static str>,
    /// The question as a requester is asked it.
    pub question: &'static str,
    /// The request kinds that ask it (bit per `RequestKind` index).
    pub kinds: u32,
}

static DECLARED: std::sync::RwLock<Vec<&'static Declared>> = std::sync::RwLock::new(Vec::new());

/// The process's declarations, by place.
pub(crate) fn table() -> std::sync::RwLockReadGuard<'static, Vec<&'static Declared>> {
    DECLARED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Gives a declared fact its id and case key bit. A declaration equal to one already made in
/// this process keeps that one's; another declaration of the same name takes a new place (so
/// two policy directories loaded side by side each keep their own). The table lives as long
/// as the process: a fact's definition is `'static`, as the case format's are.
pub fn declare(declared: Declared) -> Result<FactId, String> {
    let mut table = DECLARED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let position = match table.iter().position(|d| **d == declared) {
        Some(position) => position,
        None => {
            if table.len() >= MAX_DECLARED {
                return Err(format!(
                    "more than {MAX_DECLARED} distinct facts declared in this process"
                ));
            }
            table.push(Box::leak(Box::new(declared)));
            table.len() - 1
        }
    };
    FactId::declared_place(position).ok_or_else(|| "too many facts".to_string())
}

/// A text kept for the life of the process, once per distinct text: declared facts' names,
/// meanings and values are `'static` like the case format's.
pub fn intern(text: &str) -> &'static str {
    static TEXTS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut texts = TEXTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = texts.iter().find(|t| **t == text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    texts.push(leaked);
    leaked
}

/// A list of texts kept for the life of the process, as [`intern`].
pub fn intern_list(list: &[String]) -> &'static [&'static str] {
    static LISTS: std::sync::Mutex<Vec<&'static [&'static str]>> =
        std::sync::Mutex::new(Vec::new());
    let wanted: Vec<&'static str> = list.iter().map(|t| intern(t)).collect();
    let mut lists = LISTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = lists.iter().find(|l| **l == wanted.as_slice()) {
        return known;
    }
    let leaked: &'static [&'static str] = Box::leak(wanted.into_boxed_slice());
    lists.push(leaked);
    leaked
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "fact")]
    facts: Vec<Spanned<RawFact>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact {
    name: String,
    #[serde(rename = "type")]
    value_type: String,
    meaning: String,
    question: String,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    kinds: Option<Vec<String>>,
}

/// Reads and checks a `facts.toml`, and gives each fact its id: the declared facts of one
/// engine, in file order.
pub fn load(file: &str, text: &str) -> Result<Vec<FactId>, LoadError> {
    let error = |offset: usize, message: String| {
        let before = text.get(..offset.min(text.len())).unwrap_or_default();
        LoadError {
            file: file.to_string(),
            line: before.matches('\n').count() + 1,
            column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            message,
        }
    };
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| error(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
    let mut names = BTreeSet::new();
    let mut ids = Vec::with_capacity(raw.facts.len());
    for spanned in &raw.facts {
        let at = spanned.span().start;
        let fact = spanned.get_ref();
        let wrong = |message: String| error(at, format!("fact `{}`: {message}", fact.name));
        check_name(&fact.name).map_err(|m| error(at, m))?;
        if !names.insert(fact.name.as_str()) {
            return Err(wrong("declared twice".into()));
        }
        if fact.meaning.trim().is_empty() || fact.question.trim().is_empty() {
            return Err(wrong(
                "`meaning` and `question` must say what the fact is".into(),
            ));
        }
        let numeric = fact.min.is_some() || fact.max.is_some() || fact.unit.is_some();
        let (value_type, fact_type) = match fact.value_type.as_str() {
            "bool" | "date" if numeric || fact.values.is_some() => {
                return Err(wrong(format!(
                    "a {} takes no `unit`, `min`, `max` or `values`",
                    fact.value_type
                )));
            }
            "bool" => (DeclaredType::Bool, FactType::Bool),
            "date" => (DeclaredType::Date, FactType::Number),
            "number" => {
                let (Some(min), Some(max)) = (fact.min, fact.max) else {
                    return Err(wrong(
                        "a number needs `min` and `max`, the plausible values (beyond them a value is a typing error)".into(),
                    ));
                };
                if !(min.is_finite() && max.is_finite() && min < max) || fact.values.is_some() {
                    return Err(wrong(
                        "`min` must be below `max`, both finite, and a number takes no `values`"
                            .into(),
                    ));
                }
                (DeclaredType::Number { min, max }, FactType::Number)
            }
            "enum" => {
                let values = fact.values.as_deref().unwrap_or_default();
                let distinct: BTreeSet<&String> = values.iter().collect();
                if values.is_empty() || distinct.len() != values.len() || values.len() > 64 {
                    return Err(wrong(
                        "an enum needs `values`: 1 to 64 distinct values".into(),
                    ));
                }
                if let Some(bad) = values.iter().find(|v| !is_snake(v)) {
                    return Err(wrong(format!(
                        "value `{bad}` must be lowercase letters, digits and `_`"
                    )));
                }
                if numeric {
                    return Err(wrong("an enum takes no `unit`, `min` or `max`".into()));
                }
                (DeclaredType::Enum, FactType::Enum(intern_list(values)))
            }
            other => {
                return Err(wrong(format!(
                    "type `{other}` is not one of bool, number, enum, date"
                )));
            }
        };
        let kinds = match &fact.kinds {
            None => u32::MAX >> (32 - RequestKind::VARIANTS.len()),
            Some(kinds) => {
                let mut mask = 0;
                for kind in kinds {
                    let position = RequestKind::VARIANTS
                        .iter()
                        .position(|k| k == kind)
                        .ok_or_else(|| {
                            wrong(format!(
                                "kind `{kind}` is not one of {}",
                                RequestKind::VARIANTS.join(", ")
                            ))
                        })?;
                    mask |= 1 << position;
                }
                if mask == 0 {
                    return Err(wrong("`kinds` lists no request kind".into()));
                }
                mask
            }
        };
        let description = match value_type {
            DeclaredType::Date => format!(
                "declared: days from this date to the day of receipt (request.date without one): {}",
                fact.meaning.trim()
            ),
            _ => format!("declared: {}", fact.meaning.trim()),
        };
        let declared = Declared {
            def: FactDef {
                name: intern(&fact.name),
                fact_type,
                description: intern(&description),
            },
            value_type,
            unit: fact.unit.as_deref().map(intern),
            question: intern(fact.question.trim()),
            kinds,
        };
        ids.push(declare(declared).map_err(|m| error(at, m))?);
    }
    Ok(ids)
}

fn is_snake(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A declared fact's name is `section.key` in lowercase (`labs.qtc_ms`), and not a key or a
/// fact of the case format, which mean something already.
fn check_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != 2 || !parts.iter().all(|p| is_snake(p)) || name.len() > 64 {
        return Err(format!(
            "fact name `{name}` must be `section.key` in lowercase letters, digits and `_` (at most 64 characters)"
        ));
    }
    if CASE_KEYS.contains(&name) || FACTS.iter().any(|f| f.name == name) {
        return Err(format!(
            "fact `{name}` is a fact of the case format already (docs/case-format.md)"
        ));
    }
    Ok(())
}

/// The declared fact of this name among `declared`.
pub fn find(declared: &[FactId], name: &str) -> Option<FactId> {
    declared.iter().copied().find(|id| id.def().name == name)
}

/// The most problems with a case's `facts` listed one by one.
const MAX_PROBLEMS: usize = 20;

/// Checks a case's `facts` against the declarations: every name declared, every value of its
/// type and within its bounds. Each problem names `facts.<name>`.
pub fn check_case(case: &Case, declared: &[FactId]) -> Result<(), CaseError> {
    let Some(given) = &case.facts else {
        return Ok(());
    };
    let request_date = case.request.as_ref().and_then(|r| r.date);
    let mut problems = Vec::new();
    for (name, value) in given {
        // A case of thousands of unknown names gets a bounded answer, not one that grows
        // with it.
        if problems.len() == MAX_PROBLEMS {
            problems.push(CaseProblem {
                key: "facts".into(),
                message: format!(
                    "only the first {MAX_PROBLEMS} problems are listed; the rest of `facts` was not checked"
                ),
            });
            break;
        }
        let key = format!("facts.{name}");
        let Some(id) = find(declared, name) else {
            let names: Vec<&str> = declared.iter().map(|id| id.def().name).collect();
            problems.push(CaseProblem {
                key,
                message: if names.is_empty() {
                    "no fact is declared by the loaded policies (facts.toml)".into()
                } else {
                    format!(
                        "not a fact declared by the loaded policies; declared: {}",
                        names.join(", ")
                    )
                },
            });
            continue;
        };
        if value.is_null() {
            continue;
        }
        if let Err(message) = read(id, value, request_date) {
            problems.push(CaseProblem { key, message });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CaseError { problems })
    }
}

/// A declared fact's value for the engine: the value's own error message when it is wrong.
fn read(id: FactId, value: &Json, request_date: Option<Date>) -> Result<Value, String> {
    let Some(declared) = id.declaration() else {
        return Err("not a declared fact".into());
    };
    match (declared.value_type, value) {
        (DeclaredType::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (DeclaredType::Number { min, max }, Json::Number(n)) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if n.is_finite() && (min..=max).contains(&n) {
                Ok(Value::Number(n))
            } else {
                Err(format!(
                    "{n} is not a possible value (between {min} and {max}{})",
                    declared.unit.map_or(String::new(), |u| format!(" {u}"))
                ))
            }
        }
        (DeclaredType::Enum, Json::String(text)) => match declared.def.fact_type {
            FactType::Enum(values) => values
                .iter()
                .position(|v| *v == text)
                .and_then(|p| u8::try_from(p).ok())
                .map(Value::Symbol)
                .ok_or_else(|| format!("`{text}` is not one of {}", values.join(", "))),
            _ => Err("not an enum".into()),
        },
        (DeclaredType::Date, Json::String(text)) => {
            let date =
                Date::parse(text).ok_or_else(|| format!("`{text}` is not a date (YYYY-MM-DD)"))?;
            if !(EARLIEST_DATE..=LATEST_DATE).contains(&date) {
                return Err(format!(
                    "{date} is not a possible date (between {EARLIEST_DATE} and {LATEST_DATE})"
                ));
            }
            match request_date {
                Some(request) if date > request => Err(format!(
                    "{date} is after request.date ({request}): a fact cannot be dated later than the facts it is part of"
                )),
                Some(request) => Ok(Value::Number(request.days_since(date) as f64)),
                None => Ok(Value::Unknown(key_bit("request.date").unwrap_or(0))),
            }
        }
        (expected, _) => Err(match expected {
            DeclaredType::Bool => "must be true or false".into(),
            DeclaredType::Number { .. } => "must be a number".into(),
            DeclaredType::Enum => "must be one of the declared values, as text".into(),
            DeclaredType::Date => "must be a date (YYYY-MM-DD), as text".into(),
        }),
    }
}

/// Sets the declared facts of a case: unknown unless the case gives them (the bit naming an
/// absent one is the policy's, set by [`tag`] before each policy decides). The case was
/// checked by [`check_case`]; a value that fails the check reads as unknown.
///
/// A date is read as the days from it to the day of receipt (`as_of`) when there is one, else
/// to `request.date`: "within 30 days of the request" is counted to the day the payer has the
/// request, not to a clinical date that may be up to 90 days before it.
pub fn fill(facts: &mut Facts, case: &Case, declared: &[FactId], as_of: Option<Date>) {
    let request_date = as_of.or_else(|| case.request.as_ref().and_then(|r| r.date));
    for id in declared {
        let unknown = Value::Unknown(0);
        let given = case
            .facts
            .as_ref()
            .and_then(|given| given.get(id.def().name))
            .filter(|value| !value.is_null());
        let value = match given.map(|v| read(*id, v, request_date)) {
            Some(Ok(value)) => value,
            Some(Err(_)) | None => unknown,
        };
        facts.set(*id, value);
    }
}

/// Names each absent declared fact a policy reads by its bit for that policy (from
/// [`FIRST_DECLARED_BIT`], in `Policy::declared` order), so that an unknown one is named in the
/// policy's `missing`. Facts are shared by the policies of one evaluation: an absent fact's
/// value holds no case key, whichever policy tagged it last. A date known but for
/// `request.date` keeps asking for that.
pub fn tag(facts: &mut Facts, policy_declared: &[FactId]) {
    for (position, id) in policy_declared.iter().enumerate() {
        if let Value::Unknown(missing) = facts.get(*id) {
            if missing & CASE_KEYS_MASK == 0 {
                facts.set(*id, Value::Unknown(1 << (FIRST_DECLARED_BIT + position)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[fact]]
name = "labs.widget_ms"
type = "number"
unit = "ms"
min = 0
max = 900
meaning = "widget time"
question = "Widget time (ms)"
kinds = ["renewal"]
"#;

    fn error(text: &str) -> String {
        load("facts.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_declaration_is_checked_when_it_loads() {
        let ids = load("facts.toml", ONE).unwrap();
        assert_eq!(ids.len(), 1);
        let declared = ids[0].declaration().unwrap();
        assert_eq!(declared.def.name, "labs.widget_ms");
        assert_eq!(declared.kinds, 1 << RequestKind::Renewal.index());
        // The same declaration again keeps its place; the table does not grow.
        assert_eq!(load("facts.toml", ONE).unwrap(), ids);
        for (text, expected) in [
            (
                ONE.replace("labs.widget_ms", "Labs.Widget"),
                "must be `section.key`",
            ),
            (
                ONE.replace("labs.widget_ms", "labs.a.b"),
                "must be `section.key`",
            ),
            (
                ONE.replace("labs.widget_ms", "patient.weight_kg"),
                "a fact of the case format",
            ),
            (
                ONE.replace("labs.widget_ms", "patient.age_years"),
                "a fact of the case format",
            ),
            (ONE.replace("min = 0\n", ""), "needs `min` and `max`"),
            (
                ONE.replace("max = 900", "max = -1"),
                "`min` must be below `max`",
            ),
            (
                ONE.replace("\"number\"", "\"text\""),
                "type `text` is not one of",
            ),
            (
                ONE.replace("\"renewal\"", "\"appeal\""),
                "kind `appeal` is not one of",
            ),
            (ONE.replace("\"number\"", "\"bool\""), "takes no `unit`"),
            (
                ONE.replace("\"number\"", "\"enum\""),
                "an enum needs `values`",
            ),
            (
                ONE.replace("question = \"Widget time (ms)\"", "question = \" \""),
                "must say what the fact is",
            ),
            (ONE.replace("meaning", "meening"), "unknown field"),
            (format!("{ONE}{ONE}"), "declared twice"),
        ] {
            let message = error(&text);
            assert!(message.contains(expected), "{text}\n=> {message}");
            assert!(message.starts_with("facts.toml:"), "{message}");
        }
    }

    #[test]
    fn a_case_gives_declared_facts_by_name_and_type() {
        let ids = load(
            "facts.toml",
            r#"
[[fact]]
name = "labs.seen_on"
type = "date"
meaning = "when"
question = "When"

[[fact]]
name = "labs.grade"
type = "enum"
values = ["low", "high"]
meaning = "grade"
question = "Grade"

[[fact]]
name = "labs.done"
type = "bool"
meaning = "done"
question = "Done"
"#,
        )
        .unwrap();
        let case = |facts: &str| {
            crate::case::parse_case(
                &format!(r#"{{"request": {{"date": "2026-05-18"}}, "facts": {facts}}}"#),
                &["blinatumomab"],
            )
            .unwrap()
        };
        let given =
            case(r#"{"labs.seen_on": "2026-05-08", "labs.grade": "high", "labs.done": null}"#);
        check_case(&given, &ids).unwrap();
        let mut facts = Facts::default();
        fill(&mut facts, &given, &ids, None);
        assert_eq!(facts.get(ids[0]), Value::Number(10.0));
        assert_eq!(facts.get(ids[1]), Value::Symbol(1));
        assert_eq!(facts.get(ids[2]), Value::Unknown(0));
        // A policy reading `labs.done` second names it by its second declared bit.
        tag(&mut facts, &[ids[1], ids[2]]);
        assert_eq!(
            facts.get(ids[2]),
            Value::Unknown(1 << (FIRST_DECLARED_BIT + 1))
        );
        assert_eq!(facts.get(ids[1]), Value::Symbol(1));
        for (facts, key, expected) in [
            (
                r#"{"labs.seen_on": "2026-05-19"}"#,
                "facts.labs.seen_on",
                "after request.date",
            ),
            (
                r#"{"labs.seen_on": 3}"#,
                "facts.labs.seen_on",
                "must be a date",
            ),
            (
                r#"{"labs.grade": "medium"}"#,
                "facts.labs.grade",
                "is not one of low, high",
            ),
            (
                r#"{"labs.done": "yes"}"#,
                "facts.labs.done",
                "must be true or false",
            ),
            (
                r#"{"labs.other": 1}"#,
                "facts.labs.other",
                "not a fact declared",
            ),
        ] {
            let problems = check_case(&case(facts), &ids).unwrap_err().problems;
            assert_eq!(problems[0].key, key, "{facts}");
            assert!(
                problems[0].message.contains(expected),
                "{facts}: {}",
                problems[0].message
            );
        }
        // Without request.date, a date's days are unknown: request.date is what is missing.
        let undated = crate::case::parse_case(
            r#"{"facts": {"labs.seen_on": "2026-05-08"}}"#,
            &["blinatumomab"],
        )
        .unwrap();
        let mut facts = Facts::default();
        fill(&mut facts, &undated, &ids, None);
        assert_eq!(
            facts.get(ids[0]),
            Value::Unknown(key_bit("request.date").unwrap())
        );
    }

    #[test]
    fn thousands_of_unknown_names_get_a_bounded_answer() {
        let names: Vec<String> = (0..5000).map(|i| format!("\"labs.n{i}\": 1")).collect();
        let case = crate::case::parse_case(
            &format!("{{\"facts\": {{{}}}}}", names.join(", ")),
            &["blinatumomab"],
        )
        .unwrap();
        let problems = check_case(&case, &[]).unwrap_err().problems;
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(problems[MAX_PROBLEMS].key, "facts");
    }
}
