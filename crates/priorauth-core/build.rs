//! Bundles the policy files and their source documents into the library, so that the
//! binary needs nothing installed beside it.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut code = String::from(
        "/// Policy files bundled at build time: (file name, text).\npub const POLICY_FILES: &[(&str, &str)] = &[\n",
    );
    let mut sources = String::from(
        "/// Source documents bundled at build time: (file name, text).\npub const SOURCE_FILES: &[(&str, &str)] = &[\n",
    );
    for (dir, out) in [
        (root.clone(), &mut code),
        (root.join("sources"), &mut sources),
    ] {
        let mut files: Vec<_> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for path in files {
            println!("cargo::rerun-if-changed={}", path.display());
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let wanted = if out.starts_with("/// Policy") {
                name.ends_with(".toml")
            } else {
                name.ends_with(".txt")
            };
            if wanted {
                let _ = writeln!(
                    out,
                    "    ({name:?}, include_str!({:?})),",
                    path.display().to_string()
                );
            }
        }
        out.push_str("];\n");
    }
    code.push_str(&sources);
    let out = Path::new(&env::var("OUT_DIR").unwrap_or_default()).join("bundled.rs");
    if let Err(error) = fs::write(&out, code) {
        println!("cargo::error=cannot write {}: {error}", out.display());
    }
}
