//! A client generated from the served OpenAPI document by a standard generator
//! (openapi-python-client, from PyPI) compiles and carries a day's calls against a real
//! server (`tests/client/smoke.py`): submission, reading, usage, the review queue, a
//! clinician's denial and its notice, problems naming the field, FHIR's CapabilityStatement.
//! Locally the test is skipped with a note when the generator's virtual environment is
//! missing; in CI (`CI` set) that is a failure, since `.ci/run` makes it.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;

use priorauth_service::keys::Role;
use support::{Server, case};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_compiles_and_carries_a_days_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let environment = root.join("target/openapi-client/bin");
    if !environment.join("openapi-python-client").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must make target/openapi-client (see .ci/run)"
        );
        eprintln!("skipped: the client test needs target/openapi-client (see .ci/run)");
        return;
    }
    let directory = std::env::temp_dir().join(format!("priorauth-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();

    let server = Server::start(&format!(
        "sqlite://{}?mode=rwc",
        directory.join("client.sqlite").display()
    ))
    .await;
    // The document as served, not as built in this process.
    let document = server
        .client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(directory.join("openapi.json"), document).unwrap();
    // No formatter runs after generating (the generator's default calls ruff); a PDF is read
    // as the generator reads any file.
    std::fs::write(
        directory.join("generator.yaml"),
        "post_hooks: []\npackage_name_override: priorauth_client\nproject_name_override: priorauth-client\ncontent_type_overrides:\n  application/pdf: application/octet-stream\n  image/png: application/octet-stream\n  image/jpeg: application/octet-stream\n",
    )
    .unwrap();
    let generated = Command::new(environment.join("openapi-python-client"))
        .arg("generate")
        .arg("--path")
        .arg(directory.join("openapi.json"))
        .arg("--output-path")
        .arg(directory.join("client"))
        .arg("--config")
        .arg(directory.join("generator.yaml"))
        .output()
        .unwrap();
    let report = |what: &str, output: &std::process::Output| {
        format!(
            "{what}: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    assert!(
        generated.status.success(),
        "{}",
        report("generate", &generated)
    );
    // The generator warns, and still writes a client, for what it could not model.
    let said = String::from_utf8_lossy(&generated.stdout).to_string()
        + &String::from_utf8_lossy(&generated.stderr);
    assert!(
        !said.contains("Warning"),
        "{}",
        report("generate", &generated)
    );

    // Compiles: every module byte-compiles and the package imports.
    let python = environment.join("python");
    let compiled = Command::new(&python)
        .args(["-W", "error", "-m", "compileall", "-q"])
        .arg(directory.join("client/priorauth_client"))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        report("compile", &compiled)
    );

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
    for (name, file) in [("E01", "approve.json"), ("E12", "review.json")] {
        std::fs::write(directory.join(file), case(name).to_string()).unwrap();
    }
    let mut command = Command::new(&python);
    command
        .arg(root.join("tests/client/smoke.py"))
        .env("PYTHONPATH", directory.join("client"))
        .env("PRIORAUTH_URL", &server.base)
        .env("SUBMITTER_KEY", &submitter)
        .env("REVIEWER_KEY", &reviewer)
        .env("APPROVE_CASE", directory.join("approve.json"))
        .env("REVIEW_CASE", directory.join("review.json"));
    // The server keeps serving on the runtime while the client runs.
    let smoke = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(smoke.status.success(), "{}", report("smoke", &smoke));
    let said = String::from_utf8_lossy(&smoke.stdout);
    assert!(said.contains("all calls answered"), "{said}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&directory);
}
