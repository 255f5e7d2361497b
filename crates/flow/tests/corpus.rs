//! Every line of every Hubble capture in ../shared/corpus/hubble parses, with field-level
//! checks on a few flows of each file, and validates without corrupt lines.

use std::path::{Path, PathBuf};

use flow::hubble::{parse_line, Flow, Uint};
use flow::resolve::Resolver;
use netpol::policy::Entity;
use netpol::{Bundle, Endpoint, Engine, Options};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/hubble")
}

fn lines(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(corpus().join(file)).unwrap();
    text.lines().map(str::to_string).collect()
}

fn flow(line: &str) -> Flow<'_> {
    parse_line(line.as_bytes()).unwrap().expect("a flow")
}

fn empty_engine() -> Engine {
    let b = Bundle::default();
    Engine::new(b.inventory, b.policies, Options::default())
}

#[test]
fn every_line_of_every_file_parses_and_validates() {
    let mut files = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let f = parse_line(line.as_bytes())
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            let f = f.unwrap_or_else(|| panic!("{}:{}: not a flow", path.display(), i + 1));
            assert!(f.time.is_some(), "{}:{}", path.display(), i + 1);
            assert!(f.verdict.is_some(), "{}:{}", path.display(), i + 1);
        }
        let engine = empty_engine();
        let payload = flow::validate(&engine, flow::Config::default(), text.as_bytes()).unwrap();
        let n = text.lines().count() as u64;
        assert_eq!(payload.input.flows, n, "{}", path.display());
        assert_eq!(payload.input.corrupt, 0, "{}", path.display());
        let i = &payload.input;
        assert_eq!(i.judged + i.replies + i.not_l3l4 + i.unresolved, n);
    }
    assert_eq!(files, 7);
}

#[test]
fn azure_capture_workloads_and_replies() {
    let ls = lines("azure-docker-provider_network-flow-logs-test.jsonl");
    let f = flow(&ls[0]);
    assert_eq!(
        f.uuid.as_deref(),
        Some("60e8fedd-6d98-49d8-b7f6-cb84455757ab")
    );
    assert_eq!(f.verdict_code(), 1);
    assert!(f.is_reply());
    let tcp = f.l4.as_ref().unwrap().tcp.as_ref().unwrap();
    assert_eq!(
        (tcp.source_port, tcp.destination_port),
        (Some(Uint(8080)), Some(Uint(60778)))
    );
    let src = f.source.as_ref().unwrap();
    assert_eq!(
        src.pod_name.as_deref(),
        Some("kapinger-good-64cbf459c4-q4tr9")
    );
    assert_eq!(src.cluster_name.as_deref(), Some("longtestnetworkflowcni"));
    assert_eq!(src.identity, Some(Uint(39459)));
    let w = &src.workloads()[0];
    assert_eq!(
        (w.name.as_deref(), w.kind.as_deref()),
        (Some("kapinger-good"), Some("Deployment"))
    );
    assert_eq!(f.event_kind(), Some(4));
    assert_eq!(f.observation_point(), 101);
    // The wrapper holds only `flow`: node name comes from the flow itself.
    assert_eq!(
        f.node_name.as_deref(),
        Some("longtestnetworkflowcni/aks-nodepool1-27013129-vmss000000")
    );
}

#[test]
fn cilium_policy_deny_names_the_policy() {
    let ls = lines("cilium-1.18.3_policy-deny_egress_denied_by.jsonl");
    let f = flow(&ls[0]);
    assert_eq!(f.verdict_code(), 2);
    assert_eq!(f.drop_reason, Some(Uint(181)));
    assert!(f.is_policy_drop());
    assert_eq!(f.event_kind(), Some(5));
    assert_eq!(f.direction_code(), 2);
    assert_eq!(f.policy_match_type, Some(Uint(1)));
    let denied = f.egress_denied_by.as_ref().unwrap();
    assert_eq!(denied[0].name.as_deref(), Some("deny-tg-to-echo"));
    assert_eq!(denied[0].namespace.as_deref(), Some("net-lab"));
    assert_eq!(denied[0].kind.as_deref(), Some("CiliumNetworkPolicy"));
    assert_eq!(
        flow::observe(&f),
        flow::Observed::PolicyDrop(flow::Scope::Egress)
    );
}

