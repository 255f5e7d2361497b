//! Organisational patterns turned into Kyverno deny policies: the offline pipeline.
//!
//! A [`Pattern`] holds statements written by people ("Pods must not run privileged").
//! [`analyze`] finds the enforceable deny rules among them with an offline analyzer that
//! knows the common phrasings (no key, no network); [`generate`] writes one ClusterPolicy with
//! a validate rule per detected rule, annotated with the pattern's id and version; [`dry_run`]
//! synthesises a compliant resource and one violating resource per rule and requires the
//! embedded Kyverno evaluator to admit the first and deny each of the others. A policy that
//! fails its dry-run is never offered.
//!
//! Pure and synchronous. Not built yet: LLM analysis providers, semantic resource discovery,
//! schema validation against Kubernetes JSON schemas and CRDs, apply/save lifecycle, MCP.

mod analyze;
mod dryrun;
mod generate;

use serde::{Deserialize, Serialize};

pub use analyze::{analyze, Analysis, Rule, Skipped};
pub use dryrun::{dry_run, DryRun, RuleCheck};
pub use generate::generate;

/// An organisational pattern, as a file or as the hub stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pattern {
    /// A DNS-1123 name.
    pub id: String,
    /// Increases with every change; generated policies record it.
    #[serde(default = "one")]
    pub version: u32,
    pub description: String,
    /// The statements the pattern makes, one per entry.
    pub rules: Vec<String>,
    #[serde(default)]
    pub rationale: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
}

fn one() -> u32 {
    1
}

/// What can go wrong reading a pattern.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not a valid pattern; `field` is where.
    #[error("{origin}: {field}: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

impl Pattern {
    /// Reads a pattern from YAML or JSON text; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str) -> Result<Pattern, Error> {
        let de = yaml_serde::Deserializer::from_str(text);
        let p: Pattern = serde_path_to_error::deserialize(de).map_err(|e| Error::Invalid {
            origin: origin.to_string(),
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        let invalid = |field: &str, message: &str| Error::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        };
        let dns = p.id.len() <= 63
            && !p.id.is_empty()
            && p.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.id.starts_with('-')
            && !p.id.ends_with('-');
        if !dns {
            return Err(invalid(
                "id",
                "must be a DNS-1123 label (lower case letters, digits and '-', at most 63)",
            ));
        }
        if p.rules.is_empty() {
            return Err(invalid("rules", "a pattern needs at least one statement"));
        }
        Ok(p)
    }
}
