//! What the service authorizes, tried as a clinic that wants more than the policy allows,
//! on SQLite and (with `DATABASE_URL`) PostgreSQL: the stored authorization is the engine's
//! quantity, never the request's; periods start on the day of receipt; a completion cannot
//! rewrite what was given or taken from the records; contradictions are bad input.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use priorauth_service::keys::Role;
use serde_json::{Value, json};
use support::{Server, case, days_after_receipt, for_each_backend};

async fn server_with_submitter(url: &str) -> (Server, String) {
    let server = Server::start(url).await;
    let (_, submitter) = server
        .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
        .await;
    (server, submitter)
}

/// The stored authorization of an approval equals the engine's granted quantity.
fn assert_authorization_is_the_engines(answer: &Value) {
    let authorization = &answer["authorization"];
    let quantity = &answer["decision"]["quantity"];
    assert_eq!(
        authorization["units_per_period"], quantity["units"],
        "{answer}"
    );
    assert_eq!(authorization["cycles"], quantity["cycles"], "{answer}");
    assert_eq!(
        authorization["approved_units"], quantity["total_units"],
        "{answer}"
    );
    assert!(
        quantity["units"].as_u64().unwrap()
            <= quantity["ceiling"]["units_per_cycle"].as_u64().unwrap()
            && quantity["cycles"].as_u64().unwrap()
                <= quantity["ceiling"]["cycles"].as_u64().unwrap(),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_authorization_is_the_policys_quantity_not_the_requests() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;

        // 99,999 units per 42 days: MassHealth sends doses outside its limits to a clinician
        // (a recommended denial); nothing is authorized.
        let mut greedy = case("E01");
        greedy["request"]["units"] = json!(99_999);
        let answer = server.submitted(&submitter, "masshealth", greedy).await;
        assert_eq!(answer["status"], "pending_review", "{answer}");
        assert!(answer["authorization"].is_null(), "{answer}");
        assert_eq!(answer["decision"]["reasons"][0]["id"], "units-per-cycle");

        // No units: the policy's maximum, said so, for the cycles asked.
        let mut silent = case("E01");
        silent["request"].as_object_mut().unwrap().remove("units");
        let answer = server.submitted(&submitter, "masshealth", silent).await;
        assert_eq!(answer["status"], "approved", "{answer}");
        assert_eq!(
            answer["decision"]["quantity"]["units_basis"],
            "policy_maximum"
        );
        assert_eq!(answer["authorization"]["approved_units"], 1960);
        assert_authorization_is_the_engines(&answer);

        // 1,960 units per 84 days of 42-day cycles is 980 a cycle, not 1,960.
        let mut rate = case("E01");
        rate["request"]["units"] = json!(1960);
        rate["request"]["units_period_days"] = json!(84);
        let answer = server.submitted(&submitter, "eocco-medicaid", rate).await;
        assert_eq!(answer["status"], "approved", "{answer}");
        assert_eq!(answer["authorization"]["approved_units"], 1960);
        assert_authorization_is_the_engines(&answer);

        // Nine cycles where EOCCO covers five: five are authorized.
        let mut long = case("E01");
        long["request"]["cycles"] = json!(9);
        let answer = server.submitted(&submitter, "eocco-medicaid", long).await;
        assert_eq!(answer["status"], "approved", "{answer}");
        assert_eq!(answer["authorization"]["cycles"], 5);
        assert_eq!(answer["authorization"]["approved_units"], 4900);
        assert_eq!(answer["decision"]["quantity"]["requested_cycles"], 9);
        assert_authorization_is_the_engines(&answer);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_period_starts_on_the_day_of_receipt() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        // Facts dated 90 days before receipt, 30, the day of receipt and the day after (a
        // clinic in a time zone ahead): the period starts on receipt whatever they say.
        for days in [-90, -30, 0, 1] {
            let mut dated = case("E01");
            dated["request"]["date"] = json!(days_after_receipt(days));
            let answer = server.submitted(&submitter, "masshealth", dated).await;
            assert_eq!(answer["status"], "approved", "{answer}");
            assert_eq!(answer["authorization"]["start"], days_after_receipt(0));
        }
        server.stop().await;
    })
    .await;
}

