//! Three-valued evaluation of a policy against a case's facts.
//!
//! A criterion is true, false, or unknown together with the case keys that would settle it.
//! `and`/`or`/`not` follow Kleene's logic, so a false criterion decides a group whatever the
//! unknown facts are, and only a result that turns on an unknown fact is `incomplete`.

use crate::date::Date;
use crate::facts::{FactId, Facts, Missing, Value};
use crate::policy::{Arena, Check, Criterion, CriterionIdx, Node, Op, Outcome, Policy};
pub use crate::quantity::Granted;
use crate::quantity::{ceiling, ceiling_cycles, grant, units_within};

/// The truth of a criterion for one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    /// Not settled by the case; the keys would settle it.
    Unknown(Missing),
}

impl Truth {
    pub fn from_bool(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }

    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, x) | (x, Truth::True) => x,
            (Truth::Unknown(a), Truth::Unknown(b)) => Truth::Unknown(a | b),
        }
    }

    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, x) | (x, Truth::False) => x,
            (Truth::Unknown(a), Truth::Unknown(b)) => Truth::Unknown(a | b),
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            unknown => unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Truth::True => "met",
            Truth::False => "not_met",
            Truth::Unknown(_) => "unknown",
        }
    }
}

/// Results of group criteria already evaluated for the current case and policy. Pathways
/// share sub-criteria (universal criteria, diagnosis, dose bands), so each group is
/// evaluated once. A slot is valid when its stamp is the current one, so starting a new
/// policy or case costs one increment, not a clearing.
#[derive(Debug, Default)]
pub struct Memo {
    stamp: u32,
    slots: Vec<(u32, Truth)>,
}

impl Memo {
    /// Forgets every result: the next evaluations are for another policy or case.
    pub fn reset(&mut self, n_criteria: usize) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 || self.slots.len() < n_criteria {
            // A wrapped stamp could match an old slot: clear once every 2^32 resets.
            self.slots.clear();
            self.slots
                .resize(n_criteria.max(self.slots.len()), (0, Truth::False));
            self.stamp = 1;
        }
    }
}

/// Evaluates one criterion of an arena.
pub fn eval(arena: &Arena, idx: CriterionIdx, facts: &Facts) -> Truth {
    eval_in(arena, idx, facts, &mut None)
}

// Inlined where a group evaluates its children, so that a test (most criteria) costs no call.
#[inline]
fn eval_in(arena: &Arena, idx: CriterionIdx, facts: &Facts, memo: &mut Option<&mut Memo>) -> Truth {
    match arena.op(idx) {
        None => Truth::False,
        Some(Op::Test(test)) => match (eval_test(test.fact, &test.check, facts), test.if_unknown) {
            (Truth::Unknown(_), Some(value)) => Truth::from_bool(value),
            (truth, _) => truth,
        },
        Some(group) => eval_group(arena, idx, group, facts, memo),
    }
}

#[inline(never)]
fn eval_group(
    arena: &Arena,
    idx: CriterionIdx,
    group: &Op,
    facts: &Facts,
    memo: &mut Option<&mut Memo>,
) -> Truth {
    let slot = usize::from(idx);
    if let Some(memo) = memo.as_deref() {
        if let Some((stamp, truth)) = memo.slots.get(slot) {
            if *stamp == memo.stamp {
                return *truth;
            }
        }
    }
    let truth = match *group {
        Op::All { start, len } => eval_all_in(arena, arena.children(start, len), facts, memo),
        Op::Any { start, len } => {
            let mut truth = Truth::False;
            for child in arena.children(start, len) {
                truth = truth.or(eval_in(arena, *child, facts, memo));
                if truth == Truth::True {
                    break;
                }
            }
            truth
        }
        Op::Not(inner) => eval_in(arena, inner, facts, memo).not(),
        Op::Test(_) => Truth::False,
    };
    if let Some(memo) = memo.as_deref_mut() {
        let stamp = memo.stamp;
        if let Some(entry) = memo.slots.get_mut(slot) {
            *entry = (stamp, truth);
        }
    }
    truth
}

