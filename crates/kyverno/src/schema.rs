//! The shape of a `ClusterPolicy` / `Policy` document, checked before anything is evaluated.
//!
//! The rules are those of Kyverno's published CRD (kyverno.io/v1 `ClusterPolicy` and `Policy`:
//! field names, types, enums, required fields, the 63-character rule name) plus the checks
//! Kyverno's admission webhook makes on top of it (unique rule names, a `match` block, exactly
//! one kind of rule, exactly one validation method per `validate`). They are written here as
//! code, one function per object of the schema; [`check`] returns every violation with its
//! field path, such as `spec.rules[2].validate.pattern`, instead of stopping at the first.
//!
//! Unknown fields are violations, as with `kubectl apply`'s strict field validation, except
//! under `metadata` and in the free-form parts (patterns, conditions' keys and values, CEL,
//! `apiCall`), which the CRD leaves open.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// One way in which a document departs from the policy schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// Field path, such as `spec.rules[2].validate.pattern` (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The validation methods of a `validate` block; exactly one must be present.
pub const VALIDATION_METHODS: &[&str] = &[
    "pattern",
    "anyPattern",
    "deny",
    "foreach",
    "cel",
    "podSecurity",
    "manifests",
    "assert",
];

/// The kinds of rule; exactly one must be present.
pub const RULE_TYPES: &[&str] = &["validate", "mutate", "generate", "verifyImages"];

const API_VERSIONS: &[&str] = &["kyverno.io/v1", "kyverno.io/v2beta1"];
const KINDS: &[&str] = &["ClusterPolicy", "Policy"];
const FAILURE_ACTIONS_SPEC: &[&str] = &["Audit", "Enforce", "audit", "enforce"];
const FAILURE_ACTIONS: &[&str] = &["Audit", "Enforce"];
const FAILURE_POLICIES: &[&str] = &["Ignore", "Fail"];
const APPLY_RULES: &[&str] = &["All", "One"];
const OPERATIONS: &[&str] = &["CREATE", "CONNECT", "UPDATE", "DELETE"];
const SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];
const POD_SECURITY_LEVELS: &[&str] = &["privileged", "baseline", "restricted"];
const CONDITION_OPERATORS: &[&str] = &[
    "Equals",
    "Equal",
    "NotEquals",
    "NotEqual",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThan",
    "GreaterThanOrEquals",
    "LessThan",
    "LessThanOrEquals",
    "DurationGreaterThan",
    "DurationGreaterThanOrEquals",
    "DurationLessThan",
    "DurationLessThanOrEquals",
];
const RULE_NAME_MAX: usize = 63;

/// Checks a policy document against the ClusterPolicy / Policy schema and returns every
/// violation, in document order. An empty list means the document has the right shape.
pub fn check(doc: &Value) -> Vec<SchemaViolation> {
    let mut c = Checker::default();
    c.policy(doc);
    c.out
}

#[derive(Default)]
struct Checker {
    out: Vec<SchemaViolation>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

impl Checker {
    fn violation(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(SchemaViolation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, path: &str, want: &str, got: &Value) {
        self.violation(path, format!("expected {want}, found {}", type_name(got)));
    }

    /// `v` as an object whose fields are among `known` (`None` when it is not an object).
    fn object<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        known: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Value::Object(m) = v else {
            self.wrong_type(path, "object", v);
            return None;
        };
        for key in m.keys() {
            if !known.contains(&key.as_str()) {
                self.violation(join(path, key), "unknown field");
            }
        }
        Some(m)
    }

    fn required(&mut self, m: &Map<String, Value>, path: &str, field: &str) -> bool {
        if m.contains_key(field) {
            true
        } else {
            self.violation(join(path, field), "required field is missing");
            false
        }
    }

    /// Checks `m[field]`, when present, with `f`.
    fn field<'a>(
        &mut self,
        m: &'a Map<String, Value>,
        path: &str,
        field: &str,
        f: impl FnOnce(&mut Self, &'a Value, &str),
    ) {
        if let Some(v) = m.get(field) {
            f(self, v, &join(path, field));
        }
    }

    fn string(&mut self, v: &Value, path: &str) {
        if !v.is_string() {
            self.wrong_type(path, "string", v);
        }
    }

    fn boolean(&mut self, v: &Value, path: &str) {
        if !v.is_boolean() {
            self.wrong_type(path, "boolean", v);
        }
    }

