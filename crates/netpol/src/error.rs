//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong reading manifests. Evaluation itself never fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML or JSON; `message` carries the line and column.
    #[error("{file}: document {document}: {message}")]
    Syntax {
        file: String,
        document: usize,
        message: String,
    },
    /// A document of a known kind has a wrong or invalid field.
    #[error("{0}")]
    Invalid(Box<InvalidField>),
}

/// Where an invalid field is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: document {document} ({kind} {name}): {path}: {message}")]
pub struct InvalidField {
    pub file: String,
    /// 1-based position of the document in the file.
    pub document: usize,
    pub kind: String,
    pub name: String,
    /// Field path inside the document, such as `spec.ingress[0].ports[1].endPort`.
    pub path: String,
    pub message: String,
}

/// An invalid field, before the parser adds the file and document it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Prefixes the path with the field it sits under.
    pub fn under(self, parent: &str) -> Self {
        let path = if self.path.is_empty() {
            parent.to_string()
        } else if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        FieldError { path, ..self }
    }
}
