//! `priorauth policy lint`: finds, by exhaustive reasoning over the facts' finite domains and
//! the numeric thresholds a policy uses, pathways that can never be met, pathways hidden
//! behind earlier ones, approving pathways that overlap with different durations, criteria
//! never used, quotes not in the source document, and outcomes the policy never states.
//!
//! The search is DPLL over facts, with the engine's own three-valued evaluator as the
//! pruning step: every fact starts unknown, tagged with its own bit, so an unknown result
//! names exactly the facts it still turns on, and only those are branched on. Facts are
//! treated as independent (a derived fact may take any value), so "can never be met" is
//! sound: what is impossible with independent facts is impossible with related ones.

use std::collections::BTreeSet;

use crate::eval::{self, Truth};
use crate::facts::{FactId, FactType, Facts, MAX_DECLARED, Missing, N_FACTS, Value};
use crate::policy::{Check, CriterionIdx, Node, Outcome, Policy};

/// One finding, tied to a line of the policy file and the source words there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    /// Stable code, `kind:target` (`unsatisfiable:adult-consolidation`), which a policy may
    /// acknowledge under `[lint] acknowledged`.
    pub code: String,
    pub message: String,
    /// The source words concerned.
    pub words: String,
    pub acknowledged: bool,
}

/// Lints a policy. `source_text` is its document (for the quote check), `n_drugs` the
/// catalog's size.
pub fn lint(policy: &Policy, source_text: Option<&str>, n_drugs: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |line: usize, code: String, message: String, words: &str| {
        findings.push(Finding {
            file: policy.file.clone(),
            line,
            code,
            message,
            words: words.to_string(),
            acknowledged: false,
        });
    };
    let domains = Domains::new(policy, n_drugs);

    // Pathways that can never be met, and pathways hidden behind earlier approving ones.
    let mut earlier: Vec<usize> = Vec::new();
    for (index, pathway) in policy.pathways.iter().enumerate() {
        let met = |facts: &Facts| pathway_met(policy, index, facts);
        let conflict = required_conflict(policy, index);
        if conflict.is_some()
            || domains
                .witness(&met, &fact_order(policy, &[index]))
                .is_none()
        {
            add(
                pathway.line,
                format!("unsatisfiable:{}", pathway.id),
                format!(
                    "pathway `{}` can never be met{}",
                    pathway.id,
                    conflict
                        .as_ref()
                        .map_or(String::new(), |c| format!(": {c}"))
                ),
                &pathway.authorization_source.quote,
            );
        } else if pathway.outcome == Outcome::Approve {
            let first_to_decide = |facts: &Facts| {
                earlier.iter().fold(met(facts), |truth, other| {
                    truth.and(pathway_met(policy, *other, facts).not())
                })
            };
            let order: Vec<usize> = std::iter::once(index)
                .chain(earlier.iter().copied())
                .collect();
            if !earlier.is_empty()
                && domains
                    .witness(&first_to_decide, &fact_order(policy, &order))
                    .is_none()
            {
                add(
                    pathway.line,
                    format!("hidden:{}", pathway.id),
                    format!(
                        "pathway `{}` never decides: an earlier pathway approves whenever it would",
                        pathway.id
                    ),
                    &pathway.authorization_source.quote,
                );
            }
            earlier.push(index);
        }
    }

    // Approving pathways that can both be met but grant different periods: the first in
    // file order wins, so the period depends on the order, not on the document.
    for (a, first) in policy.pathways.iter().enumerate() {
        for (b, second) in policy.pathways.iter().enumerate().skip(a + 1) {
            if first.outcome != Outcome::Approve
                || second.outcome != Outcome::Approve
                || first.authorization == second.authorization
            {
                continue;
            }
            let both =
                |facts: &Facts| pathway_met(policy, a, facts).and(pathway_met(policy, b, facts));
            if let Some(witness) = domains.witness(&both, &fact_order(policy, &[a, b])) {
                add(
                    second.line,
                    format!("overlap:{}:{}", first.id, second.id),
                    format!(
                        "pathways `{}` ({}) and `{}` ({}) can both approve one request, for example {}",
                        first.id,
                        first
                            .authorization
                            .map_or("no duration".into(), |d| d.to_string()),
                        second.id,
                        second
                            .authorization
                            .map_or("no duration".into(), |d| d.to_string()),
                        describe(&witness)
                    ),
                    &second.authorization_source.quote,
                );
            }
        }
    }

    // Criteria never used.
    let reached = reachable(policy);
    for (criterion, reached) in policy.criteria.iter().zip(&reached) {
        if !reached {
            add(
                criterion.line,
                format!("unused:{}", criterion.id),
                format!(
                    "criterion `{}` is not used by any pathway or exclusion",
                    criterion.id
                ),
                &criterion.source.quote,
            );
        }
    }

    // Facts read but never asked: read only by tests that take an undocumented value as
    // absent, so no `missing` list ever names them.
    let mut asked = BTreeSet::new();
    let mut silent: Vec<(FactId, usize, String)> = Vec::new();
    for criterion in &policy.criteria {
        if let Node::Test(test) = &criterion.node {
            if test.if_unknown.is_none() {
                asked.insert(test.fact.index());
            } else if !silent.iter().any(|(fact, _, _)| *fact == test.fact) {
                silent.push((test.fact, criterion.line, criterion.source.quote.clone()));
            }
        }
    }
    for (fact, line, quote) in silent
        .into_iter()
        .filter(|(fact, _, _)| !asked.contains(&fact.index()))
    {
        let name = fact.def().name;
        add(
            line,
            format!("never-asked:{name}"),
            format!("`{name}` is read but never asked: undocumented, it counts as absent"),
            &quote,
        );
    }

    // Quotes that are not in the document.
    if let Some(text) = source_text {
        let text = normalize(text);
        for criterion in &policy.criteria {
            if !text.contains(&normalize(&criterion.source.quote)) {
                add(
                    criterion.line,
                    format!("quote:{}", criterion.id),
                    format!(
                        "the quote of `{}` is not in {}",
                        criterion.id, policy.source_file
                    ),
                    &criterion.source.quote,
                );
            }
        }
    }

    // A negative criterion without the words it reads as when not met: its denial would read
    // "not met: no …".
    for criterion in &policy.criteria {
        let text = criterion.text.as_str();
        let negative =
            text.starts_with("no ") || text.starts_with("not ") || text.contains(": not ");
        if negative && criterion.unmet.is_empty() {
            add(
                criterion.line,
                format!("double-negative:{}", criterion.id),
                format!(
                    "criterion `{}` is stated as a negative without `unmet`: not met, it reads \"not met: {text}\"",
                    criterion.id
                ),
                &criterion.source.quote,
            );
        }
    }

    // Outcomes the policy never states.
    for pathway in &policy.pathways {
        if pathway.outcome == Outcome::Approve && pathway.authorization.is_none() {
            add(
                pathway.line,
                format!("no-duration:{}", pathway.id),
                format!(
                    "pathway `{}` approves without a stated duration",
                    pathway.id
                ),
                &pathway.authorization_source.quote,
            );
        }
        // Every approval is bounded by the label's limits in the engine; a pathway must
        // still say where its own ceiling comes from, or that the label's is the one.
        if pathway.outcome == Outcome::Approve && pathway.quantity.is_none() {
            add(
                pathway.line,
                format!("no-quantity:{}", pathway.id),
                format!(
                    "pathway `{}` approves without a `[pathway.quantity]`: only the label's limits bound it",
                    pathway.id
                ),
                &pathway.authorization_source.quote,
            );
        }
    }
    if !policy.pathways.iter().any(|p| p.kinds & 0b10 != 0) {
        add(
            1,
            "no-renewal-rule".into(),
            format!("policy `{}` states no renewal rule", policy.id),
            "",
        );
    }

    for finding in &mut findings {
        finding.acknowledged = policy.acknowledged.iter().any(|entry| {
            let code = entry
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(':');
            finding.code == code || finding.code.split(':').next() == Some(code)
        });
    }
    findings
}

