//! Compiles the subset of Hubble's observer API with a protoc shipped as a crate (no system
//! protoc). Client and server are both generated: the server lets tests (and other crates'
//! tests) stand up a fake Hubble.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => std::path::PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    println!("cargo:rerun-if-changed=proto/flow.proto");
    println!("cargo:rerun-if-changed=proto/observer.proto");
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/flow.proto", "proto/observer.proto"],
        &["proto"],
    )?;
    Ok(())
}
