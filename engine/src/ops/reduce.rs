//! Reductions over any set of axes. The kept axes are moved to the front and the reduced
//! ones to the back, so every output element reduces one contiguous row, in order: results
//! do not depend on the thread count. A sum or mean whose reduced axes come before
//! contiguous kept ones (a bias gradient, a mean over tokens) instead runs down the columns
//! in memory order, summing each column in the same order as the row would be (see
//! `cpu::reduce::sum_middle_axis`), so it gives the same bits without the transposed copy.

use crate::backend::Backend;
use crate::cpu::reduce::{map_rows, reduce_row, sum_middle_axis};
pub use crate::cpu::reduce::{sum_by, sum_slice, sum_zip2};
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
pub use crate::kinds::ReduceOp;
use crate::layout::normalize_axes;
use crate::ops::widen::via_f32;
use crate::{with_any, with_float, Element, Result, Tensor};
use std::borrow::Cow;

/// A tensor rearranged for a reduction: `outer` rows of `inner` contiguous elements.
pub(crate) struct Rows<'a, T: Clone> {
    pub data: Cow<'a, [T]>,
    pub inner: usize,
    /// The output shape with reduced axes kept as size 1.
    pub keep_shape: Vec<usize>,
    /// The output shape with reduced axes removed.
    pub drop_shape: Vec<usize>,
}

/// The output shapes of reducing `axes` (normalized) of `shape`: with the reduced axes kept
/// as size 1, and with them removed.
fn output_shapes(shape: &[usize], axes: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let keep = shape.iter().enumerate().map(|(d, &s)| if axes.contains(&d) { 1 } else { s }).collect();
    let drop = shape.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &s)| s).collect();
    (keep, drop)
}

pub(crate) fn rows<'a, T: Element>(x: &'a Tensor, op: &'static str, axes: &[isize]) -> Result<Rows<'a, T>> {
    let axes = normalize_axes(op, axes, x.shape())?;
    let kept: Vec<usize> = (0..x.rank()).filter(|d| !axes.contains(d)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
    let inner: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let (keep_shape, drop_shape) = output_shapes(x.shape(), &axes);
    let permuted = x.permute(&perm)?;
    let data = if permuted.is_contiguous() {
        // Borrow straight from `x`'s storage: same elements in the same order.
        let buf = x.buffer::<T>(op)?;
        Cow::Borrowed(&buf[x.layout().offset..x.layout().offset + x.numel()])
    } else {
        Cow::Owned(permuted.values::<T>(op)?.into_owned())
    };
    Ok(Rows { data, inner, keep_shape, drop_shape })
}

/// `(outer, red, inner)` when `x` is contiguous and its reduced `axes` (sorted) are
/// consecutive dims followed by at least one kept dim of more than one element: the sums then
/// run down the columns of `[outer, red, inner]` in memory order ([`sum_middle_axis`]) rather
/// than over a transposed copy. `None` where the rows path already reads contiguous rows (the
/// reduced axes last) or the axes are not one block.
fn middle_block(x: &Tensor, axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (&first, &last) = (axes.first()?, axes.last()?);
    if !x.is_contiguous() || last - first + 1 != axes.len() {
        return None;
    }
    let shape = x.shape();
    let (outer, red, inner) =
        (shape[..first].iter().product(), shape[first..=last].iter().product::<usize>(), shape[last + 1..].iter().product::<usize>());
    (inner > 1 && red > 0).then_some((outer, red, inner))
}

impl Tensor {
    /// Reduces `axes` (all axes when empty) with `op`; `keepdim` keeps them as size 1.
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let name = op.name();
        // Checked in the CPU code's order (dtype, axes, empty axis), once for both devices.
        self.expect_float(name)?;
        let normalized = normalize_axes(name, axes, self.shape())?;
        if !matches!(op, ReduceOp::Sum) && normalized.iter().any(|&a| self.shape()[a] == 0) {
            return Err(crate::Error::invalid(name, format!("cannot reduce an empty axis (shape {:?}, axes {axes:?})", self.shape())));
        }
        if let Backend::Cuda(x) = self.backend() {
            return Ok(Tensor::from_cuda_array(cuda::reduce::reduce(&x, op, &normalized, keepdim)?));
        }
        if let Some(out) = via_f32([self], |[x]| x.reduce(op, axes, keepdim))? {
            return Ok(out);
        }
        with_float!(self.dtype(), name, |T| {
            if let Some((outer, red, inner)) = middle_block(self, &normalized).filter(|_| matches!(op, ReduceOp::Sum | ReduceOp::Mean)) {
                let x = &self.buffer::<T>(name)?[self.layout().offset..][..self.numel()];
                let mut out = sum_middle_axis(x, outer, red, inner);
                if matches!(op, ReduceOp::Mean) {
                    let n = <T as FloatElem>::c(red as f64);
                    out.iter_mut().for_each(|v| *v /= n);
                }
                let (keep_shape, drop_shape) = output_shapes(self.shape(), &normalized);
                return Ok(Tensor::from_vec_unchecked(out, if keepdim { &keep_shape } else { &drop_shape }));
            }
            let r = rows::<T>(self, name, axes)?;
            let outer = r.data.len().checked_div(r.inner).unwrap_or_else(|| r.keep_shape.iter().product());
            let out = map_rows(&r.data, r.inner, outer, |row| reduce_row(op, row));
            Ok(Tensor::from_vec_unchecked(out, if keepdim { &r.keep_shape } else { &r.drop_shape }))
        })
    }

    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
    /// Variance over `axes`; `unbiased` divides by `n - 1`.
    pub fn var(&self, axes: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Var { unbiased }, axes, keepdim)
    }
    /// `log Σ exp`, stable for large inputs.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::LogSumExp, axes, keepdim)
    }
    /// Sum of all elements as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Index of the largest element along `axis` (the first one on ties), as i64.
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extreme("argmax", axis, keepdim, true)
    }

    /// Index of the smallest element along `axis` (the first one on ties), as i64.
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extreme("argmin", axis, keepdim, false)
    }

    fn arg_extreme(&self, op: &'static str, axis: isize, keepdim: bool, is_max: bool) -> Result<Tensor> {
        let a = normalize_axes(op, &[axis], self.shape())?[0];
        if self.shape()[a] == 0 {
            return Err(crate::Error::invalid(op, format!("axis {axis} is empty (shape {:?})", self.shape())));
        }
        if let Backend::Cuda(x) = self.backend() {
            return Ok(Tensor::from_cuda_array(cuda::reduce::arg_extreme(&x, op, a, keepdim, is_max)?));
        }
        let better = |a: f64, b: f64| if is_max { b > a } else { b < a };
        with_any!(self.dtype(), |T| {
            let r = rows::<T>(self, op, &[axis])?;
            let out = map_rows(&r.data, r.inner, r.data.len() / r.inner, |row| {
                let mut best = 0usize;
                for (i, x) in row.iter().enumerate().skip(1) {
                    if better(row[best].to_f64(), x.to_f64()) {
                        best = i;
                    }
                }
                best as i64
            });
            Ok(Tensor::from_vec_unchecked(out, if keepdim { &r.keep_shape } else { &r.drop_shape }))
        })
    }

    /// Sums `self` down to `shape` (the inverse of broadcasting `shape` to `self.shape()`):
    /// what the gradient of a broadcast operand needs.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self
            .rank()
            .checked_sub(shape.len())
            .ok_or_else(|| crate::Error::shapes_hint("sum_to_shape", self.shape(), shape, "the target has more dims"))?;
        let mut axes = Vec::new();
        for d in 0..self.rank() {
            // Leading dims the target lacks, and dims it keeps at 1, are summed away.
            if d < lead || (shape[d - lead] == 1 && self.shape()[d] != 1) {
                axes.push(d as isize);
            } else if shape[d - lead] != self.shape()[d] {
                return Err(crate::Error::shapes_hint("sum_to_shape", self.shape(), shape, "the target does not broadcast to the source"));
            }
        }
        if axes.is_empty() {
            return self.reshape_to(shape);
        }
        self.sum(&axes, true)?.reshape_to(shape)
    }
}