/// The text a quote is compared against: runs of white space as one space, markdown bold
/// removed, words hyphenated across a line break joined.
pub fn normalize(text: &str) -> String {
    let joined = text
        .replace("**", "")
        .replace("-\n\n", "-")
        .replace("-\n", "-");
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pathway_met(policy: &Policy, index: usize, facts: &Facts) -> Truth {
    let applies = eval::applicability(policy, facts);
    eval::pathway_truth(policy, index, facts).map_or(Truth::False, |t| {
        applies.and(t.kind).and(t.criteria).and(t.dosing)
    })
}

/// The candidate values of each fact: every enum value, both booleans, and for numbers a
/// value below, at and between every threshold the policy compares with.
struct Domains {
    values: Vec<Vec<Value>>,
    /// The facts the search may branch on, the `n`-th tagged with bit `n` when unknown, so
    /// that an unknown result names them (`tagged_facts`).
    tags: Vec<FactId>,
    /// Facts read by tests that take an undocumented fact as absent: they are branched on
    /// first, with "absent" as one more value.
    absent_first: Vec<FactId>,
}

impl Domains {
    fn new(policy: &Policy, n_drugs: usize) -> Domains {
        let mut thresholds: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); N_FACTS + MAX_DECLARED];
        let mut absent_first = Vec::new();
        // Thresholds are kept in thousandths, so that 0.1% and 0.099% stay apart.
        let milli = |x: f64| (x * 1000.0).round() as i64;
        for criterion in &policy.criteria {
            if let Node::Test(test) = &criterion.node {
                if test.if_unknown.is_some() && !absent_first.contains(&test.fact) {
                    absent_first.push(test.fact);
                }
                if let Check::Range { min, max, per_days } = test.check {
                    for bound in [min, max].into_iter().flatten() {
                        let set = thresholds.get_mut(test.fact.index());
                        if let Some(set) = set {
                            set.insert(milli(bound.value));
                        }
                        if let Some(per_days) = per_days {
                            if let Some(period) =
                                thresholds.get_mut(FactId::RequestUnitsPeriodDays.index())
                            {
                                period.insert(milli(per_days));
                            }
                        }
                    }
                }
            }
        }
        let values = FactId::every_place()
            .zip(&thresholds)
            .map(|(id, thresholds)| match id.def().fact_type {
                FactType::Bool => vec![Value::Bool(true), Value::Bool(false)],
                FactType::Enum(variants) => (0..variants.len() as u8).map(Value::Symbol).collect(),
                FactType::Drug => (0..n_drugs as u8).map(Value::Symbol).collect(),
                FactType::Number => {
                    let points: Vec<i64> = thresholds.iter().copied().collect();
                    let mut candidates = BTreeSet::new();
                    // One value per interval between thresholds, and each threshold itself.
                    for (i, point) in points.iter().enumerate() {
                        candidates.insert(*point);
                        match points.get(i + 1) {
                            Some(next) if next - point > 1 => {
                                candidates.insert((point + next) / 2);
                            }
                            Some(_) => {}
                            None => {
                                candidates.insert(point + 1);
                            }
                        }
                    }
                    if let Some(first) = points.first() {
                        candidates.insert(first - 1);
                    }
                    if candidates.is_empty() {
                        candidates.insert(1000);
                    }
                    candidates
                        .into_iter()
                        .map(|c| Value::Number(c as f64 / 1000.0))
                        .collect()
                }
            })
            .collect();
        Domains {
            values,
            tags: tagged_facts(policy),
            absent_first,
        }
    }

    /// Facts that satisfy `formula`, if any do.
    /// Facts that satisfy `formula`, if any do. `order` lists facts in the order to branch
    /// on them: the order they appear in the criteria, so that each subtree settles (and an
    /// impossible branch is cut) as early as possible.
    fn witness(&self, formula: &dyn Fn(&Facts) -> Truth, order: &[FactId]) -> Option<Facts> {
        let mut facts = Facts::default();
        for (bit, id) in self.tags.iter().enumerate() {
            facts.set(*id, Value::Unknown(1 << bit));
        }
        self.absent_then_search(formula, order, &mut facts, 0)
    }

    fn absent_then_search(
        &self,
        formula: &dyn Fn(&Facts) -> Truth,
        order: &[FactId],
        facts: &mut Facts,
        next: usize,
    ) -> Option<Facts> {
        let Some(fact) = self.absent_first.get(next) else {
            return self.search(formula, order, facts);
        };
        // Absent first (the fact's own unknown tag), then every value.
        if let Some(found) = self.absent_then_search(formula, order, facts, next + 1) {
            return Some(found);
        }
        let unknown = facts.get(*fact);
        for value in self.values.get(fact.index()).into_iter().flatten() {
            facts.set(*fact, *value);
            if let Some(found) = self.absent_then_search(formula, order, facts, next + 1) {
                return Some(found);
            }
        }
        facts.set(*fact, unknown);
        None
    }

    fn search(
        &self,
        formula: &dyn Fn(&Facts) -> Truth,
        order: &[FactId],
        facts: &mut Facts,
    ) -> Option<Facts> {
        match formula(facts) {
            Truth::True => Some(facts.clone()),
            Truth::False | Truth::Unknown(0) => None,
            Truth::Unknown(missing) => {
                let tagged = |f: &FactId| {
                    self.tags
                        .iter()
                        .position(|t| t == f)
                        .is_some_and(|bit| missing & (1 << bit) != 0)
                };
                let fact = order
                    .iter()
                    .copied()
                    .find(tagged)
                    .or_else(|| self.tags.get(missing.trailing_zeros() as usize).copied())?;
                let index = fact.index();
                let unknown = facts.get(fact);
                for value in self.values.get(index).into_iter().flatten() {
                    facts.set(fact, *value);
                    if let Some(found) = self.search(formula, order, facts) {
                        return Some(found);
                    }
                }
                facts.set(fact, unknown);
                None
            }
        }
    }
}

