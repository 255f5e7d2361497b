//! `policyhub pattern generate`: an organisational pattern file through the offline pipeline
//! (analysis, generation, dry-run) to a Kyverno policy file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

/// Organisational patterns turned into Kyverno deny policies.
#[derive(Subcommand)]
pub enum PatternCommand {
    /// Analyse a pattern file, generate its deny policy and dry-run it; write the policy only
    /// when the dry-run passes.
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// The pattern: YAML or JSON with id, version, description and rules (statements).
    #[arg(short, long)]
    file: PathBuf,
    /// Directory the policy is written to (`<pattern id>.yaml`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(cmd: PatternCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PatternCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let origin = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {origin}"))?;
    let pattern = patterns::Pattern::from_str(&text, &origin)?;
    let analysis = patterns::analyze(&pattern);
    let mut out = String::new();
    writeln!(
        out,
        "analysis: {} rule(s) from {} statement(s)",
        analysis.rules.len(),
        pattern.rules.len()
    )?;
    for (statement, rule) in &analysis.rules {
        writeln!(
            out,
            "  rule    {}  <- {statement:?}",
            serde_json::to_string(rule)?
        )?;
    }
    for s in &analysis.skipped {
        writeln!(out, "  skipped {:?}: {}", s.statement, s.reason)?;
    }
    let Some(policy) = patterns::generate(&pattern, &analysis) else {
        writeln!(out, "no enforceable deny rule: no policy generated")?;
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    };
    let run = patterns::dry_run(&policy, &analysis)?;
    writeln!(
        out,
        "dry-run: compliant resources {}",
        if run.admits_compliant {
            "admitted"
        } else {
            "DENIED"
        }
    )?;
    for f in &run.compliant_failures {
        writeln!(out, "  {f}")?;
    }
    for r in &run.rules {
        let verdict = if r.denies_violation {
            "denied"
        } else {
            "NOT DENIED"
        };
        writeln!(
            out,
            "  {}: violating resource {verdict} ({})",
            r.rule, r.got
        )?;
    }
    if !run.passed() {
        writeln!(out, "the policy failed its dry-run and is not offered")?;
        print!("{out}");
        return Ok(ExitCode::from(1));
    }
    let yaml = yaml_serde::to_string(&policy)?;
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = dir.join(format!("{}.yaml", pattern.id));
            std::fs::write(&file, &yaml).with_context(|| format!("writing {}", file.display()))?;
            writeln!(out, "saved {}", file.display())?;
            print!("{out}");
        }
        None => {
            eprint!("{out}");
            print!("{yaml}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
