//! Replays every committed fuzz corpus file and crash regression (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' own checks, on stable, without cargo-fuzz.
// Harness code outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

// The targets' checks, shared with the cargo-fuzz binaries.
#[allow(dead_code)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; `required` makes a missing or empty directory a failure.
fn files(dir: &Path, required: bool) -> Vec<PathBuf> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("corpus directory {} cannot be read: {e}", dir.display()),
    };
    let mut files: Vec<PathBuf> = listing
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !required || !files.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    files
}

/// Runs every input of `target` and reports which one failed, by path.
fn replay(name: &str) -> usize {
    let target = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let mut inputs = files(&fuzz_dir().join("corpus").join(name), true);
    inputs.extend(files(&fuzz_dir().join("regressions").join(name), false));
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{name}: {} fails: {message}", path.display());
        }
    }
    println!("{name}: replayed {} inputs", inputs.len());
    inputs.len()
}

/// Every input of every target passes its checks.
#[test]
fn every_corpus_and_regression_replays() {
    for (name, _) in targets::TARGETS {
        assert!(replay(name) > 0, "{name}");
    }
}

/// Every target is replayed, and every corpus directory belongs to a target.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "connection_response",
            "message",
            "upgrade_params",
            "client_session",
            "round_trip",
            "topic_session",
            "apply_delta",
            "selector",
            "value_decode"
        ]
    );
    for kind in ["corpus", "regressions"] {
        for dir in std::fs::read_dir(fuzz_dir().join(kind)).unwrap() {
            let dir = dir.unwrap().file_name().to_string_lossy().into_owned();
            assert!(names.contains(&dir.as_str()), "fuzz/{kind}/{dir} is no target's");
        }
    }
}
