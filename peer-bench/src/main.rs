//! priorauth against GoRules ZEN, a general-purpose rules engine, on the same policy (EOCCO-0382,
//! initial requests) and the same generated cases.
//!
//! ZEN's model is written at run time from the policy priorauth loads (`export`), so the two
//! engines decide by one policy file. Both engines get the same facts: priorauth's derived facts
//! (ages, body surface area, dose per unit, course position, units per cycle, the label's
//! limits, TKI flags) are handed to ZEN as its input with the names of the unknown facts and the
//! request's diagnosis codes, so ZEN is timed on the decision alone, while priorauth is timed
//! with and without computing those facts and with its explanation. Every case is checked for
//! agreement: approve or not, and for an approval its pathway, cycles and units per cycle; cases
//! priorauth leaves `incomplete` are counted apart. A second population, the first with one
//! change to each case (units beyond the ceilings, more cycles than an authorization covers, no
//! units, diagnosis codes outside the policy's list, no course left), is checked the same way.
//!
//! `cargo run --release` in this folder; `PEER_CASES` sets each population's size (default
//! 20,000); `PEER_JDM=file.json` decides with that JDM instead of the one written from the policy.

mod export;

use std::hint::black_box;
use std::time::{Duration, Instant};

use priorauth_core::facts::Value;
use priorauth_core::generate::{self, Rng};
use priorauth_core::{Case, Engine, Evaluation, FactId, Facts, Outcome, eval};
use serde_json::json;
use zen_engine::model::DecisionContent;
use zen_engine::{Decision, DecisionEngine, Variable};

/// The policy and the request kind of the model.
const POLICY: &str = "eocco-0382";
const KIND: &str = "initial";

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// The model: written from the policy, or read from `PEER_JDM`. The generated one is also
/// written to `target/` for a look or for the GoRules editor.
fn model(engine: &Engine, policy: &priorauth_core::Policy) -> (String, serde_json::Value) {
    if let Ok(path) = std::env::var("PEER_JDM") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        let jdm = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        return (format!("read from {path}"), jdm);
    }
    let expressions = export::decision_expressions(engine, policy, KIND)
        .unwrap_or_else(|e| fail(&format!("{}: cannot be written for ZEN: {e}", policy.file)));
    let jdm = export::jdm(&format!("{} {KIND} request", policy.document), &expressions);
    let path = format!(
        "{}/target/{POLICY}-{KIND}.jdm.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let written = std::fs::create_dir_all(format!("{}/target", env!("CARGO_MANIFEST_DIR")))
        .and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&jdm).expect("JSON") + "\n",
            )
        });
    if let Err(e) = written {
        fail(&format!("{path}: {e}"));
    }
    let length: usize = expressions.iter().map(|(_, e)| e.len()).sum();
    (
        format!(
            "written from {} to {path} ({} expressions, {length} characters)",
            policy.file,
            expressions.len()
        ),
        jdm,
    )
}

fn fail(message: &str) -> ! {
    eprintln!("peer-bench: {message}");
    std::process::exit(2);
}

/// The model as ZEN runs it: `compiled`, its expressions compiled once; otherwise ZEN compiles
/// each expression at each evaluation.
fn decision(jdm: &serde_json::Value, compiled: bool) -> Decision {
    let mut content: DecisionContent =
        serde_json::from_value(jdm.clone()).unwrap_or_else(|e| fail(&format!("not a JDM: {e}")));
    if compiled {
        // `compile` leaves out an expression it cannot compile: every one must be there.
        content.compile();
        let cache = content.compiled_cache.as_ref().expect("compiled");
        for node in jdm["nodes"].as_array().into_iter().flatten() {
            for expression in node["content"]["expressions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let source = expression["value"].as_str().unwrap_or_default();
                if !cache.standard.contains_key(source) {
                    fail(&format!(
                        "ZEN cannot compile the expression `{}`",
                        expression["key"]
                    ));
                }
            }
        }
    }
    DecisionEngine::default().create_decision(content.into())
}

/// The changes of the second population, one per case in turn.
const CHANGES: [&str; 12] = [
    "units 99,999",
    "units 981",
    "cycles 9",
    "no units",
    "cycles 9 and no units",
    "units 99,999 and cycles 9",
    "ICD-10-CM C92.00 only (outside the policy's list)",
    "ICD-10-CM C92.00 and C91.02",
    "first cycle 10 (after 9 given)",
    "35 units per day",
    "14 infusion days (the label's ceiling 490 units)",
    "14 infusion days and 490 units",
];

