//! Runs every Kyverno CLI test of the shared corpus (`../shared/corpus/kyverno/cases`) and
//! checks how many expected results hold, scored as the Kyverno CLI scores them.
//!
//! Current state: all 1281 expected results of the 116 case files hold. Exactly one of them
//! (`kasten-data-protection-by-label` / `nginx-deployment-skipped`, excluded by its label
//! selector) is decided by the CLI rule "no rule response counts as a pass"; the count of such
//! results is asserted too, so that a matching regression cannot hide behind that rule.
//! Mismatches are printed with `cargo test -p policyhub-kyverno --test corpus -- --nocapture`.

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
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
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

/// Evaluations (policy × resource) per second over the whole corpus. Run with
/// `cargo test -p policyhub-kyverno --release --test corpus -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement, not a check"]
fn corpus_throughput() {
    use kyverno::{CompiledPolicy, Policy, Request};
    let mut pairs: Vec<(CompiledPolicy, Vec<serde_json::Value>)> = Vec::new();
    for entry in std::fs::read_dir(CASES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let case: Case = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for p in &case.policies {
            let policy = CompiledPolicy::new(Policy::from_value(p, "bench").unwrap());
            pairs.push((policy, case.resources.clone()));
        }
    }
    let request = Request::default();
    let start = std::time::Instant::now();
    let mut evaluations = 0usize;
    while start.elapsed().as_secs_f64() < 3.0 {
        for (policy, resources) in &pairs {
            for r in resources {
                std::hint::black_box(policy.evaluate(r, &request));
                evaluations += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{evaluations} evaluations in {secs:.2}s: {:.0} policy x resource evaluations per second",
        evaluations as f64 / secs
    );
}
