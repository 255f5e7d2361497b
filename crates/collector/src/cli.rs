//! Command line of `policyhub-collector`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::pipeline::Snapshots;
use crate::report::{HubConfig, Token};
use crate::source::{FileSource, HubbleSource, Source};
use crate::Settings;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SourceKind {
    /// The node's own eBPF capture (root, kernel BTF).
    Ebpf,
    /// Hubble's GetFlows stream from --hubble-address.
    Hubble,
    /// Replay Hubble JSON lines from --file.
    File,
}

/// Policy Hub's node agent: judges every flow the node sees against the applied network
/// policies and reports hourly summaries to the hub.
#[derive(Parser, Debug)]
#[command(name = "policyhub-collector", version)]
struct Args {
    /// Where flows come from.
    #[arg(long, value_enum, default_value = "ebpf", env = "POLICYHUB_SOURCE")]
    source: SourceKind,
    /// Hubble JSON lines for `--source file` (`-`: standard input; gzip is detected).
    #[arg(long, env = "POLICYHUB_FILE")]
    file: Option<PathBuf>,
    /// `--source hubble`: `unix:///var/run/cilium/hubble.sock`, or a relay `host:port`,
    /// `https://host:port` (TLS).
    #[arg(
        long,
        env = "POLICYHUB_HUBBLE_ADDRESS",
        default_value = "unix:///var/run/cilium/hubble.sock"
    )]
    hubble_address: String,
    /// CA bundle for a TLS relay (default: the system roots).
    #[arg(long, env = "POLICYHUB_HUBBLE_TLS_CA")]
    hubble_tls_ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    #[arg(long, env = "POLICYHUB_HUBBLE_TLS_CERT", requires = "hubble_tls_key")]
    hubble_tls_cert: Option<PathBuf>,
    #[arg(long, env = "POLICYHUB_HUBBLE_TLS_KEY", requires = "hubble_tls_cert")]
    hubble_tls_key: Option<PathBuf>,
    /// Name the relay's certificate is checked against (default: the address's host).
    #[arg(long, env = "POLICYHUB_HUBBLE_TLS_SERVER_NAME")]
    hubble_tls_server_name: Option<String>,
    /// `--source ebpf`: a UDP flow without a reply for this long is unanswered.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    udp_idle: Duration,
    /// Inventory snapshots (`kubectl get -A -o yaml` output: namespaces, pods, policies),
    /// reloaded when they change. Without them the inventory is watched through the
    /// Kubernetes API (in-cluster service account, or the kubeconfig).
    #[arg(long = "snapshot", env = "POLICYHUB_SNAPSHOT", value_delimiter = ',')]
    snapshots: Vec<PathBuf>,
    /// How often snapshot files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    snapshot_poll: Duration,
    /// This node's name: pods scheduled here (`spec.nodeName`) are the local ones. Without
    /// it every pod counts as local (a one-node cluster, a replay).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Cluster name written into the reports.
    #[arg(long, env = "POLICYHUB_CLUSTER", default_value = "default")]
    cluster: String,
    /// The hub's base URL.
    #[arg(long, env = "POLICYHUB_HUB_URL")]
    hub_url: String,
    /// File holding the cluster token (from the hub's collector tokens), read again before
    /// each post so that a rotated token takes effect without a restart.
    #[arg(long, env = "POLICYHUB_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The cluster token itself (prefer --token-file).
    #[arg(long, env = "POLICYHUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Batches wait here while the hub is unreachable.
    #[arg(
        long,
        env = "POLICYHUB_SPOOL_DIR",
        default_value = "/var/lib/policyhub-collector/spool"
    )]
    spool_dir: PathBuf,
    /// Spool size limit; beyond it the oldest batches are dropped (and counted).
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    spool_max: u64,
    /// How often changed hours are posted.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    flush_interval: Duration,
    /// How long a stopping collector goes on posting its spool.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain: Duration,
    /// Metrics (`/metrics`) and health (`/healthz`, `/readyz`) address.
    #[arg(long, env = "POLICYHUB_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    metrics_listen: SocketAddr,
    /// Log as JSON lines (the default in a container) or as text.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Traffic from the local host to its pods, as the cluster's Cilium agent is set:
    /// `always` lets it through ingress policy (Cilium's default; `auto` is the same),
    /// `policy` applies ingress policy to it (`--allow-localhost=policy`).
    #[arg(
        long,
        env = "POLICYHUB_ALLOW_LOCALHOST",
        value_name = "MODE",
        default_value = "always",
        value_parser = PossibleValuesParser::new(netpol::AllowLocalhost::NAMES)
            .try_map(|s| s.parse::<netpol::AllowLocalhost>())
    )]
    allow_localhost: netpol::AllowLocalhost,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// A number and the unit after it (`30s` → 30, "s").
