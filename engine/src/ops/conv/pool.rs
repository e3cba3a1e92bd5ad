//! 2-D pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`) tensors, with the
//! backward ops: the windows are validated here (PyTorch's rules), then each op runs on its
//! tensor's backend (cpu/pool.rs, cuda/pool.rs).

use super::{out_dim, Pair};
use crate::backend::{cuda_operands, Backend};
use crate::cpu;
use crate::cpu::pool::{adaptive_windows, axis_windows, PlaneWindows};
use crate::cuda::pool::PoolGeom;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::checked_numel;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, Error, Result, Tensor};

/// A validated pooling problem: `planes` planes of `h × w` pooled to `oh × ow`.
struct PoolProblem {
    lead: Vec<usize>,
    win: PlaneWindows,
}

impl PoolProblem {
    fn out_shape(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend([self.win.oh, self.win.ow]);
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
    let p = PoolProblem { lead, win: PlaneWindows { planes, h, w, oh: dims[0], ow: dims[1], ys, xs } };
    checked_numel(op, &p.out_shape())?;
    Ok(p)
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
            let g = PoolGeom::new(self.shape(), (p.win.oh, p.win.ow), kernel, stride, padding, dilation);
            let (vals, idx) = crate::cuda::pool::max_pool2d(&x, &g, &p.out_shape())?;
            return Ok((Tensor::from_cuda_array(vals), Tensor::from_cuda_array(idx)));
        }
        let shape = p.out_shape();
        if let Some(out) = via_f32([self], |[x]| x.max_pool2d(kernel, stride, padding, dilation))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (vals, idx) = cpu::pool::max_pool2d(&self.values::<T>(OP)?, &p.win, kernel, stride, padding, dilation);
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
            Ok(Tensor::from_vec_unchecked(cpu::pool::max_pool2d_backward(&g, &idx, planes, per, plane), input_shape))
        })
    }

    /// Average pooling over the last two dims of `[N, C, H, W]` (or `[C, H, W]`). With
    /// `count_include_pad` every window divides by `kh·kw`; without, by its in-bounds count.
    pub fn avg_pool2d(&self, kernel: Pair, stride: Pair, padding: Pair, count_include_pad: bool) -> Result<Tensor> {
        const OP: &str = "avg_pool2d";
        let p = pool_problem(OP, self.shape(), kernel, stride, padding, (1, 1))?;
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float(OP)?;
            let g = PoolGeom::new(self.shape(), (p.win.oh, p.win.ow), kernel, stride, padding, (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::avg_pool2d(&x, &g, count_include_pad, &p.out_shape())?));
        }
        let area = count_include_pad.then_some(kernel.0 * kernel.1);
        if let Some(out) = via_f32([self], |[x]| x.avg_pool2d(kernel, stride, padding, count_include_pad))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let out = cpu::pool::avg_pool2d(&self.values::<T>(OP)?, &p.win, area);
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
            let g = PoolGeom::new(input_shape, (p.win.oh, p.win.ow), kernel, stride, padding, (1, 1));
            return Ok(Tensor::from_cuda_array(crate::cuda::pool::avg_pool2d_backward(&x, &g, count_include_pad, input_shape)?));
        }
        let area = count_include_pad.then_some(kernel.0 * kernel.1);
        if let Some(out) = via_f32([self], |[g]| g.avg_pool2d_backward(input_shape, kernel, stride, padding, count_include_pad))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let out = cpu::pool::avg_pool2d_backward(&self.values::<T>(OP)?, &p.win, area);
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
        if let Some(out) = via_f32([self], |[x]| x.adaptive_avg_pool2d(output))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let out = cpu::pool::avg_pool2d(&self.values::<T>(OP)?, &p.win, None);
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
        if let Some(out) = via_f32([self], |[g]| g.adaptive_avg_pool2d_backward(input_shape))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let out = cpu::pool::avg_pool2d_backward(&self.values::<T>(OP)?, &p.win, None);
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }
}

fn adaptive_problem(op: &'static str, shape: &[usize], (oh, ow): Pair) -> Result<(PoolProblem, Vec<usize>)> {
    let (lead, planes, h, w) = planes_of(op, shape)?;
    if (h == 0 && oh > 0) || (w == 0 && ow > 0) {
        return Err(Error::invalid(op, format!("cannot pool the empty input shape {shape:?} to {oh}x{ow}")));
    }
    let mut out_shape = lead.clone();
    out_shape.extend([oh, ow]);
    checked_numel(op, &out_shape)?;
    let p = PoolProblem { lead, win: PlaneWindows { planes, h, w, oh, ow, ys: adaptive_windows(h, oh), xs: adaptive_windows(w, ow) } };
    Ok((p, out_shape))
}
