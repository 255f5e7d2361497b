//! The agent configuration (spec section 4.1.5): strict YAML, then [`AgentConfig::validate`].

use std::path::PathBuf;

use serde::Deserialize;

use crate::telemetry::TracingConfig;

/// Why an agent configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not fit the schema.
    #[error("invalid agent configuration: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("invalid agent configuration: {0}")]
    Invalid(String),
}

/// Root of the agent configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The `agent_core` section.
    pub agent_core: AgentCore,
}

/// The `agent_core` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCore {
    /// Agent name advertised to the kernel.
    #[serde(default = "default_name")]
    pub name: String,
    /// Unix socket the agent listens on (created with mode 0600).
    #[serde(default = "default_socket")]
    pub socket_path: PathBuf,
    /// Server limits.
    #[serde(default)]
    pub server: ServerSettings,
    /// Policy handling.
    #[serde(default)]
    pub policies: PolicyHandling,
    /// Logs and metrics.
    #[serde(default)]
    pub observability: AgentObservability,
    /// Body and state size limits.
    #[serde(default)]
    pub resource_limits: ResourceLimits,
    /// Agent-level settings of individual policies (secrets live here, not in routes).
    #[serde(default)]
    pub policy_settings: PolicySettings,
}

impl Default for AgentCore {
    fn default() -> Self {
        Self {
            name: default_name(),
            socket_path: default_socket(),
            server: ServerSettings::default(),
            policies: PolicyHandling::default(),
            observability: AgentObservability::default(),
            resource_limits: ResourceLimits::default(),
            policy_settings: PolicySettings::default(),
        }
    }
}

/// `agent_core.server`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Requests executed at once; more wait.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// Upper bound of one chain execution.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_requests: default_max_concurrent(),
            request_timeout_ms: default_request_timeout(),
        }
    }
}

/// `agent_core.policies`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyHandling {
    /// Fail a request whose chain names a policy this agent does not have.
    #[serde(default)]
    pub fail_on_unknown: bool,
}

/// `agent_core.observability`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentObservability {
    /// Log level filter (`info`, `debug`, or an `EnvFilter` directive).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Serve Prometheus metrics and health endpoints.
    #[serde(default = "default_true")]
    pub metrics_enabled: bool,
    /// Port of the metrics and health endpoints (0 picks a free port).
    #[serde(default = "default_agent_metrics_port")]
    pub metrics_port: u16,
    /// Address the metrics endpoint binds.
    #[serde(default = "default_metrics_address")]
    pub metrics_address: String,
    /// OpenTelemetry spans and OTLP export.
    #[serde(default)]
    pub tracing: TracingConfig,
}

impl Default for AgentObservability {
    fn default() -> Self {
        Self {
            log_level: default_log_level(),
            metrics_enabled: true,
            metrics_port: default_agent_metrics_port(),
            metrics_address: default_metrics_address(),
            tracing: TracingConfig::default(),
        }
    }
}

/// `agent_core.resource_limits`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Largest body a chain accepts.
    #[serde(default = "default_max_body")]
    pub max_body_size_bytes: usize,
    /// Largest chain state.
    #[serde(default = "default_max_state")]
    pub max_state_size_bytes: usize,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            max_body_size_bytes: default_max_body(),
            max_state_size_bytes: default_max_state(),
        }
    }
}

/// `agent_core.policy_settings`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Where `apiKeyAuth` finds its keys.
    #[serde(default, rename = "apiKeyAuth")]
    pub api_key_auth: ApiKeySettings,
    /// Where `jwtValidation` finds its keys.
    #[serde(default, rename = "jwtValidation")]
    pub jwt_validation: Option<JwtSettings>,
    /// The shared store of `rateLimit` (`store: redis`).
    #[serde(default, rename = "rateLimit")]
    pub rate_limit: RateLimitSettings,
}