/// The facts the search may branch on, 64 at most (one bit each): those the policy's criteria
/// read (declared facts among them), those the evaluator reads beside its criteria
/// (applicability, kind, the quantity and the course position), then the case format's
/// others while bits remain. A fact left out reads as unknown naming nothing, which the
/// search takes as a dead end; the case format's facts are 63, so only facts no criterion
/// and no ceiling of this policy reads can be left out.
fn tagged_facts(policy: &Policy) -> Vec<FactId> {
    let mut tags = vec![
        FactId::RequestDrug,
        FactId::RequestLineOfBusiness,
        FactId::RequestKind,
        FactId::RequestUnits,
        FactId::RequestUnitsPerCycle,
        FactId::RequestUnitsPeriodDays,
        FactId::RequestCycles,
        FactId::RequestCycleLengthDays,
        FactId::RequestFirstCycle,
        FactId::RequestLastCycle,
        FactId::RequestContinuedCycles,
        FactId::RequestLabelUnitsPerCycle,
        FactId::RequestLabelCourseCycles,
        FactId::HistoryAuthorizationCount,
        FactId::HistoryCyclesGiven,
        FactId::HistoryContinuedCyclesGiven,
    ];
    let read = policy.criteria.iter().filter_map(|c| match &c.node {
        Node::Test(test) => Some(test.fact),
        _ => None,
    });
    for id in read.chain(crate::facts::ALL_IDS.iter().copied()) {
        if tags.len() == Missing::BITS as usize {
            break;
        }
        if !tags.contains(&id) {
            tags.push(id);
        }
    }
    tags
}

