//! The agent's use of the validator: engines swapped while hours go on counting, and
//! flushes that carry whole-hour summaries of the hours that changed.

use std::sync::Arc;

use flow::{Config, Validator};
use netpol::{Bundle, Engine, Options};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.2}
"#;

const ALLOW_WEB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
"#;

const DENY_ALL: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
"#;

fn engine(policy: &str, extra_pods: &str) -> Arc<Engine> {
    let mut b = Bundle::default();
    b.load_str(
        &format!("{extra_pods}\n---\n{PODS}\n---\n{policy}"),
        "t.yaml",
    )
    .unwrap();
    Arc::new(Engine::new(b.inventory, b.policies, Options::default()))
}

fn web_to_db(time: &str) -> String {
    format!(
        r#"{{"flow":{{"time":"{time}","IP":{{"source":"10.0.0.1","destination":"10.0.0.2"}},"l4":{{"TCP":{{"source_port":40000,"destination_port":5432}}}},"verdict":"FORWARDED","event_type":{{"type":4}},"trace_observation_point":"TO_ENDPOINT"}}}}"#
    )
}

#[test]
fn swapped_engines_keep_counting_and_flushes_carry_changed_hours() {
    let mut v = Validator::new(engine(ALLOW_WEB, ""), Config::default());
    for i in 0..3 {
        v.push_line(i + 1, web_to_db("2026-11-23T09:10:00Z").as_bytes())
            .unwrap();
    }
    let first = v.flush("2026-11-23T08");
    assert_eq!(first.summaries.len(), 1);
    assert_eq!(first.summaries[0].hour, "2026-11-23T09:00:00Z");
    assert_eq!(first.summaries[0].counts.allowed_count, 3);
    assert_eq!(first.events.len(), 3, "events sampled since the last flush");

    // Nothing new: nothing to post.
    assert!(v.flush("2026-11-23T08").summaries.is_empty());

    // The policy changes to deny everything (and a pod is added before the others, so the
    // new engine numbers workloads differently): the same hour goes on counting.
    let extra = "apiVersion: v1\nkind: Pod\nmetadata: {name: cache-1, namespace: shop, labels: {app: cache}}\nstatus: {podIP: 10.0.0.9}";
    v.set_engine(engine(DENY_ALL, extra));
    v.push_line(4, web_to_db("2026-11-23T09:20:00Z").as_bytes())
        .unwrap();
    v.push_line(5, web_to_db("2026-11-23T10:01:00Z").as_bytes())
        .unwrap();
    let second = v.flush("2026-11-23T10");
    assert_eq!(second.summaries.len(), 2);
    let nine = &second.summaries[0];
    assert_eq!(nine.hour, "2026-11-23T09:00:00Z");
    assert_eq!(
        (nine.counts.allowed_count, nine.counts.blocked_count),
        (3, 1),
        "the whole hour, across both engines"
    );
    assert_eq!(nine.counts.discrepancies.enforcement_gap, 1);
    let blocked = &nine.top_blocked[0];
    assert_eq!(
        (blocked.source.as_str(), blocked.destination.as_str()),
        ("shop/web-1", "shop/db-1")
    );
    assert_eq!(second.events.len(), 2);
    assert_eq!(second.input.flows, 5);

    // Hour 09 was forgotten by that flush; hour 10 is kept and goes on.
    v.push_line(6, web_to_db("2026-11-23T10:30:00Z").as_bytes())
        .unwrap();
    let third = v.flush("2026-11-23T10");
    assert_eq!(third.summaries.len(), 1);
    assert_eq!(third.summaries[0].counts.blocked_count, 2);
}