/// Shared store of `rateLimit`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `redis://host:port/db`; needed by routes with `store: redis`.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Connect, read and write timeout of Redis calls.
    #[serde(default = "default_redis_timeout")]
    pub redis_timeout_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_timeout_ms: default_redis_timeout(),
        }
    }
}

fn default_redis_timeout() -> u64 {
    50
}

/// Key sources of `apiKeyAuth`. Keys are hashed (SHA-256) when loaded.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// YAML file: a list of `{user_id, key}` or `{user_id, key_sha256}`.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// Environment variable holding `user:key,user:key`.
    #[serde(default)]
    pub keys_env: Option<String>,
}

/// Key sources of `jwtValidation`: one of `jwks_file` and `jwks_url`, and/or an HS256 secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// JWKS file (RS256, ES256, EdDSA keys), re-read when a token names an unknown `kid`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL (`https://` or `http://`), fetched at load, when a token names an unknown
    /// `kid`, and every `jwks_refresh_interval_ms`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Period of the background JWKS refresh from `jwks_url`.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_refresh_interval_ms: u64,
    /// Timeout of one JWKS fetch.
    #[serde(default = "default_jwks_timeout")]
    pub jwks_fetch_timeout_ms: u64,
    /// Environment variable holding the HS256 shared secret.
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    /// Least time between two JWKS refreshes caused by unknown `kid`s.
    #[serde(default = "default_jwks_refresh")]
    pub min_refresh_interval_ms: u64,
}

