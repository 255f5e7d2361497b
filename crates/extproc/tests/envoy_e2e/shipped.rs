//! The deployment files exactly as shipped in `deploy/policy-engine/` (kernel-config.yaml,
//! agent-config.yaml, envoy.yaml, api-keys.yaml, jwks.json), run with real Envoy.
//!
//! The only substitutions (each asserted to happen, see `substitute`): the agent socket moves
//! into a temporary directory, `/etc/policy-engine/` becomes the `deploy/policy-engine/`
//! directory itself (so the shipped api-keys.yaml and jwks.json are read unchanged), the ports
//! become free ones, and Envoy's upstream host names become 127.0.0.1.

use super::*;

/// The key whose SHA-256 the shipped api-keys.yaml holds (for user `example-user`).
const SHIPPED_KEY: &str = "example-key-change-me";
const SHIPPED_SOCKET: &str = "/var/run/policy-engine/agents/default.sock";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/policy-engine")
}

fn shipped(name: &str) -> String {
    let path = deploy_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes the shipped kernel and agent configurations into `dir`, pointed at `dir`'s socket
/// and the given ports.
fn write_shipped_configs(dir: &Path, ports: Ports) {
    let sock = dir.join("agents/default.sock");
    let sock = sock.to_str().unwrap();
    let etc = format!("\"{}/", deploy_dir().display());
    std::fs::write(
        dir.join("agent.yaml"),
        substitute(
            &shipped("agent-config.yaml"),
            &[
                (SHIPPED_SOCKET, sock),
                ("\"/etc/policy-engine/", &etc),
                ("metrics_port: 9091", "metrics_port: 0"),
            ],
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("kernel.yaml"),
        substitute(
            &shipped("kernel-config.yaml"),
            &[
                (SHIPPED_SOCKET, sock),
                ("port: 9001", &format!("port: {}", ports.kernel)),
                (
                    "metrics_port: 9090",
                    &format!("metrics_port: {}", ports.metrics),
                ),
            ],
        ),
    )
    .unwrap();
}

#[test]
fn shipped_files_require_credentials() {
    let Some(envoy) = envoy_or_skip("shipped_files_require_credentials") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ports = Ports::free();
    write_shipped_configs(dir, ports);
    let stack = Stack::start(&envoy, dir, ports, start_upstream(&runtime));
    let key = [("x-api-key", SHIPPED_KEY)];

    // users: API key required (401 with the challenge), a wrong key is 403, the shipped
    // key passes as its user and the response chain runs.
    stack.assert_needs_api_key("/api/v1/users/1");
    let ok = stack.get("/api/v1/users/1", &key);
    assert_eq!(ok.status, 200, "{}\n{}", ok.body, stack.logs());
    let seen = upstream_saw(&ok);
    assert_eq!(seen["headers"]["x-user-id"], "example-user", "{seen}");
    assert!(seen.get("internal_id").is_none(), "{seen}");
    assert_eq!(
        ok.headers.get("x-frame-options").map(String::as_str),
        Some("DENY")
    );

    // admin: a JWT with the admin role; the shipped jwks.json has no keys, so no token
    // passes, and an API key does not open it.
    assert_eq!(stack.get("/api/v1/admin", &[]).status, 401);
    let (stranger, _) = ed25519_key("e2e");
    let forged = format!("Bearer {}", token(&stranger, &["admin"]));
    assert_eq!(
        stack
            .get("/api/v1/admin/x", &[("authorization", &forged)])
            .status,
        401
    );
    assert_eq!(stack.get("/api/v1/admin", &key).status, 401);

    // Paths are normalized before routing: dot segments, doubled slashes and escaped slashes
    // cannot take the users route (an API key) to admin (a JWT).
    for sneaky in [
        "/api/v1/users/../admin",
        "/api/v1/users/./../admin/x",
        "//api//v1/admin",
    ] {
        let reply = stack.get(sneaky, &key);
        assert_eq!(reply.status, 401, "{sneaky}: {}", reply.body);
    }
    assert_eq!(stack.get("/api/v1/users/..%2Fadmin", &key).status, 400);

    // catch-all: everything else needs a key too.
    assert_eq!(stack.get("/anything", &[]).status, 401);
    assert_eq!(stack.get("/", &[]).status, 401);
    assert_eq!(stack.get("/anything", &key).status, 200);

    // limited: a key, then a budget of 5 requests (1/s) per user, 429 with Retry-After.
    assert_eq!(stack.get("/limited", &[]).status, 401);
    let mut statuses = Vec::new();
    let mut limited = None;
    while limited.is_none() && statuses.len() < 12 {
        let reply = stack.get("/limited", &key);
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    assert!(
        statuses.len() > 5 && statuses[..5] == [200; 5],
        "{statuses:?}"
    );
    let limited = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert!(limited.headers.contains_key("retry-after"));
}
