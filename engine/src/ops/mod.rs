//! Engine ops, one file per family; each file holds the forward kernels and the fused
//! backward kernels autograd calls.

pub mod attention;
pub mod binary;
pub mod conv;
mod convert;
pub mod index;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod sort;
pub mod unary;
pub mod view;
pub(crate) mod widen;
