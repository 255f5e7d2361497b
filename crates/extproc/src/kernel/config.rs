//! The kernel configuration (spec section 3.2): strict YAML, then [`KernelConfig::validate`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::routes::PolicyCatalog;
use crate::agent::chain::{OnFailure, Phase};
use crate::telemetry::TracingConfig;

/// Largest per-agent timeout (spec section 3.7).
pub const MAX_AGENT_TIMEOUT_MS: u64 = 5000;

/// Most proxy hops `trust_forwarded_for` may name.
pub const MAX_TRUSTED_HOPS: u32 = 16;

/// Why a kernel configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum KernelConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML does not fit the schema.
    #[error("invalid kernel configuration: {0}")]
    Parse(String),
    /// The Envoy configuration given to `--envoy-config` is not YAML.
    #[error("invalid Envoy configuration: {0}")]
    Envoy(String),
    /// Values are inconsistent or out of range (every problem, one per line).
    #[error("invalid kernel configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Root of the kernel configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// The `policy_kernel` section.
    pub policy_kernel: PolicyKernel,
}

/// The `policy_kernel` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyKernel {
    /// ext_proc listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Header read for the route name when Envoy sends no `xds.route_name` attribute.
    /// Off by default: a client could choose its own route with it.
    #[serde(default)]
    pub route_header: Option<String>,
    /// Proxies in front of Envoy whose `X-Forwarded-For` entries are believed: 0 (default)
    /// takes the client address only from Envoy's `source.address`; N takes the Nth entry
    /// from the right of `X-Forwarded-For`.
    #[serde(default)]
    pub trust_forwarded_for: u32,
    /// Agents, reached over Unix sockets.
    pub agents: Vec<AgentConfig>,
    /// Route name → chains.
    #[serde(default)]
    pub route_policies: Vec<RoutePolicy>,
    /// Chains for routes without an entry.
    #[serde(default)]
    pub default_policy: Option<DefaultPolicy>,
    /// Metrics, logs, tracing.
    #[serde(default)]
    pub observability: Observability,
}

/// `policy_kernel.server`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Bind address.
    #[serde(default = "default_address")]
    pub address: String,
    /// Bind port (0 picks a free port).
    #[serde(default = "default_port")]
    pub port: u16,
    /// HTTP/2 streams per Envoy connection.
    #[serde(default = "default_streams")]
    pub max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            port: default_port(),
            max_concurrent_streams: default_streams(),
        }
    }
}

/// One entry of `policy_kernel.agents`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Name used by routes.
    pub name: String,
    /// Unix socket of the agent.
    pub socket_path: PathBuf,
    /// Time the kernel waits for one chain (1..=5000 ms).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Retries when the agent cannot be reached.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Period of the health check (its own timeout is 100 ms).
    #[serde(default = "default_health_interval")]
    pub health_check_interval_ms: u64,
    /// Let requests through when the agent is unavailable or times out.
    #[serde(default)]
    pub fail_open: bool,
    /// HTTP/2 connections to the agent (requests are spread over them).
    #[serde(default = "default_connections")]
    pub connections: usize,
}

/// `retry` of an agent.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all (1 = no retry).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff; doubles after each attempt.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff_ms: default_backoff(),
        }
    }
}

/// One chain entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    /// Policy name, as advertised by the agent.
    pub policy: String,
    /// Policy parameters.
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// `deny` (default), `continue` or `skip_remaining`.
    #[serde(default)]
    pub on_failure: Option<String>,
    /// Dry run: evaluated and recorded, never denies or fails the request.
    #[serde(default)]
    pub shadow: bool,
    /// The entry applies only to requests that match.
    #[serde(default)]
    pub when: Option<Condition>,
}

/// `when` of a chain entry: every part given must match (a part's list: any entry).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// HTTP methods, uppercase (`GET`, `POST`).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Prefixes of the path without its query string, each starting with `/`.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// Request header name → exact value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Condition {
    /// Problems, each prefixed with `at`.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.methods.is_empty() && self.path_prefixes.is_empty() && self.headers.is_empty() {
            problems.push(format!(
                "{at} needs methods, path_prefixes or headers (or no `when`)"
            ));
        }
        for (i, method) in self.methods.iter().enumerate() {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                problems.push(format!(
                    "{at}.methods[{i}] `{method}` must be an uppercase HTTP method"
                ));
            }
        }
        for (i, prefix) in self.path_prefixes.iter().enumerate() {
            if !prefix.starts_with('/') || prefix.contains('?') {
                problems.push(format!(
                    "{at}.path_prefixes[{i}] `{prefix}` must start with / and hold no query"
                ));
            }
        }
        for name in self.headers.keys() {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) {
                problems.push(format!("{at}.headers `{name}` is not a header name"));
            }
        }
        problems
    }
}

