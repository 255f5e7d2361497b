//! Kernel and agent in-process, talking over a real Unix socket; the ext_proc stream is driven
//! by a tonic client the way Envoy drives it.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, processing_response, HttpBody, HttpHeaders, ProcessingRequest,
    ProcessingResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use extproc::agent::{self, AgentConfig, RunningAgent};
use extproc::kernel::{self, KernelConfig, RunningKernel};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

#[path = "common/prometheus.rs"]
mod prometheus;
use prometheus::sample;

#[path = "engine/conditions.rs"]
mod conditions;
#[path = "engine/identity.rs"]
mod identity;
#[path = "engine/ip_filter.rs"]
mod ip_filter;
#[path = "engine/jwks.rs"]
mod jwks;
#[path = "engine/lanes.rs"]
mod lanes;
#[path = "engine/otlp.rs"]
mod otlp;
#[path = "engine/spans.rs"]
mod spans;

struct Engine {
    dir: tempfile::TempDir,
    agent: Option<RunningAgent>,
    kernel: RunningKernel,
}

/// The test agent's configuration; `settings` adds lines under `policy_settings`.
fn agent_yaml(dir: &Path, settings: &str) -> String {
    format!(
        "agent_core:\n  name: test-agent\n  socket_path: {sock}\n  observability:\n    metrics_port: 0\n    metrics_address: 127.0.0.1\n  policy_settings:\n    apiKeyAuth:\n      keys_file: {keys}\n{settings}",
        sock = dir.join("agent.sock").display(),
        keys = dir.join("keys.yaml").display()
    )
}

fn kernel_yaml(dir: &Path, fail_open: bool, routes: &str) -> String {
    format!(
        r#"policy_kernel:
  server: {{address: 127.0.0.1, port: 0}}
  route_header: x-route-name
  agents:
    - name: test-agent
      socket_path: {sock}
      timeout_ms: 300
      retry: {{max_attempts: 2, backoff_ms: 10}}
      health_check_interval_ms: 100
      fail_open: {fail_open}
  route_policies:
{routes}
  observability: {{metrics_port: 0, metrics_address: 127.0.0.1}}
"#,
        sock = dir.join("agent.sock").display()
    )
}

const ROUTES: &str = r#"    - route_name: users
      request_policy_chain:
        - policy: apiKeyAuth
          metadata: {header_name: X-API-Key}
        - policy: rateLimit
          metadata: {requests_per_second: 1, burst: 2, key: "header:x-user-id"}
      response_policy_chain:
        - policy: addSecurityHeaders
          metadata: {headers: {X-Frame-Options: DENY}}
        - policy: responseBodyTransform
          metadata: {remove_fields: [internal_id]}
    - route_name: broken
      request_policy_chain:
        - policy: noSuchPolicy
"#;

async fn start_agent(dir: &Path) -> RunningAgent {
    start_agent_with(dir, "").await
}

async fn start_agent_with(dir: &Path, settings: &str) -> RunningAgent {
    let config = AgentConfig::from_yaml(&agent_yaml(dir, settings)).unwrap();
    agent::start(&config, "agent-v1".into()).await.unwrap()
}

impl Engine {
    async fn start(fail_open: bool, routes: &str) -> Self {
        Self::start_with(fail_open, routes, "").await
    }

