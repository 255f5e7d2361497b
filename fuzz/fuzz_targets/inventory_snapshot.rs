//! Snapshot files of the node agent's inventory: any text is loaded (objects kept or
//! skipped with an error), the kept objects compile into an engine, and the inventory
//! written back as YAML loads again into the same objects.
#![no_main]

use inventory::Inventory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut inv = Inventory::default();
    if inv.load_str(&text, "fuzz.yaml").is_ok() {
        inv.engine(netpol::Options::default())
            .expect("objects the inventory kept compile");
        let _ = inv.local_pod_ips("node-a");
        if let Ok(yaml) = inv.to_yaml() {
            let mut again = Inventory::default();
            again.load_str(&yaml, "again.yaml").expect("its own YAML loads");
            assert_eq!(
                again.documents().count(),
                inv.documents().count(),
                "round trip keeps every object"
            );
        }
    }
});
