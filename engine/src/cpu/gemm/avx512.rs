//! The AVX-512 micro-kernel: one `MR × NR` tile of `c = alpha·a·b + beta·c` from a packed
//! `a` panel (`MR` rows, see [`super::pack::pack_a`]; or `MR` rows of `a` read where they lie,
//! see [`Fma::reads_a_in_place`]) and a packed `b` panel (`kc × NR`).
//!
//! The tile is 12 rows × 2 vectors (32 f32 or 16 f64 columns): 24 accumulators of the 32
//! zmm registers, so each reduction step loads 2 vectors of `b` and broadcasts 12 scalars of
//! `a` (folded into the FMAs as `{1toN}` memory operands) for 24 FMAs, which keeps both FMA
//! ports busy with loads to spare. Every accumulator sums its products in the order of the
//! reduction, one FMA per step, so a tile's results do not depend on where it sits in the
//! output or on which thread computes it.

use super::blocked::{Epilogue, Kernel};
use super::pack::{a_panel_len, pack, pack_a, Strided};
use core::arch::x86_64::*;
use std::marker::PhantomData;

/// Rows of a tile (scalars of `a` broadcast per step).
pub(super) const MR: usize = 12;
/// Vectors per tile row.
const VECS: usize = 2;
/// Reduction steps per chunk of an `a` panel packed from a row-major `a` (see
/// [`super::pack::pack_a`]).
pub(super) const CHUNK: usize = 8;
/// The widest product whose row-major or column-major `a` is read in place rather than
/// packed: packing pays for itself when each packed panel serves many `b` panels, not in
/// narrow products (attention heads, projections down to the model width, weight gradients
/// of layers at most this wide).
const IN_PLACE_MAX_COLUMNS: usize = 256;
/// How many reduction steps ahead the kernel asks for `b`'s panel (from L2).
const PREFETCH_STEPS: usize = 8;

/// An element type with an AVX-512 tile: its vector type and the handful of operations the
/// kernel needs, each one instruction (inlined into the kernel, which has the feature).
pub(super) trait Avx512Elem: bytemuck::Pod + Default + PartialEq + Send + Sync {
    type V: Copy;
    /// Lanes per zmm register.
    const LANES: usize;
    /// Columns of a tile.
    const NR: usize = VECS * Self::LANES;
    const ZERO: Self;
    const ONE: Self;
    /// Reduction depth of one packed block (`kc`): an `a` panel (`kc × MR`) stays in L1
    /// (48 KiB here) while the kernel walks the `b` panels, so about 18 KiB.
    const KC: usize;
    /// Columns of one packed `b` block (`kc × NC`), which stays in L2 (2 MiB here).
    const NC: usize;
    /// [`pack`] into `NR`-column panels (a constant there, which the generic `NR` cannot be).
    unsafe fn pack_b(src: Strided<Self>, depth: usize, width: usize, dst: &mut [Self]);
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: Self) -> Self::V;
    unsafe fn load(p: *const Self) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The first `n ≤ LANES` elements at `p` (others zero; nothing past them is read).
    unsafe fn load_first(p: *const Self, n: usize) -> Self::V;
    /// Stores the first `n ≤ LANES` lanes of `v` at `p`.
    unsafe fn store_first(p: *mut Self, v: Self::V, n: usize);
}