fn eval_all_in(
    arena: &Arena,
    list: &[CriterionIdx],
    facts: &Facts,
    memo: &mut Option<&mut Memo>,
) -> Truth {
    let mut truth = Truth::True;
    for idx in list {
        truth = truth.and(eval_in(arena, *idx, facts, memo));
        if truth == Truth::False {
            break;
        }
    }
    truth
}

fn eval_all(arena: &Arena, list: &[CriterionIdx], facts: &Facts) -> Truth {
    eval_all_in(arena, list, facts, &mut None)
}

#[inline]
fn eval_test(fact: FactId, check: &Check, facts: &Facts) -> Truth {
    let value = facts.get(fact);
    let value = match value {
        Value::Unknown(missing) => {
            // A rate needs its period as well.
            let period = match (check, facts.get(FactId::RequestUnitsPeriodDays)) {
                (
                    Check::Range {
                        per_days: Some(_), ..
                    },
                    Value::Unknown(period),
                ) => period,
                _ => 0,
            };
            return Truth::Unknown(missing | period);
        }
        Value::NotApplicable => return Truth::False,
        known => known,
    };
    match (*check, value) {
        (Check::Is(expected), Value::Bool(actual)) => Truth::from_bool(expected == actual),
        (Check::OneOf(mask), Value::Symbol(position)) => {
            Truth::from_bool(mask & (1 << position) != 0)
        }
        (Check::Range { min, max, per_days }, Value::Number(number)) => {
            // A rate compares `number / period` with `bound / per_days`, cross-multiplied so
            // that whole numbers stay exact.
            let (number, scale) = match per_days {
                None => (number, 1.0),
                Some(per_days) => match facts.get(FactId::RequestUnitsPeriodDays) {
                    Value::Number(period) => (number * per_days, period),
                    Value::Unknown(missing) => return Truth::Unknown(missing),
                    _ => return Truth::False,
                },
            };
            let above_min = min.is_none_or(|b| {
                if b.inclusive {
                    number >= b.value * scale
                } else {
                    number > b.value * scale
                }
            });
            let below_max = max.is_none_or(|b| {
                if b.inclusive {
                    number <= b.value * scale
                } else {
                    number < b.value * scale
                }
            });
            Truth::from_bool(above_min && below_max)
        }
        // INVARIANT: the loader only builds checks that fit their fact's type.
        _ => Truth::False,
    }
}

/// One policy's decision on one case, before it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The pathway that approved or sent to review.
    pub pathway: Option<u16>,
    /// The exclusion that denied.
    pub exclusion: Option<CriterionIdx>,
    /// Review because the pathway's dosing is outside the policy's (not a review pathway).
    pub dosing_outside: bool,
    /// Start and inclusive end, for an approval whose pathway states a duration.
    pub authorization: Option<(Date, Date)>,
    /// What an approval covers, never more than its pathway and the label allow.
    pub quantity: Option<Granted>,
    /// Units per cycle requested beyond a ceiling, which kept a pathway whose criteria were
    /// met from approving: (pathway, units requested per cycle, ceiling).
    pub units_over: Option<(u16, u32, u32)>,
    /// The pathway whose criteria were met but whose request starts past the label's course
    /// (no cycle of it is left to approve).
    pub course_spent: Option<u16>,
    /// The request's diagnosis codes are all outside the policy's covered list, which
    /// denies (a recommendation, as every denial).
    pub codes_not_covered: bool,
    /// The case keys still needed, for `incomplete`.
    pub missing: Missing,
}

impl Decision {
    /// A (recommended) denial with nothing else said: where deciding starts.
    fn deny() -> Decision {
        Decision {
            outcome: Outcome::Deny,
            pathway: None,
            exclusion: None,
            dosing_outside: false,
            authorization: None,
            quantity: None,
            units_over: None,
            course_spent: None,
            codes_not_covered: false,
            missing: 0,
        }
    }
}

/// The truth of a pathway's parts for one case.
#[derive(Debug, Clone, Copy)]
pub struct PathwayTruth {
    /// The request kind is one the pathway serves.
    pub kind: Truth,
    pub criteria: Truth,
    pub dosing: Truth,
}

