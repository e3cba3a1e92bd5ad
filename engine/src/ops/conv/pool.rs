//! 2-D pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`) tensors, with the
//! backward kernels. Every `(n, c)` plane is independent: planes run in parallel and each
//! backward kernel accumulates within its own plane, in a fixed order.

use super::{out_dim, Pair};
use crate::cpu::PAR_MIN_ELEMS;
use crate::backend::{cuda_operands, Backend};
use crate::cuda::pool::PoolGeom;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::checked_numel;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, Error, Result, Tensor};
use rayon::prelude::*;

/// One output position's window along one axis: the input position of its first in-bounds
/// tap and how many taps (spaced by the dilation) are in bounds.
#[derive(Clone, Copy, Debug)]
struct AxisWin {
    start: usize,
    taps: usize,
}

fn axis_windows(n: usize, out: usize, k: usize, s: usize, p: usize, d: usize) -> Vec<AxisWin> {
    (0..out)
        .map(|o| {
            let base = o * s;
            let i0 = if p > base { (p - base).div_ceil(d) } else { 0 };
            let i1 = if n + p > base { ((n + p - 1 - base) / d + 1).min(k) } else { 0 };
            if i0 >= i1 {
                AxisWin { start: 0, taps: 0 }
            } else {
                AxisWin { start: base + i0 * d - p, taps: i1 - i0 }
            }
        })
        .collect()
}

/// A validated pooling problem: `planes` planes of `h × w` pooled to `oh × ow`.
struct PoolProblem {
    lead: Vec<usize>,
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    ys: Vec<AxisWin>,
    xs: Vec<AxisWin>,
}

impl PoolProblem {
    fn out_shape(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend([self.oh, self.ow]);
        s
    }
}

/// Splits `[..., H, W]` (rank 3 or 4) into leading dims, plane count and `(H, W)`.
fn planes_of(op: &'static str, shape: &[usize]) -> Result<(Vec<usize>, usize, usize, usize)> {
    if shape.len() != 3 && shape.len() != 4 {
        return Err(Error::invalid(op, format!("the input must be [N, C, H, W] or [C, H, W], got shape {shape:?}")));
    }
    checked_numel(op, shape)?;
    let r = shape.len();
    let lead = shape[..r - 2].to_vec();
    Ok((lead.clone(), lead.iter().product(), shape[r - 2], shape[r - 1]))
}

/// Validates a sliding-window pooling (PyTorch's rules: padding at most half the dilated
/// kernel; for max pooling no window may lie entirely in the padding).
fn pool_problem(op: &'static str, shape: &[usize], kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<PoolProblem> {
    let (lead, planes, h, w) = planes_of(op, shape)?;
    let ctx = || format!("input shape {shape:?}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}, dilation {dilation:?}");
    let mut dims = [0usize; 2];
    let mut wins = [Vec::new(), Vec::new()];
    for ax in 0..2 {
        let name = ["height", "width"][ax];
        let pick = |p: Pair| if ax == 0 { p.0 } else { p.1 };
        let (n, k, s, p, d) = ([h, w][ax], pick(kernel), pick(stride), pick(padding), pick(dilation));
        let o = out_dim(n, k, s, p, d).map_err(|e| Error::invalid(op, format!("{}: {name}: {e}", ctx())))?;
        // out_dim checked that (k - 1)·d + 1 does not overflow.
        let eff = (k - 1) * d + 1;
        if p > eff / 2 {
            return Err(Error::invalid(op, format!("{}: {name}: padding {p} must be at most half the dilated kernel size {eff}", ctx())));
        }
        let win = axis_windows(n, o, k, s, p, d);
        if let Some(i) = win.iter().position(|a| a.taps == 0) {
            return Err(Error::invalid(op, format!("{}: {name}: window {i} lies entirely in the padding", ctx())));
        }
        dims[ax] = o;
        wins[ax] = win;
    }
    let [ys, xs] = wins;
    let p = PoolProblem { lead, planes, h, w, oh: dims[0], ow: dims[1], ys, xs };
    checked_numel(op, &p.out_shape())?;
    Ok(p)
}

