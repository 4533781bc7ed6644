//! A clinic's and a reviewer's day over HTTP, on SQLite and (with `DATABASE_URL`) on
//! PostgreSQL: who a request is for (identity in the case, stored and searchable), the work
//! list (`GET /v1/requests`: filters, pages, one organization's for a clinic), and
//! determinations that cannot be wrong by default (a denial cites what fails the request; an
//! approval with changes changes something, within what the policy allows).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use priorauth_service::keys::Role;
use priorauth_service::store::verify_audit;
use serde_json::{Value, json};
use support::{Server, case, for_each_backend};

/// A server with submitters of two clinics and a credentialed reviewer.
async fn server_with_keys(url: &str) -> (Server, String, String, String) {
    let server = Server::start(url).await;
    let (_, clinic_a) = server
        .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
        .await;
    let (_, clinic_b) = server
        .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
        .await;
    let (_, reviewer) = server
        .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
        .await;
    (server, clinic_a, clinic_b, reviewer)
}

/// A case for a named member, prescribed by a named physician.
fn for_member(name: &str, member_id: &str, member_name: &str) -> Value {
    let mut case = case(name);
    case["patient"]["member_id"] = json!(member_id);
    case["patient"]["name"] = json!(member_name);
    case["prescriber"]["name"] = json!("Dr. Lee");
    case["prescriber"]["npi"] = json!("1234567893");
    case
}

