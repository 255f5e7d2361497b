//! Overlay-pattern validation with Kyverno's anchors and value operators.
//!
//! The walk mirrors Kyverno's: in a map, anchored keys are checked first (in key order, so
//! conditions come before negations), then plain keys, those holding nested anchors first. A
//! conditional `()` or global `<()` anchor that does not hold makes the enclosing element
//! "not applicable"; an array of maps is then satisfied by its applicable elements, and a whole
//! pattern that is not applicable anywhere skips the rule.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::value::{
    format_number, has_wildcard, parse_duration, parse_quantity, sprint, wildcard_match,
};

/// Anchor kinds on pattern keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `(key)`: if the key exists and matches, check the siblings; otherwise not applicable.
    Condition,
    /// `<(key)`: like a condition, but not applicable means the whole rule is skipped.
    Global,
    /// `=(key)`: if the key exists, it must match.
    Equality,
    /// `X(key)`: the key must not exist.
    Negation,
    /// `^(key)`: at least one element of the list must match.
    Existence,
    /// `+(key)`: mutate-only; treated as a plain key.
    AddIfNotPresent,
}

/// Splits an anchored key into its anchor and bare key.
pub fn parse_anchor(key: &str) -> Option<(Anchor, &str)> {
    let inner = |prefix_len: usize| -> Option<&str> {
        let rest = key.get(prefix_len..)?;
        rest.strip_prefix('(')?.strip_suffix(')')
    };
    let (anchor, len) = match key.as_bytes().first()? {
        b'(' => (Anchor::Condition, 0),
        b'<' => (Anchor::Global, 1),
        b'=' => (Anchor::Equality, 1),
        b'X' => (Anchor::Negation, 1),
        b'^' => (Anchor::Existence, 1),
        b'+' => (Anchor::AddIfNotPresent, 1),
        _ => return None,
    };
    let bare = inner(len)?;
    if bare.is_empty() {
        return None;
    }
    Some((anchor, bare))
}

/// Why a pattern did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The rule does not apply (a conditional or global anchor did not hold).
    Skip(String),
    /// The resource violates the pattern at `path`.
    Fail {
        /// Path of the violation, `/spec/containers/0/image/`.
        path: String,
        /// Description.
        message: String,
    },
    /// The pattern could not be applied (Kyverno reports an error result).
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Conditional,
    Global,
    Negation,
}

#[derive(Debug)]
struct PatErr {
    kind: Kind,
    path: String,
    message: String,
}

impl PatErr {
    fn plain(path: &str, message: impl Into<String>) -> Self {
        PatErr {
            kind: Kind::Plain,
            path: path.to_string(),
            message: message.into(),
        }
    }
    fn is_skip(&self) -> bool {
        matches!(self.kind, Kind::Conditional | Kind::Global)
    }
}

/// Tracks whether conditional/existence anchor keys were ever found in the resource.
#[derive(Default)]
struct AnchorMap {
    seen: BTreeMap<String, bool>,
}

impl AnchorMap {
    fn check(&mut self, pattern: &Map<String, Value>, resource: &Map<String, Value>) {
        for key in pattern.keys() {
            if let Some((Anchor::Condition | Anchor::Existence, bare)) = parse_anchor(key) {
                let entry = self.seen.entry(key.clone()).or_insert(false);
                if !*entry && resource.contains_key(bare) {
                    *entry = true;
                }
            }
        }
    }
    fn keys_missing(&self) -> bool {
        self.seen.values().any(|v| !v)
    }
}

static NULL: Value = Value::Null;

/// Checks `resource` against `pattern`.
pub fn match_pattern(resource: &Value, pattern: &Value) -> Result<(), Mismatch> {
    let mut ac = AnchorMap::default();
    match validate_element(resource, pattern, "/", &mut ac) {
        Ok(()) => Ok(()),
        Err(e) if e.is_skip() => Err(Mismatch::Skip(e.message)),
        Err(e) if e.kind == Kind::Negation => Err(Mismatch::Fail {
            path: e.path,
            message: e.message,
        }),
        Err(e) if ac.keys_missing() => Err(Mismatch::Skip(e.message)),
        Err(e) if e.path.is_empty() => Err(Mismatch::Error(e.message)),
        Err(e) => Err(Mismatch::Fail {
            path: e.path,
            message: e.message,
        }),
    }
}

