//! `roleCheck`: requires roles from the JWT claims that `jwtValidation` stored in the state.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, REQUEST};
use crate::agent::chain::{Context, ImmediateResponse, Outcome};

/// The `roleCheck` policy kind.
pub struct RoleCheck;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    required_roles: Vec<String>,
    #[serde(default = "default_claim")]
    roles_claim: String,
    #[serde(default = "default_match")]
    r#match: String,
}

fn default_claim() -> String {
    "roles".to_owned()
}
fn default_match() -> String {
    "any".to_owned()
}

impl PolicyKind for RoleCheck {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "roleCheck",
            version: "1.0.0",
            description: "Requires roles from the validated JWT's claims (run after jwtValidation)",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["required_roles"],
                "properties": {
                    "required_roles": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    "roles_claim": {"type": "string", "minLength": 1},
                    "match": {"type": "string", "enum": ["any", "all"]}
                }
            }),
            phases: REQUEST,
            requires_body: false,
            body_flags: &[],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        Ok(Arc::new(CompiledRoleCheck {
            required: meta.required_roles,
            claim: meta.roles_claim,
            all: meta.r#match == "all",
        }))
    }
}

struct CompiledRoleCheck {
    required: Vec<String>,
    claim: String,
    all: bool,
}

fn roles_of(claims: &Value, claim: &str) -> Vec<String> {
    let mut node = claims;
    for part in claim.split('.') {
        match node.get(part) {
            Some(next) => node = next,
            None => return Vec::new(),
        }
    }
    match node {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl CompiledPolicy for CompiledRoleCheck {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let Some(claims) = ctx.state.get("jwt.claims") else {
            return Ok(Outcome::deny(
                "no validated token",
                ImmediateResponse::json_error(401, "authentication required")
                    .with_header("www-authenticate", "Bearer"),
            ));
        };
        let claims: Value = serde_json::from_str(claims)
            .map_err(|e| PolicyError::Execution(format!("jwt.claims state is not JSON: {e}")))?;
        let roles = roles_of(&claims, &self.claim);
        let has = |role: &String| roles.contains(role);
        let ok = if self.all {
            self.required.iter().all(has)
        } else {
            self.required.iter().any(has)
        };
        if ok {
            Ok(Outcome::allow())
        } else {
            Ok(Outcome::deny(
                "insufficient role",
                ImmediateResponse::json_error(403, "insufficient role"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::chain::Decision;

    fn run(meta: Value, claims: Option<Value>) -> Decision {
        let policy = RoleCheck.compile(meta.as_object().unwrap()).unwrap();
        let mut ctx = Context::default();
        if let Some(claims) = claims {
            ctx.state.insert("jwt.claims".into(), claims.to_string());
        }
        policy.execute(&ctx).unwrap().decision
    }

    #[test]
    fn role_sources_and_match_modes() {
        let admin = json!({"roles": ["admin", "dev"], "realm": {"scope": "read write"}});
        assert_eq!(
            run(json!({"required_roles": ["admin"]}), Some(admin.clone())),
            Decision::Allow
        );
        assert_eq!(
            run(json!({"required_roles": ["ops"]}), Some(admin.clone())),
            Decision::Deny
        );
        assert_eq!(
            run(
                json!({"required_roles": ["admin", "ops"], "match": "all"}),
                Some(admin.clone())
            ),
            Decision::Deny
        );
        assert_eq!(
            run(
                json!({"required_roles": ["write"], "roles_claim": "realm.scope"}),
                Some(admin)
            ),
            Decision::Allow
        );
        assert_eq!(
            run(json!({"required_roles": ["admin"]}), None),
            Decision::Deny
        );
    }
}
