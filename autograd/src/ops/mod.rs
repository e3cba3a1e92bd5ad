//! Differentiable versions of the engine ops, one file per family, each rule beside its op.

mod conv;
mod elementwise;
mod index;
mod matmul;
mod reduce;
mod shape;
mod view;
