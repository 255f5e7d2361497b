//! OTLP export from the real binaries: a collector in the test receives both processes' spans
//! over gRPC, the kernel's turned on by `OTEL_EXPORTER_OTLP_ENDPOINT`, the agent's by its
//! `otlp_endpoint`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;

use super::{exchange, immediate_status, request_headers, KillOnDrop};

/// Keeps every export request it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// (service name, span name, trace id) of every span received.
    fn spans(&self) -> Vec<(String, String, Vec<u8>)> {
        let mut out = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        AnyValue::StringValue(name) => Some(name.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                    out.push((service.clone(), span.name.clone(), span.trace_id.clone()));
                }
            }
        }
        out
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(program: &str, config: &Path, log: &Path, env: &[(&str, String)]) -> KillOnDrop {
    let mut command = Command::new(program);
    command
        .arg(format!("--config={}", config.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    for (key, value) in env {
        command.env(key, value);
    }
    KillOnDrop(command.spawn().unwrap())
}

/// SIGTERM, then waits for a clean exit (which flushes the spans).
fn terminate(process: &mut KillOnDrop, log: &Path) {
    let pid = process.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = process.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "{status}: {log}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} did not stop on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_export_one_trace_over_otlp() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "agent_core:\n  name: otlp-agent\n  socket_path: {}\n  observability:\n    metrics_enabled: false\n    tracing: {{otlp_endpoint: \"{endpoint}\"}}\n",
            sock.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let kernel_config = dir.path().join("kernel.yaml");
    std::fs::write(
        &kernel_config,
        format!(
            "policy_kernel:\n  server: {{address: 127.0.0.1, port: {port}}}\n  agents:\n    - {{name: otlp-agent, socket_path: {}, health_check_interval_ms: 100}}\n  route_policies:\n    - route_name: r\n      request_policy_chain: [{{policy: allowAll}}]\n  observability: {{metrics_port: 0, metrics_address: 127.0.0.1}}\n",
            sock.display()
        ),
    )
    .unwrap();
    let (agent_log, kernel_log) = (dir.path().join("agent.log"), dir.path().join("kernel.log"));
    let mut agent = spawn(
        env!("CARGO_BIN_EXE_policy-agent"),
        &agent_config,
        &agent_log,
        &[],
    );
    let mut kernel = spawn(
        env!("CARGO_BIN_EXE_policy-kernel"),
        &kernel_config,
        &kernel_log,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())],
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the kernel never allowed the request"
        );
        if let Ok(mut client) =
            ExternalProcessorClient::connect(format!("http://127.0.0.1:{port}")).await
        {
            let answer = exchange(&mut client, vec![request_headers("r", &[], true)]).await;
            if immediate_status(&answer[0]).is_none() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(&mut kernel, &kernel_log);
    terminate(&mut agent, &agent_log);

    let spans = collector.spans();
    let agent_traces: Vec<_> = spans
        .iter()
        .filter(|(service, name, _)| service == "policy-agent" && name == "policy.execute")
        .map(|(_, _, trace)| trace.clone())
        .collect();
    assert!(!agent_traces.is_empty(), "agent spans exported: {spans:?}");
    assert!(
        spans
            .iter()
            .any(|(service, name, trace)| service == "policy-kernel"
                && name == "ext_proc.request"
                && agent_traces.contains(trace)),
        "a kernel request span in the agent's trace: {spans:?}"
    );
}
