//! The entry point for fuzzing the pack manifest parser and what runs behind it.

use std::collections::BTreeMap;

use crate::manifest::{Manifest, Pack};

/// Stands in for every template the manifest names.
const TEMPLATE: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: {{ namespace | default('default') }}}\nspec: {podSelector: {}}\n";

/// Parses `data` as `pack.yaml`, validates it with a stand-in template for each item (and
/// empty test files), then renders it with its defaults. Errors are expected; a panic is a
/// bug. Used by the crate's tests and by `fuzz/fuzz_targets/pack_manifest.rs`.
pub fn fuzz_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text, "fuzz") else {
        return;
    };
    let mut files = BTreeMap::new();
    files.insert("pack.yaml".to_string(), text.to_string());
    for item in &manifest.items {
        files.insert(item.template.clone(), TEMPLATE.to_string());
    }
    for test in &manifest.tests {
        files.insert(test.clone(), String::new());
    }
    if let Ok(pack) = Pack::from_files(&manifest.slug, files) {
        let _ = crate::render::render(&pack, &[]);
    }
}
