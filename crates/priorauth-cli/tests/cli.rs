//! The `priorauth` binary as a user runs it: exit codes, the JSON contract, the text tree,
//! `--batch`, `--policy`, `--policies` and error messages that name the key.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn case(name: &str) -> PathBuf {
    root().join("tests/cases").join(name)
}

#[track_caller]
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_priorauth"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn json_follows_the_decision_contract() {
    let output = run(
        &[
            "evaluate",
            case("E01.json").to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["case"], "E01");
    let results = report["results"].as_array().unwrap();
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "bcbsnc-blinatumomab",
            "eocco-0382",
            "evolent-cg-3258",
            "express-scripts-blincyto",
            "masshealth-all-single-agent"
        ]
    );
    let eocco = &results[1];
    assert_eq!(eocco["outcome"], "approve");
    assert_eq!(eocco["pathway"], "adult-relapsed-refractory");
    assert_eq!(
        eocco["authorization"],
        serde_json::json!({"start": "2026-05-18", "end": "2026-12-13"})
    );
    assert_eq!(eocco["quantity"]["units"], 980);
    assert_eq!(eocco["quantity"]["vials"], 28);
    assert_eq!(eocco["missing"], serde_json::json!([]));
    for reason in eocco["reasons"].as_array().unwrap() {
        for key in ["criterion", "status", "source"] {
            assert!(reason[key].is_string(), "{reason}");
        }
    }
    assert!(
        eocco["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"].as_str().unwrap().contains("at least 15 years"))
    );
    // No stated duration: the authorization is null.
    assert_eq!(results[0]["authorization"], Value::Null);
}

#[test]
fn text_is_a_tree_with_marks_and_sources() {
    let output = run(
        &[
            "evaluate",
            case("E06.json").to_str().unwrap(),
            "--policy",
            "eocco-0382",
        ],
        None,
    );
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("outcome: INCOMPLETE"), "{text}");
    assert!(text.contains("missing: diagnosis.mrd_percent"), "{text}");
    assert!(text.contains("[unknown] MRD level at least 0.1%"), "{text}");
    assert!(
        text.contains("[met]     at least 15 years of age"),
        "{text}"
    );
    assert!(text.contains("[not met] MRD-negative"), "{text}");
    assert!(!text.contains("evolent"), "--policy limits the output");
}

#[test]
fn a_denial_is_marked_as_a_recommendation() {
    let output = run(
        &[
            "evaluate",
            case("E05.json").to_str().unwrap(),
            "--policy",
            "evolent-cg-3258",
        ],
        None,
    );
    assert!(stdout(&output).contains("a clinician must confirm a denial"));
}

#[test]
fn stdin_and_several_cases() {
    let text = std::fs::read_to_string(case("E07.json")).unwrap();
    let output = run(
        &[
            "evaluate",
            "-",
            "--format",
            "json",
            "--policy",
            "masshealth-all-single-agent",
        ],
        Some(&text),
    );
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["results"][0]["outcome"], "approve");
    assert_eq!(report["results"][0]["quantity"]["vials"], 2);

    let output = run(
        &[
            "evaluate",
            case("E01.json").to_str().unwrap(),
            case("E05.json").to_str().unwrap(),
        ],
        None,
    );
    let text = stdout(&output);
    assert!(text.contains("case E01") && text.contains("case E05"));
}

