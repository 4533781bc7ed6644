//! A property of every decision on quantities, over 100,000 generated cases with their
//! quantities, course position and measures pushed to extreme values (0, the days around
//! 28 and 42, 980, the edges of 32- and 64-bit integers, -1, 1e-300, 1e300, text) or
//! removed, and the records of a current course stating how many cycles it covered: a case
//! is either bad input whose every problem names a key, or decided without
//! a panic by every policy; and every approval covers a quantity within its ceilings, and
//! ceilings within the pathway's and the label's.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use priorauth_core::case::Case;
use priorauth_core::eval::Granted;
use priorauth_core::generate::{self, Rng};
use priorauth_core::report::Report;
use priorauth_core::{Engine, Evaluation, Outcome};
use serde_json::{Value, json};

/// Cases generated and mutated.
const CASES: u64 = 100_000;

/// A xorshift64 generator for the mutations, apart from the case generator's own.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Values no plausible case has, and the boundaries around the label's figures.
fn extremes() -> Vec<Value> {
    vec![
        json!(0),
        json!(1),
        json!(2),
        json!(27),
        json!(28),
        json!(29),
        json!(41),
        json!(42),
        json!(43),
        json!(84),
        json!(980),
        json!(981),
        json!(2_147_483_647u64),
        json!(2_147_483_648u64),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(1u64 << 63),
        json!(u64::MAX),
        json!(-1),
        json!(1e-300),
        json!(1e300),
        json!("NaN"),
    ]
}

/// The keys mutated, with plausible values of each, so that approvals stay frequent.
const KEYS: [(&str, &[f64]); 10] = [
    (
        "request.units",
        &[
            14.0, 35.0, 54.0, 490.0, 784.0, 979.0, 980.0, 1960.0, 100_000.0,
        ],
    ),
    ("request.units_period_days", &[1.0, 3.0, 7.0, 21.0, 366.0]),
    ("request.cycles", &[3.0, 4.0, 5.0, 6.0, 9.0, 24.0, 25.0]),
    ("request.first_cycle", &[3.0, 5.0, 6.0, 9.0, 10.0, 100.0]),
    ("request.dose_days", &[3.0, 7.0, 14.0, 366.0]),
    ("request.cycle_length_days", &[21.0, 56.0, 366.0]),
    (
        "patient.weight_kg",
        &[0.3, 3.5, 44.9, 45.0, 150.0, 700.0, 700.1],
    ),
    ("patient.height_cm", &[20.0, 50.0, 168.0, 300.0, 300.5]),
    (
        "request.dose.value",
        &[0.001, 0.5, 0.8, 0.81, 5.0, 15.0, 28.0, 28.1, 300.0],
    ),
    (
        "history.blinatumomab_cycles",
        &[3.0, 4.0, 5.0, 8.0, 9.0, 100.0],
    ),
];

fn number(value: f64) -> Value {
    if value.fract() == 0.0 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

/// Sets a dotted key, replacing a null or absent section with an object.
fn set(case: &mut Value, path: &str, value: Value) {
    let mut node = case;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = json!({});
        }
        let object = node.as_object_mut().unwrap();
        if parts.peek().is_none() {
            object.insert(part.to_string(), value);
            return;
        }
        node = object.entry(part.to_string()).or_insert(Value::Null);
    }
}

