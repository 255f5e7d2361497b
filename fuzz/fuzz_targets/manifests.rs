//! Manifest parsing (YAML, JSON, lists, every policy dialect) and compiling the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol::{Bundle, Engine, Options};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut bundle = Bundle::default();
    if bundle.load_str(&text, "fuzz.yaml").is_ok() {
        let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
        netpol::connectivity::analyze(&engine, |_, _| {}, |_, _, _| {});
    }
});
