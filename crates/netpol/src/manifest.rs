//! Reading manifests: multi-document YAML or JSON, `kind: List`, every kind the evaluator
//! understands. Unknown kinds are reported and skipped.

use std::net::IpAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialect::{anp::AdminPolicy, cilium::CiliumPolicy, k8s::NetworkPolicy, ObjectMeta};
use crate::error::{Error, FieldError, InvalidField};
use crate::ingress::{validate_service, RawIngress, RawRoute, RawService};
use crate::model::{ContainerPort, Inventory, Namespace, Pod, WorkloadRef};
use crate::policy::Policy;
use crate::ports::Protocol;

/// Everything read from a set of manifests.
#[derive(Debug, Default)]
pub struct Bundle {
    pub inventory: Inventory,
    pub policies: Vec<Policy>,
    pub skipped: Vec<Skipped>,
    /// The policy objects as written, for tools that rewrite a policy (recommendations);
    /// kept only by a bundle made with [`Bundle::keeping_sources`].
    pub sources: Vec<Value>,
    keep_sources: bool,
}

/// A document that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub file: String,
    pub document: usize,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

impl Bundle {
    /// A bundle that also keeps each policy object as written in [`Bundle::sources`] (the
    /// default bundle does not copy them).
    pub fn keeping_sources() -> Bundle {
        Bundle {
            keep_sources: true,
            ..Bundle::default()
        }
    }

    /// Keeps a policy object, when this bundle keeps them.
    fn keep_source(&mut self, obj: &Value) {
        if self.keep_sources {
            self.sources.push(obj.clone());
        }
    }

    /// Reads a file or every `.yaml`/`.yml`/`.json` file under a directory (sorted).
    pub fn load_path(&mut self, path: &Path) -> Result<(), Error> {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(|source| Error::Io {
                    file: path.into(),
                    source,
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect();
            entries.sort();
            for entry in entries {
                let is_manifest = entry
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
                if entry.is_dir() || is_manifest {
                    self.load_path(&entry)?;
                }
            }
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            file: path.into(),
            source,
        })?;
        self.load_str(&text, &path.display().to_string())
    }

    /// Reads manifests from text; `file` names the source in errors.
    pub fn load_str(&mut self, text: &str, file: &str) -> Result<(), Error> {
        for (i, doc) in documents(text, file)?.into_iter().enumerate() {
            self.add_object(&doc, file, i + 1, "")?;
        }
        Ok(())
    }

