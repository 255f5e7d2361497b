//! Evaluation of a policy's validate rules against one resource.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::autogen::{compute_rules, pod_spec_path};
use crate::conditions;
use crate::error::Result;
use crate::matching::{self, ResourceInfo};
use crate::model::{Conditions, ContextEntry, Deny, ForEach, Policy, Rule, Validation};
use crate::pattern::{match_pattern, Mismatch};
use crate::vars::{EvalContext, Mode};

/// The result of one rule on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The rule selected the resource but did not apply (preconditions, conditional anchors).
    Skip,
    /// The rule could not be evaluated.
    Error,
    /// The resource violates a rule of a policy whose results are not scored (annotation
    /// `policies.kyverno.io/scored: "false"`): Kyverno's reports turn that `fail` into `warn`.
    Warn,
}

impl fmt::Display for RuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleStatus::Pass => "pass",
            RuleStatus::Fail => "fail",
            RuleStatus::Skip => "skip",
            RuleStatus::Error => "error",
            RuleStatus::Warn => "warn",
        })
    }
}

/// One rule's response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResponse {
    /// Rule name (generated rules are `autogen-<rule>` / `autogen-cronjob-<rule>`).
    pub rule: String,
    /// Outcome.
    pub status: RuleStatus,
    /// Message, with variables substituted.
    pub message: String,
    /// Set when the rule selected the resource but this evaluator cannot run it (status
    /// `error`): the result was never evaluated and must not count as a pass or a fail.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsupported: bool,
}

/// The admission request around a resource (what the Kyverno CLI fakes for offline runs).
#[derive(Debug, Clone)]
pub struct Request {
    /// `CREATE` unless a values file says otherwise.
    pub operation: String,
    /// The previous object, for `UPDATE` / `DELETE`.
    pub old_object: Option<Value>,
    /// Labels of the resource's namespace (from a values file's `namespaceSelector`).
    pub namespace_labels: BTreeMap<String, String>,
    /// Extra variables (`request.operation`, custom names, context overrides) set in the context.
    pub values: Map<String, Value>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            operation: "CREATE".to_string(),
            old_object: None,
            namespace_labels: BTreeMap::new(),
            values: Map::new(),
        }
    }
}

/// A policy with its autogen rules computed once.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The policy as written.
    pub policy: Policy,
    /// Its rules followed by the generated ones.
    pub rules: Vec<Rule>,
}

impl CompiledPolicy {
    /// Computes the autogen rules.
    pub fn new(policy: Policy) -> Self {
        let rules = compute_rules(&policy);
        CompiledPolicy { policy, rules }
    }

    /// Policy name.
    pub fn name(&self) -> &str {
        &self.policy.metadata.name
    }

    /// Whether a failure counts as `fail` (else Kyverno's reports say `warn`).
    pub fn scored(&self) -> bool {
        self.policy
            .metadata
            .annotations
            .get("policies.kyverno.io/scored")
            .is_none_or(|v| v != "false")
    }