pub fn pathway_truth(policy: &Policy, pathway_idx: usize, facts: &Facts) -> Option<PathwayTruth> {
    let pathway = policy.pathways.get(pathway_idx)?;
    let kind = pathway_kind(facts, pathway.kinds);
    Some(PathwayTruth {
        kind,
        criteria: eval_all(&policy.arena, &pathway.criteria, facts),
        dosing: eval_all(&policy.arena, &pathway.dosing, facts),
    })
}

/// Whether the request's kind is one the pathway serves; a pathway serving every kind does
/// not need to know it.
fn pathway_kind(facts: &Facts, kinds: u32) -> Truth {
    let every_kind = (1u32 << crate::case::RequestKind::VARIANTS.len()) - 1;
    if kinds & every_kind == every_kind {
        Truth::True
    } else {
        one_of(facts, FactId::RequestKind, u64::from(kinds))
    }
}

fn one_of(facts: &Facts, fact: FactId, mask: u64) -> Truth {
    eval_test(fact, &Check::OneOf(mask), facts)
}

/// Whether the policy governs the request: its drug and line of business.
pub fn applicability(policy: &Policy, facts: &Facts) -> Truth {
    let drug_mask = policy
        .drugs
        .iter()
        .fold(0u64, |mask, drug| mask | 1 << drug);
    let drug = one_of(facts, FactId::RequestDrug, drug_mask);
    match policy.lines_of_business {
        None => drug,
        Some(lines) => drug.and(one_of(
            facts,
            FactId::RequestLineOfBusiness,
            u64::from(lines),
        )),
    }
}

/// Decides one policy for one case. `request_date` starts the authorization.
pub fn decide(policy: &Policy, facts: &Facts, request_date: Option<Date>) -> Decision {
    decide_with(policy, facts, request_date, &mut Memo::default())
}

