//! An embedded Kyverno-compatible evaluator of `validate` rules.
//!
//! Pure and synchronous: documents are `serde_json::Value`s, nothing here talks to a cluster.
//!
//! - [`model`]: ClusterPolicy / Policy (kyverno.io/v1, v2beta1), read with field-path errors.
//! - [`autogen`]: the `autogen-` / `autogen-cronjob-` rules Kyverno derives for pod controllers.
//! - [`matching`]: `match` / `exclude`.
//! - [`conditions`], [`pattern`], [`vars`], [`jmes`]: preconditions and deny conditions, overlay
//!   patterns with anchors, `{{ }}` substitution, JMESPath with Kyverno's functions.
//! - [`engine`]: a rule's result (pass / fail / skip / error) on one resource, foreach included.
//! - [`schema`]: the ClusterPolicy / Policy schema check, the first gate of every dry-run.
//! - [`runner`]: `kyverno-test.yaml` loading and the Kyverno CLI's scoring;
//!   [`runner::conformance`] over corpus case files.
//!
//! ```
//! use kyverno::{CompiledPolicy, Policy, Request, RuleStatus};
//! use serde_json::json;
//!
//! let policy = Policy::from_value(&json!({
//!     "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
//!     "metadata": {"name": "no-latest"},
//!     "spec": {"rules": [{
//!         "name": "tag",
//!         "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
//!         "validate": {"message": "no latest", "pattern": {"spec": {"containers": [{"image": "!*:latest"}]}}}
//!     }]}
//! }), "example.yaml")?;
//! let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
//!                  "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}});
//! let results = CompiledPolicy::new(policy).evaluate(&pod, &Request::default());
//! assert_eq!(results[0].status, RuleStatus::Fail);
//! # Ok::<(), kyverno::Error>(())
//! ```

pub mod error;
pub mod model;
pub mod pattern;
pub mod value;

pub use error::{Error, Result};
pub mod autogen;
pub mod conditions;
pub mod engine;
mod fuzz;
pub mod jmes;
pub mod matching;
pub mod runner;
pub mod schema;
mod timefmt;
pub mod vars;

pub use engine::{CompiledPolicy, Request, RuleResponse, RuleStatus};
pub use fuzz::{fuzz_entry, fuzz_expression};
pub use model::Policy;
