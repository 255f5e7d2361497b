//! eBPF flow capture: every TCP connection attempt and every UDP flow on the host, with its
//! outcome, attributed by network namespace (the netns inode, `net->ns.inum`) and addresses.
//!
//! Hooks (no kprobes, no fentry/fexit, no tracefs):
//! - `tp_btf/inet_sock_set_state` — TCP: `connect()` attempts (→ `SYN_SENT`) end as
//!   [`Outcome::Established`] (`ESTABLISHED`) or at `CLOSE` as [`Outcome::Refused`] (a reset
//!   was received, `tp_btf/tcp_receive_reset`), [`Outcome::Dropped`] (a packet of the
//!   4-tuple was freed by `tp_btf/kfree_skb` with a real drop reason, in any netns) or
//!   [`Outcome::Unanswered`] (neither: timeout, abort). Accepted connections
//!   (`SYN_RECV` → `ESTABLISHED`) are reported as established with the remote side as source.
//! - `cgroup_skb` ingress + egress on the root cgroup v2 — UDP: the first packet of a
//!   (netns, local, remote) flow creates it; a packet in the other direction makes it
//!   [`Outcome::Replied`]; an ICMP port unreachable (`tp_btf/icmp_send`, IPv4) makes it
//!   [`Outcome::Refused`]; no reply within [`Options::udp_idle`] makes it
//!   [`Outcome::Unanswered`], or [`Outcome::Dropped`] when `kfree_skb` saw it dropped.
//!
//! Per-connection state lives in LRU hash maps in the kernel; only final outcomes cross the
//! ring buffer (one event per connection). Events lost to a full ring buffer are counted
//! per CPU and reported by [`Capture::lost`]; records too short to decode are counted by
//! [`Capture::malformed`] and skipped.

mod event;
mod skel;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, RingBuffer, RingBufferBuilder};
use nix::time::{clock_gettime, ClockId};

use event::{RawEvent, UdpFlowValue, UdpKey};
use skel::{CaptureSkel, CaptureSkelBuilder};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Errors of [`Capture`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading BPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN).
    #[error("eBPF capture needs root; running as uid {0}")]
    NotRoot(u32),
    /// The kernel exposes no BTF, which CO-RE and `tp_btf` programs need.
    #[error("kernel BTF not found at {0} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf(PathBuf),
    /// An [`Options`] value the kernel would reject.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Opening or loading the BPF object (verifier rejection included).
    #[error("loading the BPF object: {0}")]
    Load(#[source] libbpf_rs::Error),
    /// Attaching one program.
    #[error("attaching BPF program {program}: {source}")]
    Attach {
        /// The program's name in `capture.bpf.c`.
        program: &'static str,
        /// What libbpf reported.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Opening the cgroup v2 directory the UDP programs attach to.
    #[error("opening cgroup v2 directory {path}: {source}")]
    Cgroup {
        /// The directory from [`Options::cgroup`].
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Polling the ring buffer or reading a map.
    #[error("{what}: {source}")]
    Runtime {
        /// What was being done.
        what: &'static str,
        /// What libbpf reported.
        #[source]
        source: libbpf_rs::Error,
    },
}

/// Transport protocol of a [`FlowRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP: one record per connection attempt.
    Tcp,
    /// UDP: one record per flow.
    Udp,
}

/// How a connection attempt or flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// TCP handshake completed.
    Established,
    /// TCP reset received for the SYN, or ICMP port unreachable for UDP.
    Refused,
    /// A packet of the flow was freed with this `enum skb_drop_reason`.
    Dropped {
        /// The kernel's drop reason number.
        reason: u32,
        /// The reason's name without the `SKB_DROP_REASON_` prefix, e.g. `NETFILTER_DROP`.
        name: String,
        /// Inode of the netns where the packet was freed (0 if unknown).
        netns: u64,
    },
    /// UDP: a packet came back.
    Replied,
    /// No answer: TCP closed in `SYN_SENT` without reset or drop; UDP idle without reply.
    Unanswered,
}

