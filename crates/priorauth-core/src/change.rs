//! Policy revisions: what changed between two versions of a policy (`priorauth policy
//! diff`), and what a revision does to a population of cases (`priorauth impact`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::eval;
use crate::facts::FactType;
use crate::policy::{Check, Criterion, Node, Outcome, Pathway, Policy};
use crate::{Case, Engine};

/// One difference between two versions, in the source's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `added`, `removed` or `changed`.
    pub kind: &'static str,
    /// `criterion <id>`, `pathway <id>`, `applies`, `version`.
    pub what: String,
    pub detail: String,
}

/// The criteria, pathways and applicability that differ between `old` and `new`.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut changes = Vec::new();
    if old.version != new.version || old.effective != new.effective {
        changes.push(Change {
            kind: "changed",
            what: "version".into(),
            detail: format!(
                "{} (effective {}) -> {} (effective {})",
                old.version,
                old.effective.map_or("-".into(), |d| d.to_string()),
                new.version,
                new.effective.map_or("-".into(), |d| d.to_string())
            ),
        });
    }
    if old.drugs != new.drugs
        || old.lines_of_business != new.lines_of_business
        || old.applicability != new.applicability
    {
        changes.push(Change {
            kind: "changed",
            what: "applies".into(),
            detail: format!(
                "\"{}\" -> \"{}\"",
                old.applicability.quote, new.applicability.quote
            ),
        });
    }
    for criterion in &old.criteria {
        match new.criteria.iter().find(|c| c.id == criterion.id) {
            None => changes.push(Change {
                kind: "removed",
                what: format!("criterion {}", criterion.id),
                detail: format!(
                    "{} [{}] (line {}: \"{}\")",
                    criterion.text,
                    rule(old, criterion),
                    criterion.line,
                    criterion.source.quote
                ),
            }),
            Some(other) => {
                let (before, after) = (rule(old, criterion), rule(new, other));
                if before != after
                    || criterion.text != other.text
                    || criterion.source != other.source
                {
                    let mut detail = String::new();
                    if before != after {
                        let _ = write!(detail, "[{before}] -> [{after}]; ");
                    }
                    if criterion.source.quote != other.source.quote {
                        let _ = write!(
                            detail,
                            "words \"{}\" -> \"{}\"; ",
                            criterion.source.quote, other.source.quote
                        );
                    } else {
                        let _ = write!(detail, "\"{}\"; ", other.source.quote);
                    }
                    if criterion.source.interpretation != other.source.interpretation {
                        let _ = write!(detail, "interpretation changed; ");
                    }
                    let _ = write!(detail, "line {} -> {}", criterion.line, other.line);
                    changes.push(Change {
                        kind: "changed",
                        what: format!("criterion {}", criterion.id),
                        detail,
                    });
                }
            }
        }
    }
    for criterion in new
        .criteria
        .iter()
        .filter(|c| !old.criteria.iter().any(|o| o.id == c.id))
    {
        changes.push(Change {
            kind: "added",
            what: format!("criterion {}", criterion.id),
            detail: format!(
                "{} [{}] (line {}: \"{}\")",
                criterion.text,
                rule(new, criterion),
                criterion.line,
                criterion.source.quote
            ),
        });
    }
    for pathway in &old.pathways {
        match new.pathways.iter().find(|p| p.id == pathway.id) {
            None => changes.push(Change {
                kind: "removed",
                what: format!("pathway {}", pathway.id),
                detail: outline(old, pathway),
            }),
            Some(other) if outline(old, pathway) != outline(new, other) => changes.push(Change {
                kind: "changed",
                what: format!("pathway {}", pathway.id),
                detail: format!("{} -> {}", outline(old, pathway), outline(new, other)),
            }),
            Some(_) => {}
        }
    }
    for pathway in new
        .pathways
        .iter()
        .filter(|p| !old.pathways.iter().any(|o| o.id == p.id))
    {
        changes.push(Change {
            kind: "added",
            what: format!("pathway {}", pathway.id),
            detail: outline(new, pathway),
        });
    }
    changes
}

