//! `policyhub pack`: list, show, render, test and preview the policy packs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use packs::{Catalog, Pack, Param, Preview, Tier};
use serde::Serialize;

use crate::engine_args::{load_engine, EngineArgs};
use crate::flow_cmd::observed_graph;
use crate::output::{print_structured, print_table, Format};

#[derive(Subcommand)]
pub enum PackCommand {
    /// List the packs.
    List(ListArgs),
    /// Describe one pack: metadata, parameters, items and control mappings.
    Show(ShowArgs),
    /// Render a pack with parameters into manifests ready for `kubectl apply`.
    Render(RenderArgs),
    /// Run packs' tests (every pack when none is named); exit 1 when one fails.
    Test(TestArgs),
    /// What a pack would change in a cluster: observed flows it would block, coverage.
    Preview(PreviewArgs),
}

/// Where packs come from.
#[derive(Args)]
pub struct Source {
    /// Read packs from this directory (one sub-directory per pack) instead of the ones
    /// shipped in the binary.
    #[arg(long, value_name = "DIR", global = true)]
    packs_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    source: Source,
    /// `table`, `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The pack's slug.
    slug: String,
    #[command(flatten)]
    source: Source,
    /// `table`, `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Args)]
pub struct RenderArgs {
    /// The pack's slug.
    slug: String,
    /// A parameter over the pack's defaults: `key=value`, `a.b=value`; the value is YAML
    /// (`namespaces=[shop, payments]`). Repeat for several.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Read parameters from a YAML or JSON file (merged over the defaults, before --param).
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    #[command(flatten)]
    source: Source,
    /// `yaml` (the manifests) or `json` (items, controls and manifests).
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Args)]
pub struct TestArgs {
    /// Slugs of the packs to test; all when none.
    slugs: Vec<String>,
    #[command(flatten)]
    source: Source,
    /// `table`, `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// The pack's slug.
    slug: String,
    /// Snapshot manifests: `kubectl get -A -o yaml` output, files or directories.
    #[arg(long, required = true, num_args = 1..)]
    snapshot: Vec<PathBuf>,
    /// Observed flows: Hubble JSON lines (`hubble observe -o jsonpb`), gzip or plain; `-`
    /// for stdin.
    #[arg(long)]
    flows: String,
    /// See `pack render --param`.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// See `pack render --values`.
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    /// Blocked edges to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    source: Source,
    /// `table`, `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(cmd: PackCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PackCommand::List(a) => list(a),
        PackCommand::Show(a) => show(a),
        PackCommand::Render(a) => render(a),
        PackCommand::Test(a) => test(a),
        PackCommand::Preview(a) => preview(a),
    }
}

fn catalog(source: &Source) -> anyhow::Result<Catalog> {
    Ok(match &source.packs_dir {
        Some(dir) => Catalog::load_dir(dir)?,
        None => Catalog::builtin()?,
    })
}

fn check_format(format: Format, allowed: &[Format]) -> anyhow::Result<()> {
    if !allowed.contains(&format) {
        let names: Vec<String> = allowed
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        bail!("--output must be {}", names.join(" or "));
    }
    Ok(())
}

const TABLE_JSON_YAML: &[Format] = &[Format::Table, Format::Json, Format::Yaml];

/// One line of `pack list`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    slug: &'a str,
    name: &'a str,
    version: &'a str,
    tier: Tier,
    category: packs::Category,
    #[serde(skip_serializing_if = "Option::is_none")]
    framework: Option<packs::Framework>,
    items: usize,
    tests: usize,
    description: &'a str,
}

fn summary(pack: &Pack) -> Summary<'_> {
    let m = &pack.manifest;
    Summary {
        slug: &m.slug,
        name: &m.name,
        version: &m.version,
        tier: m.tier,
        category: m.category,
        framework: m.framework,
        items: m.items.len(),
        tests: m.tests.len(),
        description: &m.description,
    }
}

