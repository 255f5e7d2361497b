//! The ClusterPolicy / Policy model (kyverno.io/v1 and v2beta1), restricted to what `validate`
//! rules need. Unknown fields are ignored so that real-world policies load; the fields read here
//! are typed, and a wrong shape is reported with its field path by [`Policy::from_value`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A Kyverno `ClusterPolicy` or namespaced `Policy`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `kyverno.io/v1` or `kyverno.io/v2beta1`.
    #[serde(default)]
    pub api_version: String,
    /// `ClusterPolicy` or `Policy`.
    pub kind: String,
    /// Name, namespace and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The rules.
    pub spec: Spec,
}

/// The subset of Kubernetes object metadata a policy needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace of a namespaced `Policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Annotations, such as `pod-policies.kyverno.io/autogen-controllers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Policy spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// `Audit` or `Enforce` (either case). Does not change a rule's result, only its consequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_failure_action: Option<FailureAction>,
    /// Whether the policy also applies to existing resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
}

/// What admission does with a failed validation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FailureAction {
    /// Report only.
    #[serde(alias = "audit")]
    Audit,
    /// Block the request.
    #[serde(alias = "enforce")]
    Enforce,
}

/// One rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Rule name, unique in the policy.
    #[serde(default)]
    pub name: String,
    /// Which resources the rule selects.
    #[serde(rename = "match", default)]
    pub match_resources: MatchResources,
    /// Which selected resources are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<MatchResources>,
    /// Variables computed before preconditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Conditions that must hold for the rule to apply (otherwise it is skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,
    /// The validation; rules without one (mutate, generate, verifyImages) are not evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validation>,
    /// A mutation (not evaluated: a rule that selects a resource reports it unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate: Option<Value>,
    /// A generation (not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Value>,
    /// Image verification (not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_images: Option<Value>,
}

/// `match` / `exclude` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// Matches when any filter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<ResourceFilter>,
    /// Matches when every filter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<ResourceFilter>,
    /// Legacy single filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,
    /// Legacy user-info: subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Value>,
    /// Legacy user-info: roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Legacy user-info: cluster roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<String>,
}

/// One entry of `any` / `all`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// Resource conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,
    /// User-info: subjects (not evaluable offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Value>,
    /// User-info: roles (not evaluable offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// User-info: cluster roles (not evaluable offline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<String>,
}

/// Conditions on the resource itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    /// `Kind`, `version/Kind`, `group/version/Kind`, with `*`/`?` wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Deprecated single name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Names, with wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces, with wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Annotations that must be present (values with wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Label selector on the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Label selector on the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Admission operations: CREATE, UPDATE, DELETE, CONNECT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact labels (Kyverno allows wildcards in keys and values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Label selector operator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SelectorOperator {
    /// Label value in the set.
    In,
    /// Label absent or value not in the set.
    NotIn,
    /// Label present.
    Exists,
    /// Label absent.
    DoesNotExist,
}

/// A `context` entry. Only `variable` can be evaluated offline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContextEntry {
    /// Variable name.
    pub name: String,
    /// A computed variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<VariableEntry>,
    /// API call (needs a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_call: Option<Value>,
    /// ConfigMap reference (needs a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<Value>,
    /// Image registry lookup (needs a registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry: Option<Value>,
    /// Global context reference (needs a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_reference: Option<Value>,
}

/// `context[].variable`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VariableEntry {
    /// A literal value (variables inside are substituted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A JMESPath applied to `value`, or to the whole context when there is no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
    /// Used when the result is null or cannot be computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// `preconditions` or `deny.conditions`: either a plain list (all must hold) or `any`/`all`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Conditions {
    /// Legacy form: every condition must hold.
    List(Vec<Condition>),
    /// `any` (at least one, when present) and `all` (every one).
    AnyAll {
        /// At least one must hold (when the list is present and non-empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        any: Option<Vec<Condition>>,
        /// Every one must hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        all: Option<Vec<Condition>>,
    },
}

/// One condition: `key operator value`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Left side (variables substituted).
    #[serde(default)]
    pub key: Value,
    /// The operator.
    pub operator: Operator,
    /// Right side (variables substituted).
    #[serde(default)]
    pub value: Value,
    /// Message reported when the condition decides the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Kyverno condition operators.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Operator {
    /// Equality (numbers, quantities, durations, wildcards).
    Equals,
    /// Deprecated alias of `Equals`.
    Equal,
    /// Negation of `Equals`.
    NotEquals,
    /// Deprecated alias of `NotEquals`.
    NotEqual,
    /// Deprecated: key (or every key element) is in value.
    In,
    /// At least one key element is in value.
    AnyIn,
    /// Every key element is in value.
    AllIn,
    /// Deprecated: negation of `In`.
    NotIn,
    /// At least one key element is not in value.
    AnyNotIn,
    /// No key element is in value.
    AllNotIn,
    /// `>` on numbers, quantities, durations, semver.
    GreaterThan,
    /// `>=`.
    GreaterThanOrEquals,
    /// `<`.
    LessThan,
    /// `<=`.
    LessThanOrEquals,
    /// Deprecated duration `>`.
    DurationGreaterThan,
    /// Deprecated duration `>=`.
    DurationGreaterThanOrEquals,
    /// Deprecated duration `<`.
    DurationLessThan,
    /// Deprecated duration `<=`.
    DurationLessThanOrEquals,
}

