//! Copies between layouts, dtypes and devices: `contiguous`, `to_dtype`, `to_device` and the
//! host reads `to_vec` / `to_vec_f64`, each run by the backend its tensor lives on.

use crate::backend::Backend;
use crate::cpu::{bf16_cast, strided};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::Layout;
use crate::{with_any, DType, Device, Element, Result, Tensor};

impl Tensor {
    /// The elements in logical order as a `Vec<T>` (copied to the host); `T` must match the
    /// dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        match self.backend() {
            Backend::Cuda(_) => self.to_device(Device::Cpu)?.to_vec(),
            Backend::Cpu => Ok(self.values::<T>("to_vec")?.into_owned()),
        }
    }

    /// The elements in logical order converted to f64, whatever the dtype.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        match self.backend() {
            Backend::Cuda(_) => self.to_device(Device::Cpu)?.to_vec_f64(),
            Backend::Cpu => with_any!(self.dtype(), |T| Ok(self.values::<T>("to_vec_f64")?.iter().map(|x| x.to_f64()).collect())),
        }
    }

    /// A contiguous tensor with the same values: `self` (shared) if already contiguous.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() && self.layout().offset == 0 && self.storage_len() == self.numel() {
            return Ok(self.clone());
        }
        match self.backend() {
            Backend::Cuda(x) => Ok(Tensor::from_cuda_array(crate::cuda::elementwise::contiguous(&x)?)),
            Backend::Cpu => {
                with_any!(self.dtype(), |T| Ok(Tensor::from_vec_unchecked(self.values::<T>("contiguous")?.into_owned(), self.shape())))
            }
        }
    }

    /// The values converted to another dtype (float→int truncates toward zero, like `as`;
    /// anything→u8 is `x != 0`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        if let Backend::Cuda(x) = self.backend() {
            return Ok(Tensor::from_cuda_array(crate::cuda::elementwise::cast(&x, dtype)?));
        }
        match (self.dtype(), dtype) {
            (DType::F32, DType::BF16) => {
                let src = self.values::<f32>("to_dtype")?;
                return Ok(Tensor::from_vec_unchecked(strided::map_slices(&src, bf16_cast::narrow_slice), self.shape()));
            }
            (DType::BF16, DType::F32) => {
                let src = self.values::<half::bf16>("to_dtype")?;
                return Ok(Tensor::from_vec_unchecked(strided::map_slices(&src, bf16_cast::widen_slice), self.shape()));
            }
            _ => {}
        }
        with_any!(self.dtype(), |S| {
            let src = self.values::<S>("to_dtype")?;
            Ok(with_any!(dtype, |D| {
                let to_mask = D::DTYPE == DType::U8;
                Tensor::from_vec_unchecked(
                    strided::map(&src, |x: S| {
                        if to_mask {
                            <D as crate::Element>::from_f64((x.to_f64() != 0.0) as u8 as f64)
                        } else {
                            <D as crate::Element>::from_f64(x.to_f64())
                        }
                    }),
                    self.shape(),
                )
            }))
        })
    }

    /// A copy on `device` (this tensor itself if it is there already). A GPU that is not
    /// there is a clear [`Error::DeviceUnavailable`](crate::Error::DeviceUnavailable).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        match (self.backend(), device) {
            (Backend::Cuda(_), Device::Cpu) => {
                let t = self.contiguous()?;
                let b = t.cuda_buffer().expect("contiguous keeps the device");
                let host = b.download("to_device", t.layout().offset, t.numel())?;
                Ok(Tensor::from_parts(host, Layout::contiguous(self.shape())))
            }
            (Backend::Cpu, Device::Cuda(ordinal)) => {
                let dev = crate::cuda::device("to_device", ordinal)?;
                // contiguous() leaves exactly the view's elements, from offset 0.
                let t = self.contiguous()?;
                Ok(Tensor::from_cuda(crate::cuda::CudaBuffer::upload(&dev, "to_device", t.cpu_storage("to_device")?)?, self.shape()))
            }
            // GPU to GPU goes through the host: simple, and rare in single-GPU training.
            (Backend::Cuda(_), Device::Cuda(_)) => self.to_device(Device::Cpu)?.to_device(device),
            (Backend::Cpu, Device::Cpu) => unreachable!("same device handled above"),
        }
    }
}