    /// Starts an agent with extra `policy_settings` lines, then a kernel with `routes`.
    async fn start_with(fail_open: bool, routes: &str, settings: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("keys.yaml"),
            "- user_id: alice\n  key: alice-key\n",
        )
        .unwrap();
        let agent = start_agent_with(dir.path(), settings).await;
        let config = KernelConfig::from_yaml(&kernel_yaml(dir.path(), fail_open, routes)).unwrap();
        let kernel = kernel::start(config, "kernel-v1".into()).await.unwrap();
        // The broken route keeps readiness false, so wait for registration and for the route
        // table built from it (an invalid route shows that the table was judged).
        for _ in 0..500 {
            let registered = kernel
                .kernel()
                .snapshot()
                .agents
                .values()
                .all(|(_, conn)| conn.catalog().is_some());
            let judged = match kernel.kernel().readiness() {
                Ok(()) => true,
                Err(reason) => reason.contains(" invalid: "),
            };
            if registered && judged {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self {
            dir,
            agent: Some(agent),
            kernel,
        }
    }

    async fn client(&self) -> ExternalProcessorClient<Channel> {
        ExternalProcessorClient::connect(format!("http://{}", self.kernel.addr()))
            .await
            .unwrap()
    }
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    HeaderMap {
        headers: pairs
            .iter()
            .map(|(k, v)| HeaderValue {
                key: (*k).to_owned(),
                value: String::new(),
                raw_value: v.as_bytes().to_vec(),
            })
            .collect(),
    }
}

fn request_headers(route: &str, pairs: &[(&str, &str)], end_of_stream: bool) -> ProcessingRequest {
    let mut attrs = Struct::default();
    attrs.fields.insert(
        "xds.route_name".to_owned(),
        Value {
            kind: Some(Kind::StringValue(route.to_owned())),
        },
    );
    let mut all = vec![
        (":method", "GET"),
        (":path", "/api?q=1"),
        (":authority", "example"),
        (":scheme", "http"),
    ];
    all.extend_from_slice(pairs);
    ProcessingRequest {
        attributes: HashMap::from([("envoy.filters.http.ext_proc".to_owned(), attrs)]),
        request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
            headers: Some(header_map(&all)),
            end_of_stream,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

fn response_headers(status: &str, end_of_stream: bool) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseHeaders(HttpHeaders {
            headers: Some(header_map(&[
                (":status", status),
                ("content-type", "application/json"),
            ])),
            end_of_stream,
            ..HttpHeaders::default()
        })),
        ..ProcessingRequest::default()
    }
}

fn response_body(body: &str) -> ProcessingRequest {
    ProcessingRequest {
        request: Some(processing_request::Request::ResponseBody(HttpBody {
            body: body.as_bytes().to_vec(),
            end_of_stream: true,
            ..HttpBody::default()
        })),
        ..ProcessingRequest::default()
    }
}

