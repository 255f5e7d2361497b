//! Autogen: rules written for Pods also applied to the pod controllers that embed a Pod
//! template, as Kyverno generates them (`autogen-<rule>` and `autogen-cronjob-<rule>`).

use serde_json::{json, Value};

use crate::model::{MatchResources, Policy, Rule};

/// The annotation that lists the controllers to generate rules for (`none` disables it).
pub const CONTROLLERS_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// Controllers whose Pod template is at `spec.template`.
pub const TEMPLATE_CONTROLLERS: [&str; 6] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];

/// Where the Pod lives in each controller kind, for `images` and the like.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        k if TEMPLATE_CONTROLLERS.contains(&k) => Some(&["spec", "template", "spec"]),
        _ => None,
    }
}

fn is_pod(kind: &str) -> bool {
    matches!(kind, "Pod" | "v1/Pod" | "core/v1/Pod" | "/v1/Pod")
}

/// Whether the policy's rules allow autogen at all (Kyverno's `CanAutoGen`): no rule may select
/// by name, selector or annotations, nor mix Pod with other kinds; some rule must match Pods.
fn can_autogen(policy: &Policy) -> bool {
    let mut needed = false;
    for rule in &policy.spec.rules {
        let blocks = std::iter::once(&rule.match_resources).chain(rule.exclude.iter());
        for block in blocks {
            for d in block.descriptions() {
                if d.name.is_some()
                    || !d.names.is_empty()
                    || d.selector.is_some()
                    || d.annotations.is_some()
                    || (d.kinds.len() > 1 && d.kinds.iter().any(|k| is_pod(k)))
                {
                    return false;
                }
                needed |= d.kinds.iter().any(|k| is_pod(k));
            }
        }
    }
    needed
}

/// The policy's rules followed by the generated ones.
pub fn compute_rules(policy: &Policy) -> Vec<Rule> {
    let mut out: Vec<Rule> = policy
        .spec
        .rules
        .iter()
        .filter(|r| !r.name.starts_with("autogen-"))
        .cloned()
        .collect();
    if !can_autogen(policy) {
        return out;
    }
    let controllers: Vec<String> = match policy.metadata.annotations.get(CONTROLLERS_ANNOTATION) {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => TEMPLATE_CONTROLLERS
            .iter()
            .chain(std::iter::once(&"CronJob"))
            .map(|s| s.to_string())
            .collect(),
    };
    if controllers.iter().any(|c| c == "none") {
        return out;
    }
    let template: Vec<String> = controllers
        .iter()
        .filter(|c| TEMPLATE_CONTROLLERS.contains(&c.as_str()))
        .cloned()
        .collect();
    let cronjob = controllers.iter().any(|c| c == "CronJob");
    let mut generated = Vec::new();
    for rule in &out {
        if !applies_to_pods(rule) {
            continue;
        }
        if !template.is_empty() {
            if let Some(r) = generate(rule, &template, false) {
                generated.push(r);
            }
        }
        if cronjob {
            if let Some(r) = generate(rule, &["CronJob".to_string()], true) {
                generated.push(r);
            }
        }
    }
    out.extend(generated);
    out
}

/// Kyverno generates controller variants of validate, mutate and verifyImages rules (not of
/// generate rules) that select Pods.
fn applies_to_pods(rule: &Rule) -> bool {
    if rule.validate.is_none() && rule.mutate.is_none() && rule.verify_images.is_none() {
        return false;
    }
    let mk = rule.match_resources.kinds();
    if !mk.iter().any(|k| is_pod(k)) {
        return false;
    }
    let ek = rule
        .exclude
        .as_ref()
        .map(MatchResources::kinds)
        .unwrap_or_default();
    ek.is_empty() || ek.iter().any(|k| is_pod(k))
}