/// The facts the given pathways read, in the order they first appear (applicability first).
fn fact_order(policy: &Policy, pathways: &[usize]) -> Vec<FactId> {
    let mut order = vec![
        FactId::RequestDrug,
        FactId::RequestLineOfBusiness,
        FactId::RequestKind,
    ];
    for index in pathways {
        let Some(pathway) = policy.pathways.get(*index) else {
            continue;
        };
        for root in pathway.criteria.iter().chain(&pathway.dosing) {
            let mut stack = vec![*root];
            while let Some(idx) = stack.pop() {
                match policy.criteria.get(usize::from(idx)).map(|c| &c.node) {
                    Some(Node::Test(test)) => {
                        if !order.contains(&test.fact) {
                            order.push(test.fact);
                        }
                        if let Check::Range {
                            per_days: Some(_), ..
                        } = test.check
                        {
                            if !order.contains(&FactId::RequestUnitsPeriodDays) {
                                order.push(FactId::RequestUnitsPeriodDays);
                            }
                        }
                    }
                    Some(Node::All(list) | Node::Any(list)) => stack.extend(list.iter().rev()),
                    Some(Node::Not(inner)) => stack.push(*inner),
                    None => {}
                }
            }
        }
    }
    order
}

/// The known facts of a witness, briefly.
fn describe(facts: &Facts) -> String {
    let parts: Vec<String> = FactId::every_place()
        .filter_map(|id| {
            let def = id.def();
            match facts.get(id) {
                Value::Bool(b) => Some(format!("{}={b}", def.name)),
                Value::Number(n) => Some(format!("{}={n}", def.name)),
                Value::Symbol(s) => match def.fact_type {
                    FactType::Enum(variants) => variants
                        .get(usize::from(s))
                        .map(|v| format!("{}={v}", def.name)),
                    _ => Some(format!("{}=#{s}", def.name)),
                },
                _ => None,
            }
        })
        .collect();
    parts.join(", ")
}

