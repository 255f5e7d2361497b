//! `policyhub eval`, `policyhub connectivity` and `policyhub conformance netpol`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use netpol::connectivity::{self, Connection};
use netpol::policy::Entity;
use netpol::{Endpoint, Engine, Protocol};

use crate::engine_args::{load_bundle, load_cluster, load_engine, EngineArgs};
use crate::output::{
    print_dot, print_rows, print_structured, print_table, progress, DotEdge, Format,
};

/// Where the cluster comes from, shared by the commands that evaluate it.
#[derive(Args)]
pub struct SourceArgs {
    /// Manifest files or directories (YAML or JSON, multi-document, `kind: List`).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

impl SourceArgs {
    /// The manifests and the evaluation options.
    fn bundle(&self) -> anyhow::Result<(netpol::Bundle, netpol::Options)> {
        Ok((load_bundle(&self.files)?, self.engine.options()))
    }

    fn engine(&self) -> anyhow::Result<Engine> {
        load_engine(&self.files, &self.engine)
    }

    /// The engine with the ingress controller as a peer, for connectivity reports.
    fn cluster(&self) -> anyhow::Result<Engine> {
        load_cluster(&self.files, &self.engine)
    }
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Source: `namespace/pod`, an IP address, or an entity such as `world`, `host`.
    #[arg(long)]
    from: String,
    /// Destination, in the same forms as --from.
    #[arg(long)]
    to: String,
    /// Destination port (ICMP: the ICMP type).
    #[arg(long)]
    port: u16,
    /// TCP, UDP, SCTP or ICMP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let engine = args.source.engine()?;
    let protocol = Protocol::parse(&args.protocol).with_context(|| {
        format!(
            "unknown protocol {:?} (want TCP, UDP, SCTP or ICMP)",
            args.protocol
        )
    })?;
    let src = endpoint(&engine, &args.from).context("--from")?;
    let dst = endpoint(&engine, &args.to).context("--to")?;
    let decision = engine.decide(&src, &dst, protocol, args.port);
    match args.output {
        Format::Json | Format::Yaml => print_structured(&decision, args.output)?,
        _ => {
            println!(
                "{} -> {} {}/{}: {}",
                decision.source, decision.destination, protocol, args.port, decision.verdict
            );
            println!("  {}", decision.reason);
            for d in decision.egress.iter().chain(decision.ingress.iter()) {
                println!("  {}: {} — {}", d.direction.as_str(), d.verdict, d.reason);
                for m in d.allowed_by.iter().chain(&d.denied_by) {
                    if let Some(note) = &m.note {
                        println!("    note ({} rule {}): {note}", m.policy, m.rule);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `ns/pod`, an IP (a pod's IP resolves to the pod) or an entity name.
fn endpoint(engine: &Engine, text: &str) -> anyhow::Result<Endpoint> {
    if let Some(i) = engine.inventory().pod_index(text) {
        return Ok(Endpoint::Pod(i));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(engine.endpoint_for_ip(ip));
    }
    if let Some(e) = Entity::parse(text) {
        return Ok(Endpoint::Entity(e, None));
    }
    if text.contains('/') {
        bail!("no pod {text:?} in the manifests");
    }
    bail!("{text:?} is not namespace/pod, an IP address or an entity (world, host, remote-node, kube-apiserver, ...)")
}

#[derive(Args)]
pub struct ConnectivityArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// table (list of allowed connections), matrix, json, yaml, md, csv or dot.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Also list pairs with no connection.
    #[arg(long)]
    all: bool,
}

pub fn connectivity(args: ConnectivityArgs) -> anyhow::Result<ExitCode> {
    let engine = args.source.cluster()?;
    let mut conns: Vec<Connection> = Vec::new();
    let keep_all = args.all || args.output == Format::Matrix;
    connectivity::analyze(
        &engine,
        progress("analyzing workloads"),
        |src, dst, ports| {
            if keep_all || !ports.is_empty() {
                conns.push(Connection {
                    src: src.clone(),
                    dst: dst.clone(),
                    ports: ports.clone(),
                });
            }
        },
    );
    let shown: Vec<&Connection> = conns
        .iter()
        .filter(|c| args.all || !c.ports.is_empty())
        .collect();
    match args.output {
        Format::Json | Format::Yaml => print_structured(&shown, args.output)?,
        Format::Dot => {
            let edges: Vec<DotEdge> = shown
                .iter()
                .map(|c| DotEdge {
                    src: c.src.to_string(),
                    dst: c.dst.to_string(),
                    label: c.ports.to_string(),
                    attrs: None,
                })
                .collect();
            print_dot("connectivity", &edges);
        }
        Format::Matrix => print_matrix(&conns),
        Format::Table | Format::Md | Format::Csv => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|c| vec![c.src.to_string(), c.dst.to_string(), c.ports.to_string()])
                .collect();
            print_rows(args.output, &["SOURCE", "DESTINATION", "ALLOWED"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ExposureArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// table, json, yaml, md or csv.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub fn exposure(args: ExposureArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.output, Format::Matrix | Format::Dot) {
        bail!("--output must be table, json, yaml, md or csv for exposure");
    }
    let (bundle, options) = args.source.bundle()?;
    let report = netpol::exposure::analyze(bundle.inventory, bundle.policies, options);
    if matches!(args.output, Format::Json | Format::Yaml) {
        print_structured(&report, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = report
        .lines
        .iter()
        .map(|l| {
            let unprotected = l.peer == netpol::exposure::ExposedTo::EntireCluster
                && report
                    .unprotected
                    .iter()
                    .any(|u| u.workload == l.workload && u.direction == l.direction);
            vec![
                l.workload.to_string(),
                l.direction.as_str().to_string(),
                l.peer.to_string(),
                l.ports.to_string(),
                if unprotected { "not protected" } else { "" }.to_string(),
            ]
        })
        .collect();
    print_rows(
        args.output,
        &["WORKLOAD", "DIRECTION", "EXPOSED TO", "CONNECTIONS", "NOTE"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_matrix(conns: &[Connection]) {
    let mut names: Vec<String> = conns
        .iter()
        .flat_map(|c| [c.src.to_string(), c.dst.to_string()])
        .collect();
    names.sort();
    names.dedup();
    let mut rows = Vec::new();
    for src in &names {
        let mut row = vec![src.clone()];
        for dst in &names {
            let cell = conns
                .iter()
                .find(|c| c.src.to_string() == *src && c.dst.to_string() == *dst)
                .map_or("-".to_string(), |c| c.ports.to_string());
            row.push(cell);
        }
        rows.push(row);
    }
    let mut header = vec!["SOURCE \\ DESTINATION"];
    header.extend(names.iter().map(String::as_str));
    print_table(&header, &rows);
}

#[derive(Args)]
pub struct ConformanceArgs {
    /// Directories or case files (`*.json`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Options for cases that do not set their own.
    #[command(flatten)]
    engine: EngineArgs,
    /// Succeed even when some entries were not evaluated (they are still never passed).
    #[arg(long)]
    allow_unsupported: bool,
}

pub fn conformance(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in &args.paths {
        collect_cases(p, &mut files)?;
    }
    if files.is_empty() {
        bail!("no case files (*.json) under {:?}", args.paths);
    }
    let options = args.engine.options();
    let (mut passed, mut failed, mut not_evaluated) = (0usize, 0usize, 0usize);
    for file in &files {
        let case = netpol::conformance::AnyCase::load(file).map_err(anyhow::Error::msg)?;
        let result = case
            .run(options)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        passed += result.passed;
        failed += result.failures.len();
        not_evaluated += result.not_evaluated.len();
        let status = if !result.failures.is_empty() {
            "FAIL"
        } else if !result.not_evaluated.is_empty() {
            "part"
        } else {
            "ok"
        };
        let skipped = match result.not_evaluated.len() {
            0 => String::new(),
            n => format!(", {n} not evaluated"),
        };
        println!(
            "{status:4} {} ({} of {} entries{skipped})",
            result.name,
            result.passed,
            result.passed + result.failures.len() + result.not_evaluated.len()
        );
        for f in &result.failures {
            println!(
                "     {} -> {}: expected {}, got {}",
                f.src, f.dst, f.want, f.got
            );
            if let Some(rule) = &f.rule {
                println!("       rule: {rule}");
            }
        }
        for n in &result.not_evaluated {
            println!("     {} -> {}: not evaluated: {}", n.src, n.dst, n.reason);
        }
    }
    if not_evaluated > 0 {
        println!("{passed} passed, {failed} failed, {not_evaluated} not evaluated");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(
        if failed == 0 && (not_evaluated == 0 || args.allow_unsupported) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn collect_cases(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "json") {
                collect_cases(&e, out)?;
            }
        }
    } else if path.exists() {
        out.push(path.to_path_buf());
    } else {
        bail!("{} does not exist", path.display());
    }
    Ok(())
}
