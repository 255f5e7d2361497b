//! Prometheus metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`).

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

/// The collector's counters and gauges, shared by every part.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Flow observations received from the source.
    pub observed: AtomicU64,
    /// Observations skipped because another node judges them (or a duplicate end).
    pub skipped_remote: AtomicU64,
    /// Judged flows by model verdict.
    pub allowed: AtomicU64,
    pub blocked: AtomicU64,
    pub no_policy: AtomicU64,
    /// Flows the dataplane let through although the model blocks them.
    pub enforcement_gaps: AtomicU64,
    /// Events the capture lost (eBPF ring buffer full, Hubble lost events).
    pub lost_events: AtomicU64,
    /// Reconnections of the Hubble stream.
    pub source_reconnects: AtomicU64,
    /// Inventory generation the judge uses.
    pub inventory_generation: AtomicU64,
    pub reports_sent: AtomicU64,
    pub report_failures: AtomicU64,
    pub reports_rejected: AtomicU64,
    pub spool_batches: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_dropped: AtomicU64,
    /// Set once an inventory is loaded and the judge runs.
    pub ready: AtomicBool,
    /// Set by the source once it sees flows (the eBPF programs attached, the file open).
    pub source_up: AtomicBool,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP policyhub_collector_{name} {help}\n# TYPE policyhub_collector_{name} {kind}\npolicyhub_collector_{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        one(
            "flows_observed_total",
            "counter",
            "Flow observations received from the source.",
            get(&self.observed),
        );
        one(
            "flows_skipped_total",
            "counter",
            "Observations left to the node of the other end.",
            get(&self.skipped_remote),
        );
        one(
            "enforcement_gaps_total",
            "counter",
            "Flows the dataplane let through although the policies block them.",
            get(&self.enforcement_gaps),
        );
        one(
            "lost_events_total",
            "counter",
            "Events the capture lost (ring buffer full, Hubble lost events).",
            get(&self.lost_events),
        );
        one(
            "source_reconnects_total",
            "counter",
            "Reconnections of the flow source.",
            get(&self.source_reconnects),
        );
        one(
            "inventory_generation",
            "gauge",
            "Generation of the inventory the judge uses.",
            get(&self.inventory_generation),
        );
        one(
            "reports_sent_total",
            "counter",
            "Batches the hub accepted.",
            get(&self.reports_sent),
        );
        one(
            "report_failures_total",
            "counter",
            "Failed posts to the hub (retried).",
            get(&self.report_failures),
        );
        one(
            "reports_rejected_total",
            "counter",
            "Batches the hub refused as malformed (kept under rejected/).",
            get(&self.reports_rejected),
        );
        one(
            "spool_batches",
            "gauge",
            "Batches waiting in the spool.",
            get(&self.spool_batches),
        );
        one(
            "spool_bytes",
            "gauge",
            "Bytes waiting in the spool.",
            get(&self.spool_bytes),
        );
        one(
            "spool_dropped_total",
            "counter",
            "Oldest batches dropped because the spool was full.",
            get(&self.spool_dropped),
        );
        let _ = writeln!(
            out,
            "# HELP policyhub_collector_flows_judged_total Judged flows by the policies' verdict.\n# TYPE policyhub_collector_flows_judged_total counter"
        );
        for (verdict, a) in [
            ("ALLOWED", &self.allowed),
            ("BLOCKED", &self.blocked),
            ("NO_POLICY", &self.no_policy),
        ] {
            let _ = writeln!(
                out,
                "policyhub_collector_flows_judged_total{{verdict=\"{verdict}\"}} {}",
                get(a)
            );
        }
        out
    }
}

/// The router of the metrics and health endpoints.
pub fn router(metrics: Arc<Metrics>) -> Router {
    let m = metrics.clone();
    Router::new()
        .route("/metrics", get(move || async move { m.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                if metrics.ready.load(Ordering::Relaxed)
                    && metrics.source_up.load(Ordering::Relaxed)
                {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "waiting for the inventory and the source",
                    )
                }
            }),
        )
}
