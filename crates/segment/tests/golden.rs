//! Golden outputs for the PMOVES catalog (../shared/corpus/pmoves/services.yaml) in both
//! modes, and the verification numbers. Re-bless with `UPDATE_EXPECT=1 cargo test`.

use std::path::{Path, PathBuf};

use segment::generate::generate;
use segment::verify::verify;
use segment::{Catalog, Format, Mode};

fn pmoves() -> Catalog {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pmoves/services.yaml");
    Catalog::parse(
        &std::fs::read_to_string(path).unwrap(),
        "services.yaml",
        false,
    )
    .unwrap()
}

fn check_golden(dir: &str, mode: Mode, format: Format) -> Vec<serde_json::Value> {
    let out = generate(&pmoves(), mode, format).unwrap();
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let _ = std::fs::remove_dir_all(&root);
        for (path, content) in &out.files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
    }
    let mut mismatched = Vec::new();
    for (path, content) in &out.files {
        match std::fs::read_to_string(root.join(path)) {
            Ok(want) if want == *content => {}
            _ => mismatched.push(path.clone()),
        }
    }
    assert!(
        mismatched.is_empty(),
        "{dir}: output differs from golden files (UPDATE_EXPECT=1 to bless): {mismatched:?}"
    );
    out.policies
}

#[test]
fn pmoves_tier_mode() {
    let policies = check_golden("pmoves-tier-k8s", Mode::Tier, Format::Kubernetes);
    assert_eq!(policies.len(), 5, "one policy per tier");
    let report = verify(&pmoves(), &policies).unwrap();
    assert_eq!(report.edges_allowed, report.edges_total);
    assert!(report.edges_total >= 80);
    // Tier mode leaves over-permission: e.g. any application service reaches postgres.
    assert!(report
        .over_permission
        .iter()
        .any(|o| o.src == "langextract" && o.dst == "postgres"));
    assert!(report
        .compliance
        .iter()
        .any(|c| c.control == "PCI DSS 1.3.1" && !c.pass));
}

#[test]
fn pmoves_service_mode() {
    for (dir, format) in [
        ("pmoves-service-k8s", Format::Kubernetes),
        ("pmoves-service-cilium", Format::Cilium),
    ] {
        let policies = check_golden(dir, Mode::Service, format);
        let report = verify(&pmoves(), &policies).unwrap();
        assert_eq!(report.edges_allowed, report.edges_total, "{dir}");
        assert!(
            report.over_permission.is_empty(),
            "{dir}: {:?}",
            report.over_permission
        );
        assert!(
            report.compliance.iter().all(|c| c.pass),
            "{dir}: {:?}",
            report.compliance
        );
    }
}

#[test]
fn removing_a_policy_is_caught() {
    let out = generate(&pmoves(), Mode::Service, Format::Kubernetes).unwrap();
    let policies: Vec<_> = out
        .policies
        .into_iter()
        .filter(|p| p["metadata"]["name"] != "postgres-policy")
        .collect();
    let report = verify(&pmoves(), &policies).unwrap();
    // postgres is no longer isolated: everything may reach it.
    assert!(report.over_permission.iter().any(|o| o.dst == "postgres"));
    assert!(report
        .compliance
        .iter()
        .any(|c| c.control == "CIS Kubernetes 5.3.2" && !c.pass));
    // And a policy that allows too little fails the documented edges.
    let out = generate(&pmoves(), Mode::Service, Format::Kubernetes).unwrap();
    let mut policies = out.policies;
    for p in &mut policies {
        if p["metadata"]["name"] == "postgres-policy" {
            p["spec"]["ingress"] = serde_json::json!([]);
        }
    }
    let report = verify(&pmoves(), &policies).unwrap();
    assert!(report.edges_allowed < report.edges_total);
    assert!(report.edges.iter().any(|e| !e.allowed
        && e.dst == "postgres"
        && e.reason.as_deref().is_some_and(|r| r.contains("isolated"))));
}
