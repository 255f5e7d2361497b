//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong reading flows. Corrupt lines are errors only in strict
/// mode; otherwise they are counted and skipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be opened or read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a Hubble flow (strict mode).
    #[error("line {line}: {message}")]
    Corrupt { line: u64, message: String },
    /// Writing output failed.
    #[error("writing flows: {0}")]
    Write(#[source] std::io::Error),
    /// The snapshot has nothing to synthesise flows between.
    #[error("cannot synthesise flows: {0}")]
    Synth(String),
}
