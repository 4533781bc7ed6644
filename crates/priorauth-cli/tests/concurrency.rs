//! Several `priorauth serve` processes on one PostgreSQL database (one process on SQLite,
//! whose file has a single writer), started at once on a fresh database, and many clients at
//! once spread over them: one Idempotency-Key submitted to every instance at the same moment,
//! completions of one incomplete request, determinations of one request in review, renewals
//! of one authorization, and usage of one authorization from every instance. Every race must have one winner, and at the end
//! the records hold: one request per idempotency key, no authorization used beyond its
//! approved units, every final denial with its reviewer, the audit chain intact.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;
#[path = "../../priorauth-service/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use harness::{Answer, Service};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

const IDEMPOTENCY_KEYS: usize = 20;
const INCOMPLETE: usize = 10;
const IN_REVIEW: usize = 12;
/// Calls per instance for each contended request.
const COPIES: usize = 3;
const USAGE_CALLS: usize = 60;

#[derive(Debug, Clone)]
struct Keys {
    submitter: String,
    reviewer: String,
}

/// What a call was for, and its answer.
#[derive(Debug)]
enum Race {
    Submit(String, Answer),
    Complete(String, Answer),
    Determine(String, String, Answer),
    Usage(Answer),
    Renew(Answer),
    Plain(Answer),
}

async fn call(base: &str, method: Method, path: &str, key: &str, body: &Value) -> Answer {
    call_with(base, method, path, key, body, &[]).await
}

