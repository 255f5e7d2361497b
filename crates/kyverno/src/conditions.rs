//! Kyverno condition operators (preconditions and `deny.conditions`).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::error::Result;
use crate::model::{Condition, Conditions, Operator};
use crate::value::{
    as_number, json_equal, parse_duration, parse_quantity, sprint, wildcard_match, SemVer,
};
use crate::vars::{EvalContext, Mode};

/// Evaluates `any`/`all` conditions. Returns whether they hold and, when they do not, the
/// message of a condition that failed (if it has one).
pub fn evaluate(conditions: &Conditions, ctx: &EvalContext) -> Result<(bool, Option<String>)> {
    let (any, all) = conditions.any_all();
    if let Some(any) = any.filter(|a| !a.is_empty()) {
        let mut msg = None;
        let mut passed = false;
        for c in any {
            if evaluate_one(c, ctx)? {
                passed = true;
                break;
            }
            msg = msg.or_else(|| c.message.clone());
        }
        if !passed {
            return Ok((false, msg));
        }
    }
    if let Some(all) = all {
        for c in all {
            if !evaluate_one(c, ctx)? {
                return Ok((false, c.message.clone()));
            }
        }
    }
    Ok((true, None))
}

/// Evaluates one condition after substituting variables in key and value.
pub fn evaluate_one(c: &Condition, ctx: &EvalContext) -> Result<bool> {
    let key = ctx.substitute(&c.key, Mode::Lenient)?;
    let value = ctx.substitute(&c.value, Mode::Lenient)?;
    Ok(apply(c.operator, &key, &value))
}

/// Applies an operator to substituted operands.
pub fn apply(op: Operator, key: &Value, value: &Value) -> bool {
    use Operator::*;
    match op {
        Equals | Equal => equals(key, value),
        NotEquals | NotEqual => !equals(key, value),
        GreaterThan | DurationGreaterThan => ordered(key, value) == Some(Ordering::Greater),
        GreaterThanOrEquals | DurationGreaterThanOrEquals => {
            matches!(
                ordered(key, value),
                Some(Ordering::Greater | Ordering::Equal)
            )
        }
        LessThan | DurationLessThan => ordered(key, value) == Some(Ordering::Less),
        LessThanOrEquals | DurationLessThanOrEquals => {
            matches!(ordered(key, value), Some(Ordering::Less | Ordering::Equal))
        }
        In | AllIn => set_op(key, value, |found, n| found == n),
        AnyIn => set_op(key, value, |found, _| found > 0),
        NotIn => !set_op(key, value, |found, n| found == n),
        AnyNotIn => set_op(key, value, |found, n| found < n),
        AllNotIn => set_op(key, value, |found, _| found == 0),
    }
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => {
            let k = n.as_f64();
            match value {
                Value::Number(v) => v.as_f64() == k,
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .or_else(|| parse_quantity(s))
                    .is_some_and(|v| Some(v) == k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let (Some(a), Some(b)) = (parse_duration(k), value.as_str().and_then(parse_duration))
            {
                return a == b;
            }
            let vq = match value {
                Value::String(s) => parse_quantity(s),
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            if let (Some(a), Some(b)) = (parse_quantity(k), vq) {
                return a == b;
            }
            match value {
                Value::String(v) => wildcard_match(v, k),
                _ => false,
            }
        }
        Value::Object(_) | Value::Array(_) => json_equal(key, value),
        Value::Null => false,
    }
}

fn ordered(key: &Value, value: &Value) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (
        key.as_str().and_then(parse_duration),
        value.as_str().and_then(parse_duration),
    ) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (as_number(key), as_number(value)) {
        return a.partial_cmp(&b);
    }
    let q = |v: &Value| match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    if let (Some(a), Some(b)) = (q(key), q(value)) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (
        key.as_str().and_then(SemVer::parse),
        value.as_str().and_then(SemVer::parse),
    ) {
        return Some(a.cmp(&b));
    }
    None
}

static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)$").expect("static regex"));

fn member(key: &str, candidates: &[String]) -> bool {
    candidates.iter().any(|c| {
        if wildcard_match(c, key) || wildcard_match(key, c) {
            return true;
        }
        if let (Some(caps), Ok(k)) = (RANGE.captures(c), key.parse::<f64>()) {
            let lo = caps[1].parse::<f64>().unwrap_or(f64::NAN);
            let hi = caps[2].parse::<f64>().unwrap_or(f64::NAN);
            return k >= lo && k <= hi;
        }
        false
    })
}

