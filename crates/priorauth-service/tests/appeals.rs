//! Appeals, reopenings and peer-to-peer discussions over HTTP, on SQLite and (with
//! `DATABASE_URL`) on PostgreSQL: who may file and decide an appeal, the plan's appeal clocks
//! and extensions, an overturn's authorization, an upheld denial's specialist and notice, a
//! denial reopened on new information; the history and the audit chain kept throughout.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use base64::Engine as _;
use priorauth_service::keys::Role;
use priorauth_service::store::verify_audit;
use serde_json::{Value, json};
use support::{Server, case, for_each_backend, millis};

const HOUR_MS: i64 = 3_600_000;

/// Keys of the cast: the clinic, the reviewer who denies, and others who may decide appeals.
struct Cast {
    clinic: String,
    other_clinic: String,
    /// Made the denials: may decide none of their appeals.
    denier: String,
    /// A physician of the drug's specialty: may uphold.
    hematologist: String,
    /// A physician of another specialty: may overturn, not uphold.
    internist: String,
    /// Not a physician: may overturn, not uphold.
    pharmacist: String,
}

async fn cast(server: &Server) -> Cast {
    let key = |org: &'static str, role, name: &'static str, credentials: &'static str| async move {
        server.key(org, role, name, credentials).await.1
    };
    Cast {
        clinic: key("clinic-a", Role::Submitter, "Clinic A EHR", "").await,
        other_clinic: key("clinic-b", Role::Submitter, "Clinic B EHR", "").await,
        denier: key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology").await,
        hematologist: key(
            "payer",
            Role::Reviewer,
            "Dr. Chen",
            "MD, Hematology/Oncology",
        )
        .await,
        internist: key(
            "payer",
            Role::Reviewer,
            "Dr. Okafor",
            "DO, Internal Medicine",
        )
        .await,
        pharmacist: key("payer", Role::Reviewer, "Sam Patel", "PharmD, Oncology").await,
    }
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("an id").to_string()
}

/// A MassHealth request (Medicaid) in review, denied by `cast.denier`.
async fn masshealth_denial(server: &Server, cast: &Cast) -> String {
    let reviewed = server
        .submitted(&cast.clinic, "masshealth", case("E12"))
        .await;
    assert_eq!(reviewed["status"], "pending_review");
    let id = id_of(&reviewed);
    let denied = server
        .determine(
            &cast.denier,
            &id,
            "deny",
            "one-of-the-following",
            "Not on therapy when the member joined the plan.",
        )
        .await;
    denied.expect(200);
    assert_eq!(denied.body["status"], "denied");
    id
}