/// [`decide`] with a memo table the caller keeps from case to case.
pub fn decide_with(
    policy: &Policy,
    facts: &Facts,
    request_date: Option<Date>,
    memo: &mut Memo,
) -> Decision {
    memo.reset(policy.criteria.len());
    let mut memo = Some(memo);
    let mut decision = Decision::deny();
    let applies = applicability(policy, facts);
    if applies == Truth::False {
        decision.outcome = Outcome::NotApplicable;
        return decision;
    }
    let applies_missing = match applies {
        Truth::Unknown(missing) => missing,
        _ => 0,
    };

    // An exclusion that is not documented is taken as absent: only a met one counts.
    if let Some(exclusion) = policy
        .exclusions
        .iter()
        .find(|e| eval_in(&policy.arena, **e, facts, &mut memo) == Truth::True)
    {
        decision.exclusion = Some(*exclusion);
        return settle(decision, applies_missing);
    }

    let mut approve = Truth::False;
    let mut review = Truth::False;
    let mut review_pathway = None;
    for (index, pathway) in policy.pathways.iter().enumerate() {
        // A pathway for another kind of request: its criteria cannot matter.
        let kind = pathway_kind(facts, pathway.kinds);
        if kind == Truth::False {
            continue;
        }
        let met = kind.and(eval_all_in(
            &policy.arena,
            &pathway.criteria,
            facts,
            &mut memo,
        ));
        if met == Truth::False {
            // Neither approved nor routed: its dosing cannot matter.
            continue;
        }
        let mut dosing = eval_all_in(&policy.arena, &pathway.dosing, facts, &mut memo);
        match pathway.outcome {
            Outcome::Approve => {
                // More cycles than one authorization covers: the part it covers is approved
                // when that part meets the dosing, and the rest is a recommended denial.
                // Whether the criteria are met yet or not: an outcome decided now must not
                // change when unknown facts are filled in.
                if let (Truth::False, Value::Number(n), true) = (
                    dosing,
                    facts.get(FactId::RequestCycles),
                    pathway.dosing_reads_course,
                ) {
                    match ceiling_cycles(pathway, facts, request_date) {
                        Ok(cycles) if n > f64::from(cycles) && cycles > 0 => {
                            let mut part = facts.clone();
                            part.set_course_position(Some(cycles));
                            dosing = eval_all(&policy.arena, &pathway.dosing, &part);
                        }
                        // Which part could be approved is not known yet, nor whether the
                        // part meets the rest of the dosing: ask for what a one-cycle part
                        // leaves unknown too, so that one answer settles the case.
                        Err(missing) if n > 1.0 => {
                            let mut part = facts.clone();
                            part.set_course_position(Some(1));
                            dosing = match eval_all(&policy.arena, &pathway.dosing, &part) {
                                Truth::Unknown(more) => Truth::Unknown(missing | more),
                                _ => Truth::Unknown(missing),
                            };
                        }
                        _ => {}
                    }
                }
                let limit = ceiling(pathway, facts, request_date);
                let units = units_within(limit, facts);
                if let (Truth::False, Ok(limit), Value::Number(requested)) =
                    (units, limit, facts.get(FactId::RequestUnitsPerCycle))
                {
                    if met == Truth::True
                        && decision.units_over.is_none()
                        && requested > f64::from(limit.units_per_cycle)
                    {
                        let requested = requested.clamp(0.0, f64::from(u32::MAX)) as u32;
                        decision.units_over =
                            Some((index as u16, requested, limit.units_per_cycle));
                    }
                }
                if let (Truth::False, Ok(limit), Truth::True) = (units, limit, met) {
                    if limit.cycles == 0 && decision.course_spent.is_none() {
                        decision.course_spent = Some(index as u16);
                    }
                }
                let approved = met.and(dosing).and(units);
                approve = approve.or(approved);
                if approved == Truth::True {
                    // The first approving pathway decides; the rest cannot change that.
                    decision.pathway = Some(index as u16);
                    decision.units_over = None;
                    decision.course_spent = None;
                    if let Ok(limit) = limit {
                        decision.quantity = Some(grant(limit, facts));
                    }
                    break;
                }
                if policy.dosing_outside == Outcome::Review {
                    let outside = met.and(dosing.and(units).not());
                    if outside == Truth::True && review_pathway.is_none() {
                        review_pathway = Some((index as u16, true));
                    }
                    review = review.or(outside);
                }
            }
            _ => {
                let routed = met.and(dosing);
                if routed == Truth::True && review_pathway.is_none() {
                    review_pathway = Some((index as u16, false));
                }
                review = review.or(routed);
            }
        }
    }

    match (approve, review) {
        (Truth::True, _) => {
            decision.outcome = Outcome::Approve;
            let duration = decision
                .pathway
                .and_then(|p| policy.pathways.get(usize::from(p)))
                .and_then(|p| p.authorization);
            if let Some(duration) = duration {
                match request_date {
                    Some(start) => {
                        decision.authorization =
                            start.inclusive_end(duration).map(|end| (start, end))
                    }
                    None => {
                        decision.outcome = Outcome::Incomplete;
                        decision.quantity = None;
                        decision.missing = crate::facts::key_bit("request.date").unwrap_or(0);
                    }
                }
            }
        }
        (Truth::Unknown(missing), review) => {
            // If approval fails once these are known, the review route decides: ask for its
            // unknown facts too, so that one answer settles the case.
            decision.outcome = Outcome::Incomplete;
            decision.pathway = None;
            decision.missing = missing
                | if let Truth::Unknown(more) = review {
                    more
                } else {
                    0
                };
            // An approval with a stated duration starts on the request date.
            let dated = policy
                .pathways
                .iter()
                .any(|p| p.outcome == Outcome::Approve && p.authorization.is_some());
            if dated && request_date.is_none() {
                decision.missing |= crate::facts::key_bit("request.date").unwrap_or(0);
            }
        }
        (Truth::False, Truth::True) => {
            decision.outcome = Outcome::Review;
            if let Some((pathway, dosing_outside)) = review_pathway {
                decision.pathway = Some(pathway);
                decision.dosing_outside = dosing_outside;
            }
        }
        (Truth::False, Truth::Unknown(missing)) => {
            decision.outcome = Outcome::Incomplete;
            decision.missing = missing;
        }
        (Truth::False, Truth::False) => decision.outcome = Outcome::Deny,
    }
    settle(decision, applies_missing)
}

