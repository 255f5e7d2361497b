//! `policyhub segment generate|verify|compose`: tier segmentation from a service catalog.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use segment::verify::Report;
use segment::{Catalog, Format, Mode};
use serde_json::Value;

use crate::output::{print_structured, print_table, Format as OutputFormat};

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Generate policies, label patches, kustomization, compose override and alert rules.
    Generate(GenerateArgs),
    /// Check policies against the catalog: documented edges allowed, over-permission, compliance.
    Verify(VerifyArgs),
    /// Print the docker compose override with the tier networks.
    Compose(CatalogArgs),
}

#[derive(Args)]
pub struct CatalogArgs {
    /// The service catalog (YAML).
    catalog: PathBuf,
    /// Fail on services that are referenced but not described.
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Tier,
    Service,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    K8s,
    Cilium,
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    #[arg(long, value_enum, default_value = "tier")]
    mode: ModeArg,
    #[arg(long, value_enum, default_value = "k8s")]
    format: FormatArg,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Policy files or directories (only policy kinds are read).
    #[arg(required = true)]
    policies: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

pub fn run(cmd: SegmentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SegmentCommand::Generate(args) => generate(args),
        SegmentCommand::Verify(args) => verify(args),
        SegmentCommand::Compose(args) => {
            print!("{}", segment::compose::override_file(&load(&args)?));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(args: &CatalogArgs) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(&args.catalog)
        .with_context(|| format!("reading {}", args.catalog.display()))?;
    let catalog = Catalog::parse(&text, &args.catalog.display().to_string(), args.strict)?;
    for w in &catalog.warnings {
        eprintln!("warning: {w}");
    }
    Ok(catalog)
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let catalog = load(&args.catalog)?;
    let mode = match args.mode {
        ModeArg::Tier => Mode::Tier,
        ModeArg::Service => Mode::Service,
    };
    let format = match args.format {
        FormatArg::K8s => Format::Kubernetes,
        FormatArg::Cilium => Format::Cilium,
    };
    let out = segment::generate::generate(&catalog, mode, format)?;
    for (path, content) in &out.files {
        let file = args.out.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&file, content).with_context(|| format!("writing {}", file.display()))?;
    }
    println!("wrote {} files to {}", out.files.len(), args.out.display());
    let report = segment::verify::verify(&catalog, &out.policies)?;
    print_summary(&report);
    Ok(if report.edges_allowed == report.edges_total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let catalog = load(&args.catalog)?;
    let mut policies = Vec::new();
    for p in &args.policies {
        read_policies(p, &mut policies)?;
    }
    if policies.is_empty() {
        bail!(
            "no NetworkPolicy or Cilium policy found in {:?}",
            args.policies
        );
    }
    let report = segment::verify::verify(&catalog, &policies)?;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => print_structured(&report, args.output)?,
        _ => {
            let rows: Vec<Vec<String>> = report
                .edges
                .iter()
                .filter(|e| !e.allowed)
                .map(|e| {
                    vec![
                        e.src.clone(),
                        e.dst.clone(),
                        e.ports.clone(),
                        e.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                println!("Documented edges NOT allowed:");
                print_table(&["SOURCE", "DESTINATION", "PORTS", "WHY"], &rows);
                println!();
            }
            let rows: Vec<Vec<String>> = report
                .over_permission
                .iter()
                .map(|o| {
                    vec![
                        o.src.clone(),
                        o.dst.clone(),
                        o.ports.clone(),
                        o.listening_ports.to_string(),
                    ]
                })
                .collect();
            println!("Allowed beyond the matrix:");
            print_table(
                &["SOURCE", "DESTINATION", "EXTRA PORTS", "LISTENERS"],
                &rows,
            );
            println!();
            print_summary(&report);
        }
    }
    Ok(if report.edges_allowed == report.edges_total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_summary(report: &Report) {
    println!(
        "documented edges allowed: {}/{}; pairs allowed beyond the matrix: {} ({} reachable listeners not in the matrix)",
        report.edges_allowed,
        report.edges_total,
        report.over_permission.len(),
        report.over_permitted_listeners
    );
    for c in &report.compliance {
        println!(
            "  [{}] {}: {} — {}",
            if c.pass { "PASS" } else { "FAIL" },
            c.control,
            c.title,
            c.detail
        );
    }
}

fn read_policies(path: &Path, out: &mut Vec<Value>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir()
                || e.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            {
                read_policies(&e, out)?;
            }
        }
        return Ok(());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for doc in netpol::manifest::documents(&text, &path.display().to_string())? {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("NetworkPolicy") || kind == "List" {
            out.push(doc);
        }
    }
    Ok(())
}
