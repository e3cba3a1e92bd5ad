//! Multi-head self-attention on the rows of a fused `qkv` projection, forward and backward
//! side by side (host kernels: [`cpu::attention`](crate::cpu::attention)). On the host in
//! f32 and f64; elsewhere the caller composes attention from views and products.

use crate::cpu::attention::{self, HeadShape};
use crate::cpu::gemm::Gemm;
use crate::cpu::softmax;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::{with_float, DType, Error, Result, Tensor};

impl Tensor {
    /// Self-attention of `self = qkv [B, L, 3·D]` (each token's q, k and v side by side, each
    /// split into `heads` heads of `D / heads` features, as timm's fused projection lays them
    /// out): `softmax(q·kᵀ/√Dh + mask)·v` per head, with `causal` hiding the keys after each
    /// query. Returns the output `[B, L, D]` (heads side by side) and the probabilities
    /// `[B, H, L, L]` for [`attention_heads_backward`](Self::attention_heads_backward). The
    /// same bits as the product-by-product composition on the split heads.
    ///
    /// Host tensors of f32 or f64 only (an error names the device or dtype otherwise).
    pub fn attention_heads(&self, heads: usize, causal: bool) -> Result<(Tensor, Tensor)> {
        let shape = head_shape("attention_heads", self, heads)?;
        if self.dtype() == DType::F32 {
            // `Tensor::softmax`'s f32 row (its exp vectorized), so the probabilities have its bits.
            return forward_on::<f32>(self, shape, causal, softmax::softmax_row_f32);
        }
        with_float!(self.dtype(), "attention_heads", |T| forward_on::<T>(self, shape, causal, softmax::softmax_row::<T>))
    }

    /// The gradient of `self = qkv [B, L, 3·D]` in [`attention_heads`](Self::attention_heads)
    /// for the output gradient `grad [B, L, D]`, given the probabilities it returned:
    /// `[B, L, 3·D]`, laid out as `qkv` is, so the projection's backward reads it as it is.
    pub fn attention_heads_backward(&self, probs: &Tensor, grad: &Tensor, heads: usize) -> Result<Tensor> {
        const OP: &str = "attention_heads_backward";
        let shape = head_shape(OP, self, heads)?;
        let HeadShape { batch, len, heads, head_dim } = shape;
        let dim = heads * head_dim;
        if grad.shape() != [batch, len, dim] {
            return Err(Error::shapes_hint(OP, self.shape(), grad.shape(), format!("the output gradient must be [{batch}, {len}, {dim}]")));
        }
        if probs.shape() != [batch, heads, len, len] {
            return Err(Error::shapes_hint(
                OP,
                self.shape(),
                probs.shape(),
                format!("the probabilities must be [{batch}, {heads}, {len}, {len}]"),
            ));
        }
        self.same_kind(OP, grad)?;
        self.same_kind(OP, probs)?;
        with_float!(self.dtype(), OP, |T| {
            let (qkv, p, g) = (self.values::<T>(OP)?, probs.values::<T>(OP)?, grad.values::<T>(OP)?);
            let dqkv = attention::backward(&qkv, &p, &g, shape, softmax::softmax_backward_row::<T>);
            Ok(Tensor::from_vec_unchecked(dqkv, self.shape()))
        })
    }
}

/// [`Tensor::attention_heads`] in `T` with the softmax row kernel `row`.
fn forward_on<T: Gemm>(qkv: &Tensor, shape: HeadShape, causal: bool, row: fn(&[T], &mut [T])) -> Result<(Tensor, Tensor)> {
    let HeadShape { batch, len, heads, head_dim } = shape;
    let (out, probs) = attention::forward(&qkv.values::<T>("attention_heads")?, shape, causal, row);
    Ok((Tensor::from_vec_unchecked(out, &[batch, len, heads * head_dim]), Tensor::from_vec_unchecked(probs, &[batch, heads, len, len])))
}

/// `(B, L, D)` of a fused projection's rows `[B, L, 3·D]` that split into `heads` heads of
/// `D / heads` features, or an error naming `op` and the shape.
pub fn qkv_rows_shape(op: &'static str, shape: &[usize], heads: usize) -> Result<(usize, usize, usize)> {
    if shape.len() != 3 || heads == 0 || !shape[2].is_multiple_of(3 * heads) {
        return Err(Error::invalid(op, format!("expects qkv [B, L, 3·D] with D a multiple of {heads} heads, got {shape:?}")));
    }
    Ok((shape[0], shape[1], shape[2] / 3))
}

/// The attention shape of a host `qkv`, or an error naming `op` and the device or the shape.
fn head_shape(op: &'static str, qkv: &Tensor, heads: usize) -> Result<HeadShape> {
    if qkv.is_cuda() {
        return Err(Error::invalid(op, "runs on the host; on a GPU attention is composed of products"));
    }
    let (batch, len, dim) = qkv_rows_shape(op, qkv.shape(), heads)?;
    Ok(HeadShape { batch, len, heads, head_dim: dim / heads })
}