/// A notice's words, one paragraph per line.
fn paragraphs(notice: &Value) -> String {
    notice["paragraphs"]
        .as_array()
        .unwrap_or_else(|| panic!("no paragraphs: {notice}"))
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `key` is answered at `path`, read as bytes (a PDF, a CSV).
async fn fetch(server: &Server, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The first criterion a reviewer is offered to deny a request in review on.
async fn first_ground(server: &Server, id: &str, reviewer: &str) -> String {
    let read = server.get(&format!("/v1/requests/{id}"), reviewer).await;
    read.body["denial_grounds"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no denial grounds: {}", read.body))
        .to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {list}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_is_checked_stored_and_shown() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let mut bad = for_member("E01", "M-1", "Ana Diaz");
        bad["prescriber"]["npi"] = json!("1234567890");
        server
            .submit(&clinic_a, "masshealth", bad)
            .await
            .expect_problem(422, "case.prescriber.npi");
        let mut blank = for_member("E01", "M-1", "Ana Diaz");
        blank["patient"]["member_id"] = json!(" ");
        server
            .submit(&clinic_a, "masshealth", blank)
            .await
            .expect_problem(422, "case.patient.member_id");

        let approved = server
            .submitted(
                &clinic_a,
                "masshealth",
                for_member("E01", "M-1", "Ana Diaz"),
            )
            .await;
        assert_eq!(approved["status"], "approved");
        let id = approved["id"].as_str().unwrap();
        // Identity changes nothing the engine decides, and reads back as sent.
        let read = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(read.body["case"]["patient"]["member_id"], "M-1");
        assert_eq!(read.body["case"]["prescriber"]["npi"], "1234567893");
        let list = server.get("/v1/requests", &clinic_a).await;
        list.expect(200);
        assert_eq!(
            list.body["items"][0]["member"],
            json!({"id": "M-1", "name": "Ana Diaz"})
        );
        assert_eq!(list.body["items"][0]["drug"], "blinatumomab");
        assert_eq!(
            list.body["items"][0]["authorization"],
            approved["authorization"]["number"]
        );
        // The queue shows who a request is for.
        server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        let queue = server.get("/v1/queue", &reviewer).await;
        assert_eq!(queue.body["items"][0]["member"]["name"], "Bo Chen");
        assert_eq!(queue.body["items"][0]["drug"], "blinatumomab");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_work_list_filters_pages_and_keeps_to_the_organization() {
    for_each_backend(|url| async move {
        let (server, clinic_a, clinic_b, reviewer) = server_with_keys(&url).await;
        let mut a_ids = Vec::new();
        for n in 0..3 {
            let r = server
                .submitted(
                    &clinic_a,
                    "masshealth",
                    for_member("E01", &format!("A-{n}"), "Ana Diaz"),
                )
                .await;
            a_ids.push(r["id"].as_str().unwrap().to_string());
        }
        let review = server
            .submitted(
                &clinic_a,
                "masshealth",
                for_member("E12", "A-9", "Carla Gómez"),
            )
            .await;
        let review_id = review["id"].as_str().unwrap().to_string();
        let b = server
            .submitted(&clinic_b, "masshealth", for_member("E01", "B-1", "Dan Ek"))
            .await;
        let b_id = b["id"].as_str().unwrap().to_string();

        // A clinic sees its own, newest first, whatever organization it names.
        let mine = server.get("/v1/requests", &clinic_a).await;
        assert_eq!(ids(&mine.body).len(), 4);
        assert_eq!(ids(&mine.body)[0], review_id);
        assert!(!ids(&mine.body).contains(&b_id));
        let theirs = server
            .get("/v1/requests?organization=clinic-b", &clinic_a)
            .await;
        theirs.expect(200);
        assert!(ids(&theirs.body).is_empty());
        // A member of another clinic is not found by name either.
        let searched = server.get("/v1/requests?member=dan", &clinic_a).await;
        assert!(ids(&searched.body).is_empty());

        // A reviewer sees every organization's, and filters.
        let all = server.get("/v1/requests", &reviewer).await;
        assert_eq!(ids(&all.body).len(), 5);
        let b_only = server
            .get("/v1/requests?organization=clinic-b", &reviewer)
            .await;
        assert_eq!(ids(&b_only.body), std::slice::from_ref(&b_id));
        let pending = server
            .get("/v1/requests?status=pending_review", &reviewer)
            .await;
        assert_eq!(ids(&pending.body), std::slice::from_ref(&review_id));
        assert!(pending.body["items"][0]["minutes_left"].as_i64().unwrap() > 0);
        assert_eq!(pending.body["items"][0]["late"], false);
        let due_soon = server
            .get("/v1/requests?due_before=2999-01-01", &reviewer)
            .await;
        assert_eq!(ids(&due_soon.body), std::slice::from_ref(&review_id));
        let none_due = server
            .get("/v1/requests?due_before=2000-01-01T00:00:00Z", &reviewer)
            .await;
        assert!(ids(&none_due.body).is_empty());
        // By member id (exact) or part of a name, any case; `%` is a character, not a wildcard.
        let by_id = server.get("/v1/requests?member=A-1", &reviewer).await;
        assert_eq!(ids(&by_id.body), [a_ids[1].clone()]);
        let by_name = server.get("/v1/requests?member=carla", &reviewer).await;
        assert_eq!(ids(&by_name.body), std::slice::from_ref(&review_id));
        let wildcard = server.get("/v1/requests?member=%25", &reviewer).await;
        assert!(ids(&wildcard.body).is_empty());
        let drug = server
            .get("/v1/requests?drug=inotuzumab_ozogamicin", &reviewer)
            .await;
        assert!(ids(&drug.body).is_empty());

        // Pages follow one another without a gap or a repeat.
        let mut seen = Vec::new();
        let mut path = "/v1/requests?limit=2".to_string();
        loop {
            let page = server.get(&path, &reviewer).await;
            page.expect(200);
            seen.extend(ids(&page.body));
            match page.body["next"].as_str() {
                Some(next) => path = format!("/v1/requests?limit=2&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ids(&all.body));

        // Bad parameters are named; a misspelt one is not ignored.
        for (query, field) in [
            ("status=open", "status"),
            ("urgency=urgent", "urgency"),
            ("due_before=soon", "due_before"),
            ("limit=0", "limit"),
            ("after=nonsense", "after"),
            ("stauts=approved", "query"),
        ] {
            server
                .get(&format!("/v1/requests?{query}"), &reviewer)
                .await
                .expect_problem(422, field);
        }
        // Every page read is audited with the ids it showed.
        let audited = server
            .count(&format!(
                "audit_log WHERE action = 'requests.list' AND target LIKE '%{b_id}%'"
            ))
            .await;
        assert!(audited >= 2, "{audited}");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_cites_what_fails_the_request() {
    for_each_backend(|url| async move {
        let (server, clinic_a, clinic_b, reviewer) = server_with_keys(&url).await;
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        assert_eq!(reviewed["status"], "pending_review");
        let id = reviewed["id"].as_str().unwrap();
        let path = format!("/v1/requests/{id}");
        // The reviewer is offered the grounds; the clinic is not.
        let read = server.get(&path, &reviewer).await;
        let grounds = read.body["denial_grounds"].as_array().unwrap().clone();
        assert!(!grounds.is_empty());
        let ground_ids: Vec<&str> = grounds.iter().map(|g| g["id"].as_str().unwrap()).collect();
        assert!(!ground_ids.contains(&"new-to-plan-on-treatment"));
        assert!(grounds.iter().any(|g| g["status"] == "not_met"));
        let seen = server.get(&path, &clinic_a).await;
        assert_eq!(seen.body.get("denial_grounds"), None);

        // A criterion the member meets cannot be the reason for a denial.
        let refused = server
            .determine(
                &reviewer,
                id,
                "deny",
                "new-to-plan-on-treatment",
                "Not met.",
            )
            .await;
        refused.expect_problem(422, "criterion");
        assert!(
            refused.body["detail"].to_string().contains(ground_ids[0]),
            "{}",
            refused.body
        );
        let denied = server
            .determine(
                &reviewer,
                id,
                "deny",
                ground_ids[0],
                "The standard criteria are not met.",
            )
            .await;
        denied.expect(200);
        assert_eq!(denied.body["status"], "denied");
        assert_eq!(denied.body["determination"]["criterion"], ground_ids[0]);

        // The notice names who it is for, the plan, the dates, the reason, the criterion, the
        // reviewer and the appeal rights; its PDF says the same words.
        let letter = server
            .get(&format!("{path}/denial-letter"), &clinic_a)
            .await;
        letter.expect(200);
        assert_eq!(letter.body["member"]["name"], "Bo Chen");
        assert_eq!(letter.body["prescriber"]["npi"], "1234567893");
        let words = paragraphs(&letter.body);
        for part in [
            "Notice of denial from MassHealth",
            "Bo Chen (member id M-2)",
            "Dr. Lee (NPI 1234567893)",
            "We received the request",
            "The standard criteria are not met.",
            "Dr. Rivera, MD, Hematology",
            "Your right to appeal",
        ] {
            assert!(words.contains(part), "{part} not in {words}");
        }
        // Its times in the plan's zone (MassHealth: New York), not in UTC.
        assert!(words.contains(" EST") || words.contains(" EDT"), "{words}");
        let pdf = fetch(&server, &format!("{path}/denial-letter.pdf"), &clinic_a).await;
        assert_eq!(pdf.status(), 200);
        assert_eq!(pdf.headers()["content-type"], "application/pdf");
        let bytes = pdf.bytes().await.unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        let shown = priorauth_service::pdf::shown_text(&bytes).replace('\n', " ");
        for part in [
            "Notice of denial from MassHealth",
            "Bo Chen",
            "Dr. Rivera",
            "appeal",
        ] {
            assert!(shown.contains(part), "{part} not in the PDF: {shown}");
        }
        // Another organization's is not found, in either form.
        let other = server
            .get(&format!("{path}/denial-letter"), &clinic_b)
            .await;
        other.expect(404);
        let other_pdf = fetch(&server, &format!("{path}/denial-letter.pdf"), &clinic_b).await;
        assert_eq!(other_pdf.status(), 404);
        server.stop().await;
    })
    .await;
}

/// A clinician who approves a request the policy sent to review (MassHealth's case-by-case
/// review of a member new to the plan) grants no more than the policy's approval of such a
/// request: MassHealth's initial approval is for 6 months, five 42-day cycles starting in
/// them; nine asked were granted for a year. (Relapsed disease, whose label course is 9
/// cycles: a frontline course is 4, below the period's five.) Approving less than asked is an
/// approval with changes, whose notice tells the provider what was not approved: a plain
/// approval of the nine is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clinicians_approval_covers_no_more_than_the_policy_allows() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let mut asked = for_member("E12", "M-2", "Bo Chen");
        asked["request"]["cycles"] = json!(9);
        asked["diagnosis"]["disease_status"] = json!("relapsed");
        asked["request"].as_object_mut().unwrap().remove("phase");
        let reviewed = server.submitted(&clinic_a, "masshealth", asked).await;
        assert_eq!(reviewed["status"], "pending_review");
        let id = reviewed["id"].as_str().unwrap();
        server
            .determine(
                &reviewer,
                id,
                "approve",
                "new-to-plan-on-treatment",
                "On treatment before joining the plan.",
            )
            .await
            .expect_problem(422, "decision");
        let approved = server
            .post(
                &format!("/v1/requests/{id}/determination"),
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": "new-to-plan-on-treatment",
                        "reason": "On treatment before joining the plan; the policy's six months.",
                        "changes": {"cycles": 5}}),
            )
            .await;
        approved.expect(200);
        let authorization = &approved.body["authorization"];
        let start =
            priorauth_core::date::Date::parse(authorization["start"].as_str().unwrap()).unwrap();
        let six_months = start
            .inclusive_end(priorauth_core::date::Duration::Months(6))
            .unwrap();
        assert_eq!(authorization["end"], json!(six_months.to_string()));
        assert_eq!(authorization["cycles"], 5);
        assert_eq!(authorization["approved_units"], 5 * 980);
        // A change cannot lift it either.
        let other = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-3", "Cy Dale"))
            .await;
        let path = format!(
            "/v1/requests/{}/determination",
            other["id"].as_str().unwrap()
        );
        server
            .post(
                &path,
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": "new-to-plan-on-treatment",
                        "reason": "More cycles.", "changes": {"cycles": 9}}),
            )
            .await
            .expect_problem(422, "changes.cycles");
        // Nor a shorter period for a cycle's units: 980 units a day for Blincyto.
        server
            .post(
                &path,
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": "new-to-plan-on-treatment",
                        "reason": "Daily.", "changes": {"period_days": 1}}),
            )
            .await
            .expect_problem(422, "changes.period_days");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_with_changes_changes_something_within_the_policy() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        let id = reviewed["id"].as_str().unwrap();
        let determine = |changes: Value| {
            let path = format!("/v1/requests/{id}/determination");
            let body = json!({
                "decision": "approve_with_changes",
                "criterion": "new-to-plan-on-treatment",
                "reason": "One cycle now; the second on response.",
                "changes": changes,
            });
            let server = &server;
            let reviewer = reviewer.clone();
            async move { server.post(&path, &reviewer, &body).await }
        };
        // Nothing named, the terms as asked (2 cycles), or past what the policy allows.
        determine(Value::Null).await.expect_problem(422, "changes");
        determine(json!({})).await.expect_problem(422, "changes");
        determine(json!({"cycles": 2}))
            .await
            .expect_problem(422, "changes");
        determine(json!({"end": "2999-12-31"}))
            .await
            .expect_problem(422, "changes.end");
        determine(json!({"cycles": 25}))
            .await
            .expect_problem(422, "changes.cycles");
        determine(json!({"period_days": 0}))
            .await
            .expect_problem(422, "changes.period_days");
        let unchanged = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(unchanged.body["status"], "pending_review");

        let approved = determine(json!({"cycles": 1})).await;
        approved.expect(200);
        assert_eq!(
            approved.body["determination"]["decision"],
            "approve_with_changes"
        );
        assert_eq!(approved.body["authorization"]["approved_units"], 980);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_takes_a_request_and_the_queue_shows_who_has_it() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let (_, colleague) = server
            .key("payer", Role::Reviewer, "Dr. Okafor", "MD, Oncology")
            .await;
        let queued = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        let id = queued["id"].as_str().unwrap();
        let path = format!("/v1/requests/{id}/assignment");
        server
            .post(&path, &clinic_a, &json!({"assign": true}))
            .await
            .expect(403);
        server
            .post(&path, &reviewer, &json!({"assign": "yes"}))
            .await
            .expect_problem(422, "assign");
        let taken = server
            .post(&path, &reviewer, &json!({"assign": true}))
            .await;
        taken.expect(200);
        assert_eq!(taken.body["assigned_to"]["me"], true);

        let mine = server.get("/v1/queue?assigned=me", &reviewer).await;
        assert_eq!(ids(&mine.body), [id.to_string()]);
        assert_eq!(mine.body["items"][0]["assigned_to"]["name"], "Dr. Rivera");
        let theirs = server.get("/v1/queue", &colleague).await;
        assert_eq!(
            theirs.body["items"][0]["assigned_to"],
            json!({"name": "Dr. Rivera", "me": false})
        );
        let colleague_mine = server.get("/v1/queue?assigned=me", &colleague).await;
        assert!(ids(&colleague_mine.body).is_empty());
        let untaken = server.get("/v1/queue?assigned=nobody", &colleague).await;
        assert!(ids(&untaken.body).is_empty());
        server
            .get("/v1/queue?assigned=them", &colleague)
            .await
            .expect_problem(422, "assigned");

        // Given back, it is nobody's again.
        server
            .post(&path, &reviewer, &json!({"assign": false}))
            .await
            .expect(200);
        let untaken = server.get("/v1/queue?assigned=nobody", &colleague).await;
        assert_eq!(ids(&untaken.body), [id.to_string()]);

        // Decided, it can no longer be taken.
        let ground = first_ground(&server, id, &reviewer).await;
        server
            .determine(&reviewer, id, "deny", &ground, "Not met.")
            .await
            .expect(200);
        server
            .post(&path, &reviewer, &json!({"assign": true}))
            .await
            .expect(409);
        // Every assignment is bound into the audit with the request.
        let report = priorauth_service::store::verify_audit(server.store())
            .await
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_and_the_authorizations_export_as_csv_without_formulas() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        server
            .submitted(
                &clinic_a,
                "masshealth",
                for_member("E12", "M-2", "=HYPERLINK(\"http://evil\")"),
            )
            .await;
        let approved = server
            .submitted(
                &clinic_a,
                "masshealth",
                for_member("E01", "M-1", "Ana Diaz"),
            )
            .await;
        let number = approved["authorization"]["number"].as_str().unwrap();
        let queue = fetch(&server, "/v1/queue?format=csv", &reviewer).await;
        assert_eq!(queue.status(), 200);
        assert_eq!(queue.headers()["content-type"], "text/csv; charset=utf-8");
        let text = queue.text().await.unwrap();
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("request,member id,member,drug,clinic")
        );
        let row = lines.next().unwrap();
        // The name a clinic sent cannot run as a formula in the payer's spreadsheet.
        assert!(
            row.contains(",\"'=HYPERLINK(\"\"http://evil\"\")\",blinatumomab,clinic-a,"),
            "{row}"
        );

        let mine = fetch(&server, "/v1/authorizations?format=csv", &clinic_a).await;
        assert_eq!(mine.status(), 200);
        let text = mine.text().await.unwrap();
        assert!(text.starts_with("number,request,drug"), "{text}");
        assert!(text.contains(number));
        server
            .get("/v1/queue?format=xlsx", &reviewer)
            .await
            .expect_problem(422, "format");
        server
            .get("/v1/authorizations?format=pdf", &clinic_a)
            .await
            .expect_problem(422, "format");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_asks_the_clinic_in_words_and_the_answers_come_back_to_review() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let queued = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        let id = queued["id"].as_str().unwrap();
        let path = format!("/v1/requests/{id}");
        let ask = format!("{path}/information-request");
        let today = support::days_after_receipt(0);
        let question = json!({
            "questions": ["When did the member start blinatumomab, and under which plan?"],
            "answer_by": today,
        });
        // The clinic cannot answer what nobody asked.
        server
            .patch(&path, &clinic_a, &json!({"answers": ["Unasked."]}))
            .await
            .expect(409);
        server.post(&ask, &clinic_a, &question).await.expect(403);
        for (body, field) in [
            (json!({"questions": [], "answer_by": today}), "questions"),
            (json!({"questions": ["  "], "answer_by": today}), "questions"),
            (json!({"questions": ["Why?"], "answer_by": "2000-01-01"}), "answer_by"),
            (json!({"questions": ["Why?"], "answer_by": "2999-01-01"}), "answer_by"),
        ] {
            server.post(&ask, &reviewer, &body).await.expect_problem(422, field);
        }
        let asked = server.post(&ask, &reviewer, &question).await;
        asked.expect(200);
        assert_eq!(asked.body["status"], "pending_information");
        // The clinic sees the question, in its list and on the request.
        let waiting = server
            .get("/v1/requests?status=pending_information", &clinic_a)
            .await;
        assert_eq!(ids(&waiting.body), [id.to_string()]);
        let read = server.get(&path, &clinic_a).await;
        let last = read.body["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "information_requested");
        assert_eq!(last["questions"][0], question["questions"][0]);
        assert_eq!(last["answer_by"], today.as_str());
        // Asked once: a second question waits for the answers.
        server.post(&ask, &reviewer, &question).await.expect(409);

        // Answers in words beside a fact; the request is back in review, for the reviewer.
        server
            .patch(&path, &clinic_a, &json!({"answers": [42]}))
            .await
            .expect_problem(422, "answers");
        let answered = server
            .patch(
                &path,
                &clinic_a,
                &json!({"answers": ["Started 2026-10-02 under her previous plan; letter attached to the chart."]}),
            )
            .await;
        answered.expect(200);
        assert_eq!(answered.body["status"], "pending_review");
        let kinds: Vec<&str> = answered.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["submitted", "information_requested", "information_given", "completed"]
        );
        let queue = server.get("/v1/queue", &reviewer).await;
        assert_eq!(ids(&queue.body), [id.to_string()]);
        let report = priorauth_service::store::verify_audit(server.store())
            .await
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_has_a_notice_that_states_what_it_covers() {
    for_each_backend(|url| async move {
        let (server, clinic_a, clinic_b, reviewer) = server_with_keys(&url).await;
        let approved = server
            .submitted(&clinic_a, "masshealth", for_member("E01", "M-1", "Ana Diaz"))
            .await;
        let id = approved["id"].as_str().unwrap();
        let number = approved["authorization"]["number"].as_str().unwrap();
        let notice = server
            .get(&format!("/v1/requests/{id}/approval-notice"), &clinic_a)
            .await;
        notice.expect(200);
        assert_eq!(notice.body["authorization"], number);
        let words = paragraphs(&notice.body);
        for part in [
            "Notice of approval from MassHealth",
            "Ana Diaz (member id M-1)",
            &format!("Authorization {number} covers blinatumomab (J9039): 980 units every 42 days, 2 cycles, 1960 units in all"),
            "met the plan's policy criteria",
        ] {
            assert!(words.contains(part), "{part} not in {words}");
        }
        let pdf = fetch(&server, &format!("/v1/requests/{id}/approval-notice.pdf"), &clinic_a).await;
        assert_eq!(pdf.status(), 200);
        let shown =
            priorauth_service::pdf::shown_text(&pdf.bytes().await.unwrap()).replace('\n', " ");
        assert!(shown.contains(number), "{shown}");
        server
            .get(&format!("/v1/requests/{id}/approval-notice"), &clinic_b)
            .await
            .expect(404);

        // An approval with changes states the change and the right to appeal it.
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-2", "Bo Chen"))
            .await;
        let rid = reviewed["id"].as_str().unwrap();
        server
            .get(&format!("/v1/requests/{rid}/approval-notice"), &clinic_a)
            .await
            .expect(409);
        server
            .post(
                &format!("/v1/requests/{rid}/determination"),
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": "new-to-plan-on-treatment",
                        "reason": "One cycle, then a response assessment.", "changes": {"cycles": 1}}),
            )
            .await
            .expect(200);
        let changed = server
            .get(&format!("/v1/requests/{rid}/approval-notice"), &clinic_a)
            .await;
        let words = changed.body["paragraphs"].to_string();
        assert!(words.contains("1 cycles, 980 units in all"), "{words}");
        assert!(words.contains("A clinician changed what was asked: One cycle, then a response assessment. Decided by Dr. Rivera, MD, Hematology."), "{words}");
        assert!(words.contains("Your right to appeal the change"), "{words}");
        server.stop().await;
    })
    .await;
}

/// A small PDF: what a clinic's note is, by its first bytes.
fn note_pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_checked_by_their_content_stored_and_every_read_audited() {
    for_each_backend(|url| async move {
        let (server, clinic_a, clinic_b, reviewer) = server_with_keys(&url).await;
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-7", "Cy Park"))
            .await;
        let id = reviewed["id"].as_str().unwrap();
        let files = format!("/v1/requests/{id}/attachments");
        let titled = format!("{files}?title=Clinic%20note%202026-11-30");

        let sent = server
            .upload(&titled, &clinic_a, "application/pdf", note_pdf(), &[])
            .await;
        sent.expect(201);
        assert_eq!(sent.body["n"], 1);
        assert_eq!(sent.body["title"], "Clinic note 2026-11-30");
        assert_eq!(sent.body["bytes"], note_pdf().len());
        assert_eq!(sent.body["added_by"], "Clinic A EHR");

        // Each fault named: no title, a type not taken, a file that is not what it says, an
        // empty file, a file over the limit.
        server
            .upload(&files, &clinic_a, "application/pdf", note_pdf(), &[])
            .await
            .expect_problem(422, "title");
        server
            .upload(&titled, &clinic_a, "text/html", b"<script>".to_vec(), &[])
            .await
            .expect_problem(422, "Content-Type");
        server
            .upload(
                &titled,
                &clinic_a,
                "application/pdf",
                b"<html><script>".to_vec(),
                &[],
            )
            .await
            .expect_problem(422, "Content-Type");
        server
            .upload(&titled, &clinic_a, "image/png", Vec::new(), &[])
            .await
            .expect_problem(422, "Content-Type");
        let mut large = note_pdf();
        large.resize(4 * 1024 * 1024 + 1, b' ');
        server
            .upload(&titled, &clinic_a, "application/pdf", large, &[])
            .await
            .expect(413);
        // Another organization cannot send to it, or read from it.
        server
            .upload(&titled, &clinic_b, "application/pdf", note_pdf(), &[])
            .await
            .expect(404);
        let other = fetch(&server, &format!("{files}/1"), &clinic_b).await;
        assert_eq!(other.status(), 404);

        // A retry with its key is the first answer again, not a second file.
        let retry = [("Idempotency-Key", "note-2")];
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let first = server
            .upload(&titled, &reviewer, "image/png", png.clone(), &retry)
            .await;
        first.expect(201);
        let again = server
            .upload(&titled, &reviewer, "image/png", png, &retry)
            .await;
        again.expect(200);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body["n"], 2);

        // Listed on the request for both sides; the bytes come back as sent, not to be sniffed.
        for key in [&clinic_a, &reviewer] {
            let read = server.get(&format!("/v1/requests/{id}"), key).await;
            let listed = read.body["attachments"].as_array().unwrap();
            assert_eq!(listed.len(), 2, "{}", read.body);
            assert_eq!(listed[0]["content_type"], "application/pdf");
        }
        let file = fetch(&server, &format!("{files}/1"), &reviewer).await;
        assert_eq!(file.status(), 200);
        assert_eq!(file.headers()["content-type"], "application/pdf");
        assert_eq!(file.headers()["x-content-type-options"], "nosniff");
        assert_eq!(file.bytes().await.unwrap().to_vec(), note_pdf());
        assert_eq!(
            fetch(&server, &format!("{files}/9"), &reviewer)
                .await
                .status(),
            404
        );
        assert_eq!(
            server
                .count("audit_log WHERE action = 'request.attachment.read'")
                .await,
            1
        );
        assert_eq!(
            server
                .count("audit_log WHERE action = 'request.attachment.add'")
                .await,
            2
        );

        // A decided request takes files with an appeal.
        let ground = first_ground(&server, id, &reviewer).await;
        server
            .determine(&reviewer, id, "deny", &ground, "Not met.")
            .await
            .expect(200);
        server
            .upload(&titled, &clinic_a, "application/pdf", note_pdf(), &[])
            .await
            .expect(409);

        // The files are part of the request's audited state: an edit to one is found.
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        sqlx::query("UPDATE request_attachments SET data = 'JVBERi0xLjQK' WHERE n = 1")
            .execute(&server.store().pool)
            .await
            .unwrap();
        let report = verify_audit(server.store()).await.unwrap();
        assert!(!report.problems.is_empty(), "an edited file went unnoticed");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reviewers_comment_on_criteria_and_the_clinic_does_not_read_them() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-8", "Di Ng"))
            .await;
        let id = reviewed["id"].as_str().unwrap();
        let path = format!("/v1/requests/{id}/comments");
        let ground = first_ground(&server, id, &reviewer).await;
        let read = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(read.body["comments"], json!([]));

        let made = server
            .post(
                &path,
                &reviewer,
                &json!({"criterion": ground, "text": "MRD by flow only; asked the lab for PCR."}),
            )
            .await;
        made.expect(201);
        assert_eq!(made.body["comments"][0]["criterion"], ground.as_str());
        assert_eq!(made.body["comments"][0]["by"], "Dr. Rivera");
        server
            .post(&path, &reviewer, &json!({"text": "Called the office."}))
            .await
            .expect(201);

        server
            .post(
                &path,
                &reviewer,
                &json!({"criterion": "no-such", "text": "x"}),
            )
            .await
            .expect_problem(422, "criterion");
        server
            .post(&path, &reviewer, &json!({"text": "  "}))
            .await
            .expect_problem(422, "text");
        server
            .post(&path, &clinic_a, &json!({"text": "Please approve."}))
            .await
            .expect(403);

        let seen = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(seen.body["comments"].as_array().unwrap().len(), 2);
        assert_eq!(seen.body["comments"][1]["criterion"], Value::Null);
        let clinic = server.get(&format!("/v1/requests/{id}"), &clinic_a).await;
        assert_eq!(clinic.body.get("comments"), None, "{}", clinic.body);
        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_determination_is_previewed_as_the_notice_it_sends_and_nothing_is_recorded() {
    for_each_backend(|url| async move {
        let (server, clinic_a, _, reviewer) = server_with_keys(&url).await;
        let reviewed = server
            .submitted(&clinic_a, "masshealth", for_member("E12", "M-9", "Ed Roy"))
            .await;
        let id = reviewed["id"].as_str().unwrap();
        let preview = format!("/v1/requests/{id}/determination/preview");
        let ground = first_ground(&server, id, &reviewer).await;
        let denial = json!({"decision": "deny", "criterion": ground, "reason": "The MRD result is not given."});

        // Checked as the determination is.
        server
            .post(
                &preview,
                &reviewer,
                &json!({"decision": "deny", "criterion": "new-to-plan-on-treatment", "reason": "x"}),
            )
            .await
            .expect_problem(422, "criterion");
        server.post(&preview, &clinic_a, &denial).await.expect(403);

        let shown = server.post(&preview, &reviewer, &denial).await;
        shown.expect(200);
        assert_eq!(shown.body["recorded"], false);
        let words = paragraphs(&shown.body["notice"]);
        for part in ["Notice of denial from MassHealth", "Ed Roy (member id M-9)", "The MRD result is not given.", "Dr. Rivera, MD, Hematology", "Your right to appeal"] {
            assert!(words.contains(part), "{part} not in {words}");
        }
        // Nothing recorded: still in review, no determination, no authorization.
        let after = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(after.body["status"], "pending_review");
        assert_eq!(server.count("determinations").await, 0);
        assert_eq!(
            server
                .count("audit_log WHERE action = 'request.determination.preview'")
                .await,
            1
        );

        // An approval with changes: the changed terms, its number not yet drawn.
        let changed = server
            .post(
                &preview,
                &reviewer,
                &json!({"decision": "approve_with_changes", "criterion": ground, "reason": "One cycle now; more on response.", "changes": {"cycles": 1}}),
            )
            .await;
        changed.expect(200);
        let words = paragraphs(&changed.body["notice"]);
        assert!(words.contains("1 cycles"), "{words}");
        assert!(words.contains("(its number is given when it is recorded)"), "{words}");
        assert!(!words.contains("PA-"), "{words}");
        assert_eq!(server.count("authorizations").await, 0);

        // The notice then sent says what the preview said (save the time of decision).
        server
            .post(&format!("/v1/requests/{id}/determination"), &reviewer, &denial)
            .await
            .expect(200);
        let letter = server
            .get(&format!("/v1/requests/{id}/denial-letter"), &clinic_a)
            .await;
        let sent: Vec<&Value> = letter.body["paragraphs"].as_array().unwrap().iter().collect();
        let previewed: Vec<&Value> = shown.body["notice"]["paragraphs"].as_array().unwrap().iter().collect();
        assert_eq!(sent.len(), previewed.len());
        for (a, b) in sent.iter().zip(&previewed) {
            if !a.as_str().unwrap().starts_with("We received") {
                assert_eq!(a, b);
            }
        }
        server.stop().await;
    })
    .await;
}
