//! Runs every Kyverno CLI test of the shared corpus (`../shared/corpus/kyverno/cases`) and
//! checks how many expected results hold, scored as the Kyverno CLI scores them.
//!
//! Current state: all 1281 expected results of the 116 case files hold. Exactly one of them
//! (`kasten-data-protection-by-label` / `nginx-deployment-skipped`, excluded by its label
//! selector) is decided by the CLI rule "no rule response counts as a pass"; the count of such
//! results is asserted too, so that a matching regression cannot hide behind that rule.
//! Mismatches are printed with `cargo test -p policyhub-kyverno --test corpus -- --nocapture`.
//! Throughput is measured by the criterion bench `benches/corpus.rs`.

use std::path::Path;

use kyverno::runner::{run_case, Case};

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/kyverno/cases"
);

#[test]
fn corpus_conformance() {
    let dir = Path::new(CASES);
    assert!(
        dir.is_dir(),
        "Kyverno corpus not found at {CASES} (shared/ must sit beside the project root)"
    );
    let files = case_files();
    let (mut total, mut passed, mut full, mut vacuous) = (0usize, 0usize, 0usize, 0usize);
    for f in &files {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let report = run_case(&case).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        total += report.checks.len();
        passed += report.passed();
        for c in report.checks.iter().filter(|c| c.actual.is_empty()) {
            vacuous += 1;
            eprintln!("NO RESPONSE {}: {:?}", f.display(), c.expected);
        }
        if report.failed() == 0 {
            full += 1;
        }
        for c in report.checks.iter().filter(|c| !c.passed) {
            let got: Vec<String> = c
                .actual
                .iter()
                .map(|r| format!("{}={} ({})", r.rule, r.status, r.message))
                .collect();
            eprintln!(
                "MISMATCH {}: {}/{:?}/{} expected {} got {:?}",
                f.file_name().unwrap().to_string_lossy(),
                c.expected.policy,
                c.expected.rule,
                c.expected.resource,
                c.expected.result,
                got
            );
        }
    }
    eprintln!(
        "{passed} of {total} expected results pass; {full} of {} case files fully pass; \
         {vacuous} expected results had no rule response (counted as passed, as the CLI does)",
        files.len()
    );
    assert_eq!(total, 1281);
    assert_eq!(passed, 1281);
    assert_eq!(full, 116);
    assert_eq!(vacuous, 1);
}

/// The schema check is the first gate of every dry-run: no corpus policy may fail it.
#[test]
fn corpus_policies_pass_the_schema_check() {
    let (mut policies, mut bad) = (0usize, Vec::new());
    for f in case_files() {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for p in &case.policies {
            policies += 1;
            let violations = kyverno::schema::check(p);
            if !violations.is_empty() {
                bad.push(format!("{}: {violations:?}", f.display()));
            }
        }
    }
    assert!(policies > 100, "only {policies} policies read");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn case_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(CASES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}
