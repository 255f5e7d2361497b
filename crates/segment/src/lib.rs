//! Tier segmentation from a service communication matrix.
//!
//! A [`Catalog`] (services with tier, ports, who connects to them and whom they connect to,
//! external traffic, monitoring) is turned into Kubernetes NetworkPolicies or
//! CiliumNetworkPolicies — one per tier ([`Mode::Tier`]) or one per service
//! ([`Mode::Service`]) — plus tier-label patches, a kustomization, a docker compose override
//! and Prometheus alert rules. [`verify`] checks the generated policies with the `netpol`
//! evaluator: every documented edge must be allowed, and everything allowed beyond the
//! matrix is reported. [`nft`] turns evaluated connectivity into nftables rules, so the
//! result can be proven with real packets in network namespaces.

pub mod catalog;
pub mod compose;
pub mod generate;
pub mod lab;
pub mod nft;
pub mod verify;

pub use catalog::{Catalog, CatalogError, Edge, Node};
pub use generate::{Format, Mode, Output};
