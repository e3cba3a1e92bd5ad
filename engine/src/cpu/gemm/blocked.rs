//! The blocked GEMM around a micro-kernel ([`Kernel`]: the f32 / f64 FMA tile of
//! `avx512.rs`, the bf16 dot-product tile of `bf16.rs`, the AMX tile of `amx.rs`): BLIS's
//! loop nest, threaded with rayon by splitting the output once.
//!
//! For each block of `NC` columns and each block of `KC` reduction steps, the `b` block is
//! packed once (it stays in L2 while it is used), then `MC`-row slices of `a` are packed in
//! turn, and the kernel runs over each `MR`-row panel (which stays in L1) times each
//! `NR`-column panel of the `b` block. Reduction blocks after the first add to `c`
//! (`beta = 1`). A kernel may instead read whole `MR`-row panels of `a` where they lie
//! ([`Kernel::reads_a_in_place`]): the f32 / f64 tile does for a row-major or column-major
//! `a` in products up to 256 columns wide, where a packed panel would serve only a few `b`
//! panels (attention heads 10–25% faster, narrow convolutions' im2col products up to 27%,
//! ViT weight gradients 5–9%; BENCHMARKS, nineteenth and twenty-first sessions). Ragged last
//! panels are still packed.
//!
//! Threads: the output is cut once into one part per thread (rows, or columns where there
//! are too few rows; see [`Cut::choose`]) and each part runs the whole loop nest on its own,
//! with its own packing buffers: one fork-join per product. The earlier design shared each
//! packed `b` block between the threads, which took two fork-joins per block (18 for a
//! 192 × 3136 × 192 weight gradient); the cut runs 1.1–1.5× faster on two cores (BENCHMARKS,
//! thirteenth session, "GEMM threads").
//!
//! Determinism: the reduction is blocked by `k` alone and a tile's result does not depend on
//! where the tile sits, so each element of `c` sees the same sequence of FMAs and stores
//! whatever the thread count and the cut.

use super::pack::Strided;
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// A micro-kernel and the packed layouts it reads: what the loop nest below needs to know.
pub(super) trait Kernel {
    /// The operands' element (packed as it is).
    type In: bytemuck::Pod + Send + Sync;
    /// The output's element (the accumulator's).
    type Out: Copy + PartialEq + Send + Sync;
    /// Rows of a tile (and of a packed `a` panel).
    const MR: usize;
    /// Columns of a tile (and of a packed `b` panel).
    const NR: usize;
    /// Reduction depth of one packed block: an `a` panel stays in L1 while the kernel walks
    /// the `b` panels.
    const KC: usize;
    /// Columns of one packed `b` block, which stays in L2.
    const NC: usize;
    /// Every reduction block but the last is a multiple of this many steps.
    const K_UNIT: usize;
    const ONE: Self::Out;
    /// How `a` is packed for this view (a kernel-specific layout tag passed back to
    /// [`Kernel::pack_a`] and [`Kernel::tile`]).
    fn a_layout(a: &Strided<Self::In>) -> usize;
    /// Elements of one packed `a` panel of depth `kc`.
    fn a_panel_len(kc: usize, layout: usize) -> usize;
    /// Elements of one packed `b` panel of depth `kc`.
    fn b_panel_len(kc: usize) -> usize;
    /// Packs `rows × depth` of `a` into `rows.div_ceil(MR)` panels.
    ///
    /// # Safety
    /// Every element (i, p), i < rows, p < depth, of `src` is readable.
    unsafe fn pack_a(src: Strided<Self::In>, rows: usize, depth: usize, layout: usize, dst: &mut [Self::In]);
    /// Packs `depth × width` of `b` into `width.div_ceil(NR)` panels.
    ///
    /// # Safety
    /// Every element (p, j), p < depth, j < width, of `src` is readable.
    unsafe fn pack_b(src: Strided<Self::In>, depth: usize, width: usize, dst: &mut [Self::In]);
    /// Whether the kernel reads whole `MR`-row panels of this `a` where they lie (its
    /// [`Kernel::tile`] with `lda > 0`) instead of packing them, in a product `n` columns wide.
    fn reads_a_in_place(_a: &Strided<Self::In>, _n: usize) -> bool {
        false
    }
    /// One tile, `c = alpha·a·b + beta·c (+ bias)` for `rows ≤ MR`, `cols ≤ NR` (see
    /// [`Epilogue`]). With `lda = 0`, `a` is a packed panel; with `lda > 0` (only where
    /// [`Kernel::reads_a_in_place`] said so), `MR` rows of an unpacked `a`: step `p` of row
    /// `i` at `a + i·lda + p` (unit column stride) or `a + p·lda + i` (unit row stride). The
    /// same products in the same order, so the same bits.
    ///
    /// # Safety
    /// The CPU has the kernel's features; `a` is a packed panel of depth `kc` (or `MR` rows
    /// of `kc` readable elements as above) and `b` one; `c` is valid for `rows` rows of
    /// `cols` elements with row stride `ldc`; a bias holds `cols` elements.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        kc: usize,
        layout: usize,
        a: *const Self::In,
        lda: usize,
        b: *const Self::In,
        c: *mut Self::Out,
        ldc: usize,
        rows: usize,
        cols: usize,
        ep: Epilogue<Self::Out>,
    );
}