/// Implements [`Avx512Elem`] for `$t` with the `$s` (`ps` or `pd`) intrinsics.
macro_rules! impl_avx512_elem {
    ($t:ty, $v:ty, $lanes:literal, $kc:literal, $nc:literal, $mask:ty,
     $setzero:ident, $set1:ident, $loadu:ident, $mul:ident, $fmadd:ident, $maskz_loadu:ident, $mask_storeu:ident) => {
        impl Avx512Elem for $t {
            type V = $v;
            const LANES: usize = $lanes;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const KC: usize = $kc;
            const NC: usize = $nc;
            unsafe fn pack_b(src: Strided<$t>, depth: usize, width: usize, dst: &mut [$t]) {
                pack::<$t, { VECS * $lanes }>(src, depth, width, dst)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn zero() -> $v {
                $setzero()
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn splat(x: $t) -> $v {
                $set1(x)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn load(p: *const $t) -> $v {
                $loadu(p)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn mul(a: $v, b: $v) -> $v {
                $mul(a, b)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn fma(a: $v, b: $v, c: $v) -> $v {
                $fmadd(a, b, c)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn load_first(p: *const $t, n: usize) -> $v {
                $maskz_loadu(lane_mask(n) as $mask, p)
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn store_first(p: *mut $t, v: $v, n: usize) {
                $mask_storeu(p, lane_mask(n) as $mask, v)
            }
        }
    };
}
impl_avx512_elem!(
    f32,
    __m512,
    16,
    384,
    768,
    __mmask16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_mul_ps,
    _mm512_fmadd_ps,
    _mm512_maskz_loadu_ps,
    _mm512_mask_storeu_ps
);
impl_avx512_elem!(
    f64,
    __m512d,
    8,
    192,
    384,
    __mmask8,
    _mm512_setzero_pd,
    _mm512_set1_pd,
    _mm512_loadu_pd,
    _mm512_mul_pd,
    _mm512_fmadd_pd,
    _mm512_maskz_loadu_pd,
    _mm512_mask_storeu_pd
);

/// The FMA tile of `T` as a [`Kernel`] of the blocked loop nest.
pub(super) struct Fma<T>(PhantomData<T>);

impl<T: Avx512Elem> Kernel for Fma<T> {
    type In = T;
    type Out = T;
    const MR: usize = MR;
    const NR: usize = T::NR;
    const KC: usize = T::KC;
    const NC: usize = T::NC;
    const K_UNIT: usize = 1;
    const ONE: T = T::ONE;

    /// The chunk of [`pack_a`]: a row-major `a` packs in runs along its rows.
    fn a_layout(a: &Strided<T>) -> usize {
        if a.cs == 1 {
            CHUNK
        } else {
            1
        }
    }

    fn a_panel_len(kc: usize, ch: usize) -> usize {
        a_panel_len(MR, kc, ch)
    }

    fn b_panel_len(kc: usize) -> usize {
        kc * T::NR
    }

    unsafe fn pack_a(src: Strided<T>, rows: usize, depth: usize, ch: usize, dst: &mut [T]) {
        if ch == 1 {
            pack_a::<T, MR, 1>(src, rows, depth, dst)
        } else {
            pack_a::<T, MR, CHUNK>(src, rows, depth, dst)
        }
    }

    unsafe fn pack_b(src: Strided<T>, depth: usize, width: usize, dst: &mut [T]) {
        T::pack_b(src, depth, width, dst)
    }

    /// A row-major `a` (unit column stride, rows forward) or a column-major one (unit row
    /// stride, columns forward: a weight gradient's `dyᵀ`) in a product of at most
    /// [`IN_PLACE_MAX_COLUMNS`] columns: its panels are read where they lie (`tile` with
    /// `lda > 0`). A column-major panel is the packed layout with `a`'s column stride for
    /// `MR` (the ViT weight gradients `dyᵀ·x` run 5–9% faster unpacked; BENCHMARKS,
    /// twenty-first session).
    fn reads_a_in_place(a: &Strided<T>, n: usize) -> bool {
        let row_major = a.cs == 1 && a.rs > 0;
        let col_major = a.rs == 1 && a.cs > 0;
        (row_major || col_major) && n <= IN_PLACE_MAX_COLUMNS
    }

    /// One tile: `c[i][j] = alpha·Σ_p a[p][i]·b[p][j] + beta·c[i][j]` for `i < rows ≤ MR`,
    /// `j < cols ≤ NR`, with `a` a packed panel of `MR` rows (cut in chunks of `ch` steps,
    /// 1 or [`CHUNK`], see [`super::pack::pack_a`]) and `b` one `kc × NR` (both zero padded past
    /// `rows` / `cols`). `c` is read only when `beta ≠ 0` (so NaNs in it are
    /// ignored otherwise, as BLAS does). Edge tiles run a smaller register tile
    /// ([`with_tile_size`]). With `lda > 0`, `a` is instead read where it lies: `rows` rows of
    /// a row-major `a`, `lda` apart (`ch` is then [`CHUNK`]), or the columns of a
    /// column-major one, `lda` apart (`ch` is then 1).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `kc.div_ceil(ch)·ch·MR` elements (or, with `lda > 0`,
    /// `rows` rows of `kc` readable elements `lda` apart, or `kc` columns of `MR` `lda` apart)
    /// and `b` `kc·NR`; `c` is valid for `rows` rows of `cols` elements with row stride `ldc`.
    unsafe fn tile(
        kc: usize,
        ch: usize,
        a: *const T,
        lda: usize,
        b: *const T,
        c: *mut T,
        ldc: usize,
        rows: usize,
        cols: usize,
        ep: Epilogue<T>,
    ) {
        macro_rules! run {
            ($r:literal, $v:literal) => {
                if lda > 0 && ch == 1 {
                    tile_of::<T, $r, $v, 1, true>(kc, a, lda, b, c, ldc, rows, cols, ep)
                } else if lda > 0 {
                    tile_of::<T, $r, $v, CHUNK, true>(kc, a, lda, b, c, ldc, rows, cols, ep)
                } else if ch == 1 {
                    tile_of::<T, $r, $v, 1, false>(kc, a, 0, b, c, ldc, rows, cols, ep)
                } else {
                    tile_of::<T, $r, $v, CHUNK, false>(kc, a, 0, b, c, ldc, rows, cols, ep)
                }
            };
        }
        with_tile_size!(rows, cols, T::LANES, run)
    }
}

/// A mask of the low `n` bits (`n ≤ 16`).
#[inline(always)]
fn lane_mask(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

/// Runs `$run!(ROWS, VECTORS)` with the smallest register tile (4, 8 or [`MR`] rows × 1 or
/// 2 vectors of `$lanes`) that covers `$rows` rows and `$cols` columns: edge tiles run a
/// smaller tile rather than multiplying padding. Shared by every tile kernel.
macro_rules! with_tile_size {
    ($rows:expr, $cols:expr, $lanes:expr, $run:ident) => {{
        let (rows, one_vector) = ($rows, $cols <= $lanes);
        if rows <= 4 && one_vector {
            $run!(4, 1)
        } else if rows <= 8 && one_vector {
            $run!(8, 1)
        } else if one_vector {
            $run!(12, 1)
        } else if rows <= 4 {
            $run!(4, 2)
        } else if rows <= 8 {
            $run!(8, 2)
        } else {
            $run!(12, 2)
        }
    }};
}
pub(super) use with_tile_size;

/// [`Kernel::tile`] of [`Fma`] with a register tile of `ROWS ≤ MR` rows × `V ≤ VECS` vectors, for an `a`
/// panel in chunks of `CH` steps, or (`IN_PLACE`) for `a` read where it lies: `ROWS` rows of
/// a row-major `a`, `lda` apart (`CH` = [`CHUNK`]), or the columns of a column-major `a`, `lda`
/// apart (`CH` = 1). The same steps in the same order, only the addresses differ.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_of<T: Avx512Elem, const ROWS: usize, const V: usize, const CH: usize, const IN_PLACE: bool>(
    kc: usize,
    a: *const T,
    lda: usize,
    b: *const T,
    c: *mut T,
    ldc: usize,
    rows: usize,
    cols: usize,
    ep: Epilogue<T>,
) {
    let mut acc = [[T::zero(); V]; ROWS];
    // Where step `p` of row `i` lies: `(p / CH)·chunk + i·row_step + p % CH`.
    let (row_step, chunk) = match (IN_PLACE, CH) {
        // A column-major `a` is a panel in steps of one whose columns lie `lda` apart.
        (true, 1) => (1, lda),
        (true, _) => (lda, CH),
        (false, _) => (CH, MR * CH),
    };
    // One reduction step: `a`'s scalars for this step are `row_step` apart, `b`'s row is at `bp`.
    macro_rules! step {
        ($ap:expr, $bp:expr) => {{
            let (ap, bp): (*const T, *const T) = ($ap, $bp);
            // Wrapping: near the panel's end this points past it, where a prefetch is harmless.
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_STEPS * T::NR).cast());
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_STEPS * T::NR + T::LANES).cast());
            let mut bv = [T::zero(); V];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = T::load(bp.add(v * T::LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = T::splat(*ap.add(i * row_step));
                for (r, &bv) in row.iter_mut().zip(&bv) {
                    *r = T::fma(ai, bv, *r);
                }
            }
        }};
    }
    let chunks = kc / CH;
    for ch in 0..chunks {
        let (ac, bc) = (a.add(ch * chunk), b.add(ch * CH * T::NR));
        for q in 0..CH {
            step!(ac.add(q), bc.add(q * T::NR));
        }
    }
    let (ac, bc) = (a.add(chunks * chunk), b.add(chunks * CH * T::NR));
    for q in 0..kc % CH {
        step!(ac.add(q), bc.add(q * T::NR));
    }
    store_tile(&acc, c, ldc, rows, cols, ep)
}

/// Writes a tile's accumulators: `c = alpha·acc + beta·c + bias` for the first `rows` rows
/// and `cols` columns (see [`Epilogue`]).
///
/// # Safety
/// The CPU has AVX-512F; `c` is valid for `rows` rows of `cols` elements with row stride
/// `ldc`; a bias holds `cols` elements.
///
/// Always inlined into the tile kernels (which enable AVX-512F, so the intrinsics below
/// inline there too): called, it took the accumulators by reference, which put them on the
/// stack and made every tile start with a 1.5 KiB `memset` (2% of an MAE step).
#[inline(always)]
pub(super) unsafe fn store_tile<T: Avx512Elem, const ROWS: usize, const V: usize>(
    acc: &[[T::V; V]; ROWS],
    c: *mut T,
    ldc: usize,
    rows: usize,
    cols: usize,
    ep: Epilogue<T>,
) {
    let (alpha, beta, beta_v, one) = (T::splat(ep.alpha), ep.beta, T::splat(ep.beta), T::splat(T::ONE));
    let bias: [T::V; V] = std::array::from_fn(|v| {
        let n = cols.saturating_sub(v * T::LANES).min(T::LANES);
        if ep.bias.is_null() || n == 0 {
            T::zero()
        } else {
            T::load_first(ep.bias.add(v * T::LANES), n)
        }
    });
    for (i, row) in acc.iter().enumerate().take(rows) {
        let ci = c.add(i * ldc);
        for (v, &r) in row.iter().enumerate() {
            let n = cols.saturating_sub(v * T::LANES).min(T::LANES);
            if n == 0 {
                break;
            }
            let cv = ci.add(v * T::LANES);
            let mut out = T::mul(alpha, r);
            if beta != T::ZERO {
                out = T::fma(beta_v, T::load_first(cv, n), out);
            }
            if !ep.bias.is_null() {
                out = T::fma(one, bias[v], out);
            }
            T::store_first(cv, out, n);
        }
    }
}