/// One entry of `policy_kernel.route_policies`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// Envoy route name (`xds.route_name`).
    pub route_name: String,
    /// Agent that runs the chains (default: the first agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// Every entry of both chains is a dry run (see [`ChainEntry::shadow`]).
    #[serde(default)]
    pub shadow: bool,
    /// Request phase chain.
    #[serde(default)]
    pub request_policy_chain: Vec<ChainEntry>,
    /// Response phase chain.
    #[serde(default)]
    pub response_policy_chain: Vec<ChainEntry>,
}

/// `policy_kernel.default_policy`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DefaultPolicy {
    /// Agent that runs the chains (default: the first agent).
    #[serde(default)]
    pub agent: Option<String>,
    /// Every entry of both chains is a dry run (see [`ChainEntry::shadow`]).
    #[serde(default)]
    pub shadow: bool,
    /// Request phase chain.
    #[serde(default)]
    pub request_policy_chain: Vec<ChainEntry>,
    /// Response phase chain.
    #[serde(default)]
    pub response_policy_chain: Vec<ChainEntry>,
}

/// `policy_kernel.observability`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Port of `/metrics` and `/health/*` (0 picks a free port).
    #[serde(default = "default_metrics_port")]
    pub metrics_port: u16,
    /// Address of the admin endpoint.
    #[serde(default = "default_address")]
    pub metrics_address: String,
    /// Log level or `EnvFilter` directive.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Tracing settings.
    #[serde(default)]
    pub tracing: TracingConfig,
}

impl Default for Observability {
    fn default() -> Self {
        Self {
            metrics_port: default_metrics_port(),
            metrics_address: default_address(),
            log_level: default_log_level(),
            tracing: TracingConfig::default(),
        }
    }
}

