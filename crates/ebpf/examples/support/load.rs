//! TCP connection load shared by the `tcp_load` and `capture_bench` examples: paced
//! `connect()`s from worker threads (optionally inside a netns) to a listener; the client
//! closes each connection with SO_LINGER 0 (a reset, no TIME_WAIT to exhaust ports).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where to connect.
    pub target: SocketAddr,
    /// New connections per second, over all workers.
    pub rate: u64,
    /// How long to generate.
    pub duration: Duration,
    /// Worker threads, each with one connection in flight.
    pub concurrency: usize,
    /// Network namespace the workers connect from (`/run/netns/<name>`).
    pub netns: Option<PathBuf>,
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn established_per_sec(&self) -> f64 {
        self.established as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Enters the network namespace at `path` (this thread only).
pub fn enter_netns(path: &Path) -> io::Result<()> {
    setns(File::open(path)?, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

fn reset_on_close(stream: &TcpStream) {
    let abort = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = setsockopt(stream, sockopt::Linger, &abort);
}

/// A listener with the kernel's largest backlog, accepting and closing connections on
/// `threads` threads (inside `netns` when given) until `stop` is set.
pub fn serve(
    addr: SocketAddr,
    netns: Option<&Path>,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, Vec<thread::JoinHandle<()>>)> {
    let listener = {
        let netns = netns.map(Path::to_path_buf);
        // Bind from a thread in the netns: the socket belongs to the netns it was made in.
        thread::spawn(move || -> io::Result<TcpListener> {
            if let Some(ns) = &netns {
                enter_netns(ns)?;
            }
            let family = if addr.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
            listen(&fd, Backlog::MAXCONN)?;
            Ok(TcpListener::from(fd))
        })
        .join()
        .map_err(|_| io::Error::other("listener thread panicked"))??
    };
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let stop = Arc::clone(&stop);
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    // Closed normally (FIN): the client's connect() has succeeded by then;
                    // the client's reset then ends both sides without TIME_WAIT.
                    Ok((s, _)) => drop(s),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_micros(200))
                    }
                    Err(_) => {}
                }
            }
        }));
    }
    Ok((local, handles))
}

/// Opens connections at `cfg.rate` per second for `cfg.duration`.
pub fn run_load(cfg: &LoadConfig) -> io::Result<LoadReport> {
    let attempted = Arc::new(AtomicU64::new(0));
    let established = Arc::new(AtomicU64::new(0));
    let workers = cfg.concurrency.max(1);
    // Each worker paces its own share: one connection every `interval`.
    let interval = Duration::from_secs_f64(workers as f64 / cfg.rate.max(1) as f64);
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut handles = Vec::new();
    for w in 0..workers {
        let cfg = cfg.clone();
        let (attempted, established) = (Arc::clone(&attempted), Arc::clone(&established));
        handles.push(thread::spawn(move || -> io::Result<()> {
            if let Some(ns) = &cfg.netns {
                enter_netns(ns)?;
            }
            let mut next = start + interval.mul_f64(w as f64 / workers as f64);
            while next < end {
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                }
                next += interval;
                attempted.fetch_add(1, Ordering::Relaxed);
                if let Ok(s) = TcpStream::connect_timeout(&cfg.target, Duration::from_secs(1)) {
                    reset_on_close(&s);
                    established.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("load worker panicked"))??;
    }
    let attempted = attempted.load(Ordering::Relaxed);
    let established = established.load(Ordering::Relaxed);
    Ok(LoadReport {
        attempted,
        established,
        failed: attempted - established,
        elapsed: start.elapsed(),
    })
}
