//! Compiles `src/bpf/capture.bpf.c` with clang and generates its libbpf-rs skeleton.
//! `vmlinux.h` is dumped from the build machine's kernel BTF into OUT_DIR (never
//! committed); CO-RE relocations make the object load on other kernels with BTF.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/capture.bpf.c";
const BTF: &str = "/sys/kernel/btf/vmlinux";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let vmlinux = out.join("vmlinux.h");
    let dump = Command::new("bpftool")
        .args(["btf", "dump", "file", BTF, "format", "c"])
        .output()
        .unwrap_or_else(|e| panic!("running bpftool (scripts/setup.d/ebpf.sh installs it): {e}"));
    if !dump.status.success() {
        panic!(
            "bpftool btf dump file {BTF} failed: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
    }
    fs::write(&vmlinux, &dump.stdout).expect("writing vmlinux.h");

    SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            "-I".into(),
            out.clone().into_os_string(),
            "-Wall".into(),
            "-Wno-unused-function".into(),
        ])
        .build_and_generate(out.join("capture.skel.rs"))
        .expect("compiling the BPF program");
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=build.rs");
}
