//! The catalog format: the shape of a service communication matrix.
//!
//! ```yaml
//! namespace: pmoves            # optional, default "default"
//! assume:                      # optional: tiers/ports for services referenced, not described
//!   ollama: {tier: application, ports: [11434]}
//! services:
//!   postgres: {tier: data, ports: [5432], from: [postgrest]}
//!   api:      {tier: api, ports: [8080, "9000/udp"], from: [external], to: [postgres, external]}
//!   prometheus: {tier: monitoring, ports: [9090], scrapes: [api, data]}   # tiers or services
//!   promtail: {tier: monitoring, ships_logs_to: [loki]}
//! ```
//!
//! `from` lists who opens connections to the service (on the service's ports); `to` lists
//! whom the service connects to (on their ports). `external` is traffic from or to outside
//! the cluster. Every service may resolve DNS. A service named in `from`/`to` but not
//! described gets a warning and the tier of `assume` (or `application`, ports unknown: any
//! TCP port); `--strict` makes that an error.

use std::collections::{BTreeMap, BTreeSet};

use netpol::Protocol;
use serde::Deserialize;

/// The tiers of the design, in order from the edge inwards.
pub const TIERS: [&str; 5] = ["api", "application", "bus", "data", "monitoring"];

/// What is wrong with a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {path}: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, deserialize_with = "unique_names")]
    assume: BTreeMap<String, RawService>,
    #[serde(deserialize_with = "unique_names")]
    services: BTreeMap<String, RawService>,
}

/// A map of services that rejects a name given twice (YAML parsers keep the last one).
fn unique_names<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, RawService>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, RawService>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of service names to services")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((name, service)) = map.next_entry::<String, RawService>()? {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate service name {name:?}"
                    )));
                }
                out.insert(name, service);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    scrapes: Vec<String>,
    #[serde(default)]
    ships_logs_to: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPort {
    Number(i64),
    Text(String),
}

/// A service of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub tier: String,
    /// Listening ports; empty when unknown (an undescribed service).
    pub ports: Vec<(Protocol, u16)>,
    /// False for services only referenced by others.
    pub described: bool,
}

/// One end of an edge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Service(String),
    External,
}

/// A documented connection: `src` opens connections to `dst` on `ports` (empty: any TCP
/// port, because the destination's ports are unknown).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub src: Node,
    pub dst: Node,
    pub ports: Vec<(Protocol, u16)>,
    /// Where the edge comes from in the catalog (`services.postgres.from[1]`).
    pub origin: String,
}

/// A validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub namespace: String,
    pub services: BTreeMap<String, Service>,
    pub edges: Vec<Edge>,
    pub warnings: Vec<String>,
}

