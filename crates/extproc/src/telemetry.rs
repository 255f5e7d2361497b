//! Logs and the admin HTTP endpoint (`/metrics`, `/health/live`, `/health/ready`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log level is not a valid filter.
    #[error("bad log level `{0}`")]
    Filter(String),
    /// The admin endpoint could not bind.
    #[error("cannot bind the admin endpoint on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Parses a log level (`info`) or `EnvFilter` directive (`info,extproc=debug`).
pub fn parse_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(level).map_err(|_| TelemetryError::Filter(level.to_owned()))
}

/// Installs structured JSON logs on stderr. `RUST_LOG` overrides `level`.
/// A second call (tests) is a no-op.
pub fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| parse_filter(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Readiness callback: `Ok` when ready, otherwise the reason.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    ready: Readiness,
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &state.registry).is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        );
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    match (state.ready)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// Binds the admin endpoint and serves it in the background; returns the bound address.
pub async fn serve_admin(
    address: &str,
    port: u16,
    registry: Arc<Registry>,
    ready_check: Readiness,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<SocketAddr, TelemetryError> {
    let addr = format!("{address}:{port}");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| TelemetryError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(AdminState {
            registry,
            ready: ready_check,
        });
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "admin endpoint stopped");
        }
    });
    Ok(local)
}