fn number_unit<'a>(s: &'a str, what: &str) -> Result<(u64, &'a str), String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n = num.parse().map_err(|_| format!("{s:?} is not {what}"))?;
    Ok((n, unit))
}

/// `30s`, `500ms`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = number_unit(s, "a duration (e.g. 30s, 500ms, 5m)")?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    })
}

/// `64MiB`, `1GiB`, `500KiB`, `1000000`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) = number_unit(s, "a size (e.g. 64MiB)")?;
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Starts keeping the inventory current (snapshot files or the Kubernetes API) and
/// publishing judge snapshots from it.
async fn watch_inventory(args: &Args) -> anyhow::Result<Snapshots> {
    let shared = inventory::SharedInventory::default();
    let (changed_tx, changed) = watch::channel(0);
    if args.snapshots.is_empty() {
        let client = kube::Client::try_default().await.context(
            "no --snapshot given and no Kubernetes API reachable (in-cluster service account or kubeconfig)",
        )?;
        tokio::spawn(inventory::watch_cluster(
            client,
            shared.clone(),
            changed_tx,
            inventory::WatchOptions::default(),
        ));
    } else {
        // Fail fast on a snapshot that does not load at all; later versions that do not
        // parse are logged and the previous inventory kept.
        let (first, skipped) = inventory::Inventory::load_files(&args.snapshots)?;
        for e in skipped {
            tracing::warn!(error = %e, "object skipped");
        }
        shared.write().replace_all(first);
        tokio::spawn(inventory::watch_files(
            args.snapshots.clone(),
            shared.clone(),
            changed_tx,
            args.snapshot_poll,
        ));
    }
    let (tx, snapshots) = watch::channel(None);
    let options = netpol::Options {
        allow_localhost: args.allow_localhost,
        ..netpol::Options::default()
    };
    tokio::spawn(crate::feed::publish(
        shared,
        changed,
        args.node_name.clone(),
        options,
        tx,
    ));
    Ok(snapshots)
}

/// The host's name, for the reporter identity when no node name is given.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// The Hubble client settings from the command line; TLS options switch TLS on.
fn hubble_config(args: &Args) -> anyhow::Result<hubble_client::Config> {
    let mut target = hubble_client::target_from_str(&args.hubble_address)?;
    let tls_wanted = args.hubble_tls_ca.is_some()
        || args.hubble_tls_cert.is_some()
        || args.hubble_tls_server_name.is_some();
    if let hubble_client::Target::Tcp { tls, .. } = &mut target {
        if tls_wanted {
            let t = tls.get_or_insert_with(Default::default);
            t.ca = args.hubble_tls_ca.clone().or(t.ca.take());
            t.cert = args.hubble_tls_cert.clone();
            t.key = args.hubble_tls_key.clone();
            t.server_name = args.hubble_tls_server_name.clone();
        }
    } else if tls_wanted {
        anyhow::bail!("--hubble-tls-* options need a TCP --hubble-address, not a Unix socket");
    }
    Ok(hubble_client::Config {
        target,
        ..Default::default()
    })
}

/// The token source; a token file must be readable at start-up and is read again before
/// each post.
fn token(args: &Args) -> anyhow::Result<Token> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Token::Fixed(t.trim().to_string()),
        (None, Some(path)) => Token::File(path.clone()),
        (None, None) => anyhow::bail!("no cluster token: give --token-file or POLICYHUB_TOKEN"),
    };
    token.current().map_err(anyhow::Error::msg)?;
    Ok(token)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: Args) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let source: Box<dyn Source> = match args.source {
        SourceKind::Ebpf => Box::new(crate::capture::EbpfSource {
            options: ebpf::Options {
                udp_idle: args.udp_idle,
                ..Default::default()
            },
        }),
        SourceKind::Hubble => Box::new(HubbleSource {
            config: hubble_config(&args)?,
        }),
        SourceKind::File => Box::new(FileSource {
            path: args
                .file
                .clone()
                .context("--source file needs --file (a path, or - for standard input)")?,
        }),
    };
    let snapshots = watch_inventory(&args).await?;

    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("listening on {}", args.metrics_listen))?;
    let router = crate::metrics::router(metrics.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let settings = Settings {
        node: args.node_name.clone().unwrap_or_else(hostname),
        hub: HubConfig {
            url: args.hub_url.clone(),
            token: token(&args)?,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        },
        spool_dir: args.spool_dir.clone(),
        spool_max_bytes: args.spool_max,
        flush_interval: args.flush_interval,
        keep_hours: 2,
        drain: args.drain,
        validation: flow::Config {
            cluster: args.cluster.clone(),
            ..Default::default()
        },
        queue: 65_536,
    };
    crate::run(settings, source, snapshots, metrics, shutdown_signal()).await
}

/// Parses the command line, runs, and maps errors to exit code 1 with the message.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("1TB").is_err());
        assert!(parse_bytes("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
    }
}
