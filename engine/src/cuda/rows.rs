//! What the row-wise kernel families (reduce, softmax, norm, sort) share: an operand as one
//! contiguous run of device memory, and the launch shape of kernels that give each row a
//! warp (short rows) or a whole block (long rows).

use super::elementwise;
use crate::cuda::{CudaArray, CudaDevice, CudaView};
use crate::Result;
use cudarc::driver::LaunchConfig;

/// An operand whose elements lie contiguously in row-major order from `ptr`: the view itself
/// when it already does, else a contiguous copy (kept here so the memory outlives the launch).
pub(crate) struct Contiguous {
    _copy: Option<CudaArray>,
    pub ptr: u64,
}

pub(crate) fn contiguous(t: &CudaView, _op: &'static str) -> Result<Contiguous> {
    if t.is_contiguous() {
        return Ok(Contiguous { _copy: None, ptr: t.buf.ptr_at(t.layout().offset) });
    }
    let copy = elementwise::contiguous(t)?;
    let ptr = copy.buf.ptr_at(copy.layout.offset);
    Ok(Contiguous { _copy: Some(copy), ptr })
}

/// Threads per block of the row kernels (a multiple of 32).
pub(crate) const BLOCK_THREADS: u32 = 256;

/// Rows up to this long get one warp each (eight rows per block); longer ones a block each.
const WARP_ROW_MAX: usize = 512;

/// How many threads share one row: the `_warp_` or `_block_` variant of a row kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RowGroup {
    Warp,
    Block,
}

impl RowGroup {
    pub fn for_len(len: usize) -> RowGroup {
        if len <= WARP_ROW_MAX {
            RowGroup::Warp
        } else {
            RowGroup::Block
        }
    }

    /// `base_warp` or `base_block`; the caller appends the dtype.
    pub fn kernel_base(self, base: &str) -> String {
        match self {
            RowGroup::Warp => format!("{base}_warp"),
            RowGroup::Block => format!("{base}_block"),
        }
    }

    /// A grid for `rows` rows, capped (the kernels loop over rows) at what fills the GPU.
    pub fn launch(self, dev: &CudaDevice, rows: usize) -> LaunchConfig {
        let rows_per_block = match self {
            RowGroup::Warp => (BLOCK_THREADS / 32) as usize,
            RowGroup::Block => 1,
        };
        let blocks = rows.div_ceil(rows_per_block).clamp(1, dev.sm_count as usize * 32);
        LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (BLOCK_THREADS, 1, 1), shared_mem_bytes: 0 }
    }
}

/// A permutation moving `axis` last by swapping it with the last dim (its own inverse).
pub(crate) fn swap_last(rank: usize, axis: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(axis, rank - 1);
    perm
}