/// One connection attempt (TCP) or flow (UDP) as seen from one network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// Inode of the network namespace the socket lives in.
    pub netns: u64,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The side that opened the connection (sent the SYN or the first datagram).
    pub src: SocketAddr,
    /// The other side.
    pub dst: SocketAddr,
    /// Whether `src` is the local side, i.e. the flow was opened from `netns`.
    pub initiated_here: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// When the attempt started (TCP `connect()`, accepted connections: when established;
    /// UDP: first packet).
    pub time: SystemTime,
}

/// Settings of [`Capture::start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// A UDP flow with no reply this long after its first packet is reported unanswered
    /// (or dropped); a flow without packets for this long is forgotten.
    pub udp_idle: Duration,
    /// Ring buffer size: a power of two, at least one page.
    pub ringbuf_bytes: u32,
    /// The cgroup v2 directory the UDP programs attach to (its subtree is captured).
    pub cgroup: PathBuf,
    /// Capacity of the kernel's per-connection and per-flow LRU maps.
    pub max_tracked: u32,
}

impl Default for Options {
    /// 5 s UDP idle time, a 4 MiB ring buffer, the root cgroup v2 (`/sys/fs/cgroup`, or
    /// `/sys/fs/cgroup/unified` on a hybrid hierarchy), 65536 tracked flows.
    fn default() -> Self {
        let cgroup = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").exists())
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        Options {
            udp_idle: Duration::from_secs(5),
            ringbuf_bytes: 4 << 20,
            cgroup,
            max_tracked: 65536,
        }
    }
}

/// Records decoded by the ring buffer callback, waiting for [`Capture::poll`].
#[derive(Default)]
struct Pending {
    events: VecDeque<RawEvent>,
    malformed: u64,
}

/// A running capture: the BPF programs are attached until it is dropped.
///
/// Not `Send` (the ring buffer callback and libbpf handles are not): create it on the
/// thread that polls it.
pub struct Capture {
    // Field order is drop order: the ring buffer and links go before the object.
    ring: RingBuffer<'static>,
    _links: Vec<Link>,
    skel: CaptureSkel<'static>,
    pending: Rc<RefCell<Pending>>,
    drop_names: HashMap<u32, String>,
    udp_idle: Duration,
    last_sweep: Duration,
}

impl Capture {
    /// Loads the BPF object and attaches every program.
    pub fn start(opts: &Options) -> Result<Capture, Error> {
        if !opts.ringbuf_bytes.is_power_of_two() || opts.ringbuf_bytes < 4096 {
            return Err(Error::InvalidOption(format!(
                "ringbuf_bytes {} is not a power of two of at least 4096",
                opts.ringbuf_bytes
            )));
        }
        if opts.max_tracked == 0 {
            return Err(Error::InvalidOption("max_tracked is 0".into()));
        }
        if opts.udp_idle.is_zero() {
            return Err(Error::InvalidOption("udp_idle is 0".into()));
        }
        let uid = nix::unistd::geteuid();
        if !uid.is_root() {
            return Err(Error::NotRoot(uid.as_raw()));
        }
        if !Path::new(KERNEL_BTF).exists() {
            return Err(Error::NoBtf(KERNEL_BTF.into()));
        }
        let cgroup = File::open(&opts.cgroup).map_err(|source| Error::Cgroup {
            path: opts.cgroup.clone(),
            source,
        })?;

        // The open object must outlive the skeleton, which keeps the capture's lifetime:
        // it is a few pointers, leaked once per `Capture`.
        let storage = Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = CaptureSkelBuilder::default()
            .open(storage)
            .map_err(Error::Load)?;
        let maps = &mut open.maps;
        maps.events
            .set_max_entries(opts.ringbuf_bytes)
            .map_err(Error::Load)?;
        for map in [
            &mut maps.tcp_conns,
            &mut maps.udp_flows,
            &mut maps.udp_origin,
        ] {
            map.set_max_entries(opts.max_tracked).map_err(Error::Load)?;
        }
        let skel = open.load().map_err(Error::Load)?;

        let progs = &skel.progs;
        let mut links = Vec::new();
        for (program, prog) in [
            (
                "on_set_state (tp_btf/inet_sock_set_state)",
                &progs.on_set_state,
            ),
            (
                "on_receive_reset (tp_btf/tcp_receive_reset)",
                &progs.on_receive_reset,
            ),
            ("on_kfree_skb (tp_btf/kfree_skb)", &progs.on_kfree_skb),
            ("on_icmp_send (tp_btf/icmp_send)", &progs.on_icmp_send),
        ] {
            links.push(
                prog.attach()
                    .map_err(|source| Error::Attach { program, source })?,
            );
        }
        for (program, prog) in [
            ("udp_ingress (cgroup_skb/ingress)", &progs.udp_ingress),
            ("udp_egress (cgroup_skb/egress)", &progs.udp_egress),
        ] {
            links.push(
                prog.attach_cgroup(cgroup.as_raw_fd())
                    .map_err(|source| Error::Attach { program, source })?,
            );
        }

        let pending = Rc::new(RefCell::new(Pending::default()));
        let sink = Rc::clone(&pending);
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&skel.maps.events, move |data: &[u8]| {
                let mut p = sink.borrow_mut();
                match RawEvent::parse(data) {
                    Some(e) => p.events.push_back(e),
                    None => p.malformed += 1,
                }
                0
            })
            .map_err(Error::Load)?;
        let ring = builder.build().map_err(Error::Load)?;

