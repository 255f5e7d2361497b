//! Kyverno CLI `test` semantics: loading `kyverno-test.yaml` (cli.kyverno.io/v1alpha1 `Test`)
//! with its values file, evaluating, and scoring expected results the way the CLI does.
//!
//! Scoring rules (the CLI's behaviour):
//! - an expected result's `rule` selects responses of a rule named R, `autogen-R` or
//!   `autogen-cronjob-R`; without `rule`, every rule of the policy;
//! - resources are selected by name, or `namespace/name`; the expected `kind` is not used;
//!   policies by name, or `namespace/name` for a namespaced `Policy`;
//! - a policy or resource that the test's files do not hold is "Not found": a failure;
//! - when no rule response exists for the resource, the result counts as passed (a matter
//!   of matching only);
//! - otherwise every selected response must have the expected status; a `fail` of a policy
//!   annotated `policies.kyverno.io/scored: "false"` is reported as `warn`.
//!
//! What this evaluator cannot run is never scored as a pass: an expected result of a policy
//! kind it does not know (ValidatingPolicy, MutatingPolicy, ValidatingAdmissionPolicy...) or
//! one whose selected rules it cannot run (mutate, generate, verifyImages, CEL, podSecurity)
//! is *unsupported*, with the reason, and counted apart from passes and failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::{CompiledPolicy, Request, RuleResponse, RuleStatus};
use crate::error::{Error, Result};
use crate::model::Policy;
use crate::schema;

pub mod conformance;

/// One expected result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Expected {
    /// Policy name.
    pub policy: String,
    /// Rule name (absent: every rule of the policy).
    #[serde(default)]
    pub rule: Option<String>,
    /// Resource name or `namespace/name`.
    pub resource: String,
    /// Resource kind (informational; not used to select).
    #[serde(default)]
    pub kind: Option<String>,
    /// Namespace (informational).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Expected status.
    pub result: RuleStatus,
}

/// A test with everything inline: the corpus case format (`cases/*.json`), also what a
/// `kyverno-test.yaml` is turned into.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Case {
    /// Where the test came from.
    #[serde(default)]
    pub source: String,
    /// Policy documents.
    #[serde(default)]
    pub policies: Vec<Value>,
    /// Resource documents.
    #[serde(default)]
    pub resources: Vec<Value>,
    /// The values file (cli.kyverno.io/v1alpha1 `Values`), if any.
    #[serde(default)]
    pub variables: Option<Value>,
    /// Expected results.
    #[serde(default)]
    pub expected: Vec<Expected>,
}

/// The verdict on one expected result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was expected.
    pub expected: Expected,
    /// The rule responses compared (`rule`, status, message).
    pub actual: Vec<RuleResponse>,
    /// Whether the expectation held.
    pub passed: bool,
    /// Why the result was not evaluated (an unsupported policy kind or rule); such a check
    /// is neither passed nor failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Why it failed with nothing to compare: the policy or resource is not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_found: Option<String>,
}

/// The outcome of running one test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The test's source.
    pub source: String,
    /// One check per expected result, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// Number of expected results that held.
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }
    /// Number evaluated that did not hold.
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| !c.passed && c.unsupported.is_none())
            .count()
    }
    /// Number this evaluator could not evaluate.
    pub fn unsupported(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.unsupported.is_some())
            .count()
    }
}

/// The policy kinds of Kyverno and Kubernetes admission a test may name; only
/// `ClusterPolicy` and `Policy` (kyverno.io) are evaluated.
pub const POLICY_KINDS: [&str; 16] = [
    "ClusterPolicy",
    "Policy",
    "ValidatingPolicy",
    "NamespacedValidatingPolicy",
    "MutatingPolicy",
    "NamespacedMutatingPolicy",
    "GeneratingPolicy",
    "NamespacedGeneratingPolicy",
    "ImageValidatingPolicy",
    "NamespacedImageValidatingPolicy",
    "DeletingPolicy",
    "NamespacedDeletingPolicy",
    "ValidatingAdmissionPolicy",
    "MutatingAdmissionPolicy",
    "CleanupPolicy",
    "ClusterCleanupPolicy",
];

