//! Per-policy health (the agent no longer reports only "serving"): the binaries report a
//! `jwtValidation` whose JWKS URL fails as unhealthy, in the agent's and the kernel's metrics
//! and the kernel's log, and healthy again once the URL serves keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::logs::json_lines;
use super::*;

/// A JWKS endpoint that answers 503 until `serving` is set, then `jwks`.
fn start_jwks(runtime: &tokio::runtime::Runtime, jwks: Value, serving: Arc<AtomicBool>) -> u16 {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || {
        let (jwks, serving) = (jwks.clone(), Arc::clone(&serving));
        async move {
            if serving.load(Ordering::SeqCst) {
                Ok(axum::Json(jwks))
            } else {
                Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    });
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

#[test]
fn policy_health_follows_the_jwks_source() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let serving = Arc::new(AtomicBool::new(false));
    let (_, jwk) = ed25519_key("e2e");
    let jwks_port = start_jwks(&runtime, json!({"keys": [jwk]}), Arc::clone(&serving));
    let agent_metrics = free_port();
    write_agent_files(dir, &json!({"keys": []}), agent_metrics, "");
    let agent_yaml = substitute(
        &std::fs::read_to_string(dir.join("agent.yaml")).unwrap(),
        &[(
            &format!("jwtValidation: {{jwks_file: {}}}", dir.join("jwks.json").display()),
            &format!("jwtValidation: {{jwks_url: \"http://127.0.0.1:{jwks_port}/jwks\", jwks_refresh_interval_ms: 1000, jwks_fetch_timeout_ms: 500}}"),
        )],
    );
    std::fs::write(dir.join("agent.yaml"), agent_yaml).unwrap();
    let ports = write_kernel_config(dir);
    let config = |name: &str| format!("--config={}", dir.join(name).display());
    let _agent = spawn(
        agent_bin(),
        &[&config("agent.yaml")],
        &dir.join("agent.log"),
    );
    let _kernel = spawn(
        kernel_bin(),
        &[&config("kernel.yaml")],
        &dir.join("kernel.log"),
    );
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let kernel_log = || std::fs::read_to_string(dir.join("kernel.log")).unwrap_or_default();
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                kernel_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let scrape = |port: u16| -> String {
        if TcpStream::connect(local(port)).is_err() {
            return String::new();
        }
        http(local(port), "GET", "/metrics", &[]).body
    };
    let agent_says = |policy: &str| {
        prometheus::sample(
            &scrape(agent_metrics),
            "policy_agent_policy_health",
            &[("policy", policy)],
        )
    };
    let kernel_says = |policy: &str| {
        prometheus::sample(
            &scrape(ports.metrics),
            "policy_kernel_policy_health",
            &[("agent", "default-agent"), ("policy", policy)],
        )
    };
    let kernel_lines = |message: &str| -> Vec<Value> {
        json_lines(&kernel_log())
            .into_iter()
            .filter(|l| l["message"] == message)
            .collect()
    };

    // The JWKS URL fails: jwtValidation is unhealthy, the others are healthy, the agent
    // still serves (the kernel is ready: other routes work).
    wait("kernel ready", &|| {
        ready(local(ports.metrics), "/health/ready")
    });
    wait("the kernel's view of jwtValidation", &|| {
        kernel_says("jwtValidation") == Some(0.0)
    });
    assert_eq!(agent_says("jwtValidation"), Some(0.0));
    for healthy in ["apiKeyAuth", "rateLimit", "ipFilter", "allowAll"] {
        assert_eq!(agent_says(healthy), Some(1.0), "{healthy}");
        assert_eq!(kernel_says(healthy), Some(1.0), "{healthy}");
    }
    let unhealthy = kernel_lines("policy unhealthy");
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert_eq!(unhealthy[0]["level"], "warn");
    assert_eq!(unhealthy[0]["policy.name"], "jwtValidation");
    assert!(
        unhealthy[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("last JWKS fetch failed:"),
        "{}",
        unhealthy[0]
    );

    // The URL serves keys: the next periodic fetch (1 s) makes it healthy again.
    serving.store(true, Ordering::SeqCst);
    wait("jwtValidation healthy again", &|| {
        kernel_says("jwtValidation") == Some(1.0)
    });
    assert_eq!(agent_says("jwtValidation"), Some(1.0));
    let again = kernel_lines("policy healthy again");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["policy.name"], "jwtValidation");
    assert_eq!(
        kernel_lines("policy unhealthy").len(),
        1,
        "logged once, not per probe"
    );
}
