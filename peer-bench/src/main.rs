//! priorauth against GoRules ZEN, a general-purpose rules engine, on the same policy (EOCCO-0382,
//! initial approval criteria) and the same generated cases.
//!
//! ZEN's model is written at run time from the policy priorauth loads (`export`), so the two
//! engines decide by one policy file. Both engines get the same facts: priorauth's derived facts
//! (ages, body surface area, dose per unit, last cycle, TKI flags) are handed to ZEN as its
//! input, so ZEN is timed on the criteria alone, while priorauth is timed with and without
//! computing those facts and with its explanation. Every case is checked for agreement (approve
//! or not); cases priorauth leaves `incomplete` (ZEN has no unknown) are counted apart.
//!
//! `cargo run --release` in this folder; `PEER_CASES` sets the population (default 20,000);
//! `PEER_JDM=file.json` decides with that JDM instead of the one written from the policy.

mod export;

use std::hint::black_box;
use std::time::{Duration, Instant};

use priorauth_core::facts::{FACTS, FactType, Value};
use priorauth_core::generate::{self, Rng};
use priorauth_core::{Engine, Evaluation, Outcome, eval};
use serde_json::{Map, json};
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

/// priorauth's facts as ZEN's input: `{"patient": {"age_years": 16, …}, …}`, unknown as null.
fn zen_input(engine: &Engine, facts: &priorauth_core::Facts) -> serde_json::Value {
    let mut sections: Map<String, serde_json::Value> = Map::new();
    for (index, def) in FACTS.iter().enumerate() {
        let id = priorauth_core::FactId::by_name(def.name).expect("fact");
        debug_assert_eq!(id as usize, index);
        let value = match facts.get(id) {
            Value::Bool(b) => json!(b),
            Value::Number(n) => json!(n),
            Value::Symbol(s) => match def.fact_type {
                FactType::Enum(variants) => json!(variants[usize::from(s)]),
                _ => json!(engine.drug_names()[usize::from(s)]),
            },
            Value::Unknown(_) | Value::NotApplicable => serde_json::Value::Null,
        };
        let (section, key) = def.name.split_once('.').expect("section.key");
        sections
            .entry(section)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(key.to_string(), value);
    }
    serde_json::Value::Object(sections)
}

/// The model: written from the policy, or read from `PEER_JDM`. The generated one is also
/// written to `target/` for a look or for the GoRules editor.
fn model(engine: &Engine, policy: &priorauth_core::Policy) -> (String, serde_json::Value) {
    if let Ok(path) = std::env::var("PEER_JDM") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        let jdm = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        return (format!("read from {path}"), jdm);
    }
    let expression = export::approval_expression(engine, policy, KIND)
        .unwrap_or_else(|e| fail(&format!("{}: cannot be written for ZEN: {e}", policy.file)));
    let jdm = export::jdm(&format!("{} {KIND} approval", policy.document), &expression);
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
    (format!("written from {} to {path}", policy.file), jdm)
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

