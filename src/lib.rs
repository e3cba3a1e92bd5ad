//! tessera: a from-scratch tensor engine, reverse-mode autograd and self-supervised learning
//! framework. This crate re-exports the workspace's layers:
//! [`engine`] (tensors and kernels) ← [`autograd`] (differentiation) ← [`ssl`] (models,
//! data, methods, evaluation).

pub use tessera_autograd as autograd;
pub use tessera_engine as engine;
pub use tessera_ptx as ptx;
pub use tessera_ssl as ssl;
