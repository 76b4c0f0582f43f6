//! The catalog crate's error type: every way loading or querying a catalog can fail, each naming
//! the file, line and column at fault.

use std::path::PathBuf;

/// Errors from loading catalog files or parsing catalog queries.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A catalog file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying IO error.
        #[source]
        source: std::io::Error,
    },
    /// A catalog directory holds no offer files.
    #[error("{dir}: no catalog CSV files found (expected files like aws.csv or aws/vms.csv)")]
    NoCatalogFiles {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// The file is empty: not even a header line.
    #[error("{file}: the file is empty; expected a CSV header line such as `{expected}`")]
    Empty {
        /// The file name.
        file: String,
        /// The columns a catalog needs.
        expected: String,
    },
    /// The header lacks a required column.
    #[error("{file}:1: missing column `{column}`; the header has: {found}")]
    MissingColumn {
        /// The file name.
        file: String,
        /// The missing column.
        column: &'static str,
        /// The columns that were found, comma-separated.
        found: String,
    },
    /// A line has a different number of fields than the header.
    #[error("{file}:{line}: expected {expected} fields like the header, found {found}")]
    FieldCount {
        /// The file name.
        file: String,
        /// The 1-based line number.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A line is not valid UTF-8 text.
    #[error("{file}:{line}: not valid UTF-8 text (is this a binary file?)")]
    NotText {
        /// The file name.
        file: String,
        /// The 1-based line number.
        line: u64,
    },
    /// A field holds a value of the wrong shape.
    #[error("{file}:{line}: column {column_number} (`{column}`): expected {expected}, found {value:?}")]
    InvalidValue {
        /// The file name.
        file: String,
        /// The 1-based line number.
        line: u64,
        /// The column's header name.
        column: String,
        /// The 1-based column number.
        column_number: usize,
        /// The offending text.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// Combining prices from rows of a file (GCP's host VM + its GPUs) gives an amount that
    /// cannot be represented.
    #[error("{file}:{line}: {what} cannot be combined")]
    Money {
        /// The file name.
        file: String,
        /// The 1-based line of the row whose price is combined.
        line: u64,
        /// What was combined, e.g. "the price of host line 3 and GPU line 2".
        what: String,
        /// The computation that failed.
        #[source]
        source: crate::MoneyError,
    },
    /// The CSV reader failed in another way (e.g. an unterminated quote).
    #[error("{file}:{line}: malformed CSV")]
    Csv {
        /// The file name.
        file: String,
        /// The 1-based line number where reading stopped.
        line: u64,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// A query term could not be parsed (e.g. `--gpus L4:x`).
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidQuery {
        /// Which term (e.g. "accelerator count").
        what: &'static str,
        /// The offending text.
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// An accelerator name that no catalog or alias knows.
    #[error("unknown accelerator {name:?}{}", hint.as_ref().map(|h| format!("; did you mean {h:?}?")).unwrap_or_default())]
    UnknownAccelerator {
        /// The name as given.
        name: String,
        /// The closest known name, if any is close.
        hint: Option<String>,
    },
}
