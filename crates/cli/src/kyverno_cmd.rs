//! `policyhub kyverno test|apply|check` and `policyhub conformance kyverno`: the embedded
//! Kyverno evaluator. Every policy passes the schema check before it is evaluated.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kyverno::runner::conformance::{find_case_files, Conformance};
use kyverno::runner::{self, Report};
use kyverno::schema::{self, SchemaViolation};
use kyverno::{CompiledPolicy, Request, RuleStatus};
use serde_json::{json, Value};

use crate::output::render_table;

/// Kyverno policies, evaluated offline.
#[derive(Subcommand)]
pub enum KyvernoCommand {
    /// Run Kyverno CLI tests (`kyverno-test.yaml`) under a directory and score them as the
    /// Kyverno CLI does.
    Test(TestArgs),
    /// Apply policies to resources and print a result per resource and rule.
    Apply(ApplyArgs),
    /// Check policies against the ClusterPolicy / Policy schema and print every violation
    /// with its field path (exit 1 if any).
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Policy files or directories (YAML or JSON, multi-document).
    #[arg(required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ConformanceArgs {
    /// Case files (`*.json`, ../shared/corpus/kyverno format) or directories of them.
    #[arg(required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// Write a report listing every mismatch with its reason: Markdown when the file name
    /// ends in `.md`, JSON otherwise.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Exit 1 when fewer than this percentage of expected results hold.
    #[arg(long, default_value_t = 97.0, value_name = "PERCENT")]
    min_agreement: f64,
}

#[derive(Args)]
pub struct TestArgs {
    /// A directory searched for `kyverno-test.yaml` files, or one such file.
    dir: PathBuf,
    /// Report results this evaluator cannot run (unsupported policy kinds and rules) as
    /// warnings instead of failing the run.
    #[arg(long)]
    allow_unsupported: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// Policy files or directories (YAML or JSON, multi-document).
    #[arg(required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// Resource files or directories.
    #[arg(short = 'r', long = "resource", required = true, num_args = 1..)]
    resources: Vec<PathBuf>,
    /// Admission operation to simulate.
    #[arg(long, default_value = "CREATE")]
    operation: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Runs a `kyverno` subcommand.
pub fn run(cmd: KyvernoCommand) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let code = match cmd {
        KyvernoCommand::Test(args) => test(args, &mut out),
        KyvernoCommand::Apply(args) => apply(args, &mut out),
        KyvernoCommand::Check(args) => check(args, &mut out),
    }?;
    emit(&out, code)
}

/// Writes a command's output to stdout; a closed pipe is not an error.
fn emit(out: &str, code: ExitCode) -> anyhow::Result<ExitCode> {
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(code),
    }
}

/// `policyhub conformance kyverno`: scores corpus case files, prints each mismatch with its
/// reason, and fails below `--min-agreement`.
pub fn conformance(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let code = conformance_to(&args, &mut out)?;
    emit(&out, code)
}