    /// What this evaluator cannot decide offline for this policy, one line per rule concerned:
    /// user-info conditions (treated as not matching, like the Kyverno CLI's empty user),
    /// context entries that need a cluster or registry, and unsupported validation kinds.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for rule in &self.policy.spec.rules {
            let blocks = std::iter::once(&rule.match_resources).chain(rule.exclude.iter());
            let user_info = blocks.into_iter().any(|m| {
                let top =
                    !m.subjects.is_empty() || !m.roles.is_empty() || !m.cluster_roles.is_empty();
                top || m.any.iter().chain(m.all.iter()).any(|f| {
                    !f.subjects.is_empty() || !f.roles.is_empty() || !f.cluster_roles.is_empty()
                })
            });
            if user_info {
                out.push(format!(
                    "rule {}: user-info conditions (subjects, roles, clusterRoles) cannot be evaluated offline; they never match",
                    rule.name
                ));
            }
            if rule.context.iter().any(|c| c.variable.is_none()) {
                out.push(format!(
                    "rule {}: context entries other than `variable` are not supported offline; the rule reports an error",
                    rule.name
                ));
            }
            if let Some(feature) = rule.unsupported() {
                out.push(format!(
                    "rule {}: {feature} is not supported; resources it selects get an unsupported error result",
                    rule.name
                ));
            }
        }
        out
    }

    /// Evaluates every rule that selects the resource. Rules that do not select it produce no
    /// response (as in Kyverno); a selecting rule this evaluator cannot run
    /// ([`Rule::unsupported`]) gives an `error` response marked `unsupported`.
    pub fn evaluate(&self, resource: &Value, request: &Request) -> Vec<RuleResponse> {
        let mut operation = request.operation.clone();
        if let Some(op) = request
            .values
            .get("request.operation")
            .and_then(Value::as_str)
        {
            operation = op.to_string();
        }
        let mut info = ResourceInfo::from_object(resource, &operation);
        info.namespace_labels = request.namespace_labels.clone();
        if self.policy.is_namespaced() {
            let pns = self
                .policy
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default");
            if info.namespace != pns {
                return Vec::new();
            }
        }
        let mut out = Vec::new();
        for rule in &self.rules {
            if !matching::matches(&rule.match_resources, &info) {
                continue;
            }
            if rule
                .exclude
                .as_ref()
                .is_some_and(|e| matching::excluded(e, &info))
            {
                continue;
            }
            let validate = match (rule.unsupported(), &rule.validate) {
                (None, Some(validate)) => validate,
                (feature, _) => {
                    out.push(RuleResponse {
                        rule: rule.name.clone(),
                        status: RuleStatus::Error,
                        message: format!(
                            "{} is not supported by this evaluator: the rule was not evaluated",
                            feature.unwrap_or("a rule without validate")
                        ),
                        unsupported: true,
                    });
                    continue;
                }
            };
            let ctx = base_context(resource, request, &info, &operation);
            out.push(evaluate_rule(rule, validate, ctx, &request.values));
        }
        out
    }
}

fn base_context(resource: &Value, request: &Request, info: &ResourceInfo, op: &str) -> EvalContext {
    let mut ctx = EvalContext::new();
    ctx.set(
        "request",
        json!({
            "object": resource,
            "oldObject": request.old_object.clone().unwrap_or(Value::Null),
            "operation": op,
            "namespace": info.namespace,
            "name": info.name,
            "kind": {"group": info.group, "version": info.version, "kind": info.kind},
        }),
    );
    ctx.set("images", images(resource, &info.kind));
    ctx.set("serviceAccountName", json!(""));
    ctx.set("serviceAccountNamespace", json!(""));
    for (k, v) in &request.values {
        ctx.set(k, v.clone());
    }
    ctx
}

/// `images.<containers|initContainers|ephemeralContainers>.<name>` for Pods and controllers.
fn images(resource: &Value, kind: &str) -> Value {
    let Some(path) = pod_spec_path(kind) else {
        return json!({});
    };
    let mut spec = resource;
    for p in path {
        match spec.get(p) {
            Some(v) => spec = v,
            None => return json!({}),
        }
    }
    let mut out = Map::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(items) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        let mut m = Map::new();
        for c in items {
            let (Some(name), Some(image)) = (
                c.get("name").and_then(Value::as_str),
                c.get("image").and_then(Value::as_str),
            ) else {
                continue;
            };
            m.insert(name.to_string(), image_info(image));
        }
        out.insert(list.to_string(), Value::Object(m));
    }
    Value::Object(out)
}

