//! `policyhub diff`: the connections a change of manifests adds, removes or changes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{ArgAction, Args};
use netpol::diff::{self, DiffEntry, DiffSummary, DiffType};

use crate::engine_args::{load_cluster, EngineArgs};
use crate::output::{print_dot, print_rows, print_structured, progress, DotEdge, Format};

#[derive(Args)]
pub struct DiffArgs {
    /// Manifests of the cluster before the change: files or directories (repeat for more).
    #[arg(long, value_name = "PATH", action = ArgAction::Append,
          required_unless_present = "filename", conflicts_with = "filename")]
    base: Vec<PathBuf>,
    /// Manifests of the cluster after the change, in the same forms as --base.
    #[arg(long, value_name = "PATH", action = ArgAction::Append,
          required_unless_present = "filename", conflicts_with = "filename")]
    target: Vec<PathBuf>,
    /// `-f BASE -f TARGET`: the same as --base BASE --target TARGET.
    #[arg(short = 'f', long = "filename", value_name = "PATH", action = ArgAction::Append)]
    filename: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// table, json, yaml, md, csv or dot.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Exit with status 1 when the target allows a connection the base did not (an added
    /// pair, or a changed pair with new ports): a CI gate against widening.
    #[arg(long)]
    fail_on_added: bool,
}

const HEADER: [&str; 6] = ["DIFF", "SOURCE", "DESTINATION", "BEFORE", "AFTER", "NOTE"];

pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    if args.output == Format::Matrix {
        bail!("--output matrix is not available for diff (table, json, yaml, md, csv or dot)");
    }
    let (base, target) = match args.filename.as_slice() {
        [] => (args.base.clone(), args.target.clone()),
        [b, t] => (vec![b.clone()], vec![t.clone()]),
        _ => bail!(
            "-f takes exactly two paths, the base and then the target (or use --base and --target)"
        ),
    };
    let base = load_cluster(&base, &args.engine).context("base cluster")?;
    let target = load_cluster(&target, &args.engine).context("target cluster")?;
    let mut entries: Vec<DiffEntry> = Vec::new();
    let mut summary = DiffSummary::default();
    let mut widened = false;
    diff::diff(&base, &target, progress("comparing workloads"), |e| {
        summary.count(&e);
        widened |= !e.gained().is_empty();
        entries.push(e);
    });
    match args.output {
        Format::Json | Format::Yaml => print_structured(&entries, args.output)?,
        Format::Dot => {
            let edges: Vec<DotEdge> = entries
                .iter()
                .map(|e| DotEdge {
                    src: e.src.to_string(),
                    dst: e.dst.to_string(),
                    label: format!("{} => {}", e.before, e.after),
                    attrs: Some(format!(
                        "color={}, tooltip={:?}",
                        match e.diff_type {
                            DiffType::Added => "green",
                            DiffType::Removed => "red",
                            DiffType::Changed => "blue",
                        },
                        e.diff_type.as_str()
                    )),
                })
                .collect();
            print_dot("diff", &edges);
        }
        _ => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.diff_type.to_string(),
                        e.src.to_string(),
                        e.dst.to_string(),
                        e.before.to_string(),
                        e.after.to_string(),
                        e.workloads_info().unwrap_or_default(),
                    ]
                })
                .collect();
            if args.output != Format::Table {
                print_rows(args.output, &HEADER, &rows);
            } else if rows.is_empty() {
                println!("no differences");
            } else {
                print_rows(args.output, &HEADER, &rows);
                println!(
                    "differences: {} (added {}, removed {}, changed {})",
                    summary.total(),
                    summary.added,
                    summary.removed,
                    summary.changed
                );
            }
        }
    }
    Ok(if args.fail_on_added && widened {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