fn conformance_to(args: &ConformanceArgs, out: &mut String) -> anyhow::Result<ExitCode> {
    if !(0.0..=100.0).contains(&args.min_agreement) {
        anyhow::bail!(
            "--min-agreement must be a percentage (0 to 100), not {}",
            args.min_agreement
        );
    }
    let files = find_case_files(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no case files (*.json) under {:?}", args.paths);
    }
    let result = Conformance::run(&files)?;
    if result.total() == 0 {
        anyhow::bail!("the case files hold no expected results");
    }
    for case in &result.cases {
        let status = if case.passed == case.total {
            "ok"
        } else {
            "FAIL"
        };
        writeln!(
            out,
            "{status:4} {} ({} of {} expected results)",
            case.case, case.passed, case.total
        )?;
        for m in result.mismatches.iter().filter(|m| m.case == case.case) {
            let rule = m.rule.as_deref().unwrap_or("*");
            writeln!(
                out,
                "     {}/{rule} on {}: {}",
                m.policy, m.resource, m.reason
            )?;
        }
    }
    if let Some(path) = &args.report {
        let markdown = path
            .extension()
            .is_some_and(|e| e == "md" || e == "markdown");
        let text = if markdown {
            result.to_markdown()
        } else {
            let mut doc = result.to_json();
            doc["min_agreement"] = json!(args.min_agreement);
            serde_json::to_string_pretty(&doc)? + "\n"
        };
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    let agreement = result.agreement();
    writeln!(
        out,
        "agreement {agreement:.2}% (minimum {:.1}%)",
        args.min_agreement
    )?;
    writeln!(out, "{} passed, {} failed", result.passed, result.failed)?;
    Ok(if agreement < args.min_agreement {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(args: CheckArgs, out: &mut String) -> anyhow::Result<ExitCode> {
    let docs = runner::read_policy_documents(&files_under(&args.policies)?)?;
    if docs.is_empty() {
        anyhow::bail!("no ClusterPolicy or Policy found in the policy files");
    }
    let (mut invalid, mut total) = (0usize, 0usize);
    for (origin, doc) in &docs {
        let violations = schema::check(doc);
        let name = text(doc, &["metadata", "name"]);
        if violations.is_empty() {
            writeln!(out, "ok   {origin}: policy {name:?}")?;
        } else {
            invalid += 1;
            total += violations.len();
            write_violations(out, origin, &name, &violations)?;
        }
    }
    writeln!(
        out,
        "{} policies checked, {invalid} with violations, {total} violations",
        docs.len()
    )?;
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_violations(
    out: &mut String,
    origin: &str,
    name: &str,
    violations: &[SchemaViolation],
) -> std::fmt::Result {
    writeln!(
        out,
        "FAIL {origin}: policy {name:?} does not match the Kyverno policy schema"
    )?;
    for v in violations {
        writeln!(out, "     {v}")?;
    }
    Ok(())
}

/// Totals of a `kyverno test` run.
#[derive(Default)]
struct TestTotals {
    passed: usize,
    failed: usize,
    unsupported: usize,
    /// Test files that could not be run at all.
    broken: usize,
}

fn test(args: TestArgs, out: &mut String) -> anyhow::Result<ExitCode> {
    let files = if args.dir.is_file() {
        vec![args.dir.clone()]
    } else {
        runner::find_test_files(&args.dir)?
    };
    if files.is_empty() {
        anyhow::bail!("no kyverno-test.yaml under {}", args.dir.display());
    }
    let mut totals = TestTotals::default();
    for file in &files {
        // One file that cannot be read or run is reported; the others still run.
        let case = match runner::load_test_file(file) {
            Ok(case) => case,
            Err(e) => {
                writeln!(out, "Test {}\nERROR {e}\n", file.display())?;
                totals.broken += 1;
                continue;
            }
        };
        match runner::run_case(&case) {
            Ok(report) => {
                print_report(out, file, &report)?;
                totals.passed += report.passed();
                totals.failed += report.failed();
                totals.unsupported += report.unsupported();
            }
            // the schema gate: the test is not evaluated and none of its results hold
            Err(kyverno::Error::Schema {
                origin,
                name,
                violations,
            }) => {
                writeln!(out, "Test {}", file.display())?;
                write_violations(out, &origin, &name, &violations)?;
                writeln!(out)?;
                totals.failed += case.expected.len();
            }
            Err(e) => {
                writeln!(out, "Test {}\nERROR {e}\n", file.display())?;
                totals.broken += 1;
            }
        }
    }
    let unsupported_word = if args.allow_unsupported {
        "unsupported (allowed)"
    } else {
        "unsupported"
    };
    write!(
        out,
        "{} passed, {} failed, {} {unsupported_word}",
        totals.passed, totals.failed, totals.unsupported
    )?;
    if totals.broken > 0 {
        write!(out, ", {} test files not run", totals.broken)?;
    }
    writeln!(out)?;
    let clean = totals.failed == 0
        && totals.broken == 0
        && (totals.unsupported == 0 || args.allow_unsupported);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(out: &mut String, file: &Path, report: &Report) -> std::fmt::Result {
    writeln!(out, "Test {}", file.display())?;
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let actual = if c.not_found.is_some() {
                "(not found)".to_string()
            } else if c.actual.is_empty() && c.unsupported.is_some() {
                "(not evaluated)".to_string()
            } else if c.actual.is_empty() {
                "(not applied)".to_string()
            } else {
                c.actual
                    .iter()
                    .map(|r| r.status.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                (i + 1).to_string(),
                c.expected.policy.clone(),
                c.expected.rule.clone().unwrap_or_else(|| "*".into()),
                c.expected.resource.clone(),
                c.expected.result.to_string(),
                actual,
                if c.passed {
                    "Pass"
                } else if c.unsupported.is_some() {
                    "Unsupported"
                } else {
                    "Fail"
                }
                .to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "#", "POLICY", "RULE", "RESOURCE", "EXPECTED", "ACTUAL", "RESULT",
        ],
        &rows,
    ));
    for (i, c) in report.checks.iter().enumerate() {
        if let Some(why) = c.unsupported.as_ref().or(c.not_found.as_ref()) {
            writeln!(out, "  #{}: {why}", i + 1)?;
        }
    }
    writeln!(out)
}

struct ApplyRow {
    policy: String,
    rule: String,
    resource: ResourceRef,
    result: RuleStatus,
    message: String,
}

struct ResourceRef {
    kind: String,
    namespace: String,
    name: String,
}

impl ApplyRow {
    fn to_json(&self) -> Value {
        json!({
            "policy": self.policy,
            "rule": self.rule,
            "resource": {
                "kind": self.resource.kind,
                "namespace": self.resource.namespace,
                "name": self.resource.name,
            },
            "result": self.result.to_string(),
            "message": self.message,
        })
    }
}

fn files_under(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            found.sort();
            for f in found {
                if f.is_dir() {
                    out.extend(files_under(&[f])?);
                } else if f
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                {
                    out.push(f);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn text(v: &Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn apply(args: ApplyArgs, out: &mut String) -> anyhow::Result<ExitCode> {
    let docs = runner::read_policy_documents(&files_under(&args.policies)?)?;
    if docs.is_empty() {
        anyhow::bail!("no ClusterPolicy or Policy found in the policy files");
    }
    // the schema gate: a policy that fails it is reported with its paths and not evaluated
    let mut policies: Vec<CompiledPolicy> = Vec::new();
    let mut rejected = 0usize;
    for (origin, doc) in &docs {
        match runner::load_policy(doc, origin) {
            Ok(p) => policies.push(p),
            Err(kyverno::Error::Schema {
                origin,
                name,
                violations,
            }) => {
                rejected += 1;
                let mut text = String::new();
                write_violations(&mut text, &origin, &name, &violations)?;
                eprint!("{text}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    for policy in &policies {
        for note in policy.notes() {
            eprintln!("note: policy {}: {note}", policy.name());
        }
    }
    let mut resources = Vec::new();
    for f in files_under(&args.resources)? {
        resources.extend(runner::read_documents(&f)?);
    }
    let request = Request {
        operation: args.operation.clone(),
        ..Request::default()
    };
    let mut rows = Vec::new();
    for resource in &resources {
        for policy in &policies {
            for r in policy.evaluate(resource, &request) {
                rows.push(ApplyRow {
                    policy: policy.name().to_string(),
                    rule: r.rule,
                    resource: ResourceRef {
                        kind: text(resource, &["kind"]),
                        namespace: text(resource, &["metadata", "namespace"]),
                        name: text(resource, &["metadata", "name"]),
                    },
                    result: r.status,
                    message: r.message,
                });
            }
        }
    }
    let count = |s: RuleStatus| rows.iter().filter(|r| r.result == s).count();
    let (pass, fail, skip, error) = (
        count(RuleStatus::Pass),
        count(RuleStatus::Fail),
        count(RuleStatus::Skip),
        count(RuleStatus::Error),
    );
    match args.output {
        Output::Json => {
            let docs: Vec<Value> = rows.iter().map(ApplyRow::to_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
        }
        Output::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let res = &r.resource;
                    let name = if res.namespace.is_empty() {
                        format!("{}/{}", res.kind, res.name)
                    } else {
                        format!("{}/{}/{}", res.kind, res.namespace, res.name)
                    };
                    vec![
                        r.policy.clone(),
                        r.rule.clone(),
                        name,
                        r.result.to_string(),
                        r.message.replace('\n', " "),
                    ]
                })
                .collect();
            out.push_str(&render_table(
                &["POLICY", "RULE", "RESOURCE", "RESULT", "MESSAGE"],
                &table,
            ));
            writeln!(
                out,
                "pass: {pass}, fail: {fail}, skip: {skip}, error: {error}"
            )?;
        }
    }
    if rejected > 0 {
        eprintln!(
            "{rejected} of {} policies not evaluated: they do not match the Kyverno policy schema",
            docs.len()
        );
    }
    Ok(if fail + error + rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, named after the test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("policyhub-kyverno-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const POLICY: &str = r#"{"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
        "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                            "validate": {"message": "no host network", "pattern": {"spec": {"=(hostNetwork)": false}}}}]}}"#;

    fn write_case(dir: &Path, expected: &[(&str, &str)]) {
        let expected: Vec<Value> = expected
            .iter()
            .map(|(res, result)| json!({"policy": "p", "rule": "r", "resource": res, "result": result}))
            .collect();
        let case = json!({
            "source": "unit",
            "policies": [serde_json::from_str::<Value>(POLICY).unwrap()],
            "resources": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": {"hostNetwork": true}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "good"}, "spec": {}}
            ],
            "expected": expected,
        });
        std::fs::write(dir.join("case.json"), case.to_string()).unwrap();
    }

    fn args(dir: &Path, min: f64, report: Option<PathBuf>) -> ConformanceArgs {
        ConformanceArgs {
            paths: vec![dir.to_path_buf()],
            report,
            min_agreement: min,
        }
    }

    #[test]
    fn conformance_reports_mismatches_and_applies_the_threshold() {
        let dir = scratch("conformance");
        // 3 of 4 hold: 75% agreement
        write_case(
            &dir,
            &[
                ("bad", "fail"),
                ("good", "pass"),
                ("good", "pass"),
                ("good", "fail"),
            ],
        );
        let report = dir.join("report.md");
        let mut out = String::new();
        let code = conformance_to(&args(&dir, 97.0, Some(report.clone())), &mut out).unwrap();
        assert_eq!(code, ExitCode::from(1));
        assert!(
            out.ends_with("agreement 75.00% (minimum 97.0%)\n3 passed, 1 failed\n"),
            "{out}"
        );
        assert!(
            out.contains("     p/r on good: expected fail, got pass from rule r"),
            "{out}"
        );
        let md = std::fs::read_to_string(&report).unwrap();
        assert!(
            md.contains("| case.json | p | r | good | fail | expected fail, got pass"),
            "{md}"
        );

        let mut out = String::new();
        let code = conformance_to(&args(&dir, 75.0, None), &mut out).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);

        let json_report = dir.join("report.json");
        conformance_to(
            &args(&dir, 50.0, Some(json_report.clone())),
            &mut String::new(),
        )
        .unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_report).unwrap()).unwrap();
        assert_eq!(doc["failed"], 1);
        assert_eq!(doc["mismatches"][0]["resource"], "good");
        assert!(conformance_to(&args(&dir, 120.0, None), &mut String::new()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn test_command_reports_a_policy_failing_the_schema_and_does_not_evaluate_it() {
        let dir = scratch("schema-gate");
        let mut policy: Value = serde_json::from_str(POLICY).unwrap();
        policy["spec"]["rules"][0]["validate"]["deny"] = json!({});
        std::fs::write(dir.join("policy.json"), policy.to_string()).unwrap();
        std::fs::write(
            dir.join("pod.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {hostNetwork: true}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("kyverno-test.yaml"),
            "policies: [policy.json]\nresources: [pod.yaml]\nresults:\n\
             - {policy: p, rule: r, resource: bad, result: fail}\n",
        )
        .unwrap();
        let mut out = String::new();
        let args = TestArgs {
            dir: dir.clone(),
            allow_unsupported: false,
        };
        let code = test(args, &mut out).unwrap();
        assert_eq!(code, ExitCode::from(1));
        assert!(
            out.contains("spec.rules[0].validate.pattern: validate allows only one of"),
            "{out}"
        );
        assert!(out.contains("spec.rules[0].validate.deny: "), "{out}");
        assert!(
            out.ends_with("0 passed, 1 failed, 0 unsupported\n"),
            "{out}"
        );

        let mut out = String::new();
        let code = check(
            CheckArgs {
                policies: vec![dir.join("policy.json")],
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(code, ExitCode::from(1));
        assert!(
            out.ends_with("1 policies checked, 1 with violations, 2 violations\n"),
            "{out}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
