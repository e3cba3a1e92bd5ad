//! Views: ops that only change the layout and share the storage (reshape copies only when
//! the layout cannot express the new shape).

use crate::backend::Backend;
use crate::layout::{checked_numel, normalize_axis, Layout};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// The same elements with another shape. One dim may be `-1` (inferred). A view when the
    /// layout allows, else a contiguous copy.
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let shape = infer_shape(shape, self.numel(), self.shape())?;
        match self.layout().reshape_strides(&shape) {
            Some(strides) => Ok(self.with_layout(Layout { shape, strides, offset: self.layout().offset })),
            None => self.contiguous()?.reshape_to(&shape),
        }
    }

    /// [`reshape`](Self::reshape) with an explicit `usize` shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Tensor> {
        let s: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
        self.reshape(&s)
    }

    /// Dims reordered: output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout().permute("permute", perm)?))
    }

    /// Two dims swapped.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (normalize_axis("transpose", a, self.shape())?, normalize_axis("transpose", b, self.shape())?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The matrix transpose of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", format!("needs at least 2 dims, the shape is {:?}", self.shape())));
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` starting at `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = normalize_axis("narrow", axis, self.shape())?;
        let n = self.shape()[a];
        if start.checked_add(len).is_none_or(|e| e > n) {
            return Err(Error::invalid(
                "narrow",
                format!("range {start}..{} is outside axis {axis} of size {n} (shape {:?})", start.saturating_add(len), self.shape()),
            ));
        }
        let mut l = self.layout().clone();
        l.shape[a] = len;
        // An empty view keeps the offset: moving it could leave the (empty) storage.
        if len > 0 && self.numel() > 0 {
            l.offset = (l.offset as isize + start as isize * l.strides[a]) as usize;
        }
        Ok(self.with_layout(l))
    }

    /// Elements `start..end` with a positive `step` along `axis` (a strided view).
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        if step == 0 {
            return Err(Error::invalid("slice", "step must be positive"));
        }
        let a = normalize_axis("slice", axis, self.shape())?;
        let end = end.min(self.shape()[a]);
        let len = if end > start { (end - start).div_ceil(step) } else { 0 };
        let mut l = self.narrow(axis, start.min(end), end.saturating_sub(start))?.layout().clone();
        l.shape[a] = len;
        l.strides[a] *= step as isize;
        Ok(self.with_layout(l))
    }

    /// Index `i` of `axis`, removing that axis.
    pub fn select(&self, axis: isize, i: usize) -> Result<Tensor> {
        let a = normalize_axis("select", axis, self.shape())?;
        if i >= self.shape()[a] {
            return Err(Error::invalid(
                "select",
                format!("index {i} is outside axis {axis} of size {} (shape {:?})", self.shape()[a], self.shape()),
            ));
        }
        self.narrow(axis, i, 1)?.squeeze_axis(a as isize)
    }

    /// A view broadcast to `shape` (size-1 and missing leading dims get stride 0).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        let out = crate::layout::broadcast_shapes("expand", self.shape(), shape)?;
        if out != shape {
            return Err(Error::shapes_hint("expand", self.shape(), shape, "the first must broadcast to the second"));
        }
        Ok(self.with_layout(Layout {
            shape: shape.to_vec(),
            strides: self.layout().broadcast_strides(shape),
            offset: self.layout().offset,
        }))
    }

    /// A view with `axes` reversed (negative strides).
    pub fn flip(&self, axes: &[isize]) -> Result<Tensor> {
        let mut l = self.layout().clone();
        for &ax in axes {
            let a = normalize_axis("flip", ax, self.shape())?;
            if l.shape[a] > 1 && self.numel() > 0 {
                l.offset = (l.offset as isize + (l.shape[a] as isize - 1) * l.strides[a]) as usize;
                l.strides[a] = -l.strides[a];
            }
        }
        Ok(self.with_layout(l))
    }

    /// A new size-1 dim at `axis` (in `0..=rank`, negative counts from the end).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank + 1 } else { axis };
        if a < 0 || a > rank {
            return Err(Error::AxisOutOfRange { op: "unsqueeze", axis, rank: self.rank(), shape: self.shape().to_vec() });
        }
        let mut l = self.layout().clone();
        let a = a as usize;
        let stride = if a < l.rank() { l.strides[a] * l.shape[a] as isize } else { 1 };
        l.shape.insert(a, 1);
        l.strides.insert(a, stride);
        Ok(self.with_layout(l))
    }

    /// Removes a size-1 dim.
    pub fn squeeze_axis(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("squeeze", axis, self.shape())?;
        if self.shape()[a] != 1 {
            return Err(Error::invalid("squeeze", format!("axis {axis} has size {}, not 1 (shape {:?})", self.shape()[a], self.shape())));
        }
        let mut l = self.layout().clone();
        l.shape.remove(a);
        l.strides.remove(a);
        Ok(self.with_layout(l))
    }

    /// Dims `start..=end` merged into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let (s, e) = (normalize_axis("flatten", start, self.shape())?, normalize_axis("flatten", end, self.shape())?);
        if s > e {
            return Err(Error::invalid("flatten", format!("start axis {start} comes after end axis {end}")));
        }
        let mut shape: Vec<isize> = self.shape()[..s].iter().map(|&d| d as isize).collect();
        shape.push(self.shape()[s..=e].iter().product::<usize>() as isize);
        shape.extend(self.shape()[e + 1..].iter().map(|&d| d as isize));
        self.reshape(&shape)
    }

    /// The view seen through a broadcast to `shape`, then made contiguous.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        self.expand(shape)?.contiguous()
    }
}

