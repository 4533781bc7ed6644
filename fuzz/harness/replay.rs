//! Replays a target's inputs without cargo-fuzz, for the regression tests of the crates the
//! targets fuzz (`crates/priorauth-core/tests/fuzz_regressions.rs`): included there with
//! `#[path]`, next to the target's own `harness/TARGET.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Far above any input's time in an unoptimized test build, far below a runaway search's.
const SLOW: Duration = Duration::from_secs(10);

/// `fuzz/`, from a crate under `crates/`.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/SUBDIR` (`corpus/case`, `regressions/policy`), in name order.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| match entry {
                Ok(entry) => entry.path(),
                Err(error) => panic!("{}: {error}", dir.display()),
            })
            .filter(|path| path.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs every input of `fuzz/SUBDIR` through a target's `run`, checking what a target cannot
/// check alone: its output is JSON, its error has a message, and no input is slow. Returns
/// how many inputs were (decided, rejected).
pub fn replay(subdir: &str, run: fn(&[u8]) -> Result<String, String>) -> (usize, usize) {
    let (mut decided, mut rejected) = (0, 0);
    for path in inputs(&fuzz_dir().join(subdir)) {
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(error) => panic!("{}: {error}", path.display()),
        };
        let started = Instant::now();
        match run(&data) {
            Ok(output) => {
                // The first JSON document of the output (a target may concatenate several).
                let first = serde_json::Deserializer::from_str(&output)
                    .into_iter::<serde_json::Value>()
                    .next();
                assert!(
                    matches!(first, Some(Ok(_))),
                    "{}: the output is not JSON: {first:?}",
                    path.display()
                );
                decided += 1;
            }
            Err(message) => {
                assert!(
                    !message.is_empty(),
                    "{}: an error without a message",
                    path.display()
                );
                rejected += 1;
            }
        }
        let took = started.elapsed();
        assert!(took < SLOW, "{} took {took:?}", path.display());
    }
    (decided, rejected)
}
