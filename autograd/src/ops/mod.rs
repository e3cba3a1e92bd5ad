//! Differentiable versions of the engine ops, one file per family, each rule beside its op.

mod elementwise;
mod matmul;
mod reduce;
mod view;
