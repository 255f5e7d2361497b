//! The offline pipeline on a set of patterns: what the analyzer finds in common phrasings,
//! and that every generated policy passes its dry-run (admits the compliant resources,
//! denies each violation by the right rule).

use patterns::{analyze, dry_run, generate, Pattern, Rule};

fn pattern(id: &str, rules: &[&str]) -> Pattern {
    Pattern {
        id: id.into(),
        version: 1,
        description: format!("{id} (test pattern)"),
        rules: rules.iter().map(|s| s.to_string()).collect(),
        rationale: None,
        created_by: None,
    }
}

fn label(key: &str) -> Rule {
    Rule::RequireLabel { key: key.into() }
}

#[test]
fn common_phrasings_become_rules_that_pass_their_dry_run() {
    let cases: Vec<(&str, Vec<&str>, Vec<Rule>)> = vec![
        (
            "team-label",
            vec!["Every workload must have the label `team`."],
            vec![label("team")],
        ),
        (
            "owner-label",
            vec!["Pods must be labelled with app.kubernetes.io/owner"],
            vec![label("app.kubernetes.io/owner")],
        ),
        (
            "cost-center",
            vec!["Label cost-center is required on all workloads"],
            vec![label("cost-center")],
        ),
        (
            "contact",
            vec!["Workloads must carry the annotation example.com/contact"],
            vec![Rule::RequireAnnotation {
                key: "example.com/contact".into(),
            }],
        ),
        (
            "no-latest",
            vec!["Containers must not use the latest tag"],
            vec![Rule::DenyLatestTag],
        ),
        (
            "pinned",
            vec!["Images must use an explicit tag"],
            vec![Rule::DenyLatestTag],
        ),
        (
            "registry",
            vec!["Images must come from registry.corp.example/"],
            vec![Rule::RequireRegistry {
                prefix: "registry.corp.example".into(),
            }],
        ),
        (
            "limits",
            vec!["Containers must set resource limits"],
            vec![
                Rule::RequireLimit {
                    resource: "cpu".into(),
                },
                Rule::RequireLimit {
                    resource: "memory".into(),
                },
            ],
        ),
        (
            "memory-requests",
            vec!["Memory requests must be set"],
            vec![Rule::RequireRequest {
                resource: "memory".into(),
            }],
        ),
        (
            "no-privileged",
            vec!["Containers must never run privileged"],
            vec![Rule::DenyPrivileged],
        ),
        (
            "no-host-network",
            vec!["Pods must not use the host network"],
            vec![Rule::DenyHostNamespace {
                namespace: "Network".into(),
            }],
        ),
        (
            "no-host-pid",
            vec!["Workloads cannot share the host PID namespace"],
            vec![Rule::DenyHostNamespace {
                namespace: "PID".into(),
            }],
        ),
        (
            "no-host-path",
            vec!["hostPath volumes are not allowed"],
            vec![Rule::DenyHostPath],
        ),
        (
            "non-root",
            vec!["Containers must not run as root"],
            vec![Rule::RequireRunAsNonRoot],
        ),
        (
            "readiness",
            vec!["Services must define a readiness probe"],
            vec![Rule::RequireProbe {
                probe: "readiness".into(),
            }],
        ),
        (
            "ha",
            vec!["Production deployments need at least 2 replicas"],
            vec![Rule::MinReplicas { min: 2 }],
        ),
        (
            "baseline",
            vec![
                "Every workload must have the label team",
                "Containers must not use the latest tag",
                "Containers must set memory limits",
                "Pods must not use the host network",
                "Prefer small images",
            ],
            vec![
                label("team"),
                Rule::DenyLatestTag,
                Rule::RequireLimit {
                    resource: "memory".into(),
                },
                Rule::DenyHostNamespace {
                    namespace: "Network".into(),
                },
            ],
        ),
    ];
    for (id, statements, want) in cases {
        let p = pattern(id, &statements);
        let analysis = analyze(&p);
        let got: Vec<Rule> = analysis.rules.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(got, want, "{id}");
        let policy = generate(&p, &analysis).expect("a policy");
        assert_eq!(
            policy["metadata"]["annotations"]["policyhub.io/pattern"],
            id
        );
        assert_eq!(policy["spec"]["validationFailureAction"], "Enforce");
        let run = dry_run(&policy, &analysis).unwrap();
        assert!(run.passed(), "{id}: {run:#?}\n{policy:#}");
    }
}

#[test]
fn statements_without_a_deny_rule_yield_no_policy() {
    let p = pattern(
        "advice",
        &["Prefer managed databases", "Document every service"],
    );
    let analysis = analyze(&p);
    assert!(analysis.rules.is_empty());
    assert_eq!(analysis.skipped.len(), 2);
    assert!(generate(&p, &analysis).is_none());
}

#[test]
fn a_pattern_file_is_checked() {
    let ok = Pattern::from_str(
        "id: team-label\ndescription: teams own workloads\nrules: [\"Pods must have the label team\"]\n",
        "p.yaml",
    )
    .unwrap();
    assert_eq!(ok.version, 1);
    let err = Pattern::from_str("id: Team\ndescription: x\nrules: [a]\n", "p.yaml").unwrap_err();
    assert!(err.to_string().contains("p.yaml: id:"), "{err}");
    let err =
        Pattern::from_str("id: t\ndescription: x\nrules: [a]\nextra: 1\n", "p.yaml").unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}
