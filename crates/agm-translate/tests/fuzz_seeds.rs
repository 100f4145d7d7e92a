#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The fuzz targets on stable: every body of `fuzz/src/lib.rs` (the code the
//! cargo-fuzz targets in `fuzz/fuzz_targets/` run) over its seeds in
//! `fuzz/corpus/<target>/`, and over cuts and byte changes of each seed. A body panics
//! on a bug, so this fails when one does; it also fails when a seed no longer gets
//! past the first parse, or when the targets, their seed directories and their
//! cargo-fuzz files stop matching. See docs/TESTING.md, "Fuzzing".

#[path = "../../../fuzz/src/lib.rs"]
mod bodies;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The seeds of `target`, by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{} holds no seeds", dir.display());
    seeds
}

/// A seed and what is derived from it: its prefixes at every eighth of its length,
/// and at eight places one byte replaced by each of a few bytes that parsers care
/// about.
fn variants(seed: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("as is".to_owned(), seed.to_vec())];
    let len = seed.len();
    for k in 1..8 {
        let cut = len * k / 8;
        out.push((format!("cut at {cut}"), seed[..cut].to_vec()));
    }
    if len > 0 {
        for k in 0..8 {
            let at = len * k / 8;
            for byte in [b'"', b'{', b'\n', b'\r', b':', 0xFF, b'0'] {
                let mut changed = seed.to_vec();
                changed[at] = byte;
                out.push((format!("byte {at} set to {byte:#04x}"), changed));
            }
        }
    }
    out
}

fn run(target: &str) {
    let body = bodies::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .unwrap_or_else(|| panic!("no target {target}"));
    let mut failures = Vec::new();
    for (name, seed) in seeds(target) {
        for (variant, data) in variants(&seed) {
            match catch_unwind(AssertUnwindSafe(|| body(&data))) {
                Ok(reached) => {
                    if variant == "as is" && !reached {
                        failures.push(format!(
                            "{name}: the seed no longer gets past the first parse"
                        ));
                    }
                }
                Err(_) => failures.push(format!("{name} ({variant}): the body panicked")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz target {target}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn sse() {
    run("sse");
}

#[test]
fn schema() {
    run("schema");
}

#[test]
fn anthropic_request() {
    run("anthropic_request");
}

#[test]
fn openai_chat_request() {
    run("openai_chat_request");
}

#[test]
fn openai_responses_request() {
    run("openai_responses_request");
}

#[test]
fn anthropic_stream() {
    run("anthropic_stream");
}

#[test]
fn openai_chat_stream() {
    run("openai_chat_stream");
}

#[test]
fn openai_responses_stream() {
    run("openai_responses_stream");
}

#[test]
fn model_name() {
    run("model_name");
}

#[test]
fn gemini_path() {
    run("gemini_path");
}

#[test]
fn header_value() {
    run("header_value");
}

#[test]
fn the_stream_targets_requests_still_translate() {
    assert!(bodies::anthropic_context().is_some());
    assert!(bodies::openai_chat_context().is_some());
    assert!(bodies::openai_responses_context().is_some());
}

/// The stems of the files in `dir` with extension `ext` (all entries if `None`).
fn names_in(dir: &Path, ext: Option<&str>) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| ext.is_none_or(|ext| path.extension().is_some_and(|e| e == ext)))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_target_has_seeds_a_cargo_fuzz_file_and_a_test() {
    let targets: BTreeSet<String> = bodies::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    assert_eq!(
        targets.len(),
        bodies::TARGETS.len(),
        "duplicate target names"
    );
    let fuzz = fuzz_dir();
    assert_eq!(names_in(&fuzz.join("corpus"), None), targets);
    assert_eq!(names_in(&fuzz.join("fuzz_targets"), Some("rs")), targets);
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    let this =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_seeds.rs"))
            .unwrap();
    for target in &targets {
        assert!(
            manifest.contains(&format!(
                "name = \"{target}\"\npath = \"fuzz_targets/{target}.rs\""
            )),
            "fuzz/Cargo.toml has no [[bin]] for {target}"
        );
        assert!(
            this.contains(&format!("run(\"{target}\")")),
            "no test here runs {target}"
        );
    }
}
