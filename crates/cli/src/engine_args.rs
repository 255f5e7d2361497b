//! The evaluation options of every command that builds an engine, and loading manifests
//! into one.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use netpol::{AllowLocalhost, Bundle, Engine, Options};

/// Where implementations differ: the flags that pick the evaluator's [`Options`].
#[derive(Args, Clone, Copy, Default)]
pub struct EngineArgs {
    /// Do not let ipBlock / ANP networks match pod IPs (Cilium's default behaviour).
    #[arg(long)]
    no_ipblock_pods: bool,
    /// Traffic from the local host to its pods: `always` lets it through ingress policy
    /// (Cilium's default; `auto` is the same), `policy` applies ingress policy to it (Cilium
    /// agent option `--allow-localhost=policy`).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "always",
        value_parser = PossibleValuesParser::new(AllowLocalhost::NAMES)
            .try_map(|s| s.parse::<AllowLocalhost>())
    )]
    allow_localhost: AllowLocalhost,
}

impl EngineArgs {
    pub fn options(&self) -> Options {
        Options {
            ipblock_matches_pods: !self.no_ipblock_pods,
            allow_localhost: self.allow_localhost,
        }
    }
}

/// Reads manifests (warning about documents it skips) and compiles them.
pub fn load_engine(files: &[PathBuf], args: &EngineArgs) -> anyhow::Result<Engine> {
    load(files, args, false)
}

/// The same, with the ingress controller as a peer (`{ingress-controller}`) when an
/// Ingress or Route routes to pods: what connectivity reports and diffs compare.
pub fn load_cluster(files: &[PathBuf], args: &EngineArgs) -> anyhow::Result<Engine> {
    load(files, args, true)
}

/// Reads manifests, warning about documents it skips.
pub fn load_bundle(files: &[PathBuf]) -> anyhow::Result<Bundle> {
    load_into(Bundle::default(), files)
}

/// Reads manifests into `bundle` (e.g. one that keeps policy sources), warning about
/// documents it skips.
pub fn load_into(mut bundle: Bundle, files: &[PathBuf]) -> anyhow::Result<Bundle> {
    for f in files {
        bundle.load_path(f)?;
    }
    for s in &bundle.skipped {
        eprintln!(
            "warning: {}: document {}: skipped {} {:?}: {}",
            s.file, s.document, s.kind, s.name, s.reason
        );
    }
    Ok(bundle)
}

fn load(files: &[PathBuf], args: &EngineArgs, ingress: bool) -> anyhow::Result<Engine> {
    let mut bundle = load_bundle(files)?;
    if ingress {
        netpol::ingress::add_controller(&mut bundle.inventory);
    }
    Ok(Engine::new(
        bundle.inventory,
        bundle.policies,
        args.options(),
    ))
}
