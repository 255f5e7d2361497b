//! The hub: `policyhub serve`. A multi-tenant server over [`store::Store`] (SQLite by
//! default, PostgreSQL on request) with collector ingestion and the validation API.
//!
//! Auth: accounts with argon2 password hashes and session cookies (HttpOnly, SameSite=Strict,
//! CSRF token required on state-changing requests made with a cookie); API tokens
//! (`Authorization: Bearer ph_...`, hashed at rest, one organization each); cluster tokens
//! (`Bearer phc_...`, hashed) for collectors posting to `/api/operator/validation`.
//! Every query is scoped to the caller's organization: another tenant's cluster is a 404.

pub mod api;
pub mod auth;
pub mod error;
pub mod ui;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::Router;

pub use error::AppError;

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    pub store: store::Store,
    pub metrics: Arc<Metrics>,
    /// Seconds validation events are kept.
    pub event_ttl: i64,
    /// Largest accepted request body, in bytes (after decompression for ingestion).
    pub body_limit: usize,
}

/// Counters exported at `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub ingested_payloads: AtomicU64,
    pub ingested_summaries: AtomicU64,
    pub ingest_rejected: AtomicU64,
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let rows = [
            (
                "policyhub_hub_http_requests_total",
                "HTTP requests served.",
                &self.http_requests,
            ),
            (
                "policyhub_hub_ingested_payloads_total",
                "Validation payloads accepted from collectors.",
                &self.ingested_payloads,
            ),
            (
                "policyhub_hub_ingested_summaries_total",
                "Hourly summaries upserted.",
                &self.ingested_summaries,
            ),
            (
                "policyhub_hub_ingest_rejected_total",
                "Validation payloads rejected (bad token, bad body).",
                &self.ingest_rejected,
            ),
        ];
        let mut out = String::new();
        for (name, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

impl AppState {
    pub fn new(store: store::Store) -> AppState {
        AppState {
            store,
            metrics: Arc::default(),
            event_ttl: 7 * 24 * 3600,
            body_limit: 8 * 1024 * 1024,
        }
    }
}

/// The whole application, for `serve` and for tests (`app(state).oneshot(request)`).
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves the hub on `listener` until Ctrl-C or SIGTERM, running the event TTL job every
/// five minutes; in-flight requests finish before it returns.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let store = state.store.clone();
    let ttl_job = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        loop {
            tick.tick().await;
            match store.expire_events(now()).await {
                Ok(n) if n > 0 => tracing::info!(events.expired = n, "event TTL job"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event TTL job failed"),
            }
        }
    });
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown())
        .await;
    ttl_job.abort();
    result
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
