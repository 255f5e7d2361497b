//! Conformance over corpus case files (`cases/*.json`, the [`Case`] format): every expected
//! result scored as the Kyverno CLI scores it, every mismatch kept with its reason, and the
//! agreement (the share of expected results that held) for a pass/fail threshold.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{run_case, Case, Check};
use crate::engine::{RuleResponse, RuleStatus};
use crate::error::{Error, Result};

/// One expected result that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Case file name.
    pub case: String,
    /// Policy name.
    pub policy: String,
    /// Rule name (absent: every rule of the policy).
    pub rule: Option<String>,
    /// Resource name or `namespace/name`.
    pub resource: String,
    /// What the case expected.
    pub expected: RuleStatus,
    /// The rule responses that were compared (empty when the case could not run).
    pub got: Vec<RuleResponse>,
    /// Why it is a mismatch, in one line.
    pub reason: String,
}

/// The score of one case file.
#[derive(Debug, Clone, Serialize)]
pub struct CaseScore {
    /// Case file name.
    pub case: String,
    /// Expected results that held.
    pub passed: usize,
    /// Expected results in the case.
    pub total: usize,
}

/// The outcome of a conformance run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conformance {
    /// One score per case file, in the order run.
    pub cases: Vec<CaseScore>,
    /// Expected results that held.
    pub passed: usize,
    /// Expected results that did not.
    pub failed: usize,
    /// Every expected result that did not hold, with its reason.
    pub mismatches: Vec<Mismatch>,
}

/// Why a check failed: the expected status against every response that disagreed.
pub fn reason(check: &Check) -> String {
    if let Some(why) = check.unsupported.as_ref().or(check.not_found.as_ref()) {
        return format!("expected {}, {why}", check.expected.result);
    }
    let got: Vec<String> = check
        .actual
        .iter()
        .filter(|r| r.status != check.expected.result)
        .map(describe)
        .collect();
    format!("expected {}, got {}", check.expected.result, got.join("; "))
}

fn describe(r: &RuleResponse) -> String {
    let message = r.message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.is_empty() {
        format!("{} from rule {}", r.status, r.rule)
    } else {
        format!("{} from rule {}: {message}", r.status, r.rule)
    }
}

impl Conformance {
    /// Runs every case file, in order. A file that cannot be read is an error; a case whose
    /// policies cannot be loaded (schema or model) counts every expected result as a mismatch.
    pub fn run(files: &[PathBuf]) -> Result<Conformance> {
        let mut out = Conformance::default();
        for file in files {
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            out.add(&name, &load_case(file)?);
        }
        Ok(out)
    }

    /// Scores one case and adds it under `name`.
    pub fn add(&mut self, name: &str, case: &Case) {
        let mismatch =
            |expected: &super::Expected, got: Vec<RuleResponse>, reason: String| Mismatch {
                case: name.to_string(),
                policy: expected.policy.clone(),
                rule: expected.rule.clone(),
                resource: expected.resource.clone(),
                expected: expected.result,
                got,
                reason,
            };
        let (passed, mismatches): (usize, Vec<Mismatch>) = match run_case(case) {
            Ok(report) => (
                report.passed(),
                report
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| mismatch(&c.expected, c.actual.clone(), reason(c)))
                    .collect(),
            ),
            Err(e) => (
                0,
                case.expected
                    .iter()
                    .map(|exp| mismatch(exp, Vec::new(), format!("case not run: {e}")))
                    .collect(),
            ),
        };
        self.cases.push(CaseScore {
            case: name.to_string(),
            passed,
            total: case.expected.len(),
        });
        self.passed += passed;
        self.failed += mismatches.len();
        self.mismatches.extend(mismatches);
    }

    /// Expected results scored.
    pub fn total(&self) -> usize {
        self.passed + self.failed
    }

    /// Percentage of expected results that held (0 when there were none).
    pub fn agreement(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            100.0 * self.passed as f64 / self.total() as f64
        }
    }

    /// The report as JSON: counts, agreement, per-case scores and every mismatch.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "passed": self.passed,
            "failed": self.failed,
            "agreement": self.agreement(),
            "cases": self.cases,
            "mismatches": self.mismatches,
        })
    }

    /// The report as Markdown: a summary and a table of every mismatch with its reason.
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let full = self.cases.iter().filter(|c| c.passed == c.total).count();
        let mut out = String::new();
        let _ = writeln!(out, "# Kyverno conformance\n");
        let _ = writeln!(
            out,
            "- Expected results: {} ({} passed, {} failed)",
            self.total(),
            self.passed,
            self.failed
        );
        let _ = writeln!(out, "- Agreement: {:.2}%", self.agreement());
        let _ = writeln!(
            out,
            "- Case files: {} ({full} fully passing)\n",
            self.cases.len()
        );
        let _ = writeln!(out, "## Mismatches\n");
        if self.mismatches.is_empty() {
            let _ = writeln!(out, "None.");
            return out;
        }
        let _ = writeln!(
            out,
            "| Case | Policy | Rule | Resource | Expected | Reason |\n|---|---|---|---|---|---|"
        );
        for m in &self.mismatches {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&m.case),
                cell(&m.policy),
                cell(m.rule.as_deref().unwrap_or("*")),
                cell(&m.resource),
                m.expected,
                cell(&m.reason)
            );
        }
        out
    }
}

