//! `policyhub`: the command line. Parses flags and hands each command to its module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod diff_cmd;
mod engine_args;
mod flow_cmd;
mod hub_cmd;
mod kyverno_cmd;
mod netpol_cmd;
mod output;
mod pack_cmd;
mod pattern_cmd;
mod recommend_cmd;
mod segment_cmd;

/// Policy Hub: know whether your Kubernetes policies actually work.
#[derive(Parser)]
#[command(name = "policyhub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide one flow and explain the verdict.
    Eval(netpol_cmd::EvalArgs),
    /// Allowed ports between every pair of workloads and external ranges.
    Connectivity(netpol_cmd::ConnectivityArgs),
    /// What each workload is open to: unprotected directions, the entire cluster,
    /// representative peers (pods the manifests do not declare) and external ranges.
    Exposure(netpol_cmd::ExposureArgs),
    /// Connections a change adds, removes or changes: base manifests against target manifests.
    Diff(diff_cmd::DiffArgs),
    /// Run the hub: multi-tenant API, collector ingestion, validation data.
    Serve(hub_cmd::ServeArgs),
    /// Apply the hub's pending database migrations and exit (before `serve` in a rollout).
    Migrate(hub_cmd::MigrateArgs),
    /// The hub with a week of validation data for the bundled 30-service deployment.
    Demo(hub_cmd::DemoArgs),
    /// Tier segmentation from a service communication matrix.
    #[command(subcommand)]
    Segment(segment_cmd::SegmentCommand),
    /// Run conformance corpora.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
    /// Kyverno policies: run Kyverno CLI tests, apply policies to resources, check their schema.
    #[command(subcommand)]
    Kyverno(kyverno_cmd::KyvernoCommand),
    /// Judge observed flows (Hubble JSON lines) against a snapshot's policies.
    Validate(flow_cmd::ValidateArgs),
    /// Flow tools: synthesise Hubble flows for a snapshot.
    #[command(subcommand)]
    Flows(flow_cmd::FlowsCommand),
    /// Suggest policies from observed flows, each checked by the evaluator first.
    Recommend(recommend_cmd::RecommendArgs),
    /// Policy packs: list, show, render with parameters, run their tests, preview their impact.
    #[command(subcommand)]
    Pack(pack_cmd::PackCommand),
    /// Organisational patterns: generate validated Kyverno deny policies from them.
    #[command(subcommand)]
    Pattern(pattern_cmd::PatternCommand),
}

#[derive(Subcommand)]
enum ConformanceCommand {
    /// Run NetworkPolicy/ANP/BANP/Cilium case files (../shared/corpus/netpol format).
    Netpol(netpol_cmd::ConformanceArgs),
    /// Run Kyverno CLI test case files (../shared/corpus/kyverno format) and score agreement.
    Kyverno(kyverno_cmd::ConformanceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command whose output is piped into `head` ends quietly when the reader goes away,
    // as Unix tools do, instead of panicking on the failed write. Servers keep handling
    // write errors themselves.
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        sigpipe::reset();
    }
    let result = match cli.command {
        Command::Eval(args) => netpol_cmd::eval(args),
        Command::Connectivity(args) => netpol_cmd::connectivity(args),
        Command::Diff(args) => diff_cmd::diff(args),
        Command::Exposure(args) => netpol_cmd::exposure(args),
        Command::Conformance(ConformanceCommand::Netpol(args)) => netpol_cmd::conformance(args),
        Command::Segment(cmd) => segment_cmd::run(cmd),
        Command::Serve(args) => hub_cmd::serve(args),
        Command::Migrate(args) => hub_cmd::migrate(args),
        Command::Demo(args) => hub_cmd::demo(args),
        Command::Conformance(ConformanceCommand::Kyverno(args)) => kyverno_cmd::conformance(args),
        Command::Kyverno(cmd) => kyverno_cmd::run(cmd),
        Command::Validate(args) => flow_cmd::validate(args),
        Command::Flows(cmd) => flow_cmd::run(cmd),
        Command::Recommend(args) => recommend_cmd::recommend(args),
        Command::Pack(cmd) => pack_cmd::run(cmd),
        Command::Pattern(cmd) => pattern_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