/// Resolves one `-1` in a requested shape and checks the element count.
fn infer_shape(shape: &[isize], numel: usize, from: &[usize]) -> Result<Vec<usize>> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.replace(i).is_some() {
                return Err(Error::invalid("reshape", format!("only one dim may be -1, got {shape:?}")));
            }
        } else if d < 0 {
            return Err(Error::invalid("reshape", format!("negative dim {d} in {shape:?}")));
        } else {
            known = known
                .checked_mul(d as usize)
                .ok_or_else(|| Error::ShapeOverflow { op: "reshape", shape: shape.iter().map(|&d| d.max(0) as usize).collect() })?;
        }
    }
    let mut out: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(Error::invalid("reshape", format!("cannot infer -1 in {shape:?} for {numel} elements (shape {from:?})")));
        }
        out[i] = numel / known;
    }
    let n = checked_numel("reshape", &out)?;
    if n != numel {
        return Err(Error::shapes_hint("reshape", from, &out, format!("{numel} elements cannot take shape {out:?}")));
    }
    Ok(out)
}

impl Tensor {
    /// A zero tensor of `full_shape` with `self` written into the view that `view` selects
    /// from it: the backward of narrow, slice and select. `view` maps a contiguous
    /// `full_shape` tensor to a view of `self`'s shape.
    pub fn scatter_into_zeros(&self, full_shape: &[usize], view: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        crate::with_any!(self.dtype(), |T| {
            let n = checked_numel("scatter_into_zeros", full_shape)?;
            // An empty host tensor seen as `full_shape`: `view` only reads its layout.
            let probe = Tensor::from_vec_unchecked(Vec::<T>::new(), &[0]).with_layout(Layout::contiguous(full_shape));
            let target = view(&probe)?;
            if target.shape() != self.shape() {
                return Err(Error::shapes("scatter_into_zeros", target.shape(), self.shape()));
            }
            match self.backend() {
                Backend::Cuda(x) => Ok(Tensor::from_cuda_array(crate::cuda::shape::scatter_into_zeros(&x, full_shape, target.layout())?)),
                Backend::Cpu => {
                    let src = self.values::<T>("scatter_into_zeros")?;
                    Ok(Tensor::from_vec_unchecked(crate::cpu::shape::scatter_into_zeros(&src, n, target.layout()), full_shape))
                }
            }
        })
    }
}

impl Tensor {
    /// The whole underlying storage as a 1-D contiguous tensor (shared, not copied), beside
    /// this tensor's layout over it: `storage_view()?.0.as_strided(..layout..)` is `self`.
    /// For tools that must reproduce a view exactly, on another device for instance.
    pub fn storage_view(&self) -> (Tensor, Layout) {
        (self.with_layout(Layout::contiguous(&[self.storage_len()])), self.layout().clone())
    }

    /// A view of this tensor's storage with any shape, strides and offset (in elements,
    /// relative to the storage, as PyTorch's `as_strided`); every position it reaches must lie
    /// inside the storage.
    pub fn as_strided(&self, shape: &[usize], strides: &[isize], offset: usize) -> Result<Tensor> {
        checked_numel("as_strided", shape)?;
        if shape.len() != strides.len() {
            return Err(Error::invalid("as_strided", format!("shape {shape:?} and strides {strides:?} differ in rank")));
        }
        let layout = Layout { shape: shape.to_vec(), strides: strides.to_vec(), offset };
        let (lo, hi) = layout.span();
        let len = self.storage_len() as isize;
        if lo < 0 || hi > len.max(lo) || (layout.numel() > 0 && hi > len) {
            return Err(Error::invalid(
                "as_strided",
                format!("shape {shape:?}, strides {strides:?}, offset {offset} reach [{lo}, {hi}) outside a storage of {len} elements"),
            ));
        }
        Ok(self.with_layout(layout))
    }
}
