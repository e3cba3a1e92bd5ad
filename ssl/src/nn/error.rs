//! Errors of checkpoints and optimizer state: each names the file, and a mismatch lists every
//! missing, unexpected and misshapen tensor with its shape.

use std::path::PathBuf;

/// Why saving or loading a checkpoint (or importing optimizer state) failed.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error(transparent)]
    Autograd(#[from] tessera_autograd::Error),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a valid safetensors checkpoint: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{}: the checkpoint does not match the {what}:{report}", path.display())]
    Mismatch { path: PathBuf, what: &'static str, report: MismatchReport },
    #[error("{0}")]
    Invalid(String),
}

impl From<tessera_engine::Error> for NnError {
    fn from(e: tessera_engine::Error) -> Self {
        NnError::Autograd(e.into())
    }
}

pub type NnResult<T> = std::result::Result<T, NnError>;

/// Tensors that differ between a checkpoint and what loads it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MismatchReport {
    /// Expected but absent from the file: `(name, expected shape)`.
    pub missing: Vec<(String, Vec<usize>)>,
    /// In the file but not expected: `(name, shape in the file)`.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Present with another shape or dtype: `(name, expected, found)` as `"f32[64, 3, 3, 3]"`.
    pub misshapen: Vec<(String, String, String)>,
}

impl MismatchReport {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.misshapen.is_empty()
    }
}

impl std::fmt::Display for MismatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.missing.is_empty() {
            write!(f, "\n  missing ({}):", self.missing.len())?;
            for (n, s) in &self.missing {
                write!(f, "\n    {n} {s:?}")?;
            }
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected ({}):", self.unexpected.len())?;
            for (n, s) in &self.unexpected {
                write!(f, "\n    {n} {s:?}")?;
            }
        }
        if !self.misshapen.is_empty() {
            write!(f, "\n  misshapen ({}):", self.misshapen.len())?;
            for (n, want, got) in &self.misshapen {
                write!(f, "\n    {n}: expected {want}, found {got}")?;
            }
        }
        Ok(())
    }
}
