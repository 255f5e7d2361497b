//! The judge: observations in, hourly payloads out. Runs on its own thread; the inventory
//! can change under it (a new [`Snapshot`]) without losing what an hour counted so far.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use flow::hubble::{Flow, Str};
use flow::Validator;
use flowtypes::ValidationPayload;
use netpol::{Endpoint, Engine};

use crate::metrics::Metrics;

/// What the judge works from: the compiled policies and inventory, and the pods on this node.
#[derive(Clone)]
pub struct Snapshot {
    pub engine: Arc<Engine>,
    /// Addresses of the pods on this node; `None`: every pod counts as local (one-node
    /// clusters, replays).
    pub local_ips: Option<HashSet<IpAddr>>,
    /// Bumped on every inventory change.
    pub generation: u64,
}

/// The judge's view of the inventory: the latest snapshot (`None` until one is built).
pub type Snapshots = tokio::sync::watch::Receiver<Option<Arc<Snapshot>>>;
/// Where snapshots are published.
pub type SnapshotSender = tokio::sync::watch::Sender<Option<Arc<Snapshot>>>;

/// Which end of a connection this node's capture saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The node opened it (connect, first datagram out).
    Initiator,
    /// The node accepted it.
    Acceptor,
}

/// One thing a source saw.
pub enum Observation {
    /// A Hubble flow as one JSON line (file replay, the gRPC stream): Hubble already reports
    /// only this node's endpoints, so every line is judged.
    Line(Vec<u8>),
    /// A connection of this node's capture, in the validator's shape. Each pod connection
    /// is judged once in the cluster: by the initiator's node when the initiator is a local
    /// pod, otherwise by the acceptor's node when the acceptor is a local pod. Connections
    /// of the host's own processes with the outside are not pod traffic and are skipped.
    Connection {
        flow: Box<Flow<'static>>,
        side: Side,
    },
}

/// Judges observations with the current snapshot and aggregates them per hour.
pub struct Judge {
    validator: Validator<Arc<Engine>>,
    local: Option<HashSet<IpAddr>>,
    metrics: Arc<Metrics>,
    /// Reporter identity within the cluster: `node/run`.
    source: String,
    /// Hours kept open after being flushed, for flows that arrive late.
    keep_hours: u64,
    seen: u64,
}

impl Judge {
    pub fn new(
        snapshot: &Snapshot,
        config: flow::Config,
        source: String,
        keep_hours: u64,
        metrics: Arc<Metrics>,
    ) -> Judge {
        metrics
            .inventory_generation
            .store(snapshot.generation, Ordering::Relaxed);
        Judge {
            validator: Validator::new(snapshot.engine.clone(), config),
            local: snapshot.local_ips.clone(),
            metrics,
            source,
            keep_hours,
            seen: 0,
        }
    }

    /// Judges from now on with a new inventory.
    pub fn set_snapshot(&mut self, snapshot: &Snapshot) {
        self.validator.set_engine(snapshot.engine.clone());
        self.local = snapshot.local_ips.clone();
        self.metrics
            .inventory_generation
            .store(snapshot.generation, Ordering::Relaxed);
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        match &self.local {
            Some(set) => set.contains(&ip),
            None => matches!(
                self.validator.engine().endpoint_for_ip(ip),
                Endpoint::Pod(_)
            ),
        }
    }

    /// Judges one observation (or leaves it to the other end's node).
    pub fn observe(&mut self, observation: Observation) {
        self.seen += 1;
        self.metrics.observed.fetch_add(1, Ordering::Relaxed);
        match observation {
            Observation::Line(line) => {
                // Corrupt lines are counted in the payload's input statistics.
                let _ = self.validator.push_line(self.seen, &line);
            }
            Observation::Connection { flow, side } => {
                let addr = |s: Option<&Str<'_>>| s.and_then(|s| s.parse::<IpAddr>().ok());
                let ip = flow.ip.as_ref();
                let local = |a: Option<IpAddr>| a.is_some_and(|a| self.is_local(a));
                let local_src = local(addr(ip.and_then(|i| i.source.as_ref())));
                let local_dst = local(addr(ip.and_then(|i| i.destination.as_ref())));
                let judged = match side {
                    Side::Initiator => local_src,
                    Side::Acceptor => local_dst && !local_src,
                };
                if !judged {
                    self.metrics.skipped_remote.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.validator.push_flow(self.seen, &flow);
            }
        }
        let totals = self.validator.totals();
        let m = &self.metrics;
        m.allowed.store(totals.allowed_count, Ordering::Relaxed);
        m.blocked.store(totals.blocked_count, Ordering::Relaxed);
        m.no_policy.store(totals.no_policy_count, Ordering::Relaxed);
        m.enforcement_gaps
            .store(totals.discrepancies.enforcement_gap, Ordering::Relaxed);
    }

    /// The payload of the hours that changed since the last flush, or `None` when nothing
    /// did.
    pub fn flush(&mut self, now: SystemTime) -> Option<ValidationPayload> {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64;
        let keep_from = flow::synth::rfc3339(secs - (self.keep_hours as i64) * 3600, 0);
        let mut payload = self.validator.flush(&keep_from[..13]);
        if payload.summaries.is_empty() && payload.events.is_empty() {
            return None;
        }
        payload.source = Some(self.source.clone());
        Some(payload)
    }
}
