//! `cargo bench -p priorauth-core`: how fast the bundled policies decide a generated
//! population, measured against a bare JSON parse of the same cases in the same run.
//!
//! Every figure is the best of several rounds over the whole population (best, because
//! other work on the machine only ever slows a round down). Set `PRIORAUTH_BENCH_CASES`
//! to change the population size (default 100,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use priorauth_core::generate::{self, Rng};
use priorauth_core::{Case, Engine, Evaluation, eval, report};

const ROUNDS: usize = 5;

fn best_of(mut round: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            round();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn per_case(duration: Duration, n: usize) -> f64 {
    duration.as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let n: usize = std::env::var("PRIORAUTH_BENCH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let engine = Engine::bundled().unwrap();
    let mut rng = Rng::new(2026);
    let lines: Vec<String> = (0..n as u64)
        .map(|i| generate::case(&mut rng, i, 3).to_string())
        .collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    let cases: Vec<Case> = lines
        .iter()
        .map(|l| engine.parse_case(l).unwrap())
        .collect();
    let n_policies = engine.current().len();

    // Baselines: a bare typed parse, and a parse into a generic JSON value.
    let typed_parse = best_of(|| {
        for line in &lines {
            black_box(serde_json::from_str::<Case>(line).unwrap());
        }
    });
    let value_parse = best_of(|| {
        for line in &lines {
            black_box(serde_json::from_str::<serde_json::Value>(line).unwrap());
        }
    });

    // In-process: facts and every policy's decision, from parsed cases.
    let mut evaluation = Evaluation::default();
    let decide = best_of(|| {
        for case in &cases {
            engine.evaluate_into(black_box(case), &[], &mut evaluation);
            black_box(&evaluation);
        }
    });
    // Of which: the facts alone, derived facts and label included.
    let facts_only = best_of(|| {
        for case in &cases {
            black_box(engine.facts(black_box(case)));
        }
    });
    // The same, with the explanation of every decision.
    let decide_explain = best_of(|| {
        for case in &cases {
            engine.evaluate_into(black_box(case), &[], &mut evaluation);
            for (index, decision) in &evaluation.decisions {
                black_box(eval::explain(
                    &engine.policies[*index],
                    &evaluation.facts,
                    decision,
                ));
            }
        }
    });
    // Validation as well as parsing (what `--batch` does before deciding).
    let validated_parse = best_of(|| {
        for line in &lines {
            black_box(engine.parse_case(line).unwrap());
        }
    });

    // Batch, JSON in and JSON out: the `--batch` step for every line, against a bare
    // serde_json parse of the same input and re-serialization of the same output.
    let mut out = Vec::with_capacity(bytes * 8);
    for line in &lines {
        report::decide_line(&engine, line, &[], None, &mut evaluation, &mut out).unwrap();
    }
    let outputs: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let output_bytes = out.len();
    let batch = best_of(|| {
        out.clear();
        for line in &lines {
            report::decide_line(&engine, line, &[], None, &mut evaluation, &mut out).unwrap();
        }
        black_box(&out);
    });
    let batch_baseline = best_of(|| {
        out.clear();
        for (line, output) in lines.iter().zip(&outputs) {
            black_box(serde_json::from_str::<serde_json::Value>(line).unwrap());
            serde_json::to_writer(&mut out, output).unwrap();
            out.push(b'\n');
        }
        black_box(&out);
    });

    let typed = per_case(typed_parse, n);
    println!(
        "priorauth decision benchmark: {n} generated cases, {n_policies} policies, {} bytes per case in, {} out",
        bytes / n,
        output_bytes / n
    );
    println!("(best of {ROUNDS} rounds; ratios against the bare typed parse measured in this run)");
    println!();
    let row = |name: &str, duration: Duration| {
        let ns = per_case(duration, n);
        println!(
            "{name:<58} {ns:>9.0} ns/case {:>12.0} cases/s {:>7.2} x parse",
            1e9 / ns,
            ns / typed
        );
    };
    row("baseline: serde_json typed parse (Case)", typed_parse);
    row("baseline: serde_json parse to Value", value_parse);
    row("parse and validate (Engine::parse_case)", validated_parse);
    row(
        &format!("decide: facts + {n_policies} policies, in-process"),
        decide,
    );
    row(
        "  of which computing the facts (derived, label)",
        facts_only,
    );
    row(
        "decide and explain every decision, in-process",
        decide_explain,
    );
    println!(
        "{:<58} {:>9.1} ns/decision {:>9.0} decisions/s",
        "  one policy decision (facts shared)",
        per_case(decide, n) / n_policies as f64,
        1e9 / (per_case(decide, n) / n_policies as f64)
    );
    row(
        "batch line: parse, validate, decide, explain, write JSON",
        batch,
    );
    row(
        "batch baseline: parse input + re-serialize output (Value)",
        batch_baseline,
    );
    println!();
    println!(
        "batch throughput relative to its baseline: {:.2}",
        batch_baseline.as_secs_f64() / batch.as_secs_f64()
    );
    println!(
        "in-process decision of all policies relative to the typed parse: {:.3}",
        per_case(decide, n) / typed
    );
}
