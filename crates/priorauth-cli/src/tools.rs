//! Policy tooling commands: lint, diff, impact, the coverage report.

use std::path::{Path, PathBuf};

use std::io::BufRead;

use priorauth_core::{Engine, change, landscape, lint, policy};

/// Prints the findings; true when every finding is acknowledged.
pub fn lint(engine: &Engine, files: &[PathBuf]) -> Result<bool, String> {
    let mut findings = Vec::new();
    if files.is_empty() {
        for policy in &engine.policies {
            let source = Engine::bundled_source(&policy.source_file).map(str::to_string);
            findings.extend(lint::lint(
                policy,
                source.as_deref(),
                engine.catalog.drugs.len(),
            ));
        }
    }
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
        match policy::load_policy(&file.display().to_string(), &text, engine.drug_names()) {
            Ok(policy) => {
                let source = source_text(file, &policy.source_file);
                findings.extend(lint::lint(
                    &policy,
                    source.as_deref(),
                    engine.catalog.drugs.len(),
                ));
            }
            Err(error) => findings.push(lint::Finding {
                file: error.file.clone(),
                line: error.line,
                code: "load".into(),
                message: error.message.clone(),
                words: String::new(),
                acknowledged: false,
            }),
        }
    }
    let mut clean = true;
    for finding in &findings {
        clean &= finding.acknowledged;
        let mark = if finding.acknowledged {
            " (acknowledged)"
        } else {
            ""
        };
        println!(
            "{}:{}: [{}] {}{mark}",
            finding.file, finding.line, finding.code, finding.message
        );
        if !finding.words.is_empty() {
            println!("    \"{}\"", finding.words);
        }
    }
    let open = findings.iter().filter(|f| !f.acknowledged).count();
    println!("{} findings, {open} not acknowledged", findings.len());
    Ok(clean)
}

/// The document beside a policy file (`sources/<name>`), else the bundled one.
fn source_text(file: &Path, name: &str) -> Option<String> {
    let beside = file.parent().map(|dir| dir.join("sources").join(name));
    beside
        .and_then(|p| std::fs::read_to_string(p).ok())
        .or_else(|| Engine::bundled_source(name).map(str::to_string))
}

fn load(engine: &Engine, file: &Path) -> Result<policy::Policy, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    policy::load_policy(&file.display().to_string(), &text, engine.drug_names())
        .map_err(|e| e.to_string())
}

pub fn diff(engine: &Engine, old: &Path, new: &Path) -> Result<(), String> {
    let (old, new) = (load(engine, old)?, load(engine, new)?);
    let changes = change::diff(&old, &new);
    for change in &changes {
        println!("{:<8} {}: {}", change.kind, change.what, change.detail);
    }
    println!("{} changes", changes.len());
    Ok(())
}

pub fn impact(
    engine: &Engine,
    from: &Path,
    to: &Path,
    cases: &Path,
    examples: usize,
) -> Result<(), String> {
    let (old, new) = (load(engine, from)?, load(engine, to)?);
    let file = std::fs::File::open(cases)
        .map_err(|e| format!("cannot read `{}`: {e}", cases.display()))?;
    let mut parsed = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read line {}: {e}", number + 1))?;
        if !line.trim().is_empty() {
            parsed.push(
                engine
                    .parse_case(&line)
                    .map_err(|e| format!("line {}: {e}", number + 1))?,
            );
        }
    }
    let impact = change::impact(engine, &old, &new, &parsed, examples);
    println!(
        "{} ({}) -> {} ({}): {} cases, {} outcomes move",
        old.id,
        old.version,
        new.id,
        new.version,
        impact.cases,
        impact.moved()
    );
    for ((before, after), (count, ids)) in &impact.moves {
        let mark = if before == after { " " } else { "*" };
        println!(
            "{mark} {:<15} -> {:<15} {count:>8}  {}",
            before.as_str(),
            after.as_str(),
            ids.join(", ")
        );
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct ScenariosFile {
    scenarios: Vec<ScenarioSpec>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    id: String,
    title: String,
    /// An example case of the cases directory, by file stem.
    base: String,
    /// `section.key` -> value.
    #[serde(default)]
    set: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Reads the scenarios (a base example case and the facts that change) and writes the
/// landscape as HTML and Markdown.
pub fn coverage(engine: &Engine, scenarios: &Path, cases: &Path, out: &Path) -> Result<(), String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    };
    let file: ScenariosFile = serde_json::from_str(&read(scenarios)?)
        .map_err(|e| format!("{}: {e}", scenarios.display()))?;
    let mut list = Vec::new();
    for spec in file.scenarios {
        let path = cases.join(format!("{}.json", spec.base));
        let mut case: serde_json::Value =
            serde_json::from_str(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        let object = case
            .as_object_mut()
            .ok_or_else(|| format!("{}: not an object", path.display()))?;
        for (key, value) in spec.set {
            let (section, field) = key
                .split_once('.')
                .ok_or_else(|| format!("scenario `{}`: `{key}` is not section.key", spec.id))?;
            let section = object
                .entry(section)
                .or_insert_with(|| serde_json::json!({}));
            if !section.is_object() {
                *section = serde_json::json!({});
            }
            if let Some(section) = section.as_object_mut() {
                section.insert(field.to_string(), value);
            }
        }
        object.insert("id".into(), serde_json::Value::from(spec.id.clone()));
        let case = engine
            .parse_case(&case.to_string())
            .map_err(|e| format!("scenario `{}`: {e}", spec.id))?;
        list.push(landscape::Scenario {
            id: spec.id,
            title: spec.title,
            case,
        });
    }
    let landscape = landscape::build(engine, list);
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create `{}`: {e}", out.display()))?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    write("coverage.html", landscape::html(&landscape))?;
    write("coverage.md", landscape::markdown(&landscape))?;
    let differing = landscape
        .rows
        .iter()
        .filter(|(_, _, differs)| *differs)
        .count();
    println!(
        "{} scenarios x {} policies ({differing} where payers differ): {}",
        landscape.rows.len(),
        landscape.policies.len(),
        out.join("coverage.html").display()
    );
    Ok(())
}
