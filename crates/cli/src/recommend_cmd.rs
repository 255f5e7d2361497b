//! `policyhub recommend`: policy suggestions from a snapshot and the flows observed in it,
//! each checked by the evaluator before it is printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use recommend::{Kind, Options, Report};

use crate::engine_args::{load_into, EngineArgs};
use crate::flow_cmd::observed_graph;
use crate::output::{print_structured, print_table, Format};

#[derive(Args)]
pub struct RecommendArgs {
    /// Snapshot manifests: `kubectl get -A -o yaml` output, files or directories.
    #[arg(long, required = true, num_args = 1..)]
    snapshot: Vec<PathBuf>,
    /// Observed flows: Hubble JSON lines (`hubble observe -o jsonpb`), gzip or plain; `-`
    /// for stdin.
    #[arg(long)]
    flows: String,
    /// Leave out suggestions below this confidence (0 to 1).
    #[arg(long, default_value_t = 0.7, value_name = "0..1")]
    min_confidence: f64,
    /// Only these types (repeat the flag for several).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    types: Vec<TypeArg>,
    /// `table`, `json` or `yaml`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Also write each suggestion as a file ready for `kubectl apply`, and the whole report
    /// as report.json, into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Dismissed suggestions: a JSON list of {fingerprint, evidenceDigest, reason:
    /// FALSE_POSITIVE|ACCEPTED_RISK|OTHER}; not suggested again while their evidence is the
    /// same.
    #[arg(long, value_name = "FILE")]
    dismissed: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    CoverageGap,
    UnusedRule,
    OverlyBroad,
}

impl From<TypeArg> for Kind {
    fn from(t: TypeArg) -> Kind {
        match t {
            TypeArg::CoverageGap => Kind::CoverageGap,
            TypeArg::UnusedRule => Kind::UnusedRule,
            TypeArg::OverlyBroad => Kind::OverlyBroad,
        }
    }
}

pub fn recommend(args: RecommendArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.output, Format::Table | Format::Json | Format::Yaml) {
        bail!("--output must be table, json or yaml");
    }
    if !(0.0..=1.0).contains(&args.min_confidence) {
        bail!(
            "--min-confidence must be between 0 and 1, not {}",
            args.min_confidence
        );
    }
    let bundle = load_into(netpol::Bundle::keeping_sources(), &args.snapshot)?;
    let sources = bundle.sources;
    let engine = netpol::Engine::new(bundle.inventory, bundle.policies, args.engine.options());
    let graph = observed_graph(&engine, &args.flows)?;
    let dismissed = match &args.dismissed {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
    };
    let options = Options {
        min_confidence: args.min_confidence,
        kinds: if args.types.is_empty() {
            Kind::ALL.to_vec()
        } else {
            args.types.iter().map(|&t| t.into()).collect()
        },
        dismissed,
    };
    let report = recommend::recommend(&engine, &sources, &graph, &options);
    if let Some(dir) = &args.out {
        write_out(dir, &report)?;
    }
    match args.output {
        Format::Table => print_report(&report),
        other => print_structured(&report, other)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One `NN-<namespace>-<name>.yaml` per suggestion, and `report.json`.
fn write_out(dir: &PathBuf, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, r) in report.recommendations.iter().enumerate() {
        let file = dir.join(format!(
            "{:02}-{}.yaml",
            i + 1,
            r.target_policy.replace('/', "-")
        ));
        std::fs::write(&file, &r.suggested_yaml)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    let summary = dir.join("report.json");
    std::fs::write(&summary, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", summary.display()))?;
    eprintln!(
        "wrote {} suggestion file(s) and report.json to {}",
        report.recommendations.len(),
        dir.display()
    );
    Ok(())
}

fn print_report(report: &Report) {
    let rows: Vec<Vec<String>> = report
        .recommendations
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.kind.as_str().to_string(),
                format!("{:?}", r.severity).to_uppercase(),
                format!("{:.2}", r.confidence),
                r.target_policy.clone(),
                format!(
                    "closes {}+{} ext, opens {}+{} ext",
                    r.impact.pairs_newly_blocked,
                    r.impact.ranges_newly_blocked,
                    r.impact.pairs_newly_allowed,
                    r.impact.ranges_newly_allowed
                ),
                r.title.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print_table(
            &[
                "#",
                "TYPE",
                "SEVERITY",
                "CONFIDENCE",
                "POLICY",
                "IMPACT",
                "TITLE",
            ],
            &rows,
        );
    }
    for r in &report.rejected {
        println!(
            "not suggested ({}, {}): {}",
            r.kind.as_str(),
            r.target,
            r.reason
        );
    }
    println!(
        "{} suggestion(s), {} refused by the evaluator, from {} judged flows over {} hour(s)",
        report.recommendations.len(),
        report.rejected.len(),
        report.window_flows,
        report.window_hours
    );
}
