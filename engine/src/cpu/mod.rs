//! The CPU backend: host kernels on slices and layouts, never on tensors. Shared machinery
//! (strided gathers and the elementwise map in `strided`, vectorized f32 transcendentals in
//! `vmath`, the GEMM in `gemm`, the allocator settings in `allocator`) and one file per op
//! family named as in `ops/` and `cuda/` (`conv` with `direct_conv` and `im2col`, `index`,
//! `matmul`, `norm`, `pool`, `random`, `reduce`, `shape`, `softmax`, `sort`).

use rayon::prelude::*;

pub mod allocator;
pub mod bf16_cast;
pub(crate) mod conv;
pub mod direct_conv;
pub mod gemm;
pub mod im2col;
pub(crate) mod index;
pub mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod random;
pub mod reduce;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod sort;
pub mod strided;
pub mod vmath;

/// Below this many elements a kernel runs on the calling thread: handing work to rayon costs
/// more than it saves on small tensors.
pub const PAR_MIN_ELEMS: usize = 1 << 15;

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