fn change(case: &mut serde_json::Value, which: usize) {
    let request = &mut case["request"];
    match which {
        0 => request["units"] = json!(99_999),
        1 => request["units"] = json!(981),
        2 => request["cycles"] = json!(9),
        3 => request["units"] = json!(null),
        4 => {
            request["cycles"] = json!(9);
            request["units"] = json!(null);
        }
        5 => {
            request["units"] = json!(99_999);
            request["cycles"] = json!(9);
        }
        6 => case["diagnosis"]["icd10"] = json!(["C92.00"]),
        7 => case["diagnosis"]["icd10"] = json!(["C92.00", "C91.02"]),
        8 => {
            request["first_cycle"] = json!(10);
            case["history"]["blinatumomab_cycles"] = json!(9);
        }
        9 => {
            request["units"] = json!(35);
            request["units_period_days"] = json!(1);
        }
        10 => request["infusion_days"] = json!(14),
        _ => {
            request["infusion_days"] = json!(14);
            request["units"] = json!(490);
        }
    }
}

/// One population of initial requests, with what each engine is handed.
struct Population {
    name: &'static str,
    cases: Vec<Case>,
    facts: Vec<Facts>,
    dates: Vec<Option<priorauth_core::date::Date>>,
    codes: Vec<Vec<String>>,
    inputs: Vec<serde_json::Value>,
    /// ZEN's own form of the inputs, made once as priorauth's facts are. `evaluate` takes a
    /// handle to it (a `Variable` is reference-counted) and leaves it as it was (checked).
    variables: Vec<Variable>,
}

fn population(engine: &Engine, n: u64, changed: bool) -> Population {
    let mut rng = Rng::new(42);
    let cases: Vec<Case> = (0..n)
        .map(|i| {
            let mut case = generate::case(&mut rng, i, 0);
            case["request"]["kind"] = json!(KIND);
            if changed {
                change(&mut case, (i % CHANGES.len() as u64) as usize);
            }
            engine
                .parse_case(&case.to_string())
                .unwrap_or_else(|e| fail(&format!("generated case {i}: {e}")))
        })
        .collect();
    let facts: Vec<Facts> = cases.iter().map(|c| engine.facts(c)).collect();
    let dates = cases
        .iter()
        .map(|c| c.request.as_ref().and_then(|r| r.date))
        .collect();
    let codes: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            c.diagnosis
                .as_ref()
                .and_then(|d| d.icd10.clone())
                .unwrap_or_default()
        })
        .collect();
    let inputs: Vec<serde_json::Value> = facts
        .iter()
        .zip(&codes)
        .map(|(f, c)| export::input(engine, f, c))
        .collect();
    let variables = inputs
        .iter()
        .map(|input| Variable::from(input.clone()))
        .collect();
    Population {
        name: if changed {
            "changed (one of twelve changes to each case)"
        } else {
            "generated"
        },
        cases,
        facts,
        dates,
        codes,
        inputs,
        variables,
    }
}

/// priorauth's outcomes on a population, and ZEN's agreement with them.
#[derive(Default)]
struct Tally {
    agree: usize,
    incomplete: usize,
    approvals: usize,
    /// Approvals of fewer cycles than requested.
    partial: usize,
    /// Approvals of a request without units, which carry the ceiling.
    without_units: usize,
    /// Units per cycle beyond a ceiling kept a pathway whose criteria were met from approving.
    units_over: usize,
    /// Denied: every diagnosis code outside the policy's list.
    codes_not_covered: usize,
    /// The request's first cycle is past the label's course.
    no_course_left: usize,
    /// Approved by priorauth only, by ZEN only; approved by both with another pathway or
    /// quantity.
    only_ours: usize,
    only_theirs: usize,
    quantity: usize,
}

impl Tally {
    fn disagree(&self) -> usize {
        self.only_ours + self.only_theirs + self.quantity
    }
}

