//! Manifest parsing (YAML, JSON, lists, every policy dialect, Services, Ingresses, Routes)
//! and compiling the result; connectivity with the ingress controller, a diff of the
//! cluster with itself (always empty) and exposure analysis.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol::{Bundle, Engine, Options};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut bundle = Bundle::default();
    if bundle.load_str(&text, "fuzz.yaml").is_ok() {
        let _ = netpol::exposure::analyze(
            bundle.inventory.clone(),
            bundle.policies.clone(),
            Options::default(),
        );
        netpol::ingress::add_controller(&mut bundle.inventory);
        let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
        netpol::connectivity::analyze(&engine, |_, _| {}, |_, _, _| {});
        assert!(netpol::diff::diff_all(&engine, &engine).is_empty());
    }
});