/// `request.date` is the clinical date of the facts and lies within 90 days before receipt
/// (at most a day after it): a date a year before receipt, or a week after it, is bad input
/// naming the field, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_date_outside_the_window_before_receipt_is_bad_input() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        for (days, says) in [
            (-365, "365 days before"),
            (-91, "91 days before"),
            (7, "7 days after"),
            (2, "2 days after"),
        ] {
            let mut dated = case("E01");
            dated["request"]["date"] = json!(days_after_receipt(days));
            let reply = server.submit(&submitter, "masshealth", dated).await;
            reply.expect_problem(422, "case.request.date");
            assert!(reply.body.to_string().contains(says), "{}", reply.body);
        }
        let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM requests")
            .fetch_one(&server.state.service.store.pool)
            .await
            .unwrap();
        assert_eq!(stored, 0, "a rejected request is not stored");
        // A completion cannot bring in such a date either: the request was received when it
        // was submitted.
        let mut undated = case("E01");
        undated["request"].as_object_mut().unwrap().remove("date");
        // (EOCCO's age limit needs the date.)
        let pending = server
            .submitted(&submitter, "eocco-medicaid", undated)
            .await;
        assert_eq!(pending["status"], "pending_information", "{pending}");
        let path = format!("/v1/requests/{}", pending["id"].as_str().unwrap());
        let completion = server
            .patch(
                &path,
                &submitter,
                &json!({"request": {"date": days_after_receipt(-365)}}),
            )
            .await;
        completion.expect_problem(422, "request.date");
        let completion = server
            .patch(
                &path,
                &submitter,
                &json!({"request": {"date": days_after_receipt(-5)}}),
            )
            .await;
        completion.expect(200);
        assert_eq!(completion.body["status"], "approved", "{}", completion.body);
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contradictions_and_absurd_values_are_bad_input_naming_the_field() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let cases: [(&str, Value, &str); 4] = [
            ("request.hcpcs", json!("J9229"), "case.request.hcpcs"),
            (
                "request.cycles",
                json!(4_294_967_295u64),
                "case.request.cycles",
            ),
            ("patient.height_cm", json!(1e-300), "case.patient.height_cm"),
            ("request.first_cycle", json!(1), "case.request.first_cycle"),
        ];
        for (key, value, field) in cases {
            let mut bad = case("E01");
            let (section, name) = key.split_once('.').unwrap();
            bad[section][name] = value;
            if key == "request.first_cycle" {
                // Four cycles given, yet the request says it starts the course.
                bad["history"]["blinatumomab_cycles"] = json!(4);
            }
            server
                .submit(&submitter, "masshealth", bad)
                .await
                .expect_problem(422, field);
        }

        // A request that continues an authorization is a renewal, whatever it declares.
        let first = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = first["authorization"]["number"].as_str().unwrap();
        let mut initial = case("E10");
        initial["request"]["kind"] = json!("initial");
        server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": initial, "renews": number}),
            )
            .await
            .expect_problem(422, "case.request.kind");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_fills_only_missing_facts() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut partial = case("E02");
        partial["diagnosis"]["mrd_percent"] = Value::Null;
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", partial)
            .await;
        assert_eq!(incomplete["status"], "pending_information", "{incomplete}");
        let path = format!("/v1/requests/{}", incomplete["id"].as_str().unwrap());
        // A fact the request gave cannot be rewritten on the way.
        server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}, "request": {"units": 99_999}}),
            )
            .await
            .expect_problem(422, "request.units");
        server
            .patch(
                &path,
                &submitter,
                &json!({"history": {"blinatumomab_cycles": 0}}),
            )
            .await
            .expect_problem(422, "history.blinatumomab_cycles");
        // The missing fact alone completes it.
        let completed = server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}}),
            )
            .await;
        completed.expect(200);
        assert_eq!(completed.body["status"], "approved", "{}", completed.body);
        assert_authorization_is_the_engines(&completed.body);

        // A member a completion names is one the payer's eligibility holds, once loaded (a
        // request sent before it was loaded may name none).
        let mut unnamed = case("E02");
        unnamed["diagnosis"]["mrd_percent"] = Value::Null;
        assert!(unnamed["patient"].get("member_id").is_none());
        let incomplete = server
            .submitted(&submitter, "eocco-medicaid", unnamed)
            .await;
        assert_eq!(incomplete["status"], "pending_information", "{incomplete}");
        support::import_members(&server, "M-600,eocco-medicaid,2020-01-01,,\n").await;
        let path = format!("/v1/requests/{}", incomplete["id"].as_str().unwrap());
        server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}, "patient": {"member_id": "m-600"}}),
            )
            .await
            .expect_problem(422, "patient.member_id");
        let completed = server
            .patch(
                &path,
                &submitter,
                &json!({"diagnosis": {"mrd_percent": 0.8}, "patient": {"member_id": "M-600"}}),
            )
            .await;
        completed.expect(200);
        assert_eq!(completed.body["status"], "approved", "{}", completed.body);
        server.stop().await;
    })
    .await;
}