fn replace_kinds(m: &mut MatchResources, kinds: &[String]) {
    let descs = m
        .any
        .iter_mut()
        .chain(m.all.iter_mut())
        .filter_map(|f| f.resources.as_mut())
        .chain(m.resources.iter_mut());
    for d in descs {
        if d.kinds.iter().any(|k| is_pod(k)) {
            d.kinds = kinds.to_vec();
        }
    }
}

fn wrap(pattern: &Value, cronjob: bool) -> Value {
    let pod = json!({"spec": {"template": pattern}});
    if cronjob {
        json!({"spec": {"jobTemplate": pod}})
    } else {
        pod
    }
}

fn generate(rule: &Rule, kinds: &[String], cronjob: bool) -> Option<Rule> {
    let mut r = rule.clone();
    r.name = if cronjob {
        format!("autogen-cronjob-{}", rule.name)
    } else {
        format!("autogen-{}", rule.name)
    };
    replace_kinds(&mut r.match_resources, kinds);
    if let Some(e) = r.exclude.as_mut() {
        replace_kinds(e, kinds);
    }
    // Rules this evaluator does not run only need their name and kinds: what they select.
    let Some(v) = r.validate.as_mut() else {
        return Some(r);
    };
    if let Some(p) = v.pattern.as_mut() {
        *p = wrap(p, cronjob);
    }
    if let Some(ps) = v.any_pattern.as_mut() {
        for p in ps.iter_mut() {
            *p = wrap(p, cronjob);
        }
    }
    // Shift every reference to the Pod into the template, as Kyverno does on the rule's text.
    let (spec, meta) = if cronjob {
        (
            "spec.jobTemplate.spec.template.spec",
            "spec.jobTemplate.spec.template.metadata",
        )
    } else {
        ("spec.template.spec", "spec.template.metadata")
    };
    let text = serde_json::to_string(&r).ok()?;
    let mut text = text
        .replace("request.object.spec", &format!("request.object.{spec}"))
        .replace(
            "request.oldObject.spec",
            &format!("request.oldObject.{spec}"),
        );
    text = text
        .replace("request.object.metadata", &format!("request.object.{meta}"))
        .replace(
            "request.oldObject.metadata",
            &format!("request.oldObject.{meta}"),
        );
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(annotations: Value, kinds: Value) -> Policy {
        Policy::from_value(
            &json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "p", "annotations": annotations},
                "spec": {"rules": [{
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": kinds}}]},
                    "preconditions": {"all": [{"key": "{{ request.object.metadata.name }}", "operator": "Equals", "value": "x"}]},
                    "validate": {"pattern": {"spec": {"hostNetwork": false}}}
                }]}
            }),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn generates_controllers_and_cronjob() {
        let rules = compute_rules(&policy(json!({}), json!(["Pod"])));
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r", "autogen-r", "autogen-cronjob-r"]);
        let v = rules[1].validate.as_ref().unwrap();
        assert_eq!(
            v.pattern,
            Some(json!({"spec": {"template": {"spec": {"hostNetwork": false}}}}))
        );
        assert!(rules[1].match_kinds().contains(&"Deployment"));
        let pre = serde_json::to_string(&rules[2].preconditions).unwrap();
        assert!(
            pre.contains("request.object.spec.jobTemplate.spec.template.metadata.name"),
            "{pre}"
        );
    }

    #[test]
    fn annotation_limits_or_disables() {
        let rules = compute_rules(&policy(
            json!({CONTROLLERS_ANNOTATION: "Deployment"}),
            json!(["Pod"]),
        ));
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].match_kinds(), ["Deployment"]);
        let rules = compute_rules(&policy(
            json!({CONTROLLERS_ANNOTATION: "none"}),
            json!(["Pod"]),
        ));
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn mixed_kinds_disable_autogen() {
        assert_eq!(
            compute_rules(&policy(json!({}), json!(["Pod", "Service"]))).len(),
            1
        );
        assert_eq!(
            compute_rules(&policy(json!({}), json!(["Service"]))).len(),
            1
        );
    }
}