async fn call_with(
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Answer {
    let client = harness::client();
    harness::try_call(&client, base, method, path, key, Some(body), headers)
        .await
        .unwrap_or_else(|| panic!("{base}{path}: no answer"))
}

async fn submitted(base: &str, keys: &Keys, plan: &str, case: Value) -> Value {
    let answer = call(
        base,
        Method::POST,
        "/v1/requests",
        &keys.submitter,
        &json!({"plan": plan, "case": case}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_one_database_keep_the_invariants() {
    support::for_each_backend(concurrency_run).await;
}

async fn concurrency_run(url: String) {
    let instances = if url.starts_with("postgres") { 3 } else { 1 };
    let dir = std::env::temp_dir().join(format!(
        "priorauth-concurrency-{}",
        priorauth_service::store::random_id("")
    ));
    std::fs::create_dir_all(&dir).unwrap();

    // Started together on an empty database: their migrations take turns.
    let mut services: Vec<Service> = (0..instances)
        .map(|i| Service::spawn(&url, &dir, &dir.join(format!("server-{i}.log"))))
        .collect();
    for service in &mut services {
        service.wait_ready().await;
    }
    let bases: Vec<String> = services.iter().map(|s| s.base.clone()).collect();
    let keys = Keys {
        submitter: harness::create_key(&url, &dir, "clinic-a", "submitter", "Clinic A EHR", ""),
        reviewer: harness::create_key(
            &url,
            &dir,
            "payer",
            "reviewer",
            "Dr. Rivera",
            "MD, Hematology",
        ),
    };

    // The contended records.
    let first = &bases[0];
    let mut incomplete = Vec::new();
    for _ in 0..INCOMPLETE {
        let body = submitted(first, &keys, "eocco-medicaid", support::case("E06")).await;
        assert_eq!(body["status"], "pending_information");
        incomplete.push(body["id"].as_str().unwrap().to_string());
    }
    let mut in_review = Vec::new();
    for i in 0..IN_REVIEW {
        let name = if i % 2 == 0 { "E12" } else { "E05" };
        let body = submitted(first, &keys, "masshealth", support::case(name)).await;
        assert_eq!(body["status"], "pending_review");
        let id = body["id"].as_str().unwrap().to_string();
        // A denial cites what fails the request, as the reviewer reading it is offered; an
        // approval may cite it too.
        let read = harness::try_call(
            &harness::client(),
            first,
            Method::GET,
            &format!("/v1/requests/{id}"),
            &keys.reviewer,
            None,
            &[],
        )
        .await
        .unwrap();
        let criterion = read.body["denial_grounds"][0]["id"].as_str().unwrap();
        in_review.push((id, criterion.to_string()));
    }
    let approved = submitted(first, &keys, "masshealth", support::case("E01")).await;
    let number = approved["authorization"]["number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(approved["authorization"]["approved_units"], 1960);
    let to_renew = submitted(first, &keys, "masshealth", support::case("E01")).await;
    let renewed_number = to_renew["authorization"]["number"].as_str().unwrap();
    let mut renewal = support::case("E10");
    renewal["request"]["date"] = json!(support::days_after_receipt(-22));
    let renewal = json!({"plan": "masshealth", "case": renewal, "renews": renewed_number});

    // All at once, spread over the instances.
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for k in 0..IDEMPOTENCY_KEYS {
        let body =
            json!({"plan": "masshealth", "case": support::case(["E01", "E12", "E05"][k % 3])});
        for copy in 0..COPIES * instances {
            let (base, keys, body) = (bases[copy % instances].clone(), keys.clone(), body.clone());
            let key = format!("same-{k}");
            calls.spawn(async move {
                let answer = call_with(
                    &base,
                    Method::POST,
                    "/v1/requests",
                    &keys.submitter,
                    &body,
                    &[("Idempotency-Key", &key)],
                )
                .await;
                Race::Submit(key, answer)
            });
        }
    }
    for id in &incomplete {
        for copy in 0..COPIES * instances {
            let (base, keys, id) = (bases[copy % instances].clone(), keys.clone(), id.clone());
            calls.spawn(async move {
                let facts = json!({"diagnosis": {"mrd_percent": 0.8}});
                let path = format!("/v1/requests/{id}");
                let answer = call(&base, Method::PATCH, &path, &keys.submitter, &facts).await;
                Race::Complete(id, answer)
            });
        }
    }
    for (id, criterion) in &in_review {
        for copy in 0..COPIES * instances {
            let (base, keys, id) = (bases[copy % instances].clone(), keys.clone(), id.clone());
            let decision = if copy % 2 == 0 { "deny" } else { "approve" };
            let body = json!({"decision": decision, "criterion": criterion, "reason": "Reviewed against the policy."});
            calls.spawn(async move {
                let path = format!("/v1/requests/{id}/determination");
                let answer = call(&base, Method::POST, &path, &keys.reviewer, &body).await;
                Race::Determine(id, decision.to_string(), answer)
            });
        }
    }
    for i in 0..USAGE_CALLS {
        let (base, keys) = (bases[i % instances].clone(), keys.clone());
        let path = format!("/v1/authorizations/{number}/usage");
        calls.spawn(async move {
            let usage = json!({"units": 100, "date_of_service": support::days_after_receipt(0)});
            Race::Usage(call(&base, Method::POST, &path, &keys.submitter, &usage).await)
        });
    }
    for copy in 0..COPIES * instances {
        let (base, keys, renewal) = (
            bases[copy % instances].clone(),
            keys.clone(),
            renewal.clone(),
        );
        calls.spawn(async move {
            Race::Renew(
                call(
                    &base,
                    Method::POST,
                    "/v1/requests",
                    &keys.submitter,
                    &renewal,
                )
                .await,
            )
        });
    }
    // Other clients submitting meanwhile.
    for i in 0..30 {
        let (base, keys) = (bases[i % instances].clone(), keys.clone());
        let (plan, name) = [
            ("masshealth", "E02"),
            ("eocco-medicaid", "E06"),
            ("masshealth", "E08"),
        ][i % 3];
        calls.spawn(async move {
            let body = json!({"plan": plan, "case": support::case(name)});
            Race::Plain(call(&base, Method::POST, "/v1/requests", &keys.submitter, &body).await)
        });
    }
    let races = calls.join_all().await;
    let contended_for = started.elapsed();

    // Every race has one winner; the losers are told so.
    let answers = |pick: &dyn Fn(&Race) -> Option<(String, &Answer)>| {
        let mut by_target: std::collections::BTreeMap<String, Vec<&Answer>> = Default::default();
        for (target, answer) in races.iter().filter_map(pick) {
            by_target.entry(target).or_default().push(answer);
        }
        by_target
    };
    let by_key = answers(&|r| match r {
        Race::Submit(key, answer) => Some((key.clone(), answer)),
        _ => None,
    });
    assert_eq!(by_key.len(), IDEMPOTENCY_KEYS);
    for (key, replies) in &by_key {
        let statuses: Vec<u16> = replies.iter().map(|a| a.status).collect();
        let created = statuses.iter().filter(|s| **s == 201).count();
        let replayed = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(
            (created, replayed),
            (1, COPIES * instances - 1),
            "{key}: {statuses:?} {:?}",
            replies.iter().find(|a| a.status >= 300).map(|a| &a.body)
        );
        let first = &replies[0].body;
        assert!(
            replies.iter().all(|a| &a.body == first),
            "{key}: answers differ"
        );
        let rows = harness::count(
            &url,
            &format!("requests WHERE organization = 'clinic-a' AND idempotency_key = '{key}'"),
        )
        .await;
        assert_eq!(rows, 1, "{key}");
    }

    let by_request = answers(&|r| match r {
        Race::Complete(id, answer) => Some((id.clone(), answer)),
        _ => None,
    });
    assert_eq!(by_request.len(), INCOMPLETE);
    for (id, replies) in &by_request {
        let mut statuses: Vec<u16> = replies.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        let mut expected = vec![409; COPIES * instances - 1];
        expected.insert(0, 200);
        assert_eq!(statuses, expected, "{id}");
        let winner = replies.iter().find(|a| a.status == 200).unwrap();
        assert_eq!(winner.body["status"], "approved");
        assert_eq!(
            harness::count(&url, &format!("authorizations WHERE request_id = '{id}'")).await,
            1
        );
        assert_eq!(
            harness::count(&url, &format!("request_events WHERE request_id = '{id}'")).await,
            2
        );
    }

    let mut by_determination: std::collections::BTreeMap<String, Vec<(&String, &Answer)>> =
        Default::default();
    for race in &races {
        if let Race::Determine(id, decision, answer) = race {
            by_determination
                .entry(id.clone())
                .or_default()
                .push((decision, answer));
        }
    }
    assert_eq!(by_determination.len(), IN_REVIEW);
    let mut denied = 0;
    for (id, replies) in &by_determination {
        let winners: Vec<_> = replies.iter().filter(|(_, a)| a.status == 200).collect();
        let losers = replies.iter().filter(|(_, a)| a.status == 409).count();
        assert_eq!(
            (winners.len(), losers),
            (1, COPIES * instances - 1),
            "{id}: {replies:?}"
        );
        let (decision, answer) = winners[0];
        let status = if decision.as_str() == "deny" {
            denied += 1;
            "denied"
        } else {
            "approved"
        };
        assert_eq!(answer.body["status"], status, "{id}");
        assert_eq!(answer.body["determination"]["decision"], **decision);
        assert_eq!(
            answer.body["determination"]["reviewer"],
            json!({"name": "Dr. Rivera", "credentials": "MD, Hematology"})
        );
        assert_eq!(
            harness::count(&url, &format!("determinations WHERE request_id = '{id}'")).await,
            1
        );
    }

    let usage: Vec<&Answer> = races
        .iter()
        .filter_map(|r| match r {
            Race::Usage(answer) => Some(answer),
            _ => None,
        })
        .collect();
    let recorded: Vec<&&Answer> = usage.iter().filter(|a| a.status == 201).collect();
    let refused = usage.iter().filter(|a| a.status == 409).count();
    // 980 units a 42-day cycle (of 1,960 for two), spent on its first day in steps of 100:
    // 9 fit.
    assert_eq!((recorded.len(), refused), (9, USAGE_CALLS - 9));
    let totals: BTreeSet<i64> = recorded
        .iter()
        .map(|a| a.body["used_units"].as_i64().unwrap())
        .collect();
    assert_eq!(totals, (1..=9).map(|n| n * 100).collect());
    let authorization = harness::try_call(
        &harness::client(),
        &bases[instances - 1],
        Method::GET,
        &format!("/v1/authorizations/{number}"),
        &keys.submitter,
        None,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(authorization.body["used_units"], 900);

    // One authorization is renewed once: the others are told it was renewed meanwhile.
    let mut renewals: Vec<u16> = races
        .iter()
        .filter_map(|r| match r {
            Race::Renew(answer) => Some(answer.status),
            _ => None,
        })
        .collect();
    renewals.sort_unstable();
    let mut expected = vec![409; COPIES * instances - 1];
    expected.insert(0, 201);
    assert_eq!(renewals, expected, "renewals of one authorization at once");
    assert_eq!(
        harness::count(
            &url,
            &format!("authorizations WHERE renews = '{renewed_number}'")
        )
        .await,
        1
    );

    let plain: Vec<u16> = races
        .iter()
        .filter_map(|r| match r {
            Race::Plain(answer) => Some(answer.status),
            _ => None,
        })
        .collect();
    assert!(plain.iter().all(|s| *s == 201), "{plain:?}");

    for service in &mut services {
        service.stop();
    }
    let violations = harness::invariant_violations(&url).await;
    assert!(violations.is_empty(), "{violations:#?}");
    let (code, audit) = harness::audit_verify(&url, &dir);
    assert_eq!(code, Some(0), "audit verify: {audit}");
    eprintln!(
        "concurrency: {instances} instances, {} calls at once in {:.1} s: {IDEMPOTENCY_KEYS} \
         idempotency keys with one request each, {INCOMPLETE} completions and {IN_REVIEW} \
         determinations with one winner each ({denied} denied, each with its reviewer), one \
         renewal of one authorization, usage 900 of a cycle's 980 units ({refused} refused); {audit}",
        races.len(),
        contended_for.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
