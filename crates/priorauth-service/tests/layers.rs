//! The service's layers, read from its source: the lifecycle knows no HTTP and no FHIR, the
//! store knows neither the lifecycle nor an adapter, and no adapter imports another. Run with
//! `--nocapture` to print the import graph.
// A test's helpers: a failure to read the source is the test failing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The service's top-level modules and what each names of the others (`crate::x`).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for (module, files) in modules(&src) {
        let mut uses = BTreeSet::new();
        for file in files {
            let text = code_of(&file);
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module, uses);
    }
    graph
}

/// Each module (a file `x.rs` or a directory `x/`) with its files.
fn modules(src: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let files = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            modules.push((name, files));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            modules.push((name, vec![path]));
        }
    }
    modules
}

/// A file without its comments (docs may name an adapter; code may not).
fn code_of(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn text_of(module: &str) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    modules(&src)
        .into_iter()
        .filter(|(name, _)| name == module)
        .flat_map(|(_, files)| files)
        .map(|f| code_of(&f))
        .collect()
}

const ADAPTERS: [&str; 3] = ["api", "fhir", "console"];

#[test]
fn the_layers_hold() {
    let graph = import_graph();
    for (module, uses) in &graph {
        println!(
            "{module} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    // The lifecycle: records, keys and plans only; no HTTP, no FHIR.
    let lifecycle = &graph["lifecycle"];
    for name in lifecycle {
        assert!(
            ["store", "keys", "plans"].contains(&name.as_str()),
            "lifecycle imports {name}"
        );
    }
    let text = text_of("lifecycle");
    for framework in ["axum", "priorauth_fhir", "fhirbolt", "tower"] {
        assert!(!text.contains(framework), "lifecycle names {framework}");
    }
    // The store: no workflow, no adapter.
    for name in &graph["store"] {
        assert!(["keys"].contains(&name.as_str()), "store imports {name}");
    }
    // No adapter imports another, nor reaches the records around the lifecycle.
    for adapter in ADAPTERS {
        for name in &graph[adapter] {
            assert!(
                !ADAPTERS.contains(&name.as_str())
                    && !["notify", "ops", "store"].contains(&name.as_str()),
                "{adapter} imports {name}"
            );
        }
    }
    // Nothing below the adapters imports one of them.
    for module in ["lifecycle", "store", "keys", "plans", "web"] {
        for name in &graph[module] {
            assert!(
                !ADAPTERS.contains(&name.as_str()) && name != "notify" && name != "ops",
                "{module} imports {name}"
            );
        }
    }
}
