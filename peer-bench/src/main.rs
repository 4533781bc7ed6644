//! priorauth against GoRules ZEN, a general-purpose rules engine, on the same policy (EOCCO-0382,
//! initial approval criteria) and the same generated cases.
//!
//! Both engines get the same facts: priorauth's derived facts (ages, body surface area, dose
//! per unit, last cycle, TKI flags) are handed to ZEN as its input, so ZEN is timed on the
//! criteria alone, while priorauth is timed with and without computing those facts and with
//! its explanation. Every case is checked for agreement (approve or not); cases priorauth
//! leaves `incomplete` (ZEN has no unknown) are counted apart.
//!
//! `cargo run --release` in this folder; `PEER_CASES` sets the population (default 20,000).

use std::hint::black_box;
use std::time::Instant;

use priorauth_core::facts::{FACTS, FactType, Value};
use priorauth_core::generate::{self, Rng};
use priorauth_core::{Engine, Evaluation, Outcome, eval};
use serde_json::{Map, json};
use zen_engine::DecisionEngine;
use zen_engine::model::DecisionContent;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
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
        sections.entry(section).or_insert_with(|| json!({})).as_object_mut().expect("object").insert(key.to_string(), value);
    }
    serde_json::Value::Object(sections)
}

async fn run() {
    let n: u64 = std::env::var("PEER_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let engine = Engine::bundled().expect("policies");
    let eocco = engine.policy_index("eocco-0382").expect("eocco-0382");
    let policy = &engine.policies[eocco];

    // A population of initial requests (the ZEN model encodes the initial criteria).
    let mut rng = Rng::new(42);
    let cases: Vec<_> = (0..n)
        .map(|i| {
            let mut case = generate::case(&mut rng, i, 0);
            case["request"]["kind"] = json!("initial");
            engine.parse_case(&case.to_string()).expect("generated case")
        })
        .collect();
    let facts: Vec<_> = cases.iter().map(|c| engine.facts(c)).collect();
    let dates: Vec<_> = cases.iter().map(|c| c.request.as_ref().and_then(|r| r.date)).collect();
    let inputs: Vec<serde_json::Value> = facts.iter().map(|f| zen_input(&engine, f)).collect();

    let content: DecisionContent = serde_json::from_str(include_str!("../eocco-initial.jdm.json")).expect("JDM");
    let zen = DecisionEngine::default();
    let decision = zen.create_decision(content.into());

    // Agreement, case by case.
    let (mut agree, mut disagree, mut incomplete, mut approvals) = (0, 0, 0, 0);
    for ((facts, date), input) in facts.iter().zip(&dates).zip(&inputs) {
        let ours = eval::decide(policy, facts, *date).outcome;
        let response = decision.evaluate(input.clone().into()).await.expect("ZEN evaluates");
        let theirs = serde_json::Value::from(response.result)["approve"].as_bool().unwrap_or(false);
        match ours {
            Outcome::Incomplete => incomplete += 1,
            _ if (ours == Outcome::Approve) == theirs => {
                agree += 1;
                approvals += usize::from(theirs);
            }
            _ => {
                disagree += 1;
                if disagree <= 5 {
                    eprintln!("disagree: priorauth {}, ZEN approve={theirs}: {}", ours.as_str(), input);
                }
            }
        }
    }

    // Throughput, best of 3 rounds each.
    let best = |mut round: Box<dyn FnMut() + '_>| (0..3).map(|_| { let t = Instant::now(); round(); t.elapsed() }).min().expect("rounds");
    let ours_decide = best(Box::new(|| {
        for (facts, date) in facts.iter().zip(&dates) {
            black_box(eval::decide(policy, facts, *date));
        }
    }));
    let mut evaluation = Evaluation::default();
    let ours_full = best(Box::new(|| {
        for case in &cases {
            engine.evaluate_into(case, &[eocco], &mut evaluation);
            for (index, decision) in &evaluation.decisions {
                black_box(eval::explain(&engine.policies[*index], &evaluation.facts, decision));
            }
        }
    }));
    let mut theirs = std::time::Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for input in &inputs {
            black_box(decision.evaluate(input.clone().into()).await.expect("ZEN evaluates"));
        }
        theirs = theirs.min(start.elapsed());
    }
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!("EOCCO-0382 initial criteria, {n} generated initial requests ({approvals} approved)");
    println!("agreement: {agree} agree, {disagree} disagree, {incomplete} left incomplete by priorauth (ZEN has no unknown)");
    println!("{:<62} {:>10.0} ns/case", "ZEN (GoRules) expression graph, facts given", per(theirs));
    println!("{:<62} {:>10.0} ns/case  {:>6.1}x faster", "priorauth decide, facts given", per(ours_decide), per(theirs) / per(ours_decide));
    println!("{:<62} {:>10.0} ns/case  {:>6.1}x faster", "priorauth facts + decide + explanation", per(ours_full), per(theirs) / per(ours_full));
    if disagree > 0 {
        std::process::exit(1);
    }
}
