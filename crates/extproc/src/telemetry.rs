//! Logs, OpenTelemetry tracing (W3C trace context, optional OTLP export) and the admin HTTP
//! endpoint (`/metrics`, `/health/live`, `/health/ready`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The environment variable that enables OTLP export when `otlp_endpoint` is not configured.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log level is not a valid filter.
    #[error("bad log level `{0}`")]
    Filter(String),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
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

/// `observability.tracing` of the kernel and the agent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Record OpenTelemetry spans and propagate W3C trace context. An OTLP endpoint (here or
    /// in `OTEL_EXPORTER_OTLP_ENDPOINT`) turns this on too.
    #[serde(default)]
    pub enabled: bool,
    /// Fraction of new traces sampled (0..=1); a propagated parent's decision is followed.
    #[serde(default = "full_sampling")]
    pub sampling_rate: f64,
    /// OTLP/gRPC collector (`http://collector:4317`). Export is off when neither this nor
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sampling_rate: full_sampling(),
            otlp_endpoint: None,
        }
    }
}

fn full_sampling() -> f64 {
    1.0
}

impl TracingConfig {
    /// The collector spans are exported to: `otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> Option<String> {
        self.otlp_endpoint
            .clone()
            .or_else(|| std::env::var(OTLP_ENDPOINT_ENV).ok())
            .filter(|e| !e.trim().is_empty())
    }

    /// Whether spans are recorded at all.
    pub fn active(&self) -> bool {
        self.enabled || self.endpoint().is_some()
    }

    /// Problems with the settings, each prefixed with `at` (the YAML path).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sampling_rate) {
            problems.push(format!("{at}.sampling_rate must be within 0..=1"));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                problems.push(format!(
                    "{at}.otlp_endpoint must be an http:// or https:// URL"
                ));
            }
        }
        problems
    }
}

/// What [`init`] installed; [`Telemetry::shutdown`] exports the spans still buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops span export (blocking work runs off the async workers).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "span export did not shut down cleanly");
            }
        }
    }
}

/// Writes each JSON log line to stderr with `"component":"<name>"` as its first field and the
/// level in lower case (spec 7.2: `kernel` or `agent`; `debug`, `info`, `warn`, `error`). The
/// formatter writes a whole line per event, through one writer made for that event.
struct ComponentWriter(&'static str);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ComponentWriter {
    type Writer = ComponentLine<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        ComponentLine {
            component: Some(self.0),
            out: std::io::stderr(),
        }
    }
}

/// One event's writer: the first write that opens a JSON object gets the field.
struct ComponentLine<W> {
    component: Option<&'static str>,
    out: W,
}

