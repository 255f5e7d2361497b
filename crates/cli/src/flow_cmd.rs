//! `policyhub validate` and `policyhub flows synth`: flow validation against a snapshot.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use flowtypes::{Discrepancy, ValidationPayload};

use crate::engine_args::{load_engine, EngineArgs};
use crate::output::{print_structured, print_table, Format};

#[derive(Args)]
pub struct ValidateArgs {
    /// Snapshot manifests: `kubectl get -A -o yaml` output, files or directories.
    #[arg(long, required = true, num_args = 1..)]
    snapshot: Vec<PathBuf>,
    /// Hubble flows as JSON lines (`hubble observe -o jsonpb`), gzip or plain; `-` for stdin.
    #[arg(long)]
    flows: String,
    /// `table` (terminal summary) or `json` (the payload the hub ingests).
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Also write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Stop at the first corrupt line instead of counting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Cluster name written into the payload.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Entries in each hour's coverage-gap and blocked lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Space-Saving counters per hour and list: top lists are exact up to this many distinct
    /// keys an hour; beyond, counts over-estimate by at most flows-per-hour / counters.
    #[arg(long, default_value_t = 1024)]
    counters: usize,
    /// Events sampled per (verdict, discrepancy) class.
    #[arg(long, default_value_t = 20)]
    sample: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Exit with status 1 when enforcement gaps or unexpected drops are found.
    #[arg(long)]
    fail_on_discrepancy: bool,
}

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Synthesise realistic Hubble flows (jsonpb lines) for a snapshot.
    Synth(SynthArgs),
}

#[derive(Args)]
pub struct SynthArgs {
    /// Snapshot manifests, files or directories.
    #[arg(long, required = true, num_args = 1..)]
    snapshot: Vec<PathBuf>,
    /// Lines to write.
    #[arg(long)]
    count: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of connections the model blocks but the dataplane forwards.
    #[arg(long, default_value_t = 0.0)]
    gap_share: f64,
    /// Share of connections the model allows but the dataplane drops by policy.
    #[arg(long, default_value_t = 0.0)]
    drop_share: f64,
    /// Share of connections the model blocks and the dataplane drops.
    #[arg(long, default_value_t = 0.1)]
    blocked_share: f64,
    /// Share of connections no policy governs.
    #[arg(long, default_value_t = 0.2)]
    no_policy_share: f64,
    /// Hours the flows are spread over.
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// First hour of the flows, RFC 3339 UTC (`2026-12-01T00:00:00Z`) or Unix seconds;
    /// default: the flows end in the current hour, so a dashboard's recent range shows them.
    #[arg(long, value_parser = parse_start)]
    start: Option<i64>,
    /// Output file (default: standard output).
    #[arg(long = "out")]
    out: Option<PathBuf>,
    /// Print the counts validation must find (JSON) to standard error.
    #[arg(long)]
    expect: bool,
}

/// `--start`: RFC 3339 UTC or Unix seconds.
fn parse_start(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .or_else(|| hub::api::parse_utc(text))
        .ok_or_else(|| {
            format!(
                "{text:?} is neither an RFC 3339 UTC time (2026-12-01T00:00:00Z) nor Unix seconds"
            )
        })
}

/// The communication graph of `flows` (a path or `-`) judged on `engine`, read with
/// progress on a terminal.
pub(crate) fn observed_graph(
    engine: &netpol::Engine,
    flows: &str,
) -> anyhow::Result<flow::graph::Graph> {
    let mut validator = flow::Validator::new(engine, flow::Config::default());
    validator.record_graph();
    read_flows(&mut validator, flows)?;
    Ok(validator.graph())
}

