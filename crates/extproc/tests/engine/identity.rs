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