/// A request whose diagnosis codes are all outside the policy's covered list is not covered:
/// whatever the criteria say, it is a (recommended) denial, unless the policy does not apply.
pub fn deny_uncovered_codes(policy: &Policy, given: &[String], decision: &mut Decision) {
    if decision.outcome == Outcome::NotApplicable
        || policy.codes.icd10_covered(given) != Some(false)
    {
        return;
    }
    *decision = Decision {
        codes_not_covered: true,
        ..Decision::deny()
    };
}

/// A decision reached while the policy's applicability is unknown holds only if it would
/// be the same when the policy does not apply; otherwise the applicability facts are missing.
fn settle(mut decision: Decision, applies_missing: Missing) -> Decision {
    if applies_missing != 0 {
        decision.missing |= applies_missing;
        decision.outcome = Outcome::Incomplete;
        decision.pathway = None;
        decision.exclusion = None;
        decision.dosing_outside = false;
        decision.authorization = None;
        decision.quantity = None;
        decision.units_over = None;
        decision.course_spent = None;
    }
    decision
}

/// One line of an explanation: a criterion and its status, at a depth in the policy's outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    pub criterion: CriterionIdx,
    pub truth: Truth,
    pub depth: u8,
    pub pathway: Option<u16>,
}

/// Appends `idx` and the part of its subtree that settles its truth: for a met `all`, every
/// child; for an unmet one, the unmet children; for an unknown one, the unknown children
/// (dually for `any`). With `full`, every child is listed.
#[expect(
    clippy::too_many_arguments,
    reason = "a recursive walk whose state is its arguments"
)]
pub fn explain_criterion(
    criteria: &[Criterion],
    arena: &Arena,
    idx: CriterionIdx,
    facts: &Facts,
    depth: u8,
    pathway: Option<u16>,
    full: bool,
    out: &mut Vec<Reason>,
) {
    let truth = eval(arena, idx, facts);
    out.push(Reason {
        criterion: idx,
        truth,
        depth,
        pathway,
    });
    let Some(criterion) = criteria.get(usize::from(idx)) else {
        return;
    };
    let children: &[CriterionIdx] = match &criterion.node {
        Node::Test(_) => &[],
        Node::All(list) | Node::Any(list) => list,
        Node::Not(inner) => std::slice::from_ref(inner),
    };
    let is_not = matches!(criterion.node, Node::Not(_));
    for child in children {
        let child_truth = eval(arena, *child, facts);
        let decisive = full
            || is_not
            || match (truth, child_truth) {
                (Truth::Unknown(_), Truth::Unknown(_)) => true,
                (Truth::Unknown(_), _) => false,
                (parent, child) => {
                    let any = matches!(criterion.node, Node::Any(_));
                    // A met `any` is explained by its met children; an unmet `all` by its
                    // unmet ones; a met `all` and an unmet `any` by all of them.
                    match (any, parent) {
                        (true, Truth::True) | (false, Truth::False) => child == parent,
                        _ => true,
                    }
                }
            };
        if decisive {
            explain_criterion(
                criteria,
                arena,
                *child,
                facts,
                depth.saturating_add(1),
                pathway,
                full,
                out,
            );
        }
    }
}

/// Every criterion of a pathway (its criteria, then its dosing) with its status, in outline
/// order: the full tree a person reads.
pub fn pathway_tree(policy: &Policy, pathway_idx: usize, facts: &Facts) -> Vec<Reason> {
    let mut out = Vec::new();
    if let Some(pathway) = policy.pathways.get(pathway_idx) {
        for idx in pathway.criteria.iter().chain(&pathway.dosing) {
            explain_criterion(
                &policy.criteria,
                &policy.arena,
                *idx,
                facts,
                0,
                None,
                true,
                &mut out,
            );
        }
    }
    out
}

