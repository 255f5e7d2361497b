//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading Kyverno documents or evaluating them.
///
/// Evaluation problems that Kyverno itself reports as a rule result of `error` (a variable that
/// cannot be resolved, an unsupported context entry) are *not* errors of this type: they become
/// [`crate::RuleStatus::Error`] results. This enum is for input that cannot be understood at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML or JSON.
    #[error("{origin}: not valid YAML/JSON: {message}")]
    Syntax {
        /// Where the document came from (a file name, or a description).
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A policy (or test, or values) document has a field of the wrong shape.
    #[error("{origin}: invalid {what} at `{field}`: {message}")]
    Invalid {
        /// Where the document came from.
        origin: String,
        /// What was being read: `policy`, `test`, `values`.
        what: &'static str,
        /// Field path of the offending value, such as `spec.rules[0].validate.deny`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A policy document does not have the shape of a ClusterPolicy / Policy
    /// ([`crate::schema::check`]); it is not evaluated.
    #[error("{origin}: policy {name:?} does not match the Kyverno policy schema: {}", list(.violations))]
    Schema {
        /// Where the document came from.
        origin: String,
        /// `metadata.name`, when there is one.
        name: String,
        /// Every violation, with its field path.
        violations: Vec<crate::schema::SchemaViolation>,
    },
    /// A JMESPath expression could not be parsed or evaluated.
    #[error("JMESPath `{expression}`: {message}")]
    Jmespath {
        /// The expression.
        expression: String,
        /// What went wrong.
        message: String,
    },
    /// A `{{ }}` variable could not be substituted.
    #[error("variable substitution failed for `{variable}`: {message}")]
    Variable {
        /// The variable text, without braces.
        variable: String,
        /// What went wrong.
        message: String,
    },
    /// A Kyverno CLI test refers to something that does not exist.
    #[error("{origin}: {message}")]
    Test {
        /// The test file.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

fn list(violations: &[crate::schema::SchemaViolation]) -> String {
    let parts: Vec<String> = violations.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
