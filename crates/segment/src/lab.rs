//! Real packets on one machine: network namespaces standing for pods on one bridge, with
//! nftables rules (from [`crate::nft`]) and small Python servers and probes. The harness of
//! the tests that prove policies with real traffic (segment's and the collector's). Needs
//! root, `ip` (iproute2), `nft` and `python3`. Everything created is removed on drop.

use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, Command, Output, Stdio};

/// Listens on `tcp:PORT` (accepts and closes) and `udp:PORT` (echoes) arguments; prints
/// `ready` once listening; exits when standard input closes.
pub const SERVER: &str = r#"
import socket, sys, threading
def tcp(p):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p))
    s.listen(128)
    def loop():
        while True:
            c, _ = s.accept()
            c.close()
    return loop
def udp(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", p))
    def loop():
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    return loop
for a in sys.argv[1:]:
    proto, port = a.split(":")
    threading.Thread(target=(tcp if proto == "tcp" else udp)(int(port)), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"#;

/// Tries every `[proto, ip, port]` of its JSON argument in parallel (TCP: connect; UDP:
/// send and wait for the echo), each with a timeout of `sys.argv[2]` seconds; prints a JSON
/// list of booleans.
pub const PROBE: &str = r#"
import json, socket, sys, threading
targets = json.loads(sys.argv[1])
timeout = float(sys.argv[2])
res = [None] * len(targets)
def probe(i, proto, ip, port):
    udp = proto == "udp"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if udp:
            s.sendto(b"ping", (ip, port))
            s.recvfrom(64)
        else:
            s.connect((ip, port))
        res[i] = True
    except Exception:
        res[i] = False
    finally:
        s.close()
ts = [threading.Thread(target=probe, args=(i, *t)) for i, t in enumerate(targets)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(res))
"#;

/// Namespaces and processes of one test; removed on drop, whatever happens.
pub struct Lab {
    tag: String,
    switch: String,
    hosts: usize,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

fn run(args: &[&str]) -> io::Result<Output> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

impl Lab {
    /// A bridge in a namespace of its own; `prefix` (a few letters) keeps names of
    /// concurrent tests apart, with the process id.
    pub fn new(prefix: &str) -> io::Result<Lab> {
        let tag = format!("{prefix}{}", std::process::id() % 100_000);
        let switch = format!("{tag}sw");
        let mut lab = Lab {
            tag,
            switch: switch.clone(),
            hosts: 0,
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        run(&["ip", "netns", "add", &switch])?;
        lab.namespaces.push(switch.clone());
        lab.exec(&switch, &["ip", "link", "add", "br0", "type", "bridge"])?;
        lab.exec(&switch, &["ip", "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// A namespace with `ip/prefix_len` on a veth to the bridge; returns its name.
    pub fn add_host(&mut self, ip: IpAddr, prefix_len: u8) -> io::Result<String> {
        let (i, tag) = (self.hosts, self.tag.clone());
        self.hosts += 1;
        let ns = format!("{tag}h{i}");
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        let (a, b) = (format!("{tag}a{i}"), format!("{tag}b{i}"));
        run(&[
            "ip",
            "link",
            "add",
            &a,
            "netns",
            &ns,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &self.switch,
        ])?;
        self.exec(
            &self.switch,
            &["ip", "link", "set", &b, "master", "br0", "up"],
        )?;
        self.exec(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{ip}/{prefix_len}"),
                "dev",
                &a,
            ],
        )?;
        self.exec(&ns, &["ip", "link", "set", &a, "up"])?;
        self.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside a namespace; an error carries its standard error.
    pub fn exec(&self, ns: &str, args: &[&str]) -> io::Result<Output> {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Loads an nftables ruleset (`nft -f -`) in a namespace.
    pub fn nft(&self, ns: &str, rules: &str) -> io::Result<()> {
        let mut nft = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        nft.stdin
            .take()
            .ok_or_else(|| io::Error::other("nft stdin"))?
            .write_all(rules.as_bytes())?;
        let out = nft.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "nft in {ns}: {}\n{rules}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Starts [`SERVER`] in a namespace with `tcp:PORT` / `udp:PORT` arguments and waits
    /// until it listens; it stops with the lab.
    pub fn serve(&mut self, ns: &str, listeners: &[String]) -> io::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", SERVER])
            .args(listeners)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            BufReader::new(out).read_line(&mut line)?;
        }
        self.children.push(child);
        if line.trim() != "ready" {
            return Err(io::Error::other(format!("server in {ns} did not start")));
        }
        Ok(())
    }

    /// Starts [`PROBE`] in a namespace over `(protocol, address, port)` targets; collect
    /// its answer with [`probe_results`].
    pub fn probe(
        &self,
        ns: &str,
        targets: &[(&str, IpAddr, u16)],
        timeout_s: f64,
    ) -> io::Result<Child> {
        let list: Vec<(&str, String, u16)> = targets
            .iter()
            .map(|(p, ip, port)| (*p, ip.to_string(), *port))
            .collect();
        let json = serde_json::to_string(&list).map_err(io::Error::other)?;
        Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", PROBE, &json])
            .arg(timeout_s.to_string())
            .stdout(Stdio::piped())
            .spawn()
    }
}

/// Whether each target of a [`Lab::probe`] answered.
pub fn probe_results(child: Child) -> io::Result<Vec<bool>> {
    let out = child.wait_with_output()?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        io::Error::other(format!(
            "probe output {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Whether this machine can run a lab (root, `ip`, `nft`, `python3`). Where `CI=true` a
/// missing prerequisite panics instead of skipping, so CI never passes by skipping.
pub fn prerequisites(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tools = ["ip", "nft", "python3"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why = format!("needs root, ip, nft and python3 (root: {root}, tools: {tools}); run scripts/setup.d/netns.sh as root");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} cannot run in CI: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}
