//! The compiled evaluator: selectors resolved once against the inventory's identities,
//! then each decision walks the tiers (admin, namespaced, baseline) over port sets.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::cidr::{Atoms, IpBlock};
use crate::dialect::cilium::NAMESPACE_KEY;
use crate::explain::{Decision, DirTrace};
use crate::model::{ContainerPort, Inventory, Namespace};
use crate::policy::*;
use crate::ports::{PortSet, Protocol};
use crate::selector::Labels;

/// Evaluation options where implementations differ.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Whether NetworkPolicy `ipBlock` and ANP `networks` match pod IPs (Kubernetes e2e
    /// tests expect it; Cilium CIDR rules never match pods, whatever this says).
    pub ipblock_matches_pods: bool,
    /// Whether ingress policy applies to traffic from the local host (`host`).
    pub allow_localhost: AllowLocalhost,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ipblock_matches_pods: true,
            allow_localhost: AllowLocalhost::default(),
        }
    }
}

/// Cilium's `--allow-localhost`: does the local host reach the endpoints it serves
/// whatever their ingress policy says? Cilium's documentation (policy language, "Access
/// to/from local host"): "Kubernetes will automatically allow all communication from the
/// local host of all local endpoints"; the Kubernetes NetworkPolicy documentation says the
/// same of connections from the pod's node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AllowLocalhost {
    /// The default (`always`; Cilium's `auto` behaves the same on Kubernetes): ingress from
    /// the local host is allowed unless a deny rule matches it.
    #[default]
    Always,
    /// `--allow-localhost=policy`: ingress policy applies to the local host like any peer.
    Policy,
}

impl AllowLocalhost {
    /// The values the CLI and configuration files accept.
    pub const NAMES: [&'static str; 3] = ["always", "auto", "policy"];

    pub fn as_str(self) -> &'static str {
        match self {
            AllowLocalhost::Always => "always",
            AllowLocalhost::Policy => "policy",
        }
    }
}

impl std::str::FromStr for AllowLocalhost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" | "auto" => Ok(AllowLocalhost::Always),
            "policy" => Ok(AllowLocalhost::Policy),
            other => Err(format!(
                "unknown allow-localhost mode {other:?} (expected always, auto or policy)"
            )),
        }
    }
}

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A pod, by index into the inventory.
    Pod(usize),
    /// An address outside the cluster.
    External(IpAddr),
    /// A reserved identity (host, remote-node, kube-apiserver...), optionally with its IP.
    Entity(Entity, Option<IpAddr>),
}

/// What policies can tell apart about a pod: namespace, labels, ports, and the CIDR atom of
/// its IP. Pods with one identity get the same answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    namespace: String,
    labels: Labels,
    ports: Vec<ContainerPort>,
    service_account: Option<String>,
    atom: Option<u32>,
}

/// A rule with its peers resolved.
#[derive(Debug)]
struct CRule {
    action: Action,
    peers: Vec<CPeer>,
    /// Precomputed when the rule names no named port.
    ports: Option<PortSet>,
}

#[derive(Debug)]
enum CPeer {
    Any,
    Pods(u32),
    Block { block: IpBlock, pods_match: bool },
    Entities(u16),
    Nothing,
}

#[derive(Debug, Default)]
struct CDirection {
    isolates: bool,
    rules: Vec<CRule>,
}

/// The remote end of a direction, as peers see it.
#[derive(Debug, Clone, Copy)]
struct Remote {
    identity: Option<u32>,
    /// CIDR atom, when peers may match the address.
    atom: Option<u32>,
    /// Atom of a pod IP, used only by blocks that match pods.
    pod_atom: Option<u32>,
    entities: u16,
}

/// Policies compiled over an inventory.
pub struct Engine {
    inventory: Inventory,
    policies: Vec<Policy>,
    compiled: Vec<[CDirection; 2]>,
    identities: Vec<Identity>,
    pod_identity: Vec<u32>,
    selectors: Vec<Vec<u64>>,
    /// Identities of each namespace, so selectors only look where they can match.
    ns_members: HashMap<String, Vec<u32>>,
    /// Per identity, per direction: policy indices in evaluation order.
    by_subject: Vec<[Vec<u32>; 2]>,
    atoms: Atoms,
    ip_index: HashMap<IpAddr, usize>,
    options: Options,
    /// Identities from this one on are hypothetical peers, not pods.
    first_hypothetical: u32,
}