/// Splits an image reference into registry, path, name, tag and digest.
pub fn image_info(image: &str) -> Value {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, d.to_string()),
        None => (image, String::new()),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (rest, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], rest[slash + i + 1..].to_string()),
        None => (rest, String::new()),
    };
    let (registry, path) = match rest.split_once('/') {
        Some((first, p)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), p.to_string())
        }
        _ => ("docker.io".to_string(), rest.to_string()),
    };
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
    let tag = if tag.is_empty() && digest.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    let mut reference = format!("{registry}/{path}");
    if !tag.is_empty() {
        reference.push(':');
        reference.push_str(&tag);
    }
    if !digest.is_empty() {
        reference.push('@');
        reference.push_str(&digest);
    }
    json!({"registry": registry, "path": path, "name": name, "tag": tag, "digest": digest,
           "reference": reference, "referenceWithTag": format!("{registry}/{path}:{tag}")})
}

/// Outcome of a validator (`None` when it had nothing to check).
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
    Error(String),
}

/// Whether the CLI's values stand in for a context entry: a value named like the entry, or
/// under it (`roles-dictionary.data.allowed-roles` for the entry `roles-dictionary`).
fn mocked(overrides: &Map<String, Value>, name: &str) -> bool {
    overrides.keys().any(|k| {
        k == name
            || k.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn load_context(
    entries: &[ContextEntry],
    ctx: &mut EvalContext,
    overrides: &Map<String, Value>,
) -> Result<(), String> {
    for entry in entries {
        if mocked(overrides, &entry.name) {
            continue;
        }
        let Some(var) = &entry.variable else {
            let kind = if entry.api_call.is_some() {
                "apiCall"
            } else if entry.config_map.is_some() {
                "configMap"
            } else if entry.image_registry.is_some() {
                "imageRegistry"
            } else if entry.global_reference.is_some() {
                "globalReference"
            } else {
                "unknown"
            };
            return Err(format!(
                "context entry {}: {kind} is not supported offline",
                entry.name
            ));
        };
        let computed: Result<Value> = (|| {
            let value = match &var.value {
                Some(v) => Some(ctx.substitute(v, Mode::Strict)?),
                None => None,
            };
            match (&var.jmes_path, value) {
                (Some(path), Some(v)) => {
                    let path = ctx.substitute_str(path, Mode::Strict)?;
                    crate::jmes::search(&crate::value::sprint(&path), &v)
                }
                (Some(path), None) => {
                    let path = ctx.substitute_str(path, Mode::Strict)?;
                    ctx.query(&crate::value::sprint(&path))
                }
                (None, Some(v)) => Ok(v),
                (None, None) => Ok(Value::Null),
            }
        })();
        let value = match (computed, &var.default) {
            (Ok(Value::Null), Some(d)) | (Err(_), Some(d)) => ctx
                .substitute(d, Mode::Strict)
                .map_err(|e| format!("failed to load context {}: default: {e}", entry.name))?,
            (Ok(v), _) => v,
            (Err(e), None) => {
                return Err(format!("failed to load context {}: {e}", entry.name));
            }
        };
        ctx.set(&entry.name, value);
    }
    Ok(())
}

fn check_preconditions(pre: Option<&Conditions>, ctx: &EvalContext) -> Option<Outcome> {
    let pre = pre?;
    match conditions::evaluate(pre, ctx) {
        Ok((true, _)) => None,
        Ok((false, msg)) => Some(Outcome::Skip(format!(
            "preconditions not met{}",
            msg.map(|m| format!("; {m}")).unwrap_or_default()
        ))),
        Err(e) => Some(Outcome::Error(format!(
            "failed to evaluate preconditions: {e}"
        ))),
    }
}

fn evaluate_rule(
    rule: &Rule,
    validate: &Validation,
    mut ctx: EvalContext,
    overrides: &Map<String, Value>,
) -> RuleResponse {
    let respond = |status: RuleStatus, message: String| RuleResponse {
        rule: rule.name.clone(),
        status,
        message,
        unsupported: false,
    };
    if let Err(e) = load_context(&rule.context, &mut ctx, overrides) {
        return respond(RuleStatus::Error, e);
    }
    if let Some(o) = check_preconditions(rule.preconditions.as_ref(), &ctx) {
        return to_response(&rule.name, o);
    }
    let message = validate
        .message
        .as_deref()
        .map(|m| ctx.substitute_message(m))
        .unwrap_or_default();
    let step = Step {
        deny: validate.deny.as_ref(),
        pattern: validate.pattern.as_ref(),
        any_pattern: validate.any_pattern.as_deref(),
        foreach: validate.foreach.as_deref(),
        overrides,
    };
    let subject = ctx.query("request.object").unwrap_or(Value::Null);
    let outcome = step.run(&rule.name, &ctx, &subject, 0, &message);
    match outcome {
        Some(o) => to_response(&rule.name, o),
        None => respond(
            RuleStatus::Error,
            "invalid validation rule: pattern, anyPattern, deny or foreach expected".into(),
        ),
    }
}

fn to_response(rule: &str, o: Outcome) -> RuleResponse {
    let (status, message) = match o {
        Outcome::Pass(m) => (RuleStatus::Pass, m),
        Outcome::Fail(m) => (RuleStatus::Fail, m),
        Outcome::Skip(m) => (RuleStatus::Skip, m),
        Outcome::Error(m) => (RuleStatus::Error, m),
    };
    RuleResponse {
        rule: rule.to_string(),
        status,
        message,
        unsupported: false,
    }
}

/// One level of validation: the rule itself or a foreach entry.
struct Step<'a> {
    deny: Option<&'a Deny>,
    pattern: Option<&'a Value>,
    any_pattern: Option<&'a [Value]>,
    foreach: Option<&'a [ForEach]>,
    /// The CLI's values, which also stand in for context entries inside foreach.
    overrides: &'a Map<String, Value>,
}

impl Step<'_> {
    fn run(
        &self,
        rule: &str,
        ctx: &EvalContext,
        subject: &Value,
        nesting: usize,
        message: &str,
    ) -> Option<Outcome> {
        if let Some(deny) = self.deny {
            let denied = match &deny.conditions {
                None => Ok((true, None)),
                Some(c) => conditions::evaluate(c, ctx),
            };
            return Some(match denied {
                Ok((true, _)) => Outcome::Fail(format!("validation error: {message}")),
                Ok((false, _)) => Outcome::Pass(format!("validation rule '{rule}' passed.")),
                Err(e) => Outcome::Error(format!("failed to check deny conditions: {e}")),
            });
        }
        if self.pattern.is_some() || self.any_pattern.is_some() {
            return Some(self.patterns(rule, ctx, subject, message));
        }
        if let Some(list) = self.foreach {
            return Some(foreach(rule, list, ctx, nesting, message, self.overrides));
        }
        None
    }

    fn patterns(&self, rule: &str, ctx: &EvalContext, subject: &Value, message: &str) -> Outcome {
        if let Some(p) = self.pattern {
            let p = match ctx.substitute(p, Mode::Strict) {
                Ok(p) => p,
                Err(e) => return Outcome::Error(format!("variable substitution failed: {e}")),
            };
            return match match_pattern(subject, &p) {
                Ok(()) => Outcome::Pass(format!("validation rule '{rule}' passed.")),
                Err(Mismatch::Skip(m)) => Outcome::Skip(m),
                Err(Mismatch::Fail { path, .. }) => Outcome::Fail(format!(
                    "validation error: {}rule {rule} failed at path {path}",
                    sentence(message)
                )),
                Err(Mismatch::Error(m)) => Outcome::Error(format!(
                    "validation error: {}rule {rule} execution error: {m}",
                    sentence(message)
                )),
            };
        }
        let patterns = self.any_pattern.unwrap_or_default();
        let mut failed = Vec::new();
        let mut skipped = 0usize;
        for (i, p) in patterns.iter().enumerate() {
            let p = match ctx.substitute(p, Mode::Strict) {
                Ok(p) => p,
                Err(e) => return Outcome::Error(format!("variable substitution failed: {e}")),
            };
            match match_pattern(subject, &p) {
                Ok(()) => {
                    return Outcome::Pass(format!(
                        "validation rule '{rule}' anyPattern[{i}] passed."
                    ))
                }
                Err(Mismatch::Skip(_)) => skipped += 1,
                Err(Mismatch::Fail { path, .. }) => {
                    failed.push(format!("rule {rule}[{i}] failed at path {path}"))
                }
                Err(Mismatch::Error(m)) => failed.push(format!("rule {rule}[{i}] failed: {m}")),
            }
        }
        if failed.is_empty() && skipped > 0 {
            return Outcome::Skip(format!(
                "rule {rule} skipped: all anyPattern entries were skipped"
            ));
        }
        if failed.is_empty() {
            return Outcome::Pass(String::new());
        }
        Outcome::Fail(format!(
            "validation error: {}{}",
            sentence(message),
            failed.join(" ")
        ))
    }
}

/// The message as a sentence followed by a space (`msg. `), or nothing when empty.
fn sentence(message: &str) -> String {
    match message {
        "" => String::new(),
        m if m.ends_with('.') => format!("{m} "),
        m => format!("{m}. "),
    }
}

fn foreach(
    rule: &str,
    list: &[ForEach],
    ctx: &EvalContext,
    nesting: usize,
    message: &str,
    overrides: &Map<String, Value>,
) -> Outcome {
    let mut applied = 0usize;
    for fe in list {
        let elements = match ctx.query(&fe.list) {
            Ok(Value::Array(items)) => items,
            Ok(other) => vec![other],
            Err(_) => continue,
        };
        let (outcome, count) =
            elements_outcome(rule, fe, &elements, ctx, nesting, message, overrides);
        if !matches!(outcome, Outcome::Pass(_)) {
            return outcome;
        }
        applied += count;
    }
    if applied == 0 {
        return Outcome::Skip("rule skipped".into());
    }
    Outcome::Pass("rule passed".into())
}

fn elements_outcome(
    rule: &str,
    fe: &ForEach,
    elements: &[Value],
    ctx: &EvalContext,
    nesting: usize,
    message: &str,
    overrides: &Map<String, Value>,
) -> (Outcome, usize) {
    let mut applied = 0usize;
    for (index, element) in elements.iter().enumerate() {
        if element.is_null() {
            continue;
        }
        let mut c = ctx.clone();
        c.set("element", element.clone());
        c.set("elementIndex", json!(index));
        c.set(&format!("element{nesting}"), element.clone());
        c.set(&format!("elementIndex{nesting}"), json!(index));
        let r = element_outcome(rule, fe, &mut c, element, nesting, message, overrides);
        match r {
            None | Some(Outcome::Skip(_)) => continue,
            Some(Outcome::Pass(_)) => applied += 1,
            Some(Outcome::Error(m)) => {
                if index + 1 < elements.len() {
                    continue;
                }
                return (Outcome::Error(format!("validation failure: {m}")), applied);
            }
            Some(Outcome::Fail(m)) => return (Outcome::Fail(m), applied),
        }
    }
    (Outcome::Pass(String::new()), applied)
}

fn element_outcome(
    rule: &str,
    fe: &ForEach,
    ctx: &mut EvalContext,
    element: &Value,
    nesting: usize,
    message: &str,
    overrides: &Map<String, Value>,
) -> Option<Outcome> {
    if let Err(e) = load_context(&fe.context, ctx, overrides) {
        return Some(Outcome::Error(e));
    }
    if let Some(o) = check_preconditions(fe.preconditions.as_ref(), ctx) {
        return Some(o);
    }
    let step = Step {
        deny: fe.deny.as_ref(),
        pattern: fe.pattern.as_ref(),
        any_pattern: fe.any_pattern.as_deref(),
        foreach: fe.foreach.as_deref(),
        overrides,
    };
    let message = ctx.substitute_message(message);
    // `elementScope: false` validates the whole resource instead of the element.
    let request_object;
    let subject = if fe.element_scope == Some(false) {
        request_object = ctx.query("request.object").unwrap_or(Value::Null);
        &request_object
    } else {
        element
    };
    step.run(rule, ctx, subject, nesting + 1, &message)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
