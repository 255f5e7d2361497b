use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::{Bundle, Options};

fn engine(docs: &[Value]) -> Engine {
    let mut bundle = Bundle::default();
    for (i, d) in docs.iter().enumerate() {
        bundle.add_object(d, "test", i + 1, "").unwrap();
    }
    Engine::new(bundle.inventory, bundle.policies, Options::default())
}

fn deployment(name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"}, "spec": spec})
}

fn deny_all_ingress_to_db() -> Value {
    policy(
        "db",
        json!({"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]}),
    )
}

fn find<'a>(entries: &'a [DiffEntry], src: &str, dst: &str) -> Option<&'a DiffEntry> {
    entries
        .iter()
        .find(|e| e.src.to_string() == src && e.dst.to_string() == dst)
}

#[test]
fn a_removed_isolation_adds_connections() {
    let base = engine(&[
        deployment("web", "web"),
        deployment("db", "db"),
        deny_all_ingress_to_db(),
    ]);
    let target = engine(&[deployment("web", "web"), deployment("db", "db")]);
    let entries = diff_all(&base, &target);
    let e = find(&entries, "shop/web[Deployment]", "shop/db[Deployment]").unwrap();
    assert_eq!(e.diff_type, DiffType::Added);
    assert!(e.before.is_empty());
    assert!(e.after.is_all_l4());
    assert!(!e.src_new_or_removed && !e.dst_new_or_removed);
    assert_eq!(e.workloads_info(), None);
    let from_outside = find(&entries, "0.0.0.0-255.255.255.255", "shop/db[Deployment]").unwrap();
    assert_eq!(from_outside.diff_type, DiffType::Added);
    // Nothing changed for web's ingress, nor for anyone's egress.
    assert_eq!(entries.len(), 2, "{entries:#?}");
}

#[test]
fn narrowed_ports_are_a_change_and_nothing_is_gained() {
    let allow = |port: u16| {
        policy(
            "db",
            json!({"podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"ports": [{"port": port}, {"port": 9000}]}]}),
        )
    };
    let base = engine(&[
        deployment("web", "web"),
        deployment("db", "db"),
        allow(8080),
    ]);
    let target = engine(&[
        deployment("web", "web"),
        deployment("db", "db"),
        allow(9001),
    ]);
    let entries = diff_all(&base, &target);
    let e = find(&entries, "shop/web[Deployment]", "shop/db[Deployment]").unwrap();
    assert_eq!(e.diff_type, DiffType::Changed);
    assert_eq!(e.before.to_string(), "TCP 8080,9000");
    assert_eq!(e.after.to_string(), "TCP 9000-9001");
    assert_eq!(e.gained().to_string(), "TCP 9001");
}

#[test]
fn workloads_on_one_side_are_flagged() {
    let base = engine(&[deployment("web", "web"), deny_all_ingress_to_db()]);
    let target = engine(&[
        deployment("web", "web"),
        deployment("db", "db"),
        deny_all_ingress_to_db(),
    ]);
    let entries = diff_all(&base, &target);
    let e = find(&entries, "shop/db[Deployment]", "shop/web[Deployment]").unwrap();
    assert_eq!(e.diff_type, DiffType::Added);
    assert!(e.src_new_or_removed && !e.dst_new_or_removed);
    assert_eq!(
        e.workloads_info().as_deref(),
        Some("workload shop/db[Deployment] added")
    );
    // db is isolated on ingress in the target: nothing reaches it, so nothing changed.
    assert!(find(&entries, "shop/web[Deployment]", "shop/db[Deployment]").is_none());
    let back = diff_all(&target, &base);
    let e = find(&back, "shop/db[Deployment]", "shop/web[Deployment]").unwrap();
    assert_eq!(e.diff_type, DiffType::Removed);
    assert_eq!(
        e.workloads_info().as_deref(),
        Some("workload shop/db[Deployment] removed")
    );
}

#[test]
fn external_ranges_are_refined_across_both_sides() {
    let egress = |cidr: &str| {
        policy(
            "web",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": cidr}}]}]}),
        )
    };
    let base = engine(&[deployment("web", "web"), egress("10.0.0.0/8")]);
    let target = engine(&[deployment("web", "web"), egress("10.0.0.0/9")]);
    let entries = diff_all(&base, &target);
    let texts: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{} {} -> {} {} / {}",
                e.diff_type, e.src, e.dst, e.before, e.after
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            "removed shop/web[Deployment] -> 10.128.0.0-10.255.255.255 All Connections / No Connections"
        ]
    );
}