        Ok(Capture {
            ring,
            _links: links,
            skel,
            pending,
            drop_names: drop_reason_names(),
            udp_idle: opts.udp_idle,
            last_sweep: monotonic(),
        })
    }

    /// Waits up to `timeout` for events and hands each record to `f`; also reports UDP
    /// flows idle for [`Options::udp_idle`]. Returns the number of records handed over.
    pub fn poll(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(FlowRecord),
    ) -> Result<usize, Error> {
        match self.ring.poll(timeout) {
            // A signal cut the wait short: hand over what is there.
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Runtime {
                    what: "polling the ring buffer",
                    source,
                })
            }
            Ok(()) => {}
        }
        let clock = WallClock::now();
        let mut n = 0;
        loop {
            // Take one at a time: `f` may take long, the queue is not borrowed meanwhile.
            let Some(e) = self.pending.borrow_mut().events.pop_front() else {
                break;
            };
            f(e.to_record(&clock, &self.drop_names));
            n += 1;
        }
        let now = monotonic();
        if now.saturating_sub(self.last_sweep) >= (self.udp_idle / 4).max(Duration::from_millis(50))
        {
            self.last_sweep = now;
            n += self.sweep_udp(now, &clock, f);
        }
        Ok(n)
    }

    /// Events lost because the ring buffer was full (summed over CPUs).
    pub fn lost(&self) -> u64 {
        let key = 0u32.to_ne_bytes();
        match self.skel.maps.lost.lookup_percpu(&key, MapFlags::ANY) {
            Ok(Some(values)) => values
                .iter()
                .filter_map(|v| v.get(..8))
                .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
                .sum(),
            _ => 0,
        }
    }

    /// Ring buffer records too short to decode (skipped; a version mismatch symptom).
    pub fn malformed(&self) -> u64 {
        self.pending.borrow().malformed
    }

    /// Reports UDP flows unanswered `udp_idle` after their first packet; forgets flows idle
    /// for `udp_idle`.
    fn sweep_udp(
        &mut self,
        now: Duration,
        clock: &WallClock,
        f: &mut dyn FnMut(FlowRecord),
    ) -> usize {
        let flows = &self.skel.maps.udp_flows;
        let idle_ns = self.udp_idle.as_nanos() as u64;
        let now_ns = now.as_nanos() as u64;
        // One syscall per 1024 flows; per-key lookups where batch lookups are unsupported.
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            match flows.lookup_batch(1024, MapFlags::ANY, MapFlags::ANY) {
                Ok(batch) => batch.collect(),
                Err(_) => flows
                    .keys()
                    .filter_map(|k| match flows.lookup(&k, MapFlags::ANY) {
                        Ok(Some(v)) => Some((k, v)),
                        _ => None,
                    })
                    .collect(),
            };
        let mut n = 0;
        for (key, mut value) in entries {
            let (Some(k), Some(v)) = (UdpKey::parse(&key), UdpFlowValue::parse(&value)) else {
                continue;
            };
            // No reply within `udp_idle` of the first packet decides the outcome, even while
            // the sender keeps retrying.
            if !v.reported && now_ns.saturating_sub(v.first_ns) >= idle_ns {
                f(event::udp_final(&k, &v, clock, &self.drop_names));
                n += 1;
            }
            if now_ns.saturating_sub(v.last_ns) >= idle_ns {
                // Deleting a key that the LRU already evicted is fine.
                let _ = flows.delete(&key);
                if v.initiated_here {
                    let _ = self.skel.maps.udp_origin.delete(&event::origin_key(&k));
                }
            } else if !v.reported && now_ns.saturating_sub(v.first_ns) >= idle_ns {
                // Still active: keep it, reported, so it yields no second record.
                value[event::UDP_FLOW_REPORTED] = 1;
                let _ = flows.update(&key, &value, MapFlags::EXIST);
            }
        }
        n
    }
}

