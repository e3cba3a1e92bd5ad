//! The tensor: a reference-counted storage seen through a [`Layout`]. Cloning is cheap (the
//! storage is shared); views share storage; ops return new tensors.

use crate::cpu::strided;
use crate::cuda::{CudaArray, CudaBuffer};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::{checked_numel, Layout};
use crate::storage::{CpuStorage, Storage, TrackedStorage};
use crate::{with_any, DType, Device, Element, Error, Result};
use std::borrow::Cow;
use std::sync::Arc;

/// An n-dimensional array of one dtype on one device.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<TrackedStorage>,
    layout: Layout,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{:?}, {}, {}]", self.shape(), self.dtype().name(), self.device())?;
        if self.numel() <= 16 {
            if let Ok(v) = self.to_vec_f64() {
                write!(f, " {v:?}")?;
            }
        }
        Ok(())
    }
}

impl Tensor {
    // ---- construction -------------------------------------------------------------------

    /// Wraps a host buffer with a layout. Internal: the caller guarantees the layout fits.
    pub(crate) fn from_parts(storage: CpuStorage, layout: Layout) -> Tensor {
        Tensor { storage: Arc::new(TrackedStorage::new(Storage::Cpu(storage))), layout }
    }

    /// A contiguous tensor over a device buffer a kernel has filled.
    pub(crate) fn from_cuda(buffer: CudaBuffer, shape: &[usize]) -> Tensor {
        debug_assert_eq!(buffer.len, shape.iter().product::<usize>());
        Tensor::from_cuda_array(CudaArray::new(buffer, shape))
    }

    /// A tensor over a CUDA launch's result.
    pub(crate) fn from_cuda_array(a: CudaArray) -> Tensor {
        Tensor { storage: Arc::new(TrackedStorage::new(Storage::Cuda(a.buf))), layout: a.layout }
    }

