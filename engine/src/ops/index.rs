//! Indexing with i64 index tensors and u8 masks: `index_select` / `index_add`, `gather` /
//! `scatter_add` (each pair is forward and backward of each other), `masked_fill` and
//! `one_hot`. Indices must lie in `0..size` (negative indices are an error); the error names
//! the offending index, the axis size and the shapes. Scatters accumulate in a fixed order,
//! so results do not depend on the thread count.

use crate::backend::{cuda_operands, Backend};
use crate::cpu::{strided, PAR_MIN_ELEMS};
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::{broadcast_shapes, checked_numel, contiguous_strides, for_each_row, normalize_axis};
use crate::ops::widen::via_f32;
use crate::{with_any, with_float, DType, Error, Result, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;

/// Runs `f(first_row, chunk)` over chunks of whole `inner`-long rows of `out`, in parallel
/// when `out` is large.
pub(crate) fn drive_rows<U: Send>(out: &mut [U], inner: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    if inner == 0 || out.is_empty() {
        return;
    }
    if out.len() < PAR_MIN_ELEMS {
        f(0, out);
    } else {
        let per = ((PAR_MIN_ELEMS / 4) / inner).max(1);
        out.par_chunks_mut(per * inner).enumerate().for_each(|(t, c)| f(t * per, c));
    }
}

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

/// `(outer, inner)`: the products of the dims before and after `a`.
fn outer_inner(shape: &[usize], a: usize) -> (usize, usize) {
    (shape[..a].iter().product(), shape[a + 1..].iter().product())
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
        if let Backend::Cuda(_) = self.backend() {
            let k = checked_host_indices(OP, index, n, what)?.len();
            let mut shape = self.shape().to_vec();
            shape[a] = k;
            let [x, index] = cuda_operands(OP, [self, index])?;
            return Ok(Tensor::from_cuda_array(cuda::index::index_select(&x, a, &index, &shape)?));
        }
        let idx = checked_indices(OP, index, n, what)?;
        let k = idx.len();
        let (outer, inner) = outer_inner(self.shape(), a);
        let mut shape = self.shape().to_vec();
        shape[a] = k;
        with_any!(self.dtype(), |T| {
            let x = self.values::<T>(OP)?;
            let mut out = vec![T::default(); outer * k * inner];
            drive_rows(&mut out, inner, |start, chunk| {
                for (t, row) in chunk.chunks_mut(inner).enumerate() {
                    let (o, j) = ((start + t) / k, (start + t) % k);
                    let s = (o * n + idx[j] as usize) * inner;
                    row.copy_from_slice(&x[s..s + inner]);
                }
            });
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
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
        let idx = match self.backend() {
            Backend::Cuda(_) => Cow::Owned(checked_host_indices(OP, index, n, what)?),
            Backend::Cpu => checked_indices(OP, index, n, what)?,
        };
        let k = idx.len();
        let mut expected = self.shape().to_vec();
        expected[a] = k;
        if src.shape() != expected {
            return Err(Error::shapes_hint(
                OP,
                self.shape(),
                src.shape(),
                format!("the source must be {expected:?} for an index of length {k}"),
            ));
        }
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float(OP)?;
            let [x, index, src] = cuda_operands(OP, [self, index, src])?;
            return Ok(Tensor::from_cuda_array(cuda::index::index_add(&x, a, &index, &idx, &src)?));
        }
        let (outer, inner) = outer_inner(self.shape(), a);
        if let Some(out) = via_f32([self, index, src], |[x, i, s]| x.index_add(axis, &i, &s))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let mut out = self.values::<T>(OP)?.into_owned();
            let s = src.values::<T>(OP)?;
            let block = n * inner;
            let body = |o: usize, dst: &mut [T]| {
                for (j, &i) in idx.iter().enumerate() {
                    let from = &s[(o * k + j) * inner..(o * k + j + 1) * inner];
                    for (d, &v) in dst[i as usize * inner..(i as usize + 1) * inner].iter_mut().zip(from) {
                        *d += v;
                    }
                }
            };
            if block > 0 {
                if outer > 1 && s.len() >= PAR_MIN_ELEMS {
                    out.par_chunks_mut(block).enumerate().for_each(|(o, d)| body(o, d));
                } else {
                    out.chunks_mut(block).enumerate().for_each(|(o, d)| body(o, d));
                }
            }
            Ok(Tensor::from_vec_unchecked(out, self.shape()))
        })
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
        if let Backend::Cuda(_) = self.backend() {
            check_device_indices(OP, index, n, what)?;
            let [x, index] = cuda_operands(OP, [self, index])?;
            return Ok(Tensor::from_cuda_array(cuda::index::gather(&x, a, &index)?));
        }
        let idx = checked_indices(OP, index, n, what)?;
        let ishape = index.shape().to_vec();
        let inner = *ishape.last().unwrap_or(&1);
        let l = self.layout();
        let mut zs = l.strides.clone();
        let sa = zs[a];
        zs[a] = 0;
        let zlast = *zs.last().unwrap_or(&0);
        let zs = [zs];
        with_any!(self.dtype(), |T| {
            let buf = self.buffer::<T>(OP)?;
            let mut out = vec![T::default(); idx.len()];
            drive_rows(&mut out, inner, |start, chunk| {
                let rows = chunk.len() / inner;
                for_each_row(&ishape, &zs, &[l.offset as isize], start, start + rows, |r, offs| {
                    let row = &mut chunk[(r - start) * inner..(r - start + 1) * inner];
                    let ir = &idx[r * inner..(r + 1) * inner];
                    for (j, (o, &i)) in row.iter_mut().zip(ir).enumerate() {
                        *o = buf[(offs[0] + j as isize * zlast + i as isize * sa) as usize];
                    }
                });
            });
            Ok(Tensor::from_vec_unchecked(out, &ishape))
        })
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
        if let Backend::Cuda(_) = self.backend() {
            check_device_indices(OP, index, n, what)?;
            self.expect_float(OP)?;
            let [x, index, src] = cuda_operands(OP, [self, index, src])?;
            return Ok(Tensor::from_cuda_array(cuda::index::scatter_add(&x, a, &index, &src)?));
        }
        let idx = checked_indices(OP, index, n, what)?;
        let ishape = index.shape().to_vec();
        let rank = ishape.len();
        let inner = *ishape.last().unwrap_or(&1);
        let cs = contiguous_strides(self.shape());
        let mut zs = cs.clone();
        let sa = zs[a];
        zs[a] = 0;
        let ls = src.layout();
        let strides = [zs, ls.strides.clone()];
        let (zlast, slast) = (strides[0][rank - 1], strides[1][rank - 1]);
        if let Some(out) = via_f32([self, index, src], |[x, i, s]| x.scatter_add(axis, &i, &s))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let mut out = self.values::<T>(OP)?.into_owned();
            let sbuf = src.buffer::<T>(OP)?;
            if idx.is_empty() {
                return Ok(Tensor::from_vec_unchecked(out, self.shape()));
            }
            // Rows `start..end` of the index, writing into `dst`, which begins at storage
            // position `dst_base` of the output.
            let run = |dst: &mut [T], dst_base: isize, start: usize, end: usize| {
                for_each_row(&ishape, &strides, &[-dst_base, ls.offset as isize], start, end, |r, offs| {
                    let ir = &idx[r * inner..(r + 1) * inner];
                    for (j, &i) in ir.iter().enumerate() {
                        let j = j as isize;
                        dst[(offs[0] + j * zlast + i as isize * sa) as usize] += sbuf[(offs[1] + j * slast) as usize];
                    }
                });
            };
            let rows = idx.len() / inner;
            if a != 0 && rank >= 2 && idx.len() >= PAR_MIN_ELEMS && ishape[0] > 1 {
                // Targets of different first-axis entries are disjoint: split the output there.
                let per = rows / ishape[0];
                let block = cs[0] as usize;
                out.par_chunks_mut(block)
                    .take(ishape[0])
                    .enumerate()
                    .for_each(|(i0, dst)| run(dst, (i0 * block) as isize, i0 * per, (i0 + 1) * per));
            } else {
                run(&mut out, 0, 0, rows);
            }
            Ok(Tensor::from_vec_unchecked(out, self.shape()))
        })
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
        if let Backend::Cuda(_) = self.backend() {
            let [x, mask] = cuda_operands(OP, [self, mask])?;
            return Ok(Tensor::from_cuda_array(cuda::index::masked_fill(&x, &mask, value)?));
        }
        let m = mask.buffer::<u8>(OP)?;
        with_any!(self.dtype(), |T| {
            let v = T::from_f64(value);
            let out = strided::zip_map(
                self.buffer::<T>(OP)?,
                self.layout(),
                m,
                mask.layout(),
                &shape,
                move |x: T, c: u8| if c != 0 { v } else { x },
            );
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
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
        if let Backend::Cuda(labels) = self.backend() {
            if let Some(bad) = cuda::index::first_out_of_range(OP, &labels, num_classes)? {
                return Err(bad_label(bad));
            }
            checked_numel(OP, &shape)?;
            return Ok(Tensor::from_cuda_array(cuda::index::one_hot(&labels, num_classes, &shape)?));
        }
        let labels = self.values::<i64>(OP)?;
        if let Some(&bad) = labels.iter().find(|&&i| i < 0 || i as u64 >= num_classes as u64) {
            return Err(bad_label(bad));
        }
        let total = checked_numel(OP, &shape)?;
        let mut out = vec![0f32; total];
        drive_rows(&mut out, num_classes, |start, chunk| {
            for (t, row) in chunk.chunks_mut(num_classes).enumerate() {
                row[labels[start + t] as usize] = 1.0;
            }
        });
        Ok(Tensor::from_vec_unchecked(out, &shape))
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
