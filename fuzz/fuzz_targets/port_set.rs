//! The `allowed_ports` grammar and address ranges of conformance files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol::cidr::IpRange;
use netpol::PortSet;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(set) = PortSet::parse(&text) {
        // What we print, we must read back identically.
        assert_eq!(PortSet::parse(&set.to_string()).as_ref(), Ok(&set));
    }
    let _ = IpRange::parse(&text);
});
