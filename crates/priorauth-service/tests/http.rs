//! The service over HTTP, as a client meets it: a real server on a loopback port over a
//! fresh database, once on SQLite and, when `DATABASE_URL` names a PostgreSQL server, once
//! more on PostgreSQL. Covers durability across a restart, idempotent submission, usage that
//! never overspends, organization isolation, reviewer roles and determinations, the review
//! queue and its clocks, denial letters, completing an incomplete request, renewals from the
//! records, the audit chain, authentication and problem+json errors.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;

use priorauth_service::keys::Role;
use priorauth_service::store::verify_audit;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, case, days_after_receipt, for_each_backend, millis};
use tokio::task::JoinSet;

const REVIEWER_CREDENTIALS: &str = "MD, Hematology";

/// A server with a submitter of `clinic-a` and a credentialed reviewer of the payer.
async fn server_with_keys(url: &str) -> (Server, String, String) {
    let server = Server::start(url).await;
    let (_, submitter) = server
        .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
        .await;
    let (_, reviewer) = server
        .key("payer", Role::Reviewer, "Dr. Rivera", REVIEWER_CREDENTIALS)
        .await;
    (server, submitter, reviewer)
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("an id").to_string()
}

fn authorization_number(body: &Value) -> String {
    body["authorization"]["number"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization: {body}"))
        .to_string()
}

// ---- Required by the issue ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answered_decision_survives_a_restart() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        // Decided at submission.
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        assert_eq!(approved["status"], "approved");
        let approved_id = id_of(&approved);
        // Decided by a clinician.
        let reviewed = server
            .submitted(&submitter, "masshealth", case("E12"))
            .await;
        assert_eq!(reviewed["outcome"], "review");
        let reviewed_id = id_of(&reviewed);
        server
            .determine(
                &reviewer,
                &reviewed_id,
                "approve",
                "new-to-plan-on-treatment",
                "Already on therapy when the member joined the plan; continuing it is appropriate.",
            )
            .await
            .expect(200);
        let before_approved = server
            .get(&format!("/v1/requests/{approved_id}"), &submitter)
            .await;
        before_approved.expect(200);
        let before_reviewed = server
            .get(&format!("/v1/requests/{reviewed_id}"), &submitter)
            .await;
        before_reviewed.expect(200);
        server.stop().await;

        let server = Server::start(&url).await;
        let after_approved = server
            .get(&format!("/v1/requests/{approved_id}"), &submitter)
            .await;
        after_approved.expect(200);
        assert_eq!(after_approved.body["status"], "approved");
        assert_eq!(after_approved.body["outcome"], "approve");
        assert_eq!(after_approved.body["decision"], approved["decision"]);
        assert_eq!(
            after_approved.body["authorization"]["number"],
            approved["authorization"]["number"]
        );
        assert_eq!(after_approved.body, before_approved.body);

        let after_reviewed = server
            .get(&format!("/v1/requests/{reviewed_id}"), &submitter)
            .await;
        after_reviewed.expect(200);
        assert_eq!(after_reviewed.body["status"], "approved");
        assert_eq!(after_reviewed.body["determination"]["decision"], "approve");
        assert_eq!(
            after_reviewed.body["determination"]["reviewer"]["credentials"],
            REVIEWER_CREDENTIALS
        );
        assert_eq!(after_reviewed.body, before_reviewed.body);
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_submission_with_one_idempotency_key_creates_one_request() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let body = json!({"plan": "masshealth", "case": case("E01")});
        let submit = |key: &'static str, body: Value| {
            let (client, base, secret) = (
                server.client.clone(),
                server.base.clone(),
                submitter.clone(),
            );
            async move {
                support::call(
                    &client,
                    &base,
                    Method::POST,
                    "/v1/requests",
                    Some(&secret),
                    Some(&body),
                    &[("Idempotency-Key", key)],
                )
                .await
            }
        };

        // A sequential retry: the first answer again, marked as a replay.
        let first = submit("retry-1", body.clone()).await;
        first.expect(201);
        assert_eq!(first.header("idempotent-replayed"), None);
        let retry = submit("retry-1", body.clone()).await;
        retry.expect(200);
        assert_eq!(retry.header("idempotent-replayed"), Some("true"));
        assert_eq!(retry.body["id"], first.body["id"]);
        assert_eq!(retry.body, first.body);
        assert_eq!(server.count("requests").await, 1);
        assert_eq!(server.count("authorizations").await, 1);

        // Ten at once with one new key: one request, one authorization, one answer.
        let mut calls = JoinSet::new();
        for _ in 0..10 {
            calls.spawn(submit("burst-1", body.clone()));
        }
        let replies = calls.join_all().await;
        let ids: BTreeSet<String> = replies.iter().map(|r| id_of(&r.body)).collect();
        assert_eq!(ids.len(), 1, "every answer names the one request: {ids:?}");
        let created = replies.iter().filter(|r| r.status == 201).count();
        let replayed = replies
            .iter()
            .filter(|r| r.status == 200 && r.header("idempotent-replayed") == Some("true"))
            .count();
        assert_eq!((created, replayed), (1, 9), "{replies:?}");
        assert_eq!(
            server
                .count("requests WHERE idempotency_key = 'burst-1'")
                .await,
            1
        );
        assert_eq!(server.count("requests").await, 2);
        assert_eq!(server.count("authorizations").await, 2);

        // The same key with another body is refused, naming the header.
        let other = json!({"plan": "masshealth", "case": case("E03")});
        submit("retry-1", other)
            .await
            .expect_problem(422, "Idempotency-Key");
        assert_eq!(server.count("requests").await, 2);

        // A key that is not printable ASCII is refused, naming the header, not dropped.
        for bad in ["caf\u{e9}-1", "tab\tkey"] {
            let reply = support::call(
                &server.client,
                &server.base,
                Method::POST,
                "/v1/requests",
                Some(&submitter),
                Some(&body),
                &[("Idempotency-Key", bad)],
            )
            .await;
            reply.expect_problem(422, "Idempotency-Key");
        }
        assert_eq!(server.count("requests").await, 2);

        // Keys belong to an organization: another one may use the same key for its own request.
        let (_, other_org) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let theirs = support::call(
            &server.client,
            &server.base,
            Method::POST,
            "/v1/requests",
            Some(&other_org),
            Some(&body),
            &[("Idempotency-Key", "retry-1")],
        )
        .await;
        theirs.expect(201);
        assert_ne!(theirs.body["id"], first.body["id"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_writes_with_one_idempotency_key_are_applied_once() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = authorization_number(&approved);
        let path = format!("/v1/authorizations/{number}/usage");
        let start = approved["authorization"]["start"]
            .as_str()
            .unwrap()
            .to_string();
        let usage = json!({"units": 100, "date_of_service": start});

        // A usage sent ten times at once with one key (a client retrying on timeouts) is
        // spent once: one 201, the others its answer again or a conflict to send again.
        let mut calls = JoinSet::new();
        for _ in 0..10 {
            let (client, base, key, path, usage) = (
                server.client.clone(),
                server.base.clone(),
                submitter.clone(),
                path.clone(),
                usage.clone(),
            );
            calls.spawn(async move {
                support::call(
                    &client,
                    &base,
                    Method::POST,
                    &path,
                    Some(&key),
                    Some(&usage),
                    &[("Idempotency-Key", "usage-1")],
                )
                .await
            });
        }
        let replies = calls.join_all().await;
        let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
        assert_eq!(created.len(), 1, "{replies:?}");
        assert!(
            replies.iter().all(|r| [201, 200, 409].contains(&r.status)),
            "{replies:?}"
        );
        assert_eq!(server.count("usage").await, 1);
        // Sent again: the first answer, marked as such.
        let again = server
            .call(
                Method::POST,
                &path,
                Some(&submitter),
                Some(&usage),
                &[("Idempotency-Key", "usage-1")],
            )
            .await;
        again.expect(200);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, created[0].body);
        assert_eq!(server.count("usage").await, 1);
        // The key with another body, or on another write, is refused naming the header.
        server
            .call(
                Method::POST,
                &path,
                Some(&submitter),
                Some(&json!({"units": 50, "date_of_service": start})),
                &[("Idempotency-Key", "usage-1")],
            )
            .await
            .expect_problem(422, "Idempotency-Key");
        // Without a key, each call is a new use.
        server.post(&path, &submitter, &usage).await.expect(201);
        assert_eq!(server.count("usage").await, 2);

        // A determination retried is answered as the first time, not 409.
        let recommended = server
            .submitted(&submitter, "masshealth", case("E05"))
            .await;
        let id = id_of(&recommended);
        let determination =
            json!({"decision": "deny", "criterion": "b-cell-precursor", "reason": "T-cell ALL."});
        let determine = |key: &'static str| {
            let (server, reviewer, id, determination) =
                (&server, reviewer.clone(), id.clone(), determination.clone());
            async move {
                server
                    .call(
                        Method::POST,
                        &format!("/v1/requests/{id}/determination"),
                        Some(&reviewer),
                        Some(&determination),
                        &[("Idempotency-Key", key)],
                    )
                    .await
            }
        };
        let first = determine("det-1").await;
        first.expect(200);
        let retried = determine("det-1").await;
        retried.expect(200);
        assert_eq!(retried.header("idempotent-replayed"), Some("true"));
        assert_eq!(retried.body["status"], "denied");
        // Another key is another determination: the request is decided already.
        determine("det-2").await.expect(409);
        assert_eq!(
            server
                .count(&format!("determinations WHERE request_id = '{id}'"))
                .await,
            1
        );

        // A completion retried likewise.
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", case("E06"))
            .await;
        let request_path = format!("/v1/requests/{}", id_of(&incomplete));
        let facts = json!({"diagnosis": {"mrd_percent": 0.8}});
        let mut completions = Vec::new();
        for _ in 0..2 {
            completions.push(
                server
                    .call(
                        Method::PATCH,
                        &request_path,
                        Some(&submitter),
                        Some(&facts),
                        &[("Idempotency-Key", "complete-1")],
                    )
                    .await,
            );
        }
        completions[0].expect(200);
        completions[1].expect(200);
        assert_eq!(completions[1].header("idempotent-replayed"), Some("true"));
        assert_eq!(completions[1].body["status"], completions[0].body["status"]);
        assert_eq!(
            server
                .count(&format!(
                    "authorizations WHERE request_id = '{}'",
                    id_of(&incomplete)
                ))
                .await,
            1
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_usage_never_exceeds_the_approved_units() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        assert_eq!(approved["status"], "approved");
        // 980 units a 42-day cycle, two cycles.
        assert_eq!(approved["authorization"]["approved_units"], 1960);
        // The period starts on the day the service received the request (E01's own date is
        // in May 2026), for MassHealth's 6 months.
        let (start, end) = (
            approved["authorization"]["start"]
                .as_str()
                .unwrap()
                .to_string(),
            approved["authorization"]["end"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert_eq!(start, days_after_receipt(0));
        assert_eq!(
            end,
            priorauth_core::date::Date::parse(&start)
                .unwrap()
                .inclusive_end(priorauth_core::date::Duration::Months(6))
                .unwrap()
                .to_string()
        );
        let (before, after) = (
            priorauth_core::date::Date::parse(&start)
                .unwrap()
                .add_days(-1)
                .unwrap()
                .to_string(),
            priorauth_core::date::Date::parse(&end)
                .unwrap()
                .add_days(1)
                .unwrap()
                .to_string(),
        );
        let number = authorization_number(&approved);
        let path = format!("/v1/authorizations/{number}/usage");

        let mut calls = JoinSet::new();
        for _ in 0..50 {
            let (client, base, key, path) = (
                server.client.clone(),
                server.base.clone(),
                submitter.clone(),
                path.clone(),
            );
            let start = start.clone();
            calls.spawn(async move {
                support::call(
                    &client,
                    &base,
                    Method::POST,
                    &path,
                    Some(&key),
                    Some(&json!({"units": 100, "date_of_service": &start})),
                    &[],
                )
                .await
            });
        }
        let replies = calls.join_all().await;
        let recorded: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
        let refused = replies.iter().filter(|r| r.status == 409).count();
        // 980 units a cycle: of 50 spends of 100 on its first day, 9 fit (the first cycle's
        // units bind before the two cycles' 1,960).
        assert_eq!((recorded.len(), refused), (9, 41), "{replies:?}");
        // Each success saw its own running total, never above the approval.
        let totals: BTreeSet<i64> = recorded
            .iter()
            .map(|r| r.body["used_units"].as_i64().unwrap())
            .collect();
        assert_eq!(totals, (1..=9).map(|n| n * 100).collect());
        assert!(recorded.iter().all(|r| {
            r.body["used_units"].as_i64().unwrap() + r.body["remaining_units"].as_i64().unwrap()
                == 1960
        }));

        let authorization = server
            .get(&format!("/v1/authorizations/{number}"), &submitter)
            .await;
        authorization.expect(200);
        assert_eq!(authorization.body["used_units"], 900);
        assert_eq!(authorization.body["remaining_units"], 1060);
        assert_eq!(server.count("usage").await, 9);

        // What is left of the cycle can still be used, and not a unit more.
        let over = server
            .post(
                &path,
                &submitter,
                &json!({"units": 81, "date_of_service": &start}),
            )
            .await;
        over.expect(409);
        assert!(
            over.body["detail"]
                .as_str()
                .unwrap()
                .contains("980 units per 42 days"),
            "{}",
            over.body
        );
        // (On the first day: a date of service still to come is not drug given.)
        let last = server
            .post(
                &path,
                &submitter,
                &json!({"units": 80, "date_of_service": &start}),
            )
            .await;
        last.expect(201);
        assert_eq!(last.body["remaining_units"], 980);

        // Outside the period, named; nothing spent.
        for date in [&before, &after] {
            server
                .post(
                    &path,
                    &submitter,
                    &json!({"units": 1, "date_of_service": date}),
                )
                .await
                .expect_problem(422, "date_of_service");
        }
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 1, "date_of_service": "June 1"}),
            )
            .await
            .expect_problem(422, "date_of_service");
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 0, "date_of_service": &start}),
            )
            .await
            .expect_problem(422, "units");
        let authorization = server
            .get(&format!("/v1/authorizations/{number}"), &submitter)
            .await;
        assert_eq!(authorization.body["used_units"], 980);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitter_cannot_see_another_organizations_records() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let (_, other) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let id = id_of(&approved);
        let number = authorization_number(&approved);
        let request_path = format!("/v1/requests/{id}");
        let authorization_path = format!("/v1/authorizations/{number}");

        // The owner and the payer's reviewer see them.
        server.get(&request_path, &submitter).await.expect(200);
        server.get(&request_path, &reviewer).await.expect(200);
        server
            .get(&authorization_path, &submitter)
            .await
            .expect(200);

        // To the other organization they do not exist: 404 as for a made-up id, not 403.
        let missing = server.get("/v1/requests/req_doesnotexist", &other).await;
        missing.expect(404);
        let theirs = server.get(&request_path, &other).await;
        theirs.expect(404);
        assert_eq!(theirs.body, missing.body);
        server.get(&authorization_path, &other).await.expect(404);
        server
            .get(&format!("{request_path}/denial-letter"), &other)
            .await
            .expect(404);
        server
            .patch(
                &request_path,
                &other,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await
            .expect(404);
        server
            .post(
                &format!("{authorization_path}/usage"),
                &other,
                &json!({"units": 1, "date_of_service": days_after_receipt(0)}),
            )
            .await
            .expect(404);
        // Nor can it renew an authorization it does not hold.
        let renewal = json!({"plan": "masshealth", "case": case("E10"), "renews": number});
        server
            .post("/v1/requests", &other, &renewal)
            .await
            .expect_problem(422, "renews");

        let authorization = server.get(&authorization_path, &submitter).await;
        assert_eq!(authorization.body["used_units"], 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_credentialed_reviewer_records_a_determination_citing_a_criterion() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let (_, uncredentialed) = server.key("payer", Role::Reviewer, "Pat Intake", "").await;
        let reviewed = server
            .submitted(&submitter, "masshealth", case("E12"))
            .await;
        assert_eq!(reviewed["status"], "pending_review");
        assert_eq!(reviewed["authorization"], Value::Null);
        let id = id_of(&reviewed);
        let reason = "Already on therapy when the member joined the plan.";

        server
            .determine(
                &submitter,
                &id,
                "approve",
                "new-to-plan-on-treatment",
                reason,
            )
            .await
            .expect(403);
        server
            .determine(
                &uncredentialed,
                &id,
                "deny",
                "new-to-plan-on-treatment",
                reason,
            )
            .await
            .expect(403);
        server
            .determine(&reviewer, &id, "approve", "no-such-criterion", reason)
            .await
            .expect_problem(422, "criterion");
        server
            .determine(&reviewer, &id, "approve", "new-to-plan-on-treatment", "  ")
            .await
            .expect_problem(422, "reason");
        // None of these changed the request.
        let unchanged = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(unchanged.body["status"], "pending_review");
        assert_eq!(unchanged.body["determination"], Value::Null);

        let decided = server
            .determine(
                &reviewer,
                &id,
                "approve",
                "new-to-plan-on-treatment",
                reason,
            )
            .await;
        decided.expect(200);
        assert_eq!(decided.body["status"], "approved");
        assert_eq!(decided.body["determination"]["decision"], "approve");
        assert_eq!(
            decided.body["determination"]["criterion"],
            "new-to-plan-on-treatment"
        );
        assert_eq!(
            decided.body["determination"]["reviewer"]["name"],
            "Dr. Rivera"
        );
        assert_eq!(decided.body["authorization"]["approved_units"], 1960);
        let kinds: Vec<&Value> = decided.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["kind"])
            .collect();
        assert_eq!(kinds, [&json!("submitted"), &json!("determination")]);

        // Decided once.
        server
            .determine(&reviewer, &id, "deny", "new-to-plan-on-treatment", reason)
            .await
            .expect(409);
        // The submitter sees the approval and its authorization.
        let seen = server.get(&format!("/v1/requests/{id}"), &submitter).await;
        assert_eq!(seen.body["status"], "approved");
        assert_eq!(seen.body["authorization"], decided.body["authorization"]);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edit_to_a_record_is_found_by_audit_verify() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = authorization_number(&approved);
        let start = approved["authorization"]["start"].as_str().unwrap().to_string();
        server
            .post(
                &format!("/v1/authorizations/{number}/usage"),
                &submitter,
                &json!({"units": 100, "date_of_service": start}),
            )
            .await
            .expect(201);
        let denied = server
            .submitted(&submitter, "masshealth", case("E05"))
            .await;
        let denied_id = id_of(&denied);
        server
            .determine(&reviewer, &denied_id, "deny", "b-cell-precursor", "T-cell ALL.")
            .await
            .expect(200);
        let store = server.store();
        let report = verify_audit(store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.records, 3, "two requests and one authorization");

        // Each edit made in the database, not through the service, is found; undone, the
        // records verify again.
        let approved_id = id_of(&approved);
        let edits = [
            (
                format!("UPDATE requests SET status = 'approved' WHERE id = '{denied_id}'"),
                format!("UPDATE requests SET status = 'denied' WHERE id = '{denied_id}'"),
                format!("request {denied_id}"),
            ),
            (
                format!("UPDATE authorizations SET approved_units = 99999 WHERE number = '{number}'"),
                format!("UPDATE authorizations SET approved_units = 1960 WHERE number = '{number}'"),
                format!("request {approved_id}"),
            ),
            (
                format!("UPDATE authorizations SET used_units = 0 WHERE number = '{number}'"),
                format!("UPDATE authorizations SET used_units = 100 WHERE number = '{number}'"),
                format!("authorization {number}"),
            ),
            (
                format!("UPDATE usage SET units = 1 WHERE authorization_number = '{number}'"),
                format!("UPDATE usage SET units = 100 WHERE authorization_number = '{number}'"),
                format!("authorization {number}"),
            ),
            (
                format!("UPDATE determinations SET reviewer_credentials = 'none' WHERE request_id = '{denied_id}'"),
                format!("UPDATE determinations SET reviewer_credentials = '{REVIEWER_CREDENTIALS}' WHERE request_id = '{denied_id}'"),
                format!("request {denied_id}"),
            ),
        ];
        for (edit, undo, found) in edits {
            sqlx::query(&edit).execute(&store.pool).await.unwrap();
            let report = verify_audit(store).await.unwrap();
            assert!(
                report.problems.iter().any(|p| p.starts_with(&found)),
                "{edit}: {:?}",
                report.problems
            );
            sqlx::query(&undo).execute(&store.pool).await.unwrap();
            let report = verify_audit(store).await.unwrap();
            assert!(report.problems.is_empty(), "{undo}: {:?}", report.problems);
        }
        // A usage row deleted is found too.
        sqlx::query(&format!("DELETE FROM usage WHERE authorization_number = '{number}'"))
            .execute(&store.pool)
            .await
            .unwrap();
        let report = verify_audit(store).await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with(&format!("authorization {number}"))),
            "{:?}",
            report.problems
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_audit_log_is_detected() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let id = id_of(&approved);
        server
            .get(&format!("/v1/requests/{id}"), &submitter)
            .await
            .expect(200);
        server.get("/v1/queue", &reviewer).await.expect(200);
        server
            .get(
                &format!("/v1/authorizations/{}", authorization_number(&approved)),
                &submitter,
            )
            .await
            .expect(200);
        let store = server.store();
        let report = verify_audit(store).await.unwrap();
        // The request's creation and its authorization's (each binding its record), and
        // three reads.
        assert_eq!(report.entries, 5);
        assert_eq!(report.records, 2);
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // A changed row.
        let original: (String,) = sqlx::query_as("SELECT action FROM audit_log WHERE seq = 2")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET action = 'x' WHERE seq = 2")
            .execute(&store.pool)
            .await
            .unwrap();
        let report = verify_audit(store).await.unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("entry 2")),
            "{:?}",
            report.problems
        );
        sqlx::query("UPDATE audit_log SET action = $1 WHERE seq = 2")
            .bind(&original.0)
            .execute(&store.pool)
            .await
            .unwrap();
        let report = verify_audit(store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // New rows do not store their link to the row before (it is that row's hash, inside
        // their own): a row's hash rewritten breaks it and the row after it.
        let links: Vec<(String,)> = sqlx::query_as("SELECT prev_hash FROM audit_log")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(links.iter().all(|(link,)| link.is_empty()), "{links:?}");
        let (hash,): (String,) = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = 2")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let set = |column: &'static str, seq: i64, value: String| async move {
            sqlx::query(&format!(
                "UPDATE audit_log SET {column} = $1 WHERE seq = $2"
            ))
            .bind(value)
            .bind(seq)
            .execute(&store.pool)
            .await
            .unwrap();
            verify_audit(store).await.unwrap().problems
        };
        let problems = set("hash", 2, "0".repeat(64)).await;
        for broken in ["entry 2 was changed", "entry 3 was changed"] {
            assert!(
                problems.iter().any(|p| p.contains(broken)),
                "{broken}: {problems:?}"
            );
        }
        set("hash", 2, hash.clone()).await;
        // A stored link (as earlier releases wrote them) must be the row before's hash.
        let problems = set("prev_hash", 3, hash).await;
        assert!(problems.is_empty(), "{problems:?}");
        let problems = set("prev_hash", 3, "0".repeat(64)).await;
        assert!(
            problems
                .iter()
                .any(|p| p.contains("entry 3 does not follow")),
            "{problems:?}"
        );
        set("prev_hash", 3, String::new()).await;

        // The last row deleted: the chain is intact up to it, but the head knows.
        sqlx::query("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
            .execute(&store.pool)
            .await
            .unwrap();
        let report = verify_audit(store).await.unwrap();
        assert_eq!(report.entries, 4);
        assert!(!report.problems.is_empty());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("ends at entry 4")),
            "{:?}",
            report.problems
        );

        // A row deleted from the middle.
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&store.pool)
            .await
            .unwrap();
        let report = verify_audit(store).await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("entry 2 is missing")),
            "{:?}",
            report.problems
        );
        server.stop().await;
    })
    .await;
}