fn lower<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    check_format(args.output, TABLE_JSON_YAML)?;
    let catalog = catalog(&args.source)?;
    let packs: Vec<Summary> = catalog.packs.values().map(summary).collect();
    if args.output != Format::Table {
        print_structured(&packs, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = packs
        .iter()
        .map(|p| {
            vec![
                p.slug.to_string(),
                p.version.to_string(),
                lower(&p.tier),
                lower(&p.category),
                p.framework.as_ref().map(lower).unwrap_or_default(),
                p.items.to_string(),
                p.name.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "SLUG",
            "VERSION",
            "TIER",
            "CATEGORY",
            "FRAMEWORK",
            "ITEMS",
            "NAME",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    check_format(args.output, TABLE_JSON_YAML)?;
    let catalog = catalog(&args.source)?;
    let pack = catalog.get(&args.slug)?;
    let m = &pack.manifest;
    if args.output != Format::Table {
        print_structured(m, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} {} — {}", m.slug, m.version, m.name);
    println!("{}", m.description);
    let mut facts = format!("tier: {}, category: {}", lower(&m.tier), lower(&m.category));
    if let Some(f) = &m.framework {
        facts.push_str(&format!(", framework: {}", lower(f)));
        if let Some(v) = &m.framework_version {
            facts.push_str(&format!(" {v}"));
        }
    }
    if let Some(a) = &m.auditor {
        facts.push_str(&format!(
            ", certified by {} on {}",
            a.name, a.certification_date
        ));
    }
    println!("{facts}");
    println!("\nparameters (defaults):");
    for line in yaml_serde::to_string(&m.parameters.defaults)?.lines() {
        println!("  {line}");
    }
    println!();
    let rows: Vec<Vec<String>> = m
        .items
        .iter()
        .map(|i| {
            vec![
                i.order.to_string(),
                i.name.clone(),
                i.kind.as_str().to_string(),
                i.controls
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                i.description.clone(),
            ]
        })
        .collect();
    print_table(&["ORDER", "ITEM", "KIND", "CONTROLS", "DESCRIPTION"], &rows);
    for item in m.items.iter().filter(|i| !i.controls.is_empty()) {
        println!("\n{}:", item.name);
        for c in &item.controls {
            println!("  {}: {}", c.id, c.requirement);
            println!("    implemented by: {}", c.implementation);
            println!("    evidence: {}", c.evidence);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The overrides of `--values` and `--param`, in that order.
fn overrides(values: &Option<PathBuf>, params: &[String]) -> anyhow::Result<Vec<Param>> {
    let mut out = Vec::new();
    if let Some(file) = values {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let value: serde_json::Value = yaml_serde::from_str(&text)
            .with_context(|| format!("{}: not YAML or JSON", file.display()))?;
        let Some(map) = value.as_object() else {
            bail!("{}: expected a mapping of parameters", file.display());
        };
        out.extend(map.iter().map(|(k, v)| Param {
            path: vec![k.clone()],
            value: v.clone(),
        }));
    }
    for p in params {
        out.push(p.parse()?);
    }
    Ok(out)
}

fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    check_format(args.output, &[Format::Yaml, Format::Json])?;
    let catalog = catalog(&args.source)?;
    let pack = catalog.get(&args.slug)?;
    let rendered = packs::render(pack, &overrides(&args.values, &args.params)?)?;
    match args.output {
        Format::Yaml => print!("{}", rendered.to_yaml()),
        other => print_structured(&rendered, other)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    check_format(args.output, TABLE_JSON_YAML)?;
    let catalog = catalog(&args.source)?;
    let selected: Vec<&Pack> = if args.slugs.is_empty() {
        catalog.packs.values().collect()
    } else {
        args.slugs
            .iter()
            .map(|s| catalog.get(s))
            .collect::<Result<_, _>>()?
    };
    let mut results = Vec::new();
    for pack in selected {
        results.extend(packs::run_tests(pack)?);
    }
    let failed = results.iter().filter(|r| !r.ok()).count();
    if args.output != Format::Table {
        print_structured(&results, args.output)?;
    } else {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r.pack.clone(),
                    r.test.clone(),
                    r.passed.to_string(),
                    (r.failures.len() + r.admission_failures.len()).to_string(),
                    if r.ok() { "ok" } else { "FAILED" }.to_string(),
                ]
            })
            .collect();
        print_table(&["PACK", "TEST", "PASSED", "FAILED", "RESULT"], &rows);
        for r in &results {
            for f in &r.failures {
                println!("FAIL {} / {}: {f}", r.pack, r.test);
            }
            for f in &r.admission_failures {
                println!("FAIL {} / {}: admission: {f}", r.pack, r.test);
            }
        }
        let checks: usize = results
            .iter()
            .map(|r| r.passed + r.failures.len() + r.admission_failures.len())
            .sum();
        println!(
            "{} test(s), {} check(s), {} failed test(s)",
            results.len(),
            checks,
            failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn preview(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    check_format(args.output, TABLE_JSON_YAML)?;
    let catalog = catalog(&args.source)?;
    let pack = catalog.get(&args.slug)?;
    let rendered = packs::render(pack, &overrides(&args.values, &args.params)?)?;
    let engine = load_engine(&args.snapshot, &args.engine)?;
    let graph = observed_graph(&engine, &args.flows)?;
    let preview = packs::preview(&engine, &graph, &rendered, args.top);
    match args.output {
        Format::Table => print_preview(&preview),
        other => print_structured(&preview, other)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_preview(p: &Preview) {
    println!(
        "pack {} {}: {} policies over {} observed edges ({} flows)",
        p.pack, p.version, p.policies, p.observed_edges, p.observed_flows
    );
    for r in &p.replaced {
        println!("replaces {r} (same kind, namespace and name)");
    }
    println!(
        "would block {} observed edge(s), {} flow(s), allowed or ungoverned today",
        p.blocked_edges, p.blocked_flows
    );
    if !p.top_blocked.is_empty() {
        let rows: Vec<Vec<String>> = p
            .top_blocked
            .iter()
            .map(|e| {
                vec![
                    e.flows.to_string(),
                    e.source.clone(),
                    e.destination.clone(),
                    format!("{}/{}", e.protocol, e.port),
                    e.policy.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(
            &["FLOWS", "SOURCE", "DESTINATION", "PORT", "BLOCKED BY"],
            &rows,
        );
    }
    println!(
        "coverage of observed flows: {:.1}% -> {:.1}%",
        p.before.flow_share * 100.0,
        p.after.flow_share * 100.0
    );
    println!(
        "coverage of workloads: {}/{} ({:.1}%) -> {}/{} ({:.1}%)",
        p.before.workloads_governed,
        p.before.workloads,
        p.before.workload_share * 100.0,
        p.after.workloads_governed,
        p.after.workloads,
        p.after.workload_share * 100.0
    );
}
