//! The `policyhub` binary end to end, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policyhub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_policyhub"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run policyhub")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn connectivity_lists_the_example_paths() {
    let o = policyhub(&["connectivity", "-f", "examples/shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let line = |src: &str, dst: &str| {
        text.lines()
            .find(|l| l.starts_with(src) && l.contains(dst))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(
        line("shop/web[Deployment]", "shop/api[Deployment]").as_deref(),
        Some("TCP 9000")
    );
    assert_eq!(
        line("shop/api[Deployment]", "shop/db[StatefulSet]").as_deref(),
        Some("TCP 5432")
    );
    // The admin policy keeps other teams away from the database; web has no path to it.
    assert!(line("monitoring/prometheus[Deployment]", "shop/db[StatefulSet]").is_none());
    assert!(line("shop/web[Deployment]", "shop/db[StatefulSet]").is_none());

    let o = policyhub(&["connectivity", "-f", "examples/shop", "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["ports"] == "TCP 5432"));
}

/// `policyhub eval -f examples/shop --from .. --to .. --port .. -o json [extra]`.
fn eval_json(from: &str, to: &str, port: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "eval",
        "-f",
        "examples/shop",
        "--from",
        from,
        "--to",
        to,
        "--port",
        port,
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    policyhub(&args)
}

#[test]
fn eval_explains_in_json() {
    let o = eval_json("monitoring/prometheus-1", "shop/db-1", "5432", &[]);
    assert!(o.status.success());
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["verdict"], "BLOCKED");
    assert_eq!(
        d["ingress"]["denied_by"][0]["policy"]["name"],
        "protect-shop-data"
    );
    assert_eq!(d["ingress"]["denied_by"][0]["rule"], "deny-other-teams");
}

#[test]
fn eval_follows_the_allow_localhost_mode() {
    let eval = |extra: &[&str]| eval_json("host", "shop/db-1", "5432", extra);
    let o = eval(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["verdict"], "ALLOWED");
    assert_eq!(d["ingress"]["implicit_allow"], "LOCAL_HOST");
    let o = eval(&["--allow-localhost", "policy"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["verdict"], "BLOCKED");
    let o = eval(&["--allow-localhost", "auto"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["verdict"], "ALLOWED");
    let o = eval(&["--allow-localhost", "never"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("always") && err.contains("policy"), "{err}");
}

#[test]
fn eval_rejects_unknown_endpoints_clearly() {
    let o = policyhub(&[
        "eval",
        "-f",
        "examples/shop",
        "--from",
        "shop/nope",
        "--to",
        "shop/db-1",
        "--port",
        "5432",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no pod \"shop/nope\""));
}

#[test]
fn conformance_ends_with_the_count_line() {
    let o = policyhub(&["conformance", "netpol", "crates/netpol/tests/cilium"]);
    assert!(o.status.success());
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    let (passed, failed) = last.split_once(" passed, ").expect("closing line");
    assert!(passed.parse::<usize>().unwrap() >= 120);
    assert_eq!(failed, "0 failed");
}

#[test]
fn segment_generate_then_verify() {
    let dir = std::env::temp_dir().join(format!("policyhub-segment-{}", std::process::id()));
    let catalog = "examples/pmoves/services.yaml";
    let out = dir.to_string_lossy().to_string();
    let o = policyhub(&[
        "segment", "generate", catalog, "--mode", "service", "--out", &out,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("kustomization.yaml").exists());
    assert!(dir.join("network-policies/postgres-policy.yaml").exists());
    let o = policyhub(&[
        "segment",
        "verify",
        catalog,
        &format!("{out}/network-policies"),
        "-o",
        "json",
    ]);
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["edges_allowed"], report["edges_total"]);
    assert_eq!(report["over_permission"].as_array().unwrap().len(), 0);
    // A catalog error names the file and field.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "services:\n  db: {tier: data, ports: [99999]}\n").unwrap();
    let o = policyhub(&["segment", "compose", &bad.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("services.db.ports[0]"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_prepares_a_week_of_validation_data() {
    let dir = std::env::temp_dir().join(format!("policyhub-demo-{}", std::process::id()));
    let o = policyhub(&[
        "demo",
        "--no-serve",
        "--flows",
        "20000",
        "--data-dir",
        &dir.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let number = |label: &str| -> u64 {
        let before = text.split(label).next().unwrap_or_default();
        before
            .rsplit([' ', ','])
            .find(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        number(" allowed") > 0 && number(" blocked") > 0 && number(" enforcement gaps") > 0,
        "{text}"
    );
    assert!(dir.join("hub.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kyverno test` over a directory mixing what the evaluator runs, what it cannot (a
/// ValidatingPolicy, a mutate rule) and a test file that cannot be read: every unsupported
/// result is reported with its reason and the run fails; the other files still run.
#[test]
fn kyverno_test_never_counts_what_it_did_not_evaluate() {
    let dir = "crates/cli/tests/fixtures/kyverno-mixed";
    let o = policyhub(&["kyverno", "test", dir]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ValidatingPolicy no-host-network-cel: this policy kind is not supported"),
        "{text}"
    );
    assert!(text.contains("mutate is not supported"), "{text}");
    assert!(text.contains("missing-policy.yaml"), "{text}");
    assert_eq!(
        text.lines().last(),
        Some("3 passed, 0 failed, 2 unsupported, 1 test files not run"),
        "{text}"
    );

    let unsupported = format!("{dir}/unsupported");
    let o = policyhub(&["kyverno", "test", &unsupported]);
    assert_eq!(o.status.code(), Some(1));
    let o = policyhub(&["kyverno", "test", &unsupported, "--allow-unsupported"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("0 passed, 0 failed, 2 unsupported (allowed)")
    );
}

#[test]
fn migrate_applies_the_schema_once_and_again_finds_nothing_to_do() {
    let dir = std::env::temp_dir().join(format!("policyhub-migrate-{}", std::process::id()));
    for _ in 0..2 {
        let o = policyhub(&["migrate", "--data-dir", &dir.to_string_lossy()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(stdout(&o).trim(), "database schema up to date (Sqlite)");
    }
    assert!(dir.join("hub.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_exports_a_replay_for_a_collector_and_seeds_a_database_once() {
    let dir = std::env::temp_dir().join(format!("policyhub-export-{}", std::process::id()));
    let url = format!("sqlite://{}", dir.join("hub.db").display());
    let export = |to: &str| {
        let out = dir.join(to);
        let o = policyhub(&[
            "demo",
            "--no-serve",
            "--flows",
            "2000",
            "--database-url",
            &url,
            "--export",
            &out.to_string_lossy(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    std::fs::create_dir_all(&dir).unwrap();
    let first = export("first");
    let flows = std::fs::read_to_string(first.join("flows.jsonl")).unwrap();
    assert!(
        flows.lines().count() >= 2000,
        "{} lines",
        flows.lines().count()
    );
    assert!(std::fs::read_to_string(first.join("token"))
        .unwrap()
        .starts_with("phc_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(first.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the token is readable by others: {mode:o}"
        );
    }
    // The snapshot is what a collector's --snapshot reads: the engine accepts it.
    let snapshot = first.join("snapshot.yaml");
    let o = policyhub(&["connectivity", "-f", &snapshot.to_string_lossy()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("default/"), "{}", stdout(&o));
    // Seeded before: a new token, no flows to replay again.
    let second = export("second");
    assert_eq!(
        std::fs::metadata(second.join("flows.jsonl")).unwrap().len(),
        0
    );
    assert_ne!(
        std::fs::read(first.join("token")).unwrap(),
        std::fs::read(second.join("token")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `count` seeded flows for examples/shop, written to `dir/flows.jsonl`.
fn synth_shop_flows(dir: &Path, count: u64) -> PathBuf {
    let flows = dir.join("flows.jsonl");
    let o = policyhub(&[
        "flows",
        "synth",
        "--snapshot",
        "examples/shop",
        "--count",
        &count.to_string(),
        "--seed",
        "3",
        "--out",
        &flows.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    flows
}

#[test]
fn recommend_writes_checked_suggestions() {
    let dir = std::env::temp_dir().join(format!("policyhub-recommend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flows = synth_shop_flows(&dir, 5000);
    let out = dir.join("out");
    let o = policyhub(&[
        "recommend",
        "--snapshot",
        "examples/shop",
        "--flows",
        &flows.to_string_lossy(),
        "--min-confidence",
        "0",
        "-o",
        "json",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let recs = report["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty(), "{report}");
    for r in recs {
        assert_eq!(r["impact"]["observedEdgesNewlyBlocked"], 0);
    }
    // The snapshot's own manifests reach the rewrites: an unused rule comes with its diff.
    assert!(
        recs.iter()
            .any(|r| r["type"] == "UNUSED_RULE" && r["diff"].is_string()),
        "{report}"
    );
    // One file per suggestion, each a manifest the evaluator reads back.
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert_eq!(files.len(), recs.len());
    let o = policyhub(&[
        "connectivity",
        "-f",
        "examples/shop",
        "-f",
        &files[0].to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("report.json").exists());
    let o = policyhub(&[
        "recommend",
        "--snapshot",
        "examples/shop",
        "--flows",
        &flows.to_string_lossy(),
        "-o",
        "dot",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pack_list_show_and_test() {
    let o = policyhub(&["pack", "list", "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let packs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let slugs: Vec<&str> = packs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    for slug in [
        "microservices-baseline",
        "database-tier-isolation",
        "api-gateway-patterns",
        "observability-stack",
    ] {
        assert!(slugs.contains(&slug), "{slug} missing from {slugs:?}");
    }

    let o = policyhub(&["pack", "show", "database-tier-isolation"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("database-egress"));

    let o = policyhub(&["pack", "test"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains(" 0 failed test(s)"), "{}", stdout(&o));
}

#[test]
fn pack_render_applies_parameters_and_names_what_is_wrong() {
    let o = policyhub(&[
        "pack",
        "render",
        "microservices-baseline",
        "--param",
        "namespaces=[shop, payments]",
        "-o",
        "yaml",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert_eq!(text.matches("name: default-deny-all").count(), 2);
    assert!(text.contains("namespace: payments"));
    // The output is what netpol reads.
    let file = std::env::temp_dir().join(format!("policyhub-pack-{}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let o = policyhub(&[
        "eval",
        "-f",
        "examples/shop/cluster.yaml",
        "-f",
        &file.to_string_lossy(),
        "--from",
        "shop/web-1",
        "--to",
        "shop/api-1",
        "--port",
        "9000",
    ]);
    let _ = std::fs::remove_file(&file);
    assert!(stdout(&o).contains("BLOCKED"), "{}", stdout(&o));

    let o = policyhub(&[
        "pack",
        "render",
        "microservices-baseline",
        "--param",
        "namespaces=Shop",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pack microservices-baseline") && err.contains("/namespaces"),
        "{err}"
    );

    let o = policyhub(&["pack", "render", "no-such-pack"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known: "));
}

#[test]
fn pack_preview_reports_blocked_flows_and_coverage() {
    let dir = std::env::temp_dir().join(format!("policyhub-pack-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flows = synth_shop_flows(&dir, 3000);
    let o = policyhub(&[
        "pack",
        "preview",
        "microservices-baseline",
        "--snapshot",
        "examples/shop",
        "--flows",
        &flows.to_string_lossy(),
        "--param",
        "namespaces=[shop, monitoring]",
        "-o",
        "json",
    ]);
    // The CIS baseline is named `default`, like the shop's: applying it replaces that one.
    let cis = policyhub(&[
        "pack",
        "preview",
        "cis-kubernetes-network",
        "--snapshot",
        "examples/shop",
        "--flows",
        &flows.to_string_lossy(),
        "-o",
        "json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let cis: serde_json::Value = serde_json::from_slice(&cis.stdout).unwrap();
    assert_eq!(
        cis["replaced"],
        serde_json::json!(["BaselineAdminNetworkPolicy default"])
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["policies"], 4);
    let blocked = p["blockedEdges"].as_u64().unwrap();
    assert!(blocked > 0, "{p:#}");
    assert!(p["topBlocked"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["source"].as_str().unwrap().starts_with("monitoring/")
            || e["destination"]
                .as_str()
                .unwrap()
                .starts_with("monitoring/")));
    // Prometheus was governed already (the baseline admin policy); its flows were not.
    let share = |when: &str| p[when]["flowShare"].as_f64().unwrap();
    assert!(share("after") > share("before"), "{p:#}");
    assert_eq!(
        p["after"]["workloadsGoverned"],
        p["before"]["workloadsGoverned"]
    );
}

const WIDEN: &str = "crates/cli/tests/fixtures/diff/web-to-db.yaml";

/// `policyhub diff --base examples/shop [base..] --target examples/shop [target..] [extra..]`.
fn shop_diff(base: &[&str], target: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["diff", "--base", "examples/shop"];
    for b in base {
        args.extend(["--base", b]);
    }
    args.extend(["--target", "examples/shop"]);
    for t in target {
        args.extend(["--target", t]);
    }
    args.extend_from_slice(extra);
    policyhub(&args)
}

fn json_rows(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn diff_of_a_cluster_with_itself_is_empty() {
    let o = policyhub(&["diff", "-f", "examples/shop", "-f", "examples/shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "no differences\n");
    let o = shop_diff(&[], &[], &["-o", "json", "--fail-on-added"]);
    assert_eq!(json_rows(&o), serde_json::json!([]));
}

#[test]
fn diff_lists_an_added_path_and_fails_on_it_when_asked() {
    let o = shop_diff(&[], &[WIDEN], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.starts_with("added"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
    assert_eq!(
        row.as_deref(),
        Some("added shop/web[Deployment] shop/db[StatefulSet] No Connections TCP 5432")
    );
    assert!(text.ends_with("differences: 1 (added 1, removed 0, changed 0)\n"));

    let o = shop_diff(&[], &[WIDEN], &["--fail-on-added", "-o", "csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "DIFF,SOURCE,DESTINATION,BEFORE,AFTER,NOTE\n\
         added,shop/web[Deployment],shop/db[StatefulSet],No Connections,TCP 5432,\n"
    );
    // The other way round the path is removed: nothing was added.
    let rows = json_rows(&shop_diff(
        &[WIDEN],
        &[],
        &["--fail-on-added", "-o", "json"],
    ));
    assert_eq!(rows[0]["diffType"], "removed");
    assert_eq!(rows[0]["before"], "TCP 5432");
    for format in ["md", "dot", "yaml"] {
        let o = shop_diff(&[], &[WIDEN], &["-o", format]);
        assert!(o.status.success(), "{format}");
        assert!(stdout(&o).contains("5432"), "{format}");
    }
}

#[test]
fn diff_names_the_side_file_document_and_field_of_bad_input() {
    let o = shop_diff(&[], &["crates/cli/tests/fixtures/diff/bad.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "target cluster: crates/cli/tests/fixtures/diff/bad.yaml: document 1 \
             (NetworkPolicy bad-range): spec.ingress[0].ports[0].endPort"
        ),
        "{err}"
    );
    let o = policyhub(&[
        "diff",
        "-f",
        "crates/cli/tests/fixtures/diff/missing",
        "-f",
        "examples/shop",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("base cluster: "));
    let o = policyhub(&["diff", "-f", "examples/shop"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exactly two paths"));
}

#[test]
fn conformance_runs_the_diff_ingress_and_exposure_corpora() {
    let o = policyhub(&[
        "conformance",
        "netpol",
        "../shared/corpus/netpol/cases-diff",
        "../shared/corpus/netpol/cases-ingress",
        "../shared/corpus/netpol/cases-exposure",
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    // 4,856 diff entries, 346 ingress-controller report entries, 1,389 exposure entries.
    assert_eq!(last, "6591 passed, 0 failed");
}

#[test]
fn exposure_lists_unprotected_directions_and_representative_peers() {
    let o = policyhub(&["exposure", "-f", "examples/shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    let row = |workload: &str, dir: &str, peer: &str| {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.starts_with(&format!("{workload} {dir} {peer} ")))
    };
    assert_eq!(
        row(
            "kube-system/coredns[Deployment]",
            "ingress",
            "entire-cluster"
        )
        .as_deref(),
        Some(
            "kube-system/coredns[Deployment] ingress entire-cluster All Connections not protected"
        )
    );
    assert_eq!(
        row(
            "shop/api[Deployment]",
            "ingress",
            "[namespace with {team=platform}]/[all pods]"
        )
        .as_deref(),
        Some("shop/api[Deployment] ingress [namespace with {team=platform}]/[all pods] TCP 9090")
    );
    let report = json_rows(&policyhub(&[
        "exposure",
        "-f",
        "examples/shop",
        "-o",
        "json",
    ]));
    assert!(report["unprotected"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["workload"]["name"] == "coredns" && u["direction"] == "INGRESS"));
    let o = policyhub(&["exposure", "-f", "examples/shop", "-o", "csv"]);
    assert!(stdout(&o).starts_with("WORKLOAD,DIRECTION,EXPOSED TO,CONNECTIONS,NOTE\n"));
    let o = policyhub(&["exposure", "-f", "examples/shop", "-o", "dot"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Synthesised flows end in the current hour unless `--start` says otherwise, so the
/// README's walkthrough lands in a dashboard's recent range.
#[test]
fn synth_dates_flows_to_end_in_the_current_hour() {
    let times = |extra: &[&str]| {
        let mut args = vec![
            "flows",
            "synth",
            "--snapshot",
            "examples/shop",
            "--count",
            "50",
        ];
        args.extend_from_slice(extra);
        let o = policyhub(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
            .lines()
            .filter_map(|l| l.split("\"time\":\"").nth(1).map(|t| t[..13].to_string()))
            .collect::<Vec<_>>()
    };
    let this_hour = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now / 3600 * 3600).to_string()
    };
    // The same flows as starting at the current hour (once more if the hour turned).
    let same = (0..2).any(|_| {
        let start = this_hour();
        times(&["--hours", "1"]) == times(&["--hours", "1", "--start", &start])
    });
    assert!(same);
    let fixed = times(&["--hours", "1", "--start", "2026-01-02T00:00:00Z"]);
    assert!(fixed.iter().all(|t| t == "2026-01-02T00"), "{fixed:?}");
}

#[test]
fn pattern_generate_writes_a_policy_that_passed_its_dry_run() {
    let dir = std::env::temp_dir().join(format!("policyhub-pattern-{}", std::process::id()));
    let o = policyhub(&[
        "pattern",
        "generate",
        "--file",
        "examples/patterns/workload-baseline.yaml",
        "--out",
        &dir.to_string_lossy(),
    ]);
    let text = stdout(&o);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("analysis: 4 rule(s) from 5 statement(s)"),
        "{text}"
    );
    assert!(
        text.contains("skipped \"Prefer small base images.\""),
        "{text}"
    );
    assert!(
        text.contains("dry-run: compliant resources admitted"),
        "{text}"
    );
    let policy = std::fs::read_to_string(dir.join("workload-baseline.yaml")).unwrap();
    // The saved policy is one the Kyverno evaluator loads.
    let o = policyhub(&[
        "kyverno",
        "check",
        &dir.join("workload-baseline.yaml").to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}\n{policy}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Output piped into a reader that stops early ends the command quietly, not with a panic.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_policyhub"))
        .args([
            "flows",
            "synth",
            "--snapshot",
            "examples/shop",
            "--count",
            "200000",
        ])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    // Nothing on standard error: no panic, no "Broken pipe" error.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