async fn check(
    engine: &Engine,
    index: usize,
    compiled: &Decision,
    population: &Population,
) -> Tally {
    let policy = &engine.policies[index];
    let mut tally = Tally::default();
    let mut evaluation = Evaluation::default();
    let mut shown = 0;
    for (case, (variable, input)) in population
        .cases
        .iter()
        .zip(population.variables.iter().zip(&population.inputs))
    {
        // priorauth as the service decides: facts, the policy, the covered codes.
        engine.evaluate_into(case, &[index], &mut evaluation);
        let [(decided_by, ours)] = evaluation.decisions.as_slice() else {
            fail("priorauth did not decide by the one policy");
        };
        if *decided_by != index {
            fail("priorauth decided by another version of the policy");
        }
        let response = compiled
            .evaluate(variable.clone())
            .await
            .unwrap_or_else(|e| fail(&format!("ZEN: {e}")));
        let theirs = serde_json::Value::from(response.result);
        let approve = theirs["approve"]
            .as_bool()
            .unwrap_or_else(|| fail("ZEN's answer has no `approve` of true or false"));

        let facts = &evaluation.facts;
        if let (Value::Number(first), Value::Number(course)) = (
            facts.get(FactId::RequestFirstCycle),
            facts.get(FactId::RequestLabelCourseCycles),
        ) {
            tally.no_course_left += usize::from(first - 1.0 >= course);
        }
        tally.units_over += usize::from(ours.units_over.is_some());
        tally.codes_not_covered += usize::from(ours.codes_not_covered);
        let mut problem = None;
        match ours.outcome {
            Outcome::Incomplete => tally.incomplete += 1,
            Outcome::Approve => {
                tally.approvals += 1;
                let quantity = ours.quantity.expect("an approval's quantity");
                tally.partial += usize::from(quantity.is_partial());
                tally.without_units += usize::from(!quantity.units_requested);
                let pathway = ours
                    .pathway
                    .and_then(|p| policy.pathways.get(usize::from(p)))
                    .map(|p| p.id.as_str());
                // A model that gives no pathway or quantity is compared on `approve` alone.
                let same_quantity = theirs.get("pathway").is_none_or(|p| p.as_str() == pathway)
                    && theirs
                        .get("cycles")
                        .is_none_or(|c| c.as_f64() == Some(f64::from(quantity.cycles)))
                    && theirs
                        .get("units_per_cycle")
                        .is_none_or(|u| u.as_f64() == Some(f64::from(quantity.units_per_cycle)));
                if !approve {
                    tally.only_ours += 1;
                    problem = Some(format!("priorauth approve, ZEN approve={approve}"));
                } else if !same_quantity {
                    tally.quantity += 1;
                    problem = Some(format!(
                        "priorauth approve by {pathway:?} of {} cycles at {} units, ZEN by {} of {} at {}",
                        quantity.cycles,
                        quantity.units_per_cycle,
                        theirs["pathway"],
                        theirs["cycles"],
                        theirs["units_per_cycle"]
                    ));
                } else {
                    tally.agree += 1;
                }
            }
            other if approve => {
                tally.only_theirs += 1;
                problem = Some(format!("priorauth {}, ZEN approve=true", other.as_str()));
            }
            _ => tally.agree += 1,
        }
        if let Some(problem) = problem {
            shown += 1;
            if shown <= 5 {
                eprintln!("disagree ({}): {problem}: {input}", population.name);
            }
        }
    }
    tally
}

fn report(population: &Population, tally: &Tally) {
    let n = population.cases.len();
    println!(
        "{} population, {n} {KIND} requests: {} approved ({} in part, {} without units), {} not approved, {} left incomplete",
        population.name,
        tally.approvals,
        tally.partial,
        tally.without_units,
        n - tally.approvals - tally.incomplete,
        tally.incomplete
    );
    println!(
        "  {} with units per cycle beyond the ceiling of a pathway whose criteria are met, {} denied for diagnosis codes outside the list, {} starting past the label's course",
        tally.units_over, tally.codes_not_covered, tally.no_course_left
    );
    println!(
        "  agreement: {} agree, {} disagree ({} approved by priorauth only, {} by ZEN only, {} approved by both with another pathway or quantity)",
        tally.agree,
        tally.disagree(),
        tally.only_ours,
        tally.only_theirs,
        tally.quantity
    );
}