/// The criteria that decided a policy's outcome, in the policy's order.
pub fn explain(policy: &Policy, facts: &Facts, decision: &Decision) -> Vec<Reason> {
    let mut out = Vec::new();
    let criteria = &policy.criteria;
    let arena = &policy.arena;
    if let Some(exclusion) = decision.exclusion {
        explain_criterion(criteria, arena, exclusion, facts, 0, None, false, &mut out);
        return out;
    }
    match decision.outcome {
        Outcome::NotApplicable => {}
        Outcome::Approve | Outcome::Review if decision.pathway.is_some() => {
            let index = decision.pathway.unwrap_or_default();
            if let Some(pathway) = policy.pathways.get(usize::from(index)) {
                for idx in pathway.criteria.iter().chain(&pathway.dosing) {
                    let truth = eval(arena, *idx, facts);
                    // Under review for dosing, the met dosing criteria do not explain it.
                    if decision.dosing_outside
                        && pathway.dosing.contains(idx)
                        && truth == Truth::True
                    {
                        continue;
                    }
                    explain_criterion(
                        criteria,
                        arena,
                        *idx,
                        facts,
                        0,
                        Some(index),
                        false,
                        &mut out,
                    );
                }
            }
        }
        outcome => {
            // Denial, incompleteness or review without a single pathway: every pathway of the
            // request's kind, by the criteria that did not hold (or are unknown).
            let wanted = |truth: Truth| match outcome {
                Outcome::Incomplete => matches!(truth, Truth::Unknown(_)),
                _ => truth == Truth::False,
            };
            // A denial leads with the pathway closest to approval: the fewest criteria not
            // met, then file order. Its dosing is explained only when its clinical criteria
            // are met: a dose matters only on a pathway that could otherwise approve.
            let mut order: Vec<(usize, usize, bool)> = policy
                .pathways
                .iter()
                .enumerate()
                .filter_map(|(index, pathway)| {
                    let truth = pathway_truth(policy, index, facts)?;
                    (truth.kind != Truth::False).then(|| {
                        let unmet = pathway
                            .criteria
                            .iter()
                            .filter(|idx| eval(arena, **idx, facts) == Truth::False)
                            .count();
                        (unmet, index, truth.criteria == Truth::True)
                    })
                })
                .collect();
            if outcome == Outcome::Deny {
                order.sort_by_key(|(unmet, index, _)| (*unmet, *index));
            }
            for (_, index, criteria_met) in order {
                let Some(pathway) = policy.pathways.get(index) else {
                    continue;
                };
                let dosing: &[CriterionIdx] = if outcome == Outcome::Deny && !criteria_met {
                    &[]
                } else {
                    &pathway.dosing
                };
                for idx in pathway.criteria.iter().chain(dosing) {
                    if wanted(eval(arena, *idx, facts)) {
                        explain_criterion(
                            criteria,
                            arena,
                            *idx,
                            facts,
                            0,
                            Some(index as u16),
                            false,
                            &mut out,
                        );
                    }
                }
            }
        }
    }
    out
}

/// The criteria a clinician's denial may rest on, for one request: those whose truth fails
/// it. A requirement fails when it is not met; an exclusion when it applies (is met); either
/// when the case cannot settle it (the clinician settles it on the records). Under a `not`
/// the sense turns over. A part of a group is a ground only when the group is one, so that an
/// unmet test inside a met requirement (`samples-or-assistance` unmet inside a met
/// `not-samples-or-assistance`) cannot be cited. Requirements count only in pathways that
/// serve the request's kind: an initial request is not denied on a renewal's criteria.
pub fn denial_grounds(policy: &Policy, facts: &Facts) -> Vec<Reason> {
    let mut out = Vec::new();
    for &idx in &policy.exclusions {
        grounds_under(policy, idx, facts, true, 0, None, &mut out);
    }
    for (index, pathway) in policy.pathways.iter().enumerate() {
        if pathway_kind(facts, pathway.kinds) == Truth::False {
            continue;
        }
        let index = u16::try_from(index).ok();
        for &idx in pathway.criteria.iter().chain(&pathway.dosing) {
            grounds_under(policy, idx, facts, false, 0, index, &mut out);
        }
    }
    out
}

