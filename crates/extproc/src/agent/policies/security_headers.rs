//! `addSecurityHeaders`: sets fixed headers (normally on the response).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, BOTH};
use crate::agent::chain::{Context, Instruction, Outcome};

/// The `addSecurityHeaders` policy kind.
pub struct AddSecurityHeaders;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

fn defaults() -> BTreeMap<String, String> {
    [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl PolicyKind for AddSecurityHeaders {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "addSecurityHeaders",
            version: "1.0.0",
            description: "Adds security headers (a fixed default set when none are configured)",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
            phases: BOTH,
            requires_body: false,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        let instructions = meta
            .headers
            .unwrap_or_else(defaults)
            .into_iter()
            .map(|(key, value)| Instruction::SetHeader {
                key: key.to_ascii_lowercase(),
                value,
            })
            .collect();
        Ok(Arc::new(Compiled { instructions }))
    }
}

struct Compiled {
    instructions: Vec<Instruction>,
}

impl CompiledPolicy for Compiled {
    fn execute(&self, _ctx: &Context) -> Result<Outcome, PolicyError> {
        Ok(Outcome::allow_with(self.instructions.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_headers_replace_the_defaults() {
        let policy = AddSecurityHeaders
            .compile(
                json!({"headers": {"X-Frame-Options": "SAMEORIGIN"}})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let outcome = policy.execute(&Context::default()).unwrap();
        assert_eq!(
            outcome.instructions,
            vec![Instruction::SetHeader {
                key: "x-frame-options".into(),
                value: "SAMEORIGIN".into()
            }]
        );
        let defaults = AddSecurityHeaders.compile(&Map::new()).unwrap();
        assert_eq!(
            defaults
                .execute(&Context::default())
                .unwrap()
                .instructions
                .len(),
            4
        );
    }
}
