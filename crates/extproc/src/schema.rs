//! A small JSON-schema subset used to check policy metadata when a configuration is loaded.
//!
//! Supported keywords: `type` (a name or a list of names), `properties`, `required`,
//! `additionalProperties` (boolean or schema), `items`, `enum`, `minimum`, `maximum`,
//! `exclusiveMinimum`, `minLength`, `minItems`. Unknown keywords are ignored, as in JSON schema.

use serde_json::Value;

/// Checks `value` against `schema` and returns every violation, each with its JSON path.
pub fn validate(value: &Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, "$", &mut errors);
    errors
}

fn type_matches(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        _ => false,
    }
}

fn check(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(name) => type_matches(value, name),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .any(|name| type_matches(value, name)),
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: expected type {ty}, got {value}"));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            errors.push(format!(
                "{path}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if number < min {
                errors.push(format!("{path}: {number} is below the minimum {min}"));
            }
        }
        if let Some(min) = schema.get("exclusiveMinimum").and_then(Value::as_f64) {
            if number <= min {
                errors.push(format!("{path}: {number} must be greater than {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if number > max {
                errors.push(format!("{path}: {number} is above the maximum {max}"));
            }
        }
    }
    if let (Some(text), Some(min)) = (
        value.as_str(),
        schema.get("minLength").and_then(Value::as_u64),
    ) {
        if (text.chars().count() as u64) < min {
            errors.push(format!("{path}: string shorter than {min}"));
        }
    }
    if let Value::Array(items) = value {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                errors.push(format!("{path}: fewer than {min} items"));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                check(item, item_schema, &format!("{path}[{index}]"), errors);
            }
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    errors.push(format!("{path}: missing required field `{name}`"));
                }
            }
        }
        for (name, field) in fields {
            let field_path = format!("{path}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => check(field, field_schema, &field_path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: unknown field `{name}`"));
                    }
                    Some(extra @ Value::Object(_)) => check(field, extra, &field_path, errors),
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate;
    use serde_json::json;

    #[test]
    fn accepts_a_matching_object() {
        let schema = json!({
            "type": "object",
            "required": ["rps"],
            "additionalProperties": false,
            "properties": {
                "rps": {"type": "number", "exclusiveMinimum": 0},
                "key": {"type": "string", "enum": ["client_ip", "jwt_sub"]},
                "names": {"type": "array", "items": {"type": "string"}, "minItems": 1}
            }
        });
        assert!(validate(
            &json!({"rps": 5, "key": "jwt_sub", "names": ["a"]}),
            &schema
        )
        .is_empty());
    }

    #[test]
    fn reports_each_violation_with_its_path() {
        let schema = json!({
            "type": "object",
            "required": ["rps"],
            "additionalProperties": false,
            "properties": {
                "burst": {"type": "integer", "minimum": 1},
                "names": {"type": "array", "items": {"type": "string"}}
            }
        });
        let errors = validate(&json!({"burst": 0, "names": [1], "extra": true}), &schema);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.contains("missing required field `rps`")));
        assert!(errors.iter().any(|e| e.contains("$.names[0]")));
        assert!(errors.iter().any(|e| e.contains("unknown field `extra`")));
        assert!(errors.iter().any(|e| e.contains("below the minimum")));
    }

    #[test]
    fn integer_rejects_fractions() {
        let schema = json!({"type": "integer"});
        assert!(!validate(&json!(1.5), &schema).is_empty());
        assert!(validate(&json!(3), &schema).is_empty());
    }
}
