//! Crash safety: the real `priorauth serve` under load from concurrent clients is killed with
//! SIGKILL at random moments and restarted on the same database, again and again. Every
//! answer a client received is recorded; at the end each must be found in the records:
//! every acknowledged submission with the decision and status the client saw, every
//! acknowledged completion, determination and usage; no authorization used beyond its
//! approved units; the audit chain verifies. Once on SQLite and, when `DATABASE_URL` names a
//! PostgreSQL server, once on PostgreSQL, each on a fresh database.
//!
//! `PRIORAUTH_CRASH_KILLS` sets the number of kills per back end (default 30; `bench/crash.sh`
//! runs 200), `PRIORAUTH_TEST_SEED` the seed of the kill times and the clients' choices.

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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use harness::{Answer, Rng, Service};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

/// Clients submitting and driving requests at once.
const CLIENTS: usize = 6;

/// (plan, example case): approvals (with usage to spend), an incomplete request (completed
/// by PATCH), `review` outcomes and recommended denials (decided by a reviewer).
const MIX: &[(&str, &str)] = &[
    ("masshealth", "E01"),
    ("masshealth", "E02"),
    ("masshealth", "E07"),
    ("eocco-medicaid", "E03"),
    ("eocco-medicaid", "E06"),
    ("eocco-medicaid", "E06"),
    ("masshealth", "E05"),
    ("masshealth", "E08"),
    ("masshealth", "E12"),
    ("eocco-medicaid", "E12"),
];

/// What the clients share: where the server is now, when to stop, keys and cases.
#[derive(Debug)]
struct Shared {
    base: RwLock<String>,
    stop: AtomicBool,
    submitter: String,
    reviewer: String,
    cases: Vec<(&'static str, &'static str, Value)>,
}

/// A request a client got an answer for, and every answer about it the client received.
#[derive(Debug)]
struct Tracked {
    id: String,
    idempotency_key: Option<String>,
    body: Value,
    /// The first answer to the submission that carried the request.
    submitted: Answer,
    /// Later answers to the same Idempotency-Key.
    replays: Vec<Answer>,
    /// Full views of the request answered later: completion, determination, read.
    views: Vec<Value>,
    completions: usize,
    determinations: usize,
    /// Answers 201 to usage.
    usage: Vec<Value>,
    /// A call about it was sent after the last answer and its answer never came.
    unsettled: bool,
    /// The event a call without an answer would add. The killed server may have sent its
    /// COMMIT just before dying, and the database may make it visible only after the
    /// restarted server answered the read: the request may then be one such event further on.
    in_doubt: Option<&'static str>,
}

impl Tracked {
    fn status(&self) -> &str {
        let last = self.views.last().unwrap_or(&self.submitted.body);
        last["status"].as_str().unwrap_or("")
    }

    fn authorization(&self) -> Option<&Value> {
        let last = self.views.last().unwrap_or(&self.submitted.body);
        Some(&last["authorization"]).filter(|a| a.is_object())
    }
}

/// One client's record of the run.
#[derive(Debug, Default)]
struct Log {
    tracked: Vec<Tracked>,
    answers: usize,
    unanswered: usize,
    refused_usage: usize,
    /// Answers that no correct server gives here (5xx, or a status the step cannot have).
    unexpected: Vec<String>,
}

/// One client: its connection pool, its choices and its record.
struct Client {
    shared: Arc<Shared>,
    http: reqwest::Client,
    rng: Rng,
    log: Log,
}

