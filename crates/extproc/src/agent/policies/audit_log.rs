//! `auditLog`: one structured JSON line per request and per response (target `audit`),
//! with credentials redacted.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{CompiledPolicy, Descriptor, PolicyError, PolicyKind, BOTH};
use crate::agent::chain::{Context, Outcome};

/// The `auditLog` policy kind.
pub struct AuditLog;

/// Headers whose values never reach a log.
const ALWAYS_REDACTED: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "proxy-authorization",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    log_request_body: bool,
    #[serde(default)]
    log_response_body: bool,
    #[serde(default)]
    redact_headers: Vec<String>,
    #[serde(default)]
    redact_fields: Vec<String>,
}

impl PolicyKind for AuditLog {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "auditLog",
            version: "1.0.0",
            description: "Writes one JSON audit line per request and response, secrets redacted",
            metadata_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "log_request_body": {"type": "boolean"},
                    "log_response_body": {"type": "boolean"},
                    "redact_headers": {"type": "array", "items": {"type": "string"}},
                    "redact_fields": {"type": "array", "items": {"type": "string"}}
                }
            }),
            phases: BOTH,
            requires_body: false,
            body_flags: &["log_request_body", "log_response_body"],
        }
    }

    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let meta: Metadata = super::typed(&self.descriptor().metadata_schema, metadata)?;
        let mut redact: Vec<String> = ALWAYS_REDACTED.iter().map(|h| (*h).to_owned()).collect();
        redact.extend(meta.redact_headers.iter().map(|h| h.to_ascii_lowercase()));
        Ok(Arc::new(Compiled {
            redact_headers: redact,
            redact_fields: meta.redact_fields,
            request_body: meta.log_request_body,
            response_body: meta.log_response_body,
        }))
    }
}

struct Compiled {
    redact_headers: Vec<String>,
    redact_fields: Vec<String>,
    request_body: bool,
    response_body: bool,
}

impl Compiled {
    fn headers(&self, headers: &std::collections::HashMap<String, String>) -> Value {
        let mut names: Vec<&String> = headers.keys().collect();
        names.sort();
        let map = names
            .into_iter()
            .map(|name| {
                let value = if self.redact_headers.contains(name) {
                    "[REDACTED]".to_owned()
                } else {
                    headers[name].clone()
                };
                (name.clone(), Value::String(value))
            })
            .collect();
        Value::Object(map)
    }

    fn body(&self, body: &[u8]) -> Value {
        match serde_json::from_slice::<Value>(body) {
            Ok(mut value) => {
                redact_fields(&mut value, &self.redact_fields);
                value
            }
            Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
        }
    }

    /// Builds the audit record of the current phase.
    fn record(&self, ctx: &Context) -> Value {
        let mut record = json!({
            "request_id": ctx.request_id,
            "method": ctx.method,
            "path": ctx.path,
            "authority": ctx.authority,
            "client_ip": ctx.client_ip,
            "user_id": ctx.state.get("auth.user_id").or_else(|| ctx.state.get("jwt.sub")),
        });
        match &ctx.response {
            None => {
                record["phase"] = json!("request");
                record["headers"] = self.headers(&ctx.headers);
                if self.request_body {
                    record["body"] = self.body(&ctx.body);
                }
            }
            Some(response) => {
                record["phase"] = json!("response");
                record["status"] = json!(response.status_code);
                record["headers"] = self.headers(&response.headers);
                if self.response_body {
                    record["body"] = self.body(&response.body);
                }
            }
        }
        record
    }
}

fn redact_fields(value: &mut Value, names: &[String]) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if names.contains(name) {
                    *field = Value::String("[REDACTED]".to_owned());
                } else {
                    redact_fields(field, names);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact_fields(item, names)),
        _ => {}
    }
}

impl CompiledPolicy for Compiled {
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError> {
        let record = self.record(ctx);
        tracing::info!(target: "audit", audit = %record, "audit");
        Ok(Outcome::allow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let policy = Compiled {
            redact_headers: ALWAYS_REDACTED.iter().map(|h| (*h).to_owned()).collect(),
            redact_fields: vec!["password".into()],
            request_body: true,
            response_body: false,
        };
        let mut ctx = Context::default();
        ctx.headers.insert("x-api-key".into(), "secret-key".into());
        ctx.headers.insert("accept".into(), "*/*".into());
        ctx.body = br#"{"user":"a","password":"hunter2"}"#.to_vec();
        let line = policy.record(&ctx).to_string();
        assert!(
            !line.contains("secret-key") && !line.contains("hunter2"),
            "{line}"
        );
        assert!(line.contains("*/*"));
    }
}