#[test]
fn refine_merges_touching_pieces_only() {
    let r = |a: &str| IpRange::parse(a).unwrap();
    let all = PortSet::all();
    let none = PortSet::none();
    let a = vec![
        (r("0.0.0.0-9.255.255.255"), all.clone()),
        (r("10.0.0.0-10.255.255.255"), none.clone()),
        (r("11.0.0.0-255.255.255.255"), all.clone()),
    ];
    let b = vec![
        (r("0.0.0.0-10.127.255.255"), none.clone()),
        (r("10.128.0.0-255.255.255.255"), all.clone()),
    ];
    let got: Vec<String> = refine(&a, &b)
        .iter()
        .map(|(r, x, y)| format!("{r} {x} / {y}"))
        .collect();
    assert_eq!(
        got,
        [
            "0.0.0.0-9.255.255.255 All Connections / No Connections",
            "10.128.0.0-10.255.255.255 No Connections / All Connections",
        ]
    );
}

/// A small random cluster: deployments with labels from a few values, and
/// NetworkPolicies over them with pod selectors, ports and ipBlocks.
fn cluster() -> impl Strategy<Value = Vec<Value>> {
    let apps = ["a", "b", "c"];
    let workload = (0..3usize, 0..2usize).prop_map(move |(app, tier)| (apps[app], tier));
    let rule = (
        prop::option::of(0..3usize),
        prop::option::of(prop::sample::select(vec![80u16, 443, 8080])),
        prop::option::of(prop::sample::select(vec![
            "10.0.0.0/8",
            "10.1.0.0/16",
            "0.0.0.0/0",
        ])),
    );
    let np = (
        0..3usize,
        prop::collection::vec(rule.clone(), 0..3),
        prop::option::of(prop::collection::vec(rule, 0..3)),
    );
    (
        prop::collection::vec(workload, 1..5),
        prop::collection::vec(np, 0..4),
    )
        .prop_map(move |(workloads, policies)| {
            let mut docs = Vec::new();
            for (i, (app, tier)) in workloads.iter().enumerate() {
                let mut d = deployment(&format!("w{i}"), app);
                d["spec"]["template"]["metadata"]["labels"]["tier"] = json!(tier.to_string());
                docs.push(d);
            }
            let peer_rule = |(sel, port, cidr): &(Option<usize>, Option<u16>, Option<&str>),
                             key: &str| {
                let mut peers = Vec::new();
                if let Some(s) = sel {
                    peers.push(json!({"podSelector": {"matchLabels": {"app": apps[*s]}}}));
                }
                if let Some(c) = cidr {
                    peers.push(json!({"ipBlock": {"cidr": c}}));
                }
                let mut r = json!({});
                if !peers.is_empty() {
                    r[key] = json!(peers);
                }
                if let Some(p) = port {
                    r["ports"] = json!([{"port": p}]);
                }
                r
            };
            for (i, (subject, ingress, egress)) in policies.iter().enumerate() {
                let mut spec = json!({
                    "podSelector": {"matchLabels": {"app": apps[*subject]}},
                    "ingress": ingress.iter().map(|r| peer_rule(r, "from")).collect::<Vec<_>>(),
                });
                if let Some(eg) = egress {
                    spec["egress"] =
                        json!(eg.iter().map(|r| peer_rule(r, "to")).collect::<Vec<_>>());
                    spec["policyTypes"] = json!(["Ingress", "Egress"]);
                }
                docs.push(policy(&format!("p{i}"), spec));
            }
            docs
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_cluster_against_itself_has_no_difference(docs in cluster()) {
        let entries = diff_all(&engine(&docs), &engine(&docs));
        prop_assert!(entries.is_empty(), "{:#?}", entries);
    }

    #[test]
    fn swapping_the_sides_mirrors_the_diff(a in cluster(), b in cluster()) {
        let (ea, eb) = (engine(&a), engine(&b));
        let forward = diff_all(&ea, &eb);
        let backward = diff_all(&eb, &ea);
        prop_assert_eq!(forward.len(), backward.len());
        for e in &forward {
            let m = find(&backward, &e.src.to_string(), &e.dst.to_string());
            let m = m.expect("mirrored entry");
            prop_assert_eq!(&m.before, &e.after);
            prop_assert_eq!(&m.after, &e.before);
            let mirrored = match e.diff_type {
                DiffType::Added => DiffType::Removed,
                DiffType::Removed => DiffType::Added,
                DiffType::Changed => DiffType::Changed,
            };
            prop_assert_eq!(m.diff_type, mirrored);
            prop_assert_eq!(m.src_new_or_removed, e.src_new_or_removed);
            prop_assert_eq!(m.dst_new_or_removed, e.dst_new_or_removed);
        }
    }
}
