//! Envoy External Processing policy engine: the policy kernel (Envoy's `ext_proc` gRPC server)
//! and the policy agent (compiled-in policies behind a Unix socket).
//!
//! - [`agent`]: configuration, the chain engine (pure), the policies, the gRPC server on a UDS.
//! - [`kernel`]: configuration, route table, agent registry and client, the ext_proc server.
//! - [`proto`]: the kernel <-> agent protocol generated from `proto/policy_agent.proto`.

pub mod agent;
pub mod cli;
pub mod kernel;
pub mod schema;
pub mod telemetry;
pub mod uds;

/// Generated kernel <-> agent protocol.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("policyhub.agent.v1");
}

/// A short, stable version of a configuration: the first 12 hex digits of its SHA-256.
pub fn config_version(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}
