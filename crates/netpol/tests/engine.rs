//! Evaluator behaviour beyond the corpora: explanations, options, the verdict cache.

use netpol::policy::{Action, Entity, PolicyKind};
use netpol::{
    AllowLocalhost, Bundle, Endpoint, Engine, ImplicitAllow, Options, Protocol, Verdict,
    VerdictCache,
};
use proptest::prelude::*;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, ports: [{name: pg, containerPort: 5432}]}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: tool, namespace: ops, labels: {app: tool}}
status: {podIP: 10.2.0.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: pg}]
  - from: [{ipBlock: {cidr: 10.2.0.0/16}}]
    ports: [{port: 5432}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: no-ssh}
spec:
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - name: deny-ssh
    action: Deny
    from: [{namespaces: {}}]
    ports: [{portNumber: {port: 22}}]
"#;

fn engine(options: Options) -> Engine {
    let mut bundle = Bundle::default();
    bundle.load_str(CLUSTER, "cluster.yaml").unwrap();
    Engine::new(bundle.inventory, bundle.policies, options)
}

fn pod(e: &Engine, key: &str) -> Endpoint {
    Endpoint::Pod(e.inventory().pod_index(key).unwrap())
}

#[test]
fn allowed_flows_name_the_policy_and_rule() {
    let e = engine(Options::default());
    let d = e.decide(
        &pod(&e, "shop/web"),
        &pod(&e, "shop/db"),
        Protocol::Tcp,
        5432,
    );
    assert_eq!(d.verdict, Verdict::Allowed);
    let ingress = d.ingress.as_ref().unwrap();
    assert_eq!(ingress.allowed_by[0].policy.name, "db");
    assert_eq!(ingress.allowed_by[0].rule, "ingress[0]");
    assert_eq!(d.egress.as_ref().unwrap().verdict, Verdict::NoPolicy);
    assert_eq!(d.policy().unwrap().name, "db");
}

#[test]
fn blocked_flows_name_isolating_or_denying_policies() {
    let e = engine(Options::default());
    let d = e.decide(&pod(&e, "shop/web"), &pod(&e, "shop/db"), Protocol::Tcp, 80);
    assert_eq!(d.verdict, Verdict::Blocked);
    let ingress = d.ingress.as_ref().unwrap();
    assert_eq!(ingress.isolated_by[0].name, "db");
    assert!(d.reason.contains("isolated"), "{}", d.reason);

    let d = e.decide(&pod(&e, "shop/db"), &pod(&e, "shop/web"), Protocol::Tcp, 22);
    assert_eq!(d.verdict, Verdict::Blocked);
    let denied = &d.ingress.as_ref().unwrap().denied_by[0];
    assert_eq!(
        (denied.policy.kind, denied.rule.as_str(), denied.action),
        (PolicyKind::AdminNetworkPolicy, "deny-ssh", Action::Deny)
    );
}

#[test]
fn blocked_flows_name_the_default_deny_first() {
    let mut bundle = Bundle::default();
    bundle
        .load_path(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/shop"
        )))
        .unwrap();
    let e = Engine::new(bundle.inventory, bundle.policies, Options::default());
    // web's egress is isolated by default-deny, allow-dns and web; none allows 5432 to db.
    let d = e.decide(
        &pod(&e, "shop/web-1"),
        &pod(&e, "shop/db-1"),
        Protocol::Tcp,
        5432,
    );
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(d.egress.as_ref().unwrap().isolated_by.len(), 3);
    assert_eq!(d.policy().unwrap().name, "default-deny");
}

#[test]
fn unselected_pairs_are_coverage_gaps() {
    let e = engine(Options::default());
    let d = e.decide(
        &pod(&e, "shop/db"),
        &pod(&e, "shop/web"),
        Protocol::Tcp,
        8080,
    );
    assert_eq!(d.verdict, Verdict::NoPolicy);
    let ext = Endpoint::External("203.0.113.9".parse().unwrap());
    assert_eq!(
        e.verdict(&ext, &pod(&e, "ops/tool"), Protocol::Udp, 53),
        Verdict::NoPolicy
    );
}