// ---- Review, letters, completion, renewal ----

/// A requester withdraws a pending request: it leaves the queue, keeps its history with the
/// reason, and nothing decides it afterwards; a decided request, another organization's and a
/// reviewer's call are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_request_is_withdrawn_by_its_requester_only() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let (_, other) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let queued = server
            .submitted(&submitter, "masshealth", case("E12"))
            .await;
        let id = queued["id"].as_str().unwrap().to_string();
        assert_eq!(queued["status"], "pending_review");
        let path = format!("/v1/requests/{id}/withdrawal");
        let reason = json!({"reason": "The order was cancelled: the member moved to hospice."});

        server.post(&path, &other, &reason).await.expect(404);
        server.post(&path, &reviewer, &reason).await.expect(403);
        server
            .post(&path, &submitter, &json!({"reason": "  "}))
            .await
            .expect_problem(422, "reason");

        let withdrawn = server.post(&path, &submitter, &reason).await;
        withdrawn.expect(200);
        assert_eq!(withdrawn.body["status"], "withdrawn");
        let history = withdrawn.body["history"].as_array().unwrap();
        let last = history.last().unwrap();
        assert_eq!(last["kind"], "withdrawn");
        assert_eq!(last["reason"], reason["reason"]);
        // The case is carried, not replaced by the reason.
        assert_eq!(last["case"], withdrawn.body["case"]);

        // Out of the queue; nothing decides it now; a second withdrawal is a conflict.
        let queue = server.get("/v1/queue", &reviewer).await;
        queue.expect(200);
        assert!(
            queue.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|item| item["id"] != json!(id)),
            "{}",
            queue.body
        );
        let criterion = queued["decision"]["reasons"][0]["id"].as_str().unwrap();
        server
            .determine(&reviewer, &id, "deny", criterion, "x")
            .await
            .expect(409);
        server.post(&path, &submitter, &reason).await.expect(409);

        // A decided request is not withdrawn.
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        assert_eq!(approved["status"], "approved");
        let approved_path = format!(
            "/v1/requests/{}/withdrawal",
            approved["id"].as_str().unwrap()
        );
        server
            .post(&approved_path, &submitter, &reason)
            .await
            .expect(409);

        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_review_queue_is_most_urgent_first_with_the_plans_clocks() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        // E05 (T-cell ALL) as a commercial member: a recommended denial under Evolent.
        let mut commercial = case("E05");
        commercial["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        let standard = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "evolent-commercial", "case": commercial, "urgency": "standard"}),
            )
            .await;
        standard.expect(201);
        assert_eq!(standard.body["outcome"], "deny");
        let expedited = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "evolent-commercial", "case": commercial, "urgency": "expedited"}),
            )
            .await;
        expedited.expect(201);
        let review = server
            .submitted(&submitter, "masshealth", case("E12"))
            .await;
        assert_eq!(review["outcome"], "review");
        // Decided at once: not in the queue.
        server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;

        // Reviewers only.
        server.get("/v1/queue", &submitter).await.expect(403);
        let queue = server.get("/v1/queue", &reviewer).await;
        queue.expect(200);
        let items = queue.body["items"].as_array().unwrap();
        let order: Vec<String> = items.iter().map(id_of).collect();
        // Expedited (24 h) and MassHealth (24 h) before the standard commercial one (72 h),
        // although that one came first.
        assert_eq!(
            order,
            [
                id_of(&expedited.body),
                id_of(&review),
                id_of(&standard.body)
            ]
        );
        let hours =
            |item: &Value| (millis(&item["due_at"]) - millis(&item["received_at"])) / 3_600_000;
        let clock: Vec<(i64, &Value, &Value)> = items
            .iter()
            .map(|i| (hours(i), &i["urgency"], &i["recommendation"]))
            .collect();
        assert_eq!(
            clock,
            [
                (24, &json!("expedited"), &json!("deny")),
                (24, &json!("standard"), &json!("review")),
                (72, &json!("standard"), &json!("deny")),
            ]
        );
        for item in items {
            assert_eq!(
                (millis(&item["due_at"]) - millis(&item["received_at"])) % 3_600_000,
                0,
                "{item}"
            );
        }
        assert_eq!(items[2]["due_at"], standard.body["due_at"]);
        assert_eq!(items[2]["policy"], "evolent-cg-3258");

        // A determination takes it off the queue.
        server
            .determine(
                &reviewer,
                &id_of(&review),
                "approve",
                "new-to-plan-on-treatment",
                "On therapy.",
            )
            .await
            .expect(200);
        let queue = server.get("/v1/queue", &reviewer).await;
        assert_eq!(queue.body["items"].as_array().unwrap().len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clinicians_denial_has_a_denial_letter() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let recommended = server
            .submitted(&submitter, "masshealth", case("E05"))
            .await;
        assert_eq!(recommended["outcome"], "deny");
        // A recommendation is not a denial: nothing is denied until a clinician says so.
        assert_eq!(recommended["status"], "pending_review");
        let id = id_of(&recommended);
        let letter_path = format!("/v1/requests/{id}/denial-letter");
        server.get(&letter_path, &submitter).await.expect(409);

        let reason = "The records show T-cell ALL; the policy covers B-cell precursor ALL.";
        let denied = server
            .determine(&reviewer, &id, "deny", "b-cell-precursor", reason)
            .await;
        denied.expect(200);
        assert_eq!(denied.body["status"], "denied");
        assert_eq!(denied.body["authorization"], Value::Null);

        let letter = server.get(&letter_path, &submitter).await;
        letter.expect(200);
        let letter = letter.body;
        assert_eq!(letter["request_id"], id.as_str());
        assert_eq!(letter["decision"], "denied");
        assert_eq!(letter["reason"], reason);
        assert_eq!(letter["criterion"]["id"], "b-cell-precursor");
        assert_eq!(letter["criterion"]["text"], "B-cell precursor ALL");
        let source = letter["criterion"]["source"].as_str().unwrap();
        assert!(source.contains("criterion 5c.ii"), "{source}");
        assert_eq!(letter["criterion"]["policy_version"], "2025-09-01");
        assert_eq!(letter["reviewer"]["name"], "Dr. Rivera");
        assert_eq!(letter["reviewer"]["credentials"], REVIEWER_CREDENTIALS);
        let appeal = &server.state.service.plans.get("masshealth").unwrap().appeal;
        assert_eq!(letter["appeal"], appeal.as_str());
        assert!(appeal.contains("Board of Hearings"));
        assert_eq!(letter["service"]["drug"], "blinatumomab");
        assert_eq!(letter["service"]["hcpcs"], "J9039");

        // An approval has no denial letter.
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        server
            .get(
                &format!("/v1/requests/{}/denial-letter", id_of(&approved)),
                &submitter,
            )
            .await
            .expect(409);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completing_an_incomplete_request_re_evaluates_it() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", case("E06"))
            .await;
        assert_eq!(incomplete["outcome"], "incomplete");
        assert_eq!(incomplete["status"], "pending_information");
        assert_eq!(incomplete["authorization"], Value::Null);
        let missing = incomplete["decision"]["missing"].as_array().unwrap();
        assert!(
            missing.contains(&json!("diagnosis.mrd_percent")),
            "{missing:?}"
        );
        let path = format!("/v1/requests/{}", id_of(&incomplete));

        // Invalid facts are named, and change nothing.
        server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": "high"}}),
            )
            .await
            .expect_problem(422, "diagnosis.mrd_percent");

        let completed = server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await;
        completed.expect(200);
        let body = &completed.body;
        assert_eq!(body["status"], "approved");
        assert_eq!(body["outcome"], "approve");
        assert_eq!(body["case"]["diagnosis"]["mrd_percent"], 0.8);
        // The rest of the case is kept.
        assert_eq!(body["case"]["diagnosis"]["mrd_status"], "positive");
        assert_eq!(body["authorization"]["request_id"], body["id"]);
        let history = body["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(
            (&history[0]["kind"], &history[0]["outcome"]),
            (&json!("submitted"), &json!("incomplete"))
        );
        assert_eq!(
            (&history[1]["kind"], &history[1]["outcome"]),
            (&json!("completed"), &json!("approve"))
        );
        assert_eq!(history[0]["case"]["diagnosis"].get("mrd_percent"), None);
        assert_eq!(history[1]["case"]["diagnosis"]["mrd_percent"], 0.8);
        assert_eq!(history[0]["decision"], incomplete["decision"]);

        // Only an incomplete request takes facts.
        server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.9}}),
            )
            .await
            .expect(409);
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        server
            .patch(
                &format!("/v1/requests/{}", id_of(&approved)),
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await
            .expect(409);
        assert_eq!(server.count("authorizations").await, 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_takes_its_history_from_the_records() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let first = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = authorization_number(&first);
        assert_eq!(first["authorization"]["cycles"], 2);
        assert_eq!(first["authorization"]["first_cycle"], 1);

        // E10 claims five cycles given and another authorization than the one on record.
        let mut renewal = case("E10");
        assert_eq!(renewal["history"]["blinatumomab_cycles"], 5);
        renewal["request"]["date"] = json!(days_after_receipt(-22));
        let submitted = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": renewal, "renews": number}),
            )
            .await;
        submitted.expect(201);
        let stored = server
            .get(
                &format!("/v1/requests/{}", id_of(&submitted.body)),
                &submitter,
            )
            .await;
        stored.expect(200);
        let stored = stored.body;
        assert_eq!(stored["renews"], number.as_str());
        let history = &stored["case"]["history"];
        assert_eq!(
            history["authorizations"],
            json!([{"start": first["authorization"]["start"], "end": first["authorization"]["end"], "renewal": false, "cycles": 2}])
        );
        // The records' counts under the keys' current names; the deprecated ones the case
        // sent give way to them.
        assert_eq!(history["cycles_given"], 2);
        assert_eq!(history["continued_cycles_given"], 0);
        assert!(history.get("blinatumomab_cycles").is_none(), "{history}");
        // E10 claims the course is at cycle 6; the records say cycle 3 comes next.
        assert_eq!(stored["case"]["request"]["first_cycle"], 3);
        assert_eq!(stored["authorization"]["first_cycle"], 3);
        assert_eq!(stored["case"]["request"]["kind"], "renewal");
        // What the requester said about the rest of the history is kept.
        assert_eq!(history["response"], "stable");
        // The authorization on record continues: the reauthorization pathway, 12 months.
        assert_eq!(stored["status"], "approved");
        assert_eq!(stored["decision"]["pathway"], "reauthorization");
        assert_eq!(stored["authorization"]["renews"], number.as_str());
        // From the day of receipt, not the request's date.
        assert_eq!(stored["authorization"]["start"], days_after_receipt(0));
        assert_eq!(
            stored["authorization"]["end"],
            priorauth_core::date::Date::parse(&days_after_receipt(0))
                .unwrap()
                .inclusive_end(priorauth_core::date::Duration::Months(12))
                .unwrap()
                .to_string()
        );

        // An authorization is renewed once: another renewal would grant the same cycles again.
        let mut again = case("E10");
        again["request"]["date"] = json!(days_after_receipt(-20));
        let refused = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": again, "renews": number}),
            )
            .await;
        refused.expect(409);
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains(stored["authorization"]["number"].as_str().unwrap()),
            "{}",
            refused.body
        );
        assert_eq!(
            server
                .count(&format!("authorizations WHERE renews = '{number}'"))
                .await,
            1
        );

        // A renewal of nothing on record is refused, naming the field.
        server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": case("E10"), "renews": "PA-NOSUCHNUMBER"}),
            )
            .await
            .expect_problem(422, "renews");

        // Another organization renewing the renewed authorization learns nothing from it:
        // the answer is the one for a number that does not exist (not the 409 naming the
        // renewal), and a NUL in the number is refused the same way on every back end.
        let (_, other) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let theirs = server
            .post(
                "/v1/requests",
                &other,
                &json!({"plan": "masshealth", "case": again, "renews": number}),
            )
            .await;
        theirs.expect_problem(422, "renews");
        let made_up = server
            .post(
                "/v1/requests",
                &other,
                &json!({"plan": "masshealth", "case": again, "renews": "PA-NOSUCHNUMBER"}),
            )
            .await;
        assert_eq!(
            theirs.body.to_string().replace(number.as_str(), "N"),
            made_up.body.to_string().replace("PA-NOSUCHNUMBER", "N")
        );
        server
            .post(
                "/v1/requests",
                &other,
                &json!({"plan": "masshealth", "case": again, "renews": "PA-\u{0}1"}),
            )
            .await
            .expect_problem(422, "renews");
        server.stop().await;
    })
    .await;
}