/// E01 for member `member` under a plan of another line of business than MassHealth's.
fn for_member(name: &str, member: &str) -> Value {
    let mut case = case(name);
    case["patient"]["member_id"] = json!(member);
    case["request"]
        .as_object_mut()
        .unwrap()
        .remove("line_of_business");
    case
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_members_earlier_authorizations_are_the_records_not_what_the_request_declares() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let (_, other_clinic) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        // EOCCO: "Initial coverage … for 30 weeks for a total of five cycles".
        let mut first = for_member("E01", "M-100");
        first["request"]["cycles"] = json!(5);
        let approved = server
            .submitted(&submitter, "eocco-medicaid", first.clone())
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        assert_eq!(approved["authorization"]["cycles"], 5, "{approved}");

        // The same member asks again as if nothing were on record, from this clinic and from
        // another: the records place the request in the course EOCCO's initial approval
        // started, and EOCCO refuses a second initial approval within it (met: no approval).
        for key in [&submitter, &other_clinic] {
            let mut again = first.clone();
            again["history"]["authorizations"] = json!([]);
            let answer = server.submitted(key, "eocco-medicaid", again).await;
            assert_ne!(answer["status"], "approved", "{answer}");
            assert!(answer["authorization"].is_null(), "{answer}");
            let stored = &answer["decision"];
            assert!(
                stored.to_string().contains("no-authorization-in-course"),
                "{answer}"
            );
        }
        assert_eq!(server.count("authorizations").await, 1);

        // Another member has no course on record (not met: approved as the first was).
        let other = server
            .submitted(&submitter, "eocco-medicaid", {
                let mut c = first.clone();
                c["patient"]["member_id"] = json!("M-200");
                c
            })
            .await;
        assert_eq!(other["status"], "approved", "{other}");

        // A request that names no member cannot be matched to a course (unknown): it is
        // decided on what it declares, as before members were recorded.
        let mut anonymous = first.clone();
        anonymous["patient"]
            .as_object_mut()
            .unwrap()
            .remove("member_id");
        let answer = server
            .submitted(&submitter, "eocco-medicaid", anonymous)
            .await;
        assert_eq!(answer["status"], "approved", "{answer}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_of_one_member_are_decided_on_each_others_records() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut case = for_member("E01", "M-300");
        case["request"]["cycles"] = json!(5);
        let server = std::sync::Arc::new(server);
        let mut sent = Vec::new();
        for _ in 0..6 {
            let (server, submitter, case) = (server.clone(), submitter.clone(), case.clone());
            sent.push(tokio::spawn(async move {
                server.submitted(&submitter, "eocco-medicaid", case).await
            }));
        }
        let mut approved = 0;
        for answer in sent {
            if answer.await.unwrap()["status"] == "approved" {
                approved += 1;
            }
        }
        assert_eq!(approved, 1);
        assert_eq!(server.count("authorizations").await, 1);
    })
    .await;
}

/// Once the payer's eligibility is loaded, a `/v1` request's declared member is the payer's:
/// an id no record holds (another spelling of a member's included, which would start the
/// member's course afresh), a member of another plan, or one not enrolled on the day of
/// receipt (whatever date the request gives) is refused naming the field; the member as the
/// records spell it is decided (met).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_member_is_one_the_eligibility_holds_once_it_is_loaded() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut first = for_member("E01", "M-500");
        first["request"]["cycles"] = json!(5);
        // Before any eligibility is loaded, any id is taken.
        let approved = server
            .submitted(&submitter, "eocco-medicaid", first.clone())
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        // M-502's enrolment ended yesterday.
        support::import_members(
            &server,
            &format!(
                "M-500,eocco-medicaid,2020-01-01,,\nM-501,eocco-medicaid,2020-01-01,2020-12-31,\nM-502,eocco-medicaid,2020-01-01,{},\n",
                support::days_after_receipt(-1)
            ),
        )
        .await;
        let with_member = |member: &str| {
            let mut case = first.clone();
            case["patient"]["member_id"] = json!(member);
            case
        };
        for unknown in ["m-500", "M-5000"] {
            server
                .submit(&submitter, "eocco-medicaid", with_member(unknown))
                .await
                .expect_problem(422, "case.patient.member_id");
        }
        server
            .submit(&submitter, "eocco-medicaid", with_member("M-501"))
            .await
            .expect_problem(422, "case.patient.member_id");
        // Dated back to a day M-502 was enrolled: what is authorized starts on the day of
        // receipt, when the member no longer is.
        let mut back_dated = with_member("M-502");
        back_dated["request"]["date"] = json!(support::days_after_receipt(-3));
        server
            .submit(&submitter, "eocco-medicaid", back_dated)
            .await
            .expect_problem(422, "case.patient.member_id");
        // Leaving the member out would start the course afresh: a second initial approval.
        let mut nameless = first.clone();
        nameless["patient"]
            .as_object_mut()
            .unwrap()
            .remove("member_id");
        server
            .submit(&submitter, "eocco-medicaid", nameless.clone())
            .await
            .expect_problem(422, "case.patient.member_id");
        nameless["patient"]["member_id"] = Value::Null;
        server
            .submit(&submitter, "eocco-medicaid", nameless)
            .await
            .expect_problem(422, "case.patient.member_id");
        let mut elsewhere = with_member("M-500");
        elsewhere["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        server
            .submit(&submitter, "express-scripts-medicare-advantage", elsewhere)
            .await
            .expect_problem(422, "plan");
        // The member as the records spell it (spaces around aside): decided on the course.
        let again = server
            .submitted(&submitter, "eocco-medicaid", with_member(" M-500 "))
            .await;
        assert_ne!(again["status"], "approved", "{again}");
        assert_eq!(server.count("authorizations").await, 1);
        // The records' birth date outranks the case's: a 60-year-old member declared a
        // child is refused, naming the field; the recorded date is decided.
        let born = first["patient"]["birth_date"].as_str().unwrap().to_string();
        support::import_members(&server, &format!("M-503,eocco-medicaid,2020-01-01,,{born}\n"))
            .await;
        let mut younger = with_member("M-503");
        younger["patient"]["birth_date"] = json!("2012-02-11");
        server
            .submit(&submitter, "eocco-medicaid", younger)
            .await
            .expect_problem(422, "case.patient.birth_date");
        let recorded = server
            .submitted(&submitter, "eocco-medicaid", with_member("M-503"))
            .await;
        assert_eq!(recorded["status"], "approved", "{recorded}");
    })
    .await;
}