/// A hypothetical pod (one no manifest declares; see [`Engine::with_hypothetical_peers`]).
pub struct HypotheticalPeer<'a> {
    /// Decides which rule peers it matches, from the peer's selector alone.
    pub matches: &'a dyn Fn(&PodSelector) -> bool,
    /// Its container ports, which named ports in rules towards it resolve on.
    pub ports: Vec<ContainerPort>,
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

fn bit_test(set: &[u64], i: u32) -> bool {
    set.get(i as usize / 64)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

impl Engine {
    /// Compiles `policies` over `inventory`.
    pub fn new(inventory: Inventory, policies: Vec<Policy>, options: Options) -> Engine {
        Engine::with_hypothetical_peers(inventory, policies, options, &[])
    }

    /// Compiles `policies` over `inventory` and over hypothetical pods: each matches the
    /// pod-selector peers its predicate accepts (and peers that match every endpoint), no
    /// address block, has the container ports it is given, and is never a policy's subject. Exposure analysis asks what a
    /// workload could exchange with such pods ([`Engine::hypothetical_ports`]).
    pub fn with_hypothetical_peers(
        inventory: Inventory,
        mut policies: Vec<Policy>,
        options: Options,
        hypothetical: &[HypotheticalPeer],
    ) -> Engine {
        policies.sort_by(|a, b| (a.tier, a.priority, &a.id).cmp(&(b.tier, b.priority, &b.id)));
        let atoms = Atoms::new(policies.iter().flat_map(Policy::blocks));
        let mut identities: Vec<Identity> = Vec::new();
        let mut seen: HashMap<Identity, u32> = HashMap::new();
        let mut pod_identity = Vec::with_capacity(inventory.pods.len());
        let mut ip_index = HashMap::new();
        for (i, pod) in inventory.pods.iter().enumerate() {
            for ip in &pod.ips {
                ip_index.entry(*ip).or_insert(i);
            }
            let id = Identity {
                namespace: pod.namespace.clone(),
                labels: pod.labels.clone(),
                ports: pod.ports.clone(),
                service_account: pod.service_account.clone(),
                atom: pod.ips.first().map(|ip| atoms.atom_of(*ip) as u32),
            };
            let next = identities.len() as u32;
            let idx = *seen.entry(id.clone()).or_insert_with(|| {
                identities.push(id);
                next
            });
            pod_identity.push(idx);
        }
        let first_hypothetical = identities.len() as u32;
        let mut engine = Engine {
            inventory,
            policies: Vec::new(),
            compiled: Vec::new(),
            identities,
            pod_identity,
            selectors: Vec::new(),
            ns_members: HashMap::new(),
            by_subject: Vec::new(),
            atoms,
            ip_index,
            options,
            first_hypothetical,
        };
        engine.by_subject = vec![[Vec::new(), Vec::new()]; engine.identities.len()];
        // Hypothetical peers get identities after the pods', outside every namespace.
        engine
            .identities
            .extend(hypothetical.iter().map(|h| Identity {
                namespace: String::new(),
                labels: Labels::new(),
                ports: h.ports.clone(),
                service_account: None,
                atom: None,
            }));
        for (i, ident) in engine.identities[..first_hypothetical as usize]
            .iter()
            .enumerate()
        {
            engine
                .ns_members
                .entry(ident.namespace.clone())
                .or_default()
                .push(i as u32);
        }
        let mut cache: HashMap<PodSelector, u32> = HashMap::new();
        for (p, policy) in policies.iter().enumerate() {
            let subject = engine.selector_id(&policy.subject, &mut cache);
            let mut dirs: [CDirection; 2] = Default::default();
            for dir in [Direction::Ingress, Direction::Egress] {
                let Some(rules) = policy.direction(dir) else {
                    continue;
                };
                dirs[dir_index(dir)].isolates = rules.isolates;
                dirs[dir_index(dir)].rules = rules
                    .rules
                    .iter()
                    .map(|r| engine.compile_rule(r, &mut cache))
                    .collect();
                for (w, &word) in engine.selectors[subject as usize].iter().enumerate() {
                    let mut bits = word;
                    while bits != 0 {
                        let id = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        engine.by_subject[id][dir_index(dir)].push(p as u32);
                    }
                }
            }
            engine.compiled.push(dirs);
        }
        // Subjects are resolved: hypothetical peers join the selectors their predicate
        // accepts, so they are only ever matched as peers.
        for (sel, &id) in &cache {
            for (h, peer) in hypothetical.iter().enumerate() {
                if (peer.matches)(sel) {
                    let bit = first_hypothetical as usize + h;
                    engine.selectors[id as usize][bit / 64] |= 1 << (bit % 64);
                }
            }
        }
        engine.policies = policies;
        engine
    }

    /// The policies that select pod `pod` as a subject in direction `dir`, in evaluation
    /// order.
    pub fn policies_for(&self, pod: usize, dir: Direction) -> impl Iterator<Item = &Policy> {
        let id = self.pod_identity.get(pod).copied();
        id.into_iter()
            .flat_map(move |id| &self.by_subject[id as usize][dir_index(dir)])
            .map(|&p| &self.policies[p as usize])
    }

    /// The ports pod `pod` may exchange with hypothetical peer `peer` (an index into the
    /// list given to [`Engine::with_hypothetical_peers`]): what the pod may open to it
    /// (`Egress`, judged by the pod's egress policies; named ports resolve on its given
    /// container ports) or what it may open to the pod (`Ingress`, judged by the pod's ingress
    /// policies). The hypothetical pod has no policies of its own.
    pub fn hypothetical_ports(&self, pod: usize, peer: usize, dir: Direction) -> PortSet {
        let id = self.first_hypothetical + peer as u32;
        let Some(&subject) = self.pod_identity.get(pod) else {
            return PortSet::none();
        };
        if id as usize >= self.identities.len() {
            return PortSet::none();
        }
        let remote = Remote {
            identity: Some(id),
            atom: None,
            pod_atom: None,
            entities: Entity::Cluster.bit() | Entity::All.bit(),
        };
        let dst = match dir {
            Direction::Egress => id,
            Direction::Ingress => subject,
        };
        self.walk(dir, subject, &remote, Some(dst), &PortSet::all(), None)
            .0
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// The CIDR atoms: address ranges no policy tells apart.
    pub fn atoms(&self) -> &Atoms {
        &self.atoms
    }

    /// Number of distinct pod identities.
    pub fn identity_count(&self) -> usize {
        self.first_hypothetical as usize
    }

    /// Whether some policy selects the pod (in either direction, any tier): the pod is
    /// governed by policy, whatever the rules decide.
    pub fn governs(&self, pod: usize) -> bool {
        self.pod_identity
            .get(pod)
            .and_then(|&id| self.by_subject.get(id as usize))
            .is_some_and(|dirs| dirs.iter().any(|d| !d.is_empty()))
    }

    /// The endpoint for an address: the pod that has it, or an external address.
    pub fn endpoint_for_ip(&self, ip: IpAddr) -> Endpoint {
        match self.ip_index.get(&ip) {
            Some(&pod) => Endpoint::Pod(pod),
            None => Endpoint::External(ip),
        }
    }

    /// A compact key: endpoints with equal keys get equal answers against any peer
    /// (pods of one identity; external addresses of one atom; one entity).
    pub fn identity_key(&self, ep: &Endpoint) -> u32 {
        let pods = self.identities.len() as u32;
        let atoms = self.atoms.len() as u32;
        match ep {
            Endpoint::Pod(i) => self.pod_identity[*i],
            Endpoint::External(ip) => pods + self.atoms.atom_of(*ip) as u32,
            Endpoint::Entity(e, _) => pods + atoms + *e as u32,
        }
    }

    fn selector_id(&mut self, sel: &PodSelector, cache: &mut HashMap<PodSelector, u32>) -> u32 {
        if let Some(&id) = cache.get(sel) {
            return id;
        }
        let mut bits = vec![0u64; self.identities.len().div_ceil(64)];
        for (ns, members) in &self.ns_members {
            if !self.namespace_in_scope(&sel.namespaces, ns) {
                continue;
            }
            for &i in members {
                if self.pod_selected(sel, &self.identities[i as usize]) {
                    bits[i as usize / 64] |= 1 << (i % 64);
                }
            }
        }
        let id = self.selectors.len() as u32;
        self.selectors.push(bits);
        cache.insert(sel.clone(), id);
        id
    }

    fn namespace_in_scope(&self, scope: &NamespaceScope, ns: &str) -> bool {
        match scope {
            NamespaceScope::Exact(name) => name == ns,
            NamespaceScope::Any => true,
            NamespaceScope::Selector(s) => match self.inventory.namespaces.get(ns) {
                Some(n) => s.matches(&n.labels),
                None => s.matches(&Namespace::implicit(ns).labels),
            },
        }
    }

    /// Whether the pod part of a selector matches (its namespace is already in scope).
    fn pod_selected(&self, sel: &PodSelector, ident: &Identity) -> bool {
        let ns_labels = self
            .inventory
            .namespaces
            .get(&ident.namespace)
            .map(|n| &n.labels);
        match sel.flavor {
            SelectorFlavor::Kubernetes => sel.pods.matches(&ident.labels),
            SelectorFlavor::Cilium => sel.pods.matches_with(|key| {
                let key = key
                    .strip_prefix("k8s:")
                    .or_else(|| key.strip_prefix("any:"))
                    .unwrap_or(key);
                if key == NAMESPACE_KEY {
                    Some(ident.namespace.as_str())
                } else if let Some(k) = key.strip_prefix("io.cilium.k8s.namespace.labels.") {
                    ns_labels.and_then(|l| l.get(k)).map(String::as_str)
                } else if key == "io.cilium.k8s.policy.serviceaccount" {
                    Some(ident.service_account.as_deref().unwrap_or("default"))
                } else if key == "io.cilium.k8s.policy.cluster" {
                    Some("default")
                } else {
                    ident.labels.get(key).map(String::as_str)
                }
            }),
        }
    }

    fn compile_rule(&mut self, rule: &Rule, cache: &mut HashMap<PodSelector, u32>) -> CRule {
        let peers = rule
            .peers
            .iter()
            .map(|p| match p {
                Peer::Any => CPeer::Any,
                Peer::Pods(sel) => CPeer::Pods(self.selector_id(sel, cache)),
                Peer::Block { block, pods_match } => CPeer::Block {
                    block: block.clone(),
                    pods_match: pods_match.unwrap_or(self.options.ipblock_matches_pods),
                },
                Peer::Entities(mask) => CPeer::Entities(*mask),
                Peer::Nodes(_) => CPeer::Nothing,
            })
            .collect();
        let ports = match &rule.ports {
            None => Some(PortSet::all()),
            Some(list) if list.iter().all(|p| matches!(p, PortMatch::Range { .. })) => Some(
                list.iter()
                    .fold(PortSet::none(), |acc, p| acc.union(&port_set(p, None))),
            ),
            Some(_) => None,
        };
        CRule {
            action: rule.action,
            peers,
            ports,
        }
    }

    fn remote(&self, ep: &Endpoint) -> Remote {
        match ep {
            Endpoint::Pod(i) => {
                let id = self.pod_identity[*i];
                Remote {
                    identity: Some(id),
                    atom: None,
                    pod_atom: self.identities[id as usize].atom,
                    entities: Entity::Cluster.bit() | Entity::All.bit(),
                }
            }
            Endpoint::External(ip) => Remote {
                identity: None,
                atom: Some(self.atoms.atom_of(*ip) as u32),
                pod_atom: None,
                entities: Entity::World.membership(),
            },
            Endpoint::Entity(e, ip) => Remote {
                identity: None,
                atom: ip.map(|ip| self.atoms.atom_of(ip) as u32),
                pod_atom: None,
                entities: e.membership(),
            },
        }
    }

    /// Whether `remote` is the local host and the options let it through ingress policy.
    fn local_host_allowed(&self, remote: &Remote) -> bool {
        self.options.allow_localhost == AllowLocalhost::Always
            && remote.entities & Entity::Host.bit() != 0
    }

    fn peer_matches(&self, peer: &CPeer, remote: &Remote) -> bool {
        match peer {
            CPeer::Any => true,
            CPeer::Pods(sel) => remote
                .identity
                .is_some_and(|id| bit_test(&self.selectors[*sel as usize], id)),
            CPeer::Block { block, pods_match } => {
                let atom = if *pods_match {
                    remote.atom.or(remote.pod_atom)
                } else {
                    remote.atom
                };
                // Cilium CIDR rules select only addresses outside the cluster.
                let outside = *pods_match || remote.entities & Entity::World.bit() != 0;
                outside && atom.is_some_and(|a| block.contains(self.atoms.range(a as usize).first))
            }
            CPeer::Entities(mask) => remote.entities & mask != 0,
            CPeer::Nothing => false,
        }
    }

    fn rule_ports<'a>(
        &self,
        policy: usize,
        dir: Direction,
        rule: usize,
        crule: &'a CRule,
        dst: Option<u32>,
    ) -> Cow<'a, PortSet> {
        if let Some(ports) = &crule.ports {
            return Cow::Borrowed(ports);
        }
        let rule = &self.policies[policy]
            .direction(dir)
            .expect("compiled direction exists")
            .rules[rule];
        let dst_ports = dst
            .map(|d| self.identities[d as usize].ports.as_slice())
            .unwrap_or_default();
        let set = rule.ports.iter().flatten().fold(PortSet::none(), |acc, p| {
            acc.union(&port_set(p, Some(dst_ports)))
        });
        Cow::Owned(set)
    }

    /// Walks one direction of one subject identity against a remote, for the ports in
    /// `query`. Returns the allowed ports and, among them, those no policy decided.
    fn walk(
        &self,
        dir: Direction,
        subject: u32,
        remote: &Remote,
        dst: Option<u32>,
        query: &PortSet,
        mut trace: Option<&mut DirTrace>,
    ) -> (PortSet, PortSet) {
        let d = dir_index(dir);
        let policies = &self.by_subject[subject as usize][d];
        let mut pending = query.clone();
        let mut allowed = PortSet::none();
        let mut passed = PortSet::none();
        let mut namespaced: Vec<u32> = Vec::new();
        let mut baseline: Vec<u32> = Vec::new();
        // Admin tier: policies by priority, first matching rule wins.
        for &p in policies {
            match self.policies[p as usize].tier {
                Tier::Admin => {
                    if !pending.is_empty() {
                        self.first_match(
                            p as usize,
                            dir,
                            remote,
                            dst,
                            &mut pending,
                            &mut allowed,
                            &mut passed,
                            trace.as_deref_mut(),
                        );
                    }
                }
                Tier::Namespaced => namespaced.push(p),
                Tier::Baseline => baseline.push(p),
            }
        }
        pending.insert_all(&passed);
        // Namespaced tier: deny rules win, allow rules add up, any isolating policy isolates.
        if !pending.is_empty() && !namespaced.is_empty() {
            let isolated = namespaced
                .iter()
                .any(|&p| self.compiled[p as usize][d].isolates);
            let tracing = trace.is_some();
            let mut allow = PortSet::none();
            let mut deny = PortSet::none();
            for &p in &namespaced {
                let p = p as usize;
                let cdir = &self.compiled[p][d];
                for (r, crule) in cdir.rules.iter().enumerate() {
                    // Allow rules only matter when something isolates (or to explain).
                    if crule.action != Action::Deny && !isolated && !tracing {
                        continue;
                    }
                    if !crule
                        .peers
                        .iter()
                        .any(|peer| self.peer_matches(peer, remote))
                    {
                        continue;
                    }
                    let hit = self
                        .rule_ports(p, dir, r, crule, dst)
                        .intersection(&pending);
                    if hit.is_empty() {
                        continue;
                    }
                    match crule.action {
                        Action::Deny => deny.insert_all(&hit),
                        _ => allow.insert_all(&hit),
                    }
                    DirTrace::record(trace.as_deref_mut(), p, r, crule.action, hit);
                }
                if let Some(t) = trace.as_deref_mut() {
                    if cdir.isolates {
                        t.isolated_by.push(p);
                    }
                }
            }
            pending = pending.difference(&deny);
            if isolated {
                let mut granted = pending.intersection(&allow);
                if dir == Direction::Ingress && self.local_host_allowed(remote) {
                    // Cilium adds an allow for the local host to every endpoint's ingress
                    // (deny-preferred: only deny rules win over it).
                    if let Some(t) = trace.as_deref_mut() {
                        t.local_host.insert_all(&pending.difference(&granted));
                    }
                    granted = pending.clone();
                }
                allowed.insert_all(&granted);
                pending = PortSet::none();
            }
        }
        // Baseline tier.
        for &p in &baseline {
            if !pending.is_empty() {
                let mut ignored = PortSet::none();
                self.first_match(
                    p as usize,
                    dir,
                    remote,
                    dst,
                    &mut pending,
                    &mut allowed,
                    &mut ignored,
                    trace.as_deref_mut(),
                );
            }
        }
        allowed.insert_all(&pending);
        (allowed, pending)
    }

    #[allow(clippy::too_many_arguments)]
    fn first_match(
        &self,
        p: usize,
        dir: Direction,
        remote: &Remote,
        dst: Option<u32>,
        pending: &mut PortSet,
        allowed: &mut PortSet,
        passed: &mut PortSet,
        mut trace: Option<&mut DirTrace>,
    ) {
        let d = dir_index(dir);
        for (r, crule) in self.compiled[p][d].rules.iter().enumerate() {
            if pending.is_empty() {
                return;
            }
            if !crule
                .peers
                .iter()
                .any(|peer| self.peer_matches(peer, remote))
            {
                continue;
            }
            let hit = self.rule_ports(p, dir, r, crule, dst).intersection(pending);
            if hit.is_empty() {
                continue;
            }
            *pending = pending.difference(&hit);
            let action = crule.action;
            match action {
                Action::Allow => allowed.insert_all(&hit),
                Action::Pass => passed.insert_all(&hit),
                Action::Deny => {}
            }
            DirTrace::record(trace.as_deref_mut(), p, r, action, hit);
        }
    }

    /// The ports `src` may open to `dst`, as (allowed, allowed because no policy decided).
    fn evaluate(
        &self,
        src: &Endpoint,
        dst: &Endpoint,
        query: &PortSet,
        mut traces: Option<&mut [DirTrace; 2]>,
    ) -> (PortSet, PortSet) {
        if let (Endpoint::Pod(a), Endpoint::Pod(b)) = (src, dst) {
            if a == b {
                // A pod reaching itself is never filtered.
                return (query.clone(), PortSet::none());
            }
        }
        let dst_identity = match dst {
            Endpoint::Pod(i) => Some(self.pod_identity[*i]),
            _ => None,
        };
        let (mut eg_allowed, mut eg_default) = (query.clone(), query.clone());
        if let Endpoint::Pod(s) = src {
            let remote = self.remote(dst);
            let t = traces.as_deref_mut().map(|t| &mut t[1]);
            (eg_allowed, eg_default) = self.walk(
                Direction::Egress,
                self.pod_identity[*s],
                &remote,
                dst_identity,
                query,
                t,
            );
        }
        let (mut in_allowed, mut in_default) = (query.clone(), query.clone());
        if eg_allowed.is_empty() {
            return (PortSet::none(), PortSet::none());
        }
        if let Some(d) = dst_identity {
            let remote = self.remote(src);
            let t = traces.map(|t| &mut t[0]);
            (in_allowed, in_default) =
                self.walk(Direction::Ingress, d, &remote, Some(d), &eg_allowed, t);
        }
        let allowed = eg_allowed.intersection(&in_allowed);
        let default = eg_default.intersection(&in_default).intersection(&allowed);
        (allowed, default)
    }

    /// Every (protocol, port) `src` may open to `dst`.
    pub fn allowed_ports(&self, src: &Endpoint, dst: &Endpoint) -> PortSet {
        self.evaluate(src, dst, &PortSet::all(), None).0
    }

    /// The verdict for one flow, without the explanation.
    pub fn verdict(
        &self,
        src: &Endpoint,
        dst: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> crate::Verdict {
        let (allowed, default) = self.evaluate(src, dst, &PortSet::single(protocol, port), None);
        crate::Verdict::from_sets(&allowed, &default)
    }

    /// The verdict for one flow with its explanation, per direction and overall.
    pub fn decide(
        &self,
        src: &Endpoint,
        dst: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> Decision {
        let mut traces: [DirTrace; 2] = Default::default();
        let query = PortSet::single(protocol, port);
        // Trace egress and ingress independently so each direction explains itself.
        let (eg_allowed, eg_default) = match src {
            Endpoint::Pod(s) if src != dst => self.walk(
                Direction::Egress,
                self.pod_identity[*s],
                &self.remote(dst),
                self.dst_identity(dst),
                &query,
                Some(&mut traces[1]),
            ),
            _ => (query.clone(), query.clone()),
        };
        let (in_allowed, in_default) = match dst {
            Endpoint::Pod(d) if src != dst => {
                let id = self.pod_identity[*d];
                self.walk(
                    Direction::Ingress,
                    id,
                    &self.remote(src),
                    Some(id),
                    &query,
                    Some(&mut traces[0]),
                )
            }
            _ => (query.clone(), query.clone()),
        };
        crate::explain::build(
            self,
            src,
            dst,
            protocol,
            port,
            [(in_allowed, in_default), (eg_allowed, eg_default)],
            traces,
        )
    }

    fn dst_identity(&self, dst: &Endpoint) -> Option<u32> {
        match dst {
            Endpoint::Pod(i) => Some(self.pod_identity[*i]),
            _ => None,
        }
    }

    /// Display name of an endpoint: `ns/pod`, an address, or an entity.
    pub fn endpoint_name(&self, ep: &Endpoint) -> String {
        match ep {
            Endpoint::Pod(i) => self.inventory.pods[*i].key(),
            Endpoint::External(ip) => ip.to_string(),
            Endpoint::Entity(e, Some(ip)) => format!("{} ({ip})", e.as_str()),
            Endpoint::Entity(e, None) => e.as_str().to_string(),
        }
    }
}

/// The ports one port match covers; named ports resolve on `dst_ports` (none when unknown).
fn port_set(p: &PortMatch, dst_ports: Option<&[ContainerPort]>) -> PortSet {
    match p {
        PortMatch::Range {
            protocol: Some(proto),
            first,
            last,
        } => PortSet::ports(*proto, *first, *last),
        PortMatch::Range {
            protocol: None,
            first,
            last,
        } => Protocol::L4.iter().fold(PortSet::none(), |acc, &proto| {
            acc.union(&PortSet::ports(proto, *first, *last))
        }),
        PortMatch::Named { protocol, name } => dst_ports
            .unwrap_or_default()
            .iter()
            .filter(|c| {
                c.name.as_deref() == Some(name.as_str()) && protocol.is_none_or(|p| p == c.protocol)
            })
            .fold(PortSet::none(), |acc, c| {
                acc.union(&PortSet::single(c.protocol, c.port))
            }),
    }
}

/// Verdicts for repeated flows, cached by (source identity, destination identity,
/// protocol, port). Self-traffic is answered before the cache.
pub struct VerdictCache<'a> {
    engine: &'a Engine,
    map: FxHashMap<(u32, u32, Protocol, u16), crate::Verdict>,
}

impl<'a> VerdictCache<'a> {
    pub fn new(engine: &'a Engine) -> Self {
        VerdictCache {
            engine,
            map: FxHashMap::default(),
        }
    }

    pub fn verdict(
        &mut self,
        src: &Endpoint,
        dst: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> crate::Verdict {
        if src == dst {
            return self.engine.verdict(src, dst, protocol, port);
        }
        let key = (
            self.engine.identity_key(src),
            self.engine.identity_key(dst),
            protocol,
            port,
        );
        *self
            .map
            .entry(key)
            .or_insert_with(|| self.engine.verdict(src, dst, protocol, port))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
