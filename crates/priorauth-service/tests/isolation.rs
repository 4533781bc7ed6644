//! One organization cannot slow, blind or exhaust the service for another (SECURITY.md,
//! "Isolation and resources"): requests no policy governs are determined like any other, the
//! review queue pages past any one organization's flood, no body is read before the key is
//! checked, large bodies and files wait for their organization's part of the memory, each key
//! and organization has its rate and its calls in flight, and the service holds a bounded
//! number of connections, closing those that send nothing.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use priorauth_service::admission::Limits;
use priorauth_service::keys::Role;
use serde_json::{Value, json};
use support::{ConnectionLimits, Server, case, for_each_backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CREDENTIALS: &str = "MD, Hematology/Oncology";

fn pas_example(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fhir/pas-examples")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

/// A PAS Bundle grown to about 3 MB with copies of one of its resources.
fn grown_bundle() -> Value {
    let mut bundle = pas_example("Bundle-HomecareAuthorizationBundleExample");
    let entry = bundle["entry"][1].clone();
    if let Some(entries) = bundle["entry"].as_array_mut() {
        for i in 0..2400 {
            let mut copy = entry.clone();
            copy["fullUrl"] = json!(format!("urn:uuid:00000000-0000-0000-0000-{i:012}"));
            entries.push(copy);
        }
    }
    bundle
}

/// The homecare example with a narrative of `bytes` characters on its Organization.
fn narrated_bundle(bytes: usize) -> Value {
    let mut bundle = pas_example("Bundle-HomecareAuthorizationBundleExample");
    bundle["entry"][1]["resource"]["text"] = json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", "x".repeat(bytes)),
    });
    bundle
}

