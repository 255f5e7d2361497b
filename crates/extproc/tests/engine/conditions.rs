//! Conditions (`when`) on chain entries, through kernel and agent: an entry runs only for the
//! methods, path prefixes and request headers it names.

use super::*;

const CONDITIONAL: &str = r#"    - route_name: conditional
      request_policy_chain:
        - policy: apiKeyAuth
          metadata: {header_name: X-API-Key}
          when: {methods: [POST, DELETE]}
        - policy: ipFilter
          metadata: {deny: ["0.0.0.0/0", "::/0"]}
          when: {path_prefixes: [/internal/], headers: {X-Debug: "1"}}
"#;

/// `request_headers` for `route` with this method and path.
fn request(method: &str, path: &str, pairs: &[(&str, &str)]) -> ProcessingRequest {
    let mut request = request_headers("conditional", pairs, true);
    if let Some(processing_request::Request::RequestHeaders(h)) = request.request.as_mut() {
        for header in h.headers.as_mut().unwrap().headers.iter_mut() {
            match header.key.as_str() {
                ":method" => header.raw_value = method.as_bytes().to_vec(),
                ":path" => header.raw_value = path.as_bytes().to_vec(),
                _ => {}
            }
        }
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_entries_apply_only_when_their_condition_matches() {
    let engine = Engine::start(false, CONDITIONAL).await;
    let mut client = engine.client().await;
    let key = ("x-api-key", "alice-key");
    let debug = ("x-debug", "1");
    let cases = [
        (request("GET", "/api", &[]), None),
        (request("POST", "/api", &[]), Some(401)),
        (
            request("DELETE", "/api?x=1", &[("x-api-key", "wrong")]),
            Some(403),
        ),
        (request("POST", "/api", &[key]), None),
        (request("GET", "/internal/x", &[]), None),
        (request("GET", "/internal/x", &[debug]), Some(403)),
        (request("GET", "/internal/x", &[("x-debug", "2")]), None),
        (request("GET", "/public?/internal/", &[debug]), None),
        (request("POST", "/internal/x", &[key, debug]), Some(403)),
    ];
    let (requests, want): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let mut got = Vec::new();
    for request in requests {
        got.push(immediate_status(
            &exchange(&mut client, vec![request]).await[0],
        ));
    }
    assert_eq!(got, want);
    // A passed-over entry is not an execution: apiKeyAuth ran for the four POST/DELETE
    // requests only.
    let metrics = reqwest_metrics(engine.agent.as_ref().unwrap().admin_addr().unwrap()).await;
    let runs: f64 = ["ok", "denied"]
        .iter()
        .filter_map(|status| {
            sample(
                &metrics,
                "policy_agent_executions_total",
                &[("policy", "apiKeyAuth"), ("status", status)],
            )
        })
        .sum();
    assert_eq!(runs, 4.0, "{metrics}");
}
