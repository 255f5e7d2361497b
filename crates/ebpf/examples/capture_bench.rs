//! Capture benchmark: starts a [`Capture`], opens `--rate` TCP connections per second for
//! `--duration` seconds over loopback inside a fresh network namespace, and compares the
//! records received with the connections made. Reports `lost()`, the capture (consumer)
//! thread's CPU share and the kernel time spent in the BPF programs.
//!
//! `cargo run --release -p policyhub-ebpf --example capture_bench -- --rate 20000 --duration 5`

#[path = "support/load.rs"]
#[allow(dead_code)]
mod load;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ebpf::{netns_of, Capture, Options, Outcome, Protocol};
use load::{run_load, serve, LoadConfig};
use nix::sys::resource::{getrusage, UsageWho};

const PORT: u16 = 7800;
const PROGS: [&str; 6] = [
    "on_set_state",
    "on_receive_reset",
    "on_kfree_skb",
    "on_icmp_send",
    "udp_ingress",
    "udp_egress",
];

/// Deletes the benchmark's netns on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn cpu_time(who: UsageWho) -> Duration {
    getrusage(who)
        .map(|u| {
            let us = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            us(u.user_time()) + us(u.system_time())
        })
        .unwrap_or_default()
}

/// Total run time and count of this capture's programs (needs kernel.bpf_stats_enabled).
fn bpf_prog_stats() -> (Duration, u64) {
    libbpf_rs::query::ProgInfoIter::default()
        .filter(|p| PROGS.iter().any(|n| p.name.to_str() == Some(n)))
        .fold((Duration::ZERO, 0), |(t, n), p| {
            (t + Duration::from_nanos(p.run_time_ns), n + p.run_cnt)
        })
}

fn main() -> ExitCode {
    let mut rate = 20_000u64;
    let mut secs = 5.0f64;
    let mut concurrency = 8usize;
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<f64>().ok());
        match (flag.as_str(), value) {
            ("--rate", Some(v)) => rate = v as u64,
            ("--duration", Some(v)) => secs = v,
            ("--concurrency", Some(v)) => concurrency = v as usize,
            ("--ringbuf-bytes", Some(v)) => opts.ringbuf_bytes = v as u32,
            _ => {
                eprintln!(
                    "usage: capture_bench [--rate N] [--duration SECS] [--concurrency N] \
                     [--ringbuf-bytes N]"
                );
                return ExitCode::from(64);
            }
        }
    }

    let name = format!("ph-bench-{}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &name]).status();
    if !ok.map(|s| s.success()).unwrap_or(false) {
        eprintln!("capture_bench: ip netns add {name} failed (needs root)");
        return ExitCode::FAILURE;
    }
    let ns = Netns(name);
    let _ = Command::new("ip")
        .args(["-n", &ns.0, "link", "set", "lo", "up"])
        .status();
    let ns_path = PathBuf::from("/run/netns").join(&ns.0);
    let ns_inode = netns_of(&ns_path).expect("netns inode");
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");

    let mut capture = match Capture::start(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capture_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let target = format!("127.0.0.1:{PORT}").parse().unwrap();
    let (_, servers) = serve(target, Some(&ns_path), 2, Arc::clone(&stop)).expect("listener");
    let cfg = LoadConfig {
        target,
        rate,
        duration: Duration::from_secs_f64(secs),
        concurrency,
        netns: Some(ns_path),
    };
    let (bpf_time0, bpf_runs0) = bpf_prog_stats();
    let cpu0 = cpu_time(UsageWho::RUSAGE_THREAD);
    let proc0 = cpu_time(UsageWho::RUSAGE_SELF);
    let t0 = Instant::now();
    let load = thread::spawn(move || run_load(&cfg));

    let (mut client, mut accepted, mut established, mut other) = (0u64, 0u64, 0u64, 0u64);
    let mut last_record = Instant::now();
    loop {
        let n = capture
            .poll(Duration::from_millis(50), &mut |r| {
                if r.netns != ns_inode || r.protocol != Protocol::Tcp || r.dst.port() != PORT {
                    return;
                }
                if !r.initiated_here {
                    accepted += 1;
                    return;
                }
                client += 1;
                match r.outcome {
                    Outcome::Established => established += 1,
                    _ => other += 1,
                }
            })
            .expect("poll");
        if n > 0 {
            last_record = Instant::now();
        }
        // Drain until the load is done and nothing came for 500 ms.
        if load.is_finished() && last_record.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu_time(UsageWho::RUSAGE_THREAD) - cpu0;
    let proc_cpu = cpu_time(UsageWho::RUSAGE_SELF) - proc0;
    let (bpf_time1, bpf_runs1) = bpf_prog_stats();
    stop.store(true, Ordering::Relaxed);
    for h in servers {
        let _ = h.join();
    }
    let report = load.join().expect("load thread").expect("load");
    let (bpf_time, bpf_runs) = (bpf_time1 - bpf_time0, bpf_runs1 - bpf_runs0);

    let missing = report.attempted.saturating_sub(client);
    println!(
        "capture_bench: rate={rate}/s duration={:.1}s attempted={} established={} ({:.0}/s) \
         records: client={client} (established={established} other={other}) accepted={accepted} \
         missing={missing} lost={} malformed={} | capture thread cpu={:.1}% of one core \
         ({:.2}s over {:.2}s) | process cpu={:.0}% | bpf programs: {} runs, {:.0} ns/run, {:.1}% of one core",
        report.elapsed.as_secs_f64(),
        report.attempted,
        report.established,
        report.established_per_sec(),
        capture.lost(),
        capture.malformed(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        100.0 * proc_cpu.as_secs_f64() / wall.as_secs_f64(),
        bpf_runs,
        bpf_time.as_nanos() as f64 / bpf_runs.max(1) as f64,
        100.0 * bpf_time.as_secs_f64() / wall.as_secs_f64(),
    );
    if missing > 0 || capture.lost() > 0 {
        eprintln!("capture_bench: records were lost");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
