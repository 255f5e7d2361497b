//! Bad packs and bad parameters: each error names the pack and what is wrong, and a test
//! that expects the wrong verdict fails.

use std::collections::BTreeMap;

use packs::{render, run_tests, Error, Pack, Param};

const MANIFEST: &str = r#"
slug: tiny
name: Tiny
description: one policy
version: 0.1.0
tier: community
category: workload
parameters:
  schema:
    type: object
    required: [namespace]
    properties:
      namespace: {type: string, pattern: "^[a-z]+$"}
  defaults: {namespace: shop}
items:
- name: deny
  description: default deny
  kind: NetworkPolicy
  template: deny.yaml.j2
tests: [test.yaml]
"#;

const TEMPLATE: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: {{ namespace }}}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";

const TEST: &str = r#"
name: wrong on purpose
cluster: [cluster.yaml]
flows:
- {from: 10.9.9.9, to: shop/web, port: 80, expect: BLOCKED}
- {from: 10.9.9.9, to: shop/web, port: 81, expect: ALLOWED}
"#;

const CLUSTER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: [{name: web}]}\n";

fn pack(edit: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<Pack, Error> {
    let mut files: BTreeMap<String, String> = [
        ("pack.yaml", MANIFEST),
        ("deny.yaml.j2", TEMPLATE),
        ("test.yaml", TEST),
        ("cluster.yaml", CLUSTER),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    edit(&mut files);
    Pack::from_files("tiny", files)
}

#[test]
fn a_wrong_expectation_fails_the_test() {
    let results = run_tests(&pack(|_| {}).unwrap()).unwrap();
    assert_eq!(results[0].passed, 1);
    assert_eq!(results[0].failures.len(), 1);
    assert_eq!(results[0].failures[0].flow.port, 81);
}

#[test]
fn an_undefined_variable_names_the_template_line() {
    let p = pack(|f| {
        f.insert(
            "deny.yaml.j2".into(),
            TEMPLATE.replace("{{ namespace }}", "{{ namespcae }}"),
        );
    })
    .unwrap();
    let err = render(&p, &[]).unwrap_err().to_string();
    assert!(
        err.contains("pack tiny: item deny: template deny.yaml.j2 line 3"),
        "{err}"
    );
}

#[test]
fn parameters_are_checked_against_the_schema() {
    let p = pack(|_| {}).unwrap();
    let bad: Param = "namespace=Shop".parse().unwrap();
    let err = render(&p, &[bad]).unwrap_err();
    assert!(matches!(err, Error::Parameters { .. }), "{err}");
    assert!(err.to_string().contains("/namespace"), "{err}");
}

#[test]
fn a_rendered_document_netpol_refuses_is_an_error() {
    let p = pack(|f| {
        f.insert(
            "deny.yaml.j2".into(),
            TEMPLATE.replace("policyTypes: [Ingress]", "policyTypes: [Sideways]"),
        );
    })
    .unwrap();
    let err = render(&p, &[]).unwrap_err().to_string();
    assert!(err.contains("item deny: rendered document 1"), "{err}");
}

#[test]
fn the_manifest_is_strict() {
    let err = pack(|f| {
        f.insert("pack.yaml".into(), format!("{MANIFEST}colour: blue\n"));
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `colour`"), "{err}");

    let err = pack(|f| {
        f.insert(
            "pack.yaml".into(),
            MANIFEST.replace("tier: community", "tier: enterprise"),
        );
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("framework"), "{err}");

    let enterprise = MANIFEST.replace(
        "tier: community",
        "tier: enterprise\nframework: SOC2\nauditor: {name: A, certificationDate: \"2026-01-31\"}",
    )
    .replace(
        "  template: deny.yaml.j2\n",
        "  template: deny.yaml.j2\n  controls: [{id: CC6.1, requirement: r, implementation: i, evidence: e}]\n",
    );
    assert!(pack(|f| {
        f.insert("pack.yaml".into(), enterprise.clone());
    })
    .is_ok());
    let err = pack(|f| {
        f.insert("pack.yaml".into(), enterprise.replace("CC6.1", "6.1"));
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a SOC2 control id"), "{err}");

    let err = pack(|f| {
        f.insert(
            "pack.yaml".into(),
            MANIFEST.replace("version: 0.1.0", "version: one"),
        );
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("not semantic"), "{err}");

    let err = pack(|f| {
        f.remove("test.yaml");
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"test.yaml\""), "{err}");
}

/// The fuzz target's body ([`packs::fuzz_manifest`]) over truncations and byte flips of a
/// manifest: errors, never panics.
#[test]
fn damaged_manifests_are_errors_not_panics() {
    let bytes = MANIFEST.as_bytes();
    for n in (0..bytes.len()).step_by(7) {
        packs::fuzz_manifest(&bytes[..n]);
    }
    for i in (0..bytes.len()).step_by(5) {
        for b in [b':', b'{', b'-', b' ', b'\n', b'"', 0xff] {
            let mut v = bytes.to_vec();
            v[i] = b;
            packs::fuzz_manifest(&v);
        }
    }
}
