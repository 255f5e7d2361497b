//! Kubernetes label selectors: `matchLabels` plus `matchExpressions`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels of a pod, namespace or node.
pub type Labels = BTreeMap<String, String>;

/// A label selector as written in a manifest. An empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Checks the rules the API server enforces: `In`/`NotIn` need values,
    /// `Exists`/`DoesNotExist` take none. Returns the offending field path.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, req) in self.match_expressions.iter().enumerate() {
            let needs_values = matches!(req.operator, Operator::In | Operator::NotIn);
            if needs_values == req.values.is_empty() {
                let msg = if needs_values {
                    format!("operator {:?} needs at least one value", req.operator)
                } else {
                    format!("operator {:?} takes no values", req.operator)
                };
                return Err((format!("matchExpressions[{i}].values"), msg));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy every requirement of the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Like [`LabelSelector::matches`], with labels looked up through `get`
    /// (used for Cilium's derived labels such as the pod namespace).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|req| {
                let value = get(&req.key);
                match req.operator {
                    Operator::In => value.is_some_and(|v| req.values.iter().any(|x| x == v)),
                    Operator::NotIn => value.is_none_or(|v| req.values.iter().all(|x| x != v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// Every key the selector constrains.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.match_labels
            .keys()
            .map(String::as_str)
            .chain(self.match_expressions.iter().map(|r| r.key.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let sel = |r| LabelSelector {
            match_expressions: vec![r],
            ..Default::default()
        };
        assert!(sel(req("app", Operator::In, &["web", "api"])).matches(&pod));
        assert!(!sel(req("app", Operator::In, &["api"])).matches(&pod));
        assert!(!sel(req("app", Operator::NotIn, &["web"])).matches(&pod));
        // NotIn matches objects without the key, as in Kubernetes.
        assert!(sel(req("env", Operator::NotIn, &["prod"])).matches(&pod));
        assert!(sel(req("tier", Operator::Exists, &[])).matches(&pod));
        assert!(!sel(req("tier", Operator::DoesNotExist, &[])).matches(&pod));
        assert!(LabelSelector::default().matches(&Labels::new()));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = LabelSelector {
            match_expressions: vec![req("a", Operator::Exists, &[]), req("b", Operator::In, &[])],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "matchExpressions[1].values");
    }

    proptest! {
        /// matchLabels {k: v} is the same selector as matchExpressions k In [v].
        #[test]
        fn match_labels_equals_in_expression(
            k in "[a-c]", v in "[x-z]",
            pod in proptest::collection::btree_map("[a-c]", "[x-z]", 0..3)
        ) {
            let by_labels = LabelSelector { match_labels: [(k.clone(), v.clone())].into(), ..Default::default() };
            let by_expr = LabelSelector { match_expressions: vec![req(&k, Operator::In, &[&v])], ..Default::default() };
            prop_assert_eq!(by_labels.matches(&pod), by_expr.matches(&pod));
            // NotIn is the complement of In; DoesNotExist the complement of Exists.
            let not_in = LabelSelector { match_expressions: vec![req(&k, Operator::NotIn, &[&v])], ..Default::default() };
            prop_assert_eq!(not_in.matches(&pod), !by_expr.matches(&pod));
            let exists = LabelSelector { match_expressions: vec![req(&k, Operator::Exists, &[])], ..Default::default() };
            let absent = LabelSelector { match_expressions: vec![req(&k, Operator::DoesNotExist, &[])], ..Default::default() };
            prop_assert_eq!(exists.matches(&pod), !absent.matches(&pod));
        }
    }
}