/// Runs `f(plane, out_plane)` over `per`-sized chunks of `out`, in parallel when large.
fn per_plane<U: Send>(out: &mut [U], per: usize, work: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    if per == 0 || out.is_empty() {
        return;
    }
    if work >= PAR_MIN_ELEMS && out.len() > per {
        out.par_chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// Errors unless `grad` is `[..lead, oh, ow]` for the problem.
fn check_grad(op: &'static str, grad: &[usize], expected: &[usize]) -> Result<()> {
    if grad != expected {
        return Err(Error::shapes_hint(op, grad, expected, "the output gradient must have the forward output's shape"));
    }
    Ok(())
}

impl Tensor {
    /// Max pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`). Returns the
    /// maxima and their i64 indices, each the flat position `h·W + w` within its `(n, c)`
    /// plane, as PyTorch does. Ties keep the first position in scan order; a NaN wins (the last
    /// one, as in PyTorch).
    pub fn max_pool2d(&self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<(Tensor, Tensor)> {
        const OP: &str = "max_pool2d";
        let p = pool_problem(OP, self.shape(), kernel, stride, padding, dilation)?;
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float(OP)?;
            let g = PoolGeom::new(self.shape(), (p.oh, p.ow), kernel, stride, padding, dilation);
            let (vals, idx) = crate::cuda::pool::max_pool2d(&x, &g, &p.out_shape())?;
            return Ok((Tensor::from_cuda_array(vals), Tensor::from_cuda_array(idx)));
        }
        let (plane, per) = (p.h * p.w, p.oh * p.ow);
        let (dh, dw) = dilation;
        let shape = p.out_shape();
        if let Some(out) = via_f32([self], |[x]| x.max_pool2d(kernel, stride, padding, dilation))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let x = self.values::<T>(OP)?;
            let mut vals = vec![T::zero(); p.planes * per];
            let mut idx = vec![0i64; p.planes * per];
            // Output columns whose windows lie wholly inside the input: for those every
            // tap is in bounds, so each tap is one pass over the whole run of them (no
            // dependency between columns, strided loads). The border columns go one by one.
            let (kw, sw, pw) = (kernel.1, stride.1, padding.1);
            let x_lo = p.xs.iter().position(|a| a.taps == kw).unwrap_or(p.ow);
            let x_hi = p.xs.iter().rposition(|a| a.taps == kw).map_or(x_lo, |i| i + 1);
            let body = |pl: usize, (ov, oi): (&mut [T], &mut [i64])| {
                let src = &x[pl * plane..(pl + 1) * plane];
                for (oy, wy) in p.ys.iter().enumerate() {
                    let (ov, oi) = (&mut ov[oy * p.ow..(oy + 1) * p.ow], &mut oi[oy * p.ow..(oy + 1) * p.ow]);
                    // Start from each window's first in-bounds tap (every window has one).
                    for (ox, wx) in p.xs.iter().enumerate() {
                        let at = wy.start * p.w + wx.start;
                        ov[ox] = src[at];
                        oi[ox] = at as i64;
                    }
                    // Taps in scan order (row, then column) per output: ties keep the first.
                    for ty in 0..wy.taps {
                        let iy = wy.start + ty * dh;
                        let line = &src[iy * p.w..(iy + 1) * p.w];
                        let base = (iy * p.w) as i64;
                        if x_lo < x_hi {
                            for tx in 0..kw {
                                let first = x_lo * sw + tx * dw - pw;
                                let run = ov[x_lo..x_hi].iter_mut().zip(oi[x_lo..x_hi].iter_mut());
                                for (t, (&v, (b, a))) in line[first..].iter().step_by(sw).zip(run).enumerate() {
                                    let take = v > *b || v.is_nan();
                                    *b = if take { v } else { *b };
                                    *a = if take { base + (first + t * sw) as i64 } else { *a };
                                }
                            }
                        }
                        for ox in (0..x_lo).chain(x_hi..p.ow) {
                            let wx = p.xs[ox];
                            for tx in 0..wx.taps {
                                let j = wx.start + tx * dw;
                                let v = line[j];
                                if v > ov[ox] || v.is_nan() {
                                    ov[ox] = v;
                                    oi[ox] = base + j as i64;
                                }
                            }
                        }
                    }
                }
            };
            if per > 0 {
                if x.len() >= PAR_MIN_ELEMS && p.planes > 1 {
                    vals.par_chunks_mut(per).zip(idx.par_chunks_mut(per)).enumerate().for_each(|(pl, o)| body(pl, o));
                } else {
                    vals.chunks_mut(per).zip(idx.chunks_mut(per)).enumerate().for_each(|(pl, o)| body(pl, o));
                }
            }
            Ok((Tensor::from_vec_unchecked(vals, &shape), Tensor::from_vec_unchecked(idx, &shape)))
        })
    }

    /// The gradient of [`max_pool2d`](Self::max_pool2d): `self` is the output gradient,
    /// `indices` the i64 indices the forward returned (same shape); each gradient value is
    /// added to its index's position in a zero tensor of `input_shape`.
    pub fn max_pool2d_backward(&self, indices: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "max_pool2d_backward";
        self.expect_float(OP)?;
        indices.expect_dtype(OP, DType::I64)?;
        let (lead, planes, h, w) = planes_of(OP, input_shape)?;
        if indices.shape() != self.shape() {
            return Err(Error::shapes_hint(OP, self.shape(), indices.shape(), "the output gradient and the indices must have one shape"));
        }
        if self.rank() != input_shape.len() || self.shape()[..lead.len()] != lead[..] {
            return Err(Error::shapes_hint(
                OP,
                self.shape(),
                input_shape,
                "the output gradient and the input must share their leading (N, C) dims",
            ));
        }
        if let Backend::Cuda(_) = self.backend() {
            let [grad, indices] = cuda_operands(OP, [self, indices])?;
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::max_pool2d_backward(&grad, &indices, input_shape)?));
        }
        let per: usize = self.shape()[lead.len()..].iter().product();
        let plane = h * w;
        if let Some(out) = via_f32([self, indices], |[g, i]| g.max_pool2d_backward(&i, input_shape))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (g, idx) = (self.values::<T>(OP)?, indices.values::<i64>(OP)?);
            // Check every index first, so the kernel below cannot fail half way.
            if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as u64 >= plane as u64) {
                return Err(Error::invalid(
                    OP,
                    format!("index {bad} is out of range for an input plane of {h}x{w} = {plane} elements (input shape {input_shape:?})"),
                ));
            }
            let mut out = vec![T::zero(); planes * plane];
            per_plane(&mut out, plane, g.len(), |pl, o| {
                for (&gv, &i) in g[pl * per..(pl + 1) * per].iter().zip(&idx[pl * per..(pl + 1) * per]) {
                    o[i as usize] += gv;
                }
            });
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }

    /// Average pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`). With
    /// `count_include_pad` every window divides by `kh·kw`; without, by its in-bounds count.
    pub fn avg_pool2d(&self, kernel: Pair, stride: Pair, padding: Pair, count_include_pad: bool) -> Result<Tensor> {
        const OP: &str = "avg_pool2d";
        let p = pool_problem(OP, self.shape(), kernel, stride, padding, (1, 1))?;
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float(OP)?;
            let g = PoolGeom::new(self.shape(), (p.oh, p.ow), kernel, stride, padding, (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::avg_pool2d(&x, &g, count_include_pad, &p.out_shape())?));
        }
        let (plane, per) = (p.h * p.w, p.oh * p.ow);
        let area = kernel.0 * kernel.1;
        if let Some(out) = via_f32([self], |[x]| x.avg_pool2d(kernel, stride, padding, count_include_pad))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let x = self.values::<T>(OP)?;
            let mut out = vec![T::zero(); p.planes * per];
            per_plane(&mut out, per, x.len(), |pl, o| {
                let src = &x[pl * plane..(pl + 1) * plane];
                for (oy, wy) in p.ys.iter().enumerate() {
                    for (ox, wx) in p.xs.iter().enumerate() {
                        let mut s = T::zero();
                        for y in wy.start..wy.start + wy.taps {
                            s += crate::ops::reduce::sum_slice(&src[y * p.w + wx.start..y * p.w + wx.start + wx.taps]);
                        }
                        let div = if count_include_pad { area } else { wy.taps * wx.taps };
                        o[oy * p.ow + ox] = s / T::c(div as f64);
                    }
                }
            });
            Ok(Tensor::from_vec_unchecked(out, &p.out_shape()))
        })
    }

    /// The gradient of [`avg_pool2d`](Self::avg_pool2d): `self` is the output gradient; each
    /// window spreads its gradient over its in-bounds inputs, divided as in the forward.
    pub fn avg_pool2d_backward(
        &self,
        input_shape: &[usize],
        kernel: Pair,
        stride: Pair,
        padding: Pair,
        count_include_pad: bool,
    ) -> Result<Tensor> {
        const OP: &str = "avg_pool2d_backward";
        self.expect_float(OP)?;
        let p = pool_problem(OP, input_shape, kernel, stride, padding, (1, 1))?;
        check_grad(OP, self.shape(), &p.out_shape())?;
        if let Backend::Cuda(x) = self.backend() {
            let g = PoolGeom::new(input_shape, (p.oh, p.ow), kernel, stride, padding, (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::avg_pool2d_backward(&x, &g, count_include_pad, input_shape)?));
        }
        let (plane, per) = (p.h * p.w, p.oh * p.ow);
        let area = kernel.0 * kernel.1;
        if let Some(out) = via_f32([self], |[g]| g.avg_pool2d_backward(input_shape, kernel, stride, padding, count_include_pad))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let g = self.values::<T>(OP)?;
            let planes_len = p.planes * plane;
            let mut out = vec![T::zero(); planes_len];
            per_plane(&mut out, plane, g.len().max(planes_len), |pl, o| {
                let gp = &g[pl * per..(pl + 1) * per];
                for (oy, wy) in p.ys.iter().enumerate() {
                    for (ox, wx) in p.xs.iter().enumerate() {
                        let div = if count_include_pad { area } else { wy.taps * wx.taps };
                        let v = gp[oy * p.ow + ox] / T::c(div as f64);
                        for y in wy.start..wy.start + wy.taps {
                            o[y * p.w + wx.start..y * p.w + wx.start + wx.taps].iter_mut().for_each(|t| *t += v);
                        }
                    }
                }
            });
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }

    /// Adaptive average pooling to `output = (oh, ow)` over the last two dims of
    /// `[N, C, H, W]` (or `[C, H, W]`): output row `i` averages input rows
    /// `⌊i·H/oh⌋ .. ⌈(i+1)·H/oh⌉`, as PyTorch does (bins may overlap).
    pub fn adaptive_avg_pool2d(&self, output: Pair) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d";
        let (p, shape) = adaptive_problem(OP, self.shape(), output)?;
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float(OP)?;
            let g = PoolGeom::new(self.shape(), output, (1, 1), (1, 1), (0, 0), (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::adaptive_avg_pool2d(&x, &g, &shape)?));
        }
        let plane = p.h * p.w;
        let per = p.oh * p.ow;
        if let Some(out) = via_f32([self], |[x]| x.adaptive_avg_pool2d(output))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let x = self.values::<T>(OP)?;
            let mut out = vec![T::zero(); p.planes * per];
            per_plane(&mut out, per, x.len(), |pl, o| {
                let src = &x[pl * plane..(pl + 1) * plane];
                for (oy, wy) in p.ys.iter().enumerate() {
                    for (ox, wx) in p.xs.iter().enumerate() {
                        let mut s = T::zero();
                        for y in wy.start..wy.start + wy.taps {
                            s += crate::ops::reduce::sum_slice(&src[y * p.w + wx.start..y * p.w + wx.start + wx.taps]);
                        }
                        o[oy * p.ow + ox] = s / T::c((wy.taps * wx.taps) as f64);
                    }
                }
            });
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }

    /// The gradient of [`adaptive_avg_pool2d`](Self::adaptive_avg_pool2d): `self` is the
    /// output gradient `[..., oh, ow]`; returns `input_shape`.
    pub fn adaptive_avg_pool2d_backward(&self, input_shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d_backward";
        self.expect_float(OP)?;
        if self.rank() < 2 {
            return Err(Error::shapes_hint(OP, self.shape(), input_shape, "the output gradient must be [..., oh, ow]"));
        }
        let output = (self.shape()[self.rank() - 2], self.shape()[self.rank() - 1]);
        let (p, shape) = adaptive_problem(OP, input_shape, output)?;
        check_grad(OP, self.shape(), &shape)?;
        if let Backend::Cuda(x) = self.backend() {
            let g = PoolGeom::new(input_shape, output, (1, 1), (1, 1), (0, 0), (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::adaptive_avg_pool2d_backward(&x, &g, input_shape)?));
        }
        let plane = p.h * p.w;
        let per = p.oh * p.ow;
        if let Some(out) = via_f32([self], |[g]| g.adaptive_avg_pool2d_backward(input_shape))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let g = self.values::<T>(OP)?;
            let planes_len = p.planes * plane;
            let mut out = vec![T::zero(); planes_len];
            per_plane(&mut out, plane, g.len().max(planes_len), |pl, o| {
                let gp = &g[pl * per..(pl + 1) * per];
                for (oy, wy) in p.ys.iter().enumerate() {
                    for (ox, wx) in p.xs.iter().enumerate() {
                        let v = gp[oy * p.ow + ox] / T::c((wy.taps * wx.taps) as f64);
                        for y in wy.start..wy.start + wy.taps {
                            o[y * p.w + wx.start..y * p.w + wx.start + wx.taps].iter_mut().for_each(|t| *t += v);
                        }
                    }
                }
            });
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }
}

/// Adaptive bins along one axis: `⌊i·n/out⌋ .. ⌈(i+1)·n/out⌉` (in u128, so no overflow).
fn adaptive_windows(n: usize, out: usize) -> Vec<AxisWin> {
    let (n128, o128) = (n as u128, out as u128);
    (0..out as u128)
        .map(|i| {
            let start = (i * n128 / o128) as usize;
            let end = ((i + 1) * n128).div_ceil(o128) as usize;
            AxisWin { start, taps: end - start }
        })
        .collect()
}

fn adaptive_problem(op: &'static str, shape: &[usize], (oh, ow): Pair) -> Result<(PoolProblem, Vec<usize>)> {
    let (lead, planes, h, w) = planes_of(op, shape)?;
    if (h == 0 && oh > 0) || (w == 0 && ow > 0) {
        return Err(Error::invalid(op, format!("cannot pool the empty input shape {shape:?} to {oh}x{ow}")));
    }
    let mut out_shape = lead.clone();
    out_shape.extend([oh, ow]);
    checked_numel(op, &out_shape)?;
    let p = PoolProblem { lead, planes, h, w, oh, ow, ys: adaptive_windows(h, oh), xs: adaptive_windows(w, ow) };
    Ok((p, out_shape))
}