/// An Evolent commercial request (a recommended denial), denied by `cast.denier`: returns the
/// request id and the criterion.
async fn commercial_denial(server: &Server, cast: &Cast) -> (String, String) {
    let mut commercial = case("E05");
    commercial["request"]
        .as_object_mut()
        .unwrap()
        .remove("line_of_business");
    let submitted = server
        .submitted(&cast.clinic, "evolent-commercial", commercial)
        .await;
    assert_eq!(submitted["outcome"], "deny");
    let id = id_of(&submitted);
    let criterion = submitted["decision"]["reasons"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .determine(
            &cast.denier,
            &id,
            "deny",
            &criterion,
            "T-cell disease is not the B-cell precursor ALL the policy covers.",
        )
        .await
        .expect(200);
    (id, criterion)
}

fn letter() -> Value {
    json!({
        "title": "Letter of medical necessity",
        "content_type": "text/plain",
        "data": base64::engine::general_purpose::STANDARD.encode("The member started blinatumomab before enrolling."),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_is_appealed_by_the_clinic_and_overturned_by_another_reviewer_into_an_authorization()
 {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        let id = masshealth_denial(&server, &cast).await;
        let path = format!("/v1/requests/{id}/appeals");
        let filing = json!({
            "appellant": "prescriber",
            "grounds": "The member began blinatumomab at the previous plan; records attached.",
            "attachments": [letter()],
        });

        // Who may file, and what a filing must hold.
        server.post(&path, &cast.other_clinic, &filing).await.expect(404);
        server.post(&path, &cast.hematologist, &filing).await.expect(403);
        let mut blank = filing.clone();
        blank["grounds"] = json!(" ");
        server
            .post(&path, &cast.clinic, &blank)
            .await
            .expect_problem(422, "grounds");
        let mut garbled = filing.clone();
        garbled["attachments"][0]["data"] = json!("not base64!");
        server
            .post(&path, &cast.clinic, &garbled)
            .await
            .expect_problem(422, "attachments[0].data");
        let mut executable = filing.clone();
        executable["attachments"][0]["content_type"] = json!("application/x-msdownload");
        server
            .post(&path, &cast.clinic, &executable)
            .await
            .expect_problem(422, "attachments[0].content_type");

        let filed = server.post(&path, &cast.clinic, &filing).await;
        filed.expect(201);
        let appeal = filed.body["id"].as_str().unwrap().to_string();
        assert_eq!(filed.body["status"], "pending");
        assert_eq!(filed.body["appellant"], "prescriber");
        assert_eq!(filed.body["request_status"], "denied");
        assert_eq!(filed.body["late"], false);
        // MassHealth is Medicaid: a standard appeal within 30 days (42 CFR 438.408(b)(2)).
        let clock = millis(&filed.body["due_at"]) - millis(&filed.body["received_at"]);
        assert_eq!(clock, 30 * 24 * HOUR_MS);
        assert_eq!(filed.body["attachments"][0]["title"], "Letter of medical necessity");
        // One open appeal at a time.
        server.post(&path, &cast.clinic, &filing).await.expect(409);

        // Its file, to the clinic and to reviewers, not to another clinic.
        let file_path = format!("/v1/appeals/{appeal}/attachments/1");
        let file = server.get(&file_path, &cast.hematologist).await;
        file.expect(200);
        assert_eq!(
            file.body,
            json!("The member started blinatumomab before enrolling.")
        );
        assert_eq!(file.header("content-type"), Some("text/plain"));
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(file.header("content-disposition"), Some("attachment"));
        server.get(&file_path, &cast.other_clinic).await.expect(404);
        server
            .get(&format!("/v1/appeals/{appeal}/attachments/2"), &cast.clinic)
            .await
            .expect(404);

        // The open appeals: the reviewers' list and the clinic's own.
        let open = server.get("/v1/appeals", &cast.internist).await;
        open.expect(200);
        assert_eq!(open.body["items"][0]["id"], json!(appeal));
        let others = server.get("/v1/appeals", &cast.other_clinic).await;
        others.expect(200);
        assert_eq!(others.body["items"], json!([]));
        server
            .get(&format!("/v1/appeals/{appeal}"), &cast.other_clinic)
            .await
            .expect(404);

        // A peer-to-peer discussion during the appeal, recorded by a reviewer.
        let p2p = format!("/v1/requests/{id}/peer-to-peer");
        let discussion = json!({
            "prescriber": "Dr. Alvarez (NPI 1234567893)",
            "held_at": jiff::Timestamp::now().to_string(),
            "outcome": "agreed_to_approve",
            "notes": "Therapy began at the previous plan; records confirm it.",
            "appeal": appeal,
        });
        server.post(&p2p, &cast.clinic, &discussion).await.expect(403);
        let mut future = discussion.clone();
        future["held_at"] = json!("2999-01-01T00:00:00Z");
        server
            .post(&p2p, &cast.internist, &future)
            .await
            .expect_problem(422, "held_at");
        let recorded = server.post(&p2p, &cast.internist, &discussion).await;
        recorded.expect(201);
        assert_eq!(recorded.body["reviewer"]["name"], "Dr. Okafor");

        // Not the reviewer who denied; an overturn by anyone else entitled.
        let decide = format!("/v1/appeals/{appeal}/decision");
        let overturn = json!({"decision": "overturn", "reason": "Records show therapy began before enrollment."});
        server.post(&decide, &cast.denier, &overturn).await.expect(403);
        server.post(&decide, &cast.clinic, &overturn).await.expect(403);
        let decided = server.post(&decide, &cast.internist, &overturn).await;
        decided.expect(200);
        assert_eq!(decided.body["status"], "overturned");
        assert_eq!(decided.body["request_status"], "approved");
        let number = decided.body["authorization"]["number"].as_str().unwrap();
        // As an approval grants it: the request's two cycles of 980 units, from receipt.
        assert_eq!(decided.body["authorization"]["approved_units"], 1960);
        server.post(&decide, &cast.hematologist, &overturn).await.expect(409);

        let request = server.get(&format!("/v1/requests/{id}"), &cast.clinic).await;
        request.expect(200);
        assert_eq!(request.body["status"], "approved");
        assert_eq!(request.body["authorization"]["number"], json!(number));
        assert_eq!(request.body["determination"]["decision"], "approve");
        assert_eq!(request.body["determination"]["reviewer"]["name"], "Dr. Okafor");
        let kinds: Vec<&str> = request.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["submitted", "determination", "appealed", "appeal_decided"]);
        let last = &request.body["history"][3];
        assert_eq!(last["appeal"], json!(appeal));
        assert_eq!(last["appeal_decision"], "overturn");
        assert_eq!(last["superseded_determination"]["decision"], "deny");
        assert_eq!(
            last["superseded_determination"]["reviewer"]["name"],
            "Dr. Rivera"
        );
        // The authorization is spent as any other.
        server
            .get(&format!("/v1/authorizations/{number}"), &cast.clinic)
            .await
            .expect(200);

        let notice = server
            .get(&format!("/v1/appeals/{appeal}/notice"), &cast.clinic)
            .await;
        notice.expect(200);
        assert_eq!(notice.body["decision"], "overturned");
        assert_eq!(notice.body["authorization"]["number"], json!(number));
        assert_eq!(notice.body["on_time"], true);
        assert_eq!(notice.body["further_rights"], Value::Null);

        let listed = server.get(&path, &cast.clinic).await;
        listed.expect(200);
        assert_eq!(listed.body["appeals"].as_array().unwrap().len(), 1);
        assert_eq!(listed.body["peer_to_peer"][0]["outcome"], "agreed_to_approve");
        assert_eq!(
            server.count("appeals WHERE status = 'overturned'").await,
            1
        );

        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upholding_a_denial_needs_a_physician_of_the_specialty_and_its_notice_gives_further_rights()
{
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        let (id, criterion) = commercial_denial(&server, &cast).await;
        let filed = server
            .post(
                &format!("/v1/requests/{id}/appeals"),
                &cast.clinic,
                &json!({"appellant": "member", "urgency": "expedited",
                        "grounds": "Waiting could seriously harm the member."}),
            )
            .await;
        filed.expect(201);
        let appeal = id_of(&filed.body);
        // Commercial (ERISA): an urgent appeal within 72 hours, and no extension.
        let clock = millis(&filed.body["due_at"]) - millis(&filed.body["received_at"]);
        assert_eq!(clock, 72 * HOUR_MS);
        server
            .post(
                &format!("/v1/appeals/{appeal}/extension"),
                &cast.hematologist,
                &json!({"reason": "Awaiting the flow cytometry report."}),
            )
            .await
            .expect(409);
        // No notice before the decision.
        server
            .get(&format!("/v1/appeals/{appeal}/notice"), &cast.clinic)
            .await
            .expect(409);
        // A reopening waits for the appeal.
        server
            .post(
                &format!("/v1/requests/{id}/reopening"),
                &cast.hematologist,
                &json!({"reason": "New pathology."}),
            )
            .await
            .expect(409);

        let decide = format!("/v1/appeals/{appeal}/decision");
        let uphold = json!({"decision": "uphold", "reason": "The disease is T-cell ALL; the policy covers B-cell precursor ALL."});
        server.post(&decide, &cast.pharmacist, &uphold).await.expect(403);
        server.post(&decide, &cast.internist, &uphold).await.expect(403);
        server.post(&decide, &cast.denier, &uphold).await.expect(403);
        let mut with_changes = uphold.clone();
        with_changes["changes"] = json!({"cycles": 1});
        server
            .post(&decide, &cast.hematologist, &with_changes)
            .await
            .expect_problem(422, "changes");
        let upheld = server.post(&decide, &cast.hematologist, &uphold).await;
        upheld.expect(200);
        assert_eq!(upheld.body["status"], "upheld");
        assert_eq!(upheld.body["request_status"], "denied");
        assert_eq!(upheld.body["authorization"], Value::Null);
        assert_eq!(upheld.body["decision"]["reviewer"]["credentials"], "MD, Hematology/Oncology");

        let notice = server
            .get(&format!("/v1/appeals/{appeal}/notice"), &cast.clinic)
            .await;
        notice.expect(200);
        assert_eq!(notice.body["kind"], "appeal_decision");
        assert_eq!(notice.body["decision"], "upheld");
        assert_eq!(notice.body["criterion"]["id"], json!(criterion));
        assert!(notice.body["criterion"]["source"].as_str().unwrap().len() > 10);
        assert!(
            notice.body["further_rights"]
                .as_str()
                .unwrap()
                .contains("external review"),
            "{}",
            notice.body
        );
        assert_eq!(notice.body["on_time"], true);

        // A second appeal: whoever upheld the first took part, and may not decide it.
        let second = server
            .post(
                &format!("/v1/requests/{id}/appeals"),
                &cast.clinic,
                &json!({"appellant": "clinic", "grounds": "A second opinion is attached.", "attachments": [letter()]}),
            )
            .await;
        second.expect(201);
        let second_decide = format!("/v1/appeals/{}/decision", id_of(&second.body));
        server
            .post(&second_decide, &cast.hematologist, &uphold)
            .await
            .expect(403);
        let (_, oncologist) = server
            .key("payer", Role::Reviewer, "Dr. Novak", "M.D., Medical Oncology")
            .await;
        server.post(&second_decide, &oncologist, &uphold).await.expect(200);

        // Reopened on new information: in review again, its determination in the history.
        let reopen = format!("/v1/requests/{id}/reopening");
        server
            .post(&reopen, &cast.clinic, &json!({"reason": "New pathology."}))
            .await
            .expect(403);
        let reopened = server
            .post(
                &reopen,
                &oncologist,
                &json!({"reason": "Repeat flow cytometry shows B-cell precursor ALL."}),
            )
            .await;
        reopened.expect(200);
        assert_eq!(reopened.body["status"], "pending_review");
        assert_eq!(reopened.body["determination"], Value::Null);
        let last = reopened.body["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "reopened");
        assert_eq!(last["superseded_determination"]["decision"], "deny");
        let queue = server.get("/v1/queue", &oncologist).await;
        assert!(
            queue.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["id"] == json!(id))
        );
        // Decided again as any request in review.
        server
            .determine(&oncologist, &id, "deny", &criterion, "Still T-cell ALL on review.")
            .await
            .expect(200);
        server.post(&reopen, &oncologist, &json!({"reason": "x"})).await.expect(200);

        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_medicaid_appeal_is_extended_once_with_a_reason_and_a_notice_and_late_shows() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        let id = masshealth_denial(&server, &cast).await;
        let filed = server
            .post(
                &format!("/v1/requests/{id}/appeals"),
                &cast.clinic,
                &json!({"appellant": "member", "grounds": "More records are coming."}),
            )
            .await;
        filed.expect(201);
        let appeal = id_of(&filed.body);
        let extend = format!("/v1/appeals/{appeal}/extension");
        let why = json!({"reason": "Awaiting the transplant center's records, which the member asked us to consider."});
        server.post(&extend, &cast.clinic, &why).await.expect(403);
        server
            .post(&extend, &cast.hematologist, &json!({"reason": ""}))
            .await
            .expect_problem(422, "reason");
        let extended = server.post(&extend, &cast.hematologist, &why).await;
        extended.expect(200);
        // 42 CFR 438.408(c): up to 14 days more.
        assert_eq!(
            millis(&extended.body["due_at"]) - millis(&filed.body["due_at"]),
            14 * 24 * HOUR_MS
        );
        assert_eq!(extended.body["extension"]["days"], 14);
        server.post(&extend, &cast.hematologist, &why).await.expect(409);
        let notice = server
            .get(&format!("/v1/appeals/{appeal}/notice"), &cast.clinic)
            .await;
        notice.expect(200);
        assert_eq!(notice.body["kind"], "appeal_extension");
        assert_eq!(notice.body["reason"], why["reason"]);
        assert!(notice.body["rights"].as_str().unwrap().contains("grievance"));

        // Past its due time, it shows late (the due time moved back by SQL, as time would).
        sqlx::query("UPDATE appeals SET due_at = received_at - 1 WHERE id = $1")
            .bind(&appeal)
            .execute(&server.store().pool)
            .await
            .unwrap();
        let late = server.get(&format!("/v1/appeals/{appeal}"), &cast.clinic).await;
        late.expect(200);
        assert_eq!(late.body["late"], true);
        assert!(late.body["minutes_left"].as_i64().unwrap() < 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_with_changes_overturned_on_appeal_grants_the_request_on_the_same_authorization()
 {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        let reviewed = server
            .submitted(&cast.clinic, "masshealth", case("E12"))
            .await;
        let id = id_of(&reviewed);
        let changed = server
            .post(
                &format!("/v1/requests/{id}/determination"),
                &cast.denier,
                &json!({"decision": "approve_with_changes", "criterion": "new-to-plan-on-treatment",
                        "reason": "One cycle, then a response assessment.", "changes": {"cycles": 1}}),
            )
            .await;
        changed.expect(200);
        let number = changed.body["authorization"]["number"].as_str().unwrap().to_string();
        assert_eq!(changed.body["authorization"]["approved_units"], 980);
        server
            .post(
                &format!("/v1/authorizations/{number}/usage"),
                &cast.clinic,
                &json!({"units": 500, "date_of_service": support::days_after_receipt(1)}),
            )
            .await
            .expect(201);

        let filed = server
            .post(
                &format!("/v1/requests/{id}/appeals"),
                &cast.clinic,
                &json!({"appellant": "prescriber", "grounds": "Both induction cycles are standard."}),
            )
            .await;
        filed.expect(201);
        let decided = server
            .post(
                &format!("/v1/appeals/{}/decision", id_of(&filed.body)),
                &cast.pharmacist,
                &json!({"decision": "overturn", "reason": "The label's induction is two cycles."}),
            )
            .await;
        decided.expect(200);
        // The same authorization, its usage kept, now for the two cycles asked.
        assert_eq!(decided.body["authorization"]["number"], json!(number));
        assert_eq!(decided.body["authorization"]["approved_units"], 1960);
        assert_eq!(decided.body["authorization"]["used_units"], 500);
        assert_eq!(server.count("authorizations").await, 1);
        let request = server.get(&format!("/v1/requests/{id}"), &cast.clinic).await;
        assert_eq!(request.body["determination"]["decision"], "approve");
        assert_eq!(
            request.body["history"].as_array().unwrap().last().unwrap()["superseded_determination"]["decision"],
            "approve_with_changes"
        );

        // A request not adversely determined has nothing to appeal.
        let approved = server
            .submitted(&cast.clinic, "masshealth", case("E01"))
            .await;
        server
            .post(
                &format!("/v1/requests/{}/appeals", id_of(&approved)),
                &cast.clinic,
                &json!({"appellant": "member", "grounds": "x"}),
            )
            .await
            .expect(409);

        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_appeal_past_the_plans_filing_window_is_refused_naming_it() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        let id = masshealth_denial(&server, &cast).await;
        // The denial made 61 days ago (moved back by SQL, as time would): MassHealth takes
        // appeals within 60 days (42 CFR 438.402(c)(2)(ii)).
        sqlx::query("UPDATE determinations SET at = at - $1 WHERE request_id = $2")
            .bind(61 * 86_400_000_i64)
            .bind(&id)
            .execute(&server.store().pool)
            .await
            .unwrap();
        let refused = server
            .post(
                &format!("/v1/requests/{id}/appeals"),
                &cast.clinic,
                &json!({"appellant": "member", "grounds": "Late."}),
            )
            .await;
        refused.expect(409);
        assert!(
            refused.body["detail"].as_str().unwrap().contains("60 days"),
            "{}",
            refused.body
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_filings_and_decisions_of_one_appeal_have_one_winner() {
    for_each_backend(|url| async move {
        let server = std::sync::Arc::new(Server::start(&url).await);
        let cast = std::sync::Arc::new(cast(&server).await);
        let id = masshealth_denial(&server, &cast).await;

        // Eight filings at once: one appeal.
        let mut filings = tokio::task::JoinSet::new();
        for n in 0..8 {
            let (server, cast, id) = (server.clone(), cast.clone(), id.clone());
            filings.spawn(async move {
                server
                    .post(
                        &format!("/v1/requests/{id}/appeals"),
                        &cast.clinic,
                        &json!({"appellant": "member", "grounds": format!("Filing {n}.")}),
                    )
                    .await
                    .status
            });
        }
        let mut statuses = Vec::new();
        while let Some(status) = filings.join_next().await {
            statuses.push(status.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
        let appeal: (String,) = sqlx::query_as("SELECT id FROM appeals")
            .fetch_one(&server.store().pool)
            .await
            .unwrap();

        // Upholds and overturns at once, by four reviewers: one decision, at most one
        // authorization.
        let mut decisions = tokio::task::JoinSet::new();
        for round in 0..2 {
            for (key, decision) in [
                (cast.hematologist.clone(), "uphold"),
                (cast.internist.clone(), "overturn"),
                (cast.pharmacist.clone(), "overturn"),
            ] {
                let (server, appeal) = (server.clone(), appeal.0.clone());
                decisions.spawn(async move {
                    server
                        .post(
                            &format!("/v1/appeals/{appeal}/decision"),
                            &key,
                            &json!({"decision": decision, "reason": format!("Round {round}.")}),
                        )
                        .await
                        .status
                });
            }
        }
        let mut statuses = Vec::new();
        while let Some(status) = decisions.join_next().await {
            statuses.push(status.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 409),
            "{statuses:?}"
        );
        assert_eq!(server.count("appeals WHERE status = 'pending'").await, 0);
        assert!(server.count("authorizations").await <= 1);
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_standard_request_is_extended_once_where_its_plan_allows_and_late_shows() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let cast = cast(&server).await;
        // MassHealth (Medicaid): a standard request in review may be extended by 14 days.
        let reviewed = server
            .submitted(&cast.clinic, "masshealth", case("E12"))
            .await;
        let id = id_of(&reviewed);
        let path = format!("/v1/requests/{id}/extension");
        let why = json!({"reason": "Awaiting the previous plan's infusion records."});
        server.post(&path, &cast.clinic, &why).await.expect(403);
        server
            .post(&path, &cast.hematologist, &json!({"reason": " "}))
            .await
            .expect_problem(422, "reason");
        let extended = server.post(&path, &cast.hematologist, &why).await;
        extended.expect(200);
        assert_eq!(
            millis(&extended.body["due_at"]) - millis(&reviewed["due_at"]),
            336 * HOUR_MS
        );
        let last = extended.body["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["kind"], "extended");
        assert_eq!(last["reason"], why["reason"]);
        assert_eq!(last["extension_hours"], 336);
        // Once only.
        server
            .post(&path, &cast.hematologist, &why)
            .await
            .expect(409);

        // Not an expedited request, and not where the plan allows none (Medicare Part B).
        let expedited = server
            .post(
                "/v1/requests",
                &cast.clinic,
                &json!({"plan": "masshealth", "case": case("E12"), "urgency": "expedited"}),
            )
            .await;
        expedited.expect(201);
        server
            .post(
                &format!("/v1/requests/{}/extension", id_of(&expedited.body)),
                &cast.hematologist,
                &why,
            )
            .await
            .expect(409);
        let mut part_b = case("E05");
        part_b["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        let medicare = server
            .submitted(&cast.clinic, "express-scripts-medicare-advantage", part_b)
            .await;
        assert_eq!(medicare["status"], "pending_review", "{medicare}");
        server
            .post(
                &format!("/v1/requests/{}/extension", id_of(&medicare)),
                &cast.hematologist,
                &why,
            )
            .await
            .expect(409);

        // Past its due time (moved back by SQL, as time would), it shows late in its answer
        // and in the queue.
        assert_eq!(extended.body["late"], false);
        sqlx::query("UPDATE requests SET due_at = created_at - 1 WHERE id = $1")
            .bind(&id)
            .execute(&server.store().pool)
            .await
            .unwrap();
        let late = server
            .get(&format!("/v1/requests/{id}"), &cast.clinic)
            .await;
        assert_eq!(late.body["late"], true);
        let queue = server.get("/v1/queue", &cast.hematologist).await;
        let item = queue.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == json!(id))
            .unwrap()
            .clone();
        assert_eq!(item["late"], true);
        server.stop().await;
    })
    .await;
}
