//! The dry-run: a resource that follows every rule must be admitted, and for each rule a
//! resource that breaks only it must be denied by it, in the embedded Kyverno evaluator.

use kyverno::{Request, RuleStatus};
use serde::Serialize;
use serde_json::{json, Value};

use crate::analyze::{Analysis, Rule};
use crate::generate::rule_name;

/// One rule's dry-run.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCheck {
    pub rule: String,
    /// The violating resource was denied by this rule.
    pub denies_violation: bool,
    /// What the evaluator answered for the violating resource.
    pub got: String,
}

/// The dry-run of a generated policy.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The compliant resources were admitted by every rule.
    pub admits_compliant: bool,
    /// Why not, when they were not.
    pub compliant_failures: Vec<String>,
    pub rules: Vec<RuleCheck>,
}

impl DryRun {
    /// Whether the policy may be offered.
    pub fn passed(&self) -> bool {
        self.admits_compliant && self.rules.iter().all(|r| r.denies_violation)
    }
}

/// Runs `policy` (from [`crate::generate`]) on synthesised resources.
pub fn dry_run(policy: &Value, analysis: &Analysis) -> Result<DryRun, kyverno::Error> {
    let compiled = kyverno::runner::load_policy(policy, "generated policy")?;
    let rules: Vec<&Rule> = analysis.rules.iter().map(|(_, r)| r).collect();
    let (pod, deployment) = (compliant_pod(&rules), compliant_deployment(&rules));
    let mut compliant_failures = Vec::new();
    for resource in [&pod, &deployment] {
        for r in compiled.evaluate(resource, &Request::default()) {
            if r.status != RuleStatus::Pass && r.status != RuleStatus::Skip {
                compliant_failures.push(format!("{}: {} {}", r.rule, r.status, r.message));
            }
        }
    }
    let checks = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let name = rule_name(i, rule);
            let violating = violate(rule, &pod, &deployment);
            let responses = compiled.evaluate(&violating, &Request::default());
            let mine: Vec<_> = responses
                .iter()
                .filter(|r| r.rule == name || r.rule.ends_with(&format!("-{name}")))
                .collect();
            RuleCheck {
                denies_violation: !mine.is_empty()
                    && mine.iter().all(|r| r.status == RuleStatus::Fail),
                got: mine
                    .iter()
                    .map(|r| format!("{} {}", r.status, r.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                rule: name,
            }
        })
        .collect();
    Ok(DryRun {
        admits_compliant: compliant_failures.is_empty(),
        compliant_failures,
        rules: checks,
    })
}

fn container(rules: &[&Rule]) -> Value {
    let registry = rules.iter().find_map(|r| match r {
        Rule::RequireRegistry { prefix } => Some(prefix.as_str()),
        _ => None,
    });
    let image = format!(
        "{}/app:1.0.0",
        registry.unwrap_or("registry.example.com/team")
    );
    json!({
        "name": "app",
        "image": image,
        "resources": {
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {"privileged": false, "allowPrivilegeEscalation": false},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
    })
}

fn metadata(rules: &[&Rule], name: &str) -> Value {
    let mut labels = serde_json::Map::new();
    let mut annotations = serde_json::Map::new();
    for r in rules {
        match r {
            Rule::RequireLabel { key } => {
                labels.insert(key.clone(), json!("example"));
            }
            Rule::RequireAnnotation { key } => {
                annotations.insert(key.clone(), json!("example"));
            }
            _ => {}
        }
    }
    json!({"name": name, "namespace": "default", "labels": labels, "annotations": annotations})
}

fn pod_spec(rules: &[&Rule]) -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [container(rules)],
        "volumes": [{"name": "data", "emptyDir": {}}],
    })
}

fn compliant_pod(rules: &[&Rule]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata(rules, "compliant"), "spec": pod_spec(rules)})
}

fn compliant_deployment(rules: &[&Rule]) -> Value {
    let min = rules
        .iter()
        .find_map(|r| match r {
            Rule::MinReplicas { min } => Some(*min),
            _ => None,
        })
        .unwrap_or(1);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(rules, "compliant"),
        "spec": {
            "replicas": min,
            "selector": {"matchLabels": {"app": "compliant"}},
            "template": {"metadata": metadata(rules, "compliant"), "spec": pod_spec(rules)},
        },
    })
}

/// The compliant resource broken in exactly the way `rule` forbids.
fn violate(rule: &Rule, pod: &Value, deployment: &Value) -> Value {
    let mut v = if matches!(rule, Rule::MinReplicas { .. }) {
        deployment.clone()
    } else {
        pod.clone()
    };
    v["metadata"]["name"] = json!("violating");
    // The first container, on the Pod (replica rules use the Deployment, which has none).
    fn first(v: &mut Value) -> &mut Value {
        &mut v["spec"]["containers"][0]
    }
    match rule {
        Rule::RequireLabel { key } => {
            if let Some(m) = v["metadata"]["labels"].as_object_mut() {
                m.remove(key);
            }
        }
        Rule::RequireAnnotation { key } => {
            if let Some(m) = v["metadata"]["annotations"].as_object_mut() {
                m.remove(key);
            }
        }
        Rule::DenyLatestTag => {
            first(&mut v)["image"] = json!("registry.example.com/team/app:latest")
        }
        Rule::RequireRegistry { .. } => {
            first(&mut v)["image"] = json!("elsewhere.example.org/app:1.0.0")
        }
        Rule::RequireLimit { resource } => {
            if let Some(m) = first(&mut v)["resources"]["limits"].as_object_mut() {
                m.remove(resource);
            }
        }
        Rule::RequireRequest { resource } => {
            if let Some(m) = first(&mut v)["resources"]["requests"].as_object_mut() {
                m.remove(resource);
            }
        }
        Rule::DenyPrivileged => first(&mut v)["securityContext"]["privileged"] = json!(true),
        Rule::DenyHostNamespace { namespace } => {
            v["spec"][format!("host{namespace}")] = json!(true);
        }
        Rule::DenyHostPath => {
            v["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/var/run"}}]);
        }
        Rule::RequireRunAsNonRoot => v["spec"]["securityContext"]["runAsNonRoot"] = json!(false),
        Rule::RequireProbe { probe } => {
            if let Some(m) = first(&mut v).as_object_mut() {
                m.remove(&format!("{probe}Probe"));
            }
        }
        Rule::MinReplicas { min } => v["spec"]["replicas"] = json!(min.saturating_sub(1)),
    }
    v
}
