//! TCP connection load generator: opens `--rate` new connections per second for
//! `--duration` seconds from `--concurrency` threads to `--target`, optionally from inside a
//! netns (`--netns /run/netns/NAME`), optionally against its own listener (`--serve`, in
//! `--serve-netns`). Prints attempted, established and established/s.
//!
//! `cargo run --release -p policyhub-ebpf --example tcp_load -- --serve --rate 20000`

#[path = "support/load.rs"]
#[allow(dead_code)]
mod load;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load::{run_load, serve, LoadConfig};

const USAGE: &str = "usage: tcp_load [--target ADDR] [--rate N] [--duration SECS] \
[--concurrency N] [--netns PATH] [--serve] [--serve-netns PATH]";

fn main() -> ExitCode {
    let mut cfg = LoadConfig {
        target: "127.0.0.1:7800".parse().unwrap(),
        rate: 20_000,
        duration: Duration::from_secs(5),
        concurrency: 8,
        netns: None,
    };
    let (mut own_listener, mut serve_netns) = (false, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let parsed: Result<(), String> = (|| {
            match flag.as_str() {
                "--target" => cfg.target = value()?.parse().map_err(|e| format!("{e}"))?,
                "--rate" => cfg.rate = value()?.parse().map_err(|e| format!("{e}"))?,
                "--duration" => {
                    cfg.duration =
                        Duration::from_secs_f64(value()?.parse().map_err(|e| format!("{e}"))?)
                }
                "--concurrency" => {
                    cfg.concurrency = value()?.parse().map_err(|e| format!("{e}"))?
                }
                "--netns" => cfg.netns = Some(value()?.into()),
                "--serve" => own_listener = true,
                "--serve-netns" => serve_netns = Some(value()?.into()),
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            eprintln!("tcp_load: {e}");
            return ExitCode::from(64);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    if own_listener {
        match serve(cfg.target, serve_netns.as_deref(), 2, Arc::clone(&stop)) {
            Ok((_, handles)) => servers = handles,
            Err(e) => {
                eprintln!("tcp_load: listening on {}: {e}", cfg.target);
                return ExitCode::FAILURE;
            }
        }
    }
    let report = match run_load(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tcp_load: {e}");
            return ExitCode::FAILURE;
        }
    };
    stop.store(true, Ordering::Relaxed);
    for h in servers {
        let _ = h.join();
    }
    println!(
        "tcp_load: target={} rate={}/s duration={:.1}s attempted={} established={} failed={} established/s={:.0}",
        cfg.target,
        cfg.rate,
        report.elapsed.as_secs_f64(),
        report.attempted,
        report.established,
        report.failed,
        report.established_per_sec()
    );
    ExitCode::SUCCESS
}