/// Reads one case file.
pub fn load_case(path: &Path) -> Result<Case> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| Error::Invalid {
        origin: path.display().to_string(),
        what: "case",
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Case files (`*.json`) under each path, directories searched recursively; each directory's
/// entries sorted by name. A path that is a file is taken as it is.
pub fn find_case_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        collect(path, true, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, named: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    if !path.is_dir() {
        if named || path.extension().is_some_and(|e| e == "json") {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        collect(&e, false, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::runner::Expected;

    fn case(policy_extra: serde_json::Value) -> Case {
        let mut policy = json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
            "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                                "validate": {"message": "no | host network",
                                             "pattern": {"spec": {"=(hostNetwork)": false}}}}]}
        });
        if let Some(m) = policy_extra.as_object() {
            for (k, v) in m {
                policy["spec"]["rules"][0][k] = v.clone();
            }
        }
        let exp = |resource: &str, result| Expected {
            policy: "p".into(),
            rule: Some("r".into()),
            resource: resource.into(),
            kind: None,
            namespace: None,
            result,
        };
        Case {
            source: "unit".into(),
            policies: vec![policy],
            resources: vec![
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
                       "spec": {"hostNetwork": true}}),
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "good"}, "spec": {}}),
            ],
            variables: None,
            expected: vec![
                exp("bad", RuleStatus::Fail),
                exp("good", RuleStatus::Fail),
                exp("good", RuleStatus::Pass),
            ],
        }
    }

    #[test]
    fn mismatches_carry_expected_got_and_message() {
        let mut c = Conformance::default();
        c.add("one.json", &case(json!({})));
        assert_eq!((c.passed, c.failed, c.total()), (2, 1, 3));
        assert!((c.agreement() - 200.0 / 3.0).abs() < 1e-9);
        let m = &c.mismatches[0];
        assert_eq!((m.case.as_str(), m.resource.as_str()), ("one.json", "good"));
        assert_eq!(m.expected, RuleStatus::Fail);
        assert_eq!(
            m.reason,
            "expected fail, got pass from rule r: validation rule 'r' passed."
        );
        assert_eq!(c.cases[0].passed, 2);
    }

    #[test]
    fn failing_rule_message_is_in_the_reason_and_escaped_in_markdown() {
        let mut c = Conformance::default();
        let mut bad = case(json!({}));
        bad.expected[0].result = RuleStatus::Pass;
        c.add("two.json", &bad);
        let reason = &c.mismatches[0].reason;
        assert!(
            reason.starts_with(
                "expected pass, got fail from rule r: validation error: no | host network"
            ),
            "{reason}"
        );
        let md = c.to_markdown();
        assert!(md.contains("no \\| host network"), "{md}");
        assert!(md.contains("| two.json | p | r | bad | pass |"), "{md}");
        assert!(md.contains("- Agreement: 33.33%"), "{md}");
    }

    #[test]
    fn a_case_that_cannot_run_fails_every_expected_result() {
        let mut c = Conformance::default();
        c.add("bad.json", &case(json!({"validate": {"message": "m"}})));
        assert_eq!((c.passed, c.failed), (0, 3));
        assert!(
            c.mismatches[0].reason.contains("spec.rules[0].validate"),
            "{}",
            c.mismatches[0].reason
        );
        assert_eq!(c.to_json()["failed"], 3);
    }

    #[test]
    fn no_expected_results_is_zero_agreement() {
        assert_eq!(Conformance::default().agreement(), 0.0);
    }
}