impl Client {
    /// One call to the server running now; an answer is counted, a missing one too, after
    /// which the client pauses briefly (the server is likely down).
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Option<Answer> {
        let base = self.shared.base.read().unwrap().clone();
        let answer =
            harness::try_call(&self.http, &base, method.clone(), path, key, body, headers).await;
        match &answer {
            Some(answer) => {
                self.log.answers += 1;
                if answer.status >= 500 {
                    self.log.unexpected.push(format!(
                        "{method} {path}: {} {}",
                        answer.status, answer.body
                    ));
                }
            }
            None => {
                self.log.unanswered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        answer
    }

    fn submitter(&self) -> String {
        self.shared.submitter.clone()
    }

    /// Submits cases from the mix, then completes, decides and spends each as far as it
    /// goes, until told to stop.
    async fn run(mut self, number: usize) -> Log {
        let mut n = 0;
        while !self.shared.stop.load(Ordering::SeqCst) {
            n += 1;
            let (plan, name, case) = self.rng.pick(&self.shared.cases).clone();
            let mut case = case;
            case["id"] = json!(format!("{name}-{number}-{n}"));
            let urgency = if self.rng.one_in(4) {
                "expedited"
            } else {
                "standard"
            };
            let body = json!({"plan": plan, "case": case, "urgency": urgency});
            let idempotency_key = self.rng.one_in(2).then(|| format!("crash-{number}-{n}"));
            if let Some(tracked) = self.submit(body, idempotency_key).await {
                let tracked = self.advance(tracked).await;
                self.log.tracked.push(tracked);
            }
        }
        self.log
    }

    /// Submits; with an Idempotency-Key, retries until an answer comes (a retry must never
    /// make a second request). None when no answer came for a submission without a key.
    async fn submit(&mut self, body: Value, idempotency_key: Option<String>) -> Option<Tracked> {
        let headers: Vec<(&str, &str)> = idempotency_key
            .as_deref()
            .map(|key| ("Idempotency-Key", key))
            .into_iter()
            .collect();
        let submitter = self.submitter();
        let started = Instant::now();
        let answer = loop {
            let answer = self
                .call(
                    Method::POST,
                    "/v1/requests",
                    &submitter,
                    Some(&body),
                    &headers,
                )
                .await;
            match answer {
                Some(answer) => break answer,
                None if idempotency_key.is_some() => {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "no answer for 120 s"
                    );
                }
                None => return None,
            }
        };
        let expected = if idempotency_key.is_some() {
            answer.status == 201 || answer.status == 200
        } else {
            answer.status == 201
        };
        if !expected {
            self.log
                .unexpected
                .push(format!("submission: {} {}", answer.status, answer.body));
            return None;
        }
        Some(Tracked {
            id: answer.body["id"].as_str().expect("an id").to_string(),
            idempotency_key,
            body,
            submitted: answer,
            replays: Vec::new(),
            views: Vec::new(),
            completions: 0,
            determinations: 0,
            usage: Vec::new(),
            unsettled: false,
            in_doubt: None,
        })
    }

    /// Takes a request through its life: the missing facts, a reviewer's determination, usage
    /// of its authorization; sometimes a replay of its submission and a read. After a call
    /// without an answer the request is read back once the server is up again, and left there.
    async fn advance(&mut self, mut tracked: Tracked) -> Tracked {
        let path = format!("/v1/requests/{}", tracked.id);
        let submitter = self.submitter();
        loop {
            let answer = match tracked.status() {
                "pending_information" => {
                    let facts = json!({"diagnosis": {"mrd_percent": 0.8}});
                    let answer = self
                        .call(Method::PATCH, &path, &submitter, Some(&facts), &[])
                        .await;
                    tracked.completions += usize::from(answer.is_some());
                    answer
                }
                "pending_review" => {
                    let decision = if self.rng.one_in(2) {
                        "deny"
                    } else {
                        "approve"
                    };
                    // A denial cites what fails the request, as the reviewer reading it is
                    // offered; an approval may cite any criterion.
                    let reviewer = self.shared.reviewer.clone();
                    let read = self.call(Method::GET, &path, &reviewer, None, &[]).await;
                    let ground = read.as_ref().and_then(|r| {
                        r.body["denial_grounds"][0]["id"]
                            .as_str()
                            .map(str::to_string)
                    });
                    let (decision, criterion) = match (decision, ground) {
                        ("deny", Some(ground)) => ("deny", json!(ground)),
                        _ => (
                            "approve",
                            tracked.submitted.body["decision"]["reasons"][0]["id"].clone(),
                        ),
                    };
                    let determination = json!({
                        "decision": decision,
                        "criterion": criterion,
                        "reason": "Reviewed against the policy's criteria.",
                    });
                    let answer = self
                        .call(
                            Method::POST,
                            &format!("{path}/determination"),
                            &reviewer,
                            Some(&determination),
                            &[],
                        )
                        .await;
                    tracked.determinations += usize::from(answer.is_some());
                    answer
                }
                _ => break,
            };
            let Some(answer) = answer else {
                tracked.in_doubt = Some(match tracked.status() {
                    "pending_information" => "completed",
                    _ => "determination",
                });
                return self.settle(tracked).await;
            };
            if answer.status != 200 {
                self.log
                    .unexpected
                    .push(format!("{path}: {} {}", answer.status, answer.body));
                return tracked;
            }
            tracked.views.push(answer.body);
        }
        if let Some(authorization) = tracked.authorization().cloned() {
            let number = authorization["number"].as_str().unwrap().to_string();
            let usage_path = format!("/v1/authorizations/{number}/usage");
            for _ in 0..self.rng.between(1, 4) {
                let usage = json!({"units": self.rng.between(100, 800), "date_of_service": authorization["start"]});
                let answer = self
                    .call(Method::POST, &usage_path, &submitter, Some(&usage), &[])
                    .await;
                match answer {
                    None => return self.settle(tracked).await,
                    Some(answer) if answer.status == 201 => tracked.usage.push(answer.body),
                    Some(answer) if answer.status == 409 => self.log.refused_usage += 1,
                    Some(answer) => {
                        self.log
                            .unexpected
                            .push(format!("{usage_path}: {} {}", answer.status, answer.body));
                        return tracked;
                    }
                }
            }
        }
        if let Some(key) = tracked.idempotency_key.clone() {
            if self.rng.one_in(3) {
                let answer = self
                    .call(
                        Method::POST,
                        "/v1/requests",
                        &submitter,
                        Some(&tracked.body),
                        &[("Idempotency-Key", &key)],
                    )
                    .await;
                tracked.replays.extend(answer);
            }
        }
        if self.rng.one_in(3) {
            let answer = self.call(Method::GET, &path, &submitter, None, &[]).await;
            match answer {
                Some(answer) if answer.status == 200 => tracked.views.push(answer.body),
                Some(answer) => self
                    .log
                    .unexpected
                    .push(format!("{path}: {} {}", answer.status, answer.body)),
                None => {}
            }
        }
        tracked
    }

    /// After a call without an answer: the request as the restarted server has it, asked
    /// until answered.
    async fn settle(&mut self, mut tracked: Tracked) -> Tracked {
        let path = format!("/v1/requests/{}", tracked.id);
        let submitter = self.submitter();
        let started = Instant::now();
        let answer = loop {
            if let Some(answer) = self.call(Method::GET, &path, &submitter, None, &[]).await {
                break answer;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no answer for 120 s"
            );
        };
        if answer.status == 200 {
            tracked.views.push(answer.body);
        } else {
            // The submission was acknowledged, so the request must exist: checked at the end.
            tracked.unsettled = true;
        }
        tracked
    }
}

fn kills() -> usize {
    std::env::var("PRIORAUTH_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_answer_survives_sigkill() {
    support::for_each_backend(crash_run).await;
}

async fn crash_run(url: String) {
    let started = Instant::now();
    let kills = kills();
    let seed = harness::seed();
    let dir = std::env::temp_dir().join(format!(
        "priorauth-crash-{}",
        priorauth_service::store::random_id("")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("server.log");
    let submitter = harness::create_key(&url, &dir, "clinic-a", "submitter", "Clinic A EHR", "");
    let reviewer = harness::create_key(
        &url,
        &dir,
        "payer",
        "reviewer",
        "Dr. Rivera",
        "MD, Hematology",
    );
    let cases = MIX
        .iter()
        .map(|(plan, name)| (*plan, *name, support::case(name)))
        .collect();

    let mut service = Service::start(&url, &dir, &log_path).await;
    let shared = Arc::new(Shared {
        base: RwLock::new(service.base.clone()),
        stop: AtomicBool::new(false),
        submitter,
        reviewer,
        cases,
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| {
            let client = Client {
                shared: shared.clone(),
                http: harness::client(),
                rng: Rng::new(seed.wrapping_add(number as u64 + 1)),
                log: Log::default(),
            };
            tokio::spawn(client.run(number))
        })
        .collect();

    // Kill at random moments under load; sometimes once more while it starts.
    let mut rng = Rng::new(seed);
    let mut kills_at_start = 0;
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.between(50, 400))).await;
        service.kill();
        if rng.one_in(5) {
            let mut starting = Service::spawn(&url, &dir, &log_path);
            tokio::time::sleep(Duration::from_millis(rng.between(0, 80))).await;
            starting.kill();
            kills_at_start += 1;
        }
        service = Service::start(&url, &dir, &log_path).await;
        *shared.base.write().unwrap() = service.base.clone();
    }
    let loaded_for = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.expect("a client"));
    }

