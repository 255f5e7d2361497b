//! The compiled-in policies and their registry.
//!
//! A [`PolicyKind`] is registered once per agent (with its agent-level settings, e.g. where API
//! keys live); it compiles route metadata into a [`CompiledPolicy`] that the agent caches, so
//! metadata is parsed and checked once, not per request.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::chain::{Context, Outcome, Phase};
use super::config::AgentConfig;

mod allow_all;
mod api_key;
mod audit_log;
mod body_transform;
mod ip_filter;
mod jwt;
mod rate_limit;
mod role_check;
mod security_headers;

pub use api_key::ApiKeyAuth;
pub use jwt::JwtValidation;
pub use rate_limit::TokenBuckets;

/// Why a policy could not be built or could not run.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The policy is not compiled into this agent.
    #[error("unknown policy `{0}`")]
    Unknown(String),
    /// The route metadata does not fit the policy's schema.
    #[error("invalid metadata: {0}")]
    Metadata(String),
    /// The agent-level settings of a policy are wrong (bad key file, bad JWKS, ...).
    #[error("invalid policy settings: {0}")]
    Settings(String),
    /// The policy ran into something it cannot handle (e.g. a body that is not JSON).
    #[error("execution failed: {0}")]
    Execution(String),
    /// A body or state size limit was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
}

impl PolicyError {
    /// A short, bounded code for the `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown_policy",
            Self::Metadata(_) => "invalid_metadata",
            Self::Settings(_) => "invalid_settings",
            Self::Execution(_) => "execution_error",
            Self::Limit(_) => "limit_exceeded",
        }
    }
}

/// What a policy advertises in `GetAgentConfig`.
#[derive(Clone, Debug)]
pub struct Descriptor {
    /// Unique name used in chains.
    pub name: &'static str,
    /// Implementation version.
    pub version: &'static str,
    /// One line of description.
    pub description: &'static str,
    /// JSON schema of the metadata object.
    pub metadata_schema: Value,
    /// Phases the policy can run in.
    pub phases: &'static [Phase],
    /// The policy always needs the body of its phase.
    pub requires_body: bool,
    /// Boolean metadata keys that, when true, make the policy need the body.
    pub body_flags: &'static [&'static str],
}

/// Work that waits on I/O (a JWKS fetch), run by the agent outside the synchronous chain.
pub type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A kind of policy, compiled into the agent.
pub trait PolicyKind: Send + Sync {
    /// Its advertisement.
    fn descriptor(&self) -> Descriptor;
    /// Loads what the kind fetches over the network and schedules its refreshes; awaited once
    /// per loaded configuration, inside the runtime. Defaults to nothing.
    fn start(&self) -> Option<Pending> {
        None
    }
    /// Whether the kind can do its work now (its keys loaded, its store reachable at last
    /// use); the error says why not, without secrets. Defaults to healthy.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    /// Builds an executable policy from route metadata (already decoded from the wire).
    fn compile(
        &self,
        metadata: &Map<String, Value>,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError>;
    /// Like [`PolicyKind::compile`], with the chain entry's stable instance key (shared state
    /// such as Redis buckets is named after it). Defaults to `compile`.
    fn compile_instance(
        &self,
        metadata: &Map<String, Value>,
        instance_key: &str,
    ) -> Result<Arc<dyn CompiledPolicy>, PolicyError> {
        let _ = instance_key;
        self.compile(metadata)
    }
}

/// A policy bound to one route's metadata.
pub trait CompiledPolicy: Send + Sync {
    /// I/O this request needs before [`CompiledPolicy::execute`] (a JWKS refetch for an
    /// unknown `kid`); awaited by the agent before the chain runs. Defaults to nothing.
    fn prepare(&self, ctx: &Context) -> Option<Pending> {
        let _ = ctx;
        None
    }
    /// Runs the policy on the current context. Never panics on input.
    fn execute(&self, ctx: &Context) -> Result<Outcome, PolicyError>;
    /// Request headers this policy writes as identity (lowercase: `x-user-id`, the targets of
    /// `claims_to_headers`). The chain removes them from the client's request before any
    /// policy runs, so only a policy can set them. Defaults to none.
    fn identity_headers(&self) -> &[String] {
        &[]
    }
}

/// Policy name → kind.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn PolicyKind>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// Registers a kind under its descriptor's name.
    pub fn register(&mut self, kind: Arc<dyn PolicyKind>) {
        self.kinds.insert(kind.descriptor().name, kind);
    }

    /// Every compiled-in policy, initialised with the agent's policy settings.
    pub fn builtin(config: &AgentConfig) -> Result<Self, PolicyError> {
        let settings = &config.agent_core.policy_settings;
        let mut registry = Self::default();
        registry.register(Arc::new(allow_all::AllowAll));
        registry.register(Arc::new(ApiKeyAuth::from_settings(&settings.api_key_auth)?));
        registry.register(Arc::new(JwtValidation::from_settings(
            settings.jwt_validation.as_ref(),
        )?));
        registry.register(Arc::new(rate_limit::RateLimit::from_settings(
            &settings.rate_limit,
        )?));
        registry.register(Arc::new(role_check::RoleCheck));
        registry.register(Arc::new(security_headers::AddSecurityHeaders));
        registry.register(Arc::new(body_transform::ResponseBodyTransform));
        registry.register(Arc::new(audit_log::AuditLog));
        registry.register(Arc::new(ip_filter::IpFilter));
        Ok(registry)
    }

    /// Runs every kind's [`PolicyKind::start`] (first JWKS fetches) and waits for them.
    pub async fn start(&self) {
        for pending in self.kinds.values().filter_map(|k| k.start()) {
            pending.await;
        }
    }

    /// Every registered kind's health, by name.
    pub fn health(&self) -> Vec<(&'static str, Result<(), String>)> {
        self.kinds
            .iter()
            .map(|(name, kind)| (*name, kind.health()))
            .collect()
    }

    /// Descriptors of every registered kind, for discovery and offline validation.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        self.kinds.values().map(|k| k.descriptor()).collect()
    }

    /// Looks a kind up.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PolicyKind>> {
        self.kinds.get(name)
    }
}

/// Decodes wire metadata (every value is a JSON text) into an object.
pub fn decode_metadata<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Map<String, Value>, PolicyError> {
    entries
        .into_iter()
        .map(|(key, text)| {
            serde_json::from_str(text)
                .map(|value| (key.clone(), value))
                .map_err(|e| PolicyError::Metadata(format!("value of `{key}` is not JSON: {e}")))
        })
        .collect()
}

/// Checks metadata against a descriptor's schema, then deserializes it into the typed form.
pub(crate) fn typed<T: DeserializeOwned>(
    schema: &Value,
    metadata: &Map<String, Value>,
) -> Result<T, PolicyError> {
    let value = Value::Object(metadata.clone());
    let errors = crate::schema::validate(&value, schema);
    if !errors.is_empty() {
        return Err(PolicyError::Metadata(errors.join("; ")));
    }
    serde_json::from_value(value).map_err(|e| PolicyError::Metadata(e.to_string()))
}

/// Request phase only.
pub(crate) const REQUEST: &[Phase] = &[Phase::Request];
/// Response phase only.
pub(crate) const RESPONSE: &[Phase] = &[Phase::Response];
/// Both phases.
pub(crate) const BOTH: &[Phase] = &[Phase::Request, Phase::Response];
