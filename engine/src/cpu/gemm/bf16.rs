//! The bf16 micro-kernel: products of bf16 operands accumulated in f32 by AVX-512 BF16's
//! dot-product instruction (`vdpbf16ps`), which multiplies two pairs of bf16 per f32 lane and
//! adds both products to the lane: 32 multiply-adds per instruction where an f32 FMA does 16.
//! On the 2-core EPYC this project measures on, a loop of them sustains about 1.7× the f32
//! FMA rate.
//!
//! Packed layouts (each reduction step pair `(2p, 2p+1)` side by side, an odd depth padded
//! with a zero step): an `a` panel is `[pair][row][2]` (a row's pair is one 32-bit word,
//! broadcast to every lane), a `b` panel `[pair][column][2]` (a vector holds 16 columns' pairs).
//!
//! Rounding: bf16 products are exact in f32; each instruction adds a lane's two products to
//! its accumulator in turn, rounding to nearest even after each, with bf16 and f32 denormals
//! read and written as zero (the instruction's fixed DAZ / FTZ). So the result is the widened
//! f32 product up to summation order and denormals. Like the FMA tile, every accumulator sees
//! its products in reduction order whatever the tile's position or thread.

use super::avx512::{store_tile, with_tile_size, MR};
use super::blocked::{Epilogue, Kernel};
use super::pack::Strided;
use core::arch::x86_64::*;
use half::bf16;

/// f32 lanes per vector.
const LANES: usize = 16;
/// Vectors per tile row.
const VECS: usize = 2;
/// Columns of a tile.
const NR: usize = VECS * LANES;
/// How many step pairs ahead the kernel asks for `b`'s panel.
const PREFETCH_PAIRS: usize = 4;

/// The bf16 dot-product tile as a [`Kernel`] of the blocked loop nest (f32 output).
pub(super) struct Bf16Dot;

impl Kernel for Bf16Dot {
    type In = bf16;
    type Out = f32;
    const MR: usize = MR;
    const NR: usize = NR;
    /// An `a` panel of 256 pairs × 12 rows is 12 KiB (L1 48 KiB).
    const KC: usize = 512;
    /// A `b` block of 512 × 512 bf16 is 512 KiB (L2 1 MiB).
    const NC: usize = 512;
    /// Blocks hold whole pairs.
    const K_UNIT: usize = 2;
    const ONE: f32 = 1.0;

    fn a_layout(_: &Strided<bf16>) -> usize {
        0
    }

    fn a_panel_len(kc: usize, _: usize) -> usize {
        kc.div_ceil(2) * MR * 2
    }

    fn b_panel_len(kc: usize) -> usize {
        kc.div_ceil(2) * NR * 2
    }

    unsafe fn pack_a(src: Strided<bf16>, rows: usize, depth: usize, _: usize, dst: &mut [bf16]) {
        pack_pairs::<MR>(src.transposed(), depth, rows, depth.div_ceil(2), dst)
    }

    unsafe fn pack_b(src: Strided<bf16>, depth: usize, width: usize, dst: &mut [bf16]) {
        pack_pairs::<NR>(src, depth, width, depth.div_ceil(2), dst)
    }

    unsafe fn tile(
        kc: usize,
        _: usize,
        a: *const bf16,
        // Never in place (`reads_a_in_place` is false here): `a` is always a packed panel.
        _: usize,
        b: *const bf16,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        ep: Epilogue<f32>,
    ) {
        macro_rules! run {
            ($r:literal, $v:literal) => {
                tile_of::<$r, $v>(kc, a, b, c, ldc, rows, cols, ep)
            };
        }
        with_tile_size!(rows, cols, LANES, run)
    }
}