/// How a product's result is stored: `c = alpha·a·b + beta·c + bias`, `c` read only when
/// `beta ≠ 0`, `bias` (null: none) a row added to every row of the output, rounded once
/// more. With `beta = 0` that is, bit for bit, filling `c` with the bias rows and storing
/// with `beta = 1`, without that pass over the output (a linear layer's bias).
#[derive(Clone, Copy)]
pub(super) struct Epilogue<T> {
    pub alpha: T,
    pub beta: T,
    pub bias: *const T,
}

// SAFETY: the bias is only read, and outlives the product that reads it.
unsafe impl<T: Sync> Send for Epilogue<T> {}
unsafe impl<T: Sync> Sync for Epilogue<T> {}

/// `c = a·b` in f32.
pub(super) const PLAIN: Epilogue<f32> = Epilogue { alpha: 1.0, beta: 0.0, bias: std::ptr::null() };

impl<T: Copy> Epilogue<T> {
    /// The epilogue `cols` columns further right (the bias moves with them).
    ///
    /// # Safety
    /// A bias holds at least `cols` elements.
    unsafe fn right(self, cols: usize) -> Self {
        Epilogue { bias: if self.bias.is_null() { self.bias } else { self.bias.add(cols) }, ..self }
    }
}

/// Below this many multiply-adds a product runs on the calling thread: waking the other
/// workers costs tens of microseconds on a busy machine. At 2²⁰ (16×144×784, one ResNet
/// im2col sample) two threads measured 1.5× slower than one, at 2²² (~50 µs on one core)
/// they pay off.
const PAR_MIN_MACS: usize = 1 << 22;