async fn run() {
    let n: u64 = std::env::var("PEER_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let engine = Engine::bundled().expect("policies");
    let index = engine.policy_index(POLICY).expect("policy");
    let policy = &engine.policies[index];

    // A population of initial requests (the model is the initial approval).
    let mut rng = Rng::new(42);
    let cases: Vec<_> = (0..n)
        .map(|i| {
            let mut case = generate::case(&mut rng, i, 0);
            case["request"]["kind"] = json!(KIND);
            engine
                .parse_case(&case.to_string())
                .expect("generated case")
        })
        .collect();
    let facts: Vec<_> = cases.iter().map(|c| engine.facts(c)).collect();
    let dates: Vec<_> = cases
        .iter()
        .map(|c| c.request.as_ref().and_then(|r| r.date))
        .collect();
    let inputs: Vec<serde_json::Value> = facts.iter().map(|f| zen_input(&engine, f)).collect();

    // ZEN's own form of the facts, made once as priorauth's are. `evaluate` takes a handle to
    // it (a `Variable` is reference-counted) and leaves it as it was (checked below).
    let variables: Vec<Variable> = inputs
        .iter()
        .map(|input| Variable::from(input.clone()))
        .collect();

    let (origin, jdm) = model(&engine, policy);
    let compiled = decision(&jdm, true);
    let uncompiled = decision(&jdm, false);

    // Agreement, case by case.
    let (mut agree, mut incomplete, mut approvals) = (0, 0, 0);
    // Disagreements: priorauth approves and ZEN does not, and the other way.
    let (mut only_ours, mut only_theirs) = (0, 0);
    for (((facts, date), input), variable) in facts.iter().zip(&dates).zip(&inputs).zip(&variables)
    {
        let ours = eval::decide(policy, facts, *date).outcome;
        let response = compiled
            .evaluate(variable.clone())
            .await
            .unwrap_or_else(|e| fail(&format!("ZEN: {e}")));
        let theirs = serde_json::Value::from(response.result)["approve"]
            .as_bool()
            .unwrap_or_else(|| fail("ZEN's answer has no `approve` of true or false"));
        match ours {
            Outcome::Incomplete => incomplete += 1,
            _ if (ours == Outcome::Approve) == theirs => {
                agree += 1;
                approvals += usize::from(theirs);
            }
            _ => {
                if ours == Outcome::Approve {
                    only_ours += 1;
                } else {
                    only_theirs += 1;
                }
                if only_ours + only_theirs <= 5 {
                    eprintln!(
                        "disagree: priorauth {}, ZEN approve={theirs}: {}",
                        ours.as_str(),
                        input
                    );
                }
            }
        }
    }

    // Throughput, best of 3 rounds each.
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
        for (facts, date) in facts.iter().zip(&dates) {
            black_box(eval::decide(policy, facts, *date));
        }
    }));
    let mut evaluation = Evaluation::default();
    let ours_full = best(Box::new(|| {
        for case in &cases {
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
        for input in &inputs {
            black_box(Variable::from(input.clone()));
        }
    }));
    // ZEN compiled, facts given; and without `compile`, the facts converted from JSON at each
    // evaluation.
    let (mut theirs, mut theirs_before) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let start = Instant::now();
        for variable in &variables {
            black_box(
                compiled
                    .evaluate(variable.clone())
                    .await
                    .expect("ZEN evaluates"),
            );
        }
        theirs = theirs.min(start.elapsed());
        let start = Instant::now();
        for input in &inputs {
            black_box(
                uncompiled
                    .evaluate(input.clone().into())
                    .await
                    .expect("ZEN evaluates"),
            );
        }
        theirs_before = theirs_before.min(start.elapsed());
    }
    for (variable, input) in variables.iter().zip(&inputs) {
        if serde_json::Value::from(variable.clone())
            != serde_json::Value::from(Variable::from(input.clone()))
        {
            fail(
                "ZEN changed an input it was given: the facts cannot be shared between evaluations",
            );
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "{} {KIND} approval, {n} generated {KIND} requests ({approvals} approved)",
        policy.document
    );
    println!("ZEN model {origin}");
    println!(
        "agreement: {agree} agree, {} disagree ({only_ours} approved by priorauth only, {only_theirs} by ZEN only), {incomplete} left incomplete by priorauth (ZEN has no unknown)",
        only_ours + only_theirs
    );
    let row = |name: &str, d: Duration| println!("{name:<70} {:>9.0} ns/case", per(d));
    row(
        "ZEN (GoRules) expression graph, compiled once, facts given",
        theirs,
    );
    row(
        "ZEN, expression compiled at each evaluation, facts from JSON",
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
    ratio("priorauth facts + decide + explanation", ours_full);
    if only_ours + only_theirs > 0 {
        std::process::exit(1);
    }
}
