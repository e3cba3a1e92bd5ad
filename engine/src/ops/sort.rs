//! Sorting along one axis: `argsort` (stable) and `topk` (sorted, ties to the lower index).
//! NaN orders above every number, as in PyTorch. Rows run in parallel when large.

use crate::backend::Backend;
use crate::cpu;
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::normalize_axis;
use crate::{with_any, Error, Result, Tensor};

/// `x` with axis `a` moved last (a view), the number of rows that leaves, and the permutation,
/// which also moves the axis back.
fn axis_last(x: &Tensor, a: usize) -> Result<(Tensor, usize, Vec<usize>)> {
    let last = x.rank() - 1;
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.swap(a, last);
    let moved = x.permute(&perm)?;
    let rows = moved.shape()[..last].iter().product();
    Ok((moved, rows, perm))
}

impl Tensor {
    /// The i64 indices that sort `axis` (ascending, or `descending`); stable, so equal
    /// values keep their order (the lower index first) either way.
    pub fn argsort(&self, axis: isize, descending: bool) -> Result<Tensor> {
        const OP: &str = "argsort";
        let a = normalize_axis(OP, axis, self.shape())?;
        let n = self.shape()[a];
        match self.backend() {
            Backend::Cuda(x) => Ok(Tensor::from_cuda_array(cuda::sort::sorted_along(&x, OP, a, n, descending, false)?.1)),
            Backend::Cpu => {
                let (moved, rows, perm) = axis_last(self, a)?;
                with_any!(self.dtype(), |T| {
                    let out = cpu::sort::argsort(&moved.values::<T>(OP)?, rows, n, descending);
                    Tensor::from_vec_unchecked(out, moved.shape()).permute(&perm)
                })
            }
        }
    }

    /// The `k` largest (or smallest, with `largest = false`) entries along `axis`, sorted
    /// from the most extreme, and their i64 indices; ties go to the lower index.
    pub fn topk(&self, k: usize, axis: isize, largest: bool) -> Result<(Tensor, Tensor)> {
        const OP: &str = "topk";
        let a = normalize_axis(OP, axis, self.shape())?;
        let n = self.shape()[a];
        if k > n {
            return Err(Error::invalid(OP, format!("k = {k} exceeds the length {n} of axis {axis} (shape {:?})", self.shape())));
        }
        match self.backend() {
            Backend::Cuda(x) => {
                let (vals, idx) = cuda::sort::sorted_along(&x, OP, a, k, largest, true)?;
                Ok((Tensor::from_cuda_array(vals.expect("asked for values")), Tensor::from_cuda_array(idx)))
            }
            Backend::Cpu => {
                let (moved, rows, perm) = axis_last(self, a)?;
                let mut shape = moved.shape().to_vec();
                shape[self.rank() - 1] = k;
                with_any!(self.dtype(), |T| {
                    let (vals, idx) = cpu::sort::topk(&moved.values::<T>(OP)?, rows, n, k, largest);
                    Ok((Tensor::from_vec_unchecked(vals, &shape).permute(&perm)?, Tensor::from_vec_unchecked(idx, &shape).permute(&perm)?))
                })
            }
        }
    }
}
