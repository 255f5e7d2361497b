//! Compiles the kernel <-> agent protocol with a protoc shipped as a crate (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => std::path::PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    println!("cargo:rerun-if-changed=proto/policy_agent.proto");
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/policy_agent.proto"],
        &["proto"],
    )?;
    Ok(())
}
