//! `kyverno-test.yaml` loading: a corpus case is written out as the files the Kyverno CLI reads
//! (policy, resources, values, test), loaded back through [`load_test_file`] and scored.

use std::path::{Path, PathBuf};

use kyverno::runner::{find_test_files, load_test_file, run_case, Case};
use kyverno::RuleStatus;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/kyverno/cases"
);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("policyhub-kyverno-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn yaml_docs(docs: &[serde_json::Value]) -> String {
    docs.iter()
        .map(|d| yaml_serde::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Writes the case in the CLI layout; results use the newer `resources:` list form for every
/// other entry and the older `resource:`/`status:` form for the rest.
fn write_case(case: &Case, dir: &Path) -> PathBuf {
    std::fs::write(dir.join("policy.yaml"), yaml_docs(&case.policies)).unwrap();
    std::fs::write(dir.join("resources.yaml"), yaml_docs(&case.resources)).unwrap();
    let mut test = serde_json::json!({
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Test",
        "metadata": {"name": "t"},
        "policies": ["policy.yaml"],
        "resources": ["resources.yaml"],
        "results": [],
    });
    if let Some(v) = &case.variables {
        std::fs::write(dir.join("values.yaml"), yaml_serde::to_string(v).unwrap()).unwrap();
        test["variables"] = "values.yaml".into();
    }
    for (i, e) in case.expected.iter().enumerate() {
        let mut r = serde_json::json!({"policy": e.policy, "rule": e.rule, "kind": e.kind});
        if i % 2 == 0 {
            r["resources"] = serde_json::json!([e.resource]);
            r["result"] = serde_json::to_value(e.result).unwrap();
        } else {
            r["resource"] = e.resource.clone().into();
            r["status"] = serde_json::to_value(e.result).unwrap();
        }
        test["results"].as_array_mut().unwrap().push(r);
    }
    let path = dir.join("kyverno-test.yaml");
    std::fs::write(&path, yaml_serde::to_string(&test).unwrap()).unwrap();
    path
}

#[test]
fn test_file_round_trip_with_values() {
    let file = Path::new(CASES).join("other__block-updates-deletes.json");
    assert!(
        file.is_file(),
        "corpus case not found at {}",
        file.display()
    );
    let case: Case = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let dir = scratch("roundtrip");
    let path = write_case(&case, &dir);
    assert_eq!(find_test_files(&dir).unwrap(), vec![path.clone()]);
    let loaded = load_test_file(&path).unwrap();
    assert_eq!(loaded.expected.len(), case.expected.len());
    assert_eq!(loaded.policies.len(), case.policies.len());
    assert!(loaded.variables.is_some());
    let report = run_case(&loaded).unwrap();
    assert_eq!(report.failed(), 0, "{:#?}", report.checks);
    // The values file sets UPDATE for one Service: without it, that expectation fails.
    let mut without = loaded.clone();
    without.variables = None;
    let report = run_case(&without).unwrap();
    assert_eq!(report.failed(), 1);
    assert!(report
        .checks
        .iter()
        .any(|c| !c.passed && c.expected.result == RuleStatus::Fail));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_policy_file_is_reported_with_file_and_field() {
    let dir = scratch("bad");
    std::fs::write(
        dir.join("policy.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    validate: {foreach: [{list: 3, pattern: {}}]}\n",
    )
    .unwrap();
    let err = kyverno::runner::read_policies(&[dir.join("policy.yaml")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy.yaml"), "{err}");
    assert!(
        err.contains("spec.rules[0].validate.foreach[0].list"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
