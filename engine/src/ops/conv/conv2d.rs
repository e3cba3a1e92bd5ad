//! `conv2d` and its backward kernels (direct, channel-vectorized kernels, or Winograd's
//! F(4×4, 3×3) for wide f32 3×3 layers; see `cpu::conv`).
//! bf16 tensors run on the bf16 GEMM where the CPU has one (`cpu::conv_bf16`), other halves
//! widen to f32.

use super::{conv_problem, Pair};
use crate::backend::Backend;
use crate::cpu::conv::{conv_backward_input, conv_backward_weight, conv_forward};
use crate::cpu::conv_bf16;
use crate::ops::widen::{via_f32, via_f32_opt};
use crate::{with_float, DType, Error, Result, Tensor};
use half::bf16;

impl Tensor {
    /// 2-D cross-correlation (PyTorch's `conv2d`): `self` is `[N, C_in, H, W]`, `weight` is
    /// `[C_out, C_in/groups, kh, kw]`, `bias` is `[C_out]`; the result is `[N, C_out, Ho, Wo]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        self.same_kind(OP, weight)?;
        self.expect_float(OP)?;
        let p = conv_problem(OP, self.shape(), weight.shape(), stride, padding, dilation, groups)?;
        if let Some(b) = bias {
            self.same_kind(OP, b)?;
            if b.shape() != [p.cout] {
                return Err(Error::shapes_hint(
                    OP,
                    b.shape(),
                    &[p.cout],
                    format!("the bias must be [C_out] (weight {:?})", weight.shape()),
                ));
            }
        }
        if let Backend::Cuda(_) = self.backend() {
            return super::gpu_gemm::conv_forward(OP, self, weight, bias, p.cout, p.groups, &p.geom, p.n);
        }
        if self.dtype() == DType::BF16 {
            let (x, w) = (self.values::<bf16>(OP)?, weight.values::<bf16>(OP)?);
            let b = bias.map(|b| b.values::<bf16>(OP)).transpose()?;
            if let Some(out) = conv_bf16::forward(&x, p.n, &w, p.cout, p.groups, &p.geom, b.as_deref()) {
                return Ok(Tensor::from_vec_unchecked(out, &[p.n, p.cout, p.geom.oh, p.geom.ow]));
            }
        }
        if let Some(out) = via_f32_opt([Some(self), Some(weight), bias], |[x, w, b]| {
            x.unwrap().conv2d(&w.unwrap(), b.as_ref(), stride, padding, dilation, groups)
        })? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (x, w) = (self.values::<T>(OP)?, weight.values::<T>(OP)?);
            let b = bias.map(|b| b.values::<T>(OP)).transpose()?;
            let out = conv_forward(&x, p.n, &w, p.cout, p.groups, &p.geom, b.as_deref());
            Ok(Tensor::from_vec_unchecked(out, &[p.n, p.cout, p.geom.oh, p.geom.ow]))
        })
    }

    /// The gradient of [`conv2d`](Self::conv2d) with respect to its input: `self` is the
    /// output gradient `[N, C_out, Ho, Wo]`; returns `[N, C_in, H, W]` (= `input_shape`).
    /// Computed as a transposed convolution, one stride phase of the input at a time.
    pub fn conv2d_backward_input(
        &self,
        weight: &Tensor,
        input_shape: &[usize],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_backward_input";
        self.same_kind(OP, weight)?;
        self.expect_float(OP)?;
        let p = conv_problem(OP, input_shape, weight.shape(), stride, padding, dilation, groups)?;
        check_grad_out(OP, self.shape(), &[p.n, p.cout, p.geom.oh, p.geom.ow])?;
        if let Backend::Cuda(_) = self.backend() {
            return super::gpu_gemm::conv_backward_input(OP, self, weight, None, p.cout, p.groups, &p.geom, p.n);
        }
        if self.dtype() == DType::BF16 {
            let (dy, w) = (self.values::<bf16>(OP)?, weight.values::<bf16>(OP)?);
            if let Some(out) = conv_bf16::backward_input(&dy, p.n, &w, p.cout, p.groups, &p.geom) {
                return Ok(Tensor::from_vec_unchecked(out, input_shape));
            }
        }
        if let Some(out) = via_f32([self, weight], |[g, w]| g.conv2d_backward_input(&w, input_shape, stride, padding, dilation, groups))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (dy, w) = (self.values::<T>(OP)?, weight.values::<T>(OP)?);
            let out = conv_backward_input(&dy, p.n, &w, p.cout, p.groups, &p.geom);
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }

    /// The gradient of [`conv2d`](Self::conv2d) with respect to its weight: `self` is the
    /// output gradient `[N, C_out, Ho, Wo]`, `input` the forward input; returns
    /// `weight_shape`. Computed as `Σ_n dY_n ⋆ x_n`, summed over the batch in a fixed order
    /// whatever the thread count.
    pub fn conv2d_backward_weight(
        &self,
        input: &Tensor,
        weight_shape: &[usize],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_backward_weight";
        self.same_kind(OP, input)?;
        self.expect_float(OP)?;
        let p = conv_problem(OP, input.shape(), weight_shape, stride, padding, dilation, groups)?;
        check_grad_out(OP, self.shape(), &[p.n, p.cout, p.geom.oh, p.geom.ow])?;
        if let Backend::Cuda(_) = self.backend() {
            return super::gpu_gemm::conv_backward_weight(OP, self, input, p.cout, p.groups, &p.geom, p.n, weight_shape);
        }
        if self.dtype() == DType::BF16 {
            let (dy, x) = (self.values::<bf16>(OP)?, input.values::<bf16>(OP)?);
            if let Some(out) = conv_bf16::backward_weight(&dy, &x, p.n, p.cout, p.groups, &p.geom) {
                return Ok(Tensor::from_vec_unchecked(out, weight_shape));
            }
        }
        if let Some(out) = via_f32([self, input], |[g, x]| g.conv2d_backward_weight(&x, weight_shape, stride, padding, dilation, groups))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (dy, x) = (self.values::<T>(OP)?, input.values::<T>(OP)?);
            let out = conv_backward_weight(&dy, &x, p.n, p.cout, p.groups, &p.geom);
            Ok(Tensor::from_vec_unchecked(out, weight_shape))
        })
    }

    /// The gradient of a conv2d (or conv_transpose2d) bias: `self` is the output gradient
    /// `[N, C, H, W]`; returns `[C]`, the sum over N, H and W.
    pub fn conv2d_backward_bias(&self) -> Result<Tensor> {
        if self.rank() != 4 {
            return Err(Error::invalid(
                "conv2d_backward_bias",
                format!("the output gradient must be [N, C, H, W], got shape {:?}", self.shape()),
            ));
        }
        self.sum(&[0, 2, 3], false)
    }
}

/// Errors unless an output gradient has the shape the forward op produced.
pub(crate) fn check_grad_out(op: &'static str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got != expected {
        return Err(Error::shapes_hint(op, got, expected, "the output gradient must have the forward output's shape"));
    }
    Ok(())
}