/// `validate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// Message (variables substituted) reported with the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Overlay pattern the resource must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,
    /// Alternative patterns; one must be satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_pattern: Option<Vec<Value>>,
    /// Deny when the conditions hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
    /// Per-element validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Vec<ForEach>>,
    /// Per-rule failure action (newer Kyverno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// CEL validation (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<Value>,
    /// Pod security standards validation (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<Value>,
    /// Manifest signature validation (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Value>,
}

/// `deny`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deny {
    /// The conditions; when they hold the resource is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
}

/// One `foreach` entry of a validate rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForEach {
    /// JMESPath (without braces) producing the list of elements.
    #[serde(default)]
    pub list: String,
    /// Variables computed per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Per-element preconditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,
    /// Pattern each element must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,
    /// Alternative patterns per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_pattern: Option<Vec<Value>>,
    /// Per-element deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
    /// Nested foreach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Vec<ForEach>>,
    /// Whether the element is the scope for patterns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_scope: Option<bool>,
}

impl Policy {
    /// Reads a policy from a JSON value, reporting a wrong shape with its field path.
    /// `origin` names the source (a file) in errors.
    pub fn from_value(value: &Value, origin: &str) -> Result<Policy> {
        let policy: Policy =
            serde_path_to_error::deserialize(value).map_err(|e| Error::Invalid {
                origin: origin.to_string(),
                what: "policy",
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        policy.check(origin)?;
        Ok(policy)
    }

    /// Whether this is a namespaced `Policy` (it then only applies in its own namespace).
    pub fn is_namespaced(&self) -> bool {
        self.kind == "Policy"
    }

    fn check(&self, origin: &str) -> Result<()> {
        let invalid = |field: String, message: &str| Error::Invalid {
            origin: origin.to_string(),
            what: "policy",
            field,
            message: message.to_string(),
        };
        if self.kind != "ClusterPolicy" && self.kind != "Policy" {
            return Err(invalid("kind".into(), "expected ClusterPolicy or Policy"));
        }
        if self.metadata.name.is_empty() {
            return Err(invalid("metadata.name".into(), "a policy needs a name"));
        }
        for (i, rule) in self.spec.rules.iter().enumerate() {
            if rule.name.is_empty() {
                return Err(invalid(
                    format!("spec.rules[{i}].name"),
                    "a rule needs a name",
                ));
            }
            if let Some(foreach) = rule.validate.as_ref().and_then(|v| v.foreach.as_ref()) {
                check_foreach(foreach, &format!("spec.rules[{i}].validate.foreach"))
                    .map_err(|(f, m)| invalid(f, m))?;
            }
        }
        Ok(())
    }
}

fn check_foreach(list: &[ForEach], at: &str) -> std::result::Result<(), (String, &'static str)> {
    for (j, fe) in list.iter().enumerate() {
        if fe.list.trim().is_empty() {
            return Err((format!("{at}[{j}].list"), "foreach needs a list expression"));
        }
        if let Some(nested) = &fe.foreach {
            check_foreach(nested, &format!("{at}[{j}].foreach"))?;
        }
    }
    Ok(())
}

impl Rule {
    /// Every kind named in `match` (any, all and the legacy form).
    pub fn match_kinds(&self) -> Vec<&str> {
        self.match_resources.kinds()
    }

    /// The part of this rule the evaluator cannot run, if any: `mutate`, `generate`,
    /// `verifyImages`, `validate.cel`, `validate.podSecurity` or `validate.manifests`.
    pub fn unsupported(&self) -> Option<&'static str> {
        match &self.validate {
            Some(v) => [
                ("validate.cel", v.cel.is_some()),
                ("validate.podSecurity", v.pod_security.is_some()),
                ("validate.manifests", v.manifests.is_some()),
            ]
            .into_iter()
            .find_map(|(name, set)| set.then_some(name)),
            None => Some(
                [
                    ("mutate", self.mutate.is_some()),
                    ("generate", self.generate.is_some()),
                    ("verifyImages", self.verify_images.is_some()),
                ]
                .into_iter()
                .find_map(|(name, set)| set.then_some(name))
                .unwrap_or("a rule without validate"),
            ),
        }
    }
}

impl MatchResources {
    /// Every kind named in this block.
    pub fn kinds(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let descs = self
            .any
            .iter()
            .chain(self.all.iter())
            .filter_map(|f| f.resources.as_ref())
            .chain(self.resources.iter());
        for d in descs {
            out.extend(d.kinds.iter().map(String::as_str));
        }
        out
    }

    /// All resource descriptions in this block.
    pub fn descriptions(&self) -> impl Iterator<Item = &ResourceDescription> {
        self.any
            .iter()
            .chain(self.all.iter())
            .filter_map(|f| f.resources.as_ref())
            .chain(self.resources.iter())
    }
}

impl Conditions {
    /// `(any, all)` lists; the legacy list form is `all`.
    pub fn any_all(&self) -> (Option<&[Condition]>, Option<&[Condition]>) {
        match self {
            Conditions::List(all) => (None, Some(all)),
            Conditions::AnyAll { any, all } => (any.as_deref(), all.as_deref()),
        }
    }
}
