//! tessera's SSL layer: data, layers and encoders, self-supervised methods, evaluation.

pub mod data;
pub mod methods;
