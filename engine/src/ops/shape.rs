//! Layout ops that build or split tensors: `cat`, `stack`, `split`, `chunk` (views), `pad`
//! (constant or reflect) with its backward, `rot90` (a view), `repeat` with its backward.

use crate::backend::{cuda_views, Backend};
use crate::cpu;
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
pub use crate::kinds::PadMode;
use crate::layout::{checked_numel, normalize_axis, Layout};
use crate::ops::widen::via_f32;
use crate::{with_any, with_float, Error, Result, Tensor};

impl Tensor {
    /// Concatenates along `axis`. All tensors share dtype, device and rank, and their shapes
    /// agree except along `axis`.
    pub fn cat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "cat";
        let first = *tensors.first().ok_or_else(|| Error::invalid(OP, "needs at least one tensor"))?;
        let a = normalize_axis(OP, axis, first.shape())?;
        let mut total = 0usize;
        for (i, t) in tensors.iter().enumerate() {
            first.same_kind(OP, t)?;
            let ok = t.rank() == first.rank() && (0..first.rank()).all(|d| d == a || t.shape()[d] == first.shape()[d]);
            if !ok {
                return Err(Error::shapes_hint(
                    OP,
                    first.shape(),
                    t.shape(),
                    format!("tensor {i} must match tensor 0 on every axis but {axis}"),
                ));
            }
            total = total.checked_add(t.shape()[a]).ok_or_else(|| Error::invalid(OP, format!("the length of axis {axis} overflows")))?;
        }
        let mut shape = first.shape().to_vec();
        shape[a] = total;
        checked_numel(OP, &shape)?;
        match first.backend() {
            Backend::Cuda(_) => {
                let views = cuda_views(OP, tensors)?;
                Ok(Tensor::from_cuda_array(cuda::shape::cat(&views.iter().collect::<Vec<_>>(), a, &shape)?))
            }
            Backend::Cpu => with_any!(first.dtype(), |T| {
                let parts: Vec<_> = tensors.iter().map(|t| t.values::<T>(OP)).collect::<Result<_>>()?;
                let parts: Vec<&[T]> = parts.iter().map(|p| &p[..]).collect();
                let lens: Vec<usize> = tensors.iter().map(|t| t.shape()[a]).collect();
                Ok(Tensor::from_vec_unchecked(cpu::shape::cat(&parts, &lens, &shape, a), &shape))
            }),
        }
    }

    /// Stacks equal-shaped tensors along a new `axis` (in `0..=rank`, negative counts from
    /// the end).
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        const OP: &str = "stack";
        let first = *tensors.first().ok_or_else(|| Error::invalid(OP, "needs at least one tensor"))?;
        let rank = first.rank() as isize;
        let a = if axis < 0 { axis + rank + 1 } else { axis };
        if a < 0 || a > rank {
            return Err(Error::AxisOutOfRange { op: OP, axis, rank: first.rank() + 1, shape: first.shape().to_vec() });
        }
        let mut views = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if t.shape() != first.shape() {
                return Err(Error::shapes_hint(OP, first.shape(), t.shape(), format!("tensor {i} must have tensor 0's shape")));
            }
            views.push(t.unsqueeze(a)?);
        }
        let refs: Vec<&Tensor> = views.iter().collect();
        Tensor::cat(&refs, a)
    }

    /// Views of consecutive pieces of `axis` with the given lengths, which must add up to
    /// the axis length.
    pub fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
        const OP: &str = "split";
        let a = normalize_axis(OP, axis, self.shape())?;
        let sum = sizes.iter().try_fold(0usize, |s, &x| s.checked_add(x));
        if sum != Some(self.shape()[a]) {
            return Err(Error::invalid(
                OP,
                format!("sizes {sizes:?} do not add up to the length {} of axis {axis} (shape {:?})", self.shape()[a], self.shape()),
            ));
        }
        let mut at = 0;
        sizes
            .iter()
            .map(|&s| {
                let v = self.narrow(a as isize, at, s);
                at += s;
                v
            })
            .collect()
    }

    /// `n` views along `axis` of `⌈len / n⌉` entries each, the last one shorter, as PyTorch's
    /// `chunk` (fewer than `n` when the axis is short; one empty view for an empty axis).
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Tensor>> {
        const OP: &str = "chunk";
        let a = normalize_axis(OP, axis, self.shape())?;
        if n == 0 {
            return Err(Error::invalid(OP, format!("the number of chunks must be positive (shape {:?})", self.shape())));
        }
        let len = self.shape()[a];
        if len == 0 {
            return Ok(vec![self.clone()]);
        }
        let size = len.div_ceil(n);
        (0..len.div_ceil(size)).map(|i| self.narrow(a as isize, i * size, size.min(len - i * size))).collect()
    }

    /// Pads the trailing `pads.len()` axes: `pads[i] = (before, after)` applies to axis
    /// `rank − pads.len() + i`, in axis order (so `pads` may list every axis). Note this is
    /// the natural axis order, not `F.pad`'s last-axis-first flat list.
    pub fn pad(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad";
        let (shape, full) = pad_shape(OP, self.shape(), pads, mode)?;
        checked_numel(OP, &shape)?;
        match self.backend() {
            Backend::Cuda(x) => Ok(Tensor::from_cuda_array(cuda::shape::pad(&x, &shape, &full, mode)?)),
            Backend::Cpu => with_any!(self.dtype(), |T| {
                let out = cpu::shape::pad(&self.values::<T>(OP)?, self.shape(), &shape, &full, mode);
                Ok(Tensor::from_vec_unchecked(out, &shape))
            }),
        }
    }

    /// The backward of [`pad`](Self::pad): `self` is the gradient of the padded tensor;
    /// returns the gradient of the unpadded input (the interior for `Constant`; for
    /// `Reflect`, each border gradient is added to the entry it mirrors). Float dtypes.
    pub fn pad_backward(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad_backward";
        self.expect_float(OP)?;
        if let Some(out) = via_f32([self], |[g]| g.pad_backward(pads, mode))? {
            return Ok(out);
        }
        if pads.len() > self.rank() {
            return Err(Error::invalid(
                OP,
                format!("{} paddings given for the {} axes of shape {:?}", pads.len(), self.rank(), self.shape()),
            ));
        }
        let lead = self.rank() - pads.len();
        let mut in_shape = self.shape().to_vec();
        for (i, &(b, e)) in pads.iter().enumerate() {
            let d = lead + i;
            let len = self.shape()[d];
            in_shape[d] = b.checked_add(e).and_then(|p| len.checked_sub(p)).ok_or_else(|| {
                Error::invalid(OP, format!("padding ({b}, {e}) is larger than axis {d} of the gradient (shape {:?})", self.shape()))
            })?;
        }
        // Validate against the forward's rules (e.g. reflect needs padding < length).
        pad_shape(OP, &in_shape, pads, mode)?;
        match mode {
            PadMode::Constant(_) => {
                let mut g = self.clone();
                for (i, &(b, _)) in pads.iter().enumerate() {
                    g = g.narrow((lead + i) as isize, b, in_shape[lead + i])?;
                }
                g.contiguous()
            }
            PadMode::Reflect => match self.backend() {
                Backend::Cuda(_) => {
                    // One kernel per padded axis, folding the border back into the interior.
                    let mut cur = self.contiguous()?;
                    for (i, &(before, _)) in pads.iter().enumerate() {
                        let d = lead + i;
                        if in_shape[d] != cur.shape()[d] {
                            let g = cur.cuda_operand(OP)?;
                            cur = Tensor::from_cuda_array(cuda::shape::pad_backward_reflect_axis(&g, d, before, in_shape[d])?);
                        }
                    }
                    Ok(cur)
                }
                Backend::Cpu => with_float!(self.dtype(), OP, |T| {
                    let g = self.values::<T>(OP)?.into_owned();
                    let out = cpu::shape::pad_backward_reflect(g, self.shape(), &in_shape, pads, lead);
                    Ok(Tensor::from_vec_unchecked(out, &in_shape))
                }),
            },
        }
    }

    /// Rotates by `k` quarter turns in the plane of `axes`, from the first axis towards the
    /// second (PyTorch's `rot90`); a view (flip + transpose). Negative `k` turns the other way.
    pub fn rot90(&self, k: i64, axes: (isize, isize)) -> Result<Tensor> {
        const OP: &str = "rot90";
        if self.rank() < 2 {
            return Err(Error::invalid(OP, format!("needs at least 2 dims, the shape is {:?}", self.shape())));
        }
        let (a0, a1) = (normalize_axis(OP, axes.0, self.shape())?, normalize_axis(OP, axes.1, self.shape())?);
        if a0 == a1 {
            return Err(Error::invalid(OP, format!("the two axes must differ, got {axes:?} (shape {:?})", self.shape())));
        }
        let (a0, a1) = (a0 as isize, a1 as isize);
        match k.rem_euclid(4) {
            1 => self.flip(&[a1])?.transpose(a0, a1),
            2 => self.flip(&[a0, a1]),
            3 => self.flip(&[a0])?.transpose(a0, a1),
            _ => Ok(self.clone()),
        }
    }

    /// Tiles the tensor `reps[i]` times along axis `i` (PyTorch's `repeat`): `reps` may be
    /// longer than the rank (new leading axes), not shorter.
    pub fn repeat(&self, reps: &[usize]) -> Result<Tensor> {
        const OP: &str = "repeat";
        if reps.len() < self.rank() {
            return Err(Error::invalid(
                OP,
                format!("{} repeats given for the {} axes of shape {:?}", reps.len(), self.rank(), self.shape()),
            ));
        }
        let lead = reps.len() - self.rank();
        let l = self.layout();
        let mut shape = Vec::with_capacity(reps.len());
        // A 2·R-dim view [r0, s0, r1, s1, ...] with stride 0 on each repeat axis.
        let mut vshape = Vec::with_capacity(2 * reps.len());
        let mut vstrides = Vec::with_capacity(2 * reps.len());
        for (d, &r) in reps.iter().enumerate() {
            let (s, st) = if d < lead { (1, 0) } else { (l.shape[d - lead], l.strides[d - lead]) };
            shape.push(r.checked_mul(s).ok_or_else(|| Error::ShapeOverflow { op: OP, shape: self.shape().to_vec() })?);
            vshape.extend([r, s]);
            vstrides.extend([0, st]);
        }
        checked_numel(OP, &shape)?;
        match self.backend() {
            Backend::Cuda(x) => Ok(Tensor::from_cuda_array(cuda::shape::tile(&x, lead, &shape)?)),
            Backend::Cpu => {
                // Reading the stride-0 view in order is the tiling.
                let view = self.with_layout(Layout { shape: vshape, strides: vstrides, offset: l.offset });
                with_any!(self.dtype(), |T| Ok(Tensor::from_vec_unchecked(view.values::<T>(OP)?.into_owned(), &shape)))
            }
        }
    }

    /// The backward of [`repeat`](Self::repeat): `self` is the gradient of the tiled tensor;
    /// returns `input_shape`, each entry the sum of its tiles' gradients.
    pub fn repeat_backward(&self, input_shape: &[usize]) -> Result<Tensor> {
        const OP: &str = "repeat_backward";
        self.expect_float(OP)?;
        let bad =
            || Error::shapes_hint(OP, self.shape(), input_shape, "the gradient must tile the input shape a whole number of times per axis");
        if self.rank() < input_shape.len() {
            return Err(bad());
        }
        let lead = self.rank() - input_shape.len();
        let mut split = Vec::with_capacity(2 * self.rank());
        let mut axes = Vec::with_capacity(self.rank());
        for (d, &g) in self.shape().iter().enumerate() {
            let s = if d < lead { 1 } else { input_shape[d - lead] };
            if s == 0 {
                if g != 0 {
                    return Err(bad());
                }
                // Empty input: its gradient is empty too.
                return Tensor::full_on(input_shape, 0.0, self.dtype(), self.device());
            }
            if g % s != 0 {
                return Err(bad());
            }
            axes.push(split.len() as isize);
            split.extend([g / s, s]);
        }
        let tiles = self.reshape_to(&split)?;
        tiles.sum(&axes, false)?.reshape_to(input_shape)
    }
}