    /// A contiguous tensor owning `data`. Internal: the caller guarantees the length.
    pub(crate) fn from_vec_unchecked<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor::from_parts(T::into_storage(data), Layout::contiguous(shape))
    }

    /// A contiguous tensor owning `data`, whose length must equal the shape's element count.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let expected = checked_numel("from_vec", shape)?;
        if data.len() != expected {
            return Err(Error::LengthMismatch { op: "from_vec", len: data.len(), shape: shape.to_vec(), expected });
        }
        Ok(Tensor::from_vec_unchecked(data, shape))
    }

    /// A contiguous tensor copied from a slice.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-d tensor holding one value.
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_vec_unchecked(vec![v], &[])
    }

    /// A tensor of `shape` filled with `value` (converted to `dtype`).
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = checked_numel("full", shape)?;
        Ok(with_any!(dtype, |T| Tensor::from_vec_unchecked(vec![<T as crate::Element>::from_f64(value); n], shape)))
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A tensor of zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::full_on(self.shape(), 0.0, self.dtype(), self.device())
    }

    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::full_on(self.shape(), 1.0, self.dtype(), self.device())
    }

    /// [`full`](Self::full) on `device`, filled there (no host buffer for GPU tensors).
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Tensor::full(shape, value, dtype),
            Device::Cuda(ordinal) => {
                checked_numel("full", shape)?;
                Ok(Tensor::from_cuda_array(crate::cuda::elementwise::full(ordinal, shape, value, dtype)?))
            }
        }
    }

    /// `start, start+step, ...` below `end` (above, for a negative step).
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("needs finite bounds and a non-zero step, got start {start}, end {end}, step {step}"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        Ok(with_any!(dtype, |T| Tensor::from_vec_unchecked(
            (0..n).map(|i| <T as crate::Element>::from_f64(start + i as f64 * step)).collect(),
            &[n]
        )))
    }

    /// `n` evenly spaced values from `start` to `end`, both included.
    pub fn linspace(start: f64, end: f64, n: usize, dtype: DType) -> Result<Tensor> {
        let step = if n > 1 { (end - start) / (n - 1) as f64 } else { 0.0 };
        Ok(with_any!(dtype, |T| Tensor::from_vec_unchecked(
            (0..n).map(|i| <T as crate::Element>::from_f64(if i + 1 == n && n > 1 { end } else { start + i as f64 * step })).collect(),
            &[n]
        )))
    }

    /// The `n × n` identity.
    pub fn eye(n: usize, dtype: DType) -> Result<Tensor> {
        checked_numel("eye", &[n, n])?;
        Ok(with_any!(dtype, |T| {
            let mut v = vec![<T as crate::Element>::from_f64(0.0); n * n];
            for i in 0..n {
                v[i * n + i] = <T as crate::Element>::from_f64(1.0);
            }
            Tensor::from_vec_unchecked(v, &[n, n])
        }))
    }

    // ---- accessors ----------------------------------------------------------------------

    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    pub fn strides(&self) -> &[isize] {
        &self.layout.strides
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    pub fn dtype(&self) -> DType {
        self.storage.0.dtype()
    }

    pub fn device(&self) -> Device {
        self.storage.0.device()
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Size of one axis (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        Ok(self.shape()[crate::layout::normalize_axis("dim", axis, self.shape())?])
    }

    /// Whether two tensors share one storage (views of each other).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The same storage seen through another layout. Internal: callers keep it in bounds.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout }
    }

    /// The host storage, or an error naming `op` if the tensor lives elsewhere.
    pub(crate) fn cpu_storage(&self, op: &'static str) -> Result<&CpuStorage> {
        match &self.storage.0 {
            Storage::Cpu(s) => Ok(s),
            Storage::Cuda(b) => Err(Error::NoKernel { op, device: b.dev.as_device() }),
        }
    }

    /// The device buffer if this tensor lives on a GPU.
    pub(crate) fn cuda_buffer(&self) -> Option<&CudaBuffer> {
        match &self.storage.0 {
            Storage::Cuda(b) => Some(b),
            Storage::Cpu(_) => None,
        }
    }

    /// Whether the tensor lives on a GPU (its ops then run the CUDA kernels).
    pub fn is_cuda(&self) -> bool {
        self.cuda_buffer().is_some()
    }

    /// The whole typed storage buffer (not just this view), checked against `T`.
    pub(crate) fn buffer<T: Element>(&self, op: &'static str) -> Result<&[T]> {
        let s = self.cpu_storage(op)?;
        T::buffer(s).ok_or(Error::DTypeMismatch { op, lhs: s.dtype(), rhs: T::DTYPE })
    }

    /// This tensor's elements in logical order, borrowed when already contiguous.
    pub fn values<T: Element>(&self, op: &'static str) -> Result<Cow<'_, [T]>> {
        let buf = self.buffer::<T>(op)?;
        if self.is_contiguous() {
            Ok(Cow::Borrowed(&buf[self.layout.offset..self.layout.offset + self.numel()]))
        } else {
            Ok(Cow::Owned(strided::gather(buf, &self.layout)))
        }
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid("item", format!("needs exactly one element, the shape is {:?}", self.shape())));
        }
        Ok(self.to_vec_f64()?[0])
    }

    pub(crate) fn storage_len(&self) -> usize {
        self.storage.0.len()
    }

    /// Errors unless both tensors share dtype and device.
    pub(crate) fn same_kind(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch { op, lhs: self.device(), rhs: other.device() });
        }
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch { op, lhs: self.dtype(), rhs: other.dtype() });
        }
        Ok(())
    }

    /// Errors unless the dtype is f32 or f64.
    pub(crate) fn expect_float(&self, op: &'static str) -> Result<()> {
        if self.dtype().is_float() {
            Ok(())
        } else {
            Err(Error::UnsupportedDType { op, dtype: self.dtype(), expected: "f32 or f64" })
        }
    }

    /// Errors unless the dtype is `dtype`.
    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() == dtype {
            Ok(())
        } else {
            Err(Error::UnsupportedDType { op, dtype: self.dtype(), expected: dtype.name() })
        }
    }
}
