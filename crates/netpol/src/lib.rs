//! Policy Hub's network policy core: the policy model, parsers for Kubernetes
//! NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy, and an exact evaluator that explains its verdicts.
//!
//! Pure and synchronous: no Kubernetes client, no I/O beyond reading files it is given.
//!
//! ```
//! use netpol::{Bundle, Endpoint, Engine, Options, Protocol, Verdict};
//! let mut bundle = Bundle::default();
//! bundle.load_str(r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, namespace: shop, labels: {app: web}}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: db, namespace: shop, labels: {app: db}}
//! ---
//! apiVersion: networking.k8s.io/v1
//! kind: NetworkPolicy
//! metadata: {name: db-from-web, namespace: shop}
//! spec:
//!   podSelector: {matchLabels: {app: db}}
//!   ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
//! "#, "example.yaml").unwrap();
//! let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
//! let (web, db) = (Endpoint::Pod(0), Endpoint::Pod(1));
//! assert_eq!(engine.decide(&web, &db, Protocol::Tcp, 5432).verdict, Verdict::Allowed);
//! assert_eq!(engine.decide(&web, &db, Protocol::Tcp, 22).verdict, Verdict::Blocked);
//! assert_eq!(engine.decide(&db, &web, Protocol::Tcp, 80).verdict, Verdict::NoPolicy);
//! ```

pub mod cidr;
pub mod conformance;
pub mod connectivity;
pub mod dialect;
pub mod diff;
pub mod engine;
pub mod error;
pub mod explain;
pub mod exposure;
pub mod ingress;
pub mod manifest;
pub mod model;
pub mod policy;
pub mod ports;
pub mod selector;

pub use engine::{AllowLocalhost, Endpoint, Engine, Options, VerdictCache};
pub use error::Error;
pub use explain::{Decision, DirectionDecision, ImplicitAllow, RuleMatch, Verdict};
pub use manifest::Bundle;
pub use model::{Inventory, Pod};
pub use ports::{PortSet, Protocol};
