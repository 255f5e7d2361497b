//! Conformance case files: JSON scenario + expectations, run end to end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol::conformance::Case;
use netpol::Options;

fuzz_target!(|data: &[u8]| {
    if let Ok(case) = serde_json::from_slice::<Case>(data) {
        let _ = case.run(Options::default());
    }
});
