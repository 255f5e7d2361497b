//! The observed communication graph: who talked to whom, on which protocol and port, how
//! often and in which hours, with the model's verdict. Recorded by a [`crate::Validator`]
//! (see [`crate::Validator::record_graph`]), so it reads and resolves flows exactly as
//! validation does; recommendations start from it.

use std::collections::BTreeSet;

use flowtypes::Verdict;
use netpol::{Decision, Endpoint, Engine, Protocol};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::resolve::EpKey;

/// One edge: judged flows with the same source, destination, protocol and port.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// `namespace/workload`, an address, or `reserved:<entity>`.
    pub source: String,
    pub destination: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Judged flows (replies not counted).
    pub count: u64,
    /// Distinct hours the edge was seen in.
    pub hours: u32,
    /// First and last hour seen, `YYYY-MM-DDTHH`.
    pub first_hour: String,
    pub last_hour: String,
    /// The model's verdict for the edge under the policies it was judged with.
    pub verdict: Verdict,
    /// A representative source and destination, to judge the edge under other policies.
    #[serde(skip)]
    pub source_endpoint: Endpoint,
    #[serde(skip)]
    pub destination_endpoint: Endpoint,
}

impl Edge {
    /// The edge judged with other policies (its representative endpoints).
    pub fn decide_under(&self, engine: &Engine) -> Decision {
        engine.decide(
            &self.source_endpoint,
            &self.destination_endpoint,
            self.protocol,
            self.port,
        )
    }

    /// [`Edge::decide_under`] without the explanation.
    pub fn verdict_under(&self, engine: &Engine) -> netpol::Verdict {
        engine.verdict(
            &self.source_endpoint,
            &self.destination_endpoint,
            self.protocol,
            self.port,
        )
    }
}

/// Every edge seen, sorted by (destination, source, protocol, port).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    pub edges: Vec<Edge>,
    /// Judged flows behind the edges.
    pub flows: u64,
    /// Distinct hours with at least one judged flow.
    pub hours: u32,
}

struct EdgeAgg {
    count: u64,
    hours: BTreeSet<[u8; 13]>,
    verdict: Verdict,
    src: Endpoint,
    dst: Endpoint,
}

/// Accumulates edges while a validator judges flows.
#[derive(Default)]
pub(crate) struct Recorder {
    edges: FxHashMap<(EpKey, EpKey, Protocol, u16), EdgeAgg>,
    hours: BTreeSet<[u8; 13]>,
    flows: u64,
}

/// One judged flow, as the recorder takes it.
pub(crate) struct Judged<'a> {
    pub keys: (EpKey, EpKey),
    pub endpoints: (&'a Endpoint, &'a Endpoint),
    pub protocol: Protocol,
    pub port: u16,
    pub hour: [u8; 13],
    pub verdict: Verdict,
}

impl Recorder {
    pub(crate) fn record(&mut self, j: Judged<'_>) {
        self.flows += 1;
        self.hours.insert(j.hour);
        let e = self
            .edges
            .entry((j.keys.0, j.keys.1, j.protocol, j.port))
            .or_insert_with(|| EdgeAgg {
                count: 0,
                hours: BTreeSet::new(),
                verdict: j.verdict,
                src: *j.endpoints.0,
                dst: *j.endpoints.1,
            });
        e.count += 1;
        e.hours.insert(j.hour);
        // The latest verdict wins: an agent may judge with a newer engine.
        e.verdict = j.verdict;
    }

    /// The graph, naming keys with `name`.
    pub(crate) fn graph(&self, name: impl Fn(&EpKey) -> String) -> Graph {
        let hour = |h: Option<&[u8; 13]>| {
            h.map(|h| String::from_utf8_lossy(h).into_owned())
                .unwrap_or_default()
        };
        let mut edges: Vec<Edge> = self
            .edges
            .iter()
            .map(|((s, d, protocol, port), e)| Edge {
                source: name(s),
                destination: name(d),
                protocol: *protocol,
                port: *port,
                count: e.count,
                hours: e.hours.len() as u32,
                first_hour: hour(e.hours.first()),
                last_hour: hour(e.hours.last()),
                verdict: e.verdict,
                source_endpoint: e.src,
                destination_endpoint: e.dst,
            })
            .collect();
        edges.sort_by(|a, b| {
            (&a.destination, &a.source, a.protocol, a.port).cmp(&(
                &b.destination,
                &b.source,
                b.protocol,
                b.port,
            ))
        });
        Graph {
            edges,
            flows: self.flows,
            hours: self.hours.len() as u32,
        }
    }
}