impl<W: std::io::Write> std::io::Write for ComponentLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match (self.component.take(), buf.split_first()) {
            (Some(component), Some((b'{', rest))) => {
                let mut line = Vec::with_capacity(buf.len() + component.len() + 16);
                line.extend_from_slice(b"{\"component\":");
                line.extend_from_slice(serde_json::Value::from(component).to_string().as_bytes());
                if rest.first() != Some(&b'}') {
                    line.push(b',');
                }
                line.extend_from_slice(rest);
                lowercase_level(&mut line);
                self.out.write_all(&line)?;
                Ok(buf.len())
            }
            _ => self.out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Lowers the value of the line's first `"level":"…"` (the formatter writes it before any
/// event field; a string value containing it would be escaped, `\"level\"`).
fn lowercase_level(line: &mut [u8]) {
    const KEY: &[u8] = b"\"level\":\"";
    let Some(at) = line.windows(KEY.len()).position(|w| w == KEY) else {
        return;
    };
    let start = at + KEY.len();
    for byte in line[start..]
        .iter_mut()
        .take_while(|b| b.is_ascii_uppercase())
    {
        byte.make_ascii_lowercase();
    }
}

/// Installs structured JSON logs on stderr (`RUST_LOG` overrides `level`; each line starts
/// with `component`: `service` without its `policy-` prefix; levels in lower case) and, when
/// `tracing` is active, OpenTelemetry spans for `service`, exported over OTLP/gRPC when an
/// endpoint is set. Call it inside the Tokio runtime (the exporter's channel needs it).
/// A second call (tests) installs nothing.
pub fn init(
    service: &'static str,
    level: &str,
    tracing: &TracingConfig,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| parse_filter(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(ComponentWriter(
            service.strip_prefix("policy-").unwrap_or(service),
        ))
        .with_filter(filter);
    let provider = if tracing.active() {
        Some(tracer_provider(service, tracing)?)
    } else {
        None
    };
    let spans = provider.as_ref().map(|p| span_layer(p, service));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if let Some(endpoint) = provider.as_ref().and(tracing.endpoint()) {
        tracing::info!(%endpoint, sampling_rate = tracing.sampling_rate, "exporting spans over OTLP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(
    service: &'static str,
    config: &TracingConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_rate,
        ))))
        .with_resource(Resource::builder().with_service_name(service).build());
    if let Some(endpoint) = config.endpoint() {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Turns this crate's spans (`ext_proc.request`, `ext_proc.phase`, `agent.call`,
/// `agent.execute`, `policy.execute`) into OpenTelemetry spans of `provider`, whatever the
/// log level; events stay in the logs.
pub fn span_layer<S>(provider: &SdkTracerProvider, service: &'static str) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        // Both run on every enter and exit (each poll of an instrumented future); parents
        // come from the span tree, not from the OpenTelemetry thread-local context.
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(
            filter_fn(|meta| meta.is_span() && meta.target().starts_with("extproc"))
                .with_max_level_hint(LevelFilter::DEBUG),
        )
}

/// Makes `span` a child of the W3C trace context in `carrier`, when there is a valid one.
pub fn continue_trace(span: &tracing::Span, carrier: &dyn Extractor) -> bool {
    if span.is_disabled() {
        return false;
    }
    let parent = TraceContextPropagator::new().extract(carrier);
    parent.span().span_context().is_valid() && span.set_parent(parent).is_ok()
}

/// Writes `span`'s W3C trace context (`traceparent`, `tracestate`) into `carrier`.
pub fn inject_trace(span: &tracing::Span, carrier: &mut dyn Injector) {
    if !span.is_disabled() {
        TraceContextPropagator::new().inject_context(&span.context(), carrier);
    }
}

/// Read-only gRPC metadata as a trace-context carrier.
pub struct MetadataRef<'a>(pub &'a tonic::metadata::MetadataMap);

impl Extractor for MetadataRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// `process_resident_memory_bytes` and `process_memory_limit_bytes`, read from `/proc` and
/// the cgroup file system at each scrape, so an alert can compare a process's memory with
/// what it may use (spec 9.4). Registered by the kernel and the agent.
#[derive(Debug)]
pub struct ProcessMemory;

impl ProcessMemory {
    /// Registers the collector.
    pub fn register(registry: &mut Registry) {
        registry.register_collector(Box::new(Self));
    }
}

impl prometheus_client::collector::Collector for ProcessMemory {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory of this process (VmRSS)",
                resident_memory_bytes(),
            ),
            (
                "process_memory_limit_bytes",
                "Memory this process may use: the smallest limit of its memory cgroup, or the machine's memory when no cgroup sets one",
                memory_limit_bytes(),
            ),
        ];
        for (name, help, value) in gauges {
            // Absent when /proc cannot be read (not Linux): no series, rather than a 0 that
            // an alert would divide by.
            if let Some(value) = value.and_then(|v| i64::try_from(v).ok()) {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

/// The value of a `Name:   1234 kB` line, in bytes.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// The smallest of the machine's memory (`MemTotal`) and the memory limits of this process's
/// cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`; "max" and v1's huge "unlimited" values
/// lose to `MemTotal`).
fn memory_limit_bytes() -> Option<u64> {
    let total = kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    Some(
        cgroup_limit_files(&cgroups)
            .iter()
            .filter_map(|file| std::fs::read_to_string(file).ok())
            .filter_map(|text| text.trim().parse::<u64>().ok())
            .fold(total, u64::min),
    )
}

/// The files that may hold this process's memory limit, from `/proc/self/cgroup`.
fn cgroup_limit_files(proc_cgroup: &str) -> Vec<String> {
    let mut files = vec![
        "/sys/fs/cgroup/memory.max".to_owned(),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
    ];
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if path.split('/').any(|segment| segment == "..") {
            continue;
        }
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_limit_files_follow_both_hierarchies() {
        let files =
            cgroup_limit_files("0::/system.slice/x.service\n5:cpu,memory:/docker/abc\n3:pids:/p\n");
        assert!(files.contains(&"/sys/fs/cgroup/system.slice/x.service/memory.max".to_owned()));
        assert!(
            files.contains(&"/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes".to_owned())
        );
        assert!(!files.iter().any(|f| f.contains("/p/")));
        assert!(cgroup_limit_files("0::/../../etc\n").len() == 2);
    }

    #[test]
    fn component_opens_each_line() {
        use std::io::Write;
        let write = |chunks: &[&[u8]]| {
            let mut line = ComponentLine {
                component: Some("kernel"),
                out: Vec::new(),
            };
            for chunk in chunks {
                line.write_all(chunk).unwrap();
            }
            String::from_utf8(line.out).unwrap()
        };
        let text = write(&[b"{\"level\":\"INFO\",", b"\"message\":\"{x}\"}\n"]);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["component"], "kernel");
        assert_eq!(parsed["level"], "info");
        let quoted = write(&[b"{\"message\":\"\\\"level\\\":\\\"X\",\"level\":\"WARN\"}\n"]);
        let escaped: serde_json::Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(escaped["level"], "warn", "{quoted}");
        assert_eq!(escaped["message"], "\"level\":\"X", "{quoted}");
        assert_eq!(parsed["message"], "{x}");
        assert_eq!(write(&[b"{}\n"]), "{\"component\":\"kernel\"}\n");
        assert_eq!(write(&[b"plain\n"]), "plain\n");
    }

    #[test]
    fn kib_fields_are_bytes() {
        assert_eq!(
            kib_field("Name: x\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2_097_152)
        );
        assert_eq!(kib_field("VmRSS: lots\n", "VmRSS:"), None);
        assert_eq!(kib_field("", "VmRSS:"), None);
    }
}
