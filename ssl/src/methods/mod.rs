//! Self-supervised methods, one file per method, each reading like its paper; the losses
//! they share sit beside them.

mod nt_xent;

pub use nt_xent::nt_xent;
