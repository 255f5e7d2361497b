//! The policy model every dialect compiles into: tiers, rules with actions, peers and ports.
//!
//! NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy are each converted (see the `dialect` modules) into
//! [`Policy`]; the evaluator knows only this model.

use std::fmt;

use serde::Serialize;

use crate::cidr::IpBlock;
use crate::ports::Protocol;
use crate::selector::LabelSelector;

/// Where a policy sits in the evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Tier {
    /// AdminNetworkPolicy: ordered by priority, first matching rule wins.
    Admin,
    /// NetworkPolicy and Cilium policies: allow rules add up, deny rules win over them.
    Namespaced,
    /// BaselineAdminNetworkPolicy: consulted for traffic no namespaced policy isolates.
    Baseline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PolicyKind {
    NetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            PolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }
}

/// Names a policy in explanations: `NetworkPolicy default/allow-web`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PolicyRef {
    pub kind: PolicyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind.as_str(), ns, self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    Allow,
    Deny,
    /// ANP only: skip the remaining admin policies and let namespaced policies decide.
    Pass,
}

/// How a pod selector reads labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorFlavor {
    /// Plain pod labels.
    Kubernetes,
    /// Cilium labels: `k8s:`/`any:` prefixes, and derived keys such as
    /// `io.kubernetes.pod.namespace` and `io.cilium.k8s.namespace.labels.<key>`.
    Cilium,
}

/// Which namespaces a pod selector looks in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NamespaceScope {
    /// One namespace (NetworkPolicy peers without namespaceSelector, CNP selectors).
    Exact(String),
    /// Namespaces whose labels match.
    Selector(LabelSelector),
    /// Every namespace.
    Any,
}

/// A set of pods: namespaces in scope, then pods whose labels match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodSelector {
    pub namespaces: NamespaceScope,
    pub pods: LabelSelector,
    pub flavor: SelectorFlavor,
}

/// Cilium's reserved entities, also the kinds of non-pod endpoints a flow can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    World,
    Cluster,
    Host,
    RemoteNode,
    KubeApiserver,
    Health,
    Init,
    Unmanaged,
    Ingress,
    All,
}

impl Entity {
    pub const NAMES: [(&'static str, Entity); 10] = [
        ("world", Entity::World),
        ("cluster", Entity::Cluster),
        ("host", Entity::Host),
        ("remote-node", Entity::RemoteNode),
        ("kube-apiserver", Entity::KubeApiserver),
        ("health", Entity::Health),
        ("init", Entity::Init),
        ("unmanaged", Entity::Unmanaged),
        ("ingress", Entity::Ingress),
        ("all", Entity::All),
    ];

    pub fn parse(name: &str) -> Option<Entity> {
        let name = name.strip_prefix("reserved:").unwrap_or(name);
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, e)| e)
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The entities an endpoint of this kind belongs to: a host is also in `cluster`
    /// and `all`; `world` is outside the cluster.
    pub fn membership(self) -> u16 {
        let inside = Entity::Cluster.bit() | Entity::All.bit();
        match self {
            Entity::World => Entity::World.bit() | Entity::All.bit(),
            Entity::Cluster | Entity::All => inside,
            other => other.bit() | inside,
        }
    }
}

/// The other end of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Every endpoint, in and outside the cluster.
    Any,
    Pods(PodSelector),
    /// Addresses; `pods_match` says whether pod IPs count (None: the engine option decides).
    Block {
        block: IpBlock,
        pods_match: Option<bool>,
    },
    /// A bit set of [`Entity`] memberships.
    Entities(u16),
    /// ANP `nodes`: needs a node inventory, which the evaluator does not have.
    Nodes(LabelSelector),
}

/// Which ports a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// `protocol` None means TCP, UDP and SCTP (Cilium `ANY`).
    Range {
        protocol: Option<Protocol>,
        first: u16,
        last: u16,
    },
    /// Resolved on the destination pod's container ports; `protocol` None means the
    /// container port's own protocol.
    Named {
        protocol: Option<Protocol>,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable name for explanations: the ANP rule name, or `ingress[0]`.
    pub name: String,
    pub action: Action,
    /// Empty: the rule matches no peer.
    pub peers: Vec<Peer>,
    /// None: every port and protocol.
    pub ports: Option<Vec<PortMatch>>,
    /// Extra information for explanations (L7 rules, unsupported selectors).
    pub note: Option<String>,
}

/// The rules of one direction of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionRules {
    /// Whether the policy puts its subjects in default-deny for this direction.
    pub isolates: bool,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyRef,
    pub tier: Tier,
    /// ANP priority (lower first); 0 elsewhere.
    pub priority: i32,
    pub subject: PodSelector,
    pub ingress: Option<DirectionRules>,
    pub egress: Option<DirectionRules>,
}

impl Policy {
    pub fn direction(&self, dir: Direction) -> Option<&DirectionRules> {
        match dir {
            Direction::Ingress => self.ingress.as_ref(),
            Direction::Egress => self.egress.as_ref(),
        }
    }

    /// Every CIDR block the policy names.
    pub fn blocks(&self) -> impl Iterator<Item = &IpBlock> {
        [&self.ingress, &self.egress]
            .into_iter()
            .flatten()
            .flat_map(|d| &d.rules)
            .flat_map(|r| &r.peers)
            .filter_map(|p| match p {
                Peer::Block { block, .. } => Some(block),
                _ => None,
            })
    }
}