impl Catalog {
    /// Parses and validates a catalog; `strict` makes undescribed references errors.
    pub fn parse(text: &str, file: &str, strict: bool) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = yaml_serde::from_str(text).map_err(|e| CatalogError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |path: String, message: String| CatalogError::Invalid {
            file: file.to_string(),
            path,
            message,
        };
        let mut services: BTreeMap<String, Service> = BTreeMap::new();
        for (name, s) in &raw.services {
            let path = format!("services.{name}");
            let tier = s
                .tier
                .clone()
                .ok_or_else(|| invalid(format!("{path}.tier"), "tier is required".into()))?;
            services.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    tier,
                    ports: ports(&s.ports, &path).map_err(|(p, m)| invalid(p, m))?,
                    described: true,
                },
            );
        }
        for (name, s) in &raw.assume {
            let path = format!("assume.{name}");
            if services.contains_key(name) {
                return Err(invalid(
                    path,
                    format!("{name} is described under services; remove it from assume"),
                ));
            }
            services.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    tier: s.tier.clone().unwrap_or_else(|| "application".into()),
                    ports: ports(&s.ports, &path).map_err(|(p, m)| invalid(p, m))?,
                    described: false,
                },
            );
        }
        let described: Vec<String> = raw.services.keys().cloned().collect();
        let mut warnings = Vec::new();
        let mut undescribed: BTreeSet<String> = BTreeSet::new();
        // Resolve every peer name first, so edges can use the final service list.
        for (name, s) in &raw.services {
            for (field, list) in [("from", &s.from), ("to", &s.to)] {
                for (i, peer) in list.iter().enumerate() {
                    if peer == "external" || services.contains_key(peer) {
                        continue;
                    }
                    let path = format!("services.{name}.{field}[{i}]");
                    let hint = suggestion(peer, &described)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    if strict {
                        return Err(invalid(path, format!("unknown service {peer:?}{hint}")));
                    }
                    if undescribed.insert(peer.clone()) {
                        warnings.push(format!("{path}: {peer:?} is referenced but not described{hint}; assuming tier application with unknown ports (set it under assume:)"));
                    }
                }
            }
        }
        for peer in undescribed {
            services.insert(
                peer.clone(),
                Service {
                    name: peer,
                    tier: "application".into(),
                    ports: Vec::new(),
                    described: false,
                },
            );
        }
        let mut edges = Vec::new();
        for (name, s) in &raw.services {
            let me = Node::Service(name.clone());
            let my_ports = services[name].ports.clone();
            for (i, peer) in s.from.iter().enumerate() {
                let origin = format!("services.{name}.from[{i}]");
                if my_ports.is_empty() && raw.services.contains_key(name) {
                    return Err(invalid(
                        origin,
                        format!("{name} accepts connections but lists no ports"),
                    ));
                }
                edges.push(Edge {
                    src: node(peer),
                    dst: me.clone(),
                    ports: my_ports.clone(),
                    origin,
                });
            }
            for (i, peer) in s.to.iter().enumerate() {
                let dst_ports = match node(peer) {
                    Node::Service(p) => services[&p].ports.clone(),
                    Node::External => Vec::new(),
                };
                edges.push(Edge {
                    src: me.clone(),
                    dst: node(peer),
                    ports: dst_ports,
                    origin: format!("services.{name}.to[{i}]"),
                });
            }
            for (i, target) in s.scrapes.iter().enumerate() {
                let path = format!("services.{name}.scrapes[{i}]");
                let targets: Vec<&Service> = if services.contains_key(target) {
                    vec![&services[target]]
                } else {
                    let in_tier: Vec<&Service> = services
                        .values()
                        .filter(|t| t.tier == *target && t.described)
                        .collect();
                    if in_tier.is_empty() {
                        return Err(invalid(
                            path,
                            format!("{target:?} is neither a service nor a tier with services"),
                        ));
                    }
                    in_tier
                };
                for t in targets {
                    if t.name != *name && !t.ports.is_empty() {
                        edges.push(Edge {
                            src: me.clone(),
                            dst: Node::Service(t.name.clone()),
                            ports: t.ports.clone(),
                            origin: path.clone(),
                        });
                    }
                }
            }
            for (i, target) in s.ships_logs_to.iter().enumerate() {
                let path = format!("services.{name}.ships_logs_to[{i}]");
                let Some(t) = services.get(target).filter(|t| t.described) else {
                    let hint = suggestion(target, &described)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    return Err(invalid(path, format!("unknown service {target:?}{hint}")));
                };
                edges.push(Edge {
                    src: me.clone(),
                    dst: Node::Service(t.name.clone()),
                    ports: t.ports.clone(),
                    origin: path,
                });
            }
        }
        edges.sort();
        edges.dedup_by(|a, b| a.src == b.src && a.dst == b.dst && a.ports == b.ports);
        Ok(Catalog {
            namespace: raw.namespace.unwrap_or_else(|| "default".into()),
            services,
            edges,
            warnings,
        })
    }

    /// The tiers in use: the design's order first, then any others alphabetically.
    pub fn tiers(&self) -> Vec<String> {
        let used: BTreeSet<&str> = self.services.values().map(|s| s.tier.as_str()).collect();
        let mut out: Vec<String> = TIERS
            .iter()
            .filter(|t| used.contains(*t))
            .map(|t| t.to_string())
            .collect();
        out.extend(
            used.iter()
                .filter(|t| !TIERS.contains(t))
                .map(|t| t.to_string()),
        );
        out
    }

    pub fn tier_of(&self, node: &Node) -> Option<&str> {
        match node {
            Node::Service(s) => self.services.get(s).map(|s| s.tier.as_str()),
            Node::External => None,
        }
    }
}

fn node(name: &str) -> Node {
    if name == "external" {
        Node::External
    } else {
        Node::Service(name.to_string())
    }
}

fn ports(raw: &[RawPort], path: &str) -> Result<Vec<(Protocol, u16)>, (String, String)> {
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("{path}.ports[{i}]");
            let (number, proto) = match p {
                RawPort::Number(n) => (*n, Protocol::Tcp),
                RawPort::Text(t) => {
                    let (n, proto) = t.split_once('/').unwrap_or((t, "TCP"));
                    let proto = Protocol::parse(proto)
                        .filter(|p| *p != Protocol::Icmp)
                        .ok_or_else(|| {
                            (
                                field.clone(),
                                format!("unknown protocol in {t:?} (want TCP, UDP or SCTP)"),
                            )
                        })?;
                    let n = n
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| (field.clone(), format!("{t:?} is not a port")))?;
                    (n, proto)
                }
            };
            u16::try_from(number)
                .ok()
                .filter(|&n| n >= 1)
                .map(|n| (proto, n))
                .ok_or_else(|| (field, format!("port {number} is outside 1-65535")))
        })
        .collect()
}

/// The described name closest to `name`, when it is a likely typo (edit distance ≤ 2).
fn suggestion<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.as_str())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}