async fn run() {
    let n: u64 = std::env::var("PEER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let engine = Engine::bundled().expect("policies");
    let index = engine.policy_index(POLICY).expect("policy");
    let policy = &engine.policies[index];

    let generated = population(&engine, n, false);
    let changed = population(&engine, n, true);

    let (origin, jdm) = model(&engine, policy);
    let compiled = decision(&jdm, true);
    let uncompiled = decision(&jdm, false);

    // Agreement, case by case, on both populations.
    let tallies = [
        check(&engine, index, &compiled, &generated).await,
        check(&engine, index, &compiled, &changed).await,
    ];

    // Throughput on the generated population, best of 3 rounds each.
    let Population {
        cases,
        facts,
        dates,
        codes,
        inputs,
        variables,
        ..
    } = &generated;
    let best = |mut round: Box<dyn FnMut() + '_>| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                round();
                t.elapsed()
            })
            .min()
            .expect("rounds")
    };
    let ours_decide = best(Box::new(|| {
        for ((facts, date), codes) in facts.iter().zip(dates).zip(codes) {
            let mut decision = eval::decide(policy, facts, *date);
            eval::deny_uncovered_codes(policy, codes, &mut decision);
            black_box(decision);
        }
    }));
    let ours_codes = best(Box::new(|| {
        for codes in codes {
            black_box(policy.codes.icd10_covered(codes));
        }
    }));
    let mut evaluation = Evaluation::default();
    let ours_full = best(Box::new(|| {
        for case in cases {
            engine.evaluate_into(case, &[index], &mut evaluation);
            for (index, decision) in &evaluation.decisions {
                black_box(eval::explain(
                    &engine.policies[*index],
                    &evaluation.facts,
                    decision,
                ));
            }
        }
    }));
    let to_variable = best(Box::new(|| {
        for input in inputs {
            black_box(Variable::from(input.clone()));
        }
    }));
    // ZEN compiled, facts given; and without `compile`, the facts converted from JSON at each
    // evaluation.
    let (mut theirs, mut theirs_before) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let start = Instant::now();
        for variable in variables {
            black_box(
                compiled
                    .evaluate(variable.clone())
                    .await
                    .expect("ZEN evaluates"),
            );
        }
        theirs = theirs.min(start.elapsed());
        let start = Instant::now();
        for input in inputs {
            black_box(
                uncompiled
                    .evaluate(input.clone().into())
                    .await
                    .expect("ZEN evaluates"),
            );
        }
        theirs_before = theirs_before.min(start.elapsed());
    }
    for (variable, input) in variables.iter().zip(inputs) {
        if serde_json::Value::from(variable.clone())
            != serde_json::Value::from(Variable::from(input.clone()))
        {
            fail(
                "ZEN changed an input it was given: the facts cannot be shared between evaluations",
            );
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!("{} {KIND} requests", policy.document);
    println!("ZEN model {origin}");
    report(&generated, &tallies[0]);
    report(&changed, &tallies[1]);
    println!("timed on the generated population:");
    let row = |name: &str, d: Duration| println!("{name:<70} {:>9.0} ns/case", per(d));
    row(
        "ZEN (GoRules) expression graph, compiled once, facts given",
        theirs,
    );
    row(
        "ZEN, expressions compiled at each evaluation, facts from JSON",
        theirs_before,
    );
    row(
        "  of which the facts from JSON to ZEN's Variable",
        to_variable,
    );
    let ratio = |name: &str, d: Duration| {
        println!(
            "{name:<70} {:>9.0} ns/case  {:>5.1}x faster ({:.1}x against the second ZEN)",
            per(d),
            per(theirs) / per(d),
            per(theirs_before) / per(d)
        );
    };
    ratio("priorauth decide, facts given", ours_decide);
    row(
        "  of which the covered-codes check (Codes::icd10_covered)",
        ours_codes,
    );
    ratio("priorauth facts + decide + explanation", ours_full);
    if tallies.iter().any(|t| t.disagree() > 0) {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model written from the policy decides as priorauth on a few hundred cases of each
    /// population, and the changed one reaches the quantity rules and the covered codes.
    #[test]
    fn zen_decides_as_priorauth() {
        let engine = Engine::bundled().expect("policies");
        let index = engine.policy_index(POLICY).expect("policy");
        let expressions =
            export::decision_expressions(&engine, &engine.policies[index], KIND).unwrap();
        let compiled = decision(&export::jdm("test", &expressions), true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for changed in [false, true] {
            let population = population(&engine, 600, changed);
            let tally = runtime.block_on(check(&engine, index, &compiled, &population));
            assert_eq!(tally.disagree(), 0, "{}", population.name);
            assert_eq!(tally.agree + tally.incomplete, 600);
            if changed {
                for (what, count) in [
                    ("partial approvals", tally.partial),
                    ("approvals without units", tally.without_units),
                    ("units over a ceiling", tally.units_over),
                    ("codes outside the list", tally.codes_not_covered),
                    ("requests past the course", tally.no_course_left),
                ] {
                    assert!(count > 0, "no {what}");
                }
            }
        }
    }
}
