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
            "masshealth-all-single-agent",
            "northwind-rx-onc-118"
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
            "--explain",
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

/// A copy of `tests/authoring/acme` (a policy and the facts it declares, not bundled) in a
/// fresh temporary directory.
fn authored_policy_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("priorauth-authoring-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sources")).unwrap();
    let from = root().join("tests/authoring/acme");
    for name in ["acme-widget.toml", "facts.toml", "sources/acme-widget.txt"] {
        std::fs::copy(from.join(name), dir.join(name)).unwrap();
    }
    dir
}

fn authored_case(facts: Value) -> String {
    let mut case: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/authoring/acme-case.json")).unwrap(),
    )
    .unwrap();
    case["facts"] = facts;
    case.to_string()
}

#[test]
fn a_policy_and_its_declared_facts_load_from_a_directory_and_decide() {
    let dir = authored_policy_dir("decide");
    let dir = dir.to_str().unwrap();
    let decide = |facts: Value| {
        let output = run(
            &["--policies", dir, "evaluate", "-", "--format", "json"],
            Some(&authored_case(facts)),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
        report["results"][0].clone()
    };
    // Met: every declared fact given and within the policy.
    let met = decide(
        serde_json::json!({"labs.qtc": 452, "labs.ecg_date": "2026-05-10", "diagnosis.tp53": "wild_type"}),
    );
    assert_eq!(met["policy"], "acme-widget");
    assert_eq!(met["outcome"], "approve", "{met}");
    assert_eq!(met["quantity"]["cycles"], 2, "{met}");
    // Not met: each declared fact on the wrong side.
    for (key, value) in [
        ("labs.qtc", serde_json::json!(480)),
        ("labs.ecg_date", serde_json::json!("2026-05-03")),
        ("diagnosis.tp53", serde_json::json!("mutated")),
    ] {
        let mut facts = serde_json::json!({"labs.qtc": 452, "labs.ecg_date": "2026-05-10", "diagnosis.tp53": "wild_type"});
        facts[key] = value;
        let not_met = decide(facts);
        assert_eq!(not_met["outcome"], "deny", "{key}: {not_met}");
    }
    // Unknown: absent or null, and asked for by name.
    for key in ["labs.qtc", "labs.ecg_date", "diagnosis.tp53"] {
        let mut facts = serde_json::json!({"labs.qtc": 452, "labs.ecg_date": "2026-05-10", "diagnosis.tp53": "wild_type"});
        facts[key] = Value::Null;
        let unknown = decide(facts);
        assert_eq!(unknown["outcome"], "incomplete", "{key}: {unknown}");
        assert_eq!(
            unknown["missing"],
            serde_json::json!([key]),
            "{key}: {unknown}"
        );
    }
    // The policy's source document is read beside it: its quotes are checked.
    let lint = run(&["--policies", dir, "policy", "lint"], None);
    assert_eq!(lint.status.code(), Some(0), "{}", stdout(&lint));
    assert!(
        stdout(&lint).contains("0 not acknowledged"),
        "{}",
        stdout(&lint)
    );
    let facts = run(&["--policies", dir, "policy", "facts"], None);
    assert!(
        stdout(&facts).contains("labs.qtc  [declared] number 200 to 800 ms; asked for initial"),
        "{}",
        stdout(&facts)
    );
}

#[test]
fn a_declared_fact_of_the_wrong_type_or_name_is_bad_input_naming_it() {
    let dir = authored_policy_dir("bad");
    let dir = dir.to_str().unwrap();
    for (facts, key) in [
        (serde_json::json!({"labs.qtc": 5000}), "facts.labs.qtc"),
        (serde_json::json!({"labs.qtc": "452"}), "facts.labs.qtc"),
        (
            serde_json::json!({"labs.ecg_date": "2026-05-19"}),
            "facts.labs.ecg_date",
        ),
        (
            serde_json::json!({"diagnosis.tp53": "unknown"}),
            "facts.diagnosis.tp53",
        ),
        (serde_json::json!({"labs.qtc_ms": 452}), "facts.labs.qtc_ms"),
    ] {
        let output = run(
            &["--policies", dir, "evaluate", "-"],
            Some(&authored_case(facts.clone())),
        );
        assert_eq!(output.status.code(), Some(1), "{facts}");
        assert!(
            stderr(&output).contains(&format!("`{key}`")),
            "{facts}: {}",
            stderr(&output)
        );
    }
    // A quote missing from the source document is a finding, not "0 findings".
    let policy = Path::new(dir).join("acme-widget.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace("TP53 is wild type\"", "TP53 is not mutated\""),
    )
    .unwrap();
    let lint = run(&["--policies", dir, "policy", "lint"], None);
    assert_eq!(lint.status.code(), Some(5), "{}", stdout(&lint));
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    // `priorauth policies | head -1`: the reader goes after one line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_priorauth"))
        .args(["policy", "facts"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    // Bad input reported before the reader went keeps its status: `… | grep -q` must not
    // hide it.
    let bad = std::env::temp_dir().join(format!("priorauth-pipe-{}.json", std::process::id()));
    std::fs::write(&bad, "{\"x\": 1}").unwrap();
    let mut args = vec!["evaluate".to_string(), bad.to_str().unwrap().to_string()];
    args.extend(std::iter::repeat_n(
        case("E01.json").to_str().unwrap().to_string(),
        200,
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_priorauth"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn text_is_a_summary_row_per_policy_and_several_files_decide_past_an_invalid_one() {
    let bad = std::env::temp_dir().join(format!("priorauth-bad-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"patient": {"weight_kg": -3}}"#).unwrap();
    let files = [
        case("E06.json").to_str().unwrap().to_string(),
        bad.to_str().unwrap().to_string(),
        case("E01.json").to_str().unwrap().to_string(),
    ];
    let args = |extra: &[&str]| {
        let mut args = vec!["evaluate"];
        args.extend(files.iter().map(String::as_str));
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run_owned =
        |args: Vec<String>| run(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    // Text, piped: plain rows (no color codes), one per policy; the invalid file is named
    // on standard error and the next file is still decided; exit 1 at the end.
    let text = run_owned(args(&["--policy", "eocco-0382"]));
    assert_eq!(text.status.code(), Some(1));
    let rows = stdout(&text);
    assert!(
        rows.contains("case E06\n  eocco-0382  INCOMPLETE      missing: diagnosis.mrd_percent"),
        "{rows}"
    );
    assert!(rows.contains("case E01\n  eocco-0382  APPROVE "), "{rows}");
    assert!(!rows.contains('\x1b'), "{rows}");
    assert!(
        stderr(&text).contains("patient.weight_kg"),
        "{}",
        stderr(&text)
    );
    assert!(
        stderr(&text).contains("1 of 3 case files invalid"),
        "{}",
        stderr(&text)
    );
    // JSON for several files: one document per line, the invalid file an error line.
    let json = run_owned(args(&["--format", "json"]));
    assert_eq!(json.status.code(), Some(1));
    let lines: Vec<Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["case"], "E06");
    assert_eq!(lines[1]["problems"][0]["key"], "patient.weight_kg");
    assert_eq!(lines[2]["case"], "E01");
    // A batch in text: summary rows, and the summary of the run on standard error.
    let batch = run(
        &["evaluate", "--batch", "-", "--format", "text"],
        Some(&format!(
            "{}\n{}\n",
            std::fs::read_to_string(case("E01.json"))
                .unwrap()
                .replace('\n', " "),
            std::fs::read_to_string(case("E06.json"))
                .unwrap()
                .replace('\n', " ")
        )),
    );
    assert_eq!(batch.status.code(), Some(0), "{}", stderr(&batch));
    assert!(
        stdout(&batch).starts_with("case E01\n"),
        "{}",
        stdout(&batch)
    );
    assert!(
        stderr(&batch).contains("2 cases decided"),
        "{}",
        stderr(&batch)
    );
}

/// docs/policy-format.md lists every fact as `priorauth policy facts` prints it.
#[test]
fn the_policy_format_lists_every_fact_as_policy_facts_prints_it() {
    let output = run(&["policy", "facts"], None);
    assert!(output.status.success());
    let doc = std::fs::read_to_string(root().join("docs/policy-format.md")).unwrap();
    let begin = "<!-- policy facts: begin -->\n```text\n";
    let end = "```\n<!-- policy facts: end -->";
    let listed = doc
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(listed, _)| listed)
        .expect("the markers in docs/policy-format.md");
    assert_eq!(
        listed,
        stdout(&output),
        "docs/policy-format.md is stale: put the output of `priorauth policy facts` between its markers"
    );
}

/// Keys as an administrator manages them from the command line: created, listed (never a
/// secret), revoked once.
#[test]
fn keys_are_created_listed_and_revoked() {
    let dir = std::env::temp_dir().join(format!("priorauth-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.sqlite").display());
    let keys = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_priorauth"))
            .arg("keys")
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        (output.status.code(), stdout(&output), stderr(&output))
    };
    let (code, created, _) = keys(&[
        "create",
        "--organization",
        "payer",
        "--role",
        "admin",
        "--name",
        "First admin",
    ]);
    assert_eq!(code, Some(0));
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    let secret = created
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap()
        .to_string();
    let (code, listed, _) = keys(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        listed.contains(&format!("{id}\tpayer\tadmin\tFirst admin\t")),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "a secret is never listed");
    assert!(listed.trim_end().ends_with("\t-"), "not revoked: {listed}");
    assert_eq!(keys(&["revoke", &id]).0, Some(0));
    let (_, listed, _) = keys(&["list"]);
    assert!(!listed.trim_end().ends_with("\t-"), "revoked: {listed}");
    let (code, _, message) = keys(&["revoke", &id]);
    assert_eq!(code, Some(1));
    assert!(message.contains("no active key"), "{message}");
}

/// The payer's eligibility loaded from a file: every row checked before any is written, each
/// problem naming its line and field; a good file written whole, and again without doubling.
#[test]
fn eligibility_is_imported_whole_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("priorauth-members-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("members.sqlite").display());
    let import = |text: &str| {
        let file = dir.join("eligibility.csv");
        std::fs::write(&file, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_priorauth"))
            .args(["members", "import"])
            .arg(&file)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        (output.status.code(), stderr(&output))
    };
    let header = "member_id,plan,effective_from,effective_to,birth_date\n";
    let (code, message) = import(&format!(
        "{header}M-1,eocco-medicaid,2026-01-01,,\nM-2,no-such-plan,2026-02-30,,\n"
    ));
    assert_eq!(code, Some(1), "{message}");
    assert!(
        message.contains("line 3: plan: `no-such-plan` is not a plan"),
        "{message}"
    );
    assert!(message.contains("line 3: effective_from"), "{message}");
    let count = || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = priorauth_service::Store::connect(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            store.pool.close().await;
            n
        })
    };
    assert_eq!(count(), 0, "nothing of a refused file is written");
    let good = format!(
        "{header}M-1,eocco-medicaid,2026-01-01,,\nM-2,eocco-medicaid,2025-01-01,2025-12-31,1980-04-05\n"
    );
    let (code, message) = import(&good);
    assert_eq!(code, Some(0), "{message}");
    assert!(message.contains("imported 2 enrolments"), "{message}");
    assert_eq!(import(&good).0, Some(0));
    assert_eq!(
        count(),
        2,
        "a row with the same member, plan and first day is replaced"
    );
}
