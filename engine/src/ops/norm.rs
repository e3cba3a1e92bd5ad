//! Normalization kernels: batch norm (statistics per channel over batch and space) and
//! layer norm (statistics per row over the last dim), forward and fused backward.

use crate::backend::{cuda_operands, Backend};
use crate::cpu;
use crate::cpu::norm::Affine;
use crate::cpu::vmath::VmathIsa;
use crate::cuda::{self, CudaView};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::ops::widen::{via_f32, via_f32_opt, RoundBack};
use crate::{with_float, Error, FloatElem, Result, Tensor};

/// Saved statistics of a batch-norm forward pass, per channel.
pub struct BatchNormStats {
    /// Batch mean, shape `[C]`.
    pub mean: Tensor,
    /// Biased batch variance (what normalizes), shape `[C]`.
    pub var: Tensor,
    /// `1 / sqrt(var + eps)`, shape `[C]`.
    pub rstd: Tensor,
}

impl RoundBack for BatchNormStats {
    fn round_back(self, half: crate::DType) -> Result<Self> {
        Ok(BatchNormStats { mean: self.mean.round_back(half)?, var: self.var.round_back(half)?, rstd: self.rstd.round_back(half)? })
    }
}

/// `(N, C, S)` of an `[N, C, ...]` input.
fn ncs(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    if x.rank() < 2 {
        return Err(Error::invalid(op, format!("needs an input of shape [N, C, ...], got {:?}", x.shape())));
    }
    Ok((x.shape()[0], x.shape()[1], x.shape()[2..].iter().product()))
}

fn check_channel_vec(op: &'static str, x: &Tensor, v: &Tensor, what: &str, c: usize) -> Result<()> {
    if v.shape() != [c] {
        return Err(Error::shapes_hint(op, x.shape(), v.shape(), format!("{what} must have shape [{c}]")));
    }
    x.same_kind(op, v)
}

