//! Hubble flow lines (wrapper or bare, either key spelling), validated against a small
//! snapshot with policies, then the payload rendered as HTML.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netpol::{Bundle, Engine, Options};

const SNAPSHOT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
"#;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut b = Bundle::default();
        b.load_str(SNAPSHOT, "fuzz.yaml").expect("snapshot");
        Engine::new(b.inventory, b.policies, Options::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut v = flow::Validator::new(engine(), flow::Config::default());
    // Line by line as a reader would see it, then the whole input through the line splitter.
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let _ = v.push_line(i as u64 + 1, line);
    }
    let _ = flow::html::render(&v.finish());
    let _ = flow::validate(engine(), flow::Config::default(), data);
});
