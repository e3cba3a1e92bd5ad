//! Indexing with i64 index tensors and u8 masks: `index_select` / `index_add`, `gather` /
//! `scatter_add` (each pair is forward and backward of each other), `masked_fill` and
//! `one_hot`. Indices must lie in `0..size` (negative indices are an error); the error names
//! the offending index, the axis size and the shapes. Scatters accumulate in a fixed order,
//! so results do not depend on the thread count.

use crate::backend::{cuda_operands, Backend};
use crate::cpu;
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::{broadcast_shapes, checked_numel, normalize_axis};
use crate::ops::widen::via_f32;
use crate::{with_any, with_float, DType, Error, Result, Tensor};
use std::borrow::Cow;

/// The values of an i64 index tensor, checked to lie in `0..size`.
fn checked_indices<'a>(op: &'static str, index: &'a Tensor, size: usize, what: impl FnOnce() -> String) -> Result<Cow<'a, [i64]>> {
    index.expect_dtype(op, DType::I64)?;
    let idx = index.values::<i64>(op)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as u64 >= size as u64) {
        return Err(out_of_range(op, bad, size, what()));
    }
    Ok(idx)
}

/// [`checked_indices`] for a GPU index, copied to the host (1-D indices, which are short).
fn checked_host_indices(op: &'static str, index: &Tensor, size: usize, what: impl FnOnce() -> String) -> Result<Vec<i64>> {
    index.expect_dtype(op, DType::I64)?;
    let host = index.to_device(crate::Device::Cpu)?;
    Ok(checked_indices(op, &host, size, what)?.into_owned())
}

/// [`checked_indices`] run on the GPU, without copying the index (as large as the data for
/// gather and scatter_add); the error names the same index.
fn check_device_indices(op: &'static str, index: &Tensor, size: usize, what: impl FnOnce() -> String) -> Result<()> {
    index.expect_dtype(op, DType::I64)?;
    match cuda::index::first_out_of_range(op, &index.cuda_operand(op)?, size)? {
        Some(bad) => Err(out_of_range(op, bad, size, what())),
        None => Ok(()),
    }
}

fn out_of_range(op: &'static str, bad: i64, size: usize, what: String) -> Error {
    Error::invalid(op, format!("index {bad} is out of range for {what} of size {size}"))
}