/// When a pathway is impossible because two criteria it requires (through `all` only) test
/// the same fact incompatibly, names them.
fn required_conflict(policy: &Policy, index: usize) -> Option<String> {
    let pathway = policy.pathways.get(index)?;
    let mut required: Vec<CriterionIdx> = Vec::new();
    let mut stack: Vec<CriterionIdx> = pathway
        .criteria
        .iter()
        .chain(&pathway.dosing)
        .copied()
        .collect();
    while let Some(idx) = stack.pop() {
        match &policy.criteria.get(usize::from(idx))?.node {
            Node::All(list) => stack.extend(list),
            Node::Test(_) => required.push(idx),
            _ => {}
        }
    }
    for (i, a) in required.iter().enumerate() {
        for b in required.iter().skip(i + 1) {
            let (ca, cb) = (
                policy.criteria.get(usize::from(*a))?,
                policy.criteria.get(usize::from(*b))?,
            );
            let (Node::Test(ta), Node::Test(tb)) = (&ca.node, &cb.node) else {
                continue;
            };
            if ta.fact == tb.fact && incompatible(&ta.check, &tb.check) {
                return Some(format!(
                    "`{}` (line {}, \"{}\") and `{}` (line {}, \"{}\") cannot both hold",
                    ca.id, ca.line, ca.source.quote, cb.id, cb.line, cb.source.quote
                ));
            }
        }
    }
    None
}

fn incompatible(a: &Check, b: &Check) -> bool {
    match (a, b) {
        (Check::Is(x), Check::Is(y)) => x != y,
        (Check::OneOf(x), Check::OneOf(y)) => x & y == 0,
        (
            Check::Range {
                min: amin,
                max: amax,
                per_days: None,
            },
            Check::Range {
                min: bmin,
                max: bmax,
                per_days: None,
            },
        ) => {
            let below =
                |max: &Option<crate::policy::Bound>, min: &Option<crate::policy::Bound>| match (
                    max, min,
                ) {
                    (Some(max), Some(min)) => {
                        max.value < min.value
                            || (max.value == min.value && !(max.inclusive && min.inclusive))
                    }
                    _ => false,
                };
            below(amax, bmin) || below(bmax, amin)
        }
        _ => false,
    }
}

fn reachable(policy: &Policy) -> Vec<bool> {
    let mut reached = vec![false; policy.criteria.len()];
    let mut stack: Vec<CriterionIdx> = policy
        .pathways
        .iter()
        .flat_map(|p| p.criteria.iter().chain(&p.dosing))
        .copied()
        .collect();
    stack.extend(&policy.exclusions);
    while let Some(idx) = stack.pop() {
        let Some(slot) = reached.get_mut(usize::from(idx)) else {
            continue;
        };
        if std::mem::replace(slot, true) {
            continue;
        }
        match policy.criteria.get(usize::from(idx)).map(|c| &c.node) {
            Some(Node::All(list) | Node::Any(list)) => stack.extend(list),
            Some(Node::Not(inner)) => stack.push(*inner),
            _ => {}
        }
    }
    reached
}
