//! `policyhub kyverno test` and `policyhub kyverno apply`: the embedded Kyverno evaluator.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use kyverno::runner::{self, Report};
use kyverno::{CompiledPolicy, Request, RuleStatus};
use serde_json::{json, Value};

/// Kyverno policies, evaluated offline.
#[derive(Subcommand)]
pub enum KyvernoCommand {
    /// Run Kyverno CLI tests (`kyverno-test.yaml`) under a directory and score them as the
    /// Kyverno CLI does.
    Test(TestArgs),
    /// Apply policies to resources and print a result per resource and rule.
    Apply(ApplyArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// A directory searched for `kyverno-test.yaml` files, or one such file.
    dir: PathBuf,
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
    }?;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(code),
    }
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
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let case = runner::load_test_file(file)?;
        let report =
            runner::run_case(&case).with_context(|| format!("running {}", file.display()))?;
        print_report(out, file, &report)?;
        passed += report.passed();
        failed += report.failed();
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
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
            let actual = if c.actual.is_empty() {
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
                if c.passed { "Pass" } else { "Fail" }.to_string(),
            ]
        })
        .collect();
    print_table(
        out,
        &[
            "#", "POLICY", "RULE", "RESOURCE", "EXPECTED", "ACTUAL", "RESULT",
        ],
        &rows,
    )?;
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
    let policies: Vec<CompiledPolicy> = runner::read_policies(&files_under(&args.policies)?)?;
    if policies.is_empty() {
        anyhow::bail!("no ClusterPolicy or Policy found in the policy files");
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
            print_table(
                out,
                &["POLICY", "RULE", "RESOURCE", "RESULT", "MESSAGE"],
                &table,
            )?;
            writeln!(
                out,
                "pass: {pass}, fail: {fail}, skip: {skip}, error: {error}"
            )?;
        }
    }
    Ok(if fail + error == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) -> std::fmt::Result {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_string()
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect();
        writeln!(out, "{}", parts.join("  "))
    };
    line(out, header.to_vec())?;
    for row in rows {
        line(out, row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
