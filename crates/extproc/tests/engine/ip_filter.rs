//! `ipFilter` through kernel and agent: the lists are matched against the client address the
//! kernel trusts (Envoy's `source.address`, or the trusted `X-Forwarded-For` hop), IPv4 and
//! IPv6, and a client's own `X-Forwarded-For` entries never count.

use super::identity::{from_source, statuses};
use super::*;

const FILTERED: &str = r#"    - route_name: filtered
      request_policy_chain:
        - policy: ipFilter
          metadata:
            allow: ["10.0.0.0/8", "2001:db8::/32"]
            deny: ["10.6.6.0/24", "2001:db8:bad::/48"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_filter_uses_the_trusted_client_address() {
    let xff = |list| [("x-forwarded-for", list)];
    let engine = Engine::start(false, FILTERED).await;
    let mut client = engine.client().await;
    let got = statuses(
        &mut client,
        vec![
            from_source("filtered", &[], "10.1.2.3:5000"),
            from_source("filtered", &[], "[2001:db8::7]:443"),
            from_source("filtered", &[], "[::ffff:10.1.2.3]:80"),
            from_source("filtered", &[], "10.6.6.6:1"),
            from_source("filtered", &[], "[2001:db8:bad::1]:1"),
            from_source("filtered", &[], "192.0.2.1:1"),
            from_source("filtered", &[], "[2001:db9::1]:1"),
            // Spoofed X-Forwarded-For: no proxy is trusted, so only the source counts.
            from_source("filtered", &xff("10.1.2.3"), "192.0.2.1:1"),
            from_source("filtered", &xff("2001:db8::1"), "10.6.6.6:1"),
            // No source address at all: nothing vouches for the client.
            request_headers("filtered", &xff("10.1.2.3"), true),
        ],
    )
    .await;
    assert_eq!(
        got,
        [
            None,
            None,
            None,
            Some(403),
            Some(403),
            Some(403),
            Some(403),
            Some(403),
            Some(403),
            Some(403)
        ]
    );

    // One trusted proxy (the source): the rightmost X-Forwarded-For entry is the client, and
    // whatever the client wrote to its left does not count.
    let routes = format!("{FILTERED}  trust_forwarded_for: 1\n");
    let engine = Engine::start(false, &routes).await;
    let mut client = engine.client().await;
    let proxy = "192.0.2.50:8443";
    let got = statuses(
        &mut client,
        vec![
            from_source("filtered", &xff("192.0.2.1, 10.1.2.3"), proxy),
            from_source("filtered", &xff("10.1.2.3, 192.0.2.1"), proxy),
            from_source("filtered", &xff("10.1.2.3, 2001:db8::9"), proxy),
            from_source("filtered", &xff("10.1.2.3,2001:db8:bad::9"), proxy),
            from_source("filtered", &xff("10.1.2.3, 10.6.6.1"), proxy),
            // No header: the proxy itself is the client, and it is not allowed.
            from_source("filtered", &[], proxy),
        ],
    )
    .await;
    assert_eq!(
        got,
        [None, Some(403), None, Some(403), Some(403), Some(403)]
    );
}
