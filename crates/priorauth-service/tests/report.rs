//! The UM report against a generated history, on SQLite and (with `DATABASE_URL`) on
//! PostgreSQL: every figure of `GET /v1/reports/um` equals the one this test counts itself from
//! each request's and appeal's answer over the API (status, determination, history, appeals),
//! not from the report's SQL. Its own test binary: the history runs on a simulated clock,
//! which is the whole process's.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;

use priorauth_service::history::{self, Spec};
use priorauth_service::keys::Role;
use priorauth_service::store::verify_audit;
use serde_json::{Value, json};
use support::{Server, for_each_backend, millis};

/// Hours with one decimal, as the report rounds them.
fn hours(ms: i64) -> f64 {
    (ms as f64 / 360_000.0).round() / 10.0
}

fn percent(part: i64, whole: i64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!((part as f64 * 1000.0 / whole as f64).round() / 10.0)
    }
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[i64], share: f64) -> i64 {
    let k = (share * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[k - 1]
}

#[derive(Debug, Default)]
struct Tally {
    counts: BTreeMap<&'static str, i64>,
    turnaround: Vec<i64>,
}

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
}

/// When a request was decided, from its history: the first decision after its last reopening.
fn decided_at(request: &Value) -> Option<i64> {
    let history = request["history"].as_array().unwrap();
    let since = history
        .iter()
        .rposition(|e| e["kind"] == "reopened")
        .map_or(0, |i| i + 1);
    history[since..]
        .iter()
        .find(|e| {
            let kind = e["kind"].as_str().unwrap();
            let outcome = e["outcome"].as_str().unwrap();
            kind == "determination"
                || (matches!(kind, "submitted" | "completed")
                    && matches!(outcome, "approve" | "not_applicable"))
        })
        .map(|e| millis(&e["at"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_um_report_equals_the_records_counted_one_by_one() {
    for_each_backend(|url| async move {
        let server = Server::start(&url).await;
        let summary = history::generate(
            &server.state.service,
            Spec {
                requests: 500,
                days: 40,
                seed: 7,
            },
        )
        .await
        .unwrap();
        assert!(summary.refused.is_empty(), "{:?}", summary.refused);
        for kind in [
            "denied",
            "appealed",
            "overturned",
            "upheld",
            "withdrawn",
            "completed",
        ] {
            assert!(
                summary.done.get(kind).copied().unwrap_or(0) > 0,
                "{kind}: {summary:?}"
            );
        }
        let (_, admin) = server.key("payer", Role::Admin, "Auditor", "").await;
        let (_, clinic) = server.key("clinic-01", Role::Submitter, "Clinic", "").await;
        let today = jiff::Timestamp::now().to_string()[..10].to_string();
        let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 41)).to_string()
            [..10]
            .to_string();
        let path = format!("/v1/reports/um?from={from}&to={today}");

        // Reviewers and admins only; each parameter checked.
        server.get(&path, &clinic).await.expect(403);
        server
            .get(
                &format!("/v1/reports/um?from=2026-13-01&to={today}"),
                &admin,
            )
            .await
            .expect_problem(422, "from");
        server
            .get(&format!("/v1/reports/um?from={today}&to={from}"), &admin)
            .await
            .expect_problem(422, "to");
        server
            .get(&format!("{path}&format=pdf"), &admin)
            .await
            .expect_problem(422, "format");

        let report = server.get(&path, &admin).await;
        report.expect(200);
        let report = report.body;
        let now = millis(&report["generated_at"]);

        // Every request and its appeals, read over the API.
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM requests")
            .fetch_all(&server.store().pool)
            .await
            .unwrap();
        assert_eq!(ids.len(), 500);
        let mut groups: BTreeMap<(String, String, String), Tally> = BTreeMap::new();
        let mut appeal_groups: BTreeMap<(String, String), Tally> = BTreeMap::new();
        for (id,) in &ids {
            let request = server.get(&format!("/v1/requests/{id}"), &admin).await;
            request.expect(200);
            let request = request.body;
            let appeals = server
                .get(&format!("/v1/requests/{id}/appeals"), &admin)
                .await
                .body["appeals"]
                .as_array()
                .unwrap()
                .clone();
            let plan = request["plan"].as_str().unwrap().to_string();
            let key = (
                plan.clone(),
                request["case"]["request"]["drug"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                request["urgency"].as_str().unwrap().to_string(),
            );
            let tally = groups.entry(key).or_default();
            tally.add("requests");
            let status = request["status"].as_str().unwrap();
            let overturned = appeals.iter().any(|a| a["status"] == "overturned");
            let determination = request["determination"]["decision"].as_str();
            match status {
                "approved" if overturned => tally.add("approved_on_appeal"),
                "approved" => match determination {
                    None => tally.add("approved_touchless"),
                    Some("approve") => tally.add("approved_by_reviewer"),
                    Some(_) => tally.add("approved_with_changes"),
                },
                "denied" => tally.add("denied"),
                "withdrawn" => tally.add("withdrawn"),
                "not_applicable" => tally.add("not_applicable"),
                _ => tally.add("pending"),
            }
            if !appeals.is_empty() {
                tally.add("appealed");
            }
            if overturned {
                tally.add("overturned");
            }
            let history = request["history"].as_array().unwrap();
            if history.iter().any(|e| e["kind"] == "extended") {
                tally.add("extended");
            }
            // A request decided on receipt has no due time: it is on time.
            let due = (!request["due_at"].is_null()).then(|| millis(&request["due_at"]));
            match decided_at(&request) {
                Some(decided) if !matches!(status, "pending_information" | "pending_review") => {
                    tally.add("decided");
                    if due.is_none_or(|due| decided <= due) {
                        tally.add("decided_on_time");
                    }
                    tally
                        .turnaround
                        .push(decided - millis(&request["created_at"]));
                }
                _ => {
                    if matches!(status, "pending_information" | "pending_review")
                        && due.is_some_and(|due| due < now)
                    {
                        tally.add("late_open");
                    }
                }
            }
            for appeal in &appeals {
                let tally = appeal_groups
                    .entry((
                        plan.clone(),
                        appeal["urgency"].as_str().unwrap().to_string(),
                    ))
                    .or_default();
                tally.add("filed");
                match appeal["status"].as_str().unwrap() {
                    "upheld" => tally.add("upheld"),
                    "overturned" => tally.add("overturned"),
                    _ => tally.add("pending"),
                }
                if !appeal["extension"].is_null() {
                    tally.add("extended");
                }
                let appeal_due = millis(&appeal["due_at"]);
                if appeal["status"] == "pending" {
                    if appeal_due < now {
                        tally.add("late_open");
                    }
                } else if millis(&appeal["decision"]["at"]) <= appeal_due {
                    tally.add("decided_on_time");
                }
            }
        }

        // The report's groups are exactly these, figure for figure.
        let reported = report["groups"].as_array().unwrap();
        assert_eq!(reported.len(), groups.len(), "{reported:?}");
        for row in reported {
            let key = (
                row["plan"].as_str().unwrap().to_string(),
                row["drug"].as_str().unwrap().to_string(),
                row["urgency"].as_str().unwrap().to_string(),
            );
            let tally = groups.get_mut(&key).unwrap_or_else(|| panic!("{key:?}"));
            for figure in [
                "requests",
                "approved_touchless",
                "approved_by_reviewer",
                "approved_with_changes",
                "approved_on_appeal",
                "denied",
                "withdrawn",
                "not_applicable",
                "pending",
                "appealed",
                "overturned",
                "extended",
                "decided",
                "decided_on_time",
                "late_open",
            ] {
                assert_eq!(
                    row[figure],
                    json!(tally.counts.get(figure).copied().unwrap_or(0)),
                    "{key:?} {figure}"
                );
            }
            let decided = tally.counts.get("decided").copied().unwrap_or(0);
            assert_eq!(
                row["on_time_percent"],
                percent(
                    tally.counts.get("decided_on_time").copied().unwrap_or(0),
                    decided
                ),
                "{key:?}"
            );
            tally.turnaround.sort_unstable();
            let t = &row["turnaround_hours"];
            if decided > 0 {
                let sorted = &tally.turnaround;
                let total: i64 = sorted.iter().sum();
                assert_eq!(t["mean"], json!(hours(total / decided)), "{key:?} mean");
                assert_eq!(
                    t["median"],
                    json!(hours(rank(sorted, 0.5))),
                    "{key:?} median"
                );
                assert_eq!(t["p90"], json!(hours(rank(sorted, 0.9))), "{key:?} p90");
                assert_eq!(
                    t["max"],
                    json!(hours(*sorted.last().unwrap())),
                    "{key:?} max"
                );
            }
        }
        let reported = report["appeals"].as_array().unwrap();
        assert_eq!(reported.len(), appeal_groups.len());
        for row in reported {
            let key = (
                row["plan"].as_str().unwrap().to_string(),
                row["urgency"].as_str().unwrap().to_string(),
            );
            let tally = &appeal_groups[&key];
            for figure in [
                "filed",
                "upheld",
                "overturned",
                "pending",
                "extended",
                "decided_on_time",
                "late_open",
            ] {
                assert_eq!(
                    row[figure],
                    json!(tally.counts.get(figure).copied().unwrap_or(0)),
                    "{key:?} {figure}"
                );
            }
        }
        // CMS-0057-F's shares, per plan, from the same tallies.
        for metrics in report["cms_0057_f"].as_array().unwrap() {
            let plan = metrics["plan"].as_str().unwrap();
            let sum = |urgency: &str, figures: &[&str]| -> i64 {
                groups
                    .iter()
                    .filter(|((p, _, u), _)| p == plan && u == urgency)
                    .flat_map(|(_, t)| {
                        figures
                            .iter()
                            .map(|f| t.counts.get(f).copied().unwrap_or(0))
                    })
                    .sum()
            };
            let approved = sum(
                "standard",
                &[
                    "approved_touchless",
                    "approved_by_reviewer",
                    "approved_with_changes",
                    "approved_on_appeal",
                ],
            );
            let denied = sum("standard", &["denied"]);
            let standard = &metrics["standard"];
            assert_eq!(standard["decided"], json!(approved + denied), "{plan}");
            assert_eq!(
                standard["approved_percent"],
                percent(approved, approved + denied)
            );
            assert_eq!(
                standard["denied_percent"],
                percent(denied, approved + denied)
            );
            assert_eq!(
                standard["approved_after_appeal_percent"],
                percent(sum("standard", &["approved_on_appeal"]), approved + denied)
            );
            assert!(
                !metrics["items_requiring_prior_authorization"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
        }

        // The other formats carry the same figures.
        let markdown = server.get(&format!("{path}&format=markdown"), &admin).await;
        markdown.expect(200);
        assert!(markdown.body.as_str().unwrap().contains("| masshealth |"));
        let csv = server.get(&format!("{path}&format=csv"), &admin).await;
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        let lines = csv.body.as_str().unwrap().lines().count();
        assert!(lines > groups.len() + appeal_groups.len(), "{lines}");
        let html = server.get(&format!("{path}&format=html"), &admin).await;
        let html = html.body.as_str().unwrap();
        assert!(html.starts_with("<!doctype html>") && html.contains("class=\"bar\""));
        assert!(!html.contains("<script"));

        let report = verify_audit(server.store()).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        server.stop().await;
    })
    .await;
}
