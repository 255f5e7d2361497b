//! The crate's error type.

use std::path::PathBuf;

use crate::kind::ObjectKey;

/// Why an object or a snapshot was not taken into the inventory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A snapshot file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A snapshot is not YAML or JSON; the message names the file, document, line and column.
    #[error(transparent)]
    Syntax(netpol::Error),
    /// A document is not a mapping.
    #[error("expected a Kubernetes object (a mapping)")]
    NotAnObject,
    /// Not one of the kinds in [`Kind::ALL`](crate::Kind::ALL).
    #[error("{kind:?} of apiVersion {api_version:?} is not kept by the inventory")]
    Unsupported { api_version: String, kind: String },
    /// The object has no `metadata.name`.
    #[error("{kind} without metadata.name")]
    MissingName { kind: &'static str },
    /// The policy engine rejects the object; `path` is the field, such as
    /// `spec.ingress[0].ports[0].port` (empty for the object as a whole).
    #[error("{key}: {}{message}", field(path))]
    Invalid {
        key: ObjectKey,
        path: String,
        message: String,
    },
    /// The policy engine rejects a workload of a snapshot (its message names the field).
    #[error(transparent)]
    InvalidWorkload(netpol::Error),
    /// `replace_kind` was given an object of another kind.
    #[error("{key}: not of the kind being replaced")]
    OtherKind { key: ObjectKey },
    /// Where in a snapshot the object that failed sits.
    #[error("{file}: document {document}: {source}")]
    InDocument {
        file: String,
        document: usize,
        #[source]
        source: Box<Error>,
    },
    /// The inventory could not be written as YAML.
    #[error("writing YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
}

impl Error {
    /// Whether this only says that a document is of a kind the inventory does not keep
    /// (a Service or ConfigMap in a snapshot): worth a debug line, not a warning.
    pub fn is_unsupported(&self) -> bool {
        match self {
            Error::Unsupported { .. } => true,
            Error::InDocument { source, .. } => source.is_unsupported(),
            _ => false,
        }
    }
}

fn field(path: &str) -> String {
    match path {
        "" | "." => String::new(),
        path => format!("{path}: "),
    }
}
