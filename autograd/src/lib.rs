//! Reverse-mode automatic differentiation over tessera engine ops.
//!
//! A [`Var`] wraps an engine [`Tensor`](tessera_engine::Tensor). Ops on vars compute the
//! engine op and record a backward rule written right beside it; [`Var::backward`] walks the
//! graph in reverse topological order, frees each op's saved tensors as it passes, and
//! accumulates gradients into leaves. [`gradcheck`] compares every rule with central finite
//! differences in f64.

// `!(a <= b)` and the like are deliberate throughout: unlike `a > b` they are true when a
// value is NaN, which the checks written this way must reject (or, in the kernels, route
// the way PyTorch does).
#![allow(clippy::neg_cmp_op_on_partial_ord)]
pub mod autocast;
mod error;
pub mod fused;
mod gradcheck;
mod graph;
pub mod ops;
mod var;

pub use autocast::{autocast, autocast_dtype, AutocastGuard};
pub use error::{Error, Result};
pub use gradcheck::{gradcheck, GradcheckOptions};
pub use var::{is_grad_enabled, no_grad, BackwardFn, NoGradGuard, Var};

/// Every differentiable op name this crate records (the names passed to
/// [`Var::from_op`]). The test suite fails when one of them has no gradient check, and when
/// the source records a name missing from this list.
pub const DIFFERENTIABLE_OPS: &[&str] = &[
    // elementwise
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "where",
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "softplus",
    "square",
    "recip",
    "clamp",
    "pow_scalar",
    "add_scalar",
    "mul_scalar",
    // reductions
    "sum",
    "mean",
    "max",
    "min",
    "var",
    "logsumexp",
    "softmax",
    "log_softmax",
    // products
    "matmul",
    // convolution and pooling
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "unfold",
    "fold",
    // indexing
    "index_select",
    "gather",
    "scatter_add",
    "masked_fill",
    // views and layout
    "cat",
    "stack",
    "pad",
    "rot90",
    "repeat",
    "reshape",
    "permute",
    "narrow",
    "slice",
    "select",
    "expand",
    "flip",
    "contiguous",
    "to_dtype",
    // fused
    "cross_entropy",
    "cross_entropy_soft",
    "mse_loss",
    "l1_loss",
    "layer_norm",
    "batch_norm",
    "batch_norm_relu",
    "dropout",
    "embedding",
    "linear",
    "linear_of_activation",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_packed",
    "multi_head_attention",
];
