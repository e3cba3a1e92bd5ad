//! The blocked GEMM around the AVX-512 micro-kernel: BLIS's loop nest, threaded with rayon
//! over blocks of the output.
//!
//! For each block of `NC` columns and each block of `KC` reduction steps, the `b` block is
//! packed once (it stays in L2 while it is used), then tasks take `MC`-row slices of `a`
//! (packed per task), and run the kernel over each `MR`-row panel (which stays in L1) times
//! each `NR`-column panel of the `b` block. Reduction blocks after the first add to `c`
//! (`beta = 1`).
//!
//! Determinism: threads only ever split the output (row slices, and column ranges of a `b`
//! block when there are few rows); the reduction is blocked by `k` alone. So each element of
//! `c` sees the same sequence of FMAs and stores whatever the thread count.

use super::avx512::{tile, Avx512Elem, CHUNK, MR};
use super::pack::{a_panel_len, pack_a, Strided};
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// Below this many multiply-adds a product runs on the calling thread. A product is two
/// rayon fork-joins per packed block, and waking the other thread costs tens of
/// microseconds on a busy machine: at 2²⁰ (16×144×784, one ResNet im2col sample) two threads
/// measured 1.5× slower than one, at 2²² (~50 µs on one core) they pay off.
const PAR_MIN_MACS: usize = 1 << 22;

/// Rows of `a` one task packs and multiplies (`MC = MC_PANELS · MR`): small enough that two
/// threads split a 1024-row product evenly (the slices share no packing, so small costs
/// nothing but the task itself).
const MC_PANELS: usize = 4;

/// The output seen by the tasks that write its disjoint tiles.
#[derive(Clone, Copy)]
struct Out<T> {
    ptr: *mut T,
    ldc: usize,
}

// SAFETY: tasks write disjoint tiles of the caller's `&mut` output, which outlives them.
unsafe impl<T: Send> Send for Out<T> {}
unsafe impl<T: Send> Sync for Out<T> {}

impl<T> Out<T> {
    /// Element (i, j).
    ///
    /// # Safety
    /// (i, j) lies inside the output.
    unsafe fn at(&self, i: usize, j: usize) -> *mut T {
        self.ptr.add(i * self.ldc + j)
    }
}

/// A packing buffer line: 64-byte aligned, so packed panels start on cache lines.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([u64; 8]);

thread_local! {
    static A_PANELS: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
    static B_BLOCK: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` elements of this thread's `cell`, grown when too small and
/// kept for the next product. A nested product on the same thread (rayon may run another
/// task here while this one waits) finds the cell empty and allocates its own.
fn with_buffer<T: Avx512Elem, R>(cell: &'static LocalKey<Cell<Vec<Line>>>, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = cell.take();
    let lines = (len * size_of::<T>()).div_ceil(size_of::<Line>());
    if buf.len() < lines {
        buf = vec![Line::default(); lines];
    }
    // SAFETY: the lines hold at least `len` elements' bytes, aligned for `T` (64 bytes), and
    // every bit pattern is a valid f32 / f64.
    let r = f(unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) });
    cell.set(buf);
    r
}

/// `n` split into equal blocks of at most `max`, rounded up to a multiple of `unit`: fewer
/// ragged edges than cutting `max`-sized blocks (1024 columns pack as 2 × 512, not
/// 768 + 256). Depends only on `n`, so the reduction is blocked the same way on every run.
fn block_size(n: usize, max: usize, unit: usize) -> usize {
    n.div_ceil(n.div_ceil(max)).next_multiple_of(unit)
}

/// `c = alpha·a·b + beta·c` for `a` `m × k`, `b` `k × n` and `c` row-major with row stride
/// `ldc`; `m, n, k ≥ 1`.
///
/// # Safety
/// The CPU has AVX-512F; every element of the `m × k` view `a` and `k × n` view `b` is
/// readable, and `c` is valid for `m` rows of `n` elements with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<T: Avx512Elem>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: Strided<T>,
    b: Strided<T>,
    beta: T,
    c: *mut T,
    ldc: usize,
) {
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_MACS;
    let (nr, mc) = (T::NR, MC_PANELS * MR);
    let nc_max = block_size(n, T::NC, nr);
    let kc_max = block_size(k, T::KC, 1);
    let out = Out { ptr: c, ldc };
    let m_slices = m.div_ceil(mc);
    // A row-major `a` packs in runs along its rows (see `pack_a`).
    let ch = if a.cs == 1 { CHUNK } else { 1 };
    with_buffer(&B_BLOCK, kc_max * nc_max, |b_block: &mut [T]| {
        for j0 in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - j0);
            let b_panels = nc.div_ceil(nr);
            // Few row slices: split the columns too, so every thread has work.
            let n_split = if parallel { (2 * threads).div_ceil(m_slices).min(b_panels) } else { 1 };
            let panels_per_split = b_panels.div_ceil(n_split);
            for p0 in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - p0);
                let beta = if p0 == 0 { beta } else { T::ONE };
                let packed_b = &mut b_block[..b_panels * kc * nr];
                let b_src = b.from(p0, j0);
                if parallel {
                    packed_b
                        .par_chunks_mut(kc * nr)
                        .enumerate()
                        .for_each(|(q, panel)| T::pack_b(b_src.from(0, q * nr), kc, nr.min(nc - q * nr), panel));
                } else {
                    T::pack_b(b_src, kc, nc, packed_b);
                }
                let packed_b = &*packed_b;
                let task = |t: usize| {
                    let (rows, cols) = (t / n_split * mc, t % n_split * panels_per_split);
                    let mc = mc.min(m - rows);
                    let cols = cols..(cols + panels_per_split).min(b_panels);
                    let a_src = a.from(rows, p0);
                    let panel_len = a_panel_len(MR, kc, ch);
                    with_buffer(&A_PANELS, mc.div_ceil(MR) * panel_len, |packed_a: &mut [T]| {
                        if ch == 1 {
                            pack_a::<T, MR, 1>(a_src, mc, kc, packed_a);
                        } else {
                            pack_a::<T, MR, CHUNK>(a_src, mc, kc, packed_a);
                        }
                        for (ip, a_panel) in packed_a.chunks_exact(panel_len).enumerate() {
                            let i = rows + ip * MR;
                            for q in cols.clone() {
                                let j = j0 + q * nr;
                                let c_tile = out.at(i, j);
                                let b_panel = packed_b[q * kc * nr..].as_ptr();
                                tile(kc, ch, a_panel.as_ptr(), b_panel, c_tile, out.ldc, MR.min(m - i), nr.min(n - j), alpha, beta);
                            }
                        }
                    });
                };
                let tasks = m_slices * n_split;
                if parallel {
                    (0..tasks).into_par_iter().for_each(task);
                } else {
                    (0..tasks).for_each(task);
                }
            }
        }
    });
}
