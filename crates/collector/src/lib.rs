//! The node agent (`policyhub-collector`): a [`source::Source`] sees flows (the node's eBPF
//! capture, Hubble's gRPC stream, or a file of Hubble JSON lines); the [`pipeline::Judge`]
//! resolves and judges each against the live inventory ([`pipeline::Snapshot`], from
//! Kubernetes watches or snapshot files) and aggregates per hour with `flow`; the
//! [`report::Reporter`] posts whole-hour summaries to the hub from an on-disk spool.
//!
//! Threads: the source and the judge run on blocking threads joined by a bounded channel
//! (a slow judge slows the source's reading, it does not grow memory); the reporter, the
//! inventory watch and the metrics endpoint are tasks on the tokio runtime.

pub mod capture;
pub mod cli;
pub mod feed;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod source;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::pipeline::{Judge, Observation, Snapshots};
use crate::report::{HubConfig, Reporter, Spool};
use crate::source::Source;

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name (`spec.nodeName` of its pods); part of the reporter identity.
    pub node: String,
    pub hub: HubConfig,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// How often changed hours are posted.
    pub flush_interval: Duration,
    /// Hours kept open after being flushed, for late flows.
    pub keep_hours: u64,
    /// How long a stopping collector goes on posting what is spooled.
    pub drain: Duration,
    /// Aggregation settings; `cluster` is written into every payload.
    pub validation: flow::Config,
    /// Observations queued between the source and the judge.
    pub queue: usize,
}

/// The reporter identity of one collector run: `node/run-<start time>-<pid>`
/// (`node-a/run-20261123T150036Z-4242`). Every run
/// reports under its own identity, so a restart in the middle of an hour adds to what the
/// previous run reported for that hour instead of replacing it.
pub fn run_identity(node: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let start: String = flow::synth::rfc3339(secs, 0)[..19]
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{node}/run-{start}Z-{}", std::process::id())
}

/// Runs until the source ends (a replayed file) or `stop` resolves; then flushes what the
/// judge holds and drains the spool for at most `settings.drain`.
pub async fn run(
    settings: Settings,
    source: Box<dyn Source>,
    mut snapshots: Snapshots,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let spool = Spool::open(
        &settings.spool_dir,
        settings.spool_max_bytes,
        metrics.clone(),
    )
    .map_err(|e| anyhow::anyhow!("opening the spool {}: {e}", settings.spool_dir.display()))?;
    let spool = Arc::new(Mutex::new(spool));
    let reporter = Arc::new(Reporter::new(
        spool.clone(),
        settings.hub.clone(),
        metrics.clone(),
    )?);
    let (stop_reporter, reporter_stopped) = tokio::sync::oneshot::channel::<()>();
    let reporter_task = {
        let reporter = reporter.clone();
        let drain = settings.drain;
        tokio::spawn(async move {
            reporter
                .run(
                    async {
                        let _ = reporter_stopped.await;
                    },
                    drain,
                )
                .await
        })
    };

    tokio::pin!(stop);
    let first = tokio::select! {
        _ = &mut stop => None,
        s = snapshots.wait_for(Option::is_some) => s.ok().and_then(|s| s.clone()),
    };
    let Some(first) = first else {
        let _ = stop_reporter.send(());
        reporter_task.await?;
        return Ok(());
    };
    tracing::info!(
        generation = first.generation,
        pods = first.engine.inventory().pods.len(),
        policies = first.engine.policies().len(),
        "inventory loaded"
    );

    let identity = run_identity(&settings.node);
    let judge = Judge::new(
        &first,
        settings.validation.clone(),
        identity.clone(),
        settings.keep_hours,
        metrics.clone(),
    );
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.queue);
    let stopping = Arc::new(AtomicBool::new(false));
    let name = source.name();
    let source_task = {
        let (stopping, metrics) = (stopping.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || source.run(tx, stopping, metrics))
    };
    let judge_task = {
        let (spool, wake) = (spool.clone(), reporter.wake.clone());
        let interval = settings.flush_interval;
        tokio::task::spawn_blocking(move || judge_loop(judge, rx, snapshots, spool, wake, interval))
    };
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!(source = name, reporter = %identity, hub = %settings.hub.url, "collecting");

    tokio::pin!(source_task);
    let source_result = tokio::select! {
        _ = &mut stop => {
            tracing::info!("stopping: flushing and draining the spool");
            stopping.store(true, Ordering::Relaxed);
            source_task.await
        }
        r = &mut source_task => {
            tracing::info!(source = name, "the source ended");
            r
        }
    };
    metrics.ready.store(false, Ordering::Relaxed);
    let judged = judge_task.await?;
    let _ = stop_reporter.send(());
    reporter_task.await?;
    source_result??;
    judged
}

/// Judges until the source hangs up, flushing every `interval` and once at the end.
fn judge_loop(
    mut judge: Judge,
    rx: Receiver<Observation>,
    mut snapshots: Snapshots,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut next_flush = Instant::now() + interval;
    let flush = |judge: &mut Judge| -> anyhow::Result<()> {
        if let Some(payload) = judge.flush(SystemTime::now()) {
            spool
                .lock()
                .map_err(|_| anyhow::anyhow!("the spool lock is poisoned"))?
                .push(&payload)
                .map_err(|e| anyhow::anyhow!("writing to the spool: {e}"))?;
            wake.notify_one();
        }
        Ok(())
    };
    let mut since_check = 0u32;
    loop {
        let timeout = next_flush.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(observation) => {
                judge.observe(observation);
                since_check += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return flush(&mut judge),
        }
        if since_check >= 1024 || Instant::now() >= next_flush {
            since_check = 0;
            if snapshots.has_changed().unwrap_or(false) {
                let snapshot = snapshots.borrow_and_update().clone();
                if let Some(s) = snapshot {
                    tracing::info!(generation = s.generation, "inventory changed");
                    judge.set_snapshot(&s);
                }
            }
        }
        if Instant::now() >= next_flush {
            flush(&mut judge)?;
            next_flush = Instant::now() + interval;
        }
    }
}
