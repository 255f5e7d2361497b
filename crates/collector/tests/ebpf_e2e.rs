//! End to end with real packets: network namespaces stand in for the pods of a snapshot,
//! the policies are enforced with nftables — all but one, left unenforced on purpose —
//! and real TCP and UDP traffic runs between them. The `policyhub-collector` binary
//! captures it with eBPF, judges it and reports to a real hub over SQLite, whose API then
//! shows the counts per verdict and exactly the planted enforcement gap. Needs root and
//! kernel BTF (CI runs as root).

mod common;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netpol::{Endpoint, Protocol};
use segment::lab::{self, Lab};

const PODS: [(&str, &str, &str); 3] = [
    ("web", "10.231.0.2", "tcp:8080"),
    ("api", "10.231.0.3", "tcp:8080,tcp:9999,udp:5353"),
    ("db", "10.231.0.4", "tcp:5432"),
];

/// The policy left unenforced: the model blocks web → db, the dataplane lets it through.
const UNENFORCED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: 5432}]}]
"#;

const ENFORCED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080}, {port: 5353, protocol: UDP}]
"#;

fn pods_yaml() -> String {
    let mut out = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
    for (name, ip, _) in PODS {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}-1, namespace: shop, labels: {{app: {name}}}}}\nspec: {{nodeName: node-a, containers: [{{name: c, image: x}}]}}\nstatus: {{phase: Running, podIP: {ip}, podIPs: [{{ip: {ip}}}]}}\n"
        ));
    }
    out
}

fn engine(text: &str) -> netpol::Engine {
    let mut b = netpol::Bundle::default();
    b.load_str(text, "snapshot.yaml").unwrap();
    netpol::Engine::new(b.inventory, b.policies, Default::default())
}