/// Feeds a validator every flow of `flows` (a path or `-`), with progress on a terminal.
fn read_flows(validator: &mut flow::Validator<&netpol::Engine>, flows: &str) -> anyhow::Result<()> {
    let input = flow::reader::open(flows)?;
    let size = (flows != "-" && !flows.ends_with(".gz"))
        .then(|| std::fs::metadata(flows).ok().map(|m| m.len()))
        .flatten();
    let show = std::io::stderr().is_terminal();
    let start = Instant::now();
    let result = validator.run(input, |stats, bytes| {
        if show {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let pct = size.map_or(String::new(), |s| {
                format!(" {:5.1}%", bytes as f64 * 100.0 / s.max(1) as f64)
            });
            eprint!(
                "\r{pct} {} lines, {:.0} MB, {:.0} lines/s   ",
                stats.lines,
                bytes as f64 / 1e6,
                stats.lines as f64 / secs
            );
        }
    });
    if show {
        eprintln!();
    }
    result.with_context(|| format!("reading flows from {flows}"))
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.output, Format::Table | Format::Json | Format::Yaml) {
        bail!("--output must be table or json");
    }
    let engine = load_engine(&args.snapshot, &args.engine)?;
    let config = flow::Config {
        cluster: args.cluster.clone(),
        top_n: args.top,
        counters: args.counters,
        sample_per_class: args.sample,
        strict: args.strict,
        ..flow::Config::default()
    };
    let mut validator = flow::Validator::new(&engine, config);
    read_flows(&mut validator, &args.flows)?;
    let payload = validator.finish();
    if let Some(path) = &args.report {
        std::fs::write(path, flow::html::render(&payload))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match args.output {
        Format::Table => print_summary(&payload, args.top),
        other => print_structured(&payload, other)?,
    }
    let d = payload.totals().discrepancies;
    if args.fail_on_discrepancy && d.enforcement_gap + d.unexpected_drop > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn share(n: u64, total: u64) -> String {
    format!("{:.1}%", n as f64 * 100.0 / total.max(1) as f64)
}

fn print_summary(p: &ValidationPayload, top: usize) {
    let i = &p.input;
    println!(
        "{} lines: {} flows, {} judged, {} replies, {} not L3/L4, {} unresolved, {} corrupt; {} hours",
        i.lines,
        i.flows,
        i.judged,
        i.replies,
        i.not_l3l4,
        i.unresolved,
        i.corrupt,
        p.summaries.len()
    );
    let t = p.totals();
    let judged = t.judged();
    println!();
    print_table(
        &["VERDICT", "FLOWS", "SHARE"],
        &[
            ("ALLOWED", t.allowed_count),
            ("BLOCKED", t.blocked_count),
            ("NO_POLICY", t.no_policy_count),
        ]
        .map(|(v, n)| vec![v.to_string(), n.to_string(), share(n, judged)]),
    );
    println!();
    let d = &t.discrepancies;
    let mut rows: Vec<Vec<String>> = Discrepancy::ALL
        .iter()
        .map(|c| {
            vec![
                c.as_str().to_string(),
                d.get(*c).to_string(),
                share(d.get(*c), judged),
            ]
        })
        .collect();
    rows.push(vec![
        "POLICY_NAME_MISMATCH".into(),
        d.policy_name_mismatch.to_string(),
        share(d.policy_name_mismatch, judged),
    ]);
    print_table(&["DATAPLANE VS MODEL", "FLOWS", "SHARE"], &rows);
    let exact = p.summaries.iter().all(|s| s.top_exact);
    let count = |n: u64, e: u64| {
        if e == 0 {
            n.to_string()
        } else {
            format!("{n} (±{e})")
        }
    };
    let gaps: Vec<Vec<String>> = flow::html::merged_gaps(p)
        .into_iter()
        .take(top)
        .map(|(s, d, port, n, e)| vec![s, d, port, count(n, e)])
        .collect();
    if !gaps.is_empty() {
        println!(
            "\nTop coverage gaps (no policy){}:",
            if exact { "" } else { ", approximate" }
        );
        print_table(&["SOURCE", "DESTINATION", "PORT", "FLOWS"], &gaps);
    }
    let blocked: Vec<Vec<String>> = flow::html::merged_blocked(p)
        .into_iter()
        .take(top)
        .map(|(s, d, pol, n, e)| vec![s, d, pol, count(n, e)])
        .collect();
    if !blocked.is_empty() {
        println!("\nTop blocked{}:", if exact { "" } else { ", approximate" });
        print_table(&["SOURCE", "DESTINATION", "POLICY", "FLOWS"], &blocked);
    }
    let notable: Vec<Vec<String>> = p
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.discrepancy,
                Discrepancy::EnforcementGap | Discrepancy::UnexpectedDrop
            )
        })
        .take(top)
        .map(|e| {
            vec![
                e.line.map(|l| l.to_string()).unwrap_or_default(),
                e.discrepancy.as_str().to_string(),
                side(&e.src_namespace, &e.src_pod_name, &e.src_ip, &e.src_labels),
                side(&e.dst_namespace, &e.dst_pod_name, &e.dst_ip, &e.dst_labels),
                format!("{}/{}", e.protocol, e.dst_port),
                e.observed.clone().unwrap_or_default(),
                e.matched_policy.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !notable.is_empty() {
        println!("\nDiscrepancies (sample):");
        print_table(
            &[
                "LINE",
                "CLASS",
                "SOURCE",
                "DESTINATION",
                "PORT",
                "DATAPLANE",
                "MODEL POLICY",
            ],
            &notable,
        );
    }
    if !i.corrupt_lines.is_empty() {
        println!("\nCorrupt lines (skipped):");
        let rows: Vec<Vec<String>> = i
            .corrupt_lines
            .iter()
            .map(|c| vec![c.line.to_string(), c.error.clone()])
            .collect();
        print_table(&["LINE", "ERROR"], &rows);
    }
}

/// `namespace/pod`, else the address, else the first label (a reserved identity).
fn side(ns: &str, pod: &Option<String>, ip: &Option<String>, labels: &[String]) -> String {
    match (pod, ip) {
        (Some(pod), _) => format!("{ns}/{pod}"),
        (None, Some(ip)) => ip.clone(),
        (None, None) => labels.first().cloned().unwrap_or_else(|| "-".into()),
    }
}

pub fn run(cmd: FlowsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FlowsCommand::Synth(args) => synth(args),
    }
}

fn synth(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let engine = load_engine(&args.snapshot, &EngineArgs::default())?;
    let cfg = flow::synth::Config {
        count: args.count,
        seed: args.seed,
        blocked_share: args.blocked_share,
        no_policy_share: args.no_policy_share,
        gap_share: args.gap_share,
        drop_share: args.drop_share,
        hours: args.hours,
        start: args
            .start
            .unwrap_or_else(|| hub::now() / 3600 * 3600 - i64::from(args.hours.max(1) - 1) * 3600),
    };
    let expected = match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            flow::synth::synth(&engine, &cfg, file)?
        }
        None => flow::synth::synth(&engine, &cfg, std::io::stdout().lock())?,
    };
    if args.expect {
        let c = &expected.counts;
        let json = serde_json::json!({
            "lines": expected.lines,
            "replies": expected.replies,
            "allowedCount": c.allowed_count,
            "blockedCount": c.blocked_count,
            "noPolicyCount": c.no_policy_count,
            "discrepancies": c.discrepancies,
        });
        writeln!(std::io::stderr(), "{json}")?;
    }
    Ok(ExitCode::SUCCESS)
}
