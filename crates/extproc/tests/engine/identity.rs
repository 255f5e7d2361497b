//! Who the request is from: identity headers only a policy can set, and the client address
//! only Envoy (or configured trusted proxies) can state.

use super::*;

/// Headers the answer to request headers removes.
fn removed_headers(answer: &ProcessingResponse) -> Vec<String> {
    match &answer.response {
        Some(processing_response::Response::RequestHeaders(h)) => h
            .response
            .as_ref()
            .and_then(|c| c.header_mutation.as_ref())
            .map(|m| m.remove_headers.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

const OPTIONAL_AUTH: &str = r#"    - route_name: optional
      request_policy_chain:
        - policy: apiKeyAuth
          metadata: {header_name: X-API-Key, required: false}
        - policy: jwtValidation
          metadata: {required: false, claims_to_headers: {sub: X-Subject}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_are_removed_when_auth_is_optional() {
    let engine = Engine::start(false, OPTIONAL_AUTH).await;
    let mut client = engine.client().await;
    let forged = [("x-user-id", "admin"), ("x-subject", "root")];

    // No credentials: the request goes on, without the client's identity headers.
    let anonymous = exchange(
        &mut client,
        vec![request_headers("optional", &forged, true)],
    )
    .await;
    assert_eq!(immediate_status(&anonymous[0]), None);
    let mut removed = removed_headers(&anonymous[0]);
    removed.sort();
    assert_eq!(removed, ["x-subject", "x-user-id"]);
    assert!(set_headers(&anonymous[0]).is_empty());

    // A valid key: the key's user replaces the forged one; the JWT target is still removed.
    let with_key = [forged[0], forged[1], ("x-api-key", "alice-key")];
    let keyed = exchange(
        &mut client,
        vec![request_headers("optional", &with_key, true)],
    )
    .await;
    assert_eq!(
        set_headers(&keyed[0]).get("x-user-id").map(String::as_str),
        Some("alice")
    );
    assert_eq!(removed_headers(&keyed[0]), ["x-subject"]);

    // A request without those headers gets no mutation at all.
    let clean = exchange(&mut client, vec![request_headers("optional", &[], true)]).await;
    assert!(removed_headers(&clean[0]).is_empty());
}

/// `request_headers` with Envoy's `source.address` attribute.
pub(super) fn from_source(route: &str, pairs: &[(&str, &str)], source: &str) -> ProcessingRequest {
    let mut request = request_headers(route, pairs, true);
    for attrs in request.attributes.values_mut() {
        attrs.fields.insert(
            "source.address".to_owned(),
            Value {
                kind: Some(Kind::StringValue(source.to_owned())),
            },
        );
    }
    request
}

/// One request per client address allowed, keyed by the address the kernel sends.
const PER_ADDRESS: &str = r#"    - route_name: per-address
      request_policy_chain:
        - policy: rateLimit
          metadata: {requests_per_second: 0.01, burst: 1, key: client_ip}
"#;

pub(super) async fn statuses(
    client: &mut ExternalProcessorClient<Channel>,
    requests: Vec<ProcessingRequest>,
) -> Vec<Option<i32>> {
    let mut out = Vec::new();
    for request in requests {
        out.push(immediate_status(&exchange(client, vec![request]).await[0]));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_address_is_envoys_unless_proxies_are_trusted() {
    let xff = |list| [("x-forwarded-for", list)];
    // Default: X-Forwarded-For is ignored. Without a source address, requests that claim
    // other addresses still share one budget; with one, the source address is the key.
    let engine = Engine::start(false, PER_ADDRESS).await;
    let mut client = engine.client().await;
    let got = statuses(
        &mut client,
        vec![
            request_headers("per-address", &xff("9.9.9.1"), true),
            request_headers("per-address", &xff("9.9.9.2"), true),
            from_source("per-address", &xff("9.9.9.3"), "10.0.0.1:4000"),
            from_source("per-address", &xff("9.9.9.4"), "10.0.0.1:4001"),
            from_source("per-address", &xff("9.9.9.4"), "10.0.0.2:4000"),
        ],
    )
    .await;
    assert_eq!(got, [None, Some(429), None, Some(429), None]);

    // Two trusted hops: the second entry from the right is the client.
    let routes = format!("{PER_ADDRESS}  trust_forwarded_for: 2\n");
    let engine = Engine::start(false, &routes).await;
    let mut client = engine.client().await;
    let got = statuses(
        &mut client,
        vec![
            from_source(
                "per-address",
                &xff("6.6.6.6, 9.9.9.1, 10.0.0.9"),
                "10.0.0.1:1",
            ),
            from_source(
                "per-address",
                &xff("6.6.6.7, 9.9.9.1, 10.0.0.9"),
                "10.0.0.1:1",
            ),
            from_source(
                "per-address",
                &xff("6.6.6.6, 9.9.9.2, 10.0.0.9"),
                "10.0.0.1:1",
            ),
        ],
    )
    .await;
    assert_eq!(got, [None, Some(429), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_without_the_agent_still_removes_identity_headers() {
    let mut engine = Engine::start(true, OPTIONAL_AUTH).await;
    let mut client = engine.client().await;
    engine.agent.take().unwrap().shutdown().await;
    let forged = [
        ("x-user-id", "admin"),
        ("x-subject", "root"),
        ("x-other", "1"),
    ];
    let answer = exchange(
        &mut client,
        vec![request_headers("optional", &forged, true)],
    )
    .await;
    assert_eq!(
        immediate_status(&answer[0]),
        None,
        "fail_open lets it through"
    );
    let mut removed = removed_headers(&answer[0]);
    removed.sort();
    assert_eq!(removed, ["x-subject", "x-user-id"]);
}
