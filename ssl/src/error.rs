//! The one error type of the training loop and the command line. Every lower layer has its
//! own (tensor and autograd errors, [`DataError`], the method registry's messages); they
//! convert into this one once, at the `?` where they cross into `train/` or `cli/`, and
//! [`Context`] adds what was being done ("checkpoint.safetensors: …") on the way up. What
//! reaches the user is one readable line.

use std::fmt;

use crate::data::DataError;

/// A readable message, its context first: `outer: inner: cause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// The result of the training loop and the command line.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error { message: message.to_string() }
    }

    /// The message, context first.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// This error with `what` in front: `what: message`.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error { message: format!("{what}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The messages of the layers below are already sentences; they convert as they are.
macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::msg(e)
            }
        }
    )*};
}
from_display!(
    String,
    &str,
    tessera_engine::Error,
    tessera_autograd::Error,
    DataError,
    crate::nn::NnError,
    serde_json::Error,
    toml::ser::Error
);

/// Code that keeps `String` errors (examples, tests, the fuzz targets) can still use `?`.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}

/// Adds what was being done to an error from any layer, converting it on the way.
pub trait Context<T> {
    /// `what: cause`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// As [`Context::context`], the message built only on failure.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::msg(format!("{what}: {e}")))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::msg(format!("{}: {e}", what())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_goes_in_front_and_converts_once() {
        let io: std::result::Result<(), std::io::Error> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
        let e = io.context("runs/a/config.toml").unwrap_err();
        assert_eq!(e.to_string(), "runs/a/config.toml: no such file");
        assert_eq!(e.context("resume").message(), "resume: runs/a/config.toml: no such file");
        let s: String = Error::from("plain").into();
        assert_eq!(s, "plain");
    }
}