fn validate_element(
    resource: &Value,
    pattern: &Value,
    path: &str,
    ac: &mut AnchorMap,
) -> Result<(), PatErr> {
    match pattern {
        Value::Object(pm) => {
            let Value::Object(rm) = resource else {
                return Err(PatErr::plain(
                    path,
                    format!("pattern and resource have different structures at path {path}"),
                ));
            };
            ac.check(pm, rm);
            validate_map(rm, pm, path, ac)
        }
        Value::Array(pa) => {
            let Value::Array(ra) = resource else {
                return Err(PatErr::plain(
                    path,
                    format!("validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"),
                ));
            };
            validate_array(ra, pa, path, ac)
        }
        _ => {
            let ok = match resource {
                Value::Array(items) => items.iter().all(|r| validate_value(r, pattern)),
                other => validate_value(other, pattern),
            };
            if ok {
                Ok(())
            } else {
                Err(PatErr::plain(
                    path,
                    format!(
                        "resource value '{}' does not match '{}' at path {path}",
                        display(resource),
                        display(pattern)
                    ),
                ))
            }
        }
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        other => sprint(other),
    }
}

/// Replaces wildcard keys by the resource keys they match (Kyverno expands these in labels and
/// annotations; doing it at every level is equivalent for the literal keys used elsewhere).
fn expand_wildcard_keys<'p>(
    pattern: &'p Map<String, Value>,
    resource: &Map<String, Value>,
) -> Vec<(Cow<'p, str>, &'p Value)> {
    let mut out = Vec::with_capacity(pattern.len());
    for (key, value) in pattern {
        let (anchor, bare) = match parse_anchor(key) {
            Some((a, b)) => (Some(a), b),
            None => (None, key.as_str()),
        };
        if !has_wildcard(bare) {
            out.push((Cow::Borrowed(key.as_str()), value));
            continue;
        }
        let matches: Vec<&String> = resource
            .keys()
            .filter(|k| wildcard_match(bare, k))
            .collect();
        if matches.is_empty() {
            out.push((Cow::Borrowed(key.as_str()), value));
        }
        for k in matches {
            let new_key = match anchor {
                None => k.clone(),
                Some(Anchor::Condition) => format!("({k})"),
                Some(a) => {
                    let prefix = match a {
                        Anchor::Global => "<",
                        Anchor::Equality => "=",
                        Anchor::Negation => "X",
                        Anchor::Existence => "^",
                        _ => "+",
                    };
                    format!("{prefix}({k})")
                }
            };
            out.push((Cow::Owned(new_key), value));
        }
    }
    out
}

fn has_nested_anchors(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| parse_anchor(k).is_some() || has_nested_anchors(v)),
        Value::Array(a) => a.iter().any(has_nested_anchors),
        _ => false,
    }
}