/// The address of a server, for raw connections.
fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Sends `head` (a request's line and headers, perhaps without its body) on a new connection
/// and reads what comes back within `within`: the text, or None if nothing came.
async fn raw(server: &Server, head: &str, within: Duration) -> (TcpStream, Option<String>) {
    let mut stream = TcpStream::connect(address(server)).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut buffer = vec![0u8; 8192];
    let read = tokio::time::timeout(within, stream.read(&mut buffer)).await;
    let text = match read {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        _ => None,
    };
    (stream, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_no_policy_governs_is_determined_like_any_other() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", CREDENTIALS)
            .await;
        // Two PAS requests for services no policy here governs, from one EHR.
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        for name in [
            "Bundle-HomecareAuthorizationBundleExample",
            "Bundle-SurgicalRequestBundleExample",
        ] {
            let reply = server
                .post("/fhir/Claim/$submit", &ehr, &pas_example(name))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        let queue = server.get("/v1/queue", &reviewer).await;
        queue.expect(200);
        let ids: Vec<String> = queue.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        // The homecare Claim has two items, each a request of its own.
        assert_eq!(ids.len(), 3, "{}", queue.body);
        assert_eq!(queue.body["items"][0]["policy"], "");
        let (approve, deny) = (&ids[0], &ids[1]);
        let path = |id: &str| format!("/v1/requests/{id}/determination");

        // No policy: no criterion to cite, so the basis is named in the reviewer's words, and
        // an approval states everything it covers; nothing is taken from the request.
        let basis = "Plan benefit: home health services, medically necessary";
        let refused = server
            .post(
                &path(approve),
                &reviewer,
                &json!({"decision": "approve", "criterion": basis, "reason": "Needed after discharge."}),
            )
            .await;
        refused.expect_problem(422, "changes.units");
        let refused = server
            .post(
                &path(approve),
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": "", "reason": "Needed.",
                        "changes": {"units": 10, "cycles": 2, "period_days": 14}}),
            )
            .await;
        refused.expect_problem(422, "criterion");
        let refused = server
            .post(
                &path(approve),
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": basis, "reason": "Needed.",
                        "changes": {"units": 10, "cycles": 2}}),
            )
            .await;
        refused.expect_problem(422, "changes.end");
        let approved = server
            .post(
                &path(approve),
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": basis, "reason": "Needed after discharge.",
                        "changes": {"units": 10, "cycles": 2, "period_days": 14}}),
            )
            .await;
        approved.expect(200);
        assert_eq!(approved.body["status"], "approved", "{}", approved.body);
        let authorization = &approved.body["authorization"];
        assert_eq!(authorization["units_per_period"], 10, "{}", approved.body);
        assert_eq!(authorization["cycles"], 2);
        assert_eq!(authorization["approved_units"], 20);
        let start = authorization["start"].as_str().unwrap();
        let end = authorization["end"].as_str().unwrap();
        let start_date = priorauth_core::date::Date::parse(start).unwrap();
        assert_eq!(
            start_date.add_days(27).unwrap().to_string(),
            end,
            "{start} to {end}: two 14-day cycles"
        );
        // Decided once.
        server
            .post(
                &path(approve),
                &reviewer,
                &json!({"decision": "deny", "criterion": basis, "reason": "again"}),
            )
            .await
            .expect(409);

        // A denial, and its notice naming the stated basis.
        let denied = server
            .post(
                &path(deny),
                &reviewer,
                &json!({"decision": "deny", "criterion": "Not a covered benefit of the plan", "reason": "The plan does not cover this surgery."}),
            )
            .await;
        denied.expect(200);
        assert_eq!(denied.body["status"], "denied");
        let letter = server
            .get(&format!("/v1/requests/{deny}/denial-letter"), &reviewer)
            .await;
        letter.expect(200);
        assert_eq!(
            letter.body["criterion"]["id"],
            "Not a covered benefit of the plan"
        );
        assert_eq!(letter.body["criterion"]["policy"], Value::Null);
        assert_eq!(letter.body["reviewer"]["credentials"], CREDENTIALS);
        // The third (the homecare Claim's second item) still waits for its clinician.
        assert_eq!(server.count("requests WHERE status = 'pending_review'").await, 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_pages_past_any_one_organizations_flood() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", CREDENTIALS)
            .await;
        let (_, flood) = server.key("clinic-flood", Role::Submitter, "EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;
        // E05 under MassHealth: a recommended denial, so each waits in the queue.
        let flooded = 130;
        for _ in 0..flooded {
            server.submitted(&flood, "masshealth", case("E05")).await;
        }
        let theirs = server
            .post(
                "/v1/requests",
                &other,
                &json!({"plan": "masshealth", "case": case("E05"), "urgency": "standard"}),
            )
            .await;
        theirs.expect(201);
        let their_id = theirs.body["id"].as_str().unwrap().to_string();

        // Every request is reachable, page by page, each once, in queue order.
        let mut seen = Vec::new();
        let mut path = "/v1/queue?limit=50".to_string();
        loop {
            let page = server.get(&path, &reviewer).await;
            page.expect(200);
            let items = page.body["items"].as_array().unwrap();
            assert!(items.len() <= 50);
            seen.extend(items.iter().map(|i| {
                (
                    i["due_at"].as_str().unwrap().to_string(),
                    i["id"].as_str().unwrap().to_string(),
                )
            }));
            match page.body["next"].as_str() {
                Some(next) => path = format!("/v1/queue?limit=50&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), flooded + 1);
        let mut unique: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), flooded + 1, "no request shown twice");
        let dues: Vec<i64> = seen
            .iter()
            .map(|(due, _)| support::millis(&json!(due)))
            .collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]), "most urgent first");
        assert!(seen.iter().any(|(_, id)| *id == their_id));

        // A reviewer can look at one organization's, or one urgency's, requests alone.
        let only = server
            .get("/v1/queue?organization=clinic-b", &reviewer)
            .await;
        only.expect(200);
        assert_eq!(only.body["items"].as_array().unwrap().len(), 1);
        assert_eq!(only.body["items"][0]["id"], their_id.as_str());
        assert_eq!(only.body["next"], Value::Null);
        let expedited = server.get("/v1/queue?urgency=expedited", &reviewer).await;
        assert_eq!(expedited.body["items"].as_array().unwrap().len(), 0);

        // Bad parameters are named.
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=x", "limit"),
            ("after=nonsense", "after"),
            ("urgency=urgent", "urgency"),
        ] {
            server
                .get(&format!("/v1/queue?{query}"), &reviewer)
                .await
                .expect_problem(422, field);
        }
        // The audit records which requests each read showed.
        let shown = server
            .count(&format!(
                "audit_log WHERE action = 'queue.read' AND target LIKE '%{their_id}%'"
            ))
            .await;
        assert!(shown >= 2, "{shown}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_body_is_read_before_the_key_is_checked() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        // Headers announcing a large body, and no body: the answer comes at once, not after
        // the body (or the time limit).
        for (path, media, expected) in [
            ("/fhir/Claim/$submit", "application/fhir+json", "OperationOutcome"),
            ("/v1/requests", "application/json", "problem"),
        ] {
            for key in ["", "Authorization: Bearer not-a-key\r\n"] {
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\n{key}Content-Type: {media}\r\nContent-Length: 4000000\r\n\r\n"
                );
                let started = Instant::now();
                let (_, answer) = raw(&server, &head, Duration::from_secs(5)).await;
                let answer = answer.unwrap_or_else(|| panic!("{path}: no answer before the body"));
                assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
                assert!(answer.contains(expected), "{path}: {answer}");
                assert!(started.elapsed() < Duration::from_secs(3));
            }
        }
        // What a client reads before it has a key stays open.
        let (_, answer) = raw(
            &server,
            "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_key_and_organization_has_its_share() {
    for_each_backend(|url| async move {
        let limits = Limits {
            per_key_per_second: 3,
            per_organization_per_second: 1000,
            in_flight_per_organization: 2,
            ..Limits::UNLIMITED
        };
        let server = Server::start_with(&url, limits, ConnectionLimits::DEFAULT).await;
        let (_, greedy) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let (_, colleague) = server.key("clinic-a", Role::Submitter, "Desk", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;
        let path = "/v1/requests/req_missing";

        // A burst of twice the rate passes, then 429 with Retry-After, as problem+json and,
        // on the FHIR routes, as an OperationOutcome.
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(server.get(path, &greedy).await.status);
        }
        assert!(statuses.iter().take(6).all(|s| *s == 404), "{statuses:?}");
        assert!(statuses.contains(&429), "{statuses:?}");
        let refused = server.get(path, &greedy).await;
        refused.expect(429);
        assert_eq!(refused.header("content-type"), Some("application/problem+json"));
        let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        let mut fhir = server
            .get("/fhir/Subscription/sub_missing", &greedy)
            .await;
        // (A token may have come back meanwhile: the next call is over the rate again.)
        while fhir.status != 429 {
            fhir = server
                .get("/fhir/Subscription/sub_missing", &greedy)
                .await;
        }
        assert_eq!(fhir.body["resourceType"], "OperationOutcome");
        assert_eq!(fhir.body["issue"][0]["code"], "throttled");
        assert!(fhir.header("retry-after").is_some());
        // Another key of the same organization, and another organization, are answered.
        server.get(path, &colleague).await.expect(404);
        server.get(path, &other).await.expect(404);

        server.stop().await;

        // With a wait allowed (the default's 2 s), a client sending one call after another
        // is slowed to its rate instead of refused.
        let waiting = Limits {
            per_key_per_second: 3,
            rate_wait: Duration::from_secs(2),
            ..Limits::UNLIMITED
        };
        let server = Server::start_with(&url, waiting, ConnectionLimits::DEFAULT).await;
        let (_, steady) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let started = Instant::now();
        for _ in 0..10 {
            server.get(path, &steady).await.expect(404);
        }
        // Six at once (the burst), then one every third of a second.
        assert!(started.elapsed() >= Duration::from_millis(1000), "{:?}", started.elapsed());
        server.stop().await;
        let server = Server::start_with(&url, limits, ConnectionLimits::DEFAULT).await;
        let (_, colleague) = server.key("clinic-a", Role::Submitter, "Desk", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;

        // Calls in flight: two of clinic-a's held open (headers sent, body still coming)...
        let mut held = Vec::new();
        for _ in 0..2 {
            let head = format!(
                "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {colleague}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            );
            let (stream, answer) = raw(&server, &head, Duration::from_millis(300)).await;
            assert_eq!(answer, None, "admitted, waiting for its body");
            held.push(stream);
        }
        // ...so a third of clinic-a's is refused at once, while clinic-b is answered.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let third = server.get(path, &colleague).await;
        third.expect(429);
        assert!(third.body["detail"].as_str().unwrap().contains("being answered"));
        server.get(path, &other).await.expect(404);
        // Given back when they are answered (here: closed).
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.get(path, &colleague).await.expect(404);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_capped_and_silent_ones_closed() {
    for_each_backend(|url| async move {
        let connections = ConnectionLimits {
            max_connections: 8,
            header_read_timeout: Duration::from_secs(1),
            ..ConnectionLimits::DEFAULT
        };
        let server = Server::start_with(&url, Limits::UNLIMITED, connections).await;
        // Eight connections that send nothing, and one with half its headers.
        let mut silent = Vec::new();
        for _ in 0..7 {
            silent.push(TcpStream::connect(address(&server)).await.unwrap());
        }
        let (half, nothing) = raw(
            &server,
            "GET /healthz HTTP/1.1\r\nHost: x\r\n",
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(nothing, None);
        silent.push(half);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The ninth is refused at once, with a problem saying to retry.
        let (_, answer) = raw(
            &server,
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
        let answer = answer.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        // The silent ones are closed after the header time limit, which frees their places.
        for mut stream in silent {
            let mut buffer = [0u8; 1024];
            let closed = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "a silent connection is closed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = reqwest::Client::new();
        let health = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        server.stop().await;
    })
    .await;
}

/// `count` calls at once posting `body` to `path` as FHIR, each answering its status and body.
fn fhir_posts(
    server: &Server,
    path: &str,
    key: &str,
    body: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Result<(u16, String), reqwest::Error>>> {
    (0..count)
        .map(|_| {
            let (client, url, key, body) = (
                server.client.clone(),
                format!("{}{path}", server.base),
                key.to_string(),
                body.to_string(),
            );
            tokio::spawn(async move {
                let reply = client
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/fhir+json")
                    .body(body)
                    .send()
                    .await?;
                Ok((reply.status().as_u16(), reply.text().await?))
            })
        })
        .collect()
}

/// The slowest `/healthz` answer, probed every 10 ms for as long as any of `calls` is being
/// answered (at least five times).
async fn slowest_health_while<T>(
    server: &Server,
    calls: &[tokio::task::JoinHandle<T>],
) -> Duration {
    let health = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while probes < 5 || calls.iter().any(|c| !c.is_finished()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = Instant::now();
        let reply = health
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        slowest = slowest.max(started.elapsed());
        probes += 1;
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_fhir_bodies_do_not_hold_the_service() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let body = grown_bundle().to_string();
        assert!(
            body.len() > 2_000_000 && body.len() < 4_000_000,
            "{}",
            body.len()
        );
        // Eight at once, more than the cores that parse them and the workers that answer.
        let parses = fhir_posts(&server, "/fhir/Claim/$submit", &ehr, &body, 8);
        // Meanwhile the service answers at once: the parses are off its async workers.
        let slowest = slowest_health_while(&server, &parses).await;
        let mut answered = Vec::new();
        for parse in parses {
            answered.push(parse.await.unwrap().unwrap().0);
        }
        // Each answered: decided, or (on a loaded machine, waiting for its turn to parse)
        // 503 at the request's time limit; never a failure of the service.
        assert!(
            answered.iter().all(|s| *s < 500 || *s == 503),
            "{answered:?}"
        );
        assert!(slowest < Duration::from_millis(300), "{slowest:?}");
        server.stop().await;
    })
    .await;
}

/// A large Bundle, once stored, is read back by every inquiry about it (and every replay and
/// notification): restoring and reading it is heavy work too, off the async workers, however
/// small the inquiry that asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_stored_bundles_read_back_do_not_hold_the_service() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let stored = server
            .post("/fhir/Claim/$submit", &ehr, &grown_bundle())
            .await;
        assert_eq!(stored.status, 200, "{}", stored.body);
        // The inquiry is the example the large one grew from: the same Claim and member.
        let inquiry = pas_example("Bundle-HomecareAuthorizationBundleExample").to_string();
        assert!(inquiry.len() < 32 * 1024, "{}", inquiry.len());
        let inquiries = fhir_posts(&server, "/fhir/Claim/$inquire", &ehr, &inquiry, 16);
        // Meanwhile, for as long as any is being answered, the service answers at once.
        let slowest = slowest_health_while(&server, &inquiries).await;
        for inquiry in inquiries {
            let (status, answer) = inquiry.await.unwrap().unwrap();
            // Found, with its response; or (on a loaded machine) 503 at the time limit.
            if status != 503 {
                assert_eq!(status, 200, "{answer}");
                let answer: Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(
                    answer["parameter"][0]["resource"]["resourceType"], "Bundle",
                    "{answer}"
                );
            }
        }
        assert!(slowest < Duration::from_millis(300), "{slowest:?}");
        server.stop().await;
    })
    .await;
}

/// Files sent to a request wait on their organization's part of the memory budget before
/// they are read, as FHIR bodies do: one clinic starting many uploads of the largest file
/// holds its own part, and another clinic's file passes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_uploads_wait_on_their_organizations_part_of_the_memory() {
    for_each_backend(|url| async move {
        const FILE: usize = 4 * 1024 * 1024;
        let server = Server::start(&url).await;
        let (_, clinic_a) = server.key("clinic-a", Role::Submitter, "A", "").await;
        let (_, clinic_b) = server.key("clinic-b", Role::Submitter, "B", "").await;
        let mut files = Vec::new();
        for key in [&clinic_a, &clinic_b] {
            let pending = server.submitted(key, "masshealth", case("E12")).await;
            assert_eq!(pending["status"], "pending_review", "{pending}");
            let id = pending["id"].as_str().unwrap().to_string();
            files.push(format!("/v1/requests/{id}/attachments?title=Scan"));
        }
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.resize(FILE, b' ');

        // Clinic A starts eight uploads of the largest file and sends their first bytes only:
        // six shares fill its part, two wait.
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: priorauth\r\nAuthorization: Bearer {clinic_a}\r\nContent-Type: application/pdf\r\nContent-Length: {FILE}\r\n\r\n%PDF-1.4\n",
            files[0]
        );
        let mut held = Vec::new();
        for _ in 0..8 {
            let mut stream = TcpStream::connect(address(&server)).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Clinic B's file is read and stored at once.
        let started = Instant::now();
        server
            .upload(&files[1], &clinic_b, "application/pdf", pdf.clone(), &[])
            .await
            .expect(201);
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

        // Clinic A's next file waits for its part, then passes once the held ones end.
        let (client, url, key, body) = (
            server.client.clone(),
            format!("{}{}", server.base, files[0]),
            clinic_a.clone(),
            pdf.clone(),
        );
        let waiting = tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/pdf")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!waiting.is_finished(), "clinic A's file waits on its own part");
        drop(held);
        let status = tokio::time::timeout(Duration::from_secs(9), waiting)
            .await
            .expect("answered once the held uploads end")
            .unwrap()
            .unwrap();
        assert_eq!(status, 201);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribers_secret_headers_are_never_shown() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, ehr) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", CREDENTIALS)
            .await;
        let mut subscription = pas_example("Subscription-PASSubscriptionExample");
        subscription["channel"]["header"] = json!(["Authorization: Bearer subscriber-s3cret"]);
        let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        let path = format!("/fhir/Subscription/{id}");
        let mut answers = vec![created.body.clone()];
        for key in [&ehr, &reviewer] {
            let read = server.get(&path, key).await;
            assert_eq!(read.status, 200, "{}", read.body);
            answers.push(read.body.clone());
        }
        for answer in &answers {
            assert!(!answer.to_string().contains("s3cret"), "{answer}");
            assert_eq!(
                answer["channel"]["endpoint"],
                subscription["channel"]["endpoint"]
            );
        }
        // Kept for delivery only, apart from the resource shown.
        assert_eq!(
            server
                .count("subscriptions WHERE headers_json LIKE '%s3cret%'")
                .await,
            1
        );
        assert_eq!(
            server
                .count("subscriptions WHERE resource_json LIKE '%s3cret%'")
                .await,
            0
        );
        // Each read is audited.
        assert_eq!(
            server
                .count(&format!(
                    "audit_log WHERE action = 'subscription.read' AND target = '{id}'"
                ))
                .await,
            2
        );
        server.stop().await;
    })
    .await;
}

/// A subscriber's endpoint on a loopback port: it answers with `status` after `delay`, and
/// sends each notification it receives (and when) to the returned channel.
async fn subscriber(
    status: u16,
    delay: Duration,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sender = sender.clone();
            async move {
                let body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
                // The handshake of the subscription's creation is answered at once.
                if support::is_handshake(&body) {
                    return axum::http::StatusCode::OK;
                }
                let _ = sender.send((Instant::now(), body));
                tokio::time::sleep(delay).await;
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/notify"), receiver)
}

/// An organization that subscribes to PAS notifications at `endpoint` and submits one PAS
/// request no policy governs; answers its request id.
async fn pended_pas_request(server: &Server, organization: &str, endpoint: &str) -> String {
    let (_, ehr) = server.key(organization, Role::Submitter, "EHR", "").await;
    let mut subscription = pas_example("Subscription-PASSubscriptionExample");
    subscription["channel"]["endpoint"] = json!(endpoint);
    let created = server.post("/fhir/Subscription", &ehr, &subscription).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let bundle = pas_example("Bundle-HomecareAuthorizationBundleExample");
    let submitted = server.post("/fhir/Claim/$submit", &ehr, &bundle).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let (_, admin) = server.key("payer", Role::Admin, "Admin", "").await;
    let queue = server
        .get(&format!("/v1/queue?organization={organization}"), &admin)
        .await;
    queue.body["items"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_subscriber_delays_only_its_own_notifications() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", CREDENTIALS)
            .await;
        let (stalled, mut stalled_got) = subscriber(200, Duration::from_secs(60)).await;
        let (prompt, mut prompt_got) = subscriber(200, Duration::ZERO).await;
        let slow_request = pended_pas_request(&server, "clinic-slow", &stalled).await;
        let prompt_request = pended_pas_request(&server, "clinic-prompt", &prompt).await;
        let deny = json!({"decision": "deny", "criterion": "Not a covered benefit", "reason": "Not covered."});
        // The stalled subscriber's notification is first in line.
        for id in [&slow_request, &prompt_request] {
            server
                .post(&format!("/v1/requests/{id}/determination"), &reviewer, &deny)
                .await
                .expect(200);
        }
        let decided = Instant::now();
        let (at, _) = tokio::time::timeout(Duration::from_secs(20), prompt_got.recv())
            .await
            .expect("the prompt subscriber is notified")
            .unwrap();
        // Not after the stalled endpoint's 10 s time limit: at once.
        assert!(
            at.duration_since(decided) < Duration::from_secs(5),
            "{:?}",
            at.duration_since(decided)
        );
        // The stalled one was called too (and is still being waited for); on a loaded
        // machine its call may arrive just after the prompt one's.
        let stalled_called = tokio::time::timeout(Duration::from_secs(10), stalled_got.recv())
            .await
            .is_ok_and(|message| message.is_some());
        assert!(stalled_called, "the stalled subscriber was not called");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_whose_schedule_is_spent_is_dead_lettered_for_admins() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", CREDENTIALS)
            .await;
        let (_, admin) = server.key("payer", Role::Admin, "Admin", "").await;
        let (failing, mut calls) = subscriber(500, Duration::ZERO).await;
        let id = pended_pas_request(&server, "clinic-down", &failing).await;
        server
            .post(
                &format!("/v1/requests/{id}/determination"),
                &reviewer,
                &json!({"decision": "deny", "criterion": "Not a covered benefit", "reason": "Not covered."}),
            )
            .await
            .expect(200);
        tokio::time::timeout(Duration::from_secs(10), calls.recv())
            .await
            .expect("a first attempt")
            .unwrap();
        // Recorded as failed (the call's answer comes after the subscriber saw it)...
        for _ in 0..50 {
            let failed = server
                .count(&format!(
                    "notifications WHERE request_id = '{id}' AND attempts = 1"
                ))
                .await;
            if failed == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // ...then its last attempt comes due (the schedule's earlier ones take hours).
        let last = priorauth_service::notify::MAX_ATTEMPTS - 1;
        let set = format!(
            "UPDATE notifications SET attempts = {last}, next_attempt_at = 0 WHERE request_id = '{id}'"
        );
        sqlx::query(&set)
            .execute(&server.store().pool)
            .await
            .unwrap();
        server.state.service.notify.notify_one();
        let mut dead = 0;
        for _ in 0..50 {
            dead = server
                .count(&format!(
                    "notifications WHERE request_id = '{id}' AND dead_at IS NOT NULL"
                ))
                .await;
            if dead == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(dead, 1, "dead-lettered after its last attempt");
        // Administrators see it with its last error; no one else does.
        let listed = server.get("/v1/notifications/dead", &admin).await;
        listed.expect(200);
        let item = &listed.body["items"][0];
        assert_eq!(item["request_id"], id.as_str());
        assert_eq!(item["organization"], "clinic-down");
        assert_eq!(item["last_error"], "HTTP 500");
        assert_eq!(item["attempts"], priorauth_service::notify::MAX_ATTEMPTS);
        server
            .get("/v1/notifications/dead", &reviewer)
            .await
            .expect(403);
        // And it is no longer tried.
        while calls.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(calls.try_recv().is_err(), "not tried after it is dead-lettered");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_calls_are_audited_without_a_write_each() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (submitter_id, submitter) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;
        let theirs = server.submitted(&other, "masshealth", case("E01")).await;
        let their_id = theirs["id"].as_str().unwrap().to_string();
        let entries_before = server.count("audit_log").await;

        for _ in 0..5 {
            server
                .get("/v1/requests/req_x", "not-a-key")
                .await
                .expect(401);
        }
        for _ in 0..3 {
            server.get("/v1/queue", &submitter).await.expect(403);
        }
        // Another organization's request: answered as a missing one, and recorded.
        server
            .get(&format!("/v1/requests/{their_id}"), &submitter)
            .await
            .expect(404);
        // Nine refused calls, nothing written yet...
        assert_eq!(server.count("audit_log").await, entries_before);
        // ...then one entry per caller and reason.
        priorauth_service::web::flush_refusals(&server.state)
            .await
            .unwrap();
        assert_eq!(server.count("audit_log").await, entries_before + 3);
        let unauthenticated = server
            .count("audit_log WHERE action = 'refused.unauthenticated' AND actor = 'unauthenticated' AND target LIKE 'n=5 GET /v1/requests/req_x%'")
            .await;
        assert_eq!(unauthenticated, 1);
        let forbidden = server
            .count(&format!("audit_log WHERE action = 'refused.forbidden' AND actor = '{submitter_id}' AND organization = 'clinic-a' AND target = 'n=3 GET /v1/queue'"))
            .await;
        assert_eq!(forbidden, 1);
        let probe = server
            .count(&format!("audit_log WHERE action = 'refused.not_found' AND actor = '{submitter_id}' AND target LIKE '%{their_id}%'"))
            .await;
        assert_eq!(probe, 1);
        let report = priorauth_service::store::verify_audit(server.store())
            .await
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fhir_bytes_are_limited_per_organization_before_they_are_read() {
    for_each_backend(|url| async move {
        let limits = Limits {
            fhir_kilobytes_per_organization_per_second: 64,
            ..Limits::UNLIMITED
        };
        let server = Server::start_with(&url, limits, ConnectionLimits::DEFAULT).await;
        let (_, greedy) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        let (_, other) = server.key("clinic-b", Role::Submitter, "EHR", "").await;
        // A Bundle of about 3 MB: the burst (8 MB) holds two. Its size is one narrative, quick
        // to read even unoptimized: what is measured is bytes, and a Bundle of 2,400 resources
        // read at a lowered priority on a machine busy with other tests ran out of time.
        let bundle = narrated_bundle(3_000_000);
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                server
                    .post("/fhir/Claim/$submit", &greedy, &bundle)
                    .await
                    .status,
            );
        }
        assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
        assert_eq!(statuses[2], 429, "{statuses:?}");
        // Refused before the body is read: headers announcing one more are answered at once.
        let head = format!(
            "POST /fhir/Claim/$submit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {greedy}\r\nContent-Type: application/fhir+json\r\nContent-Length: 3000000\r\n\r\n"
        );
        let (_, answer) = raw(&server, &head, Duration::from_secs(3)).await;
        let answer = answer.expect("an answer before the body");
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.contains("throttled"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
        // Another organization's Bundle is read as usual.
        let theirs = server.post("/fhir/Claim/$submit", &other, &bundle).await;
        assert_eq!(theirs.status, 200);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_without_a_key_is_refused_per_address_before_any_lookup() {
    for_each_backend(|url| async move {
        let limits = Limits {
            unauthenticated_per_address_per_second: 5,
            ..Limits::UNLIMITED
        };
        let server = Server::start_with(&url, limits, ConnectionLimits::DEFAULT).await;
        let (_, key) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
        // The flood comes from 127.0.0.1; a clinic calls from 127.0.0.2.
        let clinic = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let get = |client: reqwest::Client, key: String| {
            let url = format!("{}/v1/plans", server.base);
            async move {
                let response = client.get(url).bearer_auth(key).send().await.unwrap();
                let retry = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (response.status().as_u16(), retry)
            }
        };
        let mut statuses = Vec::new();
        for n in 0..30 {
            statuses.push(get(server.client.clone(), format!("pak_guess{n}")).await);
        }
        let unauthorized = statuses.iter().filter(|(s, _)| *s == 401).count();
        let refused: Vec<&(u16, Option<String>)> =
            statuses.iter().filter(|(s, _)| *s == 429).collect();
        assert!(
            (10..=12).contains(&unauthorized),
            "the burst is looked up, then refused: {statuses:?}"
        );
        assert_eq!(unauthorized + refused.len(), 30, "{statuses:?}");
        assert!(
            refused.iter().all(|(_, retry)| retry.is_some()),
            "429 says when to retry"
        );
        // Refused before any lookup, whatever the credential, from that address only.
        assert_eq!(get(server.client.clone(), key.clone()).await.0, 429);
        assert_eq!(
            get(clinic.clone(), key.clone()).await.0,
            200,
            "another address is not affected"
        );
        // Its rate allows again after the time given.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(get(server.client.clone(), key.clone()).await.0, 200);
        server.stop().await;
    })
    .await;
}

/// What hyper answers itself (headers over its limits, a request it cannot read) carries a
/// problem+json body like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_layers_own_errors_have_bodies() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let address = server.base.trim_start_matches("http://").to_string();
        let ask = |request: Vec<u8>| {
            let address = address.clone();
            async move {
                let mut stream = TcpStream::connect(&address).await.unwrap();
                stream.write_all(&request).await.unwrap();
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
                        .await;
                String::from_utf8_lossy(&answer).into_owned()
            }
        };
        let mut crowded = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
        for n in 0..150 {
            crowded.extend_from_slice(format!("X-Header-{n}: v\r\n").as_bytes());
        }
        crowded.extend_from_slice(b"\r\n");
        let answer = ask(crowded).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains(r#""status":431"#), "{answer}");
        let answer = ask(b"NOT HTTP AT ALL\r\n\r\n".to_vec()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains(r#""status":400"#), "{answer}");
        // An ordinary call on the same kind of connection is answered as ever.
        let answer =
            ask(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        server.stop().await;
    })
    .await;
}

/// A body refused before it is read (over the limit, or without a key) still gets its answer,
/// which says the connection closes (`Connection: close`), so that no client sends its next
/// call on a connection the service is closing: a client writing 1 MB after its headers reads
/// the 413 whole, then the end of the connection; the same without a key reads its 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_refused_before_it_is_read_still_gets_its_answer() {
    for_each_backend(|url| async move {
    let server = Server::start(&url).await;
    let (_, key) = server.key("clinic-a", Role::Submitter, "EHR", "").await;
    let body = vec![b' '; 1024 * 1024];
    for (authorization, status) in [(format!("Bearer {key}"), "413"), (String::new(), "401")] {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        let head = format!(
            "POST /v1/requests HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if authorization.is_empty() { String::new() } else { format!("authorization: {authorization}\r\n") }
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body in pieces, as a client on a slower link sends it: the answer comes while
        // it is still being written. A write may fail once the service has closed.
        for piece in body.chunks(64 * 1024) {
            if stream.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(read.is_ok_and(|r| r.is_ok()), "the connection ended with a reset: {text}");
        assert!(text.starts_with(&format!("http/1.1 {status} ")), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
    }
    server.stop().await;
    })
    .await;
}
