//! The `policyhub-collector` binary replays a file of Hubble flows against a snapshot and
//! reports to a real hub: the hub ends up with exactly the counts an offline
//! `policyhub validate` of the same input gives.

mod common;

use std::path::Path;
use std::process::Command;

/// `policyhub-collector --source file` replaying `flows` against `snapshots` (comma
/// separated) to the hub at `hub_url`, spooling under `dir`.
fn replay(dir: &Path, hub_url: &str, token: &Path, flows: &Path, snapshots: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyhub-collector"));
    cmd.args(["--source", "file", "--file"])
        .arg(flows)
        .args([
            "--snapshot",
            snapshots,
            "--hub-url",
            hub_url,
            "--token-file",
        ])
        .arg(token)
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args(["--metrics-listen", "127.0.0.1:0", "--log-format", "text"])
        .env_remove("NODE_NAME")
        .env_remove("POLICYHUB_ALLOW_LOCALHOST");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_file_reaches_the_hub_with_the_offline_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let tenant = common::tenant(&db).await;
    let hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());

    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop");
    let mut bundle = netpol::Bundle::default();
    bundle.load_path(&shop).unwrap();
    let engine = netpol::Engine::new(bundle.inventory, bundle.policies, Default::default());
    let now = hub::now();
    let config = flow::synth::Config {
        count: 5_000,
        gap_share: 0.02,
        hours: 3,
        start: now - now % 3600 - 2 * 3600,
        ..Default::default()
    };
    let mut lines = Vec::new();
    flow::synth::synth(&engine, &config, &mut lines).unwrap();
    let flows = dir.path().join("flows.jsonl");
    std::fs::write(&flows, &lines).unwrap();
    let offline = flow::validate(&engine, flow::Config::default(), &lines[..]).unwrap();

    let token = dir.path().join("token");
    std::fs::write(&token, format!("{}\n", tenant.cluster_token)).unwrap();
    let snapshot = |f: &str| shop.join(f).display().to_string();
    let snapshots = format!("{},{}", snapshot("cluster.yaml"), snapshot("policies.yaml"));
    let out = replay(dir.path(), &hub.url(), &token, &flows, &snapshots)
        .args(["--cluster", "shop"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "collector failed: {stderr}");

    let (totals, _) = common::summary(&hub.url(), &tenant).await;
    let want = offline.totals();
    assert!(want.judged() > 1_000, "{want:?}");
    assert_eq!(
        (
            totals.allowed_count,
            totals.blocked_count,
            totals.no_policy_count
        ),
        (want.allowed_count, want.blocked_count, want.no_policy_count)
    );
    assert_eq!(
        totals.discrepancies.enforcement_gap,
        want.discrepancies.enforcement_gap
    );
    assert!(want.discrepancies.enforcement_gap > 0);
}

/// Hubble JSON lines: `n` forwarded TCP 5432 flows from the local host to shop/db-1, an
/// hour ago.
fn host_to_db_flows(n: usize) -> String {
    let time = flow::synth::rfc3339(hub::now() - 3600, 0);
    (0..n)
        .map(|i| {
            format!(
                r#"{{"flow":{{"time":"{time}","verdict":"FORWARDED","IP":{{"source":"192.168.0.10","destination":"10.0.0.2","ipVersion":"IPv4"}},"l4":{{"TCP":{{"source_port":{},"destination_port":5432,"flags":{{"SYN":true}}}}}},"source":{{"identity":1,"labels":["reserved:host"]}},"destination":{{"namespace":"shop","pod_name":"db-1","labels":["k8s:app=db"]}},"Type":"L3_L4","traffic_direction":"INGRESS","trace_observation_point":"TO_ENDPOINT","is_reply":false}}}}"#,
                40_000 + i
            ) + "\n"
        })
        .collect()
}

/// `--allow-localhost` reaches the judge: by default the local host passes db's ingress
/// policy (Cilium's default); with `policy` the same forwarded flows are enforcement gaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_localhost_mode_decides_host_flows() {
    for (mode, allowed, blocked) in [(None, 7, 0), (Some("policy"), 0, 7)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hub.db");
        let tenant = common::tenant(&db).await;
        let hub = common::Hub::start(&db, "127.0.0.1:0".parse().unwrap());
        let snapshot = dir.path().join("cluster.yaml");
        std::fs::write(&snapshot, common::WEB_DB).unwrap();
        let flows = dir.path().join("flows.jsonl");
        std::fs::write(&flows, host_to_db_flows(7)).unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, &tenant.cluster_token).unwrap();
        let mut cmd = replay(
            dir.path(),
            &hub.url(),
            &token,
            &flows,
            &snapshot.display().to_string(),
        );
        if let Some(mode) = mode {
            cmd.args(["--allow-localhost", mode]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "collector failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (totals, _) = common::summary(&hub.url(), &tenant).await;
        assert_eq!(
            (
                totals.allowed_count,
                totals.blocked_count,
                totals.discrepancies.enforcement_gap
            ),
            (allowed, blocked, blocked),
            "--allow-localhost {mode:?}"
        );
    }
}

#[test]
fn bad_arguments_are_named() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_policyhub-collector"))
            .args(args)
            .env_remove("POLICYHUB_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(&[
        "--hub-url",
        "http://127.0.0.1:1",
        "--source",
        "file",
        "--snapshot",
        "/nonexistent.yaml",
        "--file",
        "x",
        "--token",
        "t",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert!(e.contains("/nonexistent.yaml"), "{e}");
    let e = run(&["--hub-url", "http://127.0.0.1:1", "--flush-interval", "5d"]);
    assert!(e.contains("unknown unit"), "{e}");
    let e = run(&[
        "--hub-url",
        "http://127.0.0.1:1",
        "--allow-localhost",
        "never",
    ]);
    assert!(
        e.contains("--allow-localhost") && e.contains("policy"),
        "{e}"
    );
    let e = run(&[
        "--hub-url",
        "http://127.0.0.1:1",
        "--source",
        "file",
        "--snapshot",
        "/dev/null",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    assert!(
        e.contains("no cluster token") || e.contains("--file"),
        "{e}"
    );
}
