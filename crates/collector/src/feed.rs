//! From the live inventory to the judge's [`Snapshot`]s: after every change announced by
//! the inventory's watch (Kubernetes or snapshot files), the engine is compiled again off the
//! runtime's threads and published. An inventory the engine cannot compile is logged and
//! the previous snapshot kept.

use std::sync::Arc;

use inventory::SharedInventory;
use tokio::sync::watch;

use crate::pipeline::{Snapshot, SnapshotSender};

/// Publishes a snapshot for the current inventory and after every change, until either
/// channel closes, compiled with `options`. `node`: this node's name (its pods are the local ones); `None` makes
/// every pod local.
pub async fn publish(
    inventory: SharedInventory,
    mut changed: watch::Receiver<u64>,
    node: Option<String>,
    options: netpol::Options,
    out: SnapshotSender,
) {
    let mut published = 0;
    loop {
        let (inv, node) = (inventory.clone(), node.clone());
        let built = tokio::task::spawn_blocking(move || {
            let inv = inv.read();
            let engine = inv.engine(options)?;
            Ok::<_, netpol::Error>(Snapshot {
                engine: Arc::new(engine),
                local_ips: node.map(|n| inv.local_pod_ips(&n)),
                generation: inv.generation(),
            })
        })
        .await;
        match built {
            Ok(Ok(snapshot)) if snapshot.generation > published => {
                published = snapshot.generation;
                tracing::info!(
                    generation = snapshot.generation,
                    pods = snapshot.engine.inventory().pods.len(),
                    policies = snapshot.engine.policies().len(),
                    local_pods = snapshot.local_ips.as_ref().map(|s| s.len()),
                    "inventory compiled"
                );
                if out.send(Some(Arc::new(snapshot))).is_err() {
                    return;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the inventory does not compile; judging with the previous one")
            }
            Err(e) => tracing::error!(error = %e, "compiling the inventory"),
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            () = out.closed() => return,
        }
    }
}
