//! `allowAll`: lets every request through.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, BOTH};
use crate::agent::chain::{Context, Outcome};

/// The `allowAll` policy.
pub struct AllowAll;

impl PolicyKind for AllowAll {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "allowAll",
            version: "1.0.0",
            description: "Allows every request",
            metadata_schema: json!({"type": "object", "additionalProperties": false}),
            phases: BOTH,
            requires_body: false,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        super::typed::<Map<String, Value>>(&self.descriptor().metadata_schema, metadata)?;
        Ok(Arc::new(AllowAll))
    }
}

impl CompiledPolicy for AllowAll {
    fn execute(&self, _ctx: &Context) -> Result<Outcome, PolicyError> {
        Ok(Outcome::allow())
    }
}
