//! Kyverno expressions: JMESPath with Kyverno's functions, and `{{ }}` substitution.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kyverno::fuzz_expression(data);
});