/// Eligibility imported by another process beside a running service (the CLI's `members
/// import`) counts within a second: a request naming no member is refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eligibility_imported_beside_a_running_service_counts_within_a_second() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let nameless = case("E02");
        assert!(nameless["patient"].get("member_id").is_none());
        server
            .submitted(&submitter, "eocco-medicaid", nameless.clone())
            .await;
        sqlx::query(
            "INSERT INTO members (member_id, plan, effective_from, effective_to, birth_date, imported_at) \
             VALUES ('M-900', 'eocco-medicaid', '2020-01-01', NULL, NULL, 0)",
        )
        .execute(&server.store().pool)
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        server
            .submit(&submitter, "eocco-medicaid", nameless)
            .await
            .expect_problem(422, "case.patient.member_id");
        server.stop().await;
    })
    .await;
}

/// The cycles of the course each authorization of a member covers, in order.
async fn cycles_of(server: &Server, member: &str) -> Vec<i64> {
    use sqlx::Row;
    let rows = sqlx::query(&format!(
        "SELECT first_cycle, cycles FROM authorizations WHERE request_id IN \
         (SELECT id FROM requests WHERE member_id = '{member}') ORDER BY first_cycle"
    ))
    .fetch_all(&server.store().pool)
    .await
    .unwrap();
    rows.iter()
        .flat_map(|row| {
            let first = row.try_get::<i64, _>("first_cycle").unwrap();
            first..first + row.try_get::<i64, _>("cycles").unwrap()
        })
        .collect()
}

/// A renewal decided after it was sent (completed, or approved by a clinician) is placed by
/// the member's records as they stand then: an initial request approved meanwhile for cycles
/// 3-9 left a renewal of cycles 1-2, completed afterwards, authorized for cycles 3-9 again
/// (16 cycles of a 9-cycle course). Each cycle of the course is authorized once at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_decided_later_is_placed_by_the_records_as_they_stand_then() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Reviewer", "MD")
            .await;
        let plan = "express-scripts-medicare-advantage";
        for (member, by_clinician) in [("M-800", false), ("M-801", true)] {
            let first = for_member("E01", member);
            let approved = server.submitted(&submitter, plan, first.clone()).await;
            assert_eq!(approved["status"], "approved", "{approved}");
            let number = approved["authorization"]["number"].as_str().unwrap();
            // The renewal of cycles 3-9, waiting: for a fact, or for a clinician.
            let mut renewal = first.clone();
            renewal["request"]["kind"] = json!("renewal");
            renewal["request"]["cycles"] = json!(7);
            if by_clinician {
                renewal["request"]["dose"]["value"] = json!(30);
            } else {
                renewal["prescriber"]
                    .as_object_mut()
                    .unwrap()
                    .remove("specialty");
            }
            let waiting = server
                .post(
                    "/v1/requests",
                    &submitter,
                    &json!({"plan": plan, "case": renewal, "renews": number}),
                )
                .await;
            waiting.expect(201);
            let expected = if by_clinician {
                "pending_review"
            } else {
                "pending_information"
            };
            assert_eq!(waiting.body["status"], expected, "{}", waiting.body);
            let id = waiting.body["id"].as_str().unwrap();
            // Meanwhile an initial request of the member is placed after cycles 1-2.
            let mut again = first.clone();
            again["request"]["cycles"] = json!(7);
            let meanwhile = server.submitted(&submitter, plan, again).await;
            assert_eq!(meanwhile["status"], "approved", "{meanwhile}");
            // Cycles 1-2, then 3-8 (Express Scripts' 12 months hold 6 from cycle 3).
            let before = cycles_of(&server, member).await;
            assert_eq!(before, (1..=8).collect::<Vec<_>>());
            // The renewal, decided now, is placed after them: cycle 9 at most, never again
            // cycles 3-8 (it was 3-9: 16 cycles of a 9-cycle course).
            if by_clinician {
                let reply = server
                    .determine(
                        &reviewer,
                        id,
                        "approve",
                        "",
                        "the dose is right for this patient",
                    )
                    .await;
                assert!(reply.status < 500, "{}", reply.body);
            } else {
                let reply = server
                    .patch(
                        &format!("/v1/requests/{id}"),
                        &submitter,
                        &json!({"prescriber": {"specialty": "medical_oncology"}}),
                    )
                    .await;
                reply.expect(200);
            }
            let after = cycles_of(&server, member).await;
            assert!(
                after == before || after == (1..=9).collect::<Vec<_>>(),
                "{member}: {after:?}"
            );
        }
        server.stop().await;
    })
    .await;
}

