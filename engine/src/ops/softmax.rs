//! softmax and log_softmax along one axis, and their fused backward kernels. Rows are
//! shifted by their maximum, so inputs of 1e4 do not overflow.

use crate::backend::{cuda_operands, Backend};
use crate::cpu::softmax;
use crate::cuda::softmax::SoftmaxOp;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::normalize_axis;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, FloatElem, Result, Tensor};

/// The normalized axis, after the checks both devices share: a float dtype, the axis in
/// range, and any second input of the first's shape, dtype and device.
fn checked_axis(inputs: &[&Tensor], axis: isize, op: &'static str) -> Result<usize> {
    let x = inputs[0];
    x.expect_float(op)?;
    let a = normalize_axis(op, axis, x.shape())?;
    for t in &inputs[1..] {
        if t.shape() != x.shape() {
            return Err(crate::Error::shapes(op, x.shape(), t.shape()));
        }
        x.same_kind(op, t)?;
    }
    Ok(a)
}

/// The op on a GPU, if `inputs` live on one (after the shared checks).
fn on_gpu(inputs: &[&Tensor], axis: isize, op: &'static str, code: SoftmaxOp) -> Option<Result<Tensor>> {
    let Backend::Cuda(x) = inputs[0].backend() else { return None };
    Some(checked_axis(inputs, axis, op).and_then(|a| {
        let grad = inputs.get(1).map(|g| cuda_operands(op, [inputs[0], g]).map(|[_, g]| g)).transpose()?;
        Ok(Tensor::from_cuda_array(crate::cuda::softmax::along_axis(op, code, &x, grad.as_ref(), a)?))
    }))
}

/// Runs `f(input_row, output_row)` over every row along `axis` of same-shaped tensors, with
/// the axis moved last. Returns the result in the original axis order.
fn along_axis<T: FloatElem>(inputs: &[&Tensor], axis: isize, op: &'static str, f: impl Fn(&[&[T]], &mut [T]) + Sync) -> Result<Tensor> {
    let x = inputs[0];
    let a = checked_axis(inputs, axis, op)?;
    let last = x.rank() - 1;
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.swap(a, last);
    // Views with the axis last; `values` borrows them when already contiguous (the common
    // last-axis case) and copies only otherwise.
    let permuted: Vec<Tensor> = inputs.iter().map(|t| t.permute(&perm)).collect::<Result<_>>()?;
    let moved: Vec<std::borrow::Cow<'_, [T]>> = permuted.iter().map(|t| t.values::<T>(op)).collect::<Result<_>>()?;
    let rows: Vec<&[T]> = moved.iter().map(|m| &m[..]).collect();
    let out = softmax::map_rows(&rows, x.shape()[a], x.numel(), f);
    let moved_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    Tensor::from_vec_unchecked(out, &moved_shape).permute(&perm)
}

impl Tensor {
    /// `exp(x - max) / Σ exp(x - max)` along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        if let Some(r) = on_gpu(&[self], axis, "softmax", SoftmaxOp::Softmax) {
            return r;
        }
        if let Some(out) = via_f32([self], |[x]| x.softmax(axis))? {
            return Ok(out);
        }
        if self.dtype() == DType::F32 {
            // f32: vmath's exp vectorizes where `f32::exp` is a call per element; the row sum
            // then goes eight lanes wide too (its order depends only on the row length).
            return along_axis::<f32>(&[self], axis, "softmax", |r, o| softmax::softmax_row_f32(r[0], o));
        }
        with_float!(self.dtype(), "softmax", |T| along_axis::<T>(&[self], axis, "softmax", |r, o| softmax::softmax_row(r[0], o)))
    }

    /// `x - max - log Σ exp(x - max)` along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        if let Some(r) = on_gpu(&[self], axis, "log_softmax", SoftmaxOp::LogSoftmax) {
            return r;
        }
        if let Some(out) = via_f32([self], |[x]| x.log_softmax(axis))? {
            return Ok(out);
        }
        if self.dtype() == DType::F32 {
            // As in softmax: the exponentials (into the output row, overwritten below) and
            // their sum vectorize.
            return along_axis::<f32>(&[self], axis, "log_softmax", |r, o| softmax::log_softmax_row_f32(r[0], o));
        }
        with_float!(self.dtype(), "log_softmax", |T| along_axis::<T>(&[self], axis, "log_softmax", |r, o| softmax::log_softmax_row(
            r[0], o
        )))
    }

    /// Backward of softmax: `y · (g - Σ g·y)` along `axis`, where `self` is the softmax output.
    pub fn softmax_backward(&self, grad: &Tensor, axis: isize) -> Result<Tensor> {
        if let Some(r) = on_gpu(&[self, grad], axis, "softmax_backward", SoftmaxOp::SoftmaxBackward) {
            return r;
        }
        if let Some(out) = via_f32([self, grad], |[y, g]| y.softmax_backward(&g, axis))? {
            return Ok(out);
        }
        with_float!(self.dtype(), "softmax_backward", |T| along_axis::<T>(&[self, grad], axis, "softmax_backward", |r, o| {
            softmax::softmax_backward_row(r[0], r[1], o)
        }))
    }

    /// Backward of log_softmax: `g - exp(y) · Σ g` along `axis`, where `self` is the output.
    pub fn log_softmax_backward(&self, grad: &Tensor, axis: isize) -> Result<Tensor> {
        if let Some(r) = on_gpu(&[self, grad], axis, "log_softmax_backward", SoftmaxOp::LogSoftmaxBackward) {
            return r;
        }
        if let Some(out) = via_f32([self, grad], |[y, g]| y.log_softmax_backward(&g, axis))? {
            return Ok(out);
        }
        with_float!(self.dtype(), "log_softmax_backward", |T| along_axis::<T>(&[self, grad], axis, "log_softmax_backward", |r, o| {
            softmax::log_softmax_backward_row(r[0], r[1], o)
        }))
    }
}