/// One ext_proc stream: sends each message after the answer to the previous one, then
/// half-closes and waits for the kernel to end the stream, as Envoy does.
async fn exchange(
    client: &mut ExternalProcessorClient<Channel>,
    messages: Vec<ProcessingRequest>,
) -> Vec<ProcessingResponse> {
    let (tx, rx) = mpsc::channel(4);
    let mut inbound = client
        .process(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    for message in messages {
        tx.send(message).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let immediate = matches!(
            answer.response,
            Some(processing_response::Response::ImmediateResponse(_))
        );
        answers.push(answer);
        if immediate {
            break;
        }
    }
    drop(tx);
    let closed = tokio::time::timeout(Duration::from_secs(5), inbound.message()).await;
    assert!(
        matches!(closed, Ok(Ok(None))),
        "the kernel ends the stream after the half-close"
    );
    answers
}

/// One request-headers exchange on `route`: the immediate status, None when it goes on.
async fn status_of(
    client: &mut ExternalProcessorClient<Channel>,
    route: &str,
    headers: &[(&str, &str)],
) -> Option<i32> {
    immediate_status(&exchange(client, vec![request_headers(route, headers, true)]).await[0])
}

fn immediate_status(answer: &ProcessingResponse) -> Option<i32> {
    match &answer.response {
        Some(processing_response::Response::ImmediateResponse(r)) => {
            r.status.as_ref().map(|s| s.code)
        }
        _ => None,
    }
}

fn set_headers(answer: &ProcessingResponse) -> HashMap<String, String> {
    use processing_response::Response as R;
    let common = match &answer.response {
        Some(R::RequestHeaders(h) | R::ResponseHeaders(h)) => h.response.as_ref(),
        Some(R::RequestBody(b) | R::ResponseBody(b)) => b.response.as_ref(),
        _ => None,
    };
    common
        .and_then(|c| c.header_mutation.as_ref())
        .map(|m| {
            m.set_headers
                .iter()
                .filter_map(|o| o.header.as_ref())
                .map(|h| {
                    (
                        h.key.clone(),
                        String::from_utf8_lossy(&h.raw_value).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn new_body(answer: &ProcessingResponse) -> Option<Vec<u8>> {
    use envoy_types::pb::envoy::service::ext_proc::v3::body_mutation::Mutation;
    match &answer.response {
        Some(processing_response::Response::ResponseBody(b)) => {
            match b
                .response
                .as_ref()?
                .body_mutation
                .as_ref()?
                .mutation
                .as_ref()?
            {
                Mutation::Body(body) => Some(body.clone()),
                Mutation::ClearBody(_) => Some(Vec::new()),
                _ => None,
            }
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_rate_limit_and_response_policies() {
    let engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;

    let missing = exchange(&mut client, vec![request_headers("users", &[], true)]).await;
    assert_eq!(immediate_status(&missing[0]), Some(401));
    let wrong = exchange(
        &mut client,
        vec![request_headers("users", &[("x-api-key", "nope")], true)],
    )
    .await;
    assert_eq!(immediate_status(&wrong[0]), Some(403));

    let ok = exchange(
        &mut client,
        vec![
            request_headers("users", &[("x-api-key", "alice-key")], true),
            response_headers("200", false),
            response_body(r#"{"id":1,"internal_id":7}"#),
        ],
    )
    .await;
    assert_eq!(immediate_status(&ok[0]), None);
    assert_eq!(
        set_headers(&ok[0]).get("x-user-id").map(String::as_str),
        Some("alice")
    );
    let mode = ok[0]
        .mode_override
        .as_ref()
        .expect("mode override on request headers");
    assert_eq!(
        mode.response_body_mode, 2,
        "response body buffered for the body transform"
    );
    assert_eq!(mode.request_body_mode, 0, "request body not needed");
    assert!(
        set_headers(&ok[1]).is_empty(),
        "response chain waits for the body"
    );
    assert_eq!(
        set_headers(&ok[2])
            .get("x-frame-options")
            .map(String::as_str),
        Some("DENY")
    );
    assert_eq!(new_body(&ok[2]).as_deref(), Some(&br#"{"id":1}"#[..]));

    // burst 2: the second allowed request above used one token.
    assert_eq!(
        status_of(&mut client, "users", &[("x-api-key", "alice-key")]).await,
        None
    );
    let limited = exchange(
        &mut client,
        vec![request_headers(
            "users",
            &[("x-api-key", "alice-key")],
            true,
        )],
    )
    .await;
    assert_eq!(immediate_status(&limited[0]), Some(429));

    let metrics = reqwest_metrics(engine.kernel.admin_addr()).await;
    for name in [
        "policy_kernel_requests_total",
        "policy_kernel_request_duration_seconds",
        "policy_kernel_agent_health",
        "policy_kernel_config_info",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let agent_metrics = reqwest_metrics(engine.agent.as_ref().unwrap().admin_addr().unwrap()).await;
    for name in [
        "policy_agent_executions_total",
        "policy_agent_execution_duration_seconds",
        "policy_agent_context_size_bytes",
    ] {
        assert!(
            agent_metrics.contains(name),
            "{name} missing:\n{agent_metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_counts_once_across_its_phases() {
    let engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;
    // Request headers, response headers, response body: three messages, one request.
    let answers = exchange(
        &mut client,
        vec![
            request_headers("users", &[("x-api-key", "alice-key")], true),
            response_headers("200", false),
            response_body(r#"{"id":1,"internal_id":2}"#),
        ],
    )
    .await;
    assert_eq!(answers.len(), 3);
    assert_eq!(status_of(&mut client, "users", &[]).await, Some(401));
    assert_eq!(status_of(&mut client, "unknown-route", &[]).await, None);

    let metrics = reqwest_metrics(engine.kernel.admin_addr()).await;
    let requests = |route, agent, status| {
        sample(
            &metrics,
            "policy_kernel_requests_total",
            &[("route", route), ("agent", agent), ("status", status)],
        )
    };
    assert_eq!(
        requests("users", "test-agent", "ok"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        requests("users", "test-agent", "denied"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(requests("none", "", "no_policy"), Some(1.0), "{metrics}");
    let timed = sample(
        &metrics,
        "policy_kernel_request_duration_seconds_count",
        &[("route", "users"), ("agent", "test-agent")],
    );
    assert_eq!(timed, Some(2.0), "{metrics}");
}

/// A minimal HTTP/1.1 GET, enough for the admin endpoint.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn reqwest_metrics(addr: std::net::SocketAddr) -> String {
    http_get(addr, "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_default_invalid_and_header_fallback() {
    let routes = format!("{ROUTES}  default_policy:\n    request_policy_chain:\n      - policy: addSecurityHeaders\n        metadata: {{headers: {{x-default: yes}}}}\n");
    let engine = Engine::start(false, &routes).await;
    let mut client = engine.client().await;

    let unknown = exchange(&mut client, vec![request_headers("elsewhere", &[], true)]).await;
    assert_eq!(
        set_headers(&unknown[0])
            .get("x-default")
            .map(String::as_str),
        Some("yes")
    );
    let mode = unknown[0].mode_override.as_ref().unwrap();
    assert_eq!(
        mode.response_header_mode, 2,
        "no response chain: skip response headers"
    );

    let broken = exchange(&mut client, vec![request_headers("broken", &[], true)]).await;
    assert_eq!(immediate_status(&broken[0]), Some(500));

    // Without the attribute the configured header picks the route.
    let mut no_attr = request_headers("", &[("x-route-name", "users")], true);
    no_attr.attributes.clear();
    let fallback = exchange(&mut client, vec![no_attr]).await;
    assert_eq!(immediate_status(&fallback[0]), Some(401));

    let (status, body) = http_get(engine.kernel.admin_addr(), "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("broken"), "{body}");
    assert_eq!(
        http_get(engine.kernel.admin_addr(), "/health/live").await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_socket_is_private() {
    let engine = Engine::start(false, ROUTES).await;
    let mode = std::fs::metadata(engine.dir.path().join("agent.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_down_fails_closed_then_recovers_after_restart() {
    let mut engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;
    let allowed = || request_headers("users", &[("x-api-key", "alice-key")], true);
    // The kernel's stream to the agent is open when the agent shuts down: the agent ends it
    // instead of waiting for the kernel to.
    let up = exchange(&mut client, vec![allowed()]).await;
    assert_eq!(immediate_status(&up[0]), None);
    let agent = engine.agent.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent.shutdown())
        .await
        .expect("the agent shuts down with the kernel's stream open");
    let down = exchange(&mut client, vec![allowed()]).await;
    assert_eq!(immediate_status(&down[0]), Some(503));

    engine.agent = Some(start_agent(engine.dir.path()).await);
    let mut recovered = None;
    for _ in 0..100 {
        let answer = exchange(
            &mut client,
            vec![request_headers(
                "users",
                &[("x-api-key", "alice-key")],
                true,
            )],
        )
        .await;
        if immediate_status(&answer[0]).is_none() {
            recovered = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = recovered.expect("traffic recovers after the agent restarts");
    assert_eq!(
        set_headers(&recovered[0])
            .get("x-user-id")
            .map(String::as_str),
        Some("alice")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_down_fails_open_when_configured() {
    let mut engine = Engine::start(true, ROUTES).await;
    let mut client = engine.client().await;
    engine.agent.take().unwrap().shutdown().await;
    let down = exchange(&mut client, vec![request_headers("users", &[], true)]).await;
    assert_eq!(
        immediate_status(&down[0]),
        None,
        "fail_open lets the request through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_behaviour_and_keeps_old_config_on_error() {
    let engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;
    let before = exchange(&mut client, vec![request_headers("users", &[], true)]).await;
    assert_eq!(immediate_status(&before[0]), Some(401));

    // A reload that would make `users` invalid against the agent's policies is refused: the
    // previous configuration keeps serving and the reload counts as a failure.
    let broken = ROUTES.replace(
        "metadata: {header_name: X-API-Key}",
        "metadata: {header_name: X-API-Key, no_such_field: 1}",
    );
    assert_ne!(broken, ROUTES);
    let config = KernelConfig::from_yaml(&kernel_yaml(engine.dir.path(), false, &broken)).unwrap();
    let refused = engine.kernel.reload(config, "kernel-broken".into());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("route `users`")),
        "{refused:?}"
    );
    assert_eq!(
        status_of(&mut client, "users", &[]).await,
        Some(401),
        "the old chain serves"
    );
    assert_eq!(
        status_of(&mut client, "users", &[("x-api-key", "alice-key")]).await,
        None
    );

    let relaxed = ROUTES.replace(
        "metadata: {header_name: X-API-Key}",
        "metadata: {header_name: X-API-Key, required: false}",
    );
    let config = KernelConfig::from_yaml(&kernel_yaml(engine.dir.path(), false, &relaxed)).unwrap();
    engine.kernel.reload(config, "kernel-v2".into()).unwrap();
    let after = exchange(&mut client, vec![request_headers("users", &[], true)]).await;
    assert_eq!(immediate_status(&after[0]), None);

    // An invalid file never reaches reload: parsing fails first.
    assert!(KernelConfig::from_yaml(&kernel_yaml(
        engine.dir.path(),
        false,
        "    - route_name: x\n      bogus: 1\n"
    ))
    .is_err());
    let metrics = reqwest_metrics(engine.kernel.admin_addr()).await;
    let reloads = |status| {
        sample(
            &metrics,
            "policy_kernel_config_reload_total",
            &[("status", status)],
        )
    };
    assert_eq!(reloads("success"), Some(1.0), "{metrics}");
    assert_eq!(reloads("failure"), Some(1.0), "{metrics}");
    let info = |version| {
        sample(
            &metrics,
            "policy_kernel_config_info",
            &[("version", version)],
        )
    };
    assert_eq!(info("kernel-v2"), Some(1.0), "{metrics}");
    assert_eq!(info("kernel-broken"), None, "{metrics}");
}

/// Kills the child process when dropped (also when a test panics).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `redis-server` on a free port; None when it is not installed outside CI.
fn start_redis(dir: &Path) -> Option<(KillOnDrop, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(child) => Some((KillOnDrop(child), port)),
        Err(error) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "redis-server is required in CI ({error}): run scripts/setup.d/envoy.sh"
            );
            eprintln!("\n!!! SKIPPED two_kernels_share_a_redis_rate_limit: redis-server not installed !!!\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kernels_share_a_redis_rate_limit() {
    let shared = tempfile::tempdir().unwrap();
    let Some((_redis, port)) = start_redis(shared.path()) else {
        return;
    };
    let mut up = false;
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "redis-server did not start");
    let routes = "    - route_name: limited\n      request_policy_chain:\n        - policy: rateLimit\n          metadata: {requests_per_second: 0.01, burst: 3, store: redis}\n";
    let mut pairs = Vec::new();
    for name in ["one", "two"] {
        let dir = shared.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = format!(
            "agent_core:\n  name: test-agent\n  socket_path: {}\n  observability: {{metrics_enabled: false}}\n  policy_settings:\n    rateLimit: {{redis_url: \"redis://127.0.0.1:{port}/\", redis_timeout_ms: 2000}}\n",
            dir.join("agent.sock").display()
        );
        let agent = agent::start(&AgentConfig::from_yaml(&yaml).unwrap(), "v".into())
            .await
            .unwrap();
        let config = KernelConfig::from_yaml(&kernel_yaml(&dir, false, routes)).unwrap();
        let kernel = kernel::start(config, "v".into()).await.unwrap();
        kernel.wait_ready(Duration::from_secs(5)).await.unwrap();
        pairs.push((agent, kernel));
    }
    let mut allowed = 0;
    let mut limited = 0;
    for round in 0..6 {
        let (_, kernel) = &pairs[round % 2];
        let mut client = ExternalProcessorClient::connect(format!("http://{}", kernel.addr()))
            .await
            .unwrap();
        let answer = exchange(&mut client, vec![request_headers("limited", &[], true)]).await;
        match immediate_status(&answer[0]) {
            None => allowed += 1,
            Some(429) => limited += 1,
            other => panic!("unexpected {other:?}: {answer:?}"),
        }
    }
    assert_eq!(
        (allowed, limited),
        (3, 3),
        "one budget of 3 across both kernels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reload_picks_up_new_keys_and_version() {
    let engine = Engine::start(false, ROUTES).await;
    let mut client = engine.client().await;
    let before = exchange(
        &mut client,
        vec![request_headers("users", &[("x-api-key", "bob-key")], true)],
    )
    .await;
    assert_eq!(immediate_status(&before[0]), Some(403));

    std::fs::write(
        engine.dir.path().join("keys.yaml"),
        "- user_id: alice\n  key: alice-key\n- user_id: bob\n  key: bob-key\n",
    )
    .unwrap();
    let agent = engine.agent.as_ref().unwrap();
    let config = AgentConfig::from_yaml(&agent_yaml(engine.dir.path(), "")).unwrap();
    agent.reload(&config, "agent-v2".into()).await.unwrap();
    assert_eq!(agent.config_version(), "agent-v2");
    let after = exchange(
        &mut client,
        vec![request_headers("users", &[("x-api-key", "bob-key")], true)],
    )
    .await;
    assert_eq!(immediate_status(&after[0]), None);
    assert_eq!(
        set_headers(&after[0]).get("x-user-id").map(String::as_str),
        Some("bob")
    );

    // The kernel notices the agent's new configuration version and rediscovers it.
    let kernel = engine.kernel.kernel();
    for _ in 0..100 {
        let state = kernel.snapshot();
        let (_, conn) = state.agents.values().next().unwrap();
        if conn.agent_config_version() == "agent-v2" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("kernel did not rediscover the reloaded agent");
}
