//! The `policyhub-collector` binary replays a file of Hubble flows against a snapshot and
//! reports to a real hub: the hub ends up with exactly the counts an offline
//! `policyhub validate` of the same input gives.

mod common;

use std::path::Path;
use std::process::Command;

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
    let out = Command::new(env!("CARGO_BIN_EXE_policyhub-collector"))
        .args(["--source", "file", "--file"])
        .arg(&flows)
        .arg("--snapshot")
        .arg(format!(
            "{},{}",
            snapshot("cluster.yaml"),
            snapshot("policies.yaml")
        ))
        .args(["--hub-url", &hub.url(), "--token-file"])
        .arg(&token)
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--cluster",
            "shop",
            "--log-format",
            "text",
        ])
        .env_remove("NODE_NAME")
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