/// Two services on one PostgreSQL database take turns on a member's course too (the course is
/// held on the database as well as in each process): six requests of one member sent at the
/// same moment, three to each, give one approval. (SQLite: one service has the file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_of_one_member_sent_to_two_services_on_one_database_are_decided_in_turn() {
    for_each_backend(|url| async move {
        if url.starts_with("sqlite:") {
            return;
        }
        let (first, submitter) = server_with_submitter(&url).await;
        let servers = [
            std::sync::Arc::new(first),
            std::sync::Arc::new(Server::start(&url).await),
        ];
        let mut case = for_member("E01", "M-310");
        case["request"]["cycles"] = json!(5);
        let mut sent = Vec::new();
        for n in 0..6 {
            let (server, submitter, case) =
                (servers[n % 2].clone(), submitter.clone(), case.clone());
            sent.push(tokio::spawn(async move {
                server.submitted(&submitter, "eocco-medicaid", case).await
            }));
        }
        let mut approved = 0;
        for answer in sent {
            if answer.await.unwrap()["status"] == "approved" {
                approved += 1;
            }
        }
        assert_eq!(approved, 1);
        assert_eq!(servers[0].count("authorizations").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_names_what_it_renews_and_continues_its_members_course_under_its_plan() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        // A declared renewal with a history of its own making, renewing nothing on record.
        let mut declared = case("E10");
        declared["request"]["date"] = json!(days_after_receipt(-1));
        server
            .submit(&submitter, "masshealth", declared.clone())
            .await
            .expect_problem(422, "renews");
        declared["patient"]["member_id"] = json!("M-400");
        server
            .submit(&submitter, "masshealth", declared)
            .await
            .expect_problem(422, "renews");

        let mut first = case("E01");
        first["patient"]["member_id"] = json!("M-400");
        let approved = server.submitted(&submitter, "masshealth", first).await;
        let number = approved["authorization"]["number"].as_str().unwrap();

        let renewal = |member: Option<&str>| {
            let mut renewal = case("E10");
            renewal["request"]["date"] = json!(days_after_receipt(-1));
            if let Some(member) = member {
                renewal["patient"]["member_id"] = json!(member);
            }
            renewal
        };
        // Another member's course (not met), another plan (not met).
        server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": renewal(Some("M-401")), "renews": number}),
            )
            .await
            .expect_problem(422, "case.patient.member_id");
        let mut elsewhere = renewal(Some("M-400"));
        elsewhere["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "express-scripts-medicare-advantage", "case": elsewhere, "renews": number}),
            )
            .await
            .expect_problem(422, "renews");
        // Naming no member (unknown), the renewal is the recorded member's (met).
        let renewed = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "masshealth", "case": renewal(None), "renews": number}),
            )
            .await;
        renewed.expect(201);
        let stored = server
            .get(
                &format!("/v1/requests/{}", renewed.body["id"].as_str().unwrap()),
                &submitter,
            )
            .await;
        assert_eq!(stored.body["case"]["patient"]["member_id"], "M-400");
        assert_eq!(stored.body["status"], "approved", "{}", stored.body);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorization_starts_at_the_cycle_the_engine_placed_the_request() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        // Four cycles given, no first cycle declared: the request is for cycles 5 to 9.
        let mut later = for_member("E01", "M-500");
        let request = later["request"].as_object_mut().unwrap();
        request.remove("first_cycle");
        request.insert("cycles".into(), json!(5));
        let history = later["history"].as_object_mut().unwrap();
        history.remove("blinatumomab_cycles");
        history.insert("cycles_given".into(), json!(4));
        let approved = server
            .submitted(&submitter, "express-scripts-medicare-advantage", later)
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        let authorization = &approved["authorization"];
        assert_eq!(authorization["first_cycle"], 5, "{approved}");
        let last = authorization["first_cycle"].as_u64().unwrap()
            + authorization["cycles"].as_u64().unwrap()
            - 1;
        assert!(last <= 9, "{approved}");

        // Its renewal continues after cycle 9: nothing of Blincyto's course is left.
        let mut renewal = case("E10");
        renewal["request"]["date"] = json!(days_after_receipt(-1));
        renewal["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        let number = authorization["number"].as_str().unwrap();
        let answer = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "express-scripts-medicare-advantage", "case": renewal, "renews": number}),
            )
            .await;
        assert!(
            answer.status != 201 || answer.body["status"] != "approved",
            "{}",
            answer.body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_declared_cycle_does_not_stretch_an_authorization_past_a_year() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut long = for_member("E01", "M-600");
        let request = long["request"].as_object_mut().unwrap();
        request.insert("cycles".into(), json!(9));
        request.insert("cycle_length_days".into(), json!(366));
        request.insert("units_period_days".into(), json!(366));
        let answer = server
            .submitted(&submitter, "bcbsnc-commercial", long)
            .await;
        assert_eq!(answer["status"], "approved", "{answer}");
        let year = priorauth_core::date::Date::parse(&days_after_receipt(0))
            .unwrap()
            .inclusive_end(priorauth_core::date::Duration::Years(1))
            .unwrap()
            .to_string();
        assert_eq!(answer["authorization"]["end"], year.as_str(), "{answer}");
        // A short cycle keeps the course's own end (42 days × 2 cycles).
        let short = server
            .submitted(&submitter, "bcbsnc-commercial", for_member("E01", "M-601"))
            .await;
        assert_eq!(short["status"], "approved", "{short}");
        let start = priorauth_core::date::Date::parse(&days_after_receipt(0)).unwrap();
        assert_eq!(
            short["authorization"]["end"],
            start.add_days(83).unwrap().to_string(),
            "{short}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_is_drug_already_given() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = approved["authorization"]["number"].as_str().unwrap();
        let path = format!("/v1/authorizations/{number}/usage");
        for (days, status) in [(30, 422), (2, 422), (1, 201), (0, 201)] {
            let reply = server
                .post(
                    &path,
                    &submitter,
                    &json!({"units": 10, "date_of_service": days_after_receipt(days)}),
                )
                .await;
            if status == 422 {
                reply.expect_problem(422, "date_of_service");
            } else {
                reply.expect(201);
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewal_is_placed_after_every_recorded_authorization_of_its_member() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        // Cycles 1-2, then an initial request the records place at cycles 3-4.
        let first = server
            .submitted(&submitter, "express-scripts-medicare-advantage", for_member("E01", "M-700"))
            .await;
        assert_eq!(first["authorization"]["first_cycle"], 1, "{first}");
        let second = server
            .submitted(&submitter, "express-scripts-medicare-advantage", for_member("E01", "M-700"))
            .await;
        assert_eq!(second["authorization"]["first_cycle"], 3, "{second}");
        // Renewing the first authorization continues after cycle 4, not from cycle 3 again.
        let mut renewal = case("E10");
        renewal["request"]["date"] = json!(days_after_receipt(-1));
        renewal["request"].as_object_mut().unwrap().remove("line_of_business");
        renewal["patient"]["member_id"] = json!("M-700");
        let number = first["authorization"]["number"].as_str().unwrap();
        let renewed = server
            .post(
                "/v1/requests",
                &submitter,
                &json!({"plan": "express-scripts-medicare-advantage", "case": renewal, "renews": number}),
            )
            .await;
        renewed.expect(201);
        if let Some(first_cycle) = renewed.body["authorization"]["first_cycle"].as_u64() {
            assert!(first_cycle >= 5, "{}", renewed.body);
        }
        let stored = server
            .get(&format!("/v1/requests/{}", renewed.body["id"].as_str().unwrap()), &submitter)
            .await;
        assert_eq!(
            stored.body["case"]["history"]["authorizations"].as_array().unwrap().len(),
            2,
            "{}",
            stored.body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_a_completion_names_is_the_requests_member() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        // Incomplete (no cycle length) and naming no member; completed with both.
        let mut incomplete = for_member("E01", "M-800");
        incomplete["patient"]
            .as_object_mut()
            .unwrap()
            .remove("member_id");
        incomplete["request"]
            .as_object_mut()
            .unwrap()
            .remove("cycle_length_days");
        incomplete["request"]["cycles"] = json!(5);
        let answer = server
            .submitted(&submitter, "eocco-medicaid", incomplete)
            .await;
        assert_eq!(answer["status"], "pending_information", "{answer}");
        let id = answer["id"].as_str().unwrap();
        let completed = server
            .patch(
                &format!("/v1/requests/{id}"),
                &submitter,
                &json!({"patient": {"member_id": "M-800"}, "request": {"cycle_length_days": 42}}),
            )
            .await;
        completed.expect(200);
        assert_eq!(completed.body["status"], "approved", "{}", completed.body);
        assert_eq!(server.count("requests WHERE member_id = 'M-800'").await, 1);
        // The member's next initial request finds that course.
        let mut again = for_member("E01", "M-800");
        again["request"]["cycles"] = json!(5);
        let answer = server.submitted(&submitter, "eocco-medicaid", again).await;
        assert_ne!(answer["status"], "approved", "{answer}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_out_the_cycle_length_lifts_no_bound() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut silent = case("E01");
        let request = silent["request"].as_object_mut().unwrap();
        request.remove("cycle_length_days");
        request.remove("units_period_days");
        request.insert("cycles".into(), json!(9));
        let answer = server.submitted(&submitter, "masshealth", silent).await;
        // MassHealth's 6 months hold five of the label's 42-day cycles.
        assert_eq!(answer["authorization"]["cycles"], 5, "{answer}");
        assert_eq!(answer["authorization"]["period_days"], 42, "{answer}");
        let number = answer["authorization"]["number"].as_str().unwrap();
        let path = format!("/v1/authorizations/{number}/usage");
        let spend = |units: u32| json!({"units": units, "date_of_service": days_after_receipt(0)});
        server
            .post(&path, &submitter, &spend(981))
            .await
            .expect(409);
        server
            .post(&path, &submitter, &spend(980))
            .await
            .expect(201);
    })
    .await;
}

/// Two approvals of member M-1000's course under Express Scripts: cycles 1-2, then cycles 3-4
/// placed by the records, both starting today.
async fn two_of_one_course(server: &Server, submitter: &str) -> (Value, Value) {
    let plan = "express-scripts-medicare-advantage";
    let first = server
        .submitted(submitter, plan, for_member("E01", "M-1000"))
        .await;
    let second = server
        .submitted(submitter, plan, for_member("E01", "M-1000"))
        .await;
    assert_eq!(second["authorization"]["first_cycle"], 3, "{second}");
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_members_authorizations_of_one_course_share_the_units_of_a_period() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let (first, second) = two_of_one_course(&server, &submitter).await;
        let spend = |answer: &Value, units: u32| {
            (
                format!(
                    "/v1/authorizations/{}/usage",
                    answer["authorization"]["number"].as_str().unwrap()
                ),
                json!({"units": units, "date_of_service": days_after_receipt(0)}),
            )
        };
        let (path, body) = spend(&first, 980);
        server.post(&path, &submitter, &body).await.expect(201);
        // The member was given this period's 980 units: none more under the other.
        let (path, body) = spend(&second, 1);
        let refused = server.post(&path, &submitter, &body).await;
        refused.expect(409);
        // Another member's authorization is not counted with them.
        let other = server
            .submitted(
                &submitter,
                "express-scripts-medicare-advantage",
                for_member("E01", "M-1001"),
            )
            .await;
        let (path, body) = spend(&other, 980);
        server.post(&path, &submitter, &body).await.expect(201);
    })
    .await;
}

/// Each authorization lays its periods from its own start. Two of one member's course received
/// 20 days apart were each spent a cycle's 980 units within the other's first period: 1,960
/// units in 21 days, twice the label's pace. A spend is held to the period of every
/// authorization of the course with periods as long as its own whose period holds its date,
/// at the larger units per period of the two, and the refusal does not describe the other
/// authorization.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_authorizations_of_one_course_are_spent_at_one_pace() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let (first, second) = two_of_one_course(&server, &submitter).await;
        let number = |answer: &Value| {
            answer["authorization"]["number"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (first, second) = (number(&first), number(&second));
        // The first received 20 days ago: its first period runs from then to 21 days ahead.
        sqlx::query("UPDATE authorizations SET start_date = $1 WHERE number = $2")
            .bind(days_after_receipt(-20))
            .bind(&first)
            .execute(&server.store().pool)
            .await
            .unwrap();
        let spend = |number: &str, units: u32, days: i64| {
            (
                format!("/v1/authorizations/{number}/usage"),
                json!({"units": units, "date_of_service": days_after_receipt(days)}),
            )
        };
        let (path, body) = spend(&first, 980, -20);
        server.post(&path, &submitter, &body).await.expect(201);
        // Today is in the second's first period, which holds nothing yet, and in the first's,
        // which holds the 980 given 20 days ago.
        let (path, body) = spend(&second, 980, 0);
        let refused = server.post(&path, &submitter, &body).await;
        refused.expect(409);
        let text = refused.body.to_string();
        assert!(text.contains("member's course"), "{text}");
        assert!(!text.contains(&days_after_receipt(-20)), "{text}");
        // A longer period laid from another start (a later cycle's, or one a reviewer
        // lengthened) would hold the end of one cycle and the whole of the next: only periods
        // as long as the spend's own are held against it.
        let set = |sql: &'static str, value: String, number: String| {
            let pool = server.store().pool.clone();
            async move {
                sqlx::query(sql)
                    .bind(value)
                    .bind(number)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        let period = "UPDATE authorizations SET period_days = CAST($1 AS BIGINT) WHERE number = $2";
        set(period, "84".into(), first.clone()).await;
        let (path, body) = spend(&second, 980, 0);
        server.post(&path, &submitter, &body).await.expect(201);
        // Both received 42 days ago and spent then: today begins the next period of each. The
        // other's smaller units per period (1) does not refuse this one's 980.
        set(period, "42".into(), first.clone()).await;
        let units =
            "UPDATE authorizations SET units_per_period = CAST($1 AS BIGINT) WHERE number = $2";
        set(units, "1".into(), first.clone()).await;
        let start = "UPDATE authorizations SET start_date = $1 WHERE number = $2";
        let used = "UPDATE usage SET service_date = $1 WHERE authorization_number = $2";
        for number in [&first, &second] {
            set(start, days_after_receipt(-42), number.clone()).await;
            set(used, days_after_receipt(-42), number.clone()).await;
        }
        let (path, body) = spend(&second, 980, 0);
        server.post(&path, &submitter, &body).await.expect(201);
        server.stop().await;
    })
    .await;
}

/// Blincyto's continued therapy (cycles 6-9) is 28 days of infusion and 56 treatment-free:
/// an authorization of those cycles, declared as 42-day cycles, let a clinic spend 980 units
/// every 42 days, twice the label's rate. Its units per cycle are spent over 84 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn continued_therapy_cycles_are_spent_at_the_labels_pace() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let mut later = case("E01");
        later["request"]["first_cycle"] = json!(6);
        later["request"]["cycles"] = json!(4);
        later["request"]
            .as_object_mut()
            .unwrap()
            .remove("line_of_business");
        later["history"]["blinatumomab_cycles"] = json!(5);
        later["diagnosis"]["disease_status"] = json!("complete_remission");
        later["diagnosis"]["remission_number"] = json!(2);
        later["diagnosis"]["mrd_status"] = json!("negative");
        later["history"]["response"] = json!("response");
        let approved = server
            .submitted(&submitter, "express-scripts-medicare-advantage", later)
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        let authorization = &approved["authorization"];
        assert_eq!(authorization["first_cycle"], 6, "{approved}");
        assert_eq!(authorization["period_days"], 84, "{approved}");
        let number = authorization["number"].as_str().unwrap();
        let path = format!("/v1/authorizations/{number}/usage");
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 980, "date_of_service": days_after_receipt(0)}),
            )
            .await
            .expect(201);
        // No second cycle's units until 84 days have passed: none in the period that holds
        // the first.
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 1, "date_of_service": days_after_receipt(0)}),
            )
            .await
            .expect(409);
        server.stop().await;
    })
    .await;
}

