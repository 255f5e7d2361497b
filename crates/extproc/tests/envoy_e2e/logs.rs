//! The binaries' logs (spec 7.2), read from their stderr: every line is a JSON object with
//! `component`, the kernel writes one INFO line per request, and no credential is logged.

use std::collections::BTreeSet;

use super::*;

/// Every line of a process's log, parsed; fails on a line that is not a JSON object.
pub(super) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

/// The kernel's per-request lines.
pub(super) fn request_lines(kernel_log: &str) -> Vec<Value> {
    json_lines(kernel_log)
        .into_iter()
        .filter(|line| line["message"] == "request")
        .collect()
}

#[test]
fn logs_carry_component_and_one_line_per_request_without_secrets() {
    let Some(envoy) = envoy_or_skip("logs_carry_component_and_one_line_per_request") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_agent_files(dir, &json!({"keys": []}), 0, "");
    let ports = write_kernel_config(dir);
    let stack = Stack::start(&envoy, dir, ports, start_upstream(&runtime));
    let cookie = ("cookie", "session=cookie-secret-1234");
    let bearer = ("authorization", "Bearer token-secret-5678");

    let ok = stack.get(
        "/api/v1/users/1",
        &[("x-api-key", "alice-key"), cookie, bearer],
    );
    assert_eq!(ok.status, 200, "{}\n{}", ok.body, stack.logs());
    let ok_id = upstream_saw(&ok)["headers"]["x-request-id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = stack.get(
        "/api/v1/users/1",
        &[("x-api-key", "wrong-key-9012"), cookie],
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(stack.get("/api/v1/users/1", &[bearer]).status, 401);
    assert_eq!(stack.get("/anything", &[cookie]).status, 200);

    let kernel_log = || std::fs::read_to_string(dir.join("kernel.log")).unwrap();
    stack.wait("four request lines", || {
        request_lines(&kernel_log()).len() == 4
    });
    let kernel_text = kernel_log();
    let agent_text = std::fs::read_to_string(dir.join("agent.log")).unwrap();
    for (text, component) in [(&kernel_text, "kernel"), (&agent_text, "agent")] {
        let lines = json_lines(text);
        assert!(!lines.is_empty(), "no {component} log");
        for line in lines {
            assert_eq!(line["component"], component, "{line}");
            assert!(line["timestamp"].is_string(), "{line}");
            let level = line["level"].as_str().unwrap();
            assert!(
                ["debug", "info", "warn", "error"].contains(&level),
                "{line}"
            );
        }
        for secret in [
            "alice-key",
            "wrong-key-9012",
            "cookie-secret-1234",
            "token-secret-5678",
        ] {
            assert!(
                !text.contains(secret),
                "{component} logged {secret}:\n{text}"
            );
        }
    }

    let lines = request_lines(&kernel_text);
    let metrics = http(stack.metrics, "GET", "/metrics", &[]).body;
    for line in &lines {
        // The configuration version in use, as policy_kernel_config_info names it.
        let version = line["config.version"].as_str().unwrap();
        assert_eq!(
            prometheus::sample(
                &metrics,
                "policy_kernel_config_info",
                &[("version", version)]
            ),
            Some(1.0),
            "{line}\n{metrics}"
        );
        assert_eq!(line["level"], "info", "{line}");
        let latency = line["latency_ms"].as_f64().unwrap();
        assert!((0.0..10_000.0).contains(&latency), "{line}");
        assert!(!line["request_id"].as_str().unwrap().is_empty(), "{line}");
    }
    let ids: BTreeSet<&str> = lines
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "request ids repeat: {lines:?}");
    // The allowed request's line carries the id the upstream saw, both chains, and the
    // upstream's status (seen in the response phase).
    let allowed = lines
        .iter()
        .find(|l| l["request_id"] == ok_id.as_str())
        .unwrap_or_else(|| panic!("no line for {ok_id}: {lines:?}"));
    assert_eq!(allowed["route"], "users");
    assert_eq!(allowed["chain"], "apiKeyAuth");
    assert_eq!(
        allowed["response_chain"],
        "addSecurityHeaders,responseBodyTransform"
    );
    assert_eq!(allowed["decision"], "ok");
    assert_eq!(allowed["status"], 200);
    // The others, as (route, decision, status): the denials carry the policy's status; the
    // default route has no response chain, so the kernel never sees the upstream's status.
    let mut outcomes: Vec<(String, String, Option<u64>)> = lines
        .iter()
        .filter(|l| l["request_id"] != ok_id.as_str())
        .map(|l| {
            (
                l["route"].as_str().unwrap().to_owned(),
                l["decision"].as_str().unwrap().to_owned(),
                l["status"].as_u64(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("default".into(), "ok".into(), None),
            ("users".into(), "denied".into(), Some(401)),
            ("users".into(), "denied".into(), Some(403)),
        ]
    );
}

/// Shadow (dry-run) mode through Envoy: a chain that would deny lets every request through,
/// and the agent's log (`shadow: true`) and `policy_agent_shadow_executions_total` show the
/// denials it would have made; a real policy beside shadow ones still decides.
#[test]
fn shadow_policies_record_would_be_denials_and_never_deny() {
    let Some(envoy) = envoy_or_skip("shadow_policies_record_would_be_denials_and_never_deny")
    else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let agent_metrics = free_port();
    write_agent_files(dir, &json!({"keys": []}), agent_metrics, "");
    let ports = Ports::free();
    // catch-all (`/anything`): the whole route in shadow mode, with a deny list that holds
    // the test's own address and a required API key. limited: only the rate limit is a dry
    // run. users: a shadow ipFilter before the real apiKeyAuth.
    let kernel = substitute(
        &kernel_config(
            &dir.join("agents/default.sock"),
            ports.kernel,
            ports.metrics,
            true,
        ),
        &[
            (
                "  default_policy:",
                "    - route_name: catch-all\n      shadow: true\n      request_policy_chain:\n        - policy: ipFilter\n          metadata: {deny: [\"127.0.0.0/8\", \"::1\"]}\n        - policy: apiKeyAuth\n  default_policy:",
            ),
            ("burst: 2}\n", "burst: 2}\n          shadow: true\n"),
            (
                "    - route_name: users\n      request_policy_chain:\n",
                "    - route_name: users\n      request_policy_chain:\n        - policy: ipFilter\n          shadow: true\n          metadata: {allow: [\"192.0.2.0/24\"]}\n",
            ),
        ],
    );
    std::fs::write(dir.join("kernel.yaml"), kernel).unwrap();
    let stack = Stack::start(&envoy, dir, ports, start_upstream(&runtime));

    let passed = stack.get("/anything", &[]);
    assert_eq!(passed.status, 200, "{}\n{}", passed.body, stack.logs());
    let passed_id = upstream_saw(&passed)["headers"]["x-request-id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The shadow apiKeyAuth set no identity for the upstream.
    assert!(upstream_saw(&passed)["headers"].get("x-user-id").is_none());
    let limited: Vec<u16> = (0..4).map(|_| stack.get("/limited", &[]).status).collect();
    assert_eq!(limited, [200; 4]);
    assert_eq!(stack.get("/api/v1/users/1", &[]).status, 401);
    assert_eq!(
        stack
            .get("/api/v1/users/1", &[("x-api-key", "alice-key")])
            .status,
        200
    );

    let agent_log = || std::fs::read_to_string(dir.join("agent.log")).unwrap();
    let shadow_lines = |text: &str| -> Vec<Value> {
        json_lines(text)
            .into_iter()
            .filter(|l| l["shadow"] == true)
            .collect()
    };
    // catch-all: 2, limited: 2 (of 4 requests, burst 2), users: 2.
    stack.wait("six shadow lines", || shadow_lines(&agent_log()).len() == 6);
    let lines = shadow_lines(&agent_log());
    let mut seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["component"], "agent", "{l}");
            assert_eq!(l["level"], "info", "{l}");
            (
                l["policy.name"].as_str().unwrap().to_owned(),
                l["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String)> = [
        ("apiKeyAuth", "denied"),
        ("ipFilter", "denied"),
        ("ipFilter", "denied"),
        ("ipFilter", "denied"),
        ("rateLimit", "denied"),
        ("rateLimit", "denied"),
    ]
    .iter()
    .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
    .collect();
    assert_eq!(seen, want);
    let for_passed: Vec<&str> = lines
        .iter()
        .filter(|l| l["request_id"] == passed_id.as_str())
        .map(|l| l["policy.name"].as_str().unwrap())
        .collect();
    assert_eq!(for_passed, ["ipFilter", "apiKeyAuth"]);
    // The kernel's line for that request names them too; a request no shadow policy would
    // have stopped has no `shadow` field.
    let kernel_text = std::fs::read_to_string(dir.join("kernel.log")).unwrap();
    let request = |id: &str| {
        request_lines(&kernel_text)
            .into_iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id}:\n{kernel_text}"))
    };
    let passed_line = request(&passed_id);
    assert_eq!(passed_line["shadow"], "ipFilter:denied,apiKeyAuth:denied");
    assert_eq!(passed_line["decision"], "ok");
    let mut limited: Vec<Option<&str>> = Vec::new();
    let lines = request_lines(&kernel_text);
    for line in lines.iter().filter(|l| l["route"] == "limited") {
        limited.push(line.get("shadow").map(|s| s.as_str().unwrap()));
    }
    limited.sort_unstable();
    assert_eq!(
        limited,
        [
            None,
            None,
            Some("rateLimit:denied"),
            Some("rateLimit:denied")
        ]
    );

    let metrics = http(
        SocketAddr::from(([127, 0, 0, 1], agent_metrics)),
        "GET",
        "/metrics",
        &[],
    )
    .body;
    let shadow = |policy: &str, status: &str| {
        prometheus::sample(
            &metrics,
            "policy_agent_shadow_executions_total",
            &[("policy", policy), ("status", status)],
        )
    };
    assert_eq!(shadow("ipFilter", "denied"), Some(3.0), "{metrics}");
    assert_eq!(shadow("apiKeyAuth", "denied"), Some(1.0), "{metrics}");
    assert_eq!(shadow("rateLimit", "denied"), Some(2.0), "{metrics}");
    assert_eq!(shadow("rateLimit", "ok"), Some(2.0), "{metrics}");
    // Dry runs are not executions: the real apiKeyAuth on users counts once each way.
    let real = |policy: &str, status: &str| {
        prometheus::sample(
            &metrics,
            "policy_agent_executions_total",
            &[("policy", policy), ("status", status)],
        )
    };
    assert_eq!(real("ipFilter", "denied"), None, "{metrics}");
    assert_eq!(real("rateLimit", "denied"), None, "{metrics}");
    assert_eq!(real("apiKeyAuth", "denied"), Some(1.0), "{metrics}");
    assert_eq!(real("apiKeyAuth", "ok"), Some(1.0), "{metrics}");
    // The kernel saw only allowed requests on the shadow routes.
    let kernel_metrics = http(stack.metrics, "GET", "/metrics", &[]).body;
    for (route, count) in [("catch-all", 1.0), ("limited", 4.0)] {
        assert_eq!(
            prometheus::sample(
                &kernel_metrics,
                "policy_kernel_requests_total",
                &[
                    ("route", route),
                    ("agent", "default-agent"),
                    ("status", "ok")
                ]
            ),
            Some(count),
            "{kernel_metrics}"
        );
    }
}