fn is_policy_kind(doc: &Value) -> bool {
    POLICY_KINDS.contains(&text(doc, &["kind"]).as_str())
}

fn is_evaluated_kind(doc: &Value) -> bool {
    matches!(text(doc, &["kind"]).as_str(), "ClusterPolicy" | "Policy")
}

/// Whether an expected result's `policy` or `resource` (`name` or `namespace/name`) names
/// this object; `namespace` is None for cluster-scoped policies.
fn names(expected: &str, name: &str, namespace: Option<&str>) -> bool {
    match expected.split_once('/') {
        Some((ns, n)) => n == name && namespace == Some(ns),
        None => expected == name,
    }
}

/// Namespace of a policy document, when its kind is namespaced.
fn policy_namespace(doc: &Value) -> Option<String> {
    let kind = text(doc, &["kind"]);
    (kind == "Policy" || kind.starts_with("Namespaced")).then(|| {
        let ns = text(doc, &["metadata", "namespace"]);
        if ns.is_empty() {
            "default".to_string()
        } else {
            ns
        }
    })
}

/// Parsed values file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Values {
    #[serde(default)]
    policies: Vec<PolicyValues>,
    #[serde(default)]
    global_values: Map<String, Value>,
    #[serde(default)]
    namespace_selector: Vec<NamespaceLabels>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PolicyValues {
    #[serde(default)]
    name: String,
    #[serde(default)]
    rules: Vec<NamedValues>,
    #[serde(default)]
    resources: Vec<NamedValues>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NamedValues {
    #[serde(default)]
    name: String,
    #[serde(default)]
    values: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NamespaceLabels {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return String::new(),
        }
    }
    cur.as_str().unwrap_or("").to_string()
}

/// Whether an expected result's rule selects a response's rule.
pub fn rule_selected(expected: Option<&str>, actual: &str) -> bool {
    match expected {
        None => true,
        Some(r) => {
            actual == r
                || actual.strip_prefix("autogen-") == Some(r)
                || actual.strip_prefix("autogen-cronjob-") == Some(r)
        }
    }
}

fn resource_selected(expected: &str, resource: &Value) -> bool {
    let namespace = text(resource, &["metadata", "namespace"]);
    names(
        expected,
        &text(resource, &["metadata", "name"]),
        Some(&namespace),
    )
}

/// Reads one policy document through the gates every dry-run passes: first the schema check
/// ([`schema::check`], every violation with its path, [`Error::Schema`]), then the typed model.
/// `origin` names the document in errors.
pub fn load_policy(doc: &Value, origin: &str) -> Result<CompiledPolicy> {
    let violations = schema::check(doc);
    if !violations.is_empty() {
        return Err(Error::Schema {
            origin: origin.to_string(),
            name: text(doc, &["metadata", "name"]),
            violations,
        });
    }
    Policy::from_value(doc, origin).map(CompiledPolicy::new)
}

