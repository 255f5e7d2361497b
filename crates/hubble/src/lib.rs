//! A client of Hubble's `observer.Observer/GetFlows` stream: it follows a Cilium agent (Unix
//! socket) or Hubble Relay (TCP, plain, TLS or mutual TLS) forever, and hands each flow on as
//! the JSON line `hubble observe -o json` prints, the input `flow::hubble::parse_line` reads.
//!
//! ```no_run
//! # async fn run() -> Result<(), hubble_client::Error> {
//! use std::sync::Arc;
//! let config = hubble_client::Config::default(); // the agent's socket
//! let stats = Arc::new(hubble_client::Stats::default());
//! let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
//! tokio::spawn(async move {
//!     while let Some(line) = rx.recv().await {
//!         println!("{}", String::from_utf8_lossy(&line));
//!     }
//! });
//! hubble_client::follow(config, stats, tx, std::future::pending()).await
//! # }
//! ```
//!
//! - [`target`]: addresses and TLS settings, and the channel to them.
//! - [`follow()`]: the stream, reconnection with backoff, resumption without duplicates.
//! - [`flow_to_json`]: the JSON rendering.
//! - [`proto`]: the subset of Hubble's API used here (client and server).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

mod follow;
mod json;
pub mod target;

pub use follow::follow;
pub use json::flow_to_json;
pub use target::{target_from_str, Target, Tls};

/// Generated from `proto/`: Hubble's field numbers and names, only the fields Policy Hub
/// reads.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// Package `flow`: flows, endpoints, policies, filters.
    pub mod flow {
        tonic::include_proto!("flow");
    }
    /// Package `observer`: the `Observer` service (client and server) and `GetFlows`.
    pub mod observer {
        tonic::include_proto!("observer");
    }
}

/// What [`follow()`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// Start from flows observed at or after this time (the agent's ring buffer holds the last
    /// few thousand); `None` for new flows only.
    pub since: Option<SystemTime>,
    /// First delay before reconnecting; it doubles after each failure.
    pub backoff_initial: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// Server-side filters: a flow is sent when it matches any whitelist entry (or the list is
    /// empty) and no blacklist entry.
    pub whitelist: Vec<proto::flow::FlowFilter>,
    pub blacklist: Vec<proto::flow::FlowFilter>,
}

impl Default for Config {
    /// The agent's socket, new flows only, backoff from 1 s to 1 min.
    fn default() -> Self {
        Config {
            target: Target::default(),
            since: None,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            whitelist: Vec::new(),
            blacklist: Vec::new(),
        }
    }
}

/// Counters of a [`follow()`] run, readable while it runs (share it through an `Arc`).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) reconnects: AtomicU64,
    pub(crate) flows: AtomicU64,
    pub(crate) lost_events: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

impl Stats {
    /// Connection attempts after the first.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Relaxed)
    }

    /// Flows sent on.
    pub fn flows(&self) -> u64 {
        self.flows.load(Relaxed)
    }

    /// Events Hubble reported lost (`lost_events` responses, summed).
    pub fn lost_events(&self) -> u64 {
        self.lost_events.load(Relaxed)
    }

    /// Flows dropped as already sent when a stream resumed.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Relaxed)
    }
}

/// Why [`follow()`] cannot start. Connection and stream failures are not errors: they are
/// retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid Hubble address {address:?}: {reason}")]
    InvalidTarget {
        address: String,
        reason: &'static str,
    },
    #[error("cannot read the {what} {}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} {} holds no PEM block of that kind", path.display())]
    NotPem { what: &'static str, path: PathBuf },
    #[error("TLS settings for {address}: {reason}")]
    Tls { address: String, reason: String },
}