    /// Adds one object (recursing into `List` items).
    pub fn add_object(
        &mut self,
        obj: &Value,
        file: &str,
        document: usize,
        prefix: &str,
    ) -> Result<(), Error> {
        if obj.is_null() {
            return Ok(());
        }
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let invalid = |e: FieldError| {
            Error::Invalid(Box::new(InvalidField {
                file: file.to_string(),
                document,
                kind: kind.clone(),
                name: name.clone(),
                path: format!("{prefix}{}", e.path),
                message: e.message,
            }))
        };
        if !obj.is_object() {
            return Err(invalid(FieldError::new(
                "",
                "expected a Kubernetes object (a mapping)",
            )));
        }
        let api = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api.rsplit_once('/').map_or("", |(g, _)| g);
        match (group, kind.as_str()) {
            (_, k) if k == "List" || (k.ends_with("List") && obj.get("items").is_some()) => {
                let items = obj
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    self.add_object(item, file, document, &format!("{prefix}items[{i}]."))?;
                }
            }
            ("", "Namespace") => {
                let meta: ObjectMeta = typed(&obj["metadata"], "metadata").map_err(invalid)?;
                self.inventory.add_namespace(Namespace {
                    name: meta.name,
                    labels: meta.labels.unwrap_or_default(),
                });
            }
            ("", "Pod") => {
                let pod: RawPod = typed(obj, "").map_err(invalid)?;
                self.inventory.add_pod(pod.into_pod().map_err(invalid)?);
            }
            (
                "apps" | "batch" | "",
                "Deployment"
                | "StatefulSet"
                | "DaemonSet"
                | "ReplicaSet"
                | "Job"
                | "CronJob"
                | "ReplicationController",
            ) => {
                let template = if kind == "CronJob" {
                    "/spec/jobTemplate/spec/template"
                } else {
                    "/spec/template"
                };
                let path = template.trim_start_matches('/').replace('/', ".");
                let tpl = obj.pointer(template).ok_or_else(|| {
                    invalid(FieldError::new(path.clone(), "pod template is missing"))
                })?;
                let tpl: RawPodTemplate = typed(tpl, &path).map_err(invalid)?;
                let meta: ObjectMeta = typed(&obj["metadata"], "metadata").map_err(invalid)?;
                let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
                let ports = tpl
                    .spec
                    .container_ports()
                    .map_err(|e| invalid(e.under(&format!("{path}.spec"))))?;
                self.inventory.add_pod(Pod {
                    name: format!("{}-1", meta.name),
                    labels: tpl.metadata.labels.unwrap_or_default(),
                    ips: Vec::new(),
                    ports,
                    workload: WorkloadRef {
                        namespace: namespace.clone(),
                        name: meta.name,
                        kind: kind.clone(),
                    },
                    service_account: tpl.spec.service_account_name,
                    namespace,
                });
            }
            ("", "Service") => {
                let meta: ObjectMeta = typed(&obj["metadata"], "metadata").map_err(invalid)?;
                let raw: RawService = typed(obj, "").map_err(invalid)?;
                let namespace = meta.namespace.unwrap_or_else(|| "default".into());
                let service = raw.into_service(namespace, meta.name);
                validate_service(&service).map_err(invalid)?;
                self.inventory.services.push(service);
            }
            ("networking.k8s.io", "Ingress") | ("route.openshift.io", "Route")
                if api.ends_with("/v1") =>
            {
                let meta: ObjectMeta = typed(&obj["metadata"], "metadata").map_err(invalid)?;
                let namespace = meta.namespace.unwrap_or_else(|| "default".into());
                let backends = if kind == "Ingress" {
                    typed::<RawIngress>(obj, "")
                        .map_err(invalid)?
                        .backends(&namespace, &meta.name)
                } else {
                    typed::<RawRoute>(obj, "")
                        .map_err(invalid)?
                        .backends(&namespace, &meta.name)
                };
                self.inventory.backends.extend(backends);
            }
            ("networking.k8s.io", "NetworkPolicy") => {
                let np: NetworkPolicy = typed(obj, "").map_err(invalid)?;
                self.policies.push(np.compile("default").map_err(invalid)?);
                self.keep_source(obj);
            }
            ("policy.networking.k8s.io", "AdminNetworkPolicy" | "BaselineAdminNetworkPolicy") => {
                let anp: AdminPolicy = typed(obj, "").map_err(invalid)?;
                self.policies.push(
                    anp.compile(kind == "BaselineAdminNetworkPolicy")
                        .map_err(invalid)?,
                );
                self.keep_source(obj);
            }
            ("cilium.io", "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => {
                let cnp: CiliumPolicy = typed(obj, "").map_err(invalid)?;
                let clusterwide = kind == "CiliumClusterwideNetworkPolicy";
                self.policies
                    .extend(cnp.compile(clusterwide, "default").map_err(invalid)?);
                self.keep_source(obj);
            }
            _ => self.skipped.push(Skipped {
                file: file.to_string(),
                document,
                kind: if kind.is_empty() {
                    "(no kind)".into()
                } else {
                    kind.clone()
                },
                name,
                reason: format!("kind {kind:?} of apiVersion {api:?} is not evaluated"),
            }),
        }
        Ok(())
    }
}

