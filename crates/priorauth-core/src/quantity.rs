//! The quantity an approval covers: each approving pathway's ceiling (its
//! `[pathway.quantity]` and the drug label's limits), whether the requested units are within
//! it, and what an approval grants (docs/case-format.md, Quantities).

use crate::eval::Truth;
use crate::facts::{FactId, Facts, Missing, Value};

/// The quantity an approval covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Billable units per cycle: as requested, or the ceiling when none were requested.
    pub units_per_cycle: u32,
    /// False when the request gave no units and the approval carries the ceiling.
    pub units_requested: bool,
    /// The most units per cycle the pathway and the label allow.
    pub ceiling_units_per_cycle: u32,
    /// Cycles approved: as requested, or the ceiling when fewer or none were requested.
    pub cycles: u32,
    /// Cycles requested, when given; more than `cycles` in a partial approval, whose
    /// remaining cycles are a recommended denial.
    pub requested_cycles: Option<u32>,
    /// The most cycles the pathway and the label allow in this authorization.
    pub ceiling_cycles: u32,
}

impl Granted {
    /// Billable units of the whole authorization. u64: no product of two u32 overflows.
    pub fn total_units(&self) -> u64 {
        u64::from(self.units_per_cycle) * u64::from(self.cycles)
    }

    /// Only a part of the cycles requested is approved.
    pub fn is_partial(&self) -> bool {
        self.requested_cycles.is_some_and(|n| n > self.cycles)
    }
}

/// An approving pathway's ceilings for one case: units per cycle and cycles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ceiling {
    pub(crate) units_per_cycle: u32,
    pub(crate) cycles: u32,
}

/// The lower of the pathway's and the label's ceilings. The label's course bounds the cycles
/// from the request's first cycle on (cycles 6-9 are all that is left of a 9-cycle course
/// after cycle 5); a request starting beyond it has a ceiling of 0 cycles.
pub(crate) fn ceiling(
    pathway: &crate::policy::Pathway,
    facts: &Facts,
    start: Option<crate::date::Date>,
) -> Result<Ceiling, Missing> {
    let number = |id: FactId| match facts.get(id) {
        Value::Number(n) => Ok(Some(n)),
        Value::Unknown(missing) => Err(missing),
        _ => Ok(None),
    };
    // Every unknown is named at once (the drug's and the course position's): a case that
    // gives only the drug asked for would otherwise be asked again, for the date.
    let mut unknown = 0;
    let mut known = |value: Result<Option<f64>, Missing>| {
        value.unwrap_or_else(|missing| {
            unknown |= missing;
            None
        })
    };
    let label_units = known(number(FactId::RequestLabelUnitsPerCycle));
    let label_course = known(number(FactId::RequestLabelCourseCycles));
    let limit = pathway.quantity.as_ref();
    let units = [
        limit.and_then(|q| q.units_per_cycle).map(f64::from),
        label_units,
    ]
    .into_iter()
    .flatten()
    .fold(f64::INFINITY, f64::min);
    // A renewal continues a course: without its position the cycles left are not known. An
    // initial request whose position is not known counts from the first cycle, unless the
    // authorization history shows a current course, which it continues.
    let first = match (
        facts.get(FactId::RequestFirstCycle),
        facts.get(FactId::RequestKind),
    ) {
        (Value::Number(n), _) => n.max(1.0),
        (Value::Unknown(missing), Value::Symbol(kind))
            if kind == crate::case::RequestKind::Renewal.index() =>
        {
            return Err(missing | unknown);
        }
        (Value::Unknown(missing), _) if !no_current_course(facts) => {
            return Err(missing | unknown);
        }
        _ => 1.0,
    };
    if unknown != 0 {
        return Err(unknown);
    }
    let cycles = label_course.map_or(f64::INFINITY, |course| {
        cycles_bound(pathway, facts, course, first, start)
    });
    // INVARIANT: the catalog gives every drug a course and a per-cycle limit, so both are
    // finite once the drug is known; an unbounded one approves nothing.
    if !units.is_finite() || !cycles.is_finite() {
        return Ok(Ceiling {
            units_per_cycle: 0,
            cycles: 0,
        });
    }
    Ok(Ceiling {
        units_per_cycle: units.floor().clamp(0.0, f64::from(u32::MAX)) as u32,
        cycles: cycles.floor().clamp(0.0, f64::from(u32::MAX)) as u32,
    })
}

/// The authorization history shows no current course: none in it, or none documented (an
/// initial request's undocumented history is taken as none).
fn no_current_course(facts: &Facts) -> bool {
    match facts.get(FactId::HistoryAuthorizationCount) {
        Value::Number(n) => n <= 0.0,
        Value::Unknown(missing) => missing & crate::facts::AUTHORIZATIONS_KEY != 0,
        _ => true,
    }
}

