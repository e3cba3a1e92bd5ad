//! Matrix products: 1-D, 2-D and batched N-D operands with NumPy's broadcasting of batch
//! dims. Operands are passed to the GEMM with their own strides: transposed or expanded
//! views are never copied, on the CPU or on a GPU (where f32 products follow
//! [`cuda::set_matmul_precision`](crate::cuda::set_matmul_precision)).

use crate::backend::{cuda_operands, Backend};
use crate::cpu::gemm::{Gemm, MatRef};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::broadcast_shapes;
use crate::ops::widen::via_f32;
use crate::{with_float, Error, Layout, Result, Tensor};
use rayon::prelude::*;

impl Tensor {
    /// `self @ rhs` with NumPy semantics: a 1-D lhs is a row vector and a 1-D rhs a column
    /// vector (that dim is removed from the result); leading dims broadcast.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.same_kind("matmul", rhs)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::shapes_hint("matmul", self.shape(), rhs.shape(), "both operands need at least one dim"));
        }
        let a = if self.rank() == 1 { self.unsqueeze(0)? } else { self.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(1)? } else { rhs.clone() };
        let (m, k) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
        let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
        if k != k2 {
            return Err(Error::shapes_hint("matmul", self.shape(), rhs.shape(), format!("inner dims differ ({k} vs {k2})")));
        }
        let batch = broadcast_shapes("matmul", &a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2])
            .map_err(|_| Error::shapes_hint("matmul", self.shape(), rhs.shape(), "batch dims do not broadcast"))?;
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        let out = if let Backend::Cuda(_) = self.backend() {
            self.expect_float("matmul")?;
            let [a, b] = cuda_operands("matmul", [&a, &b])?;
            Tensor::from_cuda_array(crate::cuda::matmul::batched_matmul(&a, &b, &batch, m, k, n)?)
        } else {
            if let Some(out) = via_f32([self, rhs], |[a, b]| a.matmul(&b))? {
                return Ok(out);
            }
            with_float!(self.dtype(), "matmul", |T| batched_gemm::<T>(&a, &b, &batch, m, k, n)
                .map(|v| Tensor::from_vec_unchecked(v, &out_shape)))?
        };
        // Drop the dims a 1-D operand contributed.
        match (self.rank(), rhs.rank()) {
            (1, 1) => out.reshape(&[]),
            (1, _) => out.squeeze_axis(-2),
            (_, 1) => out.squeeze_axis(-1),
            _ => Ok(out),
        }
    }
}

fn batched_gemm<T: Gemm>(a: &Tensor, b: &Tensor, batch: &[usize], m: usize, k: usize, n: usize) -> Result<Vec<T>> {
    let nb: usize = batch.iter().product();
    let mut out = vec![T::zero(); nb * m * n];
    let (ab, bb) = (a.buffer::<T>("matmul")?, b.buffer::<T>("matmul")?);
    let (la, lb) = (a.layout(), b.layout());
    let a_batch = batch_offsets(la, batch);
    let b_batch = batch_offsets(lb, batch);
    let (ra, ca) = (la.strides[la.rank() - 2], la.strides[la.rank() - 1]);
    let (rb, cb) = (lb.strides[lb.rank() - 2], lb.strides[lb.rank() - 1]);
    let one = |i: usize, c: &mut [T]| {
        let am = MatRef { data: ab, offset: a_batch[i], rs: ra, cs: ca };
        let bm = MatRef { data: bb, offset: b_batch[i], rs: rb, cs: cb };
        T::gemm(m, k, n, T::one(), am, bm, T::zero(), c, n);
    };
    if m * n == 0 {
        return Ok(out);
    }
    // Small matrices in a batch: parallelize over the batch. A single or large product
    // relies on matrixmultiply's own threading inside one call.
    if nb > 1 && m * n * k < (1 << 21) {
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, c)| one(i, c));
    } else {
        out.chunks_mut(m * n).enumerate().for_each(|(i, c)| one(i, c));
    }
    Ok(out)
}

/// Storage offset of each batch matrix of `l` (rank ≥ 2) broadcast over `batch`.
fn batch_offsets(l: &Layout, batch: &[usize]) -> Vec<isize> {
    let lead = Layout { shape: l.shape[..l.rank() - 2].to_vec(), strides: l.strides[..l.rank() - 2].to_vec(), offset: l.offset };
    let strides = lead.broadcast_strides(batch);
    let nb: usize = batch.iter().product();
    let mut offs = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..nb {
        offs.push(l.offset as isize + idx.iter().zip(&strides).map(|(&i, &s)| i as isize * s).sum::<isize>());
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    offs
}