impl Tensor {
    /// A u8 mask of `self`'s shape marking, in each row reduced over `axes`, the first position
    /// (in row-major order) holding the maximum (`is_max`) or minimum: where the gradient of
    /// max/min goes, so ties resolve deterministically.
    pub fn extreme_mask(&self, axes: &[isize], is_max: bool) -> Result<Tensor> {
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float("extreme_mask")?;
            let axes_n = normalize_axes("extreme_mask", axes, self.shape())?;
            return Ok(Tensor::from_cuda_array(cuda::reduce::extreme_mask(&x, &axes_n, is_max)?));
        }
        if let Some(out) = via_f32([self], |[x]| x.extreme_mask(axes, is_max))? {
            return Ok(out);
        }
        with_float!(self.dtype(), "extreme_mask", |T| {
            let r = rows::<T>(self, "extreme_mask", axes)?;
            let axes_n = normalize_axes("extreme_mask", axes, self.shape())?;
            let kept: Vec<usize> = (0..self.rank()).filter(|d| !axes_n.contains(d)).collect();
            let perm: Vec<usize> = kept.iter().chain(axes_n.iter()).copied().collect();
            let mut mask = vec![0u8; self.numel()];
            if r.inner > 0 {
                for (row, m) in r.data.chunks(r.inner).zip(mask.chunks_mut(r.inner)) {
                    let mut best = 0;
                    for i in 1..row.len() {
                        if (is_max && row[i] > row[best]) || (!is_max && row[i] < row[best]) {
                            best = i;
                        }
                    }
                    m[best] = 1;
                }
            }
            let permuted_shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            Tensor::from_vec_unchecked(mask, &permuted_shape).permute(&inv)
        })
    }
}