/// A clinic cancels an authorization it no longer needs: as of today, so that drug given
/// through today stays covered (its usage is recorded after the fact) and nothing given later
/// is; once only; by its own organization only (another's is missing, a reviewer is
/// forbidden); the request stays approved, the cancellation is in its history, the list no
/// longer calls it due for renewal, and the audit binds the day.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_cancels_an_authorization_it_no_longer_needs() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let (_, other) = server
            .key("clinic-b", Role::Submitter, "Clinic B EHR", "")
            .await;
        let (_, reviewer) = server
            .key("payer", Role::Reviewer, "Dr. Rivera", "MD, Hematology")
            .await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let id = approved["id"].as_str().unwrap();
        let number = approved["authorization"]["number"].as_str().unwrap();
        let path = format!("/v1/authorizations/{number}/cancellation");
        let usage = format!("/v1/authorizations/{number}/usage");
        let spend = |days: i64| json!({"units": 10, "date_of_service": days_after_receipt(days)});
        let reason = json!({"reason": "Treatment stopped: the patient entered hospice."});
        server.post(&path, &other, &reason).await.expect(404);
        server.post(&path, &reviewer, &reason).await.expect(403);
        server
            .post(&path, &submitter, &json!({"reason": "  "}))
            .await
            .expect_problem(422, "reason");
        let cancelled = server.post(&path, &submitter, &reason).await;
        cancelled.expect(200);
        let today = days_after_receipt(0);
        assert_eq!(cancelled.body["status"], "approved", "{}", cancelled.body);
        assert_eq!(
            cancelled.body["authorization"]["cancelled_on"],
            json!(today),
            "{}",
            cancelled.body
        );
        let event = cancelled.body["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap();
        assert_eq!(event["kind"], "authorization_cancelled", "{event}");
        assert_eq!(event["reason"], reason["reason"], "{event}");
        assert_eq!(event["authorization"], json!(number), "{event}");
        // Once: a second cancellation is a conflict naming the day.
        let again = server.post(&path, &submitter, &reason).await;
        again.expect(409);
        assert!(
            again.body["detail"].as_str().unwrap().contains(&today),
            "{}",
            again.body
        );
        // Drug given today is covered; tomorrow's is not.
        server.post(&usage, &submitter, &spend(0)).await.expect(201);
        server
            .post(&usage, &submitter, &spend(1))
            .await
            .expect_problem(422, "date_of_service");
        let read = server
            .get(&format!("/v1/authorizations/{number}"), &submitter)
            .await;
        assert_eq!(read.body["cancelled_on"], json!(today), "{}", read.body);
        assert_eq!(read.body["used_units"], 10, "{}", read.body);
        let list = server.get("/v1/authorizations", &submitter).await;
        let row = list.body.as_array().unwrap()[0].clone();
        assert_eq!(row["cancelled_on"], json!(today), "{row}");
        assert_eq!(row["renewal_due"], false, "{row}");
        let record = server.get(&format!("/v1/requests/{id}"), &reviewer).await;
        assert_eq!(record.body["authorization"]["cancelled_on"], json!(today));

        // The audit binds the day: an edit of it in the database is found.
        let store = server.store();
        let report = priorauth_service::store::verify_audit(store).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        sqlx::query("UPDATE authorizations SET cancelled_on = NULL WHERE number = $1")
            .bind(number)
            .execute(&store.pool)
            .await
            .unwrap();
        let report = priorauth_service::store::verify_audit(store).await.unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with(&format!("request {id}"))),
            "{:?}",
            report.problems
        );
        server.stop().await;
    })
    .await;
}

