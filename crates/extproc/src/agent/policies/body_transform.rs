//! `responseBodyTransform`: removes fields (dotted paths, through arrays) from JSON bodies.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, RESPONSE};
use crate::agent::chain::{Context, Instruction, Outcome};

/// The `responseBodyTransform` policy kind.
pub struct ResponseBodyTransform;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    remove_fields: Vec<String>,
}

impl PolicyKind for ResponseBodyTransform {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "responseBodyTransform",
            version: "1.0.0",
            description: "Removes fields (dotted paths) from JSON response bodies",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["remove_fields"],
                "properties": {
                    "remove_fields": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
                }
            }),
            phases: RESPONSE,
            requires_body: true,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        let paths = meta
            .remove_fields
            .iter()
            .map(|p| p.split('.').map(str::to_owned).collect())
            .collect();
        Ok(Arc::new(Compiled { paths }))
    }
}

struct Compiled {
    paths: Vec<Vec<String>>,
}

/// Removes `path` from `value`; arrays apply the rest of the path to every element.
fn remove_path(value: &mut Value, path: &[String]) -> bool {
    match value {
        Value::Array(items) => {
            // Every element is visited: no short-circuit.
            let mut changed = false;
            for item in items {
                changed |= remove_path(item, path);
            }
            changed
        }
        Value::Object(fields) => match path {
            [] => false,
            [last] => fields.remove(last).is_some(),
            [first, rest @ ..] => fields
                .get_mut(first)
                .is_some_and(|child| remove_path(child, rest)),
        },
        _ => false,
    }
}

impl CompiledPolicy for Compiled {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let body = match &ctx.response {
            Some(response) => &response.body,
            None => &ctx.body,
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Outcome::allow());
        }
        let mut document: Value = serde_json::from_slice(body)
            .map_err(|e| PolicyError::Execution(format!("body is not JSON: {e}")))?;
        let mut changed = false;
        for path in &self.paths {
            changed |= remove_path(&mut document, path);
        }
        if !changed {
            return Ok(Outcome::allow());
        }
        let new_body =
            serde_json::to_vec(&document).map_err(|e| PolicyError::Execution(e.to_string()))?;
        Ok(Outcome::allow_with(vec![Instruction::SetBody(new_body)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::chain::ResponseData;

    fn run(fields: Value, body: &str) -> Result<Outcome, PolicyError> {
        let policy = ResponseBodyTransform
            .compile(json!({ "remove_fields": fields }).as_object().unwrap())
            .unwrap();
        let ctx = Context {
            response: Some(ResponseData {
                body: body.as_bytes().to_vec(),
                ..ResponseData::default()
            }),
            ..Context::default()
        };
        policy.execute(&ctx)
    }

    #[test]
    fn removes_top_level_nested_and_array_fields() {
        let outcome = run(
            json!(["internal_id", "owner.secret", "items.cost"]),
            r#"{"id":1,"internal_id":9,"owner":{"name":"a","secret":"s"},"items":[{"n":1,"cost":2},{"n":2,"cost":3}]}"#,
        )
        .unwrap();
        let Instruction::SetBody(body) = &outcome.instructions[0] else {
            panic!("expected a body");
        };
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            value,
            json!({"id":1,"owner":{"name":"a"},"items":[{"n":1},{"n":2}]})
        );
    }

    #[test]
    fn untouched_and_empty_bodies_are_left_alone() {
        assert!(run(json!(["x"]), r#"{"a":1}"#)
            .unwrap()
            .instructions
            .is_empty());
        assert!(run(json!(["x"]), "").unwrap().instructions.is_empty());
    }

    #[test]
    fn non_json_body_is_a_policy_failure() {
        assert!(matches!(
            run(json!(["x"]), "<html>"),
            Err(PolicyError::Execution(_))
        ));
    }
}
