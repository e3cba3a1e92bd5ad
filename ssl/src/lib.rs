//! tessera's SSL layer: data, layers and encoders, self-supervised methods, evaluation.

pub mod cli;
pub mod data;
pub mod eval;
pub mod methods;
pub mod nn;
pub mod train;