/// Rows of `a` packed at a time (`MC = MC_PANELS · MR`): their panels stay in L1/L2 while
/// the kernel walks the packed `b` block.
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
    /// Set while [`serial`] runs: products on this thread do not split across the pool.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
    static A_PANELS: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
    static B_BLOCK: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` elements of this thread's `cell`, grown when too small and
/// kept for the next product. A nested product on the same thread (rayon may run another
/// task here while this one waits) finds the cell empty and allocates its own.
fn with_buffer<T: bytemuck::Pod, R>(cell: &'static LocalKey<Cell<Vec<Line>>>, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = cell.take();
    let lines = (len * size_of::<T>()).div_ceil(size_of::<Line>());
    if buf.len() < lines {
        buf = vec![Line::default(); lines];
    }
    // SAFETY: the lines hold at least `len` elements' bytes, aligned for `T` (64 bytes), and
    // every bit pattern is a valid `T` (it is `Pod`).
    let r = f(unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) });
    cell.set(buf);
    r
}

/// Runs `f` with every product it makes on this thread alone. For callers that already run
/// many independent products in parallel (Winograd's 36), where splitting each one again
/// would pack its `b` once per part and add a fork-join per product.
pub(crate) fn serial<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the switch back as it was, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.set(self.0);
        }
    }
    let _restore = Restore(SERIAL.replace(true));
    f()
}

/// `n` split into equal blocks of at most `max`, rounded up to a multiple of `unit`: fewer
/// ragged edges than cutting `max`-sized blocks (1024 columns pack as 2 × 512, not
/// 768 + 256). Depends only on `n`, so the reduction is blocked the same way on every run.
fn block_size(n: usize, max: usize, unit: usize) -> usize {
    n.div_ceil(n.div_ceil(max)).next_multiple_of(unit)
}

/// `c = alpha·a·b + beta·c (+ bias)` ([`Epilogue`]) for `a` `m × k`, `b` `k × n` and `c`
/// row-major with row stride `ldc`; `m, n, k ≥ 1`.
///
/// # Safety
/// The CPU has the kernel's features; every element of the `m × k` view `a` and `k × n` view `b` is
/// readable, `c` is valid for `m` rows of `n` elements with row stride `ldc`, and a bias holds
/// `n` elements.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<K: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    a: Strided<K::In>,
    b: Strided<K::In>,
    ep: Epilogue<K::Out>,
    c: *mut K::Out,
    ldc: usize,
) {
    let threads = if SERIAL.get() { 1 } else { rayon::current_num_threads() };
    let cut = if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_MACS { Cut::choose::<K>(m, n, threads) } else { None };
    let Some(cut) = cut else {
        return loop_nest::<K>(m, k, n, a, b, ep, c, ldc);
    };
    let out = Out { ptr: c, ldc };
    let run_parts = move || {
        (0..cut.parts).into_par_iter().for_each(|t| {
            let (start, len) = cut.part(t);
            if cut.columns {
                loop_nest::<K>(m, k, len, a, b.from(0, start), ep.right(start), out.at(0, start), out.ldc)
            } else {
                loop_nest::<K>(len, k, n, a.from(start, 0), b, ep, out.at(start, 0), out.ldc)
            }
        })
    };
    // From outside the pool, the parts are handed to its workers in one go (the caller
    // parks once, not once per fork-join); on a worker, the caller takes a part itself.
    if rayon::current_thread_index().is_some() {
        run_parts()
    } else {
        crate::cpu::on_pool_worker(run_parts)
    }
}

/// How a parallel product splits its output: `parts` ranges of whole kernel tiles along the
/// columns or the rows.
#[derive(Clone, Copy)]
struct Cut {
    columns: bool,
    /// Length of the output along the cut.
    len: usize,
    /// Length of each part but the last (a multiple of the tile's side).
    per: usize,
    parts: usize,
}

impl Cut {
    /// A cut into at most `threads` parts, or `None` when the output has a single tile.
    ///
    /// Rows, unless there are fewer row tiles than threads and more column tiles than row
    /// tiles: cutting the rows measured as fast or faster than cutting the columns on every
    /// shape of the engine bench (f32: up to 1.17× on the ViT weight gradient 192 × 3136 ×
    /// 192; AMX bf16: 1.5× on the ViT / MAE qkv products, 3136 × 192 × 576 and 768 × 192 ×
    /// 576), though each row part packs all of `b`.
    fn choose<K: Kernel>(m: usize, n: usize, threads: usize) -> Option<Cut> {
        let (row_tiles, col_tiles) = (m.div_ceil(K::MR), n.div_ceil(K::NR));
        if row_tiles <= 1 && col_tiles <= 1 {
            return None;
        }
        let columns = row_tiles < threads && col_tiles > row_tiles;
        let (len, tile, tiles) = if columns { (n, K::NR, col_tiles) } else { (m, K::MR, row_tiles) };
        let per = tiles.div_ceil(threads) * tile;
        Some(Cut { columns, len, per, parts: len.div_ceil(per) })
    }

    /// Start and length of part `t`.
    fn part(&self, t: usize) -> (usize, usize) {
        let start = t * self.per;
        (start, self.per.min(self.len - start))
    }
}

/// One tile of a row of tiles, given its `b` panel, its corner of `c`, its rows and columns
/// and its epilogue (the `a` panel is the caller's).
type TileAt<'a, K> = dyn Fn(*const <K as Kernel>::In, *mut <K as Kernel>::Out, usize, usize, Epilogue<<K as Kernel>::Out>) + 'a;

/// The loop nest on the calling thread.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn loop_nest<K: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    a: Strided<K::In>,
    b: Strided<K::In>,
    ep: Epilogue<K::Out>,
    c: *mut K::Out,
    ldc: usize,
) {
    let (mr, nr) = (K::MR, K::NR);
    let mc = MC_PANELS * mr;
    let nc_max = block_size(n, K::NC, nr);
    let kc_max = block_size(k, K::KC, K::K_UNIT);
    let out = Out { ptr: c, ldc };
    let a_layout = K::a_layout(&a);
    let in_place = K::reads_a_in_place(&a, n);
    // What `tile` is given for an `a` read in place: the stride between its rows (unit column
    // stride) or its columns (unit row stride).
    let lda = if a.cs == 1 { a.rs } else { a.cs } as usize;
    let a_panel_len = |kc| K::a_panel_len(kc, a_layout);
    with_buffer(&B_BLOCK, K::b_panel_len(kc_max) * nc_max.div_ceil(nr), |b_block: &mut [K::In]| {
        with_buffer(&A_PANELS, mc.div_ceil(mr) * a_panel_len(kc_max), |a_block: &mut [K::In]| {
            for j0 in (0..n).step_by(nc_max) {
                let nc = nc_max.min(n - j0);
                for p0 in (0..k).step_by(kc_max) {
                    let kc = kc_max.min(k - p0);
                    // Later reduction blocks add to what the first stored (its bias included).
                    let block_ep = if p0 == 0 { ep } else { Epilogue { beta: K::ONE, bias: std::ptr::null(), ..ep } };
                    let b_panel_len = K::b_panel_len(kc);
                    let packed_b = &mut b_block[..nc.div_ceil(nr) * b_panel_len];
                    K::pack_b(b.from(p0, j0), kc, nc, packed_b);
                    let panel_len = a_panel_len(kc);
                    // The tiles of rows `i..` (at most `MR`) against every panel of the `b` block.
                    let row_of_tiles = |i: usize, tile: &TileAt<K>| {
                        for (q, b_panel) in packed_b.chunks_exact(b_panel_len).enumerate() {
                            let j = j0 + q * nr;
                            tile(b_panel.as_ptr(), out.at(i, j), mr.min(m - i), nr.min(n - j), block_ep.right(j));
                        }
                    };
                    for i0 in (0..m).step_by(mc) {
                        let mc = mc.min(m - i0);
                        // Whole panels read in place where the kernel can; the rest is packed.
                        let unpacked = if in_place { mc / mr * mr } else { 0 };
                        for i in (i0..i0 + unpacked).step_by(mr) {
                            let a_rows = a.from(i, p0).ptr;
                            row_of_tiles(i, &|b, c, h, w, ep| K::tile(kc, a_layout, a_rows, lda, b, c, out.ldc, h, w, ep));
                        }
                        let (i0, mc) = (i0 + unpacked, mc - unpacked);
                        if mc == 0 {
                            continue;
                        }
                        let packed_a = &mut a_block[..mc.div_ceil(mr) * panel_len];
                        K::pack_a(a.from(i0, p0), mc, kc, a_layout, packed_a);
                        for (ip, a_panel) in packed_a.chunks_exact(panel_len).enumerate() {
                            row_of_tiles(i0 + ip * mr, &|b, c, h, w, ep| {
                                K::tile(kc, a_layout, a_panel.as_ptr(), 0, b, c, out.ldc, h, w, ep)
                            });
                        }
                    }
                }
            }
        })
    });
}
