//! `policyhub diff`: the connections a change of manifests adds, removes or changes,
//! written as the diff finds them (except the aligned table and YAML).

use std::io::{BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{ArgAction, Args};
use netpol::diff::{self, DiffEntry, DiffSummary, DiffType};

use crate::engine_args::{load_cluster, EngineArgs};
use crate::output::{dot_edge, dot_open, print_structured, progress, DotEdge, Format, RowWriter};

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
    let mut summary = DiffSummary::default();
    let mut widened = false;
    let mut out = Sink::new(args.output)?;
    let mut failed: Option<std::io::Error> = None;
    diff::diff(&base, &target, progress("comparing workloads"), |e| {
        summary.count(&e);
        widened |= !e.gained().is_empty();
        if failed.is_none() {
            if let Err(err) = out.entry(e) {
                failed = Some(err);
            }
        }
    });
    if let Some(err) = failed {
        return Err(err).context("writing the diff");
    }
    out.finish(&summary)?;
    Ok(if args.fail_on_added && widened {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where entries go as the diff finds them: JSON, CSV, Markdown and dot are written at
/// once; an aligned table (widths) and YAML are written at the end.
enum Sink {
    Rows(RowWriter),
    Json { out: BufWriter<Stdout>, first: bool },
    Dot(BufWriter<Stdout>),
    Held(Format, Vec<DiffEntry>),
}

impl Sink {
    fn new(format: Format) -> anyhow::Result<Sink> {
        let stdout = || BufWriter::new(std::io::stdout());
        Ok(match format {
            Format::Md | Format::Csv => Sink::Rows(RowWriter::new(format, &HEADER)?),
            Format::Json => {
                let mut out = stdout();
                out.write_all(b"[")?;
                Sink::Json { out, first: true }
            }
            Format::Dot => {
                let mut out = stdout();
                writeln!(out, "{}", dot_open("diff"))?;
                Sink::Dot(out)
            }
            _ => Sink::Held(format, Vec::new()),
        })
    }

    fn entry(&mut self, e: DiffEntry) -> std::io::Result<()> {
        match self {
            Sink::Rows(rows) => rows.row(row(&e)),
            Sink::Json { out, first } => {
                let text = serde_json::to_string_pretty(&e)?;
                let sep = if *first { "\n" } else { ",\n" };
                *first = false;
                write!(out, "{sep}{text}")
            }
            Sink::Dot(out) => writeln!(out, "{}", dot_edge(&edge(&e))),
            Sink::Held(_, entries) => {
                entries.push(e);
                Ok(())
            }
        }
    }

    fn finish(self, summary: &DiffSummary) -> anyhow::Result<()> {
        match self {
            Sink::Rows(rows) => rows.finish()?,
            Sink::Json { mut out, first } => {
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
            Sink::Dot(mut out) => {
                writeln!(out, "}}")?;
                out.flush()?;
            }
            Sink::Held(Format::Yaml, entries) => print_structured(&entries, Format::Yaml)?,
            Sink::Held(_, entries) if entries.is_empty() => println!("no differences"),
            Sink::Held(format, entries) => {
                let mut rows = RowWriter::new(format, &HEADER)?;
                for e in &entries {
                    rows.row(row(e))?;
                }
                rows.finish()?;
                println!(
                    "differences: {} (added {}, removed {}, changed {})",
                    summary.total(),
                    summary.added,
                    summary.removed,
                    summary.changed
                );
            }
        }
        Ok(())
    }
}

fn row(e: &DiffEntry) -> Vec<String> {
    vec![
        e.diff_type.to_string(),
        e.src.to_string(),
        e.dst.to_string(),
        e.before.to_string(),
        e.after.to_string(),
        e.workloads_info().unwrap_or_default(),
    ]
}

fn edge(e: &DiffEntry) -> DotEdge {
    let color = match e.diff_type {
        DiffType::Added => "green",
        DiffType::Removed => "red",
        DiffType::Changed => "blue",
    };
    DotEdge {
        src: e.src.to_string(),
        dst: e.dst.to_string(),
        label: format!("{} => {}", e.before, e.after),
        attrs: Some(format!("color={color}, tooltip={:?}", e.diff_type.as_str())),
    }
}