/// A padded shape and the `(before, after)` of every axis.
type PaddedShape = (Vec<usize>, Vec<(usize, usize)>);

/// The padded shape and the `(before, after)` of every axis, checked.
fn pad_shape(op: &'static str, shape: &[usize], pads: &[(usize, usize)], mode: PadMode) -> Result<PaddedShape> {
    if pads.len() > shape.len() {
        return Err(Error::invalid(op, format!("{} paddings given for the {} axes of shape {shape:?}", pads.len(), shape.len())));
    }
    let lead = shape.len() - pads.len();
    let full: Vec<(usize, usize)> = (0..shape.len()).map(|d| if d < lead { (0, 0) } else { pads[d - lead] }).collect();
    let mut out = Vec::with_capacity(shape.len());
    for (d, (&n, &(b, e))) in shape.iter().zip(&full).enumerate() {
        if mode == PadMode::Reflect && (b >= n || e >= n) && (b, e) != (0, 0) {
            return Err(Error::invalid(
                op,
                format!("reflect padding ({b}, {e}) must be smaller than axis {d} of length {n} (shape {shape:?})"),
            ));
        }
        out.push(n.checked_add(b).and_then(|x| x.checked_add(e)).ok_or_else(|| Error::ShapeOverflow { op, shape: shape.to_vec() })?);
    }
    Ok((out, full))
}
