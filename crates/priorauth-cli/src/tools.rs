//! Policy tooling commands: lint.

use std::path::{Path, PathBuf};

use priorauth_core::{Engine, lint, policy};

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
