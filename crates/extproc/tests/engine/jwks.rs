//! `jwtValidation` with `jwks_url`: a real HTTP server in the test serves a JWKS whose keys
//! rotate, then goes down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{exchange, immediate_status, request_headers, Engine};

const ROUTES: &str = r#"    - route_name: jwt
      request_policy_chain:
        - policy: jwtValidation
          metadata: {issuer: "https://auth.test", audience: api}
"#;

/// The JWKS server: what it serves, how slowly, and how often it was asked.
#[derive(Clone, Default)]
struct Jwks {
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

impl Jwks {
    fn serve(&self, keys: &[&Value]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| (*k).clone()).collect();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Serves `/jwks.json` until `stop` is sent (then closes its connections).
    async fn start(&self) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let keys = state.keys.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        (addr, stop)
    }
}

/// A fresh Ed25519 key: (signing key, public JWK).
fn key(kid: &str) -> (EncodingKey, Value) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let signing = SigningKey::from_bytes(&Sha256::digest(format!("{nanos}-{kid}")).into());
    let der = signing.to_pkcs8_der().unwrap();
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"});
    (EncodingKey::from_ed_der(der.as_bytes()), jwk)
}

fn token(key: &EncodingKey, kid: &str) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = json!({"iss": "https://auth.test", "aud": "api", "sub": "u1", "exp": exp});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn settings(addr: SocketAddr, min_refresh_ms: u64, period_ms: u64) -> String {
    format!(
        "    jwtValidation:\n      jwks_url: http://{addr}/jwks.json\n      min_refresh_interval_ms: {min_refresh_ms}\n      jwks_refresh_interval_ms: {period_ms}\n      jwks_fetch_timeout_ms: 500\n"
    )
}

async fn status_for(engine: &Engine, token: &str) -> Option<i32> {
    let mut client = engine.client().await;
    let bearer = format!("Bearer {token}");
    let answer = exchange(
        &mut client,
        vec![request_headers("jwt", &[("authorization", &bearer)], true)],
    )
    .await;
    immediate_status(&answer[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_for_an_unknown_kid_and_kept_when_the_server_is_down() {
    let server = Jwks::default();
    let (k1, jwk1) = key("k1");
    let (k2, jwk2) = key("k2");
    let (k3, _) = key("k3");
    server.serve(&[&jwk1]);
    let (addr, stop) = server.start().await;
    let engine = Engine::start_with(false, ROUTES, &settings(addr, 300, 600_000)).await;
    assert_eq!(
        server.hits(),
        1,
        "fetched once when the configuration loads"
    );
    assert_eq!(status_for(&engine, &token(&k1, "k1")).await, None);

    // Rotation: the new kid is unknown, so the agent refetches before running the chain.
    server.serve(&[&jwk1, &jwk2]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status_for(&engine, &token(&k2, "k2")).await, None);
    assert_eq!(server.hits(), 2);

    // Another unknown kid right after: rate-limited, no fetch, 401.
    assert_eq!(status_for(&engine, &token(&k3, "k3")).await, Some(401));
    assert_eq!(
        server.hits(),
        2,
        "at most one refresh per min_refresh_interval_ms"
    );

    // Server down: the refetch fails, the token is refused, the known keys keep working.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status_for(&engine, &token(&k3, "k3")).await, Some(401));
    assert_eq!(status_for(&engine, &token(&k1, "k1")).await, None);
    assert_eq!(status_for(&engine, &token(&k2, "k2")).await, None);
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_refreshed_periodically() {
    let server = Jwks::default();
    let (_, jwk1) = key("k1");
    let (k2, jwk2) = key("k2");
    server.serve(&[&jwk1]);
    let (addr, _stop) = server.start().await;
    // An unknown kid may not trigger a fetch for a minute: only the period can bring k2.
    let engine = Engine::start_with(false, ROUTES, &settings(addr, 60_000, 1000)).await;
    assert_eq!(status_for(&engine, &token(&k2, "k2")).await, Some(401));
    server.serve(&[&jwk2]);
    for _ in 0..100 {
        if server.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.hits() >= 2, "periodic refresh");
    assert_eq!(status_for(&engine, &token(&k2, "k2")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_jwks_server_does_not_stall_requests() {
    let server = Jwks::default();
    let (k1, jwk1) = key("k1");
    let (k2, _) = key("k2");
    server.serve(&[&jwk1]);
    let (addr, _stop) = server.start().await;
    let engine = Engine::start_with(false, ROUTES, &settings(addr, 300, 600_000)).await;
    server.delay_ms.store(3000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    // The kernel gives the agent 300 ms: the refetch gets half of it, then the token is refused
    // (not a kernel timeout, which would be 503 or fail open).
    assert_eq!(status_for(&engine, &token(&k2, "k2")).await, Some(401));
    assert_eq!(server.hits(), 2, "the refetch was attempted");
    assert_eq!(status_for(&engine, &token(&k1, "k1")).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_ms_bounds_the_wait_for_policy_io() {
    use extproc::agent::metrics::AgentMetrics;
    use extproc::agent::{Agent, AgentConfig};
    use extproc::proto;

    let server = Jwks::default();
    let (_, jwk1) = key("k1");
    let (k2, _) = key("k2");
    server.serve(&[&jwk1]);
    let (addr, _stop) = server.start().await;
    server.delay_ms.store(3000, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.yaml"), "[]\n").unwrap();
    let settings = settings(addr, 1, 600_000)
        .replace("jwks_fetch_timeout_ms: 500", "jwks_fetch_timeout_ms: 3000");
    let yaml = super::agent_yaml(dir.path(), &settings).replace(
        "  observability:",
        "  server: {request_timeout_ms: 100}\n  observability:",
    );
    let config = AgentConfig::from_yaml(&yaml).unwrap();
    let metrics = AgentMetrics::new(&mut prometheus_client::registry::Registry::default());
    let agent = Agent::new(&config, "v1".into(), metrics).unwrap();
    let request = proto::PolicyRequest {
        request_id: "r1".into(),
        policies: vec![proto::Policy {
            name: "jwtValidation".into(),
            ..proto::Policy::default()
        }],
        context: Some(proto::RequestContext {
            headers: [(
                "authorization".into(),
                format!("Bearer {}", token(&k2, "k2")),
            )]
            .into(),
            ..proto::RequestContext::default()
        }),
        // The kernel would wait 4 s; the agent's own limit is 100 ms.
        deadline_ms: 4000,
        ..proto::PolicyRequest::default()
    };
    // Past min_refresh_interval_ms (1 ms), so the unknown kid triggers a refetch.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    let answer = agent.execute(request).await;
    let took = started.elapsed();
    assert_eq!(server.hits(), 1, "the refetch was attempted");
    // The refetch gets half of 100 ms, not half of 4 s; then the unknown key is refused.
    assert!(took < Duration::from_millis(1000), "{took:?}");
    assert_eq!(
        answer.status.map(|s| s.code),
        Some(proto::StatusCode::PolicyDenied as i32)
    );
}
