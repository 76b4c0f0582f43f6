//! The crate's one error type: everything the public API can fail with.

use std::path::PathBuf;

/// Errors from loading a clusters file, starting the simulator or writing its kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The clusters file could not be read.
    #[error("cannot read clusters file {path}")]
    ReadClusters {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The clusters file is not valid YAML or does not match the schema; the message carries the
    /// line, column and a snippet.
    #[error("invalid clusters file {path}: {message}")]
    ParseClusters {
        /// The file (`<string>` when parsed from a string).
        path: String,
        /// The YAML error rendered with its location and snippet.
        message: String,
    },
    /// The clusters file parsed but is inconsistent (duplicate names, a name that is not a DNS label, ...).
    #[error("invalid clusters file {path}: {field}: {message}")]
    InvalidClusters {
        /// The file (`<string>` when parsed from a string).
        path: String,
        /// Path of the offending field, e.g. `clusters[0].nodes[2].name`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The server could not listen on the requested port.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Bind {
        /// The requested port (0 means any free port).
        port: u16,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write kubeconfig {path}")]
    WriteKubeconfig {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("kubesim server failed")]
    Serve(#[source] std::io::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
