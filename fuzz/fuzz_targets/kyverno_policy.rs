//! Kyverno policy documents (YAML/JSON): parsing, autogen, and evaluating what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kyverno::fuzz_entry(data);
});
