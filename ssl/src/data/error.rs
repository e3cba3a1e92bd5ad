//! The data layer's error type. Every message that concerns a file starts with that file's
//! full path, so a user with a broken dataset learns which file to replace and why.

use std::path::{Path, PathBuf};

/// Why loading, augmenting or batching data failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a file or directory (missing, unreadable, ...).
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done, e.g. "cannot read file".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is wrong: truncated, wrong magic number, a count that
    /// does not match the data, a label out of range, an undecodable image.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A parameter or an input image is invalid for the operation named by `what`.
    #[error("{what}: {msg}")]
    Invalid {
        /// The operation or type that refused its input.
        what: &'static str,
        /// Why.
        msg: String,
    },
    /// The engine refused to build a tensor from a batch.
    #[error(transparent)]
    Engine(#[from] tessera_engine::Error),
    /// The background loader thread failed without an error of its own (it panicked).
    #[error("data loader: {0}")]
    Loader(String),
}

/// Shorthand for the data layer's results.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// A content error in the file at `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        DataError::Format { path: path.as_ref().to_path_buf(), msg: crate::one_line(&msg.into()) }
    }

    /// An I/O failure while doing `action` on `path`.
    pub fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io { path: path.as_ref().to_path_buf(), action, source }
    }

    /// An invalid parameter or input of the operation `what`.
    pub fn invalid(what: &'static str, msg: impl Into<String>) -> Self {
        DataError::Invalid { what, msg: msg.into() }
    }
}