#[test]
fn bad_input_exits_non_zero_naming_the_key() {
    for (file, key) in [
        ("invalid/X01-negative-weight.json", "patient.weight_kg"),
        ("invalid/X02-unknown-key.json", "diagnosis.mrd_pct"),
        ("invalid/X03-bad-enum.json", "diagnosis.ph_status"),
        ("invalid/X04-born-after-request.json", "patient.birth_date"),
        ("invalid/X05-wrong-type.json", "request.cycles"),
    ] {
        let output = run(&["evaluate", case(file).to_str().unwrap()], None);
        assert_eq!(output.status.code(), Some(1), "{file}");
        assert!(stderr(&output).contains(key), "{file}: {}", stderr(&output));
        assert!(!stderr(&output).contains("panicked"));
    }
    let output = run(
        &["evaluate", case("invalid/bad-json.json").to_str().unwrap()],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not valid JSON"));

    let output = run(
        &[
            "evaluate",
            case("E01.json").to_str().unwrap(),
            "--policy",
            "nope",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unknown policy `nope`"));
}

#[test]
fn a_receipt_date_starts_the_period_within_the_window_of_the_request_date() {
    let e01 = case("E01.json");
    let e01 = e01.to_str().unwrap();
    // E01 is dated 2026-05-18: received 14 days later, the period starts on receipt.
    let output = run(
        &[
            "evaluate",
            e01,
            "--received",
            "2026-06-01",
            "--format",
            "json",
            "--policy",
            "eocco-0382",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        report["results"][0]["authorization"],
        serde_json::json!({"start": "2026-06-01", "end": "2026-12-27"})
    );
    // Received a year later, or a week before the clinical date: bad input naming it.
    for (received, says) in [
        ("2027-05-18", "365 days before"),
        ("2026-05-11", "7 days after"),
    ] {
        let output = run(&["evaluate", e01, "--received", received], None);
        assert_eq!(output.status.code(), Some(1), "{received}");
        let message = stderr(&output);
        assert!(message.contains("request.date"), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(!message.contains("panicked"));
    }
    // In a batch, the line is answered with an error object naming the key.
    let line = std::fs::read_to_string(case("E01.json")).unwrap();
    let line: Value = serde_json::from_str(&line).unwrap();
    let output = run(
        &["evaluate", "--batch", "-", "--received", "2027-05-18"],
        Some(&format!("{line}\n")),
    );
    assert_eq!(output.status.code(), Some(1));
    let answer: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(answer["problems"][0]["key"], "request.date");
}

#[test]
fn batch_streams_one_decision_per_line() {
    let mut input = String::new();
    for name in ["E01.json", "E07.json", "E12.json"] {
        let value: Value =
            serde_json::from_str(&std::fs::read_to_string(case(name)).unwrap()).unwrap();
        input.push_str(&value.to_string());
        input.push('\n');
    }
    input.push_str("{\"patient\": {\"weight_kg\": -1}}\n");
    let output = run(&["evaluate", "--batch", "-"], Some(&input));
    assert_eq!(
        output.status.code(),
        Some(1),
        "an invalid line is reported in the exit status"
    );
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["case"], "E01");
    assert_eq!(lines[1]["results"][4]["outcome"], "approve");
    assert_eq!(lines[2]["results"][4]["outcome"], "review");
    assert_eq!(lines[3]["line"], 4);
    assert_eq!(lines[3]["problems"][0]["key"], "patient.weight_kg");
}

#[test]
fn policies_lists_sources_and_dates() {
    let output = run(&["policies"], None);
    let text = stdout(&output);
    for expected in [
        "eocco-0382",
        "EOCCO-0382",
        "version: 2023-03-31",
        "lines of business: medicaid, chip",
        "adult-relapsed-refractory (30 weeks)",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

#[test]
fn another_policy_directory_and_its_errors() {
    let dir = std::env::temp_dir().join(format!("priorauth-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy =
        std::fs::read_to_string(root().join("policies/masshealth-all-single-agent.toml")).unwrap();
    std::fs::write(dir.join("masshealth.toml"), &policy).unwrap();
    let output = run(
        &[
            "--policies",
            dir.to_str().unwrap(),
            "evaluate",
            case("E07.json").to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["results"].as_array().unwrap().len(), 1);

    std::fs::write(
        dir.join("masshealth.toml"),
        policy.replace(
            "fact = \"diagnosis.condition\"",
            "fact = \"diagnosis.kondition\"",
        ),
    )
    .unwrap();
    let output = run(&["--policies", dir.to_str().unwrap(), "policies"], None);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(
        message.contains("masshealth.toml:")
            && message.contains("unknown fact `diagnosis.kondition`"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generated_cases_feed_the_batch() {
    let generated = run(&["cases", "generate", "--count", "50", "--seed", "3"], None);
    assert!(generated.status.success());
    let output = run(&["evaluate", "--batch", "-"], Some(&stdout(&generated)));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 50);
}

#[test]
fn the_coverage_report_is_written_and_the_committed_copy_is_current() {
    let out = std::env::temp_dir().join(format!("priorauth-report-{}", std::process::id()));
    let root = root();
    let output = run(
        &[
            "report",
            "coverage",
            "--scenarios",
            root.join("config/scenarios.json").to_str().unwrap(),
            "--cases",
            root.join("tests/cases").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let markdown = std::fs::read_to_string(out.join("coverage.md")).unwrap();
    let html = std::fs::read_to_string(out.join("coverage.html")).unwrap();
    assert!(markdown.contains("| ◆ Adult, relapsed Ph-positive after imatinib only |"));
    assert!(markdown.contains(
        "**deny**: not met: relapsed or refractory to at least one second-generation or later TKI"
    ));
    assert!(html.contains("<td class=\"not_applicable\">") && !html.contains("<script"));
    let committed = std::fs::read_to_string(root.join("docs/coverage.md")).unwrap();
    assert_eq!(
        committed, markdown,
        "docs/coverage.md is stale: run `priorauth report coverage --out docs`"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn lint_diff_and_impact_from_the_command_line() {
    let root = root();
    let output = run(&["policy", "lint"], None);
    assert!(
        output.status.success(),
        "shipped policies lint clean: {}",
        stdout(&output)
    );
    let literal = root.join("crates/priorauth-core/tests/fixtures/eocco-0382-literal.toml");
    let output = run(&["policy", "lint", literal.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(5));
    assert!(stdout(&output).contains("[unsatisfiable:adult-consolidation]"));

    let current = root.join("policies/eocco-0382.toml");
    let output = run(
        &[
            "policy",
            "diff",
            current.to_str().unwrap(),
            literal.to_str().unwrap(),
        ],
        None,
    );
    assert!(stdout(&output).contains("changed  criterion adult-mrd-branch: [any of adult-mrd-positive, adult-mrd-negative] -> [all of"), "{}", stdout(&output));

    let generated = run(
        &["cases", "generate", "--count", "300", "--seed", "4"],
        None,
    );
    let cases = std::env::temp_dir().join(format!("priorauth-impact-{}.jsonl", std::process::id()));
    std::fs::write(&cases, &generated.stdout).unwrap();
    let output = run(
        &[
            "impact",
            "--from",
            current.to_str().unwrap(),
            "--to",
            literal.to_str().unwrap(),
            cases.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("300 cases"), "{}", stdout(&output));
    std::fs::remove_file(&cases).unwrap();
}
