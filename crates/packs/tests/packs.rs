//! The CI gate: every shipped pack loads, renders with its defaults and passes its tests.

use packs::{render, run_tests, Catalog, Tier};

#[test]
fn every_shipped_pack_passes_its_tests() {
    let catalog = Catalog::builtin().expect("the shipped packs load");
    assert!(catalog.packs.len() >= 4, "{} packs", catalog.packs.len());
    let mut failures = Vec::new();
    for pack in catalog.packs.values() {
        assert!(
            !pack.manifest.tests.is_empty(),
            "{} has no tests",
            pack.slug()
        );
        for result in run_tests(pack).unwrap_or_else(|e| panic!("{e}")) {
            assert!(
                result.passed > 0,
                "{}: {} checks nothing",
                pack.slug(),
                result.test
            );
            for f in &result.failures {
                failures.push(format!("{} / {}: {f}", result.pack, result.test));
            }
            for f in &result.admission_failures {
                failures.push(format!("{} / {}: {f}", result.pack, result.test));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_shipped_pack_renders_with_its_defaults() {
    let catalog = Catalog::builtin().unwrap();
    for pack in catalog.packs.values() {
        let rendered = render(pack, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rendered.items.len(), pack.manifest.items.len());
        if pack.manifest.tier == Tier::Enterprise {
            assert!(rendered.items.iter().all(|i| !i.controls.is_empty()));
        }
    }
}
