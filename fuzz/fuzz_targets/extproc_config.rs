//! Policy engine configuration files: any text is a kernel and an agent configuration, or a
//! list of errors; a kernel configuration that loads compiles into a route table whose chains
//! are checked against the built-in policies' schemas.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use extproc::agent::AgentConfig;
use extproc::kernel::routes::{PolicyCatalog, RouteTable};
use extproc::kernel::KernelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = KernelConfig::from_yaml(&text) {
        let builtin = Arc::new(PolicyCatalog::builtin());
        let catalogs: HashMap<_, _> = config
            .policy_kernel
            .agents
            .iter()
            .map(|agent| (agent.name.clone(), Arc::clone(&builtin)))
            .collect();
        let table = RouteTable::build(&config, &catalogs);
        let _ = table.invalid_routes();
    }
    let _ = AgentConfig::from_yaml(&text);
});