/// The most cycles that start within the pathway's stated period, when the cycle length is
/// known: a 6-month approval does not cover nine 42-day cycles. The period is counted in days
/// from `start` (the day the authorization starts) to its inclusive end, so that only cycles
/// starting within it count (a 6-month period of 182 days holds four 46-day cycles, not five);
/// without a start, months count 31 days and years 366, an upper bound. The cycle is
/// the request's, never shorter than the label's shortest (Blincyto's 28 days of infusion and
/// 14 treatment-free): back-to-back 28-day cycles declared do not fit seven in 6 months.
/// Each cycle from the course's `first` on takes its own length: from the label's later
/// cycles on (Blincyto's continued therapy, cycles 6-9), never shorter than theirs, so that
/// cycles 4-8 in 6 months are the four that start in them (4 and 5 at 42 days, 6 and 7 at
/// 84), not five. Counted up to `most` (what is left of the course).
fn cycles_in_period(
    pathway: &crate::policy::Pathway,
    facts: &Facts,
    start: Option<crate::date::Date>,
    first: f64,
    most: f64,
) -> Option<f64> {
    use crate::date::Duration;
    // Without a stated duration, an authorization covers at most a year (the service ends it
    // there): the cycles that start within a year at the label's pace, so that cycles 1-9 of
    // a relapsed course (7 of which start within a year, cycles 6-9 being 84 days) are not
    // all approved to be spent over 42-day periods.
    let duration = pathway.authorization.unwrap_or(Duration::Years(1));
    let days =
        match start.and_then(|start| Some(start.inclusive_end(duration)?.days_since(start) + 1)) {
            Some(days) => days as f64,
            None => match duration {
                Duration::Days(n) => f64::from(n),
                Duration::Weeks(n) => f64::from(n) * 7.0,
                Duration::Months(n) => f64::from(n) * 31.0,
                Duration::Years(n) => f64::from(n) * 366.0,
            },
        };
    // Without a cycle length, the label's shortest: leaving it out must not lift the bound.
    let shortest = facts.label_shortest_cycle_days().map(f64::from);
    let length = match facts.get(FactId::RequestCycleLengthDays) {
        Value::Number(length) if length >= 1.0 => Some(length.max(shortest.unwrap_or(1.0))),
        _ => shortest,
    };
    let length = length?;
    let later = facts.label_later_cycles();
    let (mut cycles, mut day, mut cycle) = (0.0, 0.0, first);
    while day < days && cycles < most {
        cycles += 1.0;
        day += match later {
            Some(later) if cycle >= f64::from(later.from_cycle) => {
                length.max(f64::from(later.shortest_cycle_days))
            }
            _ => length,
        };
        cycle += 1.0;
    }
    Some(cycles)
}

/// The cycles one authorization by the pathway covers, when known: the same figure as
/// [`ceiling`]'s, which also needs the units' ceiling.
pub(crate) fn ceiling_cycles(
    pathway: &crate::policy::Pathway,
    facts: &Facts,
    start: Option<crate::date::Date>,
) -> Result<u32, Missing> {
    let course = match facts.get(FactId::RequestLabelCourseCycles) {
        Value::Number(n) => n,
        Value::Unknown(missing) => return Err(missing),
        _ => return Ok(0),
    };
    let first = match facts.get(FactId::RequestFirstCycle) {
        Value::Number(n) => n.max(1.0),
        Value::Unknown(missing) => return Err(missing),
        _ => 1.0,
    };
    let cycles = cycles_bound(pathway, facts, course, first, start);
    Ok(cycles.floor().clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// The cycles an authorization by the pathway covers from cycle `first` of a course of
/// `course` cycles: the lower of what is left of the course, the pathway's own limit and the
/// cycles that start within its period.
fn cycles_bound(
    pathway: &crate::policy::Pathway,
    facts: &Facts,
    course: f64,
    first: f64,
    start: Option<crate::date::Date>,
) -> f64 {
    let left = (course - (first - 1.0)).max(0.0);
    [
        pathway
            .quantity
            .as_ref()
            .and_then(|q| q.cycles)
            .map(f64::from),
        cycles_in_period(pathway, facts, start, first, left),
    ]
    .into_iter()
    .flatten()
    .fold(left, f64::min)
}

/// Whether the requested units per cycle are within the ceiling. No units requested is
/// within it (the approval then carries the ceiling); units that cannot be converted to a
/// cycle without another fact are unknown with that fact.
pub(crate) fn units_within(ceiling: Result<Ceiling, Missing>, facts: &Facts) -> Truth {
    let units_key = crate::facts::UNITS_KEY;
    match (facts.get(FactId::RequestUnitsPerCycle), ceiling) {
        (_, Ok(ceiling)) if ceiling.cycles == 0 || ceiling.units_per_cycle == 0 => Truth::False,
        (Value::Number(units), Ok(ceiling)) => {
            Truth::from_bool(units <= f64::from(ceiling.units_per_cycle))
        }
        (Value::Unknown(missing), Ok(_)) if missing == units_key => Truth::True,
        (Value::Unknown(missing), Err(more)) if missing == units_key => Truth::Unknown(more),
        (Value::Unknown(missing), Err(more)) => Truth::Unknown(missing | more),
        (Value::Unknown(missing), Ok(_)) => Truth::Unknown(missing),
        (_, Err(missing)) => Truth::Unknown(missing),
        _ => Truth::False,
    }
}

/// The quantity of an approval by a pathway whose units are within its ceiling.
pub(crate) fn grant(ceiling: Ceiling, facts: &Facts) -> Granted {
    let (units_per_cycle, units_requested) = match facts.get(FactId::RequestUnitsPerCycle) {
        Value::Number(units) => (units as u32, true),
        _ => (ceiling.units_per_cycle, false),
    };
    let requested_cycles = match facts.get(FactId::RequestCycles) {
        Value::Number(n) => Some(n as u32),
        _ => None,
    };
    Granted {
        units_per_cycle: units_per_cycle.min(ceiling.units_per_cycle),
        units_requested,
        ceiling_units_per_cycle: ceiling.units_per_cycle,
        cycles: requested_cycles.map_or(ceiling.cycles, |n| n.min(ceiling.cycles)),
        requested_cycles,
        ceiling_cycles: ceiling.cycles,
    }
}