/// Drug given after the member's coverage ends (the payer's eligibility) is not spent against
/// an authorization whose period outlasts it: usage dated the day after the enrolment's last
/// day is refused naming the date; the last day's is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_after_the_members_coverage_ends_is_refused() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let today = days_after_receipt(0);
        support::import_members(
            &server,
            &format!("M-520,eocco-medicaid,2020-01-01,{today},\n"),
        )
        .await;
        let approved = server
            .submitted(&submitter, "eocco-medicaid", for_member("E01", "M-520"))
            .await;
        assert_eq!(approved["status"], "approved", "{approved}");
        let number = approved["authorization"]["number"].as_str().unwrap();
        let path = format!("/v1/authorizations/{number}/usage");
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 35, "date_of_service": days_after_receipt(1)}),
            )
            .await
            .expect_problem(422, "date_of_service");
        server
            .post(
                &path,
                &submitter,
                &json!({"units": 35, "date_of_service": today}),
            )
            .await
            .expect(201);
    })
    .await;
}

/// Drug recorded for tomorrow (the day's grace for a clinic whose day has begun) before the
/// authorization is cancelled stays covered: the cancellation is as of that day, and a spend
/// for it is held to the same day (the recorded one stayed counted while a new one for the
/// same day was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_keeps_the_drug_already_recorded_covered() {
    for_each_backend(|url| async move {
        let (server, submitter) = server_with_submitter(&url).await;
        let approved = server
            .submitted(&submitter, "masshealth", case("E01"))
            .await;
        let number = approved["authorization"]["number"].as_str().unwrap();
        let usage = format!("/v1/authorizations/{number}/usage");
        let tomorrow = days_after_receipt(1);
        let spend = json!({"units": 10, "date_of_service": tomorrow});
        server.post(&usage, &submitter, &spend).await.expect(201);
        let cancelled = server
            .post(
                &format!("/v1/authorizations/{number}/cancellation"),
                &submitter,
                &json!({"reason": "Treatment stopped."}),
            )
            .await;
        cancelled.expect(200);
        assert_eq!(
            cancelled.body["authorization"]["cancelled_on"],
            json!(tomorrow),
            "{}",
            cancelled.body
        );
        server.post(&usage, &submitter, &spend).await.expect(201);
    })
    .await;
}