#[test]
fn ipblock_matching_pod_ips_is_an_option() {
    let on = engine(Options {
        ipblock_matches_pods: true,
        ..Options::default()
    });
    let off = engine(Options {
        ipblock_matches_pods: false,
        ..Options::default()
    });
    let (tool, db) = (pod(&on, "ops/tool"), pod(&on, "shop/db"));
    assert_eq!(
        on.verdict(&tool, &db, Protocol::Tcp, 5432),
        Verdict::Allowed
    );
    assert_eq!(
        off.verdict(&tool, &db, Protocol::Tcp, 5432),
        Verdict::Blocked
    );
    // An address that belongs to no pod matches either way.
    let ext = Endpoint::External("10.2.9.9".parse().unwrap());
    assert_eq!(
        off.verdict(&ext, &db, Protocol::Tcp, 5432),
        Verdict::Allowed
    );
    // A pod IP resolves to the pod.
    assert_eq!(on.endpoint_for_ip("10.2.0.1".parse().unwrap()), tool);
}

/// Cilium's documentation ("Access to/from local host"): "Kubernetes will automatically
/// allow all communication from the local host of all local endpoints", unless the agent
/// runs with `--allow-localhost=policy`.
#[test]
fn the_local_host_passes_ingress_policy_unless_told_otherwise() {
    let host = Endpoint::Entity(Entity::Host, None);
    let always = engine(Options::default());
    let db = pod(&always, "shop/db");
    let d = always.decide(&host, &db, Protocol::Tcp, 5432);
    assert_eq!(d.verdict, Verdict::Allowed);
    let ingress = d.ingress.as_ref().unwrap();
    assert_eq!(ingress.implicit_allow, Some(ImplicitAllow::LocalHost));
    assert!(ingress.allowed_by.is_empty());
    assert!(
        d.reason.contains("local host, Cilium default"),
        "{}",
        d.reason
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["ingress"]["implicit_allow"], "LOCAL_HOST");
    assert_eq!(
        always.verdict(&host, &db, Protocol::Udp, 9),
        Verdict::Allowed
    );
    // Only the local host: a remote node is judged by the policy.
    let remote = Endpoint::Entity(Entity::RemoteNode, None);
    assert_eq!(
        always.verdict(&remote, &db, Protocol::Tcp, 5432),
        Verdict::Blocked
    );
    // A pod nothing isolates stays a coverage gap.
    let web = pod(&always, "shop/web");
    assert_eq!(
        always.verdict(&host, &web, Protocol::Tcp, 8080),
        Verdict::NoPolicy
    );

    let policy = engine(Options {
        allow_localhost: AllowLocalhost::Policy,
        ..Options::default()
    });
    let d = policy.decide(&host, &db, Protocol::Tcp, 5432);
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(d.ingress.unwrap().implicit_allow, None);
}

#[test]
fn allow_localhost_modes_parse_like_the_cilium_flag() {
    assert_eq!("always".parse(), Ok(AllowLocalhost::Always));
    assert_eq!("auto".parse(), Ok(AllowLocalhost::Always));
    assert_eq!("policy".parse(), Ok(AllowLocalhost::Policy));
    let err = "never".parse::<AllowLocalhost>().unwrap_err();
    assert!(err.contains("always, auto or policy"), "{err}");
}

/// Cilium's policy converter sets a CNP's `k8s:io.kubernetes.pod.namespace` match label to
/// the policy namespace; a requirement on the namespace under another source prefix stays
/// beside it, so naming another namespace that way selects nothing.
#[test]
fn a_cnp_endpoint_selector_never_leaves_its_namespace() {
    let mut bundle = Bundle::default();
    bundle
        .load_str(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: s, namespace: alpha, labels: {app: s}}
---
apiVersion: v1
kind: Pod
metadata: {name: s, namespace: beta, labels: {app: s}}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: beta, labels: {app: c}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: k8s-prefix, namespace: alpha}
spec:
  endpointSelector: {matchLabels: {"k8s:io.kubernetes.pod.namespace": beta, app: s}}
  ingress: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: any-source, namespace: gamma}
spec:
  endpointSelector: {matchLabels: {"io.kubernetes.pod.namespace": beta, app: c}}
  ingress: [{}]