/// The netns inode of a namespace file: `/proc/<pid>/ns/net` or `/run/netns/<name>`.
pub fn netns_of(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// Converts `bpf_ktime_get_ns` (CLOCK_MONOTONIC) timestamps to wall clock.
pub(crate) struct WallClock {
    realtime: Duration,
    monotonic: Duration,
}

impl WallClock {
    fn now() -> WallClock {
        let monotonic = monotonic();
        let realtime = clock_gettime(ClockId::CLOCK_REALTIME)
            .map(Duration::from)
            .unwrap_or_default();
        WallClock {
            realtime,
            monotonic,
        }
    }

    pub(crate) fn wall(&self, ts_ns: u64) -> SystemTime {
        let ts = Duration::from_nanos(ts_ns);
        let at = if ts <= self.monotonic {
            self.realtime.saturating_sub(self.monotonic - ts)
        } else {
            self.realtime + (ts - self.monotonic)
        };
        UNIX_EPOCH + at
    }
}

fn monotonic() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// `enum skb_drop_reason` values by number, read from the running kernel's BTF (the
/// numbering changes between kernel versions).
fn drop_reason_names() -> HashMap<u32, String> {
    use libbpf_rs::btf::{types::Enum, Btf};
    let mut names = HashMap::new();
    let Ok(btf) = Btf::from_vmlinux() else {
        return names;
    };
    if let Some(e) = btf.type_by_name::<Enum>("skb_drop_reason") {
        for m in e.iter() {
            if let (Some(name), Ok(v)) = (m.name, u32::try_from(m.value)) {
                let name = name.to_string_lossy();
                let short = name.strip_prefix("SKB_DROP_REASON_").unwrap_or(&name);
                names.insert(v, short.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_options_are_rejected_before_anything_loads() {
        for opts in [
            Options {
                ringbuf_bytes: 5000,
                ..Options::default()
            },
            Options {
                max_tracked: 0,
                ..Options::default()
            },
            Options {
                udp_idle: Duration::ZERO,
                ..Options::default()
            },
        ] {
            let err = Capture::start(&opts).err().expect("rejected");
            assert!(matches!(err, Error::InvalidOption(_)), "{err}");
        }
    }

    #[test]
    fn wall_clock_maps_monotonic_time() {
        let clock = WallClock::now();
        let mono = clock.monotonic.as_nanos() as u64;
        let earlier = clock.wall(mono - 1_000_000_000);
        let diff = clock.wall(mono).duration_since(earlier).unwrap();
        assert_eq!(diff, Duration::from_secs(1));
    }
}
