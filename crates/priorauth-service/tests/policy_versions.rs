//! A policy version that has decided requests is kept as it was: the service stores the
//! facts of a decision and recomputes its explanation under the version that made it, so a
//! version changed in place would explain old decisions with words they were not given
//! (reads would show them as unverified). `policies/versions.lock` records the SHA-256 of
//! every version's file, of the drug catalog and of each declared fact (`facts.toml`: a
//! declaration's type, bounds or meaning read stored cases); this test fails when one
//! changes. Declaring a new fact adds a line; changing a declared one is a new name.
//!
//! A new version (a new file, or a new `version` in a new file) is added to the lock with
//! `UPDATE_POLICY_LOCK=1 cargo test -p priorauth-service --test policy_versions`, which
//! never rewrites a recorded line: correcting a released version in place is a deliberate
//! edit of its line, with the reason in the commit.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// The first `key = "value"` at the top level of a policy file (before any table).
fn top_level(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|line| !line.trim_start().starts_with("[["))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// (`id version`, SHA-256) of every policy file and of the drug catalog.
fn versions() -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if path.file_stem().is_some_and(|s| s == "facts") {
            for (name, hash) in declarations(&text) {
                assert!(
                    versions.insert(name.clone(), hash).is_none(),
                    "{name}: twice"
                );
            }
            continue;
        }
        let name = if path.file_stem().is_some_and(|s| s == "drugs") {
            "drugs catalog".to_string()
        } else {
            let id = top_level(&text, "id").expect("a policy id");
            let version = top_level(&text, "version").expect("a policy version");
            format!("{id} {version}")
        };
        let hash = hex(&Sha256::digest(text.as_bytes()));
        assert!(
            versions.insert(name.clone(), hash).is_none(),
            "{name}: two files"
        );
    }
    versions
}

/// (`fact NAME`, SHA-256 of its `[[fact]]` block) of each declaration of a facts.toml.
fn declarations(text: &str) -> Vec<(String, String)> {
    text.split("\n[[fact]]")
        .skip(1)
        .map(|block| {
            let name = block
                .lines()
                .filter_map(|line| line.split_once('='))
                .find(|(k, _)| k.trim() == "name")
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .expect("a declared fact's name");
            // A comment after the last declaration is not part of it.
            let block = block.trim_end();
            (
                format!("fact {name}"),
                hex(&Sha256::digest(block.as_bytes())),
            )
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_released_policy_version_is_never_changed_in_place() {
    let lock_path = policies_dir().join("versions.lock");
    let lock_text = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let mut locked = BTreeMap::new();
    for line in lock_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, hash) = line.rsplit_once(' ').expect("`id version sha256`");
        locked.insert(name.to_string(), hash.to_string());
    }
    let mut missing = Vec::new();
    for (name, hash) in versions() {
        match locked.get(&name) {
            Some(recorded) => assert_eq!(
                recorded, &hash,
                "{name} was changed in place: a version that decided requests is kept as it \
                 was; give the change a new version (see this test's doc)"
            ),
            None => missing.push((name, hash)),
        }
    }
    if missing.is_empty() {
        return;
    }
    if std::env::var_os("UPDATE_POLICY_LOCK").is_some() {
        let mut text = lock_text;
        for (name, hash) in &missing {
            text.push_str(&format!("{name} {hash}\n"));
        }
        std::fs::write(&lock_path, text).unwrap();
    } else {
        panic!(
            "policies/versions.lock lacks {missing:?}: add new versions with \
             UPDATE_POLICY_LOCK=1 (see this test's doc)"
        );
    }
}
