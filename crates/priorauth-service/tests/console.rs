//! The reviewer console in a real browser: Debian's Chromium driven by playwright-core
//! (`e2e/console.test.mjs`) against a real server. Locally the test is skipped with a note
//! when Chromium or `e2e/node_modules` is missing; in CI (`CI` set) that is a failure, since
//! `.ci/run` installs both. `UPDATE_SCREENSHOTS=1` refreshes `docs/screenshots/`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use priorauth_service::keys::Role;
use support::{Server, case};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    let ready =
        Path::new(&chromium).exists() && root.join("e2e/node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and run `npm ci` in e2e/ (see .ci/run)"
        );
        eprintln!("skipped: the browser test needs {chromium} and `npm ci` in e2e/");
        return;
    }
    let directory = std::env::temp_dir().join(format!("priorauth-console-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        directory.join("console.sqlite").display()
    );
    let server = Server::start(&url).await;
    let (_, submitter) = server
        .key("clinic-a", Role::Submitter, "Clinic A EHR", "")
        .await;
    let (_, reviewer) = server
        .key(
            "payer",
            Role::Reviewer,
            "Dr. Jane Roe",
            "MD, Hematology/Oncology",
        )
        .await;
    // Decides the appeal of the first reviewer's denial.
    let (_, second_reviewer) = server
        .key(
            "payer",
            Role::Reviewer,
            "Dr. Sam Park",
            "MD, Internal Medicine",
        )
        .await;
    // A request waiting for a clinician: new to MassHealth and already on therapy.
    let mut for_member = case("E12");
    for_member["patient"]["member_id"] = serde_json::json!("M-2002");
    for_member["patient"]["name"] = serde_json::json!("Bo Chen");
    for_member["prescriber"]["name"] = serde_json::json!("Dr. Lee");
    for_member["prescriber"]["npi"] = serde_json::json!("1245319599");
    let queued = server.submitted(&submitter, "masshealth", for_member).await;
    // A request the policy cannot decide without the MRD level, which the clinic answers in
    // the page; and one a reviewer will ask the clinic about in words.
    let incomplete = server
        .submitted(&submitter, "eocco-medicaid", case("E06"))
        .await;
    assert_eq!(incomplete["status"], "pending_information");
    let mut to_ask = case("E12");
    to_ask["patient"]["member_id"] = serde_json::json!("M-3003");
    to_ask["patient"]["name"] = serde_json::json!("Cy Diaz");
    let to_ask = server.submitted(&submitter, "masshealth", to_ask).await;
    let screenshots = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        directory.join("screenshots")
    };
    std::fs::create_dir_all(&screenshots).unwrap();

    let mut command = std::process::Command::new("node");
    command
        .arg("--test")
        .arg("console.test.mjs")
        .current_dir(root.join("e2e"))
        .env("PRIORAUTH_URL", &server.base)
        .env("SUBMITTER_KEY", &submitter)
        .env("REVIEWER_KEY", &reviewer)
        .env("SECOND_REVIEWER_KEY", &second_reviewer)
        .env("REVIEW_ID", queued["id"].as_str().unwrap())
        .env("INCOMPLETE_ID", incomplete["id"].as_str().unwrap())
        .env("ASK_ID", to_ask["id"].as_str().unwrap())
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS_DIR", &screenshots);
    // The server keeps serving on the runtime while the browser runs.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
    std::fs::remove_dir_all(&directory).ok();
    assert!(
        output.status.success(),
        "the browser test failed:\n{report}"
    );
}