fn remove(case: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').unwrap();
    let mut node = &mut *case;
    for part in parent.split('.') {
        match node.get_mut(part) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(object) = node.as_object_mut() {
        object.remove(key);
    }
}

/// Changes one to four keys of a generated case: an extreme value, a plausible one, null, or
/// no key at all. A course position changed alone contradicts the cycles given, which is bad
/// input; most of the time the other follows it.
fn mutate(case: &mut Value, rng: &mut XorShift, extremes: &[Value]) {
    for _ in 0..1 + rng.below(4) {
        let (key, plausible) = KEYS[rng.below(KEYS.len())];
        let roll = rng.below(100);
        let value = if roll < 45 {
            Some(extremes[rng.below(extremes.len())].clone())
        } else if roll < 85 {
            Some(number(plausible[rng.below(plausible.len())]))
        } else if roll < 92 {
            Some(Value::Null)
        } else {
            None
        };
        let Some(value) = value else {
            remove(case, key);
            continue;
        };
        if rng.chance(70) {
            if let Some(n) = value.as_u64() {
                match key {
                    "request.first_cycle" if n >= 1 => {
                        set(case, "history.blinatumomab_cycles", json!(n - 1));
                    }
                    "history.blinatumomab_cycles" => {
                        set(case, "request.first_cycle", json!(n.saturating_add(1)));
                    }
                    _ => {}
                }
            }
        }
        set(case, key, value);
    }
    // One case in six: the records of a current course (one authorization that ended 10
    // days before the request date) stating the cycles it covered, plausible or extreme.
    if rng.chance(16) {
        let date = case["request"]["date"]
            .as_str()
            .and_then(priorauth_core::date::Date::parse);
        if let Some(date) = date {
            let day = |days: i64| date.add_days(days).map(|d| d.to_string());
            let cycles = if rng.chance(50) {
                extremes[rng.below(extremes.len())].clone()
            } else {
                json!([1, 2, 4, 5, 8, 9][rng.below(6)])
            };
            set(
                case,
                "history.authorizations",
                json!([{"start": day(-200), "end": day(-10), "cycles": cycles}]),
            );
        }
    }
}

/// Cycles the case's authorization history covered in a current course, when every one of
/// its authorizations says how many and ended at most 90 days before the request date (the
/// mutation's records; a receipt date is at most 29 days later, so they are current then).
fn recorded_cycles(case: &Case) -> u64 {
    let Some(date) = case.request.as_ref().and_then(|r| r.date) else {
        return 0;
    };
    let past = case
        .history
        .as_ref()
        .and_then(|h| h.authorizations.as_deref())
        .unwrap_or_default();
    let current = past
        .iter()
        .all(|a| a.cycles.is_some() && date.days_since(a.end) - 1 <= 60);
    if past.is_empty() || !current {
        return 0;
    }
    past.iter().map(|a| u64::from(a.cycles.unwrap_or(0))).sum()
}

/// The case format's units per cycle, computed here apart from the engine.
fn units_per_cycle(case: &Case) -> Option<u64> {
    let request = case.request.as_ref()?;
    let units = u64::from(request.units?);
    let days = |d: Option<u32>| d.map(u64::from);
    match (
        days(request.units_period_days),
        days(request.cycle_length_days),
    ) {
        (None, _) => Some(units),
        (Some(period), Some(cycle)) if period == cycle => Some(units),
        (Some(period), Some(cycle)) if period > cycle => Some((units * cycle).div_ceil(period)),
        (Some(period), Some(_)) => {
            let infusion = days(request.dose_days())?;
            Some(if period >= infusion {
                units
            } else {
                (units * infusion).div_ceil(period)
            })
        }
        (Some(_), None) => None,
    }
}

/// The label's most units per cycle and its course, from `policies/drugs.toml`'s figures.
fn label_limits(case: &Case) -> (u64, u64) {
    let request = case.request.as_ref().unwrap();
    match request.drug.as_deref() {
        Some("blinatumomab") => {
            // One 35 mcg vial per infusion day, at most 28 days.
            let days = request.dose_days().map_or(28, |d| u64::from(d).min(28));
            (35 * days, 9)
        }
        Some("inotuzumab_ozogamicin") => {
            // 0.8, 0.5 and 0.5 mg/m² in whole 0.9 mg vials of 9 units, by Mosteller's area.
            let patient = case.patient.as_ref().unwrap();
            let bsa = (patient.weight_kg.unwrap() * patient.height_cm.unwrap() / 3600.0).sqrt();
            let vials: f64 = [0.8, 0.5, 0.5]
                .iter()
                .map(|dose| (dose * bsa / 0.9).ceil().max(1.0))
                .sum();
            (9 * vials as u64, 6)
        }
        other => panic!("an approval of {other:?}"),
    }
}

/// What one approval covers, checked against its ceilings and the label's.
fn check_approval(engine: &Engine, case: &Case, policy: usize, pathway: u16, granted: &Granted) {
    let request = case.request.as_ref().unwrap();
    let total = u64::from(granted.units_per_cycle) * u64::from(granted.cycles);
    assert_eq!(granted.total_units(), total);
    assert!(granted.units_per_cycle <= granted.ceiling_units_per_cycle);
    assert!(granted.cycles <= granted.ceiling_cycles);
    assert!(granted.cycles >= 1, "an approval of no cycle");
    assert!(
        granted.total_units()
            <= u64::from(granted.ceiling_units_per_cycle) * u64::from(granted.ceiling_cycles)
    );

    // The ceilings: the lower of the pathway's and the label's.
    let (label_units, label_course) = label_limits(case);
    let ceiling_units = u64::from(granted.ceiling_units_per_cycle);
    let ceiling_cycles = u64::from(granted.ceiling_cycles);
    assert!(
        ceiling_units <= label_units,
        "ceiling {ceiling_units} units beyond the label's {label_units}"
    );
    assert!(ceiling_units <= 980);
    assert!(ceiling_cycles <= label_course);
    if request.drug.as_deref() == Some("blinatumomab") {
        assert!(ceiling_cycles <= 9);
    } else {
        assert!(ceiling_cycles <= 6);
    }
    // The course left from the first requested cycle.
    let given = case.history.as_ref().and_then(|h| h.blinatumomab_cycles);
    let first = request.first_cycle.or(given
        .filter(|_| request.drug.as_deref() == Some("blinatumomab"))
        .map(|n| n + 1));
    if let Some(first) = first {
        assert!(
            ceiling_cycles + u64::from(first) - 1 <= label_course,
            "from cycle {first}: {ceiling_cycles} cycles beyond the label's {label_course}"
        );
    }
    // ... and after the cycles the records authorized in the current course.
    let recorded = recorded_cycles(case);
    assert!(
        ceiling_cycles + recorded <= label_course,
        "after {recorded} authorized cycles: {ceiling_cycles} beyond the label's {label_course}"
    );
    let limit = engine.policies[policy].pathways[usize::from(pathway)]
        .quantity
        .as_ref();
    if let Some(cycles) = limit.and_then(|q| q.cycles) {
        assert!(granted.ceiling_cycles <= cycles);
    }
    if let Some(units) = limit.and_then(|q| q.units_per_cycle) {
        assert!(granted.ceiling_units_per_cycle <= units);
    }

    // Units: as requested (never cut down to fit), or the ceiling when none were requested.
    assert_eq!(granted.units_requested, request.units.is_some());
    if granted.units_requested {
        assert_eq!(
            Some(u64::from(granted.units_per_cycle)),
            units_per_cycle(case)
        );
    } else {
        assert_eq!(granted.units_per_cycle, granted.ceiling_units_per_cycle);
    }
    // Cycles: as requested, or as many as the ceiling allows.
    assert_eq!(granted.requested_cycles, request.cycles);
    assert_eq!(
        granted.cycles,
        request
            .cycles
            .map_or(granted.ceiling_cycles, |n| n.min(granted.ceiling_cycles))
    );
}

/// The report's quantities agree with the decisions: `total_units == units * cycles <=
/// ceiling.units_per_cycle * ceiling.cycles`, and nothing but an approval has one.
fn check_report(engine: &Engine, case: &Case, evaluation: &Evaluation) {
    let report = serde_json::to_value(Report::new(engine, case, evaluation)).unwrap();
    for result in report["results"].as_array().unwrap() {
        let quantity = &result["quantity"];
        if result["outcome"] != "approve" {
            assert!(quantity.is_null());
            continue;
        }
        let n = |v: &Value| v.as_u64().unwrap();
        assert_eq!(
            n(&quantity["total_units"]),
            n(&quantity["units"]) * n(&quantity["cycles"])
        );
        assert!(
            n(&quantity["total_units"])
                <= n(&quantity["ceiling"]["units_per_cycle"]) * n(&quantity["ceiling"]["cycles"])
        );
        let partial = quantity.get("requested_cycles").is_some();
        let ids: Vec<&str> = result["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(partial, ids.contains(&"cycles-beyond-authorization"));
        assert!(ids.contains(&"quantity"));
    }
}

#[derive(Debug, Default)]
struct Counts {
    invalid: u64,
    decided: u64,
    approvals: u64,
    partial: u64,
    policy_maximum: u64,
    units_over: u64,
}

/// One case: bad input naming its keys, or decided by every policy within the ceilings.
fn check_case(
    engine: &Engine,
    text: &str,
    received: Option<u64>,
    evaluation: &mut Evaluation,
    counts: &mut Counts,
    report: bool,
) {
    let case = match engine.parse_case(text) {
        Err(error) => {
            counts.invalid += 1;
            assert!(!error.problems.is_empty());
            for problem in &error.problems {
                assert!(!problem.key.is_empty(), "a problem without a key: {error}");
            }
            return;
        }
        Ok(case) => case,
    };
    counts.decided += 1;
    let received = received.and_then(|days| {
        let date = case.request.as_ref()?.date?;
        date.add_days(days as i64)
    });
    // Received 0 to 29 days after the request date: within the window.
    engine
        .evaluate_received_into(&case, &[], received, evaluation)
        .unwrap();
    assert_eq!(evaluation.decisions.len(), engine.current().len());
    for (policy, decision) in &evaluation.decisions {
        if decision.units_over.is_some() {
            counts.units_over += 1;
        }
        if decision.outcome != Outcome::Approve {
            assert!(decision.quantity.is_none(), "{decision:?}");
            continue;
        }
        counts.approvals += 1;
        let granted = decision.quantity.expect("an approval without a quantity");
        let pathway = decision.pathway.expect("an approval without a pathway");
        counts.partial += u64::from(granted.is_partial());
        counts.policy_maximum += u64::from(!granted.units_requested);
        check_approval(engine, &case, *policy, pathway, &granted);
    }
    if report {
        check_report(engine, &case, evaluation);
    }
}

/// Generates `cases` cases, mutates them and hands each, as JSON text, to `check` with a
/// receipt offset in days (one case in eight is decided as received after its request date).
/// A panic names the case.
fn for_each_case(cases: u64, mut check: impl FnMut(&str, Option<u64>, u64)) {
    let extremes = extremes();
    let mut generator = Rng::new(0x5EED_CE11);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for index in 0..cases {
        let mut case = generate::case(&mut generator, index, 5);
        mutate(&mut case, &mut rng, &extremes);
        let text = case.to_string();
        let received = rng.chance(12).then(|| rng.next() % 30);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&text, received, index)));
        if outcome.is_err() {
            panic!("case {index} (received +{received:?} days): {text}");
        }
    }
}

