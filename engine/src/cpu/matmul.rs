//! Batched matrix products on the host: each batch's product handed to the GEMM
//! (`cpu/gemm.rs`) with the operands' own strides, so transposed or expanded views are never
//! copied.

use crate::cpu::gemm::{self, Gemm, MatRef};
use crate::cpu::strided::build;
use crate::layout::Layout;
use half::bf16;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `a @ b` for every batch index: `a` (`[.., m, k]`) and `b` (`[.., k, n]`) are whole storage
/// buffers seen through their layouts, whose batch dims broadcast to `batch`; the result is a
/// contiguous `[batch.., m, n]`.
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm<T: Gemm>(ab: &[T], la: &Layout, bb: &[T], lb: &Layout, batch: &[usize], m: usize, k: usize, n: usize) -> Vec<T> {
    batched(ab, la, bb, lb, batch, m, k, n, |am, bm, c| T::gemm_uninit(m, k, n, T::one(), am, bm, c, n))
}

/// [`batched_gemm`] of bf16 operands on the bf16 dot-product kernel, the f32 accumulators
/// returned (the caller rounds them once); `None` where this CPU has no such kernel
/// ([`gemm::bf16_gemm_available`]).
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm_bf16(
    ab: &[bf16],
    la: &Layout,
    bb: &[bf16],
    lb: &Layout,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Option<Vec<f32>> {
    gemm::bf16_gemm_available().then(|| {
        batched(ab, la, bb, lb, batch, m, k, n, |am, bm, c| {
            // Cannot fail: availability is decided once per process, and was true above.
            assert!(gemm::gemm_bf16_uninit(m, k, n, am, bm, c, n), "bf16 GEMM unavailable");
        })
    })
}

/// Runs `product(a_i, b_i, c_i)` for every batch index `i` (`c_i` the `m × n` block of the
/// contiguous result, not yet initialized: `product` must write every element of it, as a
/// GEMM with beta zero does).
#[allow(clippy::too_many_arguments)]
fn batched<A: Sync, C: Copy + Send>(
    ab: &[A],
    la: &Layout,
    bb: &[A],
    lb: &Layout,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    product: impl Fn(MatRef<A>, MatRef<A>, &mut [MaybeUninit<C>]) + Sync,
) -> Vec<C> {
    let nb: usize = batch.iter().product();
    let total = nb * m * n;
    let mut out = Vec::with_capacity(total);
    let a_batch = batch_offsets(la, batch);
    let b_batch = batch_offsets(lb, batch);
    let (ra, ca) = (la.strides[la.rank() - 2], la.strides[la.rank() - 1]);
    let (rb, cb) = (lb.strides[lb.rank() - 2], lb.strides[lb.rank() - 1]);
    let one = |i: usize, c: &mut [MaybeUninit<C>]| {
        let am = MatRef { data: ab, offset: a_batch[i], rs: ra, cs: ca };
        let bm = MatRef { data: bb, offset: b_batch[i], rs: rb, cs: cb };
        product(am, bm, c);
    };
    if total == 0 {
        return out;
    }
    let blocks = &mut out.spare_capacity_mut()[..total];
    // Small matrices in a batch: parallelize over the batch. A single or large product
    // relies on the GEMM's own threading inside one call.
    if nb > 1 && m * n * k < (1 << 21) {
        blocks.par_chunks_mut(m * n).enumerate().for_each(|(i, c)| one(i, c));
    } else {
        blocks.chunks_mut(m * n).enumerate().for_each(|(i, c)| one(i, c));
    }
    // SAFETY: every block was written whole by `product` (its contract).
    unsafe { out.set_len(total) };
    out
}

/// `a @ b + bias` for one `m×k` by `k×n` product, `bias` (`n` contiguous values) added to
/// every row, in the GEMM's store ([`Gemm::gemm_bias_uninit`]): no pass of its own and no
/// second buffer (PyTorch's `addmm`). The bias enters with the first reduction block rather
/// than after the last, so the result rounds differently from `matmul` then `add` (within a
/// few ulp of either).
#[allow(clippy::too_many_arguments)]
pub fn gemm_add_rows<T: Gemm>(ab: &[T], la: &Layout, bb: &[T], lb: &Layout, bias: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    debug_assert_eq!(bias.len(), n);
    let am = MatRef { data: ab, offset: la.offset as isize, rs: la.strides[0], cs: la.strides[1] };
    let bm = MatRef { data: bb, offset: lb.offset as isize, rs: lb.strides[0], cs: lb.strides[1] };
    build(m * n, |out| T::gemm_bias_uninit(m, k, n, am, bm, bias, out, n))
}

/// Storage offset of each batch matrix of `l` (rank ≥ 2) broadcast over `batch`.
/// The storage offset of each batch's matrix, row-major over `batch`.
fn batch_offsets(l: &Layout, batch: &[usize]) -> Vec<isize> {
    let lead = Layout { shape: l.shape[..l.rank() - 2].to_vec(), strides: l.strides[..l.rank() - 2].to_vec(), offset: l.offset };
    let strides = lead.broadcast_strides(batch);
    let nb: usize = batch.iter().product();
    let mut offs = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..nb {
        offs.push(l.offset as isize + idx.iter().zip(&strides).map(|(&i, &s)| i as isize * s).sum::<isize>());
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    offs
}