/// Splits text into documents: JSON when it starts with `{` or `[` (a top-level array is a
/// list of objects), otherwise multi-document YAML.
pub fn documents(text: &str, file: &str) -> Result<Vec<Value>, Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut out = Vec::new();
        for (i, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            match v {
                Ok(Value::Array(items)) => out.extend(items),
                Ok(v) => out.push(v),
                Err(e) => {
                    return Err(Error::Syntax {
                        file: file.into(),
                        document: i + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| Error::Syntax {
            file: file.into(),
            document: i + 1,
            message: e.to_string(),
        })?;
        out.push(value);
    }
    Ok(out)
}

/// Deserializes with the failing field's path; `base` prefixes it.
/// Fields set to `null` count as absent, as the API server treats them.
fn typed<T: DeserializeOwned>(value: &Value, base: &str) -> Result<T, FieldError> {
    let value = without_nulls(value);
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (base.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => base.to_string(),
            (false, false) => format!("{base}.{inner}"),
        };
        FieldError::new(path, e.into_inner().to_string())
    })
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[derive(Debug, Deserialize)]
struct RawPod {
    #[serde(default)]
    metadata: RawPodMeta,
    #[serde(default)]
    spec: RawPodSpec,
    #[serde(default)]
    status: RawPodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<crate::selector::Labels>,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
}

#[derive(Debug, Deserialize)]
struct OwnerRef {
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Vec<PodIp>,
}

#[derive(Debug, Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Debug, Deserialize)]
struct RawPodTemplate {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: RawPodSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    #[serde(default)]
    containers: Vec<RawContainer>,
    #[serde(default)]
    init_containers: Vec<RawContainer>,
    #[serde(default)]
    service_account_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContainer {
    #[serde(default)]
    ports: Vec<RawContainerPort>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerPort {
    #[serde(default)]
    name: Option<String>,
    container_port: i64,
    #[serde(default)]
    protocol: Option<String>,
}

impl RawPodSpec {
    fn container_ports(&self) -> Result<Vec<ContainerPort>, FieldError> {
        let mut out = Vec::new();
        for (field, list) in [
            ("containers", &self.containers),
            ("initContainers", &self.init_containers),
        ] {
            for (i, c) in list.iter().enumerate() {
                for (j, p) in c.ports.iter().enumerate() {
                    let path = format!("{field}[{i}].ports[{j}]");
                    let port = crate::dialect::port_number(p.container_port, "containerPort")
                        .map_err(|e| e.under(&path))?;
                    let protocol = match &p.protocol {
                        None => Protocol::Tcp,
                        Some(s) => Protocol::parse(s).ok_or_else(|| {
                            FieldError::new(
                                format!("{path}.protocol"),
                                format!("unsupported protocol {s:?}"),
                            )
                        })?,
                    };
                    out.push(ContainerPort {
                        name: p.name.clone(),
                        port,
                        protocol,
                    });
                }
            }
        }
        Ok(out)
    }
}

impl RawPod {
    fn into_pod(self) -> Result<Pod, FieldError> {
        let namespace = self.metadata.namespace.unwrap_or_else(|| "default".into());
        let ports = self.spec.container_ports().map_err(|e| e.under("spec"))?;
        let mut ips: Vec<IpAddr> = Vec::new();
        let texts = self
            .status
            .pod_ip
            .iter()
            .chain(self.status.pod_ips.iter().map(|p| &p.ip));
        for (i, t) in texts.enumerate() {
            let ip: IpAddr = t.parse().map_err(|_| {
                FieldError::new(
                    if i == 0 {
                        "status.podIP".to_string()
                    } else {
                        format!("status.podIPs[{}]", i - 1)
                    },
                    format!("invalid IP {t:?}"),
                )
            })?;
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let owner = self
            .metadata
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or(self.metadata.owner_references.first());
        let workload = match owner {
            Some(o) => WorkloadRef {
                namespace: namespace.clone(),
                name: o.name.clone(),
                kind: o.kind.clone(),
            },
            None => WorkloadRef {
                namespace: namespace.clone(),
                name: self.metadata.name.clone(),
                kind: "Pod".into(),
            },
        };
        Ok(Pod {
            namespace,
            name: self.metadata.name,
            labels: self.metadata.labels.unwrap_or_default(),
            ips,
            ports,
            workload,
            service_account: self.spec.service_account_name,
        })
    }
}