/// Packs the `depth × width` block at `src` (`depth` the reduction) into `width.div_ceil(W)`
/// panels of `[pair][W][2]`, each `pairs` pairs long (at least `depth.div_ceil(2)`; the AMX
/// kernel pads to whole tiles), zero past `width`, in the odd step of a last half pair and in
/// the padding pairs. `a` packs through its transpose, so both operands share this.
///
/// # Safety
/// Every element (p, j), p < depth, j < width, of `src` is readable.
pub(super) unsafe fn pack_pairs<const W: usize>(src: Strided<bf16>, depth: usize, width: usize, pairs: usize, dst: &mut [bf16]) {
    debug_assert!(pairs >= depth.div_ceil(2));
    let panels = width.div_ceil(W);
    assert!(dst.len() >= panels * pairs * W * 2, "gemm: packing buffer too small");
    for (q, panel) in dst.chunks_exact_mut(pairs * W * 2).take(panels).enumerate() {
        let j0 = q * W;
        let cols = W.min(width - j0);
        if cols < W || depth % 2 == 1 || pairs > depth.div_ceil(2) {
            panel.fill(bf16::ZERO);
        }
        let src = src.from(0, j0);
        // One 32-bit word per (pair, column): the even step in its low half.
        let words = panel.as_mut_ptr().cast::<u32>();
        let bits = |p: *const bf16| (*p).to_bits() as u32;
        let full_pairs = depth / 2;
        if src.rs == 1 {
            // A column's steps are contiguous (a row-major `a`, a `b` stored transposed as in
            // `x·Wᵀ`): each pair is one unaligned 32-bit read.
            for j in 0..cols {
                let col = src.ptr.offset(j as isize * src.cs);
                for q in 0..full_pairs {
                    *words.add(q * W + j) = col.add(2 * q).cast::<u32>().read_unaligned();
                }
                if depth % 2 == 1 {
                    *words.add(full_pairs * W + j) = bits(col.add(depth - 1));
                }
            }
        } else if src.cs == 1 {
            // A row-major `b` (im2col columns): two contiguous source rows interleaved into
            // words, a loop that vectorizes.
            for q in 0..depth.div_ceil(2) {
                let even = std::slice::from_raw_parts(src.ptr.offset(2 * q as isize * src.rs), cols);
                let row = std::slice::from_raw_parts_mut(words.add(q * W), cols);
                if 2 * q + 1 < depth {
                    let odd = std::slice::from_raw_parts(src.ptr.offset((2 * q + 1) as isize * src.rs), cols);
                    for ((w, e), o) in row.iter_mut().zip(even).zip(odd) {
                        *w = e.to_bits() as u32 | (o.to_bits() as u32) << 16;
                    }
                } else {
                    for (w, e) in row.iter_mut().zip(even) {
                        *w = e.to_bits() as u32;
                    }
                }
            }
        } else {
            // Otherwise walk two source rows (steps) side by side, which reads a row-major
            // `b` in runs.
            for q in 0..depth.div_ceil(2) {
                let even = src.ptr.offset(2 * q as isize * src.rs);
                let odd = (2 * q + 1 < depth).then(|| even.offset(src.rs));
                for j in 0..cols {
                    let lo = bits(even.offset(j as isize * src.cs));
                    let hi = odd.map_or(0, |o| bits(o.offset(j as isize * src.cs)));
                    *words.add(q * W + j) = lo | hi << 16;
                }
            }
        }
    }
}

/// One tile with a register tile of `ROWS ≤ MR` rows × `V ≤ VECS` vectors: `c = alpha·a·b +
/// beta·c` for the first `rows` rows and `cols` columns.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512 BF16; `a` and `b` are packed panels of depth `kc`; `c`
/// is valid for `rows` rows of `cols` elements with row stride `ldc`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_of<const ROWS: usize, const V: usize>(
    kc: usize,
    a: *const bf16,
    b: *const bf16,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    ep: Epilogue<f32>,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; ROWS];
    for p in 0..kc.div_ceil(2) {
        // A row's pair is one aligned 32-bit word of the packed panel.
        let ap = a.add(p * MR * 2).cast::<i32>();
        let bp = b.add(p * NR * 2);
        // Wrapping: near the panel's end this points past it, where a prefetch is harmless.
        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_PAIRS * NR * 2).cast());
        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_PAIRS * NR * 2 + 2 * LANES).cast());
        let bv: [__m512bh; V] = std::array::from_fn(|v| std::mem::transmute(_mm512_loadu_si512(bp.add(v * 2 * LANES).cast())));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(i)));
            for (r, &bv) in row.iter_mut().zip(&bv) {
                *r = _mm512_dpbf16_ps(*r, ai, bv);
            }
        }
    }
    store_tile::<f32, ROWS, V>(&acc, c, ldc, rows, cols, ep)
}
