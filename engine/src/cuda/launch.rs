//! What every kernel launch needs: strided-operand descriptors in the layout the kernels
//! expect (`Strided` in ptx/kernels/common.cuh), grid sizes, and a launch that turns driver
//! failures into engine errors.

use super::{CudaBuffer, CudaDevice};
use crate::layout::{collapse_dims, Layout};
use crate::{DType, Error, Result};
use cudarc::driver::{DeviceRepr, LaunchArgs, LaunchConfig};
use std::sync::Arc;

/// The most dims a kernel's index math handles; more (after collapsing) is an error.
pub(crate) const MAX_RANK: usize = 8;

/// Mirrors `struct Strided` in ptx/kernels/common.cuh, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct StridedArg {
    rank: i32,
    offset: i64,
    shape: [i64; MAX_RANK],
    strides: [i64; MAX_RANK],
}

unsafe impl DeviceRepr for StridedArg {}

impl StridedArg {
    fn new(op: &'static str, offset: usize, shape: &[usize], strides: &[isize]) -> Result<StridedArg> {
        if shape.len() > MAX_RANK {
            return Err(Error::invalid(op, format!("CUDA kernels take at most {MAX_RANK} non-mergeable dims, got shape {shape:?}")));
        }
        let mut a = StridedArg { rank: shape.len() as i32, offset: offset as i64, shape: [1; MAX_RANK], strides: [0; MAX_RANK] };
        for (d, (&n, &s)) in shape.iter().zip(strides).enumerate() {
            a.shape[d] = n as i64;
            a.strides[d] = s as i64;
        }
        Ok(a)
    }

    /// Every dim kept as it is (no merging), for kernels that index one dim on its own
    /// (gather, scatter, pad); the `Strided` struct of common.cuh serves them too.
    pub fn uncollapsed(op: &'static str, l: &Layout) -> Result<StridedArg> {
        StridedArg::new(op, l.offset, &l.shape, &l.strides)
    }

    /// One operand read in its own logical order.
    pub fn of(op: &'static str, l: &Layout) -> Result<StridedArg> {
        Ok(StridedArgs::broadcast(op, &l.shape, &[l])?.args[0])
    }
}

/// Several operands broadcast to one output shape, with the dims that are contiguous in
/// all of them merged, so the per-element index math runs over as few dims as possible.
pub(crate) struct StridedArgs {
    pub args: Vec<StridedArg>,
}

impl StridedArgs {
    pub fn broadcast(op: &'static str, out_shape: &[usize], operands: &[&Layout]) -> Result<StridedArgs> {
        let strides: Vec<Vec<isize>> = operands.iter().map(|l| l.broadcast_strides(out_shape)).collect();
        let (shape, strides) = if out_shape.is_empty() { (vec![], strides) } else { collapse_dims(out_shape, &strides) };
        let args = operands.iter().zip(&strides).map(|(l, s)| StridedArg::new(op, l.offset, &shape, s)).collect::<Result<_>>()?;
        Ok(StridedArgs { args })
    }
}

/// Grid for a grid-stride loop over `n` items: enough blocks to fill the GPU, no more.
pub(crate) fn grid_stride(dev: &CudaDevice, n: usize) -> LaunchConfig {
    const THREADS: usize = 256;
    let blocks = n.div_ceil(THREADS).clamp(1, dev.sm_count as usize * 8);
    LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (THREADS as u32, 1, 1), shared_mem_bytes: 0 }
}

/// Queues a launch built with `dev.stream.launch_builder(&f)` and `.arg(..)` calls.
pub(crate) fn run(dev: &CudaDevice, op: &'static str, mut args: LaunchArgs<'_>, cfg: LaunchConfig) -> Result<()> {
    dev.bind(op)?;
    // Safety: each launcher in cuda/ mirrors its kernel's parameter list, and passes device
    // pointers of buffers alive until the launch is queued; stream order keeps them valid
    // until it runs (a freed buffer is only reused by later work on the same stream).
    if !super::profile::enabled() {
        return unsafe { args.launch(cfg) }.map(|_| ()).map_err(|e| dev.driver_error(op, e));
    }
    dev.stream.synchronize().map_err(|e| dev.driver_error(op, e))?;
    let start = std::time::Instant::now();
    unsafe { args.launch(cfg) }.map_err(|e| dev.driver_error(op, e))?;
    dev.stream.synchronize().map_err(|e| dev.driver_error(op, e))?;
    super::profile::record(op, start);
    Ok(())
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
