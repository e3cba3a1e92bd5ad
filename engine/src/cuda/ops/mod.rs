//! The Rust side of each CUDA kernel family: checks, launch parameters and output buffers.
//! Each file mirrors one module of `ptx/kernels/` and is called from the engine op of the
//! same name (`engine/src/ops/`) when its operands live on a GPU.

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod rows;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod sort;

use super::{CudaBuffer, CudaDevice};
use crate::{DType, Error, Result, Tensor};
use std::sync::Arc;

/// The device buffer of a GPU tensor (callers have checked the device).
pub(crate) fn buffer<'a>(t: &'a Tensor, op: &'static str) -> Result<&'a CudaBuffer> {
    t.cuda_buffer().ok_or(Error::DeviceMismatch { op, lhs: t.device(), rhs: crate::Device::Cuda(0) })
}

/// The device of the first operand, after checking that every other one is on it too.
pub(crate) fn common_device(op: &'static str, ts: &[&Tensor]) -> Result<Arc<CudaDevice>> {
    let first = buffer(ts[0], op)?;
    for t in &ts[1..] {
        if t.device() != ts[0].device() {
            return Err(Error::DeviceMismatch { op, lhs: ts[0].device(), rhs: t.device() });
        }
    }
    Ok(first.dev.clone())
}

/// `base_f32`-style kernel name for a dtype.
pub(crate) fn kernel(base: &str, dtype: DType) -> String {
    format!("{base}_{}", dtype.name())
}

/// The dtype kernels compute and accumulate `dtype` in (`acc_t` in ptx/kernels/half.cuh): f32
/// for the 16-bit storage dtypes, the dtype itself otherwise. Intermediate buffers that cross
/// launches (reduction partials, shifts, scattered sums) use it, so a half is rounded once.
pub(crate) fn acc_dtype(dtype: DType) -> DType {
    if dtype.is_half() {
        DType::F32
    } else {
        dtype
    }
}

/// An output buffer for `shape`.
pub(crate) fn output(dev: &Arc<CudaDevice>, op: &'static str, dtype: DType, shape: &[usize]) -> Result<CudaBuffer> {
    CudaBuffer::alloc(dev, op, dtype, shape.iter().product())
}