/// A criterion's rule in words: `patient.age_years >= 15`, `all of a, b`.
fn rule(policy: &Policy, criterion: &Criterion) -> String {
    let names = |list: &[u16]| {
        list.iter()
            .filter_map(|i| policy.criteria.get(usize::from(*i)).map(|c| c.id.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &criterion.node {
        Node::All(list) => format!("all of {}", names(list)),
        Node::Any(list) => format!("any of {}", names(list)),
        Node::Not(inner) => format!("not {}", names(std::slice::from_ref(inner))),
        Node::Test(test) => {
            let def = test.fact.def();
            let check = match test.check {
                Check::Is(value) => format!("is {value}"),
                Check::OneOf(mask) => {
                    let values: Vec<&str> = match def.fact_type {
                        FactType::Enum(variants) => variants
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, v)| *v)
                            .collect(),
                        _ => vec!["(drugs)"],
                    };
                    format!("in {}", values.join(", "))
                }
                Check::Range { min, max, per_days } => {
                    let mut parts = Vec::new();
                    if let Some(b) = min {
                        parts.push(format!(
                            "{} {}",
                            if b.inclusive { ">=" } else { ">" },
                            b.value
                        ));
                    }
                    if let Some(b) = max {
                        parts.push(format!(
                            "{} {}",
                            if b.inclusive { "<=" } else { "<" },
                            b.value
                        ));
                    }
                    let rate = per_days.map_or(String::new(), |d| format!(" per {d} days"));
                    format!("{}{rate}", parts.join(" and "))
                }
            };
            let absent = test.if_unknown.map_or(String::new(), |v| {
                format!(" (undocumented: {})", if v { "met" } else { "not met" })
            });
            format!("{} {check}{absent}", test.fact.def().name)
        }
    }
}

fn outline(policy: &Policy, pathway: &Pathway) -> String {
    let names = |list: &[u16]| {
        list.iter()
            .filter_map(|i| policy.criteria.get(usize::from(*i)).map(|c| c.id.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} [{}] dosing [{}], {}",
        pathway.outcome.as_str(),
        names(&pathway.criteria),
        names(&pathway.dosing),
        pathway
            .authorization
            .map_or("no duration".into(), |d| d.to_string())
    )
}

/// How a population's outcomes move from one version to another.
#[derive(Debug, Clone, Default)]
pub struct Impact {
    pub cases: usize,
    /// (from, to) -> (count, the first few case ids).
    pub moves: BTreeMap<(Outcome, Outcome), (usize, Vec<String>)>,
    /// Approvals under both versions whose terms change: (what, from, to) -> (count, the
    /// first few case ids). `what` is `period days`, `cycles` or `units per cycle`.
    pub terms: BTreeMap<(&'static str, u64, u64), (usize, Vec<String>)>,
}

/// The terms of an approval that differ between two decisions: the period's length in days,
/// the cycles and the units per cycle granted.
fn term_changes(old: &eval::Decision, new: &eval::Decision) -> Vec<(&'static str, u64, u64)> {
    let days = |d: &eval::Decision| {
        d.authorization
            .map(|(start, end)| end.days_since(start).max(0) as u64 + 1)
    };
    let granted = |d: &eval::Decision| d.quantity.map(|q| (q.cycles, q.units_per_cycle));
    let mut changes = Vec::new();
    if let (Some(a), Some(b)) = (days(old), days(new)) {
        if a != b {
            changes.push(("period days", a, b));
        }
    }
    if let (Some((cycles_a, units_a)), Some((cycles_b, units_b))) = (granted(old), granted(new)) {
        if cycles_a != cycles_b {
            changes.push(("cycles", u64::from(cycles_a), u64::from(cycles_b)));
        }
        if units_a != units_b {
            changes.push(("units per cycle", u64::from(units_a), u64::from(units_b)));
        }
    }
    changes
}

impl Impact {
    /// Approvals whose period, cycles or units change (one case may count in several).
    pub fn terms_changed(&self) -> usize {
        self.terms.values().map(|(n, _)| n).sum()
    }

    pub fn moved(&self) -> usize {
        self.moves
            .iter()
            .filter(|((a, b), _)| a != b)
            .map(|(_, (n, _))| n)
            .sum()
    }
}

/// Decides every case under both versions (whatever their effective dates) and counts the
/// outcomes that move. `engine` supplies the facts (drug catalog).
pub fn impact<'a>(
    engine: &Engine,
    old: &Policy,
    new: &Policy,
    cases: impl IntoIterator<Item = &'a Case>,
    examples: usize,
) -> Impact {
    let mut result = Impact::default();
    for (index, case) in cases.into_iter().enumerate() {
        let mut facts = engine.facts(case);
        let date = case.request.as_ref().and_then(|r| r.date);
        crate::declared::tag(&mut facts, &old.declared);
        let old_decision = eval::decide(old, &facts, date);
        crate::declared::tag(&mut facts, &new.declared);
        let new_decision = eval::decide(new, &facts, date);
        let (before, after) = (old_decision.outcome, new_decision.outcome);
        let id = || case.id.clone().unwrap_or_else(|| format!("#{}", index + 1));
        let entry = result.moves.entry((before, after)).or_default();
        entry.0 += 1;
        if before != after && entry.1.len() < examples {
            entry.1.push(id());
        }
        // An approval that stays an approval may still grant less (or more): a shorter
        // period or fewer cycles is money and care, reported as a move of its own.
        if (before, after) == (Outcome::Approve, Outcome::Approve) {
            for change in term_changes(&old_decision, &new_decision) {
                let entry = result.terms.entry(change).or_default();
                entry.0 += 1;
                if entry.1.len() < examples {
                    entry.1.push(id());
                }
            }
        }
        result.cases += 1;
    }
    result
}
