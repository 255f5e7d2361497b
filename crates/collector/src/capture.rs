//! What the node's own capture saw about a connection, in the shape the validator judges.
//!
//! The dataplane's verdict is read from the connection's outcome:
//! - established (TCP) or replied (UDP): the packets went through enforcement at both ends;
//! - dropped by the packet filter (the kernel's `NETFILTER_DROP` reason, where nftables or
//!   iptables enforce the policies): a policy drop;
//! - refused, unanswered, or dropped for another reason: nothing is known about policy (a
//!   closed port, a slow peer or a full queue say nothing about enforcement).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flow::hubble::{EnumVal, EventType, Flow, Ip, Layer4, Ports, Str, Uint};
use netpol::Protocol;

use crate::metrics::Metrics;
use crate::pipeline::{Observation, Side};
use crate::source::Source;

/// How a connection ended, as far as policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// TCP handshake completed, or a UDP flow was answered.
    Delivered,
    /// Freed by the kernel with this drop reason (`NETFILTER_DROP`, `NO_SOCKET`, ...).
    Dropped(String),
    /// Refused by a reset or never answered.
    Failed,
}

/// The kernel's drop reason for packets a netfilter rule dropped.
pub const NETFILTER_DROP: &str = "NETFILTER_DROP";

fn s(v: impl Into<Cow<'static, str>>) -> Option<Str<'static>> {
    Some(Str(v.into()))
}

fn name(v: &'static str) -> Option<EnumVal<'static>> {
    Some(EnumVal::Name(Str(Cow::Borrowed(v))))
}

/// The flow the validator judges for one connection (`src` opened it).
pub fn connection_flow(
    time: SystemTime,
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
    outcome: &Outcome,
) -> Flow<'static> {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ports = Some(Ports {
        source_port: Some(Uint(src.port().into())),
        destination_port: Some(Uint(dst.port().into())),
    });
    let l4 = match protocol {
        Protocol::Udp => Layer4 {
            udp: ports,
            ..Default::default()
        },
        Protocol::Sctp => Layer4 {
            sctp: ports,
            ..Default::default()
        },
        _ => Layer4 {
            tcp: ports,
            ..Default::default()
        },
    };
    let mut flow = Flow {
        time: s(flow::synth::rfc3339(
            secs.as_secs() as i64,
            secs.subsec_nanos(),
        )),
        ip: Some(Ip {
            source: s(src.ip().to_string()),
            destination: s(dst.ip().to_string()),
            ip_version: None,
        }),
        l4: Some(l4),
        ..Default::default()
    };
    match outcome {
        Outcome::Delivered => {
            flow.verdict = name("FORWARDED");
            flow.event_type = Some(EventType {
                event_type: Some(Uint(flow::hubble::EVENT_TRACE)),
                sub_type: None,
            });
            flow.trace_observation_point = name("TO_ENDPOINT");
        }
        Outcome::Dropped(reason) => {
            flow.verdict = name("DROPPED");
            flow.event_type = Some(EventType {
                event_type: Some(Uint(flow::hubble::EVENT_DROP)),
                sub_type: None,
            });
            flow.drop_reason_desc = Some(EnumVal::Name(Str(if reason == NETFILTER_DROP {
                Cow::Borrowed("POLICY_DENIED")
            } else {
                Cow::Owned(reason.clone())
            })));
        }
        Outcome::Failed => {}
    }
    flow
}

/// The node's own eBPF capture (crate `ebpf`): every TCP connection attempt and UDP flow,
/// with its outcome. Needs root (or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN) and kernel BTF.
pub struct EbpfSource {
    pub options: ebpf::Options,
}

/// One capture record as the judge sees it.
pub fn observation(record: &ebpf::FlowRecord) -> Observation {
    let protocol = match record.protocol {
        ebpf::Protocol::Tcp => Protocol::Tcp,
        ebpf::Protocol::Udp => Protocol::Udp,
    };
    let outcome = match &record.outcome {
        ebpf::Outcome::Established | ebpf::Outcome::Replied => Outcome::Delivered,
        ebpf::Outcome::Dropped { name, .. } => Outcome::Dropped(name.clone()),
        ebpf::Outcome::Refused | ebpf::Outcome::Unanswered => Outcome::Failed,
    };
    Observation::Connection {
        flow: Box::new(connection_flow(
            record.time,
            protocol,
            record.src,
            record.dst,
            &outcome,
        )),
        side: if record.initiated_here {
            Side::Initiator
        } else {
            Side::Acceptor
        },
    }
}

impl Source for EbpfSource {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn run(
        self: Box<Self>,
        out: SyncSender<Observation>,
        stop: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<()> {
        let mut capture = ebpf::Capture::start(&self.options)?;
        tracing::info!("eBPF capture attached");
        metrics.source_up.store(true, Ordering::Relaxed);
        let mut gone = false;
        while !stop.load(Ordering::Relaxed) && !gone {
            capture.poll(Duration::from_millis(100), &mut |record| {
                if !gone && out.send(observation(&record)).is_err() {
                    gone = true;
                }
            })?;
            metrics.lost_events.store(capture.lost(), Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow::{observe, Observed, Scope};

    #[test]
    fn outcomes_read_as_the_dataplane_verdicts_they_are() {
        let (a, b) = (
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:5432".parse().unwrap(),
        );
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let f = |o: Outcome| connection_flow(t, Protocol::Tcp, a, b, &o);
        assert_eq!(
            observe(&f(Outcome::Delivered)),
            Observed::Passed(Scope::Flow)
        );
        assert_eq!(
            observe(&f(Outcome::Dropped(NETFILTER_DROP.into()))),
            Observed::PolicyDrop(Scope::Flow)
        );
        assert_eq!(
            observe(&f(Outcome::Dropped("NO_SOCKET".into()))),
            Observed::Unknown
        );
        assert_eq!(observe(&f(Outcome::Failed)), Observed::Unknown);
        let flow = f(Outcome::Delivered);
        assert_eq!(flow.time.as_deref(), Some("2026-11-18T11:06:40.000000000Z"));
        assert_eq!(flow::validate::l4_of(&flow), Some((Protocol::Tcp, 5432)));
        let udp = connection_flow(t, Protocol::Udp, a, b, &Outcome::Failed);
        assert_eq!(flow::validate::l4_of(&udp), Some((Protocol::Udp, 5432)));
    }
}