    fn integer(&mut self, v: &Value, path: &str) {
        if !(v.is_i64() || v.is_u64()) {
            self.wrong_type(path, "integer", v);
        }
    }

    fn one_of(&mut self, v: &Value, path: &str, allowed: &[&str]) {
        match v.as_str() {
            Some(s) if allowed.contains(&s) => {}
            Some(s) => self.violation(
                path,
                format!("unsupported value {s:?}: expected one of {}", list(allowed)),
            ),
            None => self.wrong_type(path, "string", v),
        }
    }

    fn array<'a>(&mut self, v: &'a Value, path: &str) -> &'a [Value] {
        match v {
            Value::Array(items) => items,
            other => {
                self.wrong_type(path, "array", other);
                &[]
            }
        }
    }

    fn each(&mut self, v: &Value, path: &str, mut f: impl FnMut(&mut Self, &Value, &str)) {
        for (i, item) in self.array(v, path).iter().enumerate() {
            f(self, item, &format!("{path}[{i}]"));
        }
    }

    fn strings(&mut self, v: &Value, path: &str) {
        self.each(v, path, Self::string);
    }

    fn string_map(&mut self, v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, item) in m {
                    self.string(item, &join(path, k));
                }
            }
            other => self.wrong_type(path, "object", other),
        }
    }

    /// Exactly one of `names` is set in `m`: none is reported at `path`, several at each of
    /// their paths.
    fn exactly_one(&mut self, m: &Map<String, Value>, path: &str, names: &[&str], what: &str) {
        let present: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| m.get(*n).is_some_and(|v| !v.is_null()))
            .collect();
        match present.len() {
            0 => self.violation(path, format!("{what} needs one of {}", list(names))),
            1 => {}
            _ => {
                for name in &present {
                    let others: Vec<&str> = present.iter().copied().filter(|o| o != name).collect();
                    self.violation(
                        join(path, name),
                        format!(
                            "{what} allows only one of {}; also set: {}",
                            list(names),
                            list(&others)
                        ),
                    );
                }
            }
        }
    }

    fn policy(&mut self, doc: &Value) {
        let Some(m) = self.object(
            doc,
            "",
            &["apiVersion", "kind", "metadata", "spec", "status"],
        ) else {
            return;
        };
        if self.required(m, "", "apiVersion") {
            self.field(m, "", "apiVersion", |c, v, p| c.one_of(v, p, API_VERSIONS));
        }
        if self.required(m, "", "kind") {
            self.field(m, "", "kind", |c, v, p| c.one_of(v, p, KINDS));
        }
        if self.required(m, "", "metadata") {
            self.field(m, "", "metadata", Self::metadata);
        }
        if self.required(m, "", "spec") {
            self.field(m, "", "spec", Self::spec);
        }
    }

    fn metadata(&mut self, v: &Value, path: &str) {
        let Value::Object(m) = v else {
            self.wrong_type(path, "object", v);
            return;
        };
        if self.required(m, path, "name") {
            self.field(m, path, "name", |c, v, p| match v.as_str() {
                Some("") => c.violation(p, "must not be empty"),
                Some(_) => {}
                None => c.wrong_type(p, "string", v),
            });
        }
        self.field(m, path, "namespace", Self::string);
        self.field(m, path, "labels", Self::string_map);
        self.field(m, path, "annotations", Self::string_map);
    }

    fn spec(&mut self, v: &Value, path: &str) {
        let known = [
            "rules",
            "validationFailureAction",
            "validationFailureActionOverrides",
            "background",
            "admission",
            "applyRules",
            "emitWarning",
            "failurePolicy",
            "generateExisting",
            "generateExistingOnPolicyUpdate",
            "mutateExistingOnPolicyUpdate",
            "schemaValidation",
            "useServerSideApply",
            "webhookConfiguration",
            "webhookTimeoutSeconds",
        ];
        let Some(m) = self.object(v, path, &known) else {
            return;
        };
        self.field(m, path, "validationFailureAction", |c, v, p| {
            c.one_of(v, p, FAILURE_ACTIONS_SPEC)
        });
        self.field(m, path, "validationFailureActionOverrides", |c, v, p| {
            c.each(v, p, |c, v, p| {
                let known = ["action", "namespaces", "namespaceSelector"];
                if let Some(m) = c.object(v, p, &known) {
                    c.field(m, p, "action", |c, v, p| {
                        c.one_of(v, p, FAILURE_ACTIONS_SPEC)
                    });
                    c.field(m, p, "namespaces", Self::strings);
                    c.field(m, p, "namespaceSelector", Self::label_selector);
                }
            })
        });
        for flag in [
            "background",
            "admission",
            "emitWarning",
            "generateExisting",
            "generateExistingOnPolicyUpdate",
            "mutateExistingOnPolicyUpdate",
            "schemaValidation",
            "useServerSideApply",
        ] {
            self.field(m, path, flag, Self::boolean);
        }
        self.field(m, path, "applyRules", |c, v, p| c.one_of(v, p, APPLY_RULES));
        self.field(m, path, "failurePolicy", |c, v, p| {
            c.one_of(v, p, FAILURE_POLICIES)
        });
        self.field(m, path, "webhookTimeoutSeconds", Self::integer);
        self.field(m, path, "webhookConfiguration", |c, v, p| {
            let known = ["failurePolicy", "timeoutSeconds", "matchConditions"];
            if let Some(m) = c.object(v, p, &known) {
                c.field(m, p, "failurePolicy", |c, v, p| {
                    c.one_of(v, p, FAILURE_POLICIES)
                });
                c.field(m, p, "timeoutSeconds", Self::integer);
                c.field(m, p, "matchConditions", |c, v, p| {
                    c.array(v, p);
                });
            }
        });
        self.field(m, path, "rules", Self::rules);
    }

    fn rules(&mut self, v: &Value, path: &str) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, rule) in self.array(v, path).iter().enumerate() {
            let at = format!("{path}[{i}]");
            self.rule(rule, &at);
            if let Some(name) = rule.get("name").and_then(Value::as_str) {
                if let Some(first) = seen.get(name) {
                    self.violation(
                        join(&at, "name"),
                        format!("duplicate rule name {name:?} (also {path}[{first}].name)"),
                    );
                } else {
                    seen.insert(name, i);
                }
            }
        }
    }

    fn rule(&mut self, v: &Value, path: &str) {
        let known = [
            "name",
            "match",
            "exclude",
            "context",
            "preconditions",
            "celPreconditions",
            "validate",
            "mutate",
            "generate",
            "verifyImages",
            "imageExtractors",
            "skipBackgroundRequests",
            "reportProperties",
        ];
        let Some(m) = self.object(v, path, &known) else {
            return;
        };
        if self.required(m, path, "name") {
            self.field(m, path, "name", |c, v, p| match v.as_str() {
                Some("") => c.violation(p, "must not be empty"),
                Some(s) if s.chars().count() > RULE_NAME_MAX => {
                    c.violation(p, format!("longer than {RULE_NAME_MAX} characters"))
                }
                Some(_) => {}
                None => c.wrong_type(p, "string", v),
            });
        }
        if self.required(m, path, "match") {
            self.field(m, path, "match", |c, v, p| c.match_resources(v, p, true));
        }
        self.field(m, path, "exclude", |c, v, p| c.match_resources(v, p, false));
        self.field(m, path, "context", Self::context);
        self.field(m, path, "preconditions", Self::conditions);
        self.field(m, path, "celPreconditions", |c, v, p| {
            c.array(v, p);
        });
        self.field(m, path, "skipBackgroundRequests", Self::boolean);
        self.field(m, path, "reportProperties", Self::string_map);
        self.exactly_one(m, path, RULE_TYPES, "a rule");
        self.field(m, path, "validate", Self::validate);
        for open in ["mutate", "generate", "imageExtractors"] {
            self.field(m, path, open, |c, v, p| {
                if !v.is_object() {
                    c.wrong_type(p, "object", v);
                }
            });
        }
        self.field(m, path, "verifyImages", |c, v, p| {
            c.array(v, p);
        });
    }

    fn match_resources(&mut self, v: &Value, path: &str, must_select: bool) {
        let known = [
            "any",
            "all",
            "resources",
            "subjects",
            "roles",
            "clusterRoles",
        ];
        let Some(m) = self.object(v, path, &known) else {
            return;
        };
        for block in ["any", "all"] {
            self.field(m, path, block, |c, v, p| {
                c.each(v, p, Self::resource_filter)
            });
        }
        self.field(m, path, "resources", Self::resource_description);
        self.user_info(m, path);
        if m.contains_key("resources") && (m.contains_key("any") || m.contains_key("all")) {
            self.violation(join(path, "resources"), "cannot be combined with any / all");
        }
        if must_select && m.is_empty() {
            self.violation(
                path,
                "must select something: any, all, resources or user info",
            );
        }
    }

    fn resource_filter(&mut self, v: &Value, path: &str) {
        let known = ["resources", "subjects", "roles", "clusterRoles"];
        if let Some(m) = self.object(v, path, &known) {
            self.field(m, path, "resources", Self::resource_description);
            self.user_info(m, path);
        }
    }

    fn user_info(&mut self, m: &Map<String, Value>, path: &str) {
        self.field(m, path, "roles", Self::strings);
        self.field(m, path, "clusterRoles", Self::strings);
        self.field(m, path, "subjects", |c, v, p| {
            c.each(v, p, |c, v, p| {
                let known = ["kind", "name", "namespace", "apiGroup"];
                if let Some(m) = c.object(v, p, &known) {
                    for f in ["kind", "name"] {
                        if c.required(m, p, f) {
                            c.field(m, p, f, Self::string);
                        }
                    }
                    c.field(m, p, "namespace", Self::string);
                    c.field(m, p, "apiGroup", Self::string);
                }
            })
        });
    }

    fn resource_description(&mut self, v: &Value, path: &str) {
        let known = [
            "kinds",
            "name",
            "names",
            "namespaces",
            "annotations",
            "selector",
            "namespaceSelector",
            "operations",
        ];
        let Some(m) = self.object(v, path, &known) else {
            return;
        };
        self.field(m, path, "kinds", Self::strings);
        self.field(m, path, "name", Self::string);
        self.field(m, path, "names", Self::strings);
        self.field(m, path, "namespaces", Self::strings);
        self.field(m, path, "annotations", Self::string_map);
        self.field(m, path, "selector", Self::label_selector);
        self.field(m, path, "namespaceSelector", Self::label_selector);
        self.field(m, path, "operations", |c, v, p| {
            c.each(v, p, |c, v, p| c.one_of(v, p, OPERATIONS))
        });
    }

    fn label_selector(&mut self, v: &Value, path: &str) {
        let Some(m) = self.object(v, path, &["matchLabels", "matchExpressions"]) else {
            return;
        };
        self.field(m, path, "matchLabels", Self::string_map);
        self.field(m, path, "matchExpressions", |c, v, p| {
            c.each(v, p, |c, v, p| {
                if let Some(m) = c.object(v, p, &["key", "operator", "values"]) {
                    if c.required(m, p, "key") {
                        c.field(m, p, "key", Self::string);
                    }
                    if c.required(m, p, "operator") {
                        c.field(m, p, "operator", |c, v, p| {
                            c.one_of(v, p, SELECTOR_OPERATORS)
                        });
                    }
                    c.field(m, p, "values", Self::strings);
                }
            })
        });
    }

    fn context(&mut self, v: &Value, path: &str) {
        let sources = [
            "variable",
            "apiCall",
            "configMap",
            "imageRegistry",
            "globalReference",
        ];
        self.each(v, path, |c, v, p| {
            let mut known = vec!["name"];
            known.extend(sources);
            let Some(m) = c.object(v, p, &known) else {
                return;
            };
            if c.required(m, p, "name") {
                c.field(m, p, "name", Self::string);
            }
            c.exactly_one(m, p, &sources, "a context entry");
            c.field(m, p, "variable", |c, v, p| {
                if let Some(m) = c.object(v, p, &["value", "jmesPath", "default"]) {
                    c.field(m, p, "jmesPath", Self::string);
                }
            });
            for (source, key) in [
                ("configMap", "name"),
                ("imageRegistry", "reference"),
                ("globalReference", "name"),
            ] {
                c.field(m, p, source, |c, v, p| match v {
                    Value::Object(m) => {
                        if c.required(m, p, key) {
                            c.field(m, p, key, Self::string);
                        }
                    }
                    other => c.wrong_type(p, "object", other),
                });
            }
            c.field(m, p, "apiCall", |c, v, p| {
                if !v.is_object() {
                    c.wrong_type(p, "object", v);
                }
            });
        });
    }

    /// `preconditions` and `deny.conditions`: a list (every condition must hold) or
    /// `{any, all}`.
    fn conditions(&mut self, v: &Value, path: &str) {
        match v {
            Value::Array(_) => self.each(v, path, Self::condition),
            Value::Object(_) => {
                if let Some(m) = self.object(v, path, &["any", "all"]) {
                    for block in ["any", "all"] {
                        self.field(m, path, block, |c, v, p| c.each(v, p, Self::condition));
                    }
                }
            }
            other => self.wrong_type(path, "object or array", other),
        }
    }

    fn condition(&mut self, v: &Value, path: &str) {
        let Some(m) = self.object(v, path, &["key", "operator", "value", "message"]) else {
            return;
        };
        if self.required(m, path, "operator") {
            self.field(m, path, "operator", |c, v, p| {
                c.one_of(v, p, CONDITION_OPERATORS)
            });
        }
        self.field(m, path, "message", Self::string);
    }

    fn validate(&mut self, v: &Value, path: &str) {
        let mut known = vec![
            "message",
            "failureAction",
            "failureActionOverrides",
            "allowExistingViolations",
        ];
        known.extend(VALIDATION_METHODS);
        let Some(m) = self.object(v, path, &known) else {
            return;
        };
        self.field(m, path, "message", Self::string);
        self.field(m, path, "failureAction", |c, v, p| {
            c.one_of(v, p, FAILURE_ACTIONS)
        });
        self.field(m, path, "failureActionOverrides", |c, v, p| {
            c.array(v, p);
        });
        self.field(m, path, "allowExistingViolations", Self::boolean);
        self.exactly_one(m, path, VALIDATION_METHODS, "validate");
        self.patterns(m, path);
        self.field(m, path, "foreach", Self::foreach);
        self.field(m, path, "podSecurity", |c, v, p| {
            let known = ["level", "version", "exclude"];
            if let Some(m) = c.object(v, p, &known) {
                c.field(m, p, "level", |c, v, p| c.one_of(v, p, POD_SECURITY_LEVELS));
                c.field(m, p, "version", Self::string);
                c.field(m, p, "exclude", |c, v, p| {
                    c.array(v, p);
                });
            }
        });
        for open in ["cel", "manifests", "assert"] {
            self.field(m, path, open, |c, v, p| {
                if !v.is_object() {
                    c.wrong_type(p, "object", v);
                }
            });
        }
    }

    /// `pattern`, `anyPattern` and `deny`, shared by `validate` and its `foreach` entries.
    fn patterns(&mut self, m: &Map<String, Value>, path: &str) {
        self.field(m, path, "pattern", |c, v, p| {
            if !v.is_object() {
                c.wrong_type(p, "object", v);
            }
        });
        self.field(m, path, "anyPattern", |c, v, p| {
            if c.array(v, p).is_empty() && v.is_array() {
                c.violation(p, "must list at least one pattern");
            }
            c.each(v, p, |c, v, p| {
                if !v.is_object() {
                    c.wrong_type(p, "object", v);
                }
            });
        });
        self.field(m, path, "deny", |c, v, p| {
            if let Some(m) = c.object(v, p, &["conditions"]) {
                c.field(m, p, "conditions", Self::conditions);
            }
        });
    }

    fn foreach(&mut self, v: &Value, path: &str) {
        let known = [
            "list",
            "context",
            "preconditions",
            "pattern",
            "anyPattern",
            "deny",
            "foreach",
            "elementScope",
        ];
        self.each(v, path, |c, v, p| {
            let Some(m) = c.object(v, p, &known) else {
                return;
            };
            if c.required(m, p, "list") {
                c.field(m, p, "list", |c, v, p| match v.as_str() {
                    Some(s) if s.trim().is_empty() => c.violation(p, "must not be empty"),
                    Some(_) => {}
                    None => c.wrong_type(p, "string", v),
                });
            }
            c.field(m, p, "context", Self::context);
            c.field(m, p, "preconditions", Self::conditions);
            c.field(m, p, "elementScope", Self::boolean);
            c.exactly_one(
                m,
                p,
                &["pattern", "anyPattern", "deny", "foreach"],
                "a foreach entry",
            );
            c.patterns(m, p);
            c.field(m, p, "foreach", Self::foreach);
        });
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
