//! Pack manifests (`pack.yaml`): parsed strictly, validated with a stand-in template for
//! every item, then rendered with the defaults.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| packs::fuzz_manifest(data));
