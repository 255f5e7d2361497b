//! The live cluster inventory of Policy Hub's node agent: the namespaces, pods and network
//! policies that the `netpol` engine evaluates, kept current from one of two sources that
//! feed the same [`Inventory`]:
//!
//! - [`watch_cluster`]: kube-rs watchers on the Kubernetes API;
//! - [`watch_files`]: snapshot files (`kubectl get -A -o yaml`) reloaded when they change.
//!
//! Both write a [`SharedInventory`] and announce each change's [`Inventory::generation`] on
//! a `tokio::sync::watch` channel; readers build an engine with [`Inventory::engine`].
//!
//! ```
//! use inventory::Inventory;
//! let mut inv = Inventory::default();
//! inv.load_str(r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, namespace: shop, labels: {app: web}, managedFields: []}
//! spec: {nodeName: node-a}
//! status: {phase: Running, podIP: 10.0.0.5, conditions: []}
//! "#, "snapshot.yaml").unwrap();
//! assert_eq!(inv.generation(), 1);
//! assert!(inv.local_pod_ips("node-a").contains(&"10.0.0.5".parse().unwrap()));
//! let engine = inv.engine(netpol::Options::default()).unwrap();
//! assert_eq!(engine.inventory().pods.len(), 1);
//! ```

mod cluster;
mod error;
mod kind;
mod snapshot;
mod store;

pub use cluster::{watch_cluster, WatchOptions};
pub use error::Error;
pub use kind::{Kind, ObjectKey};
pub use snapshot::watch_files;
pub use store::{Inventory, SharedInventory};
