//! End-to-end capture between two network namespaces joined by a veth pair: nftables drops
//! one TCP and one UDP port on INPUT in the server netns and one TCP port on OUTPUT in the
//! client netns; a python3 TCP listener and UDP echo responder run in the server netns; the
//! client side runs in a thread that entered the client netns. The servers are dual-stack
//! (IPv4 clients appear as v4-mapped IPv6 to them); IPv4 and IPv6 are both driven.
//! Needs root (skips otherwise).

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ebpf::{netns_of, Capture, FlowRecord, Options, Outcome, Protocol};
use nix::sched::{setns, CloneFlags};

const TCP_OPEN: u16 = 7000;
const TCP_CLOSED: u16 = 7001;
const TCP_INPUT_DROP: u16 = 7002;
const TCP_OUTPUT_DROP: u16 = 7003;
const UDP_ECHO: u16 = 7010;
const UDP_CLOSED: u16 = 7011;
const UDP_INPUT_DROP: u16 = 7012;

const SERVER: &str = r#"
import socket, threading
def dual(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    return s
t = dual(socket.SOCK_STREAM, 7000); t.listen(128)
u = dual(socket.SOCK_DGRAM, 7010)
def accept():
    while True:
        c, _ = t.accept(); c.close()
threading.Thread(target=accept, daemon=True).start()
print("ready", flush=True)
while True:
    d, a = u.recvfrom(2048); u.sendto(d, a)
"#;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed: {status}");
}

fn nft(netns: &str, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft in {netns} failed");
}

/// Two netns joined by a veth pair; deleted (with the server process) on drop.
struct Topology {
    client: String,
    server: String,
    client_ip: Ipv4Addr,
    server_ip: Ipv4Addr,
    client_ip6: Ipv6Addr,
    server_ip6: Ipv6Addr,
    server_proc: Option<Child>,
}