// ---- Errors, authentication, operations ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_case_is_a_problem_naming_the_field() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let reply = server
            .submit(
                &submitter,
                "masshealth",
                case("invalid/X01-negative-weight"),
            )
            .await;
        reply.expect_problem(422, "case.patient.weight_kg");
        assert_eq!(reply.body["title"], "invalid request");

        // Every invalid example names its key, under `case.`.
        let expected = case("invalid/expected");
        for (file, expect) in expected.as_object().unwrap() {
            let Some(key) = expect["must_fail_naming"].as_str() else {
                continue;
            };
            let name = file.trim_end_matches(".json");
            server
                .submit(&submitter, "masshealth", case(&format!("invalid/{name}")))
                .await
                .expect_problem(422, &format!("case.{key}"));
        }

        // A control character in any field, escaped as JSON allows, is refused naming it;
        // tab, line feed and carriage return in free text are not.
        for (field, bad) in [
            ("case.id", json!("E01\u{0}")),
            ("case.diagnosis.icd10[0]", json!(["C91.0\u{1b}0"])),
        ] {
            let mut body = case("E01");
            let (section, name) = field
                .trim_start_matches("case.")
                .split_once('.')
                .unwrap_or(("", "id"));
            if section.is_empty() {
                body["id"] = bad;
            } else {
                body[section][name.trim_end_matches("[0]")] = bad;
            }
            server
                .submit(&submitter, "masshealth", body)
                .await
                .expect_problem(422, field);
        }

        // The body itself.
        let reply = support::reply(
            server
                .client
                .post(format!("{}/v1/requests", server.base))
                .bearer_auth(&submitter)
                .header("content-type", "application/json")
                .body("{\"plan\": \"masshealth\", \"case\": {")
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.expect(422);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        server
            .submit(&submitter, "no-such-plan", case("E01"))
            .await
            .expect_problem(422, "plan");
        server
            .submit(
                &submitter,
                "express-scripts-medicare-advantage",
                case("E01"),
            )
            .await
            .expect_problem(422, "case.request.line_of_business");
        server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": case("E01"), "extra": 1}),
            )
            .await
            .expect(422);
        assert_eq!(server.count("requests").await, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_wrong_or_revoked_key_is_unauthorized() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let (key_id, secret) = server
            .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
            .await;
        let path = "/v1/requests/req_doesnotexist";

        let none = server.call(Method::GET, path, None, None, &[]).await;
        none.expect(401);
        assert_eq!(none.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            none.header("content-type"),
            Some("application/problem+json")
        );
        server.get(path, "pak_wrong").await.expect(401);
        server
            .call(
                Method::GET,
                path,
                None,
                None,
                &[("Authorization", &format!("Basic {secret}"))],
            )
            .await
            .expect(401);
        server
            .submit("pak_wrong", "masshealth", case("E01"))
            .await
            .expect(401);

        // The key works (404: authenticated, no such request) until it is revoked.
        server.get(path, &secret).await.expect(404);
        server
            .call(Method::GET, path, None, None, &[("x-api-key", &secret)])
            .await
            .expect(404);
        assert!(
            priorauth_service::keys::revoke(server.store(), &key_id)
                .await
                .unwrap()
        );
        server.get(path, &secret).await.expect(401);
        server
            .submit(&secret, "masshealth", case("E01"))
            .await
            .expect(401);
        assert_eq!(server.count("requests").await, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_over_the_limit_is_refused() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let mut padded = case("E01");
        padded["padding"] = json!("x".repeat(300 * 1024));
        server
            .submit(&submitter, "masshealth", padded)
            .await
            .expect_problem(413, "body");
        assert_eq!(server.count("requests").await, 0);
        // The server is still serving.
        server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_answers_health_readiness_and_openapi() {
    for_each_backend(|url| async move {
        // The entry point `priorauth serve` uses.
        let engine = priorauth_core::Engine::bundled().unwrap();
        let state = priorauth_service::state(engine, None, &url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(priorauth_service::serve(state.clone(), listener));
        let client = reqwest::Client::new();
        let get = |path: &str| {
            let (client, url) = (client.clone(), format!("{base}{path}"));
            async move { support::reply(client.get(url).send().await.unwrap()).await }
        };

        get("/healthz").await.expect(200);
        get("/readyz").await.expect(200);
        // No answer may be kept by a cache; the console may not be framed by another page.
        for path in ["/healthz", "/v1/requests/req_missing", "/console/"] {
            assert_eq!(
                get(path).await.header("cache-control"),
                Some("no-store"),
                "{path}"
            );
        }
        // A NUL or other control character in a path is refused naming the path, on every
        // back end (PostgreSQL cannot hold NUL in text), in each adapter's own terms.
        for path in [
            "/v1/requests/req%00x",
            "/v1/authorizations/PA%1F1",
            "/v1/requests/x?y=%7f",
        ] {
            let reply = get(path).await;
            reply.expect_problem(422, "path");
        }
        let fhir = get("/fhir/Subscription/sub%00").await;
        assert_eq!(fhir.status, 422, "{}", fhir.body);
        assert_eq!(
            fhir.body["resourceType"], "OperationOutcome",
            "{}",
            fhir.body
        );
        let page = get("/console/").await;
        let policy = page.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let openapi = get("/openapi.json").await;
        openapi.expect(200);
        assert!(openapi.body.is_object(), "{}", openapi.body);
        assert!(openapi.body["openapi"].as_str().unwrap().starts_with('3'));
        let paths = openapi.body["paths"].as_object().unwrap();
        for path in [
            "/v1/requests",
            "/v1/requests/{id}",
            "/v1/requests/{id}/determination",
            "/v1/requests/{id}/denial-letter",
            "/v1/queue",
            "/v1/authorizations/{number}",
            "/v1/authorizations/{number}/usage",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} is not in the OpenAPI document"
            );
        }
        assert!(paths["/v1/requests"].get("post").is_some());
        get("/v1/nothing-here").await.expect(404);
        task.abort();
        let _ = task.await;
        state.service.store.pool.close().await;
    })
    .await;
}

// ---- Races and admins (each of these found a bug) ----

/// `n` calls at once, all the same; their statuses, sorted.
async fn at_once(
    server: &Server,
    n: usize,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> Vec<u16> {
    let mut calls = JoinSet::new();
    for _ in 0..n {
        let (client, base, method, path, key, body) = (
            server.client.clone(),
            server.base.clone(),
            method.clone(),
            path.to_string(),
            key.to_string(),
            body.clone(),
        );
        calls.spawn(async move {
            support::call(&client, &base, method, &path, Some(&key), Some(&body), &[]).await
        });
    }
    let mut statuses: Vec<u16> = calls.join_all().await.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_determinations_record_one() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let reviewed = server.submitted(&submitter, "masshealth", case("E12")).await;
        let id = id_of(&reviewed);
        let statuses = at_once(
            &server,
            8,
            Method::POST,
            &format!("/v1/requests/{id}/determination"),
            &reviewer,
            json!({"decision": "approve", "criterion": "new-to-plan-on-treatment", "reason": "On therapy."}),
        )
        .await;
        // Before the fix, PostgreSQL answered 500 (duplicate determination) to the losers.
        assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
        assert_eq!(server.count("determinations").await, 1);
        assert_eq!(server.count("authorizations").await, 1);
        let seen = server.get(&format!("/v1/requests/{id}"), &submitter).await;
        assert_eq!(seen.body["history"].as_array().unwrap().len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_completions_create_one_authorization() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", case("E06"))
            .await;
        let id = id_of(&incomplete);
        let statuses = at_once(
            &server,
            8,
            Method::PATCH,
            &format!("/v1/requests/{id}"),
            &submitter,
            json!({"diagnosis": {"mrd_percent": 0.8}}),
        )
        .await;
        // Before the fix, PostgreSQL let every one through, each with its own authorization.
        assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
        assert_eq!(server.count("authorizations").await, 1);
        let seen = server.get(&format!("/v1/requests/{id}"), &submitter).await;
        assert_eq!(seen.body["history"].as_array().unwrap().len(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admins_completion_leaves_the_authorization_with_the_requester() {
    for_each_backend(|url| async move {
        let (server, submitter, _) = server_with_keys(&url).await;
        let (_, admin) = server.key("payer", Role::Admin, "Operations", "").await;
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", case("E06"))
            .await;
        let completed = server
            .patch(
                &format!("/v1/requests/{}", id_of(&incomplete)),
                &admin,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await;
        completed.expect(200);
        assert_eq!(completed.body["status"], "approved");
        let number = authorization_number(&completed.body);
        // Before the fix the authorization went to the admin's organization: 404 here.
        server
            .get(&format!("/v1/authorizations/{number}"), &submitter)
            .await
            .expect(200);
        server
            .post(
                &format!("/v1/authorizations/{number}/usage"),
                &submitter,
                &json!({"units": 100, "date_of_service": days_after_receipt(0)}),
            )
            .await
            .expect(201);
        server.stop().await;
    })
    .await;
}

/// The case format's JSON Schema, as the OpenAPI document carries it, takes every example
/// case and refuses a key the format does not have.
#[test]
fn every_example_case_matches_the_documents_case_schema() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases");
    let mut checked = 0;
    for entry in std::fs::read_dir(&directory).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with('E') || !name.ends_with(".json") {
            continue;
        }
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        support::contract::verify_case(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
        checked += 1;
    }
    assert!(checked >= 13, "{checked} cases");
    let mut case = support::case("E01");
    case["patient"]["shoe_size"] = json!(9);
    assert!(support::contract::verify_case(&case).is_err());

    // The contract every harnessed answer is held to catches a wrong shape, an undocumented
    // success and a wrong content type.
    use support::contract::verify;
    let json_type = Some("application/json");
    assert!(
        verify(
            "GET",
            "/v1/queue",
            200,
            json_type,
            &json!({"items": [], "next": null})
        )
        .is_ok()
    );
    assert!(verify("GET", "/v1/queue", 200, json_type, &json!({"items": 3})).is_err());
    assert!(verify("GET", "/v1/queue", 202, json_type, &json!({})).is_err());
    assert!(verify("GET", "/v1/queue", 200, Some("text/plain"), &json!("x")).is_err());
    assert!(
        verify(
            "GET",
            "/v1/requests/req_1",
            404,
            json_type,
            &json!({"title": 1})
        )
        .is_err()
    );
    // The document's examples are valid instances of their schemas.
    let examples = support::contract::verify_examples().unwrap();
    assert!(examples >= 7, "{examples} examples");
}

/// A clinician's approval is placed in the member's course as the records hold it when the
/// clinician approves: two requests of one member sent to review and both approved cover
/// cycles 1-2 and 3-4, not 1-2 twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clinicians_approval_is_placed_after_the_members_authorizations_since_receipt() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let mut reviewed = case("E12");
        reviewed["patient"]["member_id"] = json!("M-900");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let answer = server
                .submitted(&submitter, "masshealth", reviewed.clone())
                .await;
            assert_eq!(answer["status"], "pending_review", "{answer}");
            ids.push(id_of(&answer));
        }
        let mut first_cycles = Vec::new();
        for id in &ids {
            let decided = server
                .determine(
                    &reviewer,
                    id,
                    "approve",
                    "new-to-plan-on-treatment",
                    "Already on therapy when the member joined the plan.",
                )
                .await;
            decided.expect(200);
            first_cycles.push(decided.body["authorization"]["first_cycle"].clone());
        }
        assert_eq!(first_cycles, vec![json!(1), json!(3)], "{first_cycles:?}");
        server.stop().await;
    })
    .await;
}

/// Clinicians approving requests of one member at the same moment place them one after the
/// other (each holds the member's course as a submission does): four approvals, four
/// different first cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clinicians_approvals_of_one_member_are_placed_one_after_the_other() {
    for_each_backend(|url| async move {
        let (server, submitter, reviewer) = server_with_keys(&url).await;
        let mut reviewed = case("E12");
        reviewed["patient"]["member_id"] = json!("M-901");
        // Relapsed disease, whose label course (9 cycles) holds four approvals of 2 cycles;
        // a frontline course holds 4 cycles.
        reviewed["diagnosis"]["disease_status"] = json!("relapsed");
        reviewed["request"].as_object_mut().unwrap().remove("phase");
        let mut ids = Vec::new();
        for _ in 0..4 {
            let answer = server
                .submitted(&submitter, "masshealth", reviewed.clone())
                .await;
            assert_eq!(answer["status"], "pending_review", "{answer}");
            ids.push(id_of(&answer));
        }
        let server = std::sync::Arc::new(server);
        let approvals: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let (server, reviewer) = (server.clone(), reviewer.clone());
                tokio::spawn(async move {
                    server
                        .determine(
                            &reviewer,
                            &id,
                            "approve",
                            "new-to-plan-on-treatment",
                            "Already on therapy when the member joined the plan.",
                        )
                        .await
                })
            })
            .collect();
        let mut first_cycles = Vec::new();
        for approval in approvals {
            let decided = approval.await.unwrap();
            decided.expect(200);
            first_cycles.push(
                decided.body["authorization"]["first_cycle"]
                    .as_i64()
                    .unwrap(),
            );
        }
        first_cycles.sort();
        first_cycles.dedup();
        assert_eq!(first_cycles.len(), 4, "{first_cycles:?}");
    })
    .await;
}
