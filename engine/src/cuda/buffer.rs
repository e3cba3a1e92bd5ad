//! A typed device buffer from the caching allocator, and the host↔device copies.

use super::alloc::OutOfMemory;
use super::CudaDevice;
use crate::{CpuStorage, DType, Error, Result};
use cudarc::driver::sys;
use std::sync::Arc;

/// `len` elements of `dtype` on one GPU; returned to the allocator's free list on drop.
pub(crate) struct CudaBuffer {
    pub dev: Arc<CudaDevice>,
    pub ptr: sys::CUdeviceptr,
    pub len: usize,
    pub dtype: DType,
    class: usize,
}

impl std::fmt::Debug for CudaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuffer(cuda:{}, {} × {})", self.dev.ordinal, self.len, self.dtype.name())
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        self.dev.alloc.free(self.ptr, self.class);
    }
}

impl CudaBuffer {
    /// An uninitialized buffer; every kernel that makes one writes all of it.
    pub fn alloc(dev: &Arc<CudaDevice>, op: &'static str, dtype: DType, len: usize) -> Result<CudaBuffer> {
        dev.bind(op)?;
        let bytes = len * dtype.size_in_bytes();
        let (ptr, class) = dev.alloc.alloc(bytes).map_err(|OutOfMemory { free, total, driver }| Error::OutOfMemory {
            op,
            device: dev.as_device(),
            bytes,
            free,
            total,
            detail: driver.map(|e| format!("; the driver says {e}")).unwrap_or_default(),
        })?;
        Ok(CudaBuffer { dev: dev.clone(), ptr, len, dtype, class })
    }

    /// A device copy of a host buffer.
    pub fn upload(dev: &Arc<CudaDevice>, op: &'static str, host: &CpuStorage) -> Result<CudaBuffer> {
        let buf = CudaBuffer::alloc(dev, op, host.dtype(), host.len())?;
        let bytes = host_bytes(host);
        if !bytes.is_empty() {
            // Queued on our stream (after any kernel that last used this recycled buffer),
            // then waited for, so the host slice may go away once this returns.
            unsafe { sys::cuMemcpyHtoDAsync_v2(buf.ptr, bytes.as_ptr().cast(), bytes.len(), dev.stream.cu_stream()) }
                .result()
                .map_err(|e| dev.driver_error(op, e))?;
            dev.stream.synchronize().map_err(|e| dev.driver_error(op, e))?;
        }
        Ok(buf)
    }

    /// Elements `start..start + len` copied to the host.
    pub fn download(&self, op: &'static str, start: usize, len: usize) -> Result<CpuStorage> {
        let dev = &self.dev;
        dev.bind(op)?;
        let mut host = match self.dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::F64 => CpuStorage::F64(vec![0.0; len]),
            DType::I64 => CpuStorage::I64(vec![0; len]),
            DType::U8 => CpuStorage::U8(vec![0; len]),
            DType::BF16 => CpuStorage::BF16(vec![half::bf16::ZERO; len]),
            DType::F16 => CpuStorage::F16(vec![half::f16::ZERO; len]),
        };
        let size = self.dtype.size_in_bytes();
        let dst = host_bytes_mut(&mut host);
        if !dst.is_empty() {
            let src = self.ptr + (start * size) as u64;
            unsafe { sys::cuMemcpyDtoHAsync_v2(dst.as_mut_ptr().cast(), src, dst.len(), dev.stream.cu_stream()) }
                .result()
                .map_err(|e| dev.driver_error(op, e))?;
            dev.stream.synchronize().map_err(|e| dev.driver_error(op, e))?;
        }
        Ok(host)
    }

    /// Device address of element `i`.
    pub fn ptr_at(&self, i: usize) -> u64 {
        self.ptr + (i * self.dtype.size_in_bytes()) as u64
    }
}

fn host_bytes(s: &CpuStorage) -> &[u8] {
    match s {
        CpuStorage::F32(v) => bytemuck::cast_slice(v),
        CpuStorage::F64(v) => bytemuck::cast_slice(v),
        CpuStorage::I64(v) => bytemuck::cast_slice(v),
        CpuStorage::U8(v) => v,
        CpuStorage::BF16(v) => bytemuck::cast_slice(v),
        CpuStorage::F16(v) => bytemuck::cast_slice(v),
    }
}

fn host_bytes_mut(s: &mut CpuStorage) -> &mut [u8] {
    match s {
        CpuStorage::F32(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::F64(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::I64(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::U8(v) => v,
        CpuStorage::BF16(v) => bytemuck::cast_slice_mut(v),
        CpuStorage::F16(v) => bytemuck::cast_slice_mut(v),
    }
}
