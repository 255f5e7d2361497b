//! Policy packs: curated, parameterised bundles of network policies (NetworkPolicy,
//! CiliumNetworkPolicy, AdminNetworkPolicy / BaselineAdminNetworkPolicy) and Kyverno
//! admission policies, with control mappings for compliance frameworks.
//!
//! A pack is a directory `packs/<slug>/` holding `pack.yaml` ([`Manifest`]), minijinja
//! templates and tests. [`render`] resolves parameters (defaults + overrides, checked against
//! the pack's JSON Schema), renders each item with strict undefined variables, and parses
//! every document with netpol (Kyverno items with `kyverno::runner::load_policy`) before it
//! is returned. [`run_tests`] applies a pack to fixture clusters and checks the verdicts of
//! named flows; [`preview`] applies it to a snapshot and judges the observed flows again.
//!
//! Pure and synchronous: no I/O but reading a pack directory when handed one; the shipped
//! packs are embedded at build time ([`Catalog::builtin`]).

mod catalog;
mod error;
mod fuzz;
mod manifest;
mod params;
mod preview;
mod render;
mod suite;

pub use catalog::Catalog;
pub use error::{Error, Result};
pub use fuzz::fuzz_manifest;
pub use manifest::{
    Auditor, Category, Control, Framework, Item, ItemKind, Manifest, Pack, Parameters, Tier,
};
pub use params::{resolve, Param};
pub use preview::{preview, BlockedEdge, Coverage, Preview};
pub use render::{render, Rendered, RenderedItem};
pub use suite::{
    run_tests, Admission, Expect, ExpectedAdmission, ExpectedFlow, TestFailure, TestFile,
    TestResult,
};
