//! Policy tooling commands: lint, diff, impact, the coverage report.

use std::path::{Path, PathBuf};

use std::io::BufRead;

use priorauth_core::{Engine, change, landscape, lint, policy};

/// Prints the findings; true when every finding is acknowledged.
pub fn lint(engine: &Engine, files: &[PathBuf]) -> Result<bool, String> {
    let mut findings = Vec::new();
    if files.is_empty() {
        for policy in &engine.policies {
            let source = Engine::source_document(policy);
            findings.extend(no_source(policy, source.as_deref()));
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
        match engine.load_policy(&file.display().to_string(), &text) {
            Ok(policy) => {
                let source = Engine::source_document(&policy);
                findings.extend(no_source(&policy, source.as_deref()));
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
        outln!(
            "{}:{}: [{}] {}{mark}",
            finding.file,
            finding.line,
            finding.code,
            finding.message
        );
        if !finding.words.is_empty() {
            outln!("    \"{}\"", finding.words);
        }
    }
    let open = findings.iter().filter(|f| !f.acknowledged).count();
    outln!("{} findings, {open} not acknowledged", findings.len());
    Ok(clean)
}

/// A finding when a policy's source document cannot be found: its quotes cannot be checked,
/// which must not pass for "no finding".
fn no_source(policy: &policy::Policy, source: Option<&str>) -> Option<lint::Finding> {
    source.is_none().then(|| lint::Finding {
        file: policy.file.clone(),
        line: 1,
        code: "source".into(),
        message: format!(
            "source document `{}` (source_file) is neither in `sources/` beside the policy nor bundled: its quotes cannot be checked",
            policy.source_file
        ),
        words: String::new(),
        acknowledged: false,
    })
}

fn load(engine: &Engine, file: &Path) -> Result<policy::Policy, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    engine
        .load_policy(&file.display().to_string(), &text)
        .map_err(|e| e.to_string())
}

pub fn diff(engine: &Engine, old: &Path, new: &Path) -> Result<(), String> {
    let (old, new) = (load(engine, old)?, load(engine, new)?);
    let changes = change::diff(&old, &new);
    for change in &changes {
        outln!("{:<8} {}: {}", change.kind, change.what, change.detail);
    }
    outln!("{} changes", changes.len());
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
    outln!(
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
        outln!(
            "{mark} {:<15} -> {:<15} {count:>8}  {}",
            before.as_str(),
            after.as_str(),
            ids.join(", ")
        );
    }
    outln!(
        "approvals under both whose terms change: {}",
        impact.terms_changed()
    );
    for ((what, before, after), (count, ids)) in &impact.terms {
        outln!(
            "* {what:<15} {before:>5} -> {after:<5} {count:>8}  {}",
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
    outln!(
        "{} scenarios x {} policies ({differing} where payers differ): {}",
        landscape.rows.len(),
        landscape.policies.len(),
        out.join("coverage.html").display()
    );
    Ok(())
}

/// Lists every fact a policy may read.
pub fn facts(engine: &Engine) -> Result<(), String> {
    use priorauth_core::facts::{CASE_KEYS, FACTS, FactType};
    let type_of = |fact_type: FactType| match fact_type {
        FactType::Bool => "bool".to_string(),
        FactType::Number => "number".to_string(),
        FactType::Enum(values) => format!("one of {}", values.join(", ")),
        FactType::Drug => format!("one of {}", engine.drug_names().join(", ")),
    };
    let mut out = String::new();
    out.push_str("# Facts of the case format (docs/case-format.md)\n");
    for def in FACTS {
        let origin = if def.description.starts_with("derived") {
            "derived"
        } else if CASE_KEYS.contains(&def.name) {
            "case key"
        } else {
            "case"
        };
        out.push_str(&format!(
            "{}  [{origin}] {}\n    {}\n",
            def.name,
            type_of(def.fact_type),
            def.description
        ));
    }
    out.push_str("\n# Facts declared in data (facts.toml), given in a case's `facts` object\n");
    if engine.declared.is_empty() {
        out.push_str("(none)\n");
    }
    for id in &engine.declared {
        let Some(declared) = id.declaration() else {
            continue;
        };
        let kinds: Vec<&str> = priorauth_core::case::RequestKind::VARIANTS
            .iter()
            .enumerate()
            .filter(|(i, _)| declared.kinds & (1 << i) != 0)
            .map(|(_, k)| *k)
            .collect();
        let shape = match declared.value_type {
            priorauth_core::declared::DeclaredType::Number { min, max } => format!(
                "number {min} to {max}{}",
                declared.unit.map_or(String::new(), |u| format!(" {u}"))
            ),
            priorauth_core::declared::DeclaredType::Date => {
                "date (read as days before the day of receipt)".to_string()
            }
            _ => type_of(declared.def.fact_type),
        };
        out.push_str(&format!(
            "{}  [declared] {shape}; asked for {}\n    {}\n",
            declared.def.name,
            kinds.join(", "),
            declared.def.description
        ));
    }
    crate::write_stdout(&out)
}

/// Writes a policy file to start from, and says what else the policy needs.
pub fn new_policy(
    engine: &Engine,
    id: &str,
    drug: &str,
    payer: &str,
    out: &Path,
) -> Result<(), String> {
    let valid_id = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_id {
        return Err(format!(
            "policy id `{id}` must be lowercase letters, digits and `-`"
        ));
    }
    if !engine.drug_names().iter().any(|d| d == drug) {
        return Err(format!(
            "unknown drug `{drug}` (--drug): the catalog has {}; add a drug to drugs.toml first",
            engine.drug_names().join(", ")
        ));
    }
    if payer.contains('"') || payer.contains('\n') {
        return Err("--payer: one line without quotes".into());
    }
    let path = out.join(format!("{id}.toml"));
    if path.exists() {
        return Err(format!("{} exists already", path.display()));
    }
    let text = NEW_POLICY
        .replace("{id}", id)
        .replace("{drug}", drug)
        .replace("{payer}", payer);
    // The template must load: a scaffold that does not is no start.
    engine
        .load_policy(&path.display().to_string(), &text)
        .map_err(|e| format!("the template does not load (a bug): {e}"))?;
    std::fs::create_dir_all(out.join("sources"))
        .map_err(|e| format!("cannot create {}: {e}", out.join("sources").display()))?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    crate::write_stdout(&format!(
        "wrote {path}\n\nNext:\n  1. Put the payer's document in {sources}/{id}.txt (plain text); every `quote` must be in it.\n  2. Write the criteria (docs/policy-format.md); facts the case format lacks go in facts.toml.\n  3. Check: priorauth --policies {dir} policy lint\n  4. Decide a case: priorauth --policies {dir} evaluate CASE.json\n  5. For the service, add a plan to a copy of config/plans.toml and run\n     priorauth --policies {dir} serve --plans PLANS.toml\n\n[[plan]]\nid = \"{id}-commercial\"\nname = \"{payer}, commercial\"\nline_of_business = \"commercial\"\npolicies = {{ {drug} = \"{id}\" }}\nclocks = {{ standard_hours = 72, expedited_hours = 24 }}\nappeal = \"You may appeal within 180 days of this notice.\"\n",
        path = path.display(),
        sources = out.join("sources").display(),
        dir = out.display(),
    ))
}

const NEW_POLICY: &str = r#"# {payer}: policy {id}.
# Source text: sources/{id}.txt. Every criterion cites the sentence it encodes (`section`,
# `quote`); an interpretation of unclear text is written in `interpretation`, with the words
# it interprets. docs/policy-format.md describes every key.

id = "{id}"
title = "{payer} policy {id}"
payer = "{payer}"
document = "{id}"
source_file = "{id}.txt"
version = "1"
effective = "2026-01-01"

# What a request beyond the pathway's dosing gets: "deny", "review" or "incomplete".
dosing_outside = "review"

[dosing_outside_source]
section = "DOSING"
quote = "REPLACE with the document's dosing sentence"

[applies]
drugs = ["{drug}"]
lines_of_business = ["commercial"]
section = "APPLICABILITY"
quote = "REPLACE with the sentence naming the plans it applies to"

[[pathway]]
id = "initial"
title = "Initial authorization"
kinds = ["initial"]
outcome = "approve"
criteria = ["adult"]
authorization = { months = 6 }
[pathway.authorization_source]
section = "COVERAGE CRITERIA"
quote = "REPLACE with the sentence stating the approval's length"

[criteria.adult]
text = "member 18 years of age or older"
section = "COVERAGE CRITERIA"
quote = "REPLACE with the criterion's sentence"
fact = "patient.age_years"
ge = 18
"#;