fn validate_map(
    resource: &Map<String, Value>,
    pattern: &Map<String, Value>,
    path: &str,
    ac: &mut AnchorMap,
) -> Result<(), PatErr> {
    let expanded = expand_wildcard_keys(pattern, resource);
    let mut anchors: Vec<(&str, Anchor, &str, &Value)> = Vec::new();
    let mut plain: Vec<(&str, &Value)> = Vec::new();
    for (key, value) in &expanded {
        match parse_anchor(key) {
            Some((Anchor::AddIfNotPresent, bare)) => plain.push((bare, value)),
            Some((anchor, bare)) => anchors.push((key, anchor, bare, value)),
            None => plain.push((key, value)),
        }
    }
    anchors.sort_by(|a, b| a.0.cmp(b.0));
    for (_, anchor, key, pat) in anchors {
        let current = format!("{path}{key}/");
        let present = resource.get(key);
        match anchor {
            Anchor::Condition | Anchor::Global => {
                let kind = if anchor == Anchor::Condition {
                    Kind::Conditional
                } else {
                    Kind::Global
                };
                let what = if kind == Kind::Conditional {
                    "conditional"
                } else {
                    "global"
                };
                match present {
                    Some(v) => {
                        if let Err(e) = validate_element(v, pat, &current, ac) {
                            return Err(PatErr {
                                kind,
                                path: e.path,
                                message: format!("{what} anchor mismatch: {}", e.message),
                            });
                        }
                    }
                    None => {
                        return Err(PatErr {
                            kind,
                            path: current,
                            message: format!(
                                "{what} anchor mismatch: key {key} doesn't exist in the resource"
                            ),
                        })
                    }
                }
            }
            Anchor::Equality => {
                if let Some(v) = present {
                    validate_element(v, pat, &current, ac)?;
                }
            }
            Anchor::Negation => {
                if present.is_some() {
                    return Err(PatErr {
                        kind: Kind::Negation,
                        path: current,
                        message: format!(
                            "negation anchor matched in resource: {key} is not allowed"
                        ),
                    });
                }
            }
            Anchor::Existence => {
                if let Some(v) = present {
                    let Value::Array(items) = v else {
                        return Err(PatErr::plain(
                            &current,
                            "existence anchor ^() can be used only on list/array type resource",
                        ));
                    };
                    let Value::Array(pats) = pat else {
                        return Err(PatErr::plain(
                            &current,
                            "existence anchor pattern has to be a list",
                        ));
                    };
                    for p in pats {
                        if !p.is_object() {
                            return Err(PatErr::plain(
                                &current,
                                "existence anchor list items have to be maps",
                            ));
                        }
                        let found = items.iter().enumerate().any(|(i, item)| {
                            let mut scratch = AnchorMap::default();
                            validate_element(item, p, &format!("{current}{i}/"), &mut scratch)
                                .is_ok()
                        });
                        if !found {
                            return Err(PatErr::plain(
                                &current,
                                format!("existence anchor validation failed at path {current}"),
                            ));
                        }
                    }
                }
            }
            Anchor::AddIfNotPresent => {}
        }
    }
    // Plain keys: the ones holding nested anchors first, so that a failing condition deeper down
    // makes the element not applicable before its siblings can fail it.
    let (nested, flat): (Vec<_>, Vec<_>) =
        plain.into_iter().partition(|(_, v)| has_nested_anchors(v));
    for (key, pat) in nested.into_iter().chain(flat) {
        let current = format!("{path}{key}/");
        let value = resource.get(key).unwrap_or(&NULL);
        if pat.as_str() == Some("*") {
            if value.is_null() {
                return Err(PatErr::plain(path, format!("{path}{key} not found")));
            }
            continue;
        }
        validate_element(value, pat, &current, ac)?;
    }
    Ok(())
}

fn validate_array(
    resource: &[Value],
    pattern: &[Value],
    path: &str,
    ac: &mut AnchorMap,
) -> Result<(), PatErr> {
    let Some(first) = pattern.first() else {
        return Err(PatErr::plain(path, "pattern array empty"));
    };
    if first.is_object() {
        let mut applied = 0usize;
        let mut skipped: Option<PatErr> = None;
        for (i, item) in resource.iter().enumerate() {
            match validate_element(item, first, &format!("{path}{i}/"), ac) {
                Ok(()) => applied += 1,
                Err(e) if e.is_skip() => {
                    skipped.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if applied == 0 {
            if let Some(e) = skipped {
                return Err(e);
            }
        }
        return Ok(());
    }
    if resource.len() < pattern.len() {
        return Err(PatErr::plain(
            "",
            format!(
                "validate array failed, array length mismatch, resource array len is {} and pattern array len is {}",
                resource.len(),
                pattern.len()
            ),
        ));
    }
    for (i, p) in pattern.iter().enumerate() {
        match validate_element(&resource[i], p, &format!("{path}{i}/"), ac) {
            Ok(()) => {}
            Err(e) if e.is_skip() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Kyverno's scalar check of one resource value against one pattern value.
pub fn validate_value(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            let p = n.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64().is_some_and(|f| f.fract() == 0.0 && f == p),
                Value::String(s) => s.parse::<i64>().is_ok_and(|i| i as f64 == p),
                _ => false,
            }
        }
        Value::Number(n) => {
            let p = n.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64() == Some(p),
                Value::String(s) => s.parse::<f64>().is_ok_and(|f| f == p),
                _ => false,
            }
        }
        Value::Null => match value {
            Value::Number(v) => v.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Null => true,
            _ => false,
        },
        Value::Object(_) => value.is_object(),
        Value::Array(_) => false,
        Value::String(p) => validate_string_patterns(value, p),
    }
}

fn validate_string_patterns(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|alt| {
        alt.trim()
            .split('&')
            .all(|cond| validate_string_pattern(value, cond.trim()))
    })
}

/// Value operators on string patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    More,
    Less,
    MoreEqual,
    LessEqual,
    InRange,
    NotInRange,
}

