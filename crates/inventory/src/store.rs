//! [`Inventory`]: the objects the policy engine needs, keyed by kind, namespace and name.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::error::Error;
use crate::kind::{Kind, ObjectKey};

/// An inventory shared between the source that writes it and the readers that build
/// engines: a plain lock rather than a channel of snapshots, so a change to one pod costs
/// one map update and readers clone nothing. Locks are held only for in-memory work, never
/// across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct SharedInventory(Arc<RwLock<Inventory>>);

/// The objects the policy engine needs, stripped of what it does not read, in a
/// deterministic order (kind in [`Kind::ALL`] order, then namespace, then name).
///
/// Every object is checked by `netpol` when it is applied: one the engine would reject is
/// not stored (the previous version under its key, if any, stays), so
/// [`engine`](Inventory::engine) only fails if `netpol` changes its mind.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    objects: BTreeMap<ObjectKey, Value>,
    /// Workloads (Deployment, StatefulSet, ...) of snapshot files that carry templates
    /// instead of pods, keyed by (kind, namespace, name); the engine stands a pod in for
    /// each, as `policyhub validate` does. The cluster watch keeps real pods only.
    workloads: BTreeMap<(String, String, String), Value>,
    generation: u64,
}

/// The kinds of workload the engine turns into template pods.
pub(crate) const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

impl Inventory {
    /// Adds a workload of a snapshot file (see the `workloads` field), checked by the engine.
    pub(crate) fn apply_workload(&mut self, obj: Value) -> Result<(), Error> {
        let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let kind = text("/kind").to_string();
        let name = text("/metadata/name").to_string();
        if name.is_empty() {
            return Err(Error::MissingName { kind: "workload" });
        }
        let ns = Some(text("/metadata/namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        netpol::Bundle::default()
            .add_object(&obj, &format!("{kind} {ns}/{name}"), 1, "")
            .map_err(Error::InvalidWorkload)?;
        if self
            .workloads
            .insert((kind, ns, name), obj.clone())
            .as_ref()
            != Some(&obj)
        {
            self.generation += 1;
        }
        Ok(())
    }

    /// Adds or replaces one object. Returns whether the inventory changed.
    pub fn apply(&mut self, obj: Value) -> Result<bool, Error> {
        let (key, obj) = normalize(obj)?;
        if self.objects.get(&key) == Some(&obj) {
            return Ok(false);
        }
        self.objects.insert(key, obj);
        self.generation += 1;
        Ok(true)
    }

    /// Removes one object. Returns whether it was there.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        let removed = self.objects.remove(key).is_some();
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// Replaces every object of `kind` with `objs` (a relist): objects missing from `objs`
    /// are removed. Objects that cannot be kept are returned and the rest still applied.
    pub fn replace_kind(
        &mut self,
        kind: Kind,
        objs: impl IntoIterator<Item = Value>,
    ) -> Vec<Error> {
        let mut errors = Vec::new();
        let mut fresh = BTreeMap::new();
        for obj in objs {
            match normalize(obj) {
                Ok((key, _)) if key.kind != kind => errors.push(Error::OtherKind { key }),
                Ok((key, obj)) => {
                    fresh.insert(key, obj);
                }
                Err(e) => errors.push(e),
            }
        }
        let unchanged = self
            .objects
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .eq(fresh.iter());
        if !unchanged {
            self.objects.retain(|k, _| k.kind != kind);
            self.objects.extend(fresh);
            self.generation += 1;
        }
        errors
    }

    /// Takes every object of `other` in place of this inventory's. Returns whether
    /// anything changed; the generation keeps counting from this inventory's.
    pub fn replace_all(&mut self, other: Inventory) -> bool {
        if self.objects == other.objects && self.workloads == other.workloads {
            return false;
        }
        self.objects = other.objects;
        self.workloads = other.workloads;
        self.generation += 1;
        true
    }

    /// Builds the policy engine over every object. Pods that have finished (phase
    /// `Succeeded` or `Failed`) are left out: they receive no traffic and their IPs may
    /// already belong to another pod.
    pub fn engine(&self, options: netpol::Options) -> Result<netpol::Engine, netpol::Error> {
        let mut bundle = netpol::Bundle::default();
        for (key, obj) in &self.objects {
            if key.kind == Kind::Pod && finished(obj) {
                continue;
            }
            bundle.add_object(obj, &key.to_string(), 1, "")?;
        }
        for ((kind, ns, name), obj) in &self.workloads {
            bundle.add_object(obj, &format!("{kind} {ns}/{name}"), 1, "")?;
        }
        Ok(netpol::Engine::new(
            bundle.inventory,
            bundle.policies,
            options,
        ))
    }

    /// Counts changes: bumped once by every call that changed the inventory.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The number of objects held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the inventory holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The IPs (`status.podIP`, `status.podIPs`) of the running or pending pods scheduled
    /// on `node_name` (`spec.nodeName`).
    pub fn local_pod_ips(&self, node_name: &str) -> HashSet<IpAddr> {
        let mut ips = HashSet::new();
        for (key, pod) in &self.objects {
            let on_node = pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node_name);
            if key.kind != Kind::Pod || !on_node || finished(pod) {
                continue;
            }
            let listed = pod
                .pointer("/status/podIPs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("ip"));
            let texts = pod.pointer("/status/podIP").into_iter().chain(listed);
            ips.extend(
                texts
                    .filter_map(Value::as_str)
                    .filter_map(|t| t.parse::<IpAddr>().ok()),
            );
        }
        ips
    }

    /// Every object in order, as stored (apiVersion and kind filled in, stripped).
    pub fn documents(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }

    /// The inventory as `kubectl get -o yaml` prints a list; it loads back as a snapshot.
    pub fn to_yaml(&self) -> Result<String, Error> {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
            "items": self.objects.values().chain(self.workloads.values()).collect::<Vec<_>>(),
        });
        Ok(yaml_serde::to_string(&list)?)
    }
}

