//! Normalization kernels: batch norm (statistics per channel over batch and space) and
//! layer norm (statistics per row over the last dim), forward and fused backward.

#[allow(unused_imports)]
use crate::backend::{cuda_operands, Backend};
use crate::cuda::{self, CudaView};
use crate::dtype::prelude::*;
use crate::ops::reduce::{sum_by, sum_slice, sum_zip2};
use crate::ops::widen::{via_f32, via_f32_opt, RoundBack};
use crate::{with_float, Error, FloatElem, Result, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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

/// Applies `f(c, channel_slices)` per channel in parallel; each channel's N slices of length S.
fn per_channel<T: FloatElem, U: Send + Default + Clone>(
    x: &[T],
    n: usize,
    c: usize,
    s: usize,
    f: impl Fn(usize, &mut dyn Iterator<Item = &[T]>) -> U + Sync,
) -> Vec<U> {
    (0..c).into_par_iter().map(|ch| f(ch, &mut (0..n).map(|i| &x[(i * c + ch) * s..(i * c + ch + 1) * s]))).collect()
}

/// A new buffer of `len` elements made of blocks of `s` (one `[.., C, S]` channel slice of
/// one sample each), every block written in full by `f(block_index, block)`; in parallel when
/// large. No zero fill first: the blocks cover the buffer.
fn per_block<T: FloatElem>(len: usize, s: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    crate::cpu::strided::build(len, |out| {
        if s == 0 {
            return;
        }
        if len >= crate::cpu::PAR_MIN_ELEMS {
            out.par_chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
        } else {
            out.chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
        }
    })
}

/// Per-channel statistics and affine parameters on the host, with the `(scale, shift)` that
/// turns `x` into `(x - mean) · rstd · weight + bias` as one multiply-add (the forward and the
/// ReLU mask of the backward use the same arithmetic, so they agree bit for bit).
struct Affine<T> {
    mean: Vec<T>,
    rstd: Vec<T>,
    weight: Option<Vec<T>>,
    bias: Option<Vec<T>>,
}

impl<T: FloatElem> Affine<T> {
    fn new(mean: &Tensor, rstd: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Self> {
        Ok(Affine {
            mean: mean.to_vec::<T>()?,
            rstd: rstd.to_vec::<T>()?,
            weight: weight.map(|w| w.to_vec::<T>()).transpose()?,
            bias: bias.map(|b| b.to_vec::<T>()).transpose()?,
        })
    }

    fn weight(&self, ch: usize) -> T {
        self.weight.as_ref().map_or(T::one(), |w| w[ch])
    }

    fn at(&self, ch: usize) -> (T, T) {
        let scale = self.rstd[ch] * self.weight(ch);
        let shift = self.bias.as_ref().map_or(T::zero(), |b| b[ch]) - self.mean[ch] * scale;
        (scale, shift)
    }
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
            let m = T::c((n * s) as f64);
            let stats = per_channel(&x, n, c, s, |_, rows| {
                let rows: Vec<&[T]> = rows.collect();
                let mean = rows.iter().map(|r| sum_slice(r)).fold(T::zero(), |a, b| a + b) / m;
                let var = rows.iter().map(|r| sum_by(r, |v| (v - mean) * (v - mean))).fold(T::zero(), |a, b| a + b) / m;
                (mean, var)
            });
            let mean: Vec<T> = stats.iter().map(|p| p.0).collect();
            let var: Vec<T> = stats.iter().map(|p| p.1).collect();
            let rstd: Vec<T> = var.iter().map(|&v| (v + T::c(eps)).sqrt().recip()).collect();
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
            let affine = Affine::<T>::new(mean, rstd, weight, bias)?;
            let out = per_block(x.len(), s, |blk, o| {
                let (scale, shift) = affine.at(blk % c);
                for (o, &v) in o.iter_mut().zip(&x[blk * s..(blk + 1) * s]) {
                    let y = v * scale + shift;
                    o.write(if RELU && !(y > T::zero()) { T::zero() } else { y });
                }
            });
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
            let affine = Affine::<T>::new(mean, rstd, weight, bias)?;
            let (mean, rstd) = (&affine.mean, &affine.rstd);
            // The output gradient as the normalization sees it: masked by the ReLU, if any.
            let masked = |scale: T, shift: T| move |xv: T, gv: T| if RELU && !(xv * scale + shift > T::zero()) { T::zero() } else { gv };
            // Per channel: Σ g and Σ g·x̂, each summed in a fixed order.
            let sums = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let (scale, shift) = affine.at(ch);
                    let gm = masked(scale, shift);
                    let (mut sg, mut sgx) = (T::zero(), T::zero());
                    for i in 0..n {
                        let r = (i * c + ch) * s..(i * c + ch + 1) * s;
                        let (xs, gs) = (&x[r.clone()], &g[r]);
                        let (a, b) = sum_zip2(xs, gs, |xv, gv| {
                            let gv = gm(xv, gv);
                            (gv, gv * (xv - mean[ch]))
                        });
                        sg += a;
                        sgx += b * rstd[ch];
                    }
                    (sg, sgx)
                })
                .collect::<Vec<_>>();
            let m = T::c((n * s) as f64);
            let dx = per_block(x.len(), s, |blk, o| {
                let ch = blk % c;
                let (scale, shift) = affine.at(ch);
                let gm = masked(scale, shift);
                let (sg, sgx) = sums[ch];
                let k = rstd[ch] * affine.weight(ch);
                // dx = k·(g - Σg/m - x̂·Σgx̂/m) with x̂ = (x - mean)·rstd, as one multiply-add per element.
                let (a, b) = (k * sgx / m * rstd[ch], k * sg / m);
                let c0 = a * mean[ch] - b;
                let r = blk * s..(blk + 1) * s;
                for ((o, &xv), &gv) in o.iter_mut().zip(&x[r.clone()]).zip(&g[r]) {
                    o.write(k * gm(xv, gv) - a * xv + c0);
                }
            });
            let dw: Vec<T> = sums.iter().map(|p| p.1).collect();
            let db: Vec<T> = sums.iter().map(|p| p.0).collect();
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
            let rows = x.len() / d;
            let mut y = vec![T::zero(); x.len()];
            let mut stats = vec![(T::zero(), T::zero()); rows];
            let body = |((o, st), xr): ((&mut [T], &mut (T, T)), &[T])| {
                let mean = sum_slice(xr) / T::c(d as f64);
                let var = sum_by(xr, |v| (v - mean) * (v - mean)) / T::c(d as f64);
                let rstd = (var + T::c(eps)).sqrt().recip();
                for (j, (o, &v)) in o.iter_mut().zip(xr).enumerate() {
                    let xhat = (v - mean) * rstd;
                    *o = xhat * w.as_ref().map_or(T::one(), |w| w[j]) + b.as_ref().map_or(T::zero(), |b| b[j]);
                }
                *st = (mean, rstd);
            };
            if x.len() >= crate::cpu::PAR_MIN_ELEMS {
                y.par_chunks_mut(d).zip(stats.par_iter_mut()).zip(x.par_chunks(d)).for_each(body);
            } else {
                y.chunks_mut(d).zip(stats.iter_mut()).zip(x.chunks(d)).for_each(body);
            }
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
            let mut dx = vec![T::zero(); x.len()];
            let mut xhat = vec![T::zero(); x.len()];
            let dn = T::c(d as f64);
            let body = |(r, (o, xh)): (usize, (&mut [T], &mut [T]))| {
                let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                let (mut s1, mut s2) = (T::zero(), T::zero());
                for j in 0..d {
                    xh[j] = (xr[j] - mean[r]) * rstd[r];
                    let gw = gr[j] * w.as_ref().map_or(T::one(), |w| w[j]);
                    s1 += gw;
                    s2 += gw * xh[j];
                }
                for j in 0..d {
                    let gw = gr[j] * w.as_ref().map_or(T::one(), |w| w[j]);
                    o[j] = rstd[r] * (gw - s1 / dn - xh[j] * s2 / dn);
                }
            };
            if x.len() >= crate::cpu::PAR_MIN_ELEMS {
                dx.par_chunks_mut(d).zip(xhat.par_chunks_mut(d)).enumerate().for_each(body);
            } else {
                dx.chunks_mut(d).zip(xhat.chunks_mut(d)).enumerate().for_each(body);
            }
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