/// Counts how many key elements are found in value and hands `(found, total)` to `decide`.
/// Returns false for operand types Kyverno rejects.
fn set_op(key: &Value, value: &Value, decide: impl Fn(usize, usize) -> bool) -> bool {
    let keys: Vec<String> = match key {
        Value::Array(items) => items.iter().map(sprint).collect(),
        Value::Object(_) => return false,
        other => vec![sprint(other)],
    };
    let candidates: Vec<String> = match value {
        Value::Array(items) => items.iter().map(sprint).collect(),
        Value::String(s) => {
            let mut c = vec![s.clone()];
            match serde_json::from_str::<Vec<Value>>(s) {
                Ok(list) => c.extend(list.iter().map(sprint)),
                // A string that is neither a match nor a JSON list is a type error: false.
                Err(_) if !RANGE.is_match(s) && !keys.iter().any(|k| wildcard_match(s, k)) => {
                    return false
                }
                Err(_) => {}
            }
            c
        }
        Value::Number(_) | Value::Bool(_) => vec![sprint(value)],
        _ => return false,
    };
    let found = keys.iter().filter(|k| member(k, &candidates)).count();
    decide(found, keys.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equality_family() {
        assert!(apply(Operator::Equals, &json!("1Gi"), &json!("1024Mi")));
        assert!(apply(
            Operator::Equals,
            &json!("nginx:1.2"),
            &json!("nginx:*")
        ));
        assert!(apply(Operator::Equals, &json!(3), &json!("3")));
        assert!(apply(Operator::Equals, &json!("1h"), &json!("60m")));
        assert!(apply(Operator::NotEquals, &json!("a"), &json!("b")));
        assert!(!apply(Operator::Equals, &Value::Null, &Value::Null));
        assert!(apply(
            Operator::Equals,
            &json!({"a": [1]}),
            &json!({"a": [1.0]})
        ));
        assert!(apply(Operator::Equals, &json!(true), &json!(true)));
        assert!(!apply(Operator::Equals, &json!(true), &json!("true")));
    }

    #[test]
    fn ordering_family() {
        assert!(apply(Operator::GreaterThan, &json!(5), &json!(3)));
        assert!(apply(Operator::GreaterThan, &json!("2Gi"), &json!("1Gi")));
        assert!(apply(Operator::LessThan, &json!("30m"), &json!("1h")));
        assert!(apply(
            Operator::GreaterThanOrEquals,
            &json!("1.10.0"),
            &json!("1.9.3")
        ));
        assert!(apply(Operator::LessThanOrEquals, &json!("4"), &json!(4)));
        assert!(!apply(Operator::GreaterThan, &json!("abc"), &json!(1)));
    }

    #[test]
    fn set_family() {
        let list = json!(["CREATE", "UPDATE"]);
        assert!(apply(Operator::AnyIn, &json!("CREATE"), &list));
        assert!(!apply(Operator::AnyIn, &json!("DELETE"), &list));
        assert!(apply(Operator::AnyIn, &json!(["DELETE", "UPDATE"]), &list));
        assert!(!apply(Operator::AllIn, &json!(["DELETE", "UPDATE"]), &list));
        assert!(apply(
            Operator::AnyNotIn,
            &json!(["DELETE", "UPDATE"]),
            &list
        ));
        assert!(!apply(
            Operator::AllNotIn,
            &json!(["DELETE", "UPDATE"]),
            &list
        ));
        assert!(apply(Operator::AllNotIn, &json!([]), &list));
        assert!(apply(
            Operator::AnyIn,
            &json!("kube-system"),
            &json!(["kube-*"])
        ));
        assert!(apply(Operator::AnyIn, &json!(8080), &json!(["8000-9000"])));
        assert!(apply(Operator::In, &json!("a"), &json!("[\"a\", \"b\"]")));
        assert!(apply(Operator::NotIn, &json!("c"), &json!(["a", "b"])));
        // a string value that is not a JSON list makes every set operator false
        assert!(!apply(Operator::AnyNotIn, &json!("x"), &json!("")));
        assert!(!apply(Operator::AnyIn, &json!("x"), &json!("y")));
        assert!(apply(Operator::AnyIn, &json!("x"), &json!("x")));
    }
}