/// The host copy of a batch norm's per-channel vectors.
fn affine<T: FloatElem>(mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Affine<T>> {
    Ok(Affine {
        mean: mean.to_vec::<T>()?,
        rstd: rstd.to_vec::<T>()?,
        weight: weight.map(|w| w.to_vec::<T>()).transpose()?,
        bias: bias.map(|b| b.to_vec::<T>()).transpose()?,
    })
}

impl Tensor {
    /// Per-channel mean and biased variance of an `[N, C, ...]` input (training-mode batch norm).
    pub fn batch_norm_stats(&self, eps: f64) -> Result<BatchNormStats> {
        let (n, c, s) = ncs("batch_norm", self)?;
        if n * s == 0 {
            return Err(Error::invalid("batch_norm", format!("needs at least one value per channel, got shape {:?}", self.shape())));
        }
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float("batch_norm")?;
            let (mean, var, rstd) = cuda::norm::batch_norm_stats(&x, eps)?;
            let t = Tensor::from_cuda_array;
            return Ok(BatchNormStats { mean: t(mean), var: t(var), rstd: t(rstd) });
        }
        if let Some(stats) = via_f32([self], |[x]| x.batch_norm_stats(eps))? {
            return Ok(stats);
        }
        with_float!(self.dtype(), "batch_norm", |T| {
            let x = self.values::<T>("batch_norm")?;
            let (mean, var, rstd) = cpu::norm::batch_norm_stats(VmathIsa::selected(), &x, n, c, s, eps);
            Ok(BatchNormStats {
                mean: Tensor::from_vec_unchecked(mean, &[c]),
                var: Tensor::from_vec_unchecked(var, &[c]),
                rstd: Tensor::from_vec_unchecked(rstd, &[c]),
            })
        })
    }

    /// `(x - mean) · rstd · weight + bias` per channel of an `[N, C, ...]` input; all vectors
    /// have shape `[C]`. Training mode passes batch statistics, eval mode running ones.
    pub fn batch_norm_apply(&self, mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
        self.batch_norm_apply_act::<false>(mean, rstd, weight, bias)
    }

    /// `relu(batch_norm_apply(..))` in one pass: the output is written once and the
    /// pre-activation never stored (a ResNet's conv-BN-ReLU).
    pub fn batch_norm_relu_apply(&self, mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
        self.batch_norm_apply_act::<true>(mean, rstd, weight, bias)
    }

    fn batch_norm_apply_act<const RELU: bool>(
        &self,
        mean: &Tensor,
        rstd: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_, c, s) = ncs("batch_norm", self)?;
        for (v, what) in [(Some(mean), "mean"), (Some(rstd), "rstd"), (weight, "weight"), (bias, "bias")] {
            if let Some(v) = v {
                check_channel_vec("batch_norm", self, v, what, c)?;
            }
        }
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float("batch_norm")?;
            let y = gpu_batch_norm_apply(self, mean, rstd, weight, bias)?;
            return if RELU { y.relu() } else { Ok(y) };
        }
        let inputs = [Some(self), Some(mean), Some(rstd), weight, bias];
        if let Some(y) = via_f32_opt(inputs, |[x, m, r, w, b]| {
            x.unwrap().batch_norm_apply_act::<RELU>(&m.unwrap(), &r.unwrap(), w.as_ref(), b.as_ref())
        })? {
            return Ok(y);
        }
        with_float!(self.dtype(), "batch_norm", |T| {
            let x = self.values::<T>("batch_norm")?;
            let out = cpu::norm::batch_norm_apply::<T, RELU>(VmathIsa::selected(), &x, c, s, &affine::<T>(mean, rstd, weight, bias)?);
            Ok(Tensor::from_vec_unchecked(out, self.shape()))
        })
    }

    /// Backward of training-mode batch norm. `self` is the input, `grad` the output gradient.
    /// Returns `(dx, dweight, dbias)`; `dx` accounts for the batch statistics' dependence on x.
    pub fn batch_norm_backward(
        &self,
        grad: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        weight: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_backward_act::<false>(grad, mean, rstd, weight, None)
    }

    /// Backward of [`batch_norm_relu_apply`](Self::batch_norm_relu_apply) with batch
    /// statistics. The ReLU's mask is recomputed from the input (the same arithmetic as the
    /// forward, so the same bits), which is why `bias` is needed here.
    pub fn batch_norm_relu_backward(
        &self,
        grad: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_backward_act::<true>(grad, mean, rstd, weight, bias)
    }

    fn batch_norm_backward_act<const RELU: bool>(
        &self,
        grad: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (n, c, s) = ncs("batch_norm_backward", self)?;
        if grad.shape() != self.shape() {
            return Err(Error::shapes("batch_norm_backward", self.shape(), grad.shape()));
        }
        for (v, what) in [(Some(mean), "mean"), (Some(rstd), "rstd"), (weight, "weight"), (bias, "bias")] {
            if let Some(v) = v {
                check_channel_vec("batch_norm_backward", self, v, what, c)?;
            }
        }
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float("batch_norm_backward")?;
            if RELU {
                // Composed from the kernels the GPU has: recompute the pre-activation, mask.
                let pre = gpu_batch_norm_apply(self, mean, rstd, weight, bias)?;
                let grad = pre.unary_backward(crate::UnaryOp::Relu, &pre, grad)?;
                return gpu_batch_norm_backward(self, &grad, mean, rstd, weight);
            }
            return gpu_batch_norm_backward(self, grad, mean, rstd, weight);
        }
        let inputs = [Some(self), Some(grad), Some(mean), Some(rstd), weight, bias];
        if let Some(grads) = via_f32_opt(inputs, |[x, g, m, r, w, b]| {
            x.unwrap().batch_norm_backward_act::<RELU>(&g.unwrap(), &m.unwrap(), &r.unwrap(), w.as_ref(), b.as_ref())
        })? {
            return Ok(grads);
        }
        with_float!(self.dtype(), "batch_norm_backward", |T| {
            let x = self.values::<T>("batch_norm_backward")?;
            let g = grad.values::<T>("batch_norm_backward")?;
            let (dx, dw, db) =
                cpu::norm::batch_norm_backward::<T, RELU>(VmathIsa::selected(), &x, &g, n, c, s, &affine::<T>(mean, rstd, weight, bias)?);
            Ok((Tensor::from_vec_unchecked(dx, self.shape()), Tensor::from_vec_unchecked(dw, &[c]), Tensor::from_vec_unchecked(db, &[c])))
        })
    }

    /// Layer norm over the last dim: returns `(y, mean, rstd)` with `mean` and `rstd` of the
    /// leading shape. `weight` and `bias` have shape `[D]`.
    pub fn layer_norm(&self, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
        let d = *self.shape().last().ok_or_else(|| Error::invalid("layer_norm", "needs at least one dim"))?;
        for v in [weight, bias].into_iter().flatten() {
            if v.shape() != [d] {
                return Err(Error::shapes_hint("layer_norm", self.shape(), v.shape(), format!("weight and bias must have shape [{d}]")));
            }
            self.same_kind("layer_norm", v)?;
        }
        if d == 0 {
            return Err(Error::invalid("layer_norm", "cannot normalize an empty last dim"));
        }
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float("layer_norm")?;
            let (weight, bias) = (cuda_optional(weight, "layer_norm")?, cuda_optional(bias, "layer_norm")?);
            let (y, mean, rstd) = cuda::norm::layer_norm(&x, weight.as_ref(), bias.as_ref(), eps)?;
            return Ok((Tensor::from_cuda_array(y), Tensor::from_cuda_array(mean), Tensor::from_cuda_array(rstd)));
        }
        if let Some(out) = via_f32_opt([Some(self), weight, bias], |[x, w, b]| x.unwrap().layer_norm(w.as_ref(), b.as_ref(), eps))? {
            return Ok(out);
        }
        with_float!(self.dtype(), "layer_norm", |T| {
            let x = self.values::<T>("layer_norm")?;
            let w = weight.map(|w| w.to_vec::<T>()).transpose()?;
            let b = bias.map(|b| b.to_vec::<T>()).transpose()?;
            let (y, stats) = cpu::norm::layer_norm(VmathIsa::selected(), &x, d, w.as_deref(), b.as_deref(), eps);
            let lead = &self.shape()[..self.rank() - 1];
            Ok((
                Tensor::from_vec_unchecked(y, self.shape()),
                Tensor::from_vec_unchecked(stats.iter().map(|s| s.0).collect(), lead),
                Tensor::from_vec_unchecked(stats.iter().map(|s| s.1).collect(), lead),
            ))
        })
    }

    /// Backward of [`layer_norm`](Self::layer_norm): returns `dx`; the caller sums
    /// `grad · x̂` and `grad` over leading dims for the weight and bias gradients.
    /// Also returns `x̂` so it need not be recomputed.
    pub fn layer_norm_backward(&self, grad: &Tensor, mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let d = *self.shape().last().ok_or_else(|| Error::invalid("layer_norm_backward", "needs at least one dim"))?;
        if grad.shape() != self.shape() {
            return Err(Error::shapes("layer_norm_backward", self.shape(), grad.shape()));
        }
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float("layer_norm_backward")?;
            return gpu_layer_norm_backward(self, grad, mean, rstd, weight);
        }
        let inputs = [Some(self), Some(grad), Some(mean), Some(rstd), weight];
        if let Some(grads) =
            via_f32_opt(inputs, |[x, g, m, r, w]| x.unwrap().layer_norm_backward(&g.unwrap(), &m.unwrap(), &r.unwrap(), w.as_ref()))?
        {
            return Ok(grads);
        }
        with_float!(self.dtype(), "layer_norm_backward", |T| {
            let x = self.values::<T>("layer_norm_backward")?;
            let g = grad.values::<T>("layer_norm_backward")?;
            let (mean, rstd) = (mean.values::<T>("layer_norm_backward")?, rstd.values::<T>("layer_norm_backward")?);
            let w = weight.map(|w| w.to_vec::<T>()).transpose()?;
            let (dx, xhat) = cpu::norm::layer_norm_backward(VmathIsa::selected(), &x, &g, d, &mean, &rstd, w.as_deref());
            Ok((Tensor::from_vec_unchecked(dx, self.shape()), Tensor::from_vec_unchecked(xhat, self.shape())))
        })
    }
}

