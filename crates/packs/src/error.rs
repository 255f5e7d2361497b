//! The crate's error type.

/// What can go wrong loading, rendering, testing or previewing a pack. Every variant names
/// the pack, and where it applies the item, template line, parameter or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No pack with this slug in the catalog.
    #[error("no pack named {slug:?} (known: {known})")]
    UnknownPack { slug: String, known: String },
    /// A pack file could not be read from disk.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `pack.yaml` or a test file is not what the format asks for.
    #[error("pack {pack}: {file}: {message}")]
    Manifest {
        pack: String,
        file: String,
        message: String,
    },
    /// A `--param` argument is not `key=value`.
    #[error("parameter {text:?}: {message}")]
    ParamSyntax { text: String, message: String },
    /// The parameters do not satisfy the pack's JSON Schema (one line per violation, each
    /// with its JSON pointer).
    #[error("pack {pack}: parameters rejected by the schema:\n  {}", violations.join("\n  "))]
    Parameters {
        pack: String,
        violations: Vec<String>,
    },
    /// A template failed to compile or render (strict undefined variables included).
    #[error("pack {pack}: item {item}: template {template}{}: {message}", line.map_or(String::new(), |l| format!(" line {l}")))]
    Template {
        pack: String,
        item: String,
        template: String,
        line: Option<usize>,
        message: String,
    },
    /// A rendered document was refused by netpol or by Kyverno's loader, or is not the kind
    /// the item declares.
    #[error("pack {pack}: item {item}: rendered document {document}: {message}")]
    Rendered {
        pack: String,
        item: String,
        document: usize,
        message: String,
    },
    /// A test's fixture cluster or expectation cannot be used.
    #[error("pack {pack}: test {test}: {message}")]
    Test {
        pack: String,
        test: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