static NOT_IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d+(?:\.\d+)?)([^-]*)!-(\d+(?:\.\d+)?)([^-]*)$").expect("static regex")
});
static IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d+(?:\.\d+)?)([^-]*)-(\d+(?:\.\d+)?)([^-]*)$").expect("static regex")
});
static NUMBER_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d*(?:\.\d+)?)").expect("static regex"));

fn operator_of(pattern: &str) -> (Op, usize) {
    if pattern.len() < 2 {
        return (Op::Equal, 0);
    }
    for (prefix, op) in [
        (">=", Op::MoreEqual),
        ("<=", Op::LessEqual),
        (">", Op::More),
        ("<", Op::Less),
        ("!", Op::NotEqual),
    ] {
        if pattern.starts_with(prefix) {
            return (op, prefix.len());
        }
    }
    if NOT_IN_RANGE.is_match(pattern) {
        return (Op::NotInRange, 0);
    }
    if IN_RANGE.is_match(pattern) {
        return (Op::InRange, 0);
    }
    (Op::Equal, 0)
}

fn validate_string_pattern(value: &Value, pattern: &str) -> bool {
    let (op, len) = operator_of(pattern);
    match op {
        Op::InRange => {
            let (lo, hi) = pattern.split_once('-').unwrap_or((pattern, pattern));
            return validate_string_pattern(value, &format!(">={lo}"))
                && validate_string_pattern(value, &format!("<={hi}"));
        }
        Op::NotInRange => {
            let (lo, hi) = pattern.split_once("!-").unwrap_or((pattern, pattern));
            return validate_string_pattern(value, &format!("<{lo}"))
                || validate_string_pattern(value, &format!(">{hi}"));
        }
        _ => {}
    }
    let pat = pattern[len..].trim();
    let number = NUMBER_PREFIX.find(pat).map_or("", |m| m.as_str());
    if number.is_empty() {
        return validate_string(value, pat, op);
    }
    validate_number_with_str(value, pat, op)
}

fn compare(ord: Option<Ordering>, op: Op) -> bool {
    let Some(ord) = ord else { return false };
    match op {
        Op::Equal => ord == Ordering::Equal,
        Op::NotEqual => ord != Ordering::Equal,
        Op::More => ord == Ordering::Greater,
        Op::Less => ord == Ordering::Less,
        Op::MoreEqual => ord != Ordering::Less,
        Op::LessEqual => ord != Ordering::Greater,
        Op::InRange | Op::NotInRange => false,
    }
}

fn validate_number_with_str(value: &Value, pattern: &str, op: Op) -> bool {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => format_number(n),
        _ => return false,
    };
    if let (Some(p), Some(v)) = (parse_duration(pattern), parse_duration(&text)) {
        return compare(v.partial_cmp(&p), op);
    }
    if let Some(p) = parse_quantity(pattern) {
        return match parse_quantity(&text) {
            Some(v) => compare(v.partial_cmp(&p), op),
            None => false,
        };
    }
    validate_string(value, pattern, op)
}

fn validate_string(value: &Value, pattern: &str, op: Op) -> bool {
    if op != Op::Equal && op != Op::NotEqual {
        return false;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => format_number(n),
        Value::Bool(b) => b.to_string(),
        _ => return false,
    };
    let m = wildcard_match(pattern, &text);
    if op == Op::Equal {
        m
    } else {
        !m
    }
}

#[cfg(test)]
#[path = "pattern_tests.rs"]
mod tests;