"#,
            "cnp.yaml",
        )
        .unwrap();
    let e = Engine::new(bundle.inventory, bundle.policies, Options::default());
    let (alpha_s, beta_s, beta_c) = (pod(&e, "alpha/s"), pod(&e, "beta/s"), pod(&e, "beta/c"));
    let d = e.decide(&beta_c, &alpha_s, Protocol::Tcp, 80);
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(d.policy().unwrap().name, "k8s-prefix");
    assert_eq!(
        e.verdict(&beta_c, &beta_s, Protocol::Tcp, 80),
        Verdict::NoPolicy
    );
    assert_eq!(
        e.verdict(&beta_s, &beta_c, Protocol::Tcp, 80),
        Verdict::NoPolicy
    );
}

#[test]
fn named_ports_resolve_on_the_destination() {
    let e = engine(Options::default());
    let ports = e.allowed_ports(&pod(&e, "shop/web"), &pod(&e, "shop/db"));
    assert_eq!(ports.to_string(), "TCP 5432");
}

/// A random cluster: pods with random labels in two namespaces, random NetworkPolicies.
fn arb_cluster() -> impl Strategy<Value = String> {
    let pods = proptest::collection::vec((0..2usize, 0..3usize, 0..2usize), 2..7);
    let policies = proptest::collection::vec(
        (
            0..2usize,
            0..4usize,
            0..3usize,
            prop::option::of(0..3u16),
            any::<bool>(),
        ),
        0..6,
    );
    (pods, policies).prop_map(|(pods, policies)| {
        let mut text = String::new();
        for (i, (ns, app, tier)) in pods.iter().enumerate() {
            text += &format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: ns{ns}, labels: {{app: a{app}, tier: t{tier}}}}}\nspec: {{containers: [{{name: c, ports: [{{name: web, containerPort: {}}}]}}]}}\nstatus: {{podIP: 10.0.{ns}.{i}}}\n", 80 + app);
        }
        for (i, (ns, sel, peer, port, egress)) in policies.iter().enumerate() {
            let selector = if *sel == 3 { "{}".to_string() } else { format!("{{matchLabels: {{app: a{sel}}}}}") };
            let peer = match peer {
                0 => "{podSelector: {matchLabels: {tier: t0}}}".to_string(),
                1 => "{namespaceSelector: {}}".to_string(),
                _ => format!("{{ipBlock: {{cidr: 10.0.{ns}.0/24}}}}"),
            };
            let ports = port.map_or(String::new(), |p| if p == 0 { ", ports: [{port: web}]".into() } else { format!(", ports: [{{port: {}}}]", 79 + p) });
            let (dir, side) = if *egress { ("egress", "to") } else { ("ingress", "from") };
            let types = if *egress { "[Egress]" } else { "[Ingress]" };
            text += &format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{i}, namespace: ns{ns}}}\nspec:\n  podSelector: {selector}\n  policyTypes: {types}\n  {dir}: [{{{side}: [{peer}]{ports}}}]\n");
        }
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The cache, the explained decision, the plain verdict and the port set agree.
    #[test]
    fn all_answers_agree(cluster in arb_cluster(), port in 79u16..84) {
        let mut bundle = Bundle::default();
        bundle.load_str(&cluster, "random.yaml").unwrap();
        let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
        let mut cache = VerdictCache::new(&engine);
        let n = engine.inventory().pods.len();
        let mut endpoints: Vec<Endpoint> = (0..n).map(Endpoint::Pod).collect();
        endpoints.push(Endpoint::External("10.0.1.200".parse().unwrap()));
        for _round in 0..2 {
            for s in &endpoints {
                for d in &endpoints {
                    let v = engine.verdict(s, d, Protocol::Tcp, port);
                    prop_assert_eq!(cache.verdict(s, d, Protocol::Tcp, port), v);
                    prop_assert_eq!(engine.decide(s, d, Protocol::Tcp, port).verdict, v);
                    prop_assert_eq!(engine.allowed_ports(s, d).contains(Protocol::Tcp, port), v != Verdict::Blocked);
                }
            }
        }
    }
}