#[test]
fn every_approval_is_within_its_ceilings_on_extreme_quantities() {
    let engine = Engine::bundled().unwrap();
    let mut evaluation = Evaluation::default();
    let mut counts = Counts::default();
    let start = std::time::Instant::now();
    for_each_case(CASES, |text, received, index| {
        // The report of one case in twenty.
        let report = index % 20 == 0;
        check_case(
            &engine,
            text,
            received,
            &mut evaluation,
            &mut counts,
            report,
        );
    });
    println!("{CASES} cases in {:?}: {counts:?}", start.elapsed());
    // The mutations reach every branch: bad input, approvals with requested and absent
    // units, partial approvals and units beyond a ceiling.
    assert!(counts.invalid > CASES / 10, "{counts:?}");
    assert!(counts.decided > CASES / 5, "{counts:?}");
    assert!(counts.approvals > CASES / 10, "{counts:?}");
    assert!(counts.partial > 500, "{counts:?}");
    assert!(counts.policy_maximum > 500, "{counts:?}");
    assert!(counts.units_over > 500, "{counts:?}");
}

/// Units beyond a ceiling (`Decision::units_over`, the report's `units-per-cycle` reason)
/// are reported only for units beyond it. A request with no cycle left in the label's course
/// (a ceiling of 0 cycles) is reported with its units, within the ceiling, as if they were
/// beyond it (see `adversarial::a_request_past_the_course_is_not_explained_as_units_over`).
#[test]
fn units_over_only_for_units_beyond_the_ceiling() {
    let engine = Engine::bundled().unwrap();
    let mut evaluation = Evaluation::default();
    for_each_case(CASES / 5, |text, received, _| {
        let Ok(case) = engine.parse_case(text) else {
            return;
        };
        let received = received.and_then(|days| {
            let date = case.request.as_ref()?.date?;
            date.add_days(days as i64)
        });
        engine
            .evaluate_received_into(&case, &[], received, &mut evaluation)
            .unwrap();
        for (_, decision) in &evaluation.decisions {
            if let Some((_, requested, ceiling)) = decision.units_over {
                assert!(
                    requested > ceiling,
                    "{requested} units per cycle reported beyond a ceiling of {ceiling}"
                );
            }
        }
    });
}