/// Runs a case: evaluates every policy on every resource and scores the expected results.
pub fn run_case(case: &Case) -> Result<Report> {
    let origin = if case.source.is_empty() {
        "test"
    } else {
        case.source.as_str()
    };
    let mut policies: Vec<(CompiledPolicy, Option<String>)> = Vec::new();
    // Policies of kinds this evaluator does not run: (name, namespace, kind).
    let mut others: Vec<(String, Option<String>, String)> = Vec::new();
    for (i, doc) in case.policies.iter().enumerate() {
        if is_evaluated_kind(doc) {
            let policy = load_policy(doc, &format!("{origin}: policies[{i}]"))?;
            policies.push((policy, policy_namespace(doc)));
        } else {
            others.push((
                text(doc, &["metadata", "name"]),
                policy_namespace(doc),
                text(doc, &["kind"]),
            ));
        }
    }
    let values: Values = match &case.variables {
        Some(v) => serde_path_to_error::deserialize(v).map_err(|e| Error::Invalid {
            origin: origin.to_string(),
            what: "values",
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?,
        None => Values::default(),
    };
    // responses[(policy index, resource index)]
    let mut responses: BTreeMap<(usize, usize), Vec<RuleResponse>> = BTreeMap::new();
    for (pi, (policy, _)) in policies.iter().enumerate() {
        for (ri, resource) in case.resources.iter().enumerate() {
            let request = request_for(&values, policy.name(), resource);
            let mut found = policy.evaluate(resource, &request);
            if !policy.scored() {
                for r in found.iter_mut().filter(|r| r.status == RuleStatus::Fail) {
                    r.status = RuleStatus::Warn;
                }
            }
            responses.insert((pi, ri), found);
        }
    }
    let checks = case
        .expected
        .iter()
        .map(|exp| {
            let selected: Vec<usize> = (0..policies.len())
                .filter(|&pi| {
                    let (p, ns) = &policies[pi];
                    names(&exp.policy, p.name(), ns.as_deref())
                })
                .collect();
            let resources: Vec<usize> = (0..case.resources.len())
                .filter(|&ri| resource_selected(&exp.resource, &case.resources[ri]))
                .collect();
            let mut check = Check {
                expected: exp.clone(),
                actual: Vec::new(),
                passed: false,
                unsupported: None,
                not_found: None,
            };
            if selected.is_empty() {
                match others
                    .iter()
                    .find(|(name, ns, _)| names(&exp.policy, name, ns.as_deref()))
                {
                    Some((name, _, kind)) => {
                        check.unsupported = Some(format!(
                            "{kind} {name}: this policy kind is not supported by the evaluator"
                        ))
                    }
                    None => {
                        check.not_found = Some(format!(
                            "Not found: no policy {:?} in the test's policies",
                            exp.policy
                        ))
                    }
                }
                return check;
            }
            if resources.is_empty() {
                check.not_found = Some(format!(
                    "Not found: no resource {:?} in the test's resources",
                    exp.resource
                ));
                return check;
            }
            for &pi in &selected {
                for &ri in &resources {
                    let found = responses.get(&(pi, ri)).into_iter().flatten();
                    check.actual.extend(
                        found
                            .filter(|r| rule_selected(exp.rule.as_deref(), &r.rule))
                            .cloned(),
                    );
                }
            }
            check.unsupported = check
                .actual
                .iter()
                .find(|r| r.unsupported)
                .map(|r| format!("rule {}: {}", r.rule, r.message));
            check.passed =
                check.unsupported.is_none() && check.actual.iter().all(|r| r.status == exp.result);
            check
        })
        .collect();
    Ok(Report {
        source: case.source.clone(),
        checks,
    })
}

fn request_for(values: &Values, policy: &str, resource: &Value) -> Request {
    let mut req = Request::default();
    for (k, v) in &values.global_values {
        req.values.insert(k.clone(), v.clone());
    }
    let name = text(resource, &["metadata", "name"]);
    for pv in values.policies.iter().filter(|p| p.name == policy) {
        for rv in &pv.rules {
            for (k, v) in &rv.values {
                req.values.insert(k.clone(), v.clone());
            }
        }
        for rv in pv.resources.iter().filter(|r| r.name == name) {
            for (k, v) in &rv.values {
                req.values.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(op) = req.values.get("request.operation").and_then(Value::as_str) {
        req.operation = op.to_string();
    }
    let ns = text(resource, &["metadata", "namespace"]);
    if let Some(n) = values.namespace_selector.iter().find(|n| n.name == ns) {
        req.namespace_labels = n.labels.clone();
    }
    req
}

/// Reads every YAML/JSON document of a file (multi-document YAML; `kind: List` flattened).
pub fn read_documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_documents(&text, &path.display().to_string())
}

/// Parses every document of a YAML/JSON text; `origin` names it in errors.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| Error::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = m.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().cloned());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Reads policies from files, reporting a bad policy with its file and field.
pub fn read_policies(paths: &[PathBuf]) -> Result<Vec<CompiledPolicy>> {
    read_policy_documents(paths)?
        .iter()
        .map(|(origin, doc)| load_policy(doc, origin))
        .collect()
}

/// The `ClusterPolicy` / `Policy` documents of files, each with its origin
/// (`file (document n)`, counting from 1), unchecked; other kinds are left out.
pub fn read_policy_documents(paths: &[PathBuf]) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for path in paths {
        for (i, doc) in read_documents(path)?.into_iter().enumerate() {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != "ClusterPolicy" && kind != "Policy" {
                continue;
            }
            out.push((format!("{} (document {})", path.display(), i + 1), doc));
        }
    }
    Ok(out)
}

/// The `kyverno-test.yaml` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestDoc {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    values: Option<Value>,
    #[serde(default)]
    results: Vec<TestResult>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestResult {
    policy: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    result: Option<RuleStatus>,
    #[serde(default)]
    status: Option<RuleStatus>,
}

/// Loads a `kyverno-test.yaml` with the files it names into a [`Case`].
pub fn load_test_file(path: &Path) -> Result<Case> {
    let origin = path.display().to_string();
    let docs = read_documents(path)?;
    let doc = docs.into_iter().next().ok_or_else(|| Error::Test {
        origin: origin.clone(),
        message: "empty test file".into(),
    })?;
    let test: TestDoc = serde_path_to_error::deserialize(&doc).map_err(|e| Error::Invalid {
        origin: origin.clone(),
        what: "test",
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut case = Case {
        source: origin.clone(),
        ..Case::default()
    };
    for p in &test.policies {
        case.policies.extend(
            read_documents(&dir.join(p))?
                .into_iter()
                .filter(is_policy_kind),
        );
    }
    for r in &test.resources {
        case.resources.extend(read_documents(&dir.join(r))?);
    }
    case.variables = match (&test.variables, &test.values) {
        (Some(v), _) => read_documents(&dir.join(v))?.into_iter().next(),
        (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    };
    for (i, r) in test.results.iter().enumerate() {
        let result = r.result.or(r.status).ok_or_else(|| Error::Invalid {
            origin: origin.clone(),
            what: "test",
            field: format!("results[{i}].result"),
            message: "missing result".into(),
        })?;
        let names: Vec<String> = r
            .resource
            .iter()
            .cloned()
            .chain(r.resources.iter().cloned())
            .collect();
        for name in names {
            case.expected.push(Expected {
                policy: r.policy.clone(),
                rule: r.rule.clone(),
                resource: name,
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                result,
            });
        }
    }
    Ok(case)
}

/// Finds every `kyverno-test.yaml` under a directory (sorted).
pub fn find_test_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| Error::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|n| n.to_str()) == Some("kyverno-test.yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn case(expected: Vec<Expected>) -> Case {
        Case {
            source: "unit".into(),
            policies: vec![json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
                "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                                    "validate": {"pattern": {"spec": {"=(hostNetwork)": false}}}}]}
            })],
            resources: vec![
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": {"hostNetwork": true}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"},
                       "spec": {"template": {"spec": {"hostNetwork": true}}}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}}),
            ],
            variables: None,
            expected,
        }
    }

    fn exp(resource: &str, result: RuleStatus) -> Expected {
        Expected {
            policy: "p".into(),
            rule: Some("r".into()),
            resource: resource.into(),
            kind: None,
            namespace: None,
            result,
        }
    }

    #[test]
    fn scores_like_the_cli() {
        let report = run_case(&case(vec![
            exp("bad", RuleStatus::Fail),
            exp("bad", RuleStatus::Pass),
            exp("dep", RuleStatus::Fail),
            // nothing applies to the Service: counted as passed whatever was expected
            exp("svc", RuleStatus::Fail),
        ]))
        .unwrap();
        let verdicts: Vec<bool> = report.checks.iter().map(|c| c.passed).collect();
        assert_eq!(verdicts, [true, false, true, true]);
        assert_eq!(report.passed(), 3);
    }

    fn check_of(case: &Case) -> Vec<(bool, Option<String>, Option<String>)> {
        run_case(case)
            .unwrap()
            .checks
            .into_iter()
            .map(|c| (c.passed, c.unsupported, c.not_found))
            .collect()
    }

    #[test]
    fn unsupported_policy_kinds_are_never_passes() {
        let mut c = case(vec![Expected {
            policy: "vp".into(),
            ..exp("bad", RuleStatus::Pass)
        }]);
        c.policies.push(json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "vp"}, "spec": {"validations": [{"expression": "true"}]}
        }));
        let report = run_case(&c).unwrap();
        assert_eq!(
            (report.passed(), report.failed(), report.unsupported()),
            (0, 0, 1)
        );
        let why = report.checks[0].unsupported.as_deref().unwrap();
        assert!(why.contains("ValidatingPolicy vp"), "{why}");
    }

    #[test]
    fn rules_that_cannot_run_are_unsupported_where_they_match() {
        let mut c = case(vec![
            exp("bad", RuleStatus::Pass),
            exp("dep", RuleStatus::Pass),
            // the mutate rule selects Pods only (and their controllers): nothing to run here
            exp("svc", RuleStatus::Pass),
        ]);
        c.policies[0]["spec"]["rules"][0] = json!({
            "name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}
        });
        let got = check_of(&c);
        assert!(got[0].1.as_deref().unwrap().contains("mutate"), "{got:?}");
        assert!(
            got[1].1.as_deref().unwrap().contains("autogen-r"),
            "{got:?}"
        );
        assert_eq!(got[2], (true, None, None));

        let mut c = case(vec![exp("bad", RuleStatus::Fail)]);
        c.policies[0]["spec"]["rules"][0]["validate"] = json!({"cel": {"expressions": [
            {"expression": "object.spec.hostNetwork != true"}]}});
        let got = check_of(&c);
        assert!(
            got[0].1.as_deref().unwrap().contains("validate.cel"),
            "{got:?}"
        );
    }

    #[test]
    fn a_missing_policy_or_resource_is_not_found() {
        let c = case(vec![
            Expected {
                policy: "nope".into(),
                ..exp("bad", RuleStatus::Pass)
            },
            exp("ghost", RuleStatus::Pass),
        ]);
        let report = run_case(&c).unwrap();
        assert_eq!((report.passed(), report.failed()), (0, 2));
        assert!(report.checks[0]
            .not_found
            .as_deref()
            .unwrap()
            .contains("no policy \"nope\""));
        assert!(report.checks[1]
            .not_found
            .as_deref()
            .unwrap()
            .contains("no resource \"ghost\""));
    }

    #[test]
    fn namespaced_policies_answer_to_namespace_slash_name() {
        let mut c = case(vec![
            Expected {
                policy: "team/p".into(),
                ..exp("team/bad", RuleStatus::Fail)
            },
            Expected {
                policy: "other/p".into(),
                ..exp("team/bad", RuleStatus::Fail)
            },
        ]);
        c.policies[0]["kind"] = json!("Policy");
        c.policies[0]["metadata"]["namespace"] = json!("team");
        c.resources[0]["metadata"]["namespace"] = json!("team");
        let got = check_of(&c);
        assert_eq!(got[0], (true, None, None));
        assert!(got[1].2.is_some(), "{got:?}");
    }

    #[test]
    fn unscored_policies_warn_instead_of_failing() {
        let mut c = case(vec![
            exp("bad", RuleStatus::Warn),
            exp("bad", RuleStatus::Fail),
        ]);
        c.policies[0]["metadata"]["annotations"] = json!({"policies.kyverno.io/scored": "false"});
        let got = check_of(&c);
        assert_eq!(got[0], (true, None, None));
        assert!(!got[1].0);
    }

    #[test]
    fn rule_names_with_autogen_prefixes() {
        assert!(rule_selected(Some("r"), "autogen-r"));
        assert!(rule_selected(Some("r"), "autogen-cronjob-r"));
        assert!(!rule_selected(Some("r"), "autogen-x"));
        assert!(rule_selected(None, "anything"));
    }

    #[test]
    fn bad_policy_names_the_field() {
        let mut c = case(vec![]);
        c.policies[0]["spec"]["rules"][0]["preconditions"] =
            json!({"all": [{"key": "a", "operator": "Bogus", "value": "b"}]});
        let err = run_case(&c).unwrap_err().to_string();
        assert!(
            err.contains("unit: policies[0]") && err.contains("spec.rules[0].preconditions"),
            "{err}"
        );
    }
}