/// Stops the collector if the test fails before it does.
struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(url: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_traffic_reaches_the_hub_with_the_planted_gap() {
    if !lab::prerequisites("collector eBPF end-to-end test") {
        return;
    }
    assert!(
        std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
        "kernel BTF is needed"
    );
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snapshot.yaml");
    std::fs::write(
        &snapshot,
        format!("{}---{ENFORCED}---{UNENFORCED}", pods_yaml()),
    )
    .unwrap();

    // The dataplane: every policy but the planted one, as nftables in each pod's namespace.
    let enforced = engine(&format!("{}---{ENFORCED}", pods_yaml()));
    let ips: Vec<IpAddr> = PODS.iter().map(|p| p.1.parse().unwrap()).collect();
    let mut lab = Lab::new("phc").unwrap();
    let mut hosts = Vec::new();
    for (i, (_, _, listeners)) in PODS.iter().enumerate() {
        let ns = lab.add_host(ips[i], 24).unwrap();
        let (mut inbound, mut outbound) = (Vec::new(), Vec::new());
        for j in (0..PODS.len()).filter(|&j| j != i) {
            let (me, other) = (Endpoint::Pod(i), Endpoint::Pod(j));
            inbound.push((ips[j], enforced.allowed_ports(&other, &me).l4()));
            outbound.push((ips[j], enforced.allowed_ports(&me, &other).l4()));
        }
        lab.nft(&ns, &segment::nft::ruleset(&inbound, &outbound))
            .unwrap();
        let listeners: Vec<String> = listeners.split(',').map(str::to_string).collect();
        lab.serve(&ns, &listeners).unwrap();
        hosts.push(ns);
    }

    let db = dir.path().join("hub.db");
    let tenant = common::tenant(&db).await;
    let hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());
    let token = dir.path().join("token");
    std::fs::write(&token, &tenant.cluster_token).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut collector = Collector(
        Command::new(env!("CARGO_BIN_EXE_policyhub-collector"))
            .args([
                "--source",
                "ebpf",
                "--node-name",
                "node-a",
                "--cluster",
                "lab",
            ])
            .arg("--snapshot")
            .arg(&snapshot)
            .args(["--hub-url", &hub.url(), "--token-file"])
            .arg(&token)
            .arg("--spool-dir")
            .arg(dir.path().join("spool"))
            .args(["--flush-interval", "300ms", "--udp-idle", "1s"])
            .args(["--metrics-listen", &metrics, "--log-format", "text"])
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut ready = false;
    for _ in 0..300 {
        if get(&format!("http://{metrics}/readyz"), None)
            .await
            .map(|r| r.0)
            == Some(200)
        {
            ready = true;
            break;
        }
        assert!(
            collector.0.try_wait().unwrap().is_none(),
            "the collector exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the collector never became ready");

    // Traffic: (from, protocol, to, port, times, expected to connect).
    let (web, api, dbh) = (0, 1, 2);
    let plan = [
        (web, "tcp", api, 8080, 5, true),  // allowed
        (web, "tcp", api, 9999, 3, false), // blocked and dropped by nftables
        (web, "tcp", dbh, 5432, 2, true),  // blocked by the unenforced policy: the gap
        (web, "udp", api, 5353, 2, true),  // allowed, answered
        (api, "tcp", dbh, 5432, 2, true),  // allowed
        (dbh, "tcp", web, 8080, 1, true),  // no policy governs it
    ];
    let mut probes = Vec::new();
    for from in [web, api, dbh] {
        let targets: Vec<(&str, IpAddr, u16)> = plan
            .iter()
            .filter(|p| p.0 == from)
            .flat_map(|&(_, proto, to, port, n, _)| {
                let ip = ips[to];
                (0..n).map(move |_| (proto, ip, port))
            })
            .collect();
        let expected: Vec<bool> = plan
            .iter()
            .filter(|p| p.0 == from)
            .flat_map(|p| (0..p.4).map(move |_| p.5))
            .collect();
        probes.push((lab.probe(&hosts[from], &targets, 1.5).unwrap(), expected));
    }
    for (child, expected) in probes {
        assert_eq!(lab::probe_results(child).unwrap(), expected, "real traffic");
    }

    // The model, applied to what was captured: 9 allowed (5 + 2 UDP + 2), 5 blocked (3
    // dropped + 2 through the unenforced policy), 1 without policy.
    let model = engine(&std::fs::read_to_string(&snapshot).unwrap());
    let (w, d) = (Endpoint::Pod(0), Endpoint::Pod(2));
    assert_eq!(
        model.decide(&w, &d, Protocol::Tcp, 5432).verdict,
        netpol::Verdict::Blocked
    );
    let mut last = None;
    for _ in 0..100 {
        let (totals, _) = common::summary(&hub.url(), &tenant).await;
        let got = (
            totals.allowed_count,
            totals.blocked_count,
            totals.no_policy_count,
            totals.discrepancies.enforcement_gap,
        );
        if got == (9, 5, 1, 2) {
            last = None;
            break;
        }
        last = Some(got);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, None, "hub totals (allowed, blocked, no policy, gaps)");

    let (_, body) = get(
        &format!(
            "{}/api/validation/events?clusterId={}&discrepancy=ENFORCEMENT_GAP",
            hub.url(),
            tenant.cluster_id
        ),
        Some(&tenant.api_token),
    )
    .await
    .unwrap();
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    let gaps = events["events"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{body}");
    for e in gaps {
        assert_eq!(e["srcPodName"], "web-1");
        assert_eq!(e["dstPodName"], "db-1");
        assert_eq!(e["dstPort"], 5432);
        assert_eq!(e["matchedPolicy"], "NetworkPolicy shop/db-ingress");
    }
    let (_, text) = get(&format!("http://{metrics}/metrics"), None)
        .await
        .unwrap();
    assert!(
        text.contains("policyhub_collector_lost_events_total 0"),
        "{text}"
    );

    // A graceful stop flushes and exits cleanly.
    Command::new("kill")
        .args(["-TERM", &collector.0.id().to_string()])
        .status()
        .unwrap();
    let status = collector.0.wait().unwrap();
    assert!(status.success(), "collector exit: {status}");
}