fn default_address() -> String {
    "0.0.0.0".to_owned()
}
fn default_port() -> u16 {
    9001
}
fn default_streams() -> u32 {
    1000
}
fn default_timeout() -> u64 {
    500
}
fn default_health_interval() -> u64 {
    5000
}
fn default_connections() -> usize {
    4
}
fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> u64 {
    100
}
fn default_metrics_port() -> u16 {
    9090
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl KernelConfig {
    /// Parses YAML text strictly and validates it.
    pub fn from_yaml(text: &str) -> Result<Self, KernelConfigError> {
        let config: Self =
            yaml_serde::from_str(text).map_err(|e| KernelConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file; returns the config and its version.
    pub fn load(path: &std::path::Path) -> Result<(Self, String), KernelConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KernelConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_yaml(&text)?;
        Ok((config, crate::config_version(&text)))
    }

    /// The agent that runs a route's chains.
    pub fn agent_for(&self, name: Option<&String>) -> Option<&AgentConfig> {
        let agents = &self.policy_kernel.agents;
        match name {
            Some(name) => agents.iter().find(|a| &a.name == name),
            None => agents.first(),
        }
    }

    /// Checks structure and ranges (no agent needed).
    pub fn validate(&self) -> Result<(), KernelConfigError> {
        let k = &self.policy_kernel;
        let mut errors = Vec::new();
        if k.agents.is_empty() {
            errors.push("policy_kernel.agents: at least one agent is required".to_owned());
        }
        let mut names = HashSet::new();
        for (i, agent) in k.agents.iter().enumerate() {
            let at = format!("policy_kernel.agents[{i}]");
            if agent.name.trim().is_empty() {
                errors.push(format!("{at}.name is empty"));
            }
            if !names.insert(agent.name.as_str()) {
                errors.push(format!("{at}.name `{}` is used twice", agent.name));
            }
            if agent.socket_path.as_os_str().is_empty() {
                errors.push(format!("{at}.socket_path is empty"));
            }
            if !(1..=MAX_AGENT_TIMEOUT_MS).contains(&agent.timeout_ms) {
                errors.push(format!(
                    "{at}.timeout_ms must be within 1..={MAX_AGENT_TIMEOUT_MS}"
                ));
            }
            if !(1..=10).contains(&agent.retry.max_attempts) {
                errors.push(format!("{at}.retry.max_attempts must be within 1..=10"));
            }
            if agent.retry.backoff_ms > 10_000 {
                errors.push(format!("{at}.retry.backoff_ms must be at most 10000"));
            }
            if agent.health_check_interval_ms < 100 {
                errors.push(format!(
                    "{at}.health_check_interval_ms must be at least 100"
                ));
            }
            if !(1..=64).contains(&agent.connections) {
                errors.push(format!("{at}.connections must be within 1..=64"));
            }
        }
        let mut routes = HashSet::new();
        for (i, route) in k.route_policies.iter().enumerate() {
            let at = format!("policy_kernel.route_policies[{i}]");
            if route.route_name.is_empty() {
                errors.push(format!("{at}.route_name is empty"));
            }
            if !routes.insert(route.route_name.as_str()) {
                errors.push(format!(
                    "{at}.route_name `{}` is used twice",
                    route.route_name
                ));
            }
            if self.agent_for(route.agent.as_ref()).is_none() {
                errors.push(format!("{at}.agent names no configured agent"));
            }
            check_chain(
                &format!("{at}.request_policy_chain"),
                &route.request_policy_chain,
                &mut errors,
            );
            check_chain(
                &format!("{at}.response_policy_chain"),
                &route.response_policy_chain,
                &mut errors,
            );
        }
        if let Some(default) = &k.default_policy {
            if self.agent_for(default.agent.as_ref()).is_none() {
                errors.push(
                    "policy_kernel.default_policy.agent names no configured agent".to_owned(),
                );
            }
            check_chain(
                "policy_kernel.default_policy.request_policy_chain",
                &default.request_policy_chain,
                &mut errors,
            );
            check_chain(
                "policy_kernel.default_policy.response_policy_chain",
                &default.response_policy_chain,
                &mut errors,
            );
        }
        if let Some(header) = &k.route_header {
            if header.is_empty() || header.starts_with(':') {
                errors.push("policy_kernel.route_header must be a regular header name".to_owned());
            }
        }
        if k.trust_forwarded_for > MAX_TRUSTED_HOPS {
            errors.push(format!(
                "policy_kernel.trust_forwarded_for must be at most {MAX_TRUSTED_HOPS}"
            ));
        }
        if k.server.max_concurrent_streams == 0 {
            errors
                .push("policy_kernel.server.max_concurrent_streams must be at least 1".to_owned());
        }
        errors.extend(
            k.observability
                .tracing
                .problems("policy_kernel.observability.tracing"),
        );
        if let Err(e) = crate::telemetry::parse_filter(&k.observability.log_level) {
            errors.push(format!("policy_kernel.observability.log_level: {e}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(KernelConfigError::Invalid(errors))
        }
    }

    /// Checks every chain against a policy catalog (the compiled-in one for `--validate`,
    /// or what an agent advertised). Returns one problem per line.
    pub fn check_policies(&self, catalog: &PolicyCatalog) -> Vec<String> {
        let k = &self.policy_kernel;
        let mut problems = Vec::new();
        let mut check = |at: String, chain: &[ChainEntry], phase: Phase| {
            if let Err(e) = catalog.check_chain(chain, phase) {
                problems.push(format!("{at}: {e}"));
            }
        };
        for route in &k.route_policies {
            check(
                format!("route `{}` request chain", route.route_name),
                &route.request_policy_chain,
                Phase::Request,
            );
            check(
                format!("route `{}` response chain", route.route_name),
                &route.response_policy_chain,
                Phase::Response,
            );
        }
        if let Some(default) = &k.default_policy {
            check(
                "default request chain".to_owned(),
                &default.request_policy_chain,
                Phase::Request,
            );
            check(
                "default response chain".to_owned(),
                &default.response_policy_chain,
                Phase::Response,
            );
        }
        problems
    }
}

fn check_chain(at: &str, chain: &[ChainEntry], errors: &mut Vec<String>) {
    for (i, entry) in chain.iter().enumerate() {
        if entry.policy.is_empty() {
            errors.push(format!("{at}[{i}].policy is empty"));
        }
        if let Some(when) = &entry.when {
            errors.extend(when.problems(&format!("{at}[{i}].when")));
        }
        if let Some(value) = &entry.on_failure {
            if value.is_empty() || OnFailure::parse(value).is_none() {
                errors.push(format!(
                    "{at}[{i}].on_failure must be deny, continue or skip_remaining"
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
