//! An EHR in a process of its own plays the Da Vinci guides' flow against the real
//! `priorauth serve`, speaking only HTTP (`tests/ehr/simulator.py`): discovery, a SMART
//! Backend Services token from its signed assertion, a PAS subscription, CRD `order-sign`
//! signed as CDS Hooks says with no prefetch (the service reads the EHR's own FHIR server),
//! DTR filled from the chart, PAS `$submit`, the payer's reviewer, the notification,
//! `$inquire` and a cancellation. The EHR has its own patient, plan and identifier codes; the
//! payer knows the member from its eligibility file. Everything the payer answered is then
//! checked by the R4 validator and the guides' profiles. Once on SQLite and, when
//! `DATABASE_URL` names a PostgreSQL server, once on PostgreSQL.
//!
//! The simulator needs PyJWT, cryptography and fhirpathpy in the tests' Python environment
//! (`target/fhir-validator`, which `.ci/run` installs); without that environment the test is
//! skipped with a note, unless `REQUIRE_FHIR_VALIDATOR` is set.

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

use std::path::Path;
use std::process::Command;

use harness::Service;

/// The payer's member id on the EHR's insurance card, and the plan its eligibility gives.
const MEMBER: &str = "OHP884120";
const PLAN: &str = "eocco-medicaid";
const CLIENT: &str = "https://ehr.lakeside.example";
/// The X12 886 code the payer's FHIR map gives its denials (made up for the test).
const DENIAL_REASON: &str = "ZZ9";

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_ehr_plays_the_guides_flow_over_http() {
    let Some(python) = support::fhir_python() else {
        return;
    };
    support::for_each_backend(move |url| {
        let python = python.clone();
        async move { ehr_flow(&url, &python).await }
    })
    .await;
}

async fn ehr_flow(url: &str, python: &Path) {
    let dir = std::env::temp_dir().join(format!(
        "priorauth-ehr-{}",
        priorauth_service::store::random_id("")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let simulator = support::repo_root().join("tests/ehr/simulator.py");

    // The payer's side, by its own commands: the EHR's client and its public keys, the
    // member's enrolment, and a reviewer.
    run(
        Command::new(python).arg(&simulator).arg("keys").arg(&dir),
        "simulator keys",
    );
    run(
        harness::priorauth(url, &dir).args([
            "clients",
            "register",
            "--id",
            CLIENT,
            "--organization",
            "lakeside-clinic",
            "--role",
            "submitter",
            "--name",
            "Lakeside Oncology EHR",
            "--jwks",
            "jwks.json",
        ]),
        "clients register",
    );
    std::fs::write(
        dir.join("eligibility.csv"),
        format!(
            "member_id,plan,effective_from,effective_to,birth_date\n{MEMBER},{PLAN},2026-01-01,,1979-08-23\n"
        ),
    )
    .unwrap();
    run(
        harness::priorauth(url, &dir).args(["members", "import", "eligibility.csv"]),
        "members import",
    );
    let reviewer = harness::create_key(
        url,
        &dir,
        "payer",
        "reviewer",
        "Dr. Rivera",
        "MD, Hematology",
    );

    // The payer's own FHIR map: the bundled one with an X12 886 reason code for its denials
    // (a made-up code: X12 licenses the list).
    let map = dir.join("fhir.toml");
    std::fs::write(
        &map,
        format!(
            "{}\n[x12_denial_reasons]\ndefault = \"{DENIAL_REASON}\"\n",
            std::fs::read_to_string(support::repo_root().join("config/fhir.toml")).unwrap()
        ),
    )
    .unwrap();
    let log = dir.join("server.log");
    let map = map.display().to_string();
    let mut service = Service::spawn_with(url, &dir, &log, &[("PRIORAUTH_FHIR_MAP", &map)]);
    service.wait_ready().await;
    let emitted = dir.join("emitted");
    let output = Command::new(python)
        .arg(&simulator)
        .args(["run", "--base", &service.base, "--client-id", CLIENT])
        .args(["--key", &dir.join("ehr-key.pem").display().to_string()])
        .args(["--member-id", MEMBER, "--reviewer-key", &reviewer])
        .args(["--denial-reason", DENIAL_REASON])
        .args(["--out", &emitted.display().to_string()])
        .output()
        .expect("run the EHR simulator");
    let transcript = String::from_utf8_lossy(&output.stdout).to_string();
    eprintln!("{transcript}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the EHR's flow failed:\n{transcript}{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        service.log_tail()
    );
    service.stop();

    // What the payer answered passes the R4 validator and the guides' profiles.
    support::validate(&emitted);
    let (code, audit) = harness::audit_verify(url, &dir);
    assert_eq!(code, Some(0), "audit verify: {audit}");
    let _ = std::fs::remove_dir_all(&dir);
}