/// Appends `idx` and its failing parts when `idx` fails (`inverted`: met fails).
fn grounds_under(
    policy: &Policy,
    idx: CriterionIdx,
    facts: &Facts,
    inverted: bool,
    depth: u8,
    pathway: Option<u16>,
    out: &mut Vec<Reason>,
) {
    let truth = eval(&policy.arena, idx, facts);
    let fails = match truth {
        Truth::Unknown(_) => true,
        Truth::True => inverted,
        Truth::False => !inverted,
    };
    if !fails {
        return;
    }
    out.push(Reason {
        criterion: idx,
        truth,
        depth,
        pathway,
    });
    let Some(criterion) = policy.criteria.get(usize::from(idx)) else {
        return;
    };
    let depth = depth.saturating_add(1);
    match &criterion.node {
        Node::Test(_) => {}
        Node::All(list) | Node::Any(list) => {
            for child in list {
                grounds_under(policy, *child, facts, inverted, depth, pathway, out);
            }
        }
        Node::Not(inner) => grounds_under(policy, *inner, facts, !inverted, depth, pathway, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn truth() -> impl Strategy<Value = Truth> {
        prop_oneof![
            Just(Truth::True),
            Just(Truth::False),
            (1u64..8).prop_map(Truth::Unknown)
        ]
    }

    /// The Kleene tables, checked against "true if every completion is true".
    fn completions(t: Truth) -> Vec<bool> {
        match t {
            Truth::True => vec![true],
            Truth::False => vec![false],
            Truth::Unknown(_) => vec![true, false],
        }
    }

    fn settled(values: impl Iterator<Item = bool>) -> Option<bool> {
        let values: Vec<bool> = values.collect();
        if values.iter().all(|v| *v) {
            Some(true)
        } else if values.iter().all(|v| !*v) {
            Some(false)
        } else {
            None
        }
    }

    fn as_option(t: Truth) -> Option<bool> {
        match t {
            Truth::True => Some(true),
            Truth::False => Some(false),
            Truth::Unknown(_) => None,
        }
    }

    proptest! {
        #[test]
        fn kleene_and_or_not(a in truth(), b in truth()) {
            let and = settled(completions(a).into_iter().flat_map(|x| completions(b).into_iter().map(move |y| x && y)));
            let or = settled(completions(a).into_iter().flat_map(|x| completions(b).into_iter().map(move |y| x || y)));
            prop_assert_eq!(as_option(a.and(b)), and);
            prop_assert_eq!(as_option(a.or(b)), or);
            prop_assert_eq!(as_option(a.not()), as_option(a).map(|x| !x));
            // De Morgan.
            prop_assert_eq!(a.and(b).not(), a.not().or(b.not()));
        }
    }
}

/// The most a clinician's approval of a request may grant under a policy that did not approve
/// it (sent it to review, or recommended denying it): what the policy's approving pathways
/// for the request's kind allow at most, so that a clinician who approves is held to the
/// policy's limits as the engine's own approval is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalBound {
    /// The highest units-per-cycle ceiling among those pathways.
    pub units_per_cycle: u32,
    /// The most cycles one authorization by those pathways covers.
    pub cycles: u32,
    /// The latest inclusive end of their stated periods from `start`; `None` when one of them
    /// states no duration (the policy does not bound the period).
    pub end: Option<Date>,
}

/// [`ApprovalBound`] of a request under `policy`, its authorization starting on `start`.
/// `None` when no approving pathway serves the request's kind or a ceiling turns on facts the
/// case does not give: the label's limits alone then bound the approval.
pub fn approval_bound(policy: &Policy, facts: &Facts, start: Date) -> Option<ApprovalBound> {
    let mut bound: Option<ApprovalBound> = None;
    let mut unbounded_period = false;
    for pathway in &policy.pathways {
        if pathway.outcome != Outcome::Approve || pathway_kind(facts, pathway.kinds) == Truth::False
        {
            continue;
        }
        let limit = ceiling(pathway, facts, Some(start)).ok()?;
        let end = match pathway.authorization {
            Some(duration) => Some(start.inclusive_end(duration)?),
            None => {
                unbounded_period = true;
                None
            }
        };
        bound = Some(match bound {
            None => ApprovalBound {
                units_per_cycle: limit.units_per_cycle,
                cycles: limit.cycles,
                end,
            },
            Some(so_far) => ApprovalBound {
                units_per_cycle: so_far.units_per_cycle.max(limit.units_per_cycle),
                cycles: so_far.cycles.max(limit.cycles),
                end: so_far.end.max(end),
            },
        });
    }
    bound.map(|bound| ApprovalBound {
        end: if unbounded_period { None } else { bound.end },
        ..bound
    })
}
