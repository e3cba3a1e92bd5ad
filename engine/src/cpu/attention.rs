//! Multi-head self-attention read straight from the rows of a fused `qkv` projection: the
//! host kernels of [`Tensor::attention_heads`](crate::Tensor::attention_heads) and its
//! backward.
//!
//! `qkv` is `[B, L, 3·D]`, the output of one linear layer: each token's q, then k, then v,
//! each split into `H` heads of `Dh = D/H` (timm's layout). Each head's products read their
//! operands where they lie (rows `3·D` apart) and write where the next layer reads them: the
//! output straight into `[B, L, D]` (heads side by side, as the projection after attention
//! wants them) and the gradient straight into `[B, L, 3·D]` (as the `qkv` layer's backward
//! wants it). The composition of views and batched products this replaces copied the output
//! out of `[B, H, L, Dh]`, stacked the three gradients and copied the stack back out of
//! `[3, B, H, L, Dh]`: about eight activations' worth of copies per block.
//!
//! Same values, same bits: every product is the GEMM the batched `matmul` runs on the same
//! operands (a tile's result does not depend on the strides it reads or writes), and the
//! scaling, masking and softmax rows are the same row kernels in the same order.

use crate::cpu::gemm::{Gemm, MatRef};
use crate::cpu::strided::build;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The shapes of one attention: `batch` samples of `len` tokens, `heads` heads of
/// `head_dim` features (`dim = heads · head_dim`).
#[derive(Clone, Copy, Debug)]
pub struct HeadShape {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl HeadShape {
    fn dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// `1/√Dh` in the element type, as `mul_scalar` rounds it.
    fn scale<T: Gemm>(&self) -> T {
        T::c(1.0 / (self.head_dim as f64).sqrt())
    }

    /// Head `h`'s `L × Dh` block of q (`part` 0), k (1) or v (2) in sample `s`'s rows of
    /// `qkv`, read where it lies (`transposed`: as its `Dh × L` transpose).
    fn part<'a, T>(&self, qkv: &'a [T], s: usize, part: usize, h: usize, transposed: bool) -> MatRef<'a, T> {
        let row = 3 * self.dim() as isize;
        let offset = (s * self.len * 3 * self.dim() + part * self.dim() + h * self.head_dim) as isize;
        if transposed {
            MatRef { data: qkv, offset, rs: 1, cs: row }
        } else {
            MatRef { data: qkv, offset, rs: row, cs: 1 }
        }
    }
}

/// A row-major `rows × cols` matrix at the start of `data` (`transposed`: its transpose).
fn dense<T>(data: &[T], cols: usize, transposed: bool) -> MatRef<'_, T> {
    if transposed {
        MatRef { data, offset: 0, rs: 1, cs: cols as isize }
    } else {
        MatRef { data, offset: 0, rs: cols as isize, cs: 1 }
    }
}

/// The forward: `out [B, L, D]` (each head's `softmax(q·kᵀ/√Dh + mask)·v` in its `Dh`
/// columns) and the probabilities `[B, H, L, L]` the backward reuses. `causal` hides the
/// keys after each query. `softmax_row` is the dtype's softmax row kernel.
pub fn forward<T: Gemm>(qkv: &[T], shape: HeadShape, causal: bool, softmax_row: fn(&[T], &mut [T])) -> (Vec<T>, Vec<T>) {
    let HeadShape { batch, len, heads, head_dim } = shape;
    let (dim, scale) = (shape.dim(), shape.scale::<T>());
    let mut probs = vec![T::zero(); batch * heads * len * len];
    let out = build(batch * len * dim, |out: &mut [MaybeUninit<T>]| {
        if len == 0 || dim == 0 {
            return;
        }
        let sample = |(s, (out, probs)): (usize, (&mut [MaybeUninit<T>], &mut [T]))| {
            let mut scores = vec![T::zero(); len * len];
            for h in 0..heads {
                T::gemm(
                    len,
                    head_dim,
                    len,
                    T::one(),
                    shape.part(qkv, s, 0, h, false),
                    shape.part(qkv, s, 1, h, true),
                    T::zero(),
                    &mut scores,
                    len,
                );
                let p = &mut probs[h * len * len..(h + 1) * len * len];
                for (i, (row, p)) in scores.chunks_mut(len).zip(p.chunks_mut(len)).enumerate() {
                    row.iter_mut().for_each(|x| *x *= scale);
                    if causal {
                        row[i + 1..].iter_mut().for_each(|x| *x = T::neg_infinity());
                    }
                    softmax_row(row, p);
                }
                let p = &probs[h * len * len..(h + 1) * len * len];
                T::gemm_uninit(
                    len,
                    len,
                    head_dim,
                    T::one(),
                    dense(p, len, false),
                    shape.part(qkv, s, 2, h, false),
                    &mut out[h * head_dim..],
                    dim,
                );
            }
        };
        out.par_chunks_mut(len * dim).zip(probs.par_chunks_mut(heads * len * len)).enumerate().for_each(sample);
    });
    (out, probs)
}

/// The backward of [`forward`]: the gradient of `qkv` `[B, L, 3·D]` for the output gradient
/// `grad [B, L, D]`, given the probabilities `probs [B, H, L, L]` the forward returned.
/// `softmax_backward_row(y, g, out)` is the softmax's row backward.
pub fn backward<T: Gemm>(qkv: &[T], probs: &[T], grad: &[T], shape: HeadShape, softmax_backward_row: fn(&[T], &[T], &mut [T])) -> Vec<T> {
    let HeadShape { batch, len, heads, head_dim } = shape;
    let (dim, scale) = (shape.dim(), shape.scale::<T>());
    build(batch * len * 3 * dim, |dqkv: &mut [MaybeUninit<T>]| {
        if len == 0 || dim == 0 {
            return;
        }
        let sample = |(s, dqkv): (usize, &mut [MaybeUninit<T>])| {
            let (mut dp, mut ds) = (vec![T::zero(); len * len], vec![T::zero(); len * len]);
            // Head h's columns of the output gradient, rows D apart.
            let g = |h: usize| MatRef { data: grad, offset: (s * len * dim + h * head_dim) as isize, rs: dim as isize, cs: 1 };
            for h in 0..heads {
                let p = &probs[(s * heads + h) * len * len..(s * heads + h + 1) * len * len];
                // dP = dO · vᵀ, then dS = softmax'(dP) / √Dh.
                T::gemm(len, head_dim, len, T::one(), g(h), shape.part(qkv, s, 2, h, true), T::zero(), &mut dp, len);
                for ((p, dp), ds) in p.chunks(len).zip(dp.chunks(len)).zip(ds.chunks_mut(len)) {
                    softmax_backward_row(p, dp, ds);
                    ds.iter_mut().for_each(|x| *x *= scale);
                }
                // dQ = dS · k, dK = dSᵀ · q, dV = Pᵀ · dO: L × Dh products, each into its
                // columns of dqkv (rows 3·D apart).
                let mut into = |col: usize, a: MatRef<T>, b: MatRef<T>| {
                    T::gemm_uninit(len, len, head_dim, T::one(), a, b, &mut dqkv[col + h * head_dim..], 3 * dim)
                };
                into(0, dense(&ds, len, false), shape.part(qkv, s, 1, h, false));
                into(dim, dense(&ds, len, true), shape.part(qkv, s, 0, h, false));
                into(2 * dim, dense(p, len, true), g(h));
            }
        };
        dqkv.par_chunks_mut(len * 3 * dim).enumerate().for_each(sample);
    })
}
