//! tessera's SSL layer: data, layers and encoders, self-supervised methods, evaluation.

// `!(a <= b)` and the like are deliberate throughout: unlike `a > b` they are true when a
// value is NaN, which the checks written this way must reject (or, in the kernels, route
// the way PyTorch does).
#![allow(clippy::neg_cmp_op_on_partial_ord)]
pub mod cli;
pub mod data;
pub mod error;
pub mod eval;
pub mod methods;
pub mod nn;
pub mod train;

pub use error::{Context, Error, Result};

/// A message on one line: its lines, trimmed, joined by "; ". Errors reach the user as one
/// line, and some sources (the image crate, toml, a tensor mismatch report) break theirs.
pub(crate) fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ").replace(":;", ":")
}
