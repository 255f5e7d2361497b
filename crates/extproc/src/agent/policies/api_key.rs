//! `apiKeyAuth`: checks an API key header against keys loaded from a file or the environment.
//!
//! Keys are kept only as SHA-256 digests; a presented key is hashed, looked up by digest and
//! the digest is confirmed with a constant-time comparison.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, REQUEST};
use crate::agent::chain::{Context, ImmediateResponse, Instruction, Outcome};
use crate::agent::config::ApiKeySettings;

type KeyDigest = [u8; 32];

/// The `apiKeyAuth` policy kind with its key store.
pub struct ApiKeyAuth {
    keys: Arc<HashMap<KeyDigest, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    user_id: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default = "default_header")]
    header_name: String,
    #[serde(default = "default_true")]
    required: bool,
    #[serde(default = "default_user_header")]
    user_id_header: String,
}

fn default_header() -> String {
    "x-api-key".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_user_header() -> String {
    "x-user-id".to_owned()
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_hex_digest(text: &str) -> Option<KeyDigest> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl ApiKeyAuth {
    /// Builds the key store from a list of `(user_id, key)` pairs (tests, embedding).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let keys = pairs
            .into_iter()
            .map(|(user, key)| (digest(key), user.to_owned()))
            .collect();
        Self {
            keys: Arc::new(keys),
        }
    }

    /// Loads keys from the configured file and environment variable.
    pub fn from_settings(settings: &ApiKeySettings) -> Result<Self, PolicyError> {
        let mut keys = HashMap::new();
        if let Some(path) = &settings.keys_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                PolicyError::Settings(format!("apiKeyAuth keys_file {}: {e}", path.display()))
            })?;
            let entries: Vec<KeyEntry> = yaml_serde::from_str(&text).map_err(|e| {
                PolicyError::Settings(format!("apiKeyAuth keys_file {}: {e}", path.display()))
            })?;
            for entry in entries {
                let key_digest = match (&entry.key, &entry.key_sha256) {
                    (Some(key), None) if !key.is_empty() => digest(key),
                    (None, Some(hex)) => {
                        parse_hex_digest(&hex.to_ascii_lowercase()).ok_or_else(|| {
                            PolicyError::Settings(format!(
                                "apiKeyAuth: bad key_sha256 for user {}",
                                entry.user_id
                            ))
                        })?
                    }
                    _ => {
                        return Err(PolicyError::Settings(format!(
                            "apiKeyAuth: user {} needs exactly one of key, key_sha256",
                            entry.user_id
                        )))
                    }
                };
                keys.insert(key_digest, entry.user_id);
            }
        }
        if let Some(var) = &settings.keys_env {
            let text = std::env::var(var).map_err(|_| {
                PolicyError::Settings(format!("apiKeyAuth: environment variable {var} is not set"))
            })?;
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (user, key) = pair.split_once(':').ok_or_else(|| {
                    PolicyError::Settings(format!("apiKeyAuth: {var} entries must be user:key"))
                })?;
                keys.insert(digest(key), user.to_owned());
            }
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }
}

impl PolicyKind for ApiKeyAuth {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "apiKeyAuth",
            version: "1.0.0",
            description: "Authenticates requests by API key; sets X-User-ID",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "header_name": {"type": "string", "minLength": 1},
                    "required": {"type": "boolean"},
                    "user_id_header": {"type": "string", "minLength": 1}
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
        Ok(Arc::new(CompiledApiKey {
            keys: Arc::clone(&self.keys),
            header: meta.header_name.to_ascii_lowercase(),
            required: meta.required,
            user_header: meta.user_id_header.to_ascii_lowercase(),
        }))
    }
}

struct CompiledApiKey {
    keys: Arc<HashMap<KeyDigest, String>>,
    header: String,
    required: bool,
    user_header: String,
}

