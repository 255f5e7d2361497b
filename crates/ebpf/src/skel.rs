//! The skeleton that libbpf-cargo generates from `src/bpf/capture.bpf.c` (build.rs).
//!
//! Unsafe is allowed in this module only: the generated code hands raw pointers between
//! Rust and libbpf. The crate denies unsafe code everywhere else.
#![allow(unsafe_code)]
#![allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]

include!(concat!(env!("OUT_DIR"), "/capture.skel.rs"));
