//! Runs the shared NetworkPolicy/ANP/BANP corpus and the project's Cilium cases through
//! the evaluator; every expected entry must hold.

use std::path::{Path, PathBuf};

use netpol::conformance::Case;
use netpol::Options;

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Runs every case of `dir`; returns (passed entries, failure descriptions).
fn run_dir(dir: &Path) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut failures = Vec::new();
    for file in case_files(dir) {
        let case = Case::load(&file).unwrap();
        let result = case.run(Options::default()).unwrap();
        passed += result.passed;
        for f in result.failures {
            failures.push(format!(
                "{}: {} -> {}: got {}",
                result.name, f.expected.src, f.expected.dst, f.got
            ));
        }
    }
    (passed, failures)
}

#[test]
fn shared_netpol_corpus_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/netpol/cases");
    let (passed, failures) = run_dir(&dir);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The corpus README counts 49,369 expected entries over 88 cases.
    assert_eq!(passed, 49_369);
}

#[test]
fn cilium_cases_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cilium");
    assert!(case_files(&dir).len() >= 40);
    let (passed, failures) = run_dir(&dir);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed >= 120);
}

#[test]
fn a_wrong_expectation_is_reported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cilium");
    let mut case = Case::load(&dir.join("from_cidr.json")).unwrap();
    for e in &mut case.expected {
        e.allowed = e.allowed.map(|a| !a);
    }
    let result = case.run(Options::default()).unwrap();
    assert_eq!(result.passed, 0);
    assert_eq!(result.failures.len(), case.expected.len());
}
