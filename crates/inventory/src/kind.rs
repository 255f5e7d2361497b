//! The kinds the inventory keeps and the key of one object.

use std::fmt;

/// A kind the policy engine reads. The declaration order is the order objects are handed
/// to the engine: namespaces, pods, then policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Pod,
    NetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl Kind {
    /// Every kind, in engine order.
    pub const ALL: [Kind; 7] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
        Kind::CiliumNetworkPolicy,
        Kind::CiliumClusterwideNetworkPolicy,
    ];

    /// The `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::AdminNetworkPolicy => "AdminNetworkPolicy",
            Kind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            Kind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Kind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }

    /// The API group (empty for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod => "",
            Kind::NetworkPolicy => "networking.k8s.io",
            Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy => {
                "policy.networking.k8s.io"
            }
            Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy => "cilium.io",
        }
    }

    /// The version watched.
    pub fn version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::NetworkPolicy => "v1",
            Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy => "v1alpha1",
            Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy => "v2",
        }
    }

    /// The `apiVersion` filled in when an object lacks one.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_string(),
            group => format!("{group}/{}", self.version()),
        }
    }

    /// The resource name in API paths.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::AdminNetworkPolicy => "adminnetworkpolicies",
            Kind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
            Kind::CiliumNetworkPolicy => "ciliumnetworkpolicies",
            Kind::CiliumClusterwideNetworkPolicy => "ciliumclusterwidenetworkpolicies",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::NetworkPolicy | Kind::CiliumNetworkPolicy
        )
    }

    /// The kind of an object from its `apiVersion` (any version of the group; empty means
    /// "whatever the kind implies") and `kind`.
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        let found = Kind::ALL.into_iter().find(|k| k.name() == kind)?;
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        (api_version.is_empty() || group == found.group()).then_some(found)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an object is kept: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object; a namespaced kind without a namespace is in `default`, a
    /// cluster-scoped kind ignores the namespace it is given.
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> ObjectKey {
        let namespace = match (kind.namespaced(), namespace) {
            (false, _) => String::new(),
            (true, Some(ns)) if !ns.is_empty() => ns.to_string(),
            (true, _) => "default".to_string(),
        };
        ObjectKey {
            kind,
            namespace,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
