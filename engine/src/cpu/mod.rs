//! The CPU backend: host kernels on slices and layouts, never on tensors. Shared machinery
//! (strided gathers and the elementwise map in `strided`, vectorized f32 transcendentals in
//! `vmath`, the GEMM in `gemm`, the allocator settings in `allocator`, matrices transposed
//! into scattered rows in `transpose`) and one file per op family named as in `ops/` and
//! `cuda/` (`conv` with `direct_conv`, `winograd` and `im2col`, `index`, `matmul`, `norm`,
//! `pool`, `random`, `reduce`, `shape`, `softmax`, `sort`).

use rayon::prelude::*;
use std::mem::MaybeUninit;

pub mod allocator;
pub mod attention;
pub mod bf16_cast;
pub(crate) mod conv;
pub(crate) mod conv_bf16;
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
pub(crate) mod transpose;
pub mod vmath;
pub(crate) mod winograd;

/// Below this many elements a kernel runs on the calling thread: handing work to rayon costs
/// more than it saves on small tensors.
pub const PAR_MIN_ELEMS: usize = 1 << 15;

/// Runs `f` on a worker thread of rayon's global pool (directly when the caller is one) and
/// returns what it returns. A training loop should run this way.
///
/// Why: a parallel kernel called from a thread outside the pool hands its work to the
/// workers, wakes them and parks the caller until they are done, so on a 2-core machine
/// every op of a step costs several context switches and a wake-up latency. Called from a
/// worker, the kernel splits its work with the other workers while the caller keeps
/// computing, as OpenMP's master thread does in PyTorch. Measured on 30 MoCo v2 steps of the
/// narrow ResNet (2 threads): 40k context switches became 5k, CPU time fell 7%. Results do
/// not change: every kernel's reduction order is fixed by the shapes, not by the thread.
///
/// Thread-local settings of the caller (`no_grad`, autocast) do not carry over: set them
/// inside `f`. A panic in `f` is resumed on the caller.
pub fn on_pool_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// A new buffer of `len` elements made of blocks of `s` (the last may be shorter), every
/// block written in full by `f(block_index, block)`, in parallel when large. No zero fill
/// first: the blocks cover the buffer.
pub(crate) fn per_block<U: Send>(len: usize, s: usize, f: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync) -> Vec<U> {
    strided::build(len, |out| fill_blocks(out, s, f))
}

/// Writes every block of `s` elements of `out` (the last may be shorter) by
/// `f(block_index, block)`, in parallel when `out` is large: [`per_block`] on a buffer the
/// caller holds.
pub(crate) fn fill_blocks<U: Send>(out: &mut [MaybeUninit<U>], s: usize, f: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync) {
    if s == 0 {
        return;
    }
    if out.len() >= PAR_MIN_ELEMS {
        out.par_chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
    } else {
        out.chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
    }
}

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