impl SharedInventory {
    /// Shares `inventory`.
    pub fn new(inventory: Inventory) -> Self {
        SharedInventory(Arc::new(RwLock::new(inventory)))
    }

    /// Locks for reading. Poisoning is ignored: the inventory's methods do not panic, and
    /// the next relist or reload repairs whatever a panicking caller left.
    pub fn read(&self) -> RwLockReadGuard<'_, Inventory> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks for writing (see [`read`](SharedInventory::read) on poisoning).
    pub fn write(&self) -> RwLockWriteGuard<'_, Inventory> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends `generation` unless the receivers already have it.
pub(crate) fn notify(changed: &watch::Sender<u64>, generation: u64) {
    changed.send_if_modified(|sent| {
        let new = *sent != generation;
        *sent = generation;
        new
    });
}

/// Logs objects that were not kept: other kinds at debug level, the rest as warnings.
pub(crate) fn log_skipped(skipped: &[Error]) {
    for e in skipped {
        if e.is_unsupported() {
            tracing::debug!(error = %e, "object not kept");
        } else {
            tracing::warn!(error = %e, "object skipped");
        }
    }
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Checks an object, fills in apiVersion, kind and namespace, strips it and validates it
/// with `netpol`.
fn normalize(obj: Value) -> Result<(ObjectKey, Value), Error> {
    let Value::Object(mut map) = obj else {
        return Err(Error::NotAnObject);
    };
    let text = |map: &Map<String, Value>, field: &str| {
        map.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind_name) = (text(&map, "apiVersion"), text(&map, "kind"));
    let kind = Kind::of(&api_version, &kind_name).ok_or(Error::Unsupported {
        api_version: api_version.clone(),
        kind: kind_name,
    })?;
    let meta = map.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or(Error::MissingName { kind: kind.name() })?;
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    let key = ObjectKey::new(kind, namespace, name);
    if api_version.is_empty() {
        map.insert("apiVersion".into(), kind.api_version().into());
    }
    map.insert("kind".into(), kind.name().into());
    strip(kind, &mut map);
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        if key.namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), key.namespace.clone().into());
        }
    }
    let obj = Value::Object(map);
    let mut check = netpol::Bundle::default();
    if let Err(e) = check.add_object(&obj, &key.to_string(), 1, "") {
        let (path, message) = match e {
            netpol::Error::Invalid(field) => (field.path, field.message),
            other => (String::new(), other.to_string()),
        };
        return Err(Error::Invalid { key, path, message });
    }
    Ok((key, obj))
}

/// Drops what the engine does not read: metadata beyond name, namespace, labels and owner
/// references; every status except a pod's phase and IPs; pod spec fields other than the
/// node, the service account and container ports.
fn strip(kind: Kind, obj: &mut Map<String, Value>) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.retain(|k, _| {
            matches!(
                k.as_str(),
                "name" | "namespace" | "labels" | "ownerReferences"
            )
        });
        for owner in array_mut(meta, "ownerReferences") {
            if let Value::Object(owner) = owner {
                owner.retain(|k, _| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "name" | "controller")
                });
            }
        }
    }
    match kind {
        Kind::Namespace => {
            obj.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        }
        Kind::Pod => {
            obj.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "apiVersion" | "kind" | "metadata" | "spec" | "status"
                )
            });
            if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                spec.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "nodeName" | "serviceAccountName" | "containers" | "initContainers"
                    )
                });
                for field in ["containers", "initContainers"] {
                    for container in array_mut(spec, field) {
                        if let Value::Object(c) = container {
                            c.retain(|k, _| k == "name" || k == "ports");
                        }
                    }
                }
            }
            if let Some(Value::Object(status)) = obj.get_mut("status") {
                status.retain(|k, _| matches!(k.as_str(), "phase" | "podIP" | "podIPs"));
            }
        }
        _ => {
            obj.remove("status");
        }
    }
}

fn array_mut<'a>(
    map: &'a mut Map<String, Value>,
    field: &str,
) -> impl Iterator<Item = &'a mut Value> {
    map.get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests;
