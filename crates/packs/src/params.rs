//! Parameters: `--param key=value` overrides over the pack's defaults, checked against its
//! JSON Schema before anything renders.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::Pack;

/// One override: a dotted key path and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub path: Vec<String>,
    pub value: Value,
}

impl std::str::FromStr for Param {
    type Err = Error;

    /// `key=value` or `a.b=value`; the value is read as YAML, so `5432` is a number,
    /// `[a, b]` a list and `{app: web}` a mapping, and anything else a string.
    fn from_str(text: &str) -> Result<Param> {
        let err = |message: &str| Error::ParamSyntax {
            text: text.to_string(),
            message: message.to_string(),
        };
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| err("expected key=value"))?;
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(err("the key is empty or has an empty segment"));
        }
        let value = if raw.trim().is_empty() {
            Value::String(String::new())
        } else {
            yaml_serde::from_str::<Value>(raw)
                .map_err(|e| err(&format!("the value is not YAML: {e}")))?
        };
        Ok(Param { path, value })
    }
}

/// The pack's defaults with `overrides` applied, checked against the schema.
pub fn resolve(pack: &Pack, overrides: &[Param]) -> Result<Value> {
    let mut params = pack.manifest.parameters.defaults.clone();
    for p in overrides {
        set(&mut params, p);
    }
    merge_checked(pack, params)
}

/// `params` checked against the schema, as the error every caller reports.
pub(crate) fn merge_checked(pack: &Pack, params: Value) -> Result<Value> {
    check(pack, &params).map_err(|violations| Error::Parameters {
        pack: pack.slug().to_string(),
        violations,
    })?;
    Ok(params)
}

/// Deep-merges `over` into `base` (mappings merge, anything else replaces).
pub(crate) fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn set(root: &mut Value, p: &Param) {
    let mut cur = root;
    for key in &p.path {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = cur else {
            return;
        };
        cur = map.entry(key.clone()).or_insert(Value::Null);
    }
    *cur = p.value.clone();
}

/// Every violation of the pack's schema by `params`, as `pointer: message`.
pub(crate) fn check(pack: &Pack, params: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(&pack.manifest.parameters.schema)
        .map_err(|e| vec![format!("the pack's parameter schema is invalid: {e}")])?;
    let violations: Vec<String> = validator
        .iter_errors(params)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_yaml_and_keys_dotted() {
        let p: Param = "db.port=5432".parse().unwrap();
        assert_eq!(p.path, ["db", "port"]);
        assert_eq!(p.value, serde_json::json!(5432));
        let p: Param = "namespaces=[a, b]".parse().unwrap();
        assert_eq!(p.value, serde_json::json!(["a", "b"]));
        assert!("novalue".parse::<Param>().is_err());
        assert!("a..b=1".parse::<Param>().is_err());
        let mut v = serde_json::json!({"db": {"port": 1, "name": "x"}});
        set(&mut v, &"db.port=2".parse().unwrap());
        assert_eq!(v, serde_json::json!({"db": {"port": 2, "name": "x"}}));
    }
}