// ---- the CUDA arms: operands as device views, results back as tensors -------------------

fn cuda_optional<'a>(t: Option<&'a Tensor>, op: &'static str) -> Result<Option<CudaView<'a>>> {
    t.map(|t| t.cuda_operand(op)).transpose()
}

fn gpu_batch_norm_apply(x: &Tensor, mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
    let op = "batch_norm";
    let [xv, mv, rv] = [x.cuda_operand(op)?, mean.cuda_operand(op)?, rstd.cuda_operand(op)?];
    let (wv, bv) = (cuda_optional(weight, op)?, cuda_optional(bias, op)?);
    Ok(Tensor::from_cuda_array(cuda::norm::batch_norm_apply(&xv, &mv, &rv, wv.as_ref(), bv.as_ref())?))
}

/// The channel vectors are checked `[C]` and of x's kind by the caller.
fn gpu_batch_norm_backward(
    x: &Tensor,
    grad: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    weight: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "batch_norm_backward";
    x.same_kind(op, grad)?;
    let [xv, gv, mv, rv] = cuda_operands(op, [x, grad, mean, rstd])?;
    let wv = cuda_optional(weight, op)?;
    let (dx, dw, db) = cuda::norm::batch_norm_backward(&xv, &gv, &mv, &rv, wv.as_ref())?;
    Ok((Tensor::from_cuda_array(dx), Tensor::from_cuda_array(dw), Tensor::from_cuda_array(db)))
}

/// The kernels index the per-row and per-column vectors by row (or column): a wrong length
/// would read out of bounds, so it is an error on a GPU even where the CPU code does not
/// check it.
fn gpu_layer_norm_backward(x: &Tensor, grad: &Tensor, mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let op = "layer_norm_backward";
    let d = x.shape()[x.rank() - 1];
    let rows = x.numel().checked_div(d).unwrap_or(0);
    x.same_kind(op, grad)?;
    for (v, what, len) in [(Some(mean), "mean", rows), (Some(rstd), "rstd", rows), (weight, "weight", d)] {
        if let Some(v) = v {
            if v.numel() != len {
                return Err(Error::shapes_hint(op, x.shape(), v.shape(), format!("{what} must have {len} elements")));
            }
            x.same_kind(op, v)?;
        }
    }
    let [xv, gv, mv, rv] = cuda_operands(op, [x, grad, mean, rstd])?;
    let wv = cuda_optional(weight, op)?;
    let (dx, xhat) = cuda::norm::layer_norm_backward(&xv, &gv, &mv, &rv, wv.as_ref())?;
    Ok((Tensor::from_cuda_array(dx), Tensor::from_cuda_array(xhat)))
}