    let checked = verify(&url, &service.base, &shared.submitter, &logs).await;
    service.stop();
    let (code, audit) = harness::audit_verify(&url, &dir);
    assert_eq!(code, Some(0), "audit verify: {audit}");
    let violations = harness::invariant_violations(&url).await;
    assert!(violations.is_empty(), "{violations:#?}");

    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    assert!(
        unexpected.is_empty(),
        "answers no correct server gives: {unexpected:#?}\n{}",
        harness::log_tail(&log_path)
    );
    let sum = |f: fn(&Log) -> usize| logs.iter().map(f).sum::<usize>();
    let all: Vec<&Tracked> = logs.iter().flat_map(|l| &l.tracked).collect();
    let count = |f: fn(&Tracked) -> usize| all.iter().map(|t| f(t)).sum::<usize>();
    let (completions, determinations, usage, replays) = (
        count(|t| t.completions),
        count(|t| t.determinations),
        count(|t| t.usage.len()),
        count(|t| t.replays.len()),
    );
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    eprintln!(
        "crash ({backend}): {kills} kills under load and {kills_at_start} during start-up in \
         {:.1} s; {} answers received, {} calls unanswered; {} acknowledged requests verified \
         ({completions} completions, {determinations} determinations, {usage} usage recorded, \
         {} usage refused, {replays} replays); {checked} checks; lost 0; {audit}",
        loaded_for.as_secs_f64(),
        sum(|l| l.answers),
        sum(|l| l.unanswered),
        all.len(),
        sum(|l| l.refused_usage),
    );
    // Every step of a request's life was exercised, or the run proved little.
    assert!(
        all.len() >= CLIENTS && completions > 0 && determinations > 0 && usage > 0,
        "too little load to mean anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every answer received, against the API and the database. Returns the number of checks.
async fn verify(url: &str, base: &str, submitter: &str, logs: &[Log]) -> usize {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let http = harness::client();
    let mut lost = Vec::new();
    let mut checks = 0;
    for tracked in logs.iter().flat_map(|l| &l.tracked) {
        let id = &tracked.id;
        let read = harness::try_call(
            &http,
            base,
            Method::GET,
            &format!("/v1/requests/{id}"),
            submitter,
            None,
            &[],
        )
        .await
        .expect("the final server answers");
        checks += 1;
        if read.status != 200 {
            lost.push(format!(
                "{id}: acknowledged, now {} {}",
                read.status, read.body
            ));
            continue;
        }
        let now = &read.body;
        let submitted = &tracked.submitted.body;

        // The submission's answer is the one stored (its decision is stored once, as the
        // first event's), and its decision is the first event.
        let row = sqlx::query("SELECT response_json FROM requests WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        let stored = priorauth_service::store::packed::unpack(row.try_get::<String, _>(0).unwrap());
        let stored: Value = serde_json::from_str(&stored.unwrap()).unwrap();
        let mut expected = submitted.clone();
        if let Some(object) = expected.as_object_mut() {
            object.remove("decision");
        }
        checks += 2;
        if stored != expected {
            lost.push(format!(
                "{id}: stored answer {stored} differs from {submitted}"
            ));
        }
        let first = &now["history"][0];
        if first["kind"] != "submitted"
            || first["outcome"] != submitted["outcome"]
            || first["decision"] != submitted["decision"]
        {
            lost.push(format!(
                "{id}: first event {first} is not the answered decision"
            ));
        }
        for replay in &tracked.replays {
            checks += 1;
            if replay.status != 200 || &replay.body != submitted {
                lost.push(format!(
                    "{id}: replay answered {} {}",
                    replay.status, replay.body
                ));
            }
        }

        // Each later answer is part of the request's history now.
        for view in &tracked.views {
            checks += 1;
            let seen = view["history"].as_array().unwrap();
            let kept = now["history"].as_array().unwrap();
            if kept.len() < seen.len() || kept[..seen.len()] != seen[..] {
                lost.push(format!("{id}: history {kept:?} lost part of {seen:?}"));
            }
            if !view["determination"].is_null() && view["determination"] != now["determination"] {
                lost.push(format!(
                    "{id}: determination {} lost",
                    view["determination"]
                ));
            }
        }
        // Nothing was sent after the last answer: the request is as last answered, or one
        // event further on if the call without an answer committed late.
        let last_history = tracked.views.last().unwrap_or(submitted)["history"]
            .as_array()
            .map_or(0, Vec::len);
        let committed_late = tracked.in_doubt.is_some_and(|kind| {
            let kept = now["history"].as_array().unwrap();
            kept.len() == last_history + 1 && kept[last_history]["kind"] == kind
        });
        if committed_late {
            eprintln!("{id}: a call without an answer committed after the read that followed it");
        }
        if !tracked.unsettled && !committed_late {
            checks += 1;
            let last = tracked.views.last().unwrap_or(submitted);
            for field in ["status", "outcome", "decision"] {
                if last[field] != now[field] {
                    lost.push(format!(
                        "{id}: {field} answered {}, now {}",
                        last[field], now[field]
                    ));
                }
            }
            if last["authorization"]["number"] != now["authorization"]["number"] {
                lost.push(format!("{id}: authorization {}", now["authorization"]));
            }
        }
        if now["status"] == "denied" {
            checks += 1;
            let reviewer = &now["determination"]["reviewer"];
            if reviewer["name"] != "Dr. Rivera" || reviewer["credentials"] != "MD, Hematology" {
                lost.push(format!("{id}: denied without its reviewer: {now}"));
            }
        }

        // Each acknowledged use of units is recorded with its units.
        for usage in &tracked.usage {
            checks += 1;
            let row = sqlx::query("SELECT units, authorization_number FROM usage WHERE id = $1")
                .bind(usage["id"].as_str().unwrap())
                .fetch_optional(&pool)
                .await
                .unwrap();
            let recorded = row.map(|r| {
                (
                    r.try_get::<i64, _>(0).unwrap(),
                    r.try_get::<String, _>(1).unwrap(),
                )
            });
            let expected = (
                usage["units"].as_i64().unwrap(),
                usage["authorization"].as_str().unwrap().to_string(),
            );
            if recorded.as_ref() != Some(&expected) {
                lost.push(format!("{id}: usage {usage} recorded as {recorded:?}"));
            }
            if usage["used_units"].as_i64() > now["authorization"]["used_units"].as_i64() {
                lost.push(format!(
                    "{id}: usage {usage} above {}",
                    now["authorization"]
                ));
            }
        }
    }
    pool.close().await;
    assert!(
        lost.is_empty(),
        "{} acknowledged answers not in the records: {:#?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    checks
}