#[test]
fn docs_drops_policy_and_other_reasons() {
    let ls = lines("cilium-docs_export-rst_dropped.jsonl");
    let f = flow(&ls[0]);
    assert!(!f.is_policy_drop());
    assert_eq!(flow::observe(&f), flow::Observed::Unknown);
    let icmp = f.l4.as_ref().unwrap().icmpv6.as_ref().unwrap();
    assert_eq!(icmp.icmp_type, Some(Uint(133)));
    assert!(f.source.as_ref().unwrap().namespace.is_none());
    let ip = f.ip.as_ref().unwrap();
    assert_eq!(ip.source.as_deref(), Some("fe80::64d8:8aff:fe72:fc14"));
    let f = flow(&ls[1]);
    assert!(f.is_policy_drop());
    assert_eq!(
        flow::observe(&f),
        flow::Observed::PolicyDrop(flow::Scope::Flow)
    );
    assert_eq!(
        f.destination.as_ref().unwrap().pod_name.as_deref(),
        Some("deathstar-7848d6c4d5-th9v2")
    );
}

#[test]
fn hubble_otel_traces_and_host_identity() {
    let ls = lines("hubble-otel_basic-sample-10-flows.jsonl");
    let f = flow(&ls[0]);
    assert!(f.is_reply());
    assert_eq!(f.observation_point(), 3);
    let et = f.event_type.as_ref().unwrap();
    assert_eq!((et.event_type, et.sub_type), (Some(Uint(4)), Some(Uint(3))));
    let dst = f.destination.as_ref().unwrap();
    assert_eq!(dst.identity, Some(Uint(1)));
    assert_eq!(dst.labels()[0], "reserved:host");
    let src = f.source.as_ref().unwrap();
    assert_eq!(src.labels().len(), 7);
    let f = flow(&ls[1]);
    assert!(!f.is_reply());
    assert_eq!(flow::observe(&f), flow::Observed::Passed(flow::Scope::Flow));
    let engine = empty_engine();
    let r = Resolver::new(&engine);
    assert_eq!(
        r.resolve(f.source.as_ref(), Some("10.0.2.1".parse().unwrap())),
        Some(Endpoint::Entity(
            Entity::Host,
            Some("10.0.2.1".parse().unwrap())
        ))
    );
    // A pod the (empty) snapshot lacks is unresolved.
    assert_eq!(r.resolve(f.destination.as_ref(), None), None);
}

#[test]
fn hubble_otel_policy_verdicts() {
    let ls = lines("hubble-otel_policy-verdict-subset.jsonl");
    assert_eq!(ls.len(), 27);
    let f = flow(&ls[0]);
    assert_eq!(f.verdict_code(), 5);
    assert_eq!(f.event_kind(), Some(5));
    assert_eq!(f.policy_match_type, Some(Uint(3)));
    assert_eq!(f.direction_code(), 2);
    assert_eq!(f.is_reply, Some(false));
    assert_eq!(
        flow::observe(&f),
        flow::Observed::Passed(flow::Scope::Egress)
    );
    let src = f.source.as_ref().unwrap();
    assert_eq!(src.pod_name.as_deref(), Some("ratings-v1-b6994bb9-jgqxb"));
    let tcp = f.l4.as_ref().unwrap().tcp.as_ref().unwrap();
    assert_eq!(tcp.destination_port, Some(Uint(9080)));
    for l in &ls {
        assert_eq!(flow(l).event_kind(), Some(5));
    }
}

#[test]
fn reserved_identities() {
    let ls = lines("hubble-otel_reserved-identity-subset.jsonl");
    let f = flow(&ls[1]);
    let engine = empty_engine();
    let r = Resolver::new(&engine);
    let src = f.source.as_ref().unwrap();
    assert_eq!(src.identity, Some(Uint(6)));
    assert_eq!(
        r.resolve(Some(src), None),
        Some(Endpoint::Entity(Entity::RemoteNode, None))
    );
    assert_eq!(
        r.resolve(f.destination.as_ref(), None),
        Some(Endpoint::Entity(Entity::Health, None))
    );
    // TO_OVERLAY: leaving the node, so egress enforcement has passed.
    assert_eq!(
        flow::observe(&f),
        flow::Observed::Passed(flow::Scope::Egress)
    );
}

#[test]
fn tke_export_kube_apiserver_cidr_identity() {
    let ls = lines("tke-guide_cilium-1.19.1_export.jsonl");
    let f = flow(&ls[0]);
    let src = f.source.as_ref().unwrap();
    assert_eq!(src.identity, Some(Uint(16_777_217)));
    let engine = empty_engine();
    let r = Resolver::new(&engine);
    let ip = "169.254.128.9".parse().unwrap();
    assert_eq!(
        r.resolve(Some(src), Some(ip)),
        Some(Endpoint::Entity(Entity::KubeApiserver, Some(ip)))
    );
    let dst = f.destination.as_ref().unwrap();
    assert_eq!(dst.namespace.as_deref(), Some("kube-system"));
    assert_eq!(
        dst.workloads()[0].name.as_deref(),
        Some("csi-cbs-controller")
    );
    assert!(f.is_reply());
}