/// The units per cycle the engine derives agree with the case format's rule on every
/// combination of small quantities and periods, and never overflow on the largest.
#[test]
fn units_per_cycle_follows_the_case_format() {
    use priorauth_core::facts::{Value as Fact, units_per_cycle as engine_units};
    let days = [
        1u32, 2, 3, 7, 14, 21, 27, 28, 29, 41, 42, 43, 56, 84, 365, 366,
    ];
    for units in [
        0u32,
        1,
        34,
        35,
        36,
        783,
        784,
        979,
        980,
        981,
        1960,
        100_000,
        u32::MAX,
    ] {
        for &period in &days {
            for &cycle in &days {
                for &infusion in days.iter().filter(|d| **d <= cycle) {
                    let mut case = Case::default();
                    let request = case.request.get_or_insert_with(Default::default);
                    request.units = Some(units);
                    request.units_period_days = Some(period);
                    request.cycle_length_days = Some(cycle);
                    request.dose_days = Some(infusion);
                    let expected = units_per_cycle(&case).unwrap();
                    let actual =
                        engine_units(Some(units), Some(period), Some(cycle), Some(infusion));
                    assert_eq!(
                        actual,
                        Fact::Number(expected as f64),
                        "{units} per {period} days, {infusion} of {cycle}"
                    );
                }
            }
        }
        assert_eq!(
            engine_units(Some(units), None, None, None),
            Fact::Number(f64::from(units))
        );
    }
}
