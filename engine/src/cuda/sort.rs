//! argsort and topk (ptx/kernels/sort.cu): the axis is swapped last, each row sorted by one
//! block with a bitonic network over (value, index) pairs ordered by value and then index,
//! which is the CPU backend's stable order; topk keeps the first `k` of each row.

use super::kernel;
use super::rows::{contiguous, swap_last};
use crate::cuda::launch::run;
use crate::cuda::CudaBuffer;
use crate::cuda::{CudaArray, CudaView};
use crate::{DType, Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use tessera_ptx::SORT;

/// Dynamic shared memory a block may use without opting in.
const SHARED_LIMIT: usize = 48 * 1024;
/// The most global scratch memory a long-row sort takes (it runs fewer blocks to stay under).
const SCRATCH_BUDGET: usize = 256 << 20;

/// The first `k` entries of each row along `axis` (normalized) sorted ascending or
/// `descending`: their i64 indices, and their values when `with_values`.
pub(crate) fn sorted_along(
    x: &CudaView,
    op: &'static str,
    axis: usize,
    k: usize,
    descending: bool,
    with_values: bool,
) -> Result<(Option<CudaArray>, CudaArray)> {
    let dev = x.buf.dev.clone();
    let dtype = x.dtype();
    let perm = swap_last(x.rank(), axis);
    let n = x.shape()[axis];
    if n > i32::MAX as usize {
        return Err(Error::invalid(op, format!("CUDA sorts rows of at most {} elements, got {n}", i32::MAX)));
    }
    let mut shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let last = shape.len() - 1;
    shape[last] = k;
    let rows: usize = shape[..last].iter().product();
    let idx = CudaBuffer::alloc(&dev, op, DType::I64, rows * k)?;
    let vals = if with_values { Some(CudaBuffer::alloc(&dev, op, dtype, rows * k)?) } else { None };
    if rows > 0 && k > 0 {
        let src = contiguous(&x.permute(&perm)?, op)?;
        let p = n.next_power_of_two();
        let key_bytes = (p * dtype.size_in_bytes()).div_ceil(8) * 8;
        let slot_bytes = key_bytes + 4 * p;
        let threads = (p / 2).clamp(32, 1024) as u32;
        let (blocks, shared, scratch) = if slot_bytes <= SHARED_LIMIT {
            (rows.min(dev.sm_count as usize * 32), slot_bytes as u32, None)
        } else {
            let blocks = rows.min(dev.sm_count as usize).min((SCRATCH_BUDGET / slot_bytes).max(1));
            let keys = CudaBuffer::alloc(&dev, op, dtype, blocks * p)?;
            let ids = CudaBuffer::alloc(&dev, op, DType::U8, 4 * blocks * p)?; // the kernel's int slots
            (blocks, 0, Some((keys, ids)))
        };
        let (sk, si) = scratch.as_ref().map_or((0u64, 0u64), |(k, i)| (k.ptr, i.ptr));
        let vp = vals.as_ref().map_or(0u64, |v| v.ptr);
        let f = dev.function(op, SORT, &kernel("sort_rows", dtype))?;
        let (r64, n64, p64, k64, d) = (rows as i64, n as i64, p as i64, k as i64, descending as i32);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&r64).arg(&n64).arg(&p64).arg(&k64).arg(&d).arg(&src.ptr).arg(&sk).arg(&si).arg(&idx.ptr).arg(&vp);
        let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: shared };
        run(&dev, op, b, cfg)?;
    }
    let idx = CudaArray::new(idx, &shape).permute(&perm)?;
    let vals = vals.map(|v| CudaArray::new(v, &shape).permute(&perm)).transpose()?;
    Ok((vals, idx))
}
