//! Flow sources: one trait, one implementation per way of seeing flows.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::pipeline::Observation;

/// A source sends observations until its input ends or `stop` is set, on a thread of its
/// own. A send that fails means the judge is gone: the source returns.
pub trait Source: Send + 'static {
    /// What it is, for logs (`ebpf`, `hubble`, `file`).
    fn name(&self) -> &'static str;
    fn run(
        self: Box<Self>,
        out: SyncSender<Observation>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<()>;
}

/// Replays Hubble JSON lines from a file (`hubble observe -o json` output, plain or
/// gzip-compressed) or from standard input (`-`).
pub struct FileSource {
    pub path: PathBuf,
}

impl Source for FileSource {
    fn name(&self) -> &'static str {
        "file"
    }

    fn run(
        self: Box<Self>,
        out: SyncSender<Observation>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<()> {
        let mut input = open(&self.path)?;
        metrics.source_up.store(true, Ordering::Relaxed);
        let mut line = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.path.display()))?;
            if n == 0 {
                return Ok(());
            }
            if out.send(Observation::Line(line.clone())).is_err() {
                return Ok(());
            }
        }
    }
}

fn open(path: &std::path::Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let gzip = reader.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b]))?;
    Ok(if gzip {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            reader,
        )))
    } else {
        Box::new(reader)
    })
}

/// Hubble's `GetFlows` stream (the node's agent socket, or a relay over TCP/TLS), followed
/// with reconnects and resumed without duplicates (crate `hubble_client`).
pub struct HubbleSource {
    pub config: hubble_client::Config,
}

impl Source for HubbleSource {
    fn name(&self) -> &'static str {
        "hubble"
    }

    fn run(
        self: Box<Self>,
        out: SyncSender<Observation>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stats = Arc::new(hubble_client::Stats::default());
        metrics.source_up.store(true, Ordering::Relaxed);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4096);
        runtime.block_on(async {
            let stopped = {
                let stop = stop.clone();
                async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            };
            let follow = tokio::spawn(hubble_client::follow(
                self.config,
                stats.clone(),
                tx,
                stopped,
            ));
            // The stream's counters are copied on every line and every second, so that
            // reconnects show while no flow arrives.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    line = rx.recv() => {
                        let sent = line.is_some_and(|l| out.send(Observation::Line(l)).is_ok());
                        if !sent {
                            break;
                        }
                    }
                    _ = tick.tick() => {}
                }
                metrics
                    .source_reconnects
                    .store(stats.reconnects(), Ordering::Relaxed);
                metrics
                    .lost_events
                    .store(stats.lost_events(), Ordering::Relaxed);
            }
            follow.await??;
            Ok(())
        })
    }
}
