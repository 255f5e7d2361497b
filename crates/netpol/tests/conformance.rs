//! Runs the shared NetworkPolicy/ANP/BANP corpus, its connectivity diffs and the project's
//! Cilium cases through the evaluator; every expected entry must hold.

use std::path::{Path, PathBuf};

use netpol::conformance::{AnyCase, Case};
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

/// What running every case of a directory gave.
#[derive(Default)]
struct Totals {
    passed: usize,
    failures: Vec<String>,
    /// `case: src -> dst: reason` for entries the runner did not evaluate.
    not_evaluated: Vec<String>,
}

fn run_dir(dir: &Path) -> Totals {
    let mut totals = Totals::default();
    for file in case_files(dir) {
        let case = AnyCase::load(&file).unwrap();
        let result = case.run(Options::default()).unwrap();
        totals.passed += result.passed;
        for f in result.failures {
            totals.failures.push(format!(
                "{}: {} -> {}: expected {}, got {}",
                result.name, f.src, f.dst, f.want, f.got
            ));
        }
        for n in result.not_evaluated {
            totals.not_evaluated.push(format!(
                "{}: {} -> {}: {}",
                result.name, n.src, n.dst, n.reason
            ));
        }
    }
    totals
}

fn shared(kind_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/netpol")
        .join(kind_dir)
}

fn assert_no_failures(t: &Totals) {
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
}

/// Every entry of a shared corpus directory is evaluated and holds; `entries` is its count.
fn shared_corpus_passes(kind_dir: &str, entries: usize) {
    let t = run_dir(&shared(kind_dir));
    assert_no_failures(&t);
    assert!(t.not_evaluated.is_empty(), "{:#?}", t.not_evaluated);
    assert_eq!(t.passed, entries);
}

#[test]
fn shared_netpol_corpus_passes() {
    // The corpus README counts 49,369 expected entries over 88 cases.
    shared_corpus_passes("cases", 49_369);
}

#[test]
fn shared_diff_corpus_passes() {
    // 21 cases, 4,856 entries (6 of them name the `{ingress-controller}` peer).
    shared_corpus_passes("cases-diff", 4_856);
}

#[test]
fn shared_ingress_corpus_passes() {
    // 5 cases, 346 entries, 40 of them from the `{ingress-controller}` peer.
    shared_corpus_passes("cases-ingress", 346);
}

#[test]
fn shared_exposure_corpus_passes() {
    // 57 cases, 1,389 entries: 880 connectivity-report entries, 387 exposure lines (4 of
    // them with named ports towards hypothetical peers), 122 unprotected workloads.
    shared_corpus_passes("cases-exposure", 1_389);
}

#[test]
fn cilium_cases_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cilium");
    assert!(case_files(&dir).len() >= 40);
    let t = run_dir(&dir);
    assert_no_failures(&t);
    assert!(t.passed >= 120);
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

#[test]
fn a_wrong_or_missing_diff_entry_is_reported() {
    let file = shared("cases-diff").join(
        "diff_between_semanticDiff-different-topologies-policy-b_and_semanticDiff-different-topologies-policy-a.json",
    );
    let AnyCase::Diff(mut case) = AnyCase::load(&file).unwrap() else {
        panic!("a diff case");
    };
    let total = case.expected.len();
    assert_eq!(case.run(Options::default()).unwrap().passed, total);
    // An answer the case does not list is a failure, as is a wrong one.
    let dropped = case.expected.remove(0);
    case.expected[0].after = "TCP 1".into();
    let result = case.run(Options::default()).unwrap();
    assert_eq!(result.passed, total - 2);
    assert_eq!(result.failures.len(), 2, "{:#?}", result.failures);
    assert!(result
        .failures
        .iter()
        .any(|f| f.src == dropped.src && f.want.starts_with("unchanged")));
    // A range is checked per address: listing part of a changed range leaves the rest
    // of our answer unlisted.
    case.expected.insert(0, dropped);
    case.expected[1].after = "All Connections".into();
    assert_eq!(case.run(Options::default()).unwrap().passed, total);
    case.expected[0].src = "0.0.0.0-9.255.255.255[External]".into();
    let result = case.run(Options::default()).unwrap();
    assert_eq!(result.passed, total);
    assert_eq!(result.failures.len(), 1, "{:#?}", result.failures);
    assert_eq!(result.failures[0].src, "0.0.0.0-255.255.255.255[External]");
}