impl JwtSettings {
    /// Exactly one JWKS source (file or URL) unless the section only names an HS256 secret.
    pub fn check(&self) -> Result<(), String> {
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), Some(_)) => return Err("give jwks_file or jwks_url, not both".to_owned()),
            (None, None) if self.hs256_secret_env.is_none() => {
                return Err("needs jwks_file or jwks_url (or hs256_secret_env)".to_owned())
            }
            _ => {}
        }
        if let Some(url) = &self.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err("jwks_url must be an https:// or http:// URL".to_owned());
            }
        }
        if self.jwks_refresh_interval_ms < 1000 || self.jwks_fetch_timeout_ms == 0 {
            return Err(
                "jwks_refresh_interval_ms must be at least 1000 and jwks_fetch_timeout_ms positive"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

fn default_jwks_ttl() -> u64 {
    300_000
}
fn default_jwks_timeout() -> u64 {
    2_000
}
fn default_name() -> String {
    "default-agent".to_owned()
}
fn default_socket() -> PathBuf {
    PathBuf::from("/var/run/policy-engine/agents/default.sock")
}
fn default_max_concurrent() -> usize {
    1000
}
fn default_request_timeout() -> u64 {
    5000
}
fn default_log_level() -> String {
    "info".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_agent_metrics_port() -> u16 {
    9091
}
fn default_metrics_address() -> String {
    "0.0.0.0".to_owned()
}
fn default_max_body() -> usize {
    1_048_576
}
fn default_max_state() -> usize {
    65_536
}
fn default_jwks_refresh() -> u64 {
    30_000
}

impl AgentConfig {
    /// Parses YAML text strictly and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, AgentConfigError> {
        let config: Self =
            yaml_serde::from_str(text).map_err(|e| AgentConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &std::path::Path) -> Result<(Self, String), AgentConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_yaml(&text)?;
        Ok((config, crate::config_version(&text)))
    }

    /// Checks ranges and builds every policy once so bad settings fail at load.
    pub fn validate(&self) -> Result<(), AgentConfigError> {
        let core = &self.agent_core;
        if core.name.trim().is_empty() {
            return Err(AgentConfigError::Invalid(
                "agent_core.name is empty".to_owned(),
            ));
        }
        if core.socket_path.as_os_str().is_empty() {
            return Err(AgentConfigError::Invalid(
                "agent_core.socket_path is empty".to_owned(),
            ));
        }
        if core.server.max_concurrent_requests == 0 {
            return Err(AgentConfigError::Invalid(
                "agent_core.server.max_concurrent_requests must be at least 1".to_owned(),
            ));
        }
        if !(1..=60_000).contains(&core.server.request_timeout_ms) {
            return Err(AgentConfigError::Invalid(
                "agent_core.server.request_timeout_ms must be within 1..=60000".to_owned(),
            ));
        }
        if core.resource_limits.max_body_size_bytes == 0
            || core.resource_limits.max_state_size_bytes == 0
        {
            return Err(AgentConfigError::Invalid(
                "agent_core.resource_limits must be positive".to_owned(),
            ));
        }
        crate::telemetry::parse_filter(&core.observability.log_level).map_err(|e| {
            AgentConfigError::Invalid(format!("agent_core.observability.log_level: {e}"))
        })?;
        let tracing = core
            .observability
            .tracing
            .problems("agent_core.observability.tracing");
        if !tracing.is_empty() {
            return Err(AgentConfigError::Invalid(tracing.join("; ")));
        }
        if let Some(jwt) = &core.policy_settings.jwt_validation {
            jwt.check().map_err(|e| {
                AgentConfigError::Invalid(format!("policy_settings.jwtValidation: {e}"))
            })?;
        }
        super::policies::Registry::builtin(self)
            .map_err(|e| AgentConfigError::Invalid(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AgentConfig;

    #[test]
    fn spec_example_parses_with_defaults() {
        let config = AgentConfig::from_yaml(
            "agent_core:\n  name: a\n  socket_path: /tmp/a.sock\n  policies:\n    fail_on_unknown: true\n",
        )
        .unwrap();
        assert!(config.agent_core.policies.fail_on_unknown);
        assert_eq!(
            config.agent_core.resource_limits.max_body_size_bytes,
            1_048_576
        );
        assert_eq!(config.agent_core.server.request_timeout_ms, 5000);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = AgentConfig::from_yaml("agent_core:\n  nmae: a\n").unwrap_err();
        assert!(error.to_string().contains("nmae"), "{error}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let error =
            AgentConfig::from_yaml("agent_core:\n  server:\n    max_concurrent_requests: 0\n")
                .unwrap_err();
        assert!(error.to_string().contains("max_concurrent_requests"));
    }

    fn with_jwt(settings: &str) -> Result<AgentConfig, String> {
        AgentConfig::from_yaml(&format!(
            "agent_core:\n  policy_settings:\n    jwtValidation: {settings}\n"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn jwks_needs_exactly_one_source() {
        let config = with_jwt("{jwks_url: \"https://idp.example/jwks.json\"}").unwrap();
        let jwt = config.agent_core.policy_settings.jwt_validation.unwrap();
        assert_eq!(jwt.min_refresh_interval_ms, 30_000);
        assert_eq!(jwt.jwks_refresh_interval_ms, 300_000);
        let both = with_jwt("{jwks_url: \"https://idp.example/jwks\", jwks_file: /tmp/j.json}");
        assert!(both.unwrap_err().contains("not both"));
        assert!(with_jwt("{}")
            .unwrap_err()
            .contains("needs jwks_file or jwks_url"));
        assert!(with_jwt("{jwks_url: \"ftp://idp.example/jwks\"}")
            .unwrap_err()
            .contains("https:// or http://"));
        assert!(with_jwt("{jwks_url: \"http://idp/jwks\", jwks_refresh_interval_ms: 5}").is_err());
    }

    #[test]
    fn tracing_settings_are_checked() {
        let config = AgentConfig::from_yaml(
            "agent_core:\n  observability:\n    tracing: {enabled: true, sampling_rate: 0.5}\n",
        )
        .unwrap();
        assert!(config.agent_core.observability.tracing.enabled);
        for bad in ["sampling_rate: 2", "otlp_endpoint: collector:4317"] {
            let error = AgentConfig::from_yaml(&format!(
                "agent_core:\n  observability:\n    tracing: {{{bad}}}\n"
            ))
            .unwrap_err();
            assert!(error.to_string().contains("tracing"), "{error}");
        }
    }
}
