//! Malformed catalogs get clear errors naming the file and field.

use segment::generate::generate;
use segment::{Catalog, CatalogError, Format, Mode};

fn invalid(text: &str, strict: bool) -> (String, String) {
    match Catalog::parse(text, "cat.yaml", strict) {
        Err(CatalogError::Invalid {
            file,
            path,
            message,
        }) => {
            assert_eq!(file, "cat.yaml");
            (path, message)
        }
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

const BASE: &str = "services:\n  postgres: {tier: data, ports: [5432], from: [api]}\n  api: {tier: api, ports: [8080], from: [external], to: [postgres]}\n";

#[test]
fn a_valid_catalog_yields_its_edges() {
    let c = Catalog::parse(BASE, "cat.yaml", true).unwrap();
    // api -> postgres is documented twice (postgres.from and api.to): one edge.
    assert_eq!(c.edges.len(), 2, "{:?}", c.edges);
    assert!(c.warnings.is_empty());
}

#[test]
fn unknown_service_is_an_error_in_strict_mode_with_a_suggestion() {
    let text = BASE.replace("from: [api]", "from: [apii]");
    let (path, message) = invalid(&text, true);
    assert_eq!(path, "services.postgres.from[0]");
    assert!(message.contains("did you mean api?"), "{message}");
    // Without --strict it is a warning and an assumed service.
    let c = Catalog::parse(&text, "cat.yaml", false).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(!c.services["apii"].described);
}

#[test]
fn unknown_log_target_is_an_error() {
    let text = format!("{BASE}  promtail: {{tier: monitoring, ships_logs_to: [lokki]}}\n");
    let (path, message) = invalid(&text, false);
    assert_eq!(path, "services.promtail.ships_logs_to[0]");
    assert!(message.contains("lokki"), "{message}");
}

#[test]
fn port_out_of_range_names_the_field() {
    let (path, message) = invalid(&BASE.replace("[5432]", "[5432, 70000]"), false);
    assert_eq!(path, "services.postgres.ports[1]");
    assert!(message.contains("70000"), "{message}");
    let (path, _) = invalid(&BASE.replace("[8080]", "[\"53/icmp\"]"), false);
    assert_eq!(path, "services.api.ports[0]");
}

#[test]
fn duplicate_service_names_are_rejected() {
    let text = format!("{BASE}  api: {{tier: api, ports: [9090]}}\n");
    match Catalog::parse(&text, "cat.yaml", false) {
        Err(e @ CatalogError::Syntax { .. }) => assert!(e.to_string().contains("duplicate"), "{e}"),
        other => panic!("expected a duplicate-key error, got {other:?}"),
    }
}

#[test]
fn tier_mode_cannot_express_a_data_tier_that_opens_connections() {
    let text = BASE.replace(
        "postgres: {tier: data, ports: [5432], from: [api]}",
        "postgres: {tier: data, ports: [5432], from: [api], to: [api]}",
    );
    let c = Catalog::parse(&text, "cat.yaml", true).unwrap();
    let err = generate(&c, Mode::Tier, Format::Kubernetes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("services.postgres.to[0]"), "{err}");
    // Service mode expresses it.
    assert!(generate(&c, Mode::Service, Format::Kubernetes).is_ok());
}

#[test]
fn scrape_targets_must_exist() {
    let text =
        format!("{BASE}  prometheus: {{tier: monitoring, ports: [9090], scrapes: [warehouse]}}\n");
    let (path, _) = invalid(&text, false);
    assert_eq!(path, "services.prometheus.scrapes[0]");
}