impl Tensor {
    /// The entries `index[0], index[1], ...` of `axis`, in that order (repeats allowed):
    /// `axis` takes the length of `index`, a 1-D i64 tensor (a 0-d one counts as length 1).
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        let a = normalize_axis(OP, axis, self.shape())?;
        if index.rank() > 1 {
            return Err(Error::shapes_hint(OP, self.shape(), index.shape(), "the index must be 1-D"));
        }
        let n = self.shape()[a];
        let what = || format!("axis {axis} of shape {:?}", self.shape());
        let mut shape = self.shape().to_vec();
        match self.backend() {
            Backend::Cuda(_) => {
                shape[a] = checked_host_indices(OP, index, n, what)?.len();
                let [x, index] = cuda_operands(OP, [self, index])?;
                Ok(Tensor::from_cuda_array(cuda::index::index_select(&x, a, &index, &shape)?))
            }
            Backend::Cpu => {
                let idx = checked_indices(OP, index, n, what)?;
                shape[a] = idx.len();
                with_any!(self.dtype(), |T| {
                    let out = cpu::index::index_select(&self.values::<T>(OP)?, self.shape(), a, &idx);
                    Ok(Tensor::from_vec_unchecked(out, &shape))
                })
            }
        }
    }

    /// `self` with `src`'s slices along `axis` added at positions `index` (PyTorch's
    /// `index_add`, out of place; repeated indices accumulate, in index order). `src` has
    /// `self`'s shape except along `axis`, whose length is the index's. Float dtypes.
    pub fn index_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_add";
        self.same_kind(OP, src)?;
        let a = normalize_axis(OP, axis, self.shape())?;
        if index.rank() > 1 {
            return Err(Error::shapes_hint(OP, self.shape(), index.shape(), "the index must be 1-D"));
        }
        let n = self.shape()[a];
        let what = || format!("axis {axis} of shape {:?}", self.shape());
        let check_src = |k: usize| {
            let mut expected = self.shape().to_vec();
            expected[a] = k;
            if src.shape() == expected {
                return Ok(());
            }
            let hint = format!("the source must be {expected:?} for an index of length {k}");
            Err(Error::shapes_hint(OP, self.shape(), src.shape(), hint))
        };
        match self.backend() {
            Backend::Cuda(_) => {
                let idx = checked_host_indices(OP, index, n, what)?;
                check_src(idx.len())?;
                self.expect_float(OP)?;
                let [x, index, src] = cuda_operands(OP, [self, index, src])?;
                Ok(Tensor::from_cuda_array(cuda::index::index_add(&x, a, &index, &idx, &src)?))
            }
            Backend::Cpu => {
                let idx = checked_indices(OP, index, n, what)?;
                check_src(idx.len())?;
                if let Some(out) = via_f32([self, index, src], |[x, i, s]| x.index_add(axis, &i, &s))? {
                    return Ok(out);
                }
                with_float!(self.dtype(), OP, |T| {
                    let mut out = self.values::<T>(OP)?.into_owned();
                    cpu::index::index_add(&mut out, self.shape(), a, &idx, &src.values::<T>(OP)?);
                    Ok(Tensor::from_vec_unchecked(out, self.shape()))
                })
            }
        }
    }

    /// The backward of [`index_select`](Self::index_select): `self` is the gradient of the
    /// selection; returns a tensor whose `axis` has `dim_size` entries, with each gradient
    /// slice added at its index.
    pub fn index_select_backward(&self, axis: isize, index: &Tensor, dim_size: usize) -> Result<Tensor> {
        let a = normalize_axis("index_select_backward", axis, self.shape())?;
        let mut shape = self.shape().to_vec();
        shape[a] = dim_size;
        checked_numel("index_select_backward", &shape)?;
        Tensor::full_on(&shape, 0.0, self.dtype(), self.device())?
            .index_add(axis, index, self)
            .map_err(|e| rename(e, "index_select_backward"))
    }

    /// `out[i][j][k] = self[i][index[i][j][k]][k]` for `axis = 1` (PyTorch's `gather`; any
    /// axis). `index` is i64 with `self`'s rank, and no larger than `self` along the other
    /// axes; the result has the index's shape.
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let a = normalize_axis(OP, axis, self.shape())?;
        check_index_shape(OP, self.shape(), index.shape(), a, None)?;
        let n = self.shape()[a];
        let what = || format!("axis {axis} of shape {:?} (index shape {:?})", self.shape(), index.shape());
        match self.backend() {
            Backend::Cuda(_) => {
                check_device_indices(OP, index, n, what)?;
                let [x, index] = cuda_operands(OP, [self, index])?;
                Ok(Tensor::from_cuda_array(cuda::index::gather(&x, a, &index)?))
            }
            Backend::Cpu => {
                let idx = checked_indices(OP, index, n, what)?;
                with_any!(self.dtype(), |T| {
                    let out = cpu::index::gather(self.buffer::<T>(OP)?, self.layout(), a, &idx, index.shape());
                    Ok(Tensor::from_vec_unchecked(out, index.shape()))
                })
            }
        }
    }

    /// `self` with `out[i][index[i][j][k]][k] += src[i][j][k]` for `axis = 1` (PyTorch's
    /// `scatter_add`, out of place; any axis): the backward of [`gather`](Self::gather).
    /// `index` is i64 with `self`'s rank, no larger than `src` along every axis and no larger
    /// than `self` along the others. Repeated targets accumulate in the index's row-major
    /// order. Float dtypes.
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        const OP: &str = "scatter_add";
        self.same_kind(OP, src)?;
        let a = normalize_axis(OP, axis, self.shape())?;
        check_index_shape(OP, self.shape(), index.shape(), a, Some(src.shape()))?;
        let n = self.shape()[a];
        let what = || format!("axis {axis} of shape {:?} (index shape {:?})", self.shape(), index.shape());
        match self.backend() {
            Backend::Cuda(_) => {
                check_device_indices(OP, index, n, what)?;
                self.expect_float(OP)?;
                let [x, index, src] = cuda_operands(OP, [self, index, src])?;
                Ok(Tensor::from_cuda_array(cuda::index::scatter_add(&x, a, &index, &src)?))
            }
            Backend::Cpu => {
                let idx = checked_indices(OP, index, n, what)?;
                if let Some(out) = via_f32([self, index, src], |[x, i, s]| x.scatter_add(axis, &i, &s))? {
                    return Ok(out);
                }
                with_float!(self.dtype(), OP, |T| {
                    let mut out = self.values::<T>(OP)?.into_owned();
                    cpu::index::scatter_add(&mut out, self.shape(), a, &idx, index.shape(), src.buffer::<T>(OP)?, src.layout());
                    Ok(Tensor::from_vec_unchecked(out, self.shape()))
                })
            }
        }
    }

    /// `value` where the u8 `mask` is non-zero, `self` elsewhere; the mask broadcasts to
    /// `self`'s shape. `value` is converted to `self`'s dtype.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        const OP: &str = "masked_fill";
        mask.expect_dtype(OP, DType::U8)?;
        if mask.device() != self.device() {
            return Err(Error::DeviceMismatch { op: OP, lhs: self.device(), rhs: mask.device() });
        }
        let shape = broadcast_shapes(OP, self.shape(), mask.shape())?;
        if shape != self.shape() {
            return Err(Error::shapes_hint(OP, self.shape(), mask.shape(), "the mask must broadcast to the tensor's shape"));
        }
        match self.backend() {
            Backend::Cuda(_) => {
                let [x, mask] = cuda_operands(OP, [self, mask])?;
                Ok(Tensor::from_cuda_array(cuda::index::masked_fill(&x, &mask, value)?))
            }
            Backend::Cpu => {
                let m = mask.buffer::<u8>(OP)?;
                with_any!(self.dtype(), |T| {
                    let out = cpu::index::masked_fill(
                        self.buffer::<T>(OP)?,
                        self.layout(),
                        m,
                        mask.layout(),
                        &shape,
                        <T as crate::Element>::from_f64(value),
                    );
                    Ok(Tensor::from_vec_unchecked(out, &shape))
                })
            }
        }
    }

    /// One-hot encoding of i64 labels: shape `[..., num_classes]`, f32, 1 at each label.
    /// A label outside `0..num_classes` is an error naming it.
    pub fn one_hot(&self, num_classes: usize) -> Result<Tensor> {
        const OP: &str = "one_hot";
        self.expect_dtype(OP, DType::I64)?;
        let bad_label = |bad: i64| {
            Error::invalid(OP, format!("label {bad} is out of range for {num_classes} classes (labels of shape {:?})", self.shape()))
        };
        let mut shape = self.shape().to_vec();
        shape.push(num_classes);
        match self.backend() {
            Backend::Cuda(labels) => {
                if let Some(bad) = cuda::index::first_out_of_range(OP, &labels, num_classes)? {
                    return Err(bad_label(bad));
                }
                checked_numel(OP, &shape)?;
                Ok(Tensor::from_cuda_array(cuda::index::one_hot(&labels, num_classes, &shape)?))
            }
            Backend::Cpu => {
                let labels = self.values::<i64>(OP)?;
                if let Some(&bad) = labels.iter().find(|&&i| i < 0 || i as u64 >= num_classes as u64) {
                    return Err(bad_label(bad));
                }
                checked_numel(OP, &shape)?;
                Ok(Tensor::from_vec_unchecked(cpu::index::one_hot(&labels, num_classes), &shape))
            }
        }
    }
}
/// Checks the shape rules of `gather` / `scatter_add`.
fn check_index_shape(op: &'static str, shape: &[usize], ishape: &[usize], a: usize, src: Option<&[usize]>) -> Result<()> {
    if ishape.len() != shape.len() {
        return Err(Error::shapes_hint(op, shape, ishape, "the index must have the tensor's rank"));
    }
    for d in 0..shape.len() {
        if d != a && ishape[d] > shape[d] {
            return Err(Error::shapes_hint(op, shape, ishape, format!("the index is larger than the tensor along axis {d}")));
        }
    }
    if let Some(src) = src {
        if src.len() != ishape.len() || ishape.iter().zip(src).any(|(i, s)| i > s) {
            return Err(Error::shapes_hint(op, src, ishape, "the index must be no larger than the source along every axis"));
        }
    }
    Ok(())
}

/// The same error, attributed to another op.
fn rename(e: Error, op: &'static str) -> Error {
    match e {
        Error::Invalid { msg, .. } => Error::Invalid { op, msg },
        Error::ShapeMismatch { lhs, rhs, hint, .. } => Error::ShapeMismatch { op, lhs, rhs, hint },
        Error::UnsupportedDType { dtype, expected, .. } => Error::UnsupportedDType { op, dtype, expected },
        Error::DTypeMismatch { lhs, rhs, .. } => Error::DTypeMismatch { op, lhs, rhs },
        e => e,
    }
}