impl CompiledPolicy for CompiledApiKey {
    fn identity_headers(&self) -> &[String] {
        std::slice::from_ref(&self.user_header)
    }

    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let presented = ctx
            .headers
            .get(&self.header)
            .map(String::as_str)
            .unwrap_or("");
        if presented.is_empty() {
            if self.required {
                return Ok(Outcome::deny(
                    "API key required",
                    ImmediateResponse::json_error(401, "API key required")
                        .with_header("www-authenticate", "API-Key"),
                ));
            }
            return Ok(Outcome::allow());
        }
        let presented_digest = digest(presented);
        let user = self
            .keys
            .get_key_value(&presented_digest)
            .filter(|(stored, _)| bool::from(stored.ct_eq(&presented_digest)))
            .map(|(_, user)| user.clone());
        let Some(user) = user else {
            return Ok(Outcome::deny(
                "Invalid API key",
                ImmediateResponse::json_error(403, "Invalid API key"),
            ));
        };
        let mut outcome = Outcome::allow_with(vec![
            Instruction::SetHeader {
                key: self.user_header.clone(),
                value: user.clone(),
            },
            Instruction::SetState {
                key: "auth.user_id".to_owned(),
                value: user,
            },
        ]);
        outcome
            .metadata
            .push(("auth_method".to_owned(), "api_key".to_owned()));
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::chain::Decision;

    fn compiled(meta: Value) -> Arc<dyn CompiledPolicy> {
        let kind = ApiKeyAuth::from_pairs([("alice", "k-alice"), ("bob", "k-bob")]);
        kind.compile(meta.as_object().unwrap()).unwrap()
    }

    fn ctx_with(header: &str, value: &str) -> Context {
        let mut ctx = Context::default();
        ctx.headers.insert(header.to_owned(), value.to_owned());
        ctx
    }

    fn status(outcome: &Outcome) -> Option<u16> {
        outcome.instructions.iter().find_map(|i| match i {
            Instruction::Immediate(r) => Some(r.status),
            _ => None,
        })
    }

    #[test]
    fn missing_key_is_401_with_challenge() {
        let outcome = compiled(json!({})).execute(&Context::default()).unwrap();
        assert_eq!(outcome.decision, Decision::Deny);
        assert_eq!(status(&outcome), Some(401));
    }

    #[test]
    fn missing_key_is_allowed_when_not_required() {
        let outcome = compiled(json!({"required": false}))
            .execute(&Context::default())
            .unwrap();
        assert_eq!(outcome.decision, Decision::Allow);
    }

    #[test]
    fn wrong_key_is_403() {
        let outcome = compiled(json!({}))
            .execute(&ctx_with("x-api-key", "nope"))
            .unwrap();
        assert_eq!(status(&outcome), Some(403));
    }

    #[test]
    fn valid_key_sets_user_header_and_state() {
        let outcome = compiled(json!({"header_name": "X-Key"}))
            .execute(&ctx_with("x-key", "k-bob"))
            .unwrap();
        assert_eq!(outcome.decision, Decision::Allow);
        assert!(outcome.instructions.contains(&Instruction::SetHeader {
            key: "x-user-id".into(),
            value: "bob".into()
        }));
    }

    #[test]
    fn user_header_is_declared_as_identity() {
        assert_eq!(compiled(json!({})).identity_headers(), ["x-user-id"]);
        assert_eq!(
            compiled(json!({"user_id_header": "X-Principal", "required": false}))
                .identity_headers(),
            ["x-principal"]
        );
    }

    #[test]
    fn bad_metadata_is_rejected_at_compile() {
        let kind = ApiKeyAuth::from_pairs([]);
        let error = kind
            .compile(json!({"required": "yes"}).as_object().unwrap())
            .err()
            .unwrap();
        assert!(matches!(error, PolicyError::Metadata(_)));
    }

    #[test]
    fn keys_file_accepts_plain_and_hashed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        let hashed: String = digest("k2").iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            &path,
            format!("- user_id: u1\n  key: k1\n- user_id: u2\n  key_sha256: {hashed}\n"),
        )
        .unwrap();
        let kind = ApiKeyAuth::from_settings(&ApiKeySettings {
            keys_file: Some(path),
            keys_env: None,
        })
        .unwrap();
        let policy = kind.compile(&Map::new()).unwrap();
        for key in ["k1", "k2"] {
            let outcome = policy.execute(&ctx_with("x-api-key", key)).unwrap();
            assert_eq!(outcome.decision, Decision::Allow, "{key}");
        }
    }
}