impl Topology {
    fn new(tag: &str) -> Topology {
        let pid = std::process::id();
        let client = format!("phc-{tag}-{pid}");
        let server = format!("phs-{tag}-{pid}");
        let (a, b) = (((pid >> 8) % 250) as u8 + 1, (pid % 250) as u8 + 1);
        let client_ip = Ipv4Addr::new(10, a, b, 1);
        let server_ip = Ipv4Addr::new(10, a, b, 2);
        let v6 = |host| Ipv6Addr::new(0xfd00, a.into(), b.into(), 0, 0, 0, 0, host);
        let (client_ip6, server_ip6) = (v6(1), v6(2));
        let topo = Topology {
            client,
            server,
            client_ip,
            server_ip,
            client_ip6,
            server_ip6,
            server_proc: None,
        };
        let (c, s) = (topo.client.as_str(), topo.server.as_str());
        run(&["ip", "netns", "add", c]);
        run(&["ip", "netns", "add", s]);
        let (vc, vs) = (format!("phc{pid}"), format!("phs{pid}"));
        run(&[
            "ip", "link", "add", &vc, "netns", c, "type", "veth", "peer", "name", &vs, "netns", s,
        ]);
        for (ns, dev, ip, ip6) in [
            (c, &vc, client_ip, client_ip6),
            (s, &vs, server_ip, server_ip6),
        ] {
            let (ip, ip6) = (format!("{ip}/24"), format!("{ip6}/64"));
            run(&["ip", "-n", ns, "addr", "add", &ip, "dev", dev]);
            run(&["ip", "-n", ns, "addr", "add", &ip6, "dev", dev, "nodad"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        nft(
            s,
            &format!(
                "table inet ph {{\n chain input {{\n type filter hook input priority 0;\n \
                 tcp dport {TCP_INPUT_DROP} drop\n udp dport {UDP_INPUT_DROP} drop\n }}\n}}\n"
            ),
        );
        nft(
            c,
            &format!(
                "table inet ph {{\n chain output {{\n type filter hook output priority 0;\n \
                 tcp dport {TCP_OUTPUT_DROP} drop\n }}\n}}\n"
            ),
        );
        topo
    }

    fn path(name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(name)
    }

    fn start_server(&mut self) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.server, "python3", "-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        self.server_proc = Some(child);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut child) = self.server_proc.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// What the client did: local addresses of the sockets it could read them from.
struct ClientRun {
    tcp_open_local: SocketAddr,
    udp_echo_local: SocketAddr,
    udp_closed_local: SocketAddr,
    udp_drop_local: SocketAddr,
    tcp6_local: SocketAddr,
    udp6_local: SocketAddr,
}

fn drive_client(netns: PathBuf, server: Ipv4Addr, server6: Ipv6Addr) -> ClientRun {
    setns(File::open(netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
    let to = |port| SocketAddr::new(IpAddr::V4(server), port);
    let stream = TcpStream::connect_timeout(&to(TCP_OPEN), Duration::from_secs(3)).unwrap();
    let tcp_open_local = stream.local_addr().unwrap();
    drop(stream);
    let err = TcpStream::connect_timeout(&to(TCP_CLOSED), Duration::from_secs(3)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // Both drops end in a timeout (or EPERM for OUTPUT); closing the socket ends the attempt.
    for port in [TCP_INPUT_DROP, TCP_OUTPUT_DROP] {
        TcpStream::connect_timeout(&to(port), Duration::from_millis(1500)).unwrap_err();
    }

    let udp = |port| {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect(to(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send(b"ping").unwrap();
        s
    };
    let echo = udp(UDP_ECHO);
    let mut buf = [0; 16];
    assert_eq!(echo.recv(&mut buf).unwrap(), 4);
    let closed = udp(UDP_CLOSED);
    let dropped = udp(UDP_INPUT_DROP);
    // Retries past the idle time (1 s) still make one record, decided 1 s after the first.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(500));
        dropped.send(b"ping").unwrap();
    }

    let to6 = |port| SocketAddr::new(IpAddr::V6(server6), port);
    let stream = TcpStream::connect_timeout(&to6(TCP_OPEN), Duration::from_secs(3)).unwrap();
    let tcp6_local = stream.local_addr().unwrap();
    drop(stream);
    let udp6 = UdpSocket::bind("[::]:0").unwrap();
    udp6.connect(to6(UDP_ECHO)).unwrap();
    udp6.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    udp6.send(b"ping").unwrap();
    assert_eq!(udp6.recv(&mut buf).unwrap(), 4);
    ClientRun {
        tcp6_local,
        udp6_local: udp6.local_addr().unwrap(),
        tcp_open_local,
        udp_echo_local: echo.local_addr().unwrap(),
        udp_closed_local: closed.local_addr().unwrap(),
        udp_drop_local: dropped.local_addr().unwrap(),
    }
}

fn find(
    records: &[FlowRecord],
    netns: u64,
    protocol: Protocol,
    dst_port: u16,
    initiated_here: bool,
) -> Option<&FlowRecord> {
    records.iter().find(|r| {
        r.netns == netns
            && r.protocol == protocol
            && r.dst.port() == dst_port
            && r.initiated_here == initiated_here
    })
}

fn dropped_by_netfilter(outcome: &Outcome, netns: u64) -> bool {
    matches!(outcome, Outcome::Dropped { name, netns: at, .. } if name == "NETFILTER_DROP" && *at == netns)
}

#[test]
fn outcomes_between_two_netns() {
    if !is_root() {
        eprintln!("skipping outcomes_between_two_netns: needs root (CI runs as root)");
        return;
    }
    let mut topo = Topology::new("cap");
    topo.start_server();
    let client_ns = netns_of(&Topology::path(&topo.client)).unwrap();
    let server_ns = netns_of(&Topology::path(&topo.server)).unwrap();
    assert_ne!(client_ns, server_ns);

    let opts = Options {
        udp_idle: Duration::from_secs(1),
        ..Options::default()
    };
    let mut capture = Capture::start(&opts).unwrap();
    let netns_path = Topology::path(&topo.client);
    let (server_ip, server_ip6) = (topo.server_ip, topo.server_ip6);
    let client = std::thread::spawn(move || drive_client(netns_path, server_ip, server_ip6));

    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = 13;
    while Instant::now() < deadline {
        capture
            .poll(Duration::from_millis(100), &mut |r| {
                if r.netns == client_ns || r.netns == server_ns {
                    records.push(r);
                }
            })
            .unwrap();
        if client.is_finished() && records.len() >= expected {
            break;
        }
    }
    let run = client.join().unwrap();
    for r in &records {
        eprintln!("{r:?}");
    }
    let (c_ip, s_ip) = (IpAddr::V4(topo.client_ip), IpAddr::V4(topo.server_ip));
    let server = |port| SocketAddr::new(s_ip, port);

    // TCP, client side: one record per attempt.
    let r = find(&records, client_ns, Protocol::Tcp, TCP_OPEN, true).expect("open");
    assert_eq!((r.src, r.dst), (run.tcp_open_local, server(TCP_OPEN)));
    assert_eq!(r.outcome, Outcome::Established);
    let r = find(&records, client_ns, Protocol::Tcp, TCP_CLOSED, true).expect("closed");
    assert_eq!((r.src.ip(), r.dst), (c_ip, server(TCP_CLOSED)));
    assert_ne!(r.src.port(), 0);
    assert_eq!(r.outcome, Outcome::Refused);
    let r = find(&records, client_ns, Protocol::Tcp, TCP_INPUT_DROP, true).expect("input drop");
    assert_eq!((r.src.ip(), r.dst), (c_ip, server(TCP_INPUT_DROP)));
    assert!(dropped_by_netfilter(&r.outcome, server_ns), "{r:?}");
    let r = find(&records, client_ns, Protocol::Tcp, TCP_OUTPUT_DROP, true).expect("output drop");
    assert_eq!((r.src.ip(), r.dst), (c_ip, server(TCP_OUTPUT_DROP)));
    assert!(dropped_by_netfilter(&r.outcome, client_ns), "{r:?}");
    // TCP, server side: the accepted connection, the client as source.
    let r = find(&records, server_ns, Protocol::Tcp, TCP_OPEN, false).expect("accepted");
    assert_eq!((r.src, r.dst), (run.tcp_open_local, server(TCP_OPEN)));
    assert_eq!(r.outcome, Outcome::Established);

    // UDP.
    let r = find(&records, client_ns, Protocol::Udp, UDP_ECHO, true).expect("udp echo");
    assert_eq!((r.src, r.dst), (run.udp_echo_local, server(UDP_ECHO)));
    assert_eq!(r.outcome, Outcome::Replied);
    let r = find(&records, server_ns, Protocol::Udp, UDP_ECHO, false).expect("udp server");
    assert_eq!((r.src, r.dst), (run.udp_echo_local, server(UDP_ECHO)));
    assert_eq!(r.outcome, Outcome::Replied);
    let r = find(&records, client_ns, Protocol::Udp, UDP_CLOSED, true).expect("udp closed");
    assert_eq!((r.src, r.dst), (run.udp_closed_local, server(UDP_CLOSED)));
    assert_eq!(r.outcome, Outcome::Refused);
    let r = find(&records, client_ns, Protocol::Udp, UDP_INPUT_DROP, true).expect("udp drop");
    assert_eq!((r.src, r.dst), (run.udp_drop_local, server(UDP_INPUT_DROP)));
    assert!(dropped_by_netfilter(&r.outcome, server_ns), "{r:?}");

    // IPv6: TCP and UDP, each seen from both namespaces.
    let s6 = |port| SocketAddr::new(IpAddr::V6(topo.server_ip6), port);
    let v6 = |ns, proto, initiated| {
        records
            .iter()
            .find(|r| {
                r.netns == ns
                    && r.protocol == proto
                    && r.initiated_here == initiated
                    && r.dst.is_ipv6()
            })
            .unwrap_or_else(|| panic!("no IPv6 {proto:?} record in {ns} ({initiated})"))
    };
    for (ns, initiated) in [(client_ns, true), (server_ns, false)] {
        let r = v6(ns, Protocol::Tcp, initiated);
        assert_eq!((r.src, r.dst), (run.tcp6_local, s6(TCP_OPEN)));
        assert_eq!(r.outcome, Outcome::Established);
        let r = v6(ns, Protocol::Udp, initiated);
        assert_eq!((r.src, r.dst), (run.udp6_local, s6(UDP_ECHO)));
        assert_eq!(r.outcome, Outcome::Replied);
    }
    assert_eq!(run.tcp6_local.ip(), IpAddr::V6(topo.client_ip6));

    // Exactly one record per attempt and flow.
    assert_eq!(records.len(), expected, "{records:#?}");
    assert_eq!(capture.lost(), 0);
    assert_eq!(capture.malformed(), 0);
}

#[test]
fn netns_of_names_the_namespace_inode() {
    let own = netns_of(std::path::Path::new("/proc/self/ns/net")).unwrap();
    let link = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(link.to_string_lossy(), format!("net:[{own}]"));
}
