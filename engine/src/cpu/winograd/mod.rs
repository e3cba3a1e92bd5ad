//! 3×3 convolutions by Winograd's minimal filtering (Lavin & Gray, 2016), F(4×4, 3×3) or
//! F(2×2, 3×3) ([`minimal`]): with F(4×4), each 4×4 block of outputs is computed from a 6×6
//! block of input with 36 multiplies per (input, output) channel pair where the direct
//! convolution spends 144; with F(2×2), each 2×2 block from a 4×4 block with 16 for 36.
//!
//! With `d` an input tile and `g` a 3×3 filter, the output tile is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Summed over input channels, the elementwise products become
//! independent matrix products, one per position ξ of the transform (36 or 16):
//! `M[ξ] = V[ξ] · U[ξ]`, with `V[ξ]` the transformed input tiles `[tiles, in]` and `U[ξ]`
//! the transformed filters `[in, out]`. Those run on the crate's GEMM, so the convolution
//! gets the GEMM's speed on a fraction of the multiplies; the transforms around them are
//! memory traffic, run on 16 channels (or 16 tiles) at a time as the sums of the matrices'
//! nonzero entries, in the AVX-512 or AVX2 copy that `vmath`'s `dispatch!` picks.
//!
//! Only the stride-1, "same"-padded 3×3 convolution (every 3×3 convolution of a ResNet but
//! the stride-2 ones) goes this way, and only where it measured faster than the direct
//! kernels ([`choose`]). The input gradient of such a convolution is the same correlation
//! of the output gradient with the filters flipped and transposed; the weight gradient is
//! the forward pass's transposition (see [`backward_weight`]).
//!
//! Rounding differs from the direct convolution: F(4×4)'s transforms add and subtract
//! inputs of up to 5× and 8× the tile's values around the products, so f32 results carry an
//! error of up to about 1e-5 of the output's largest magnitude where the direct sum's is
//! nearer 1e-6 (the tests and `tests/engine_determinism.rs` bound it against f64); F(2×2)'s
//! are ±1. The order of every operation is fixed by the shapes, so results do not depend on
//! the thread count. The transform of the filters is computed in f64 and rounded once.

mod minimal;
#[cfg(test)]
mod tests;

use crate::cpu::gemm::{Gemm, GemmIsa, MatRef};
use crate::cpu::transpose::transpose_scatter;
use crate::cpu::vmath::{dispatch, VmathIsa};
use crate::cpu::{fill_blocks, per_block, strided};
use crate::dtype::Element;
use crate::kinds::ConvGeom;
use minimal::{F2x2, F4x4, Minimal};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Which minimal-filtering algorithm a convolution runs ([`choose`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tiling {
    /// F(4×4, 3×3): 4×4 output tiles, 36 products.
    F4x4,
    /// F(2×2, 3×3): 2×2 output tiles, 16 products.
    F2x2,
}

/// Fewer input or output channels than this keep the direct kernels: the transforms move
/// `36 · (in + out)` values per tile for `36 · in · out` multiply-adds, so with thin layers
/// they cost as much as the products save. ResNet-18's 64-channel 32×32 convolutions ran as
/// fast either way until the batch ran in cache-sized chunks ([`CHUNK_BYTES`]); now 30%
/// faster. (The narrow ResNet's 64-channel 7×7 ones ran 25% slower: [`MIN_SIDE`].)
pub(crate) const MIN_CHANNELS: usize = 64;
/// Images smaller than this on either side keep the direct kernels or take F(2×2), since
/// the direct kernels skip the taps that fall in the padding there (a 4×4 image is one
/// F(4×4) tile, a 7×7 one a 2×2 grid of tiles that computes 8×8 outputs). One-tile 4×4
/// images would gain (the narrow ResNet's 128-channel convolution at 512 images: 8.2 →
/// 5.3 ms forward), but that changes the default SimCLR model's rounding, and with it the
/// main job's linear probe moved from 0.855 to 0.844, under raw pixels' 0.847
/// (BENCHMARKS.md, seventeenth session).
const MIN_SIDE: usize = 8;
/// F(2×2) takes the small images F(4×4) leaves (from 4 pixels a side) of at least this
/// many channels in and out: ResNet-18's last stage (512 channels, 4×4 on 32×32 inputs,
/// 7×7 on 224×224), 10–22% faster from 32 images up; 256-channel 4×4 and 7×7 convolutions
/// ran up to 11% slower, and the narrow ResNet's 128-channel one keeps its rounding (see
/// [`MIN_SIDE`]).
const MIN_CHANNELS_F2X2: usize = 512;

/// Whether, and how, a convolution of `n` samples, `m` output channels and geometry `g`
/// runs here: 3×3, stride 1, dilation 1, padding 1 on both axes, one group, and then
///
/// * F(4×4) with at least [`MIN_CHANNELS`] channels in and out, at least [`MIN_SIDE`]
///   pixels a side, and at least as many tiles as channels (otherwise the transformed
///   filters, four times the weights, are the larger operand of the products: ResNet-18's
///   512-channel 4×4 stage ran 1.4× slower);
/// * F(2×2) on smaller images of 4 pixels a side or more with at least
///   [`MIN_CHANNELS_F2X2`] channels in and out and at least a quarter as many tiles as
///   channels (128 tiles, 32 images of 4×4: 16 images measured the same either way).
///
/// The input gradient of such a convolution is such a convolution too (channels swapped),
/// and takes the same tiling.
pub(crate) fn choose(g: &ConvGeom, groups: usize, n: usize, m: usize) -> Option<Tiling> {
    let same3x3 = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph, g.pw) == (3, 3, 1, 1, 1, 1, 1, 1);
    if !same3x3 || groups != 1 {
        return None;
    }
    let (channels, side) = (g.channels.min(m), g.h.min(g.w));
    let tiles = |out: usize| n * g.h.div_ceil(out) * g.w.div_ceil(out);
    if channels >= MIN_CHANNELS && side >= MIN_SIDE && tiles(4) >= g.channels.max(m) {
        Some(Tiling::F4x4)
    } else if channels >= MIN_CHANNELS_F2X2 && (4..MIN_SIDE).contains(&side) && 4 * tiles(2) >= g.channels.max(m) {
        Some(Tiling::F2x2)
    } else {
        None
    }
}

/// Whether the Winograd path is switched on: it is unless the environment variable
/// `TESSERA_CONV_WINOGRAD` is `0` or `off` (read once per process), which keeps every
/// convolution on the direct kernels (for A/B benchmarks, or for the direct kernels' rounding).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !matches!(std::env::var("TESSERA_CONV_WINOGRAD").as_deref(), Ok("0") | Ok("off")))
}

/// Calls `$f::<T, W, OUT, IN>($args)` with the algorithm `$tiling` names.
macro_rules! with_tiling {
    ($tiling:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $tiling {
            Tiling::F4x4 => $f::<T, F4x4, 4, 6>($($arg),*),
            Tiling::F2x2 => $f::<T, F2x2, 2, 4>($($arg),*),
        }
    };
}

/// `y = conv(x, w) (+ bias)` for a geometry [`choose`] accepts: `x [n, C, h, w]`,
/// `w [m, C, 3, 3]`, `y [n, m, h, w]`.
pub(crate) fn forward<T: Gemm>(tiling: Tiling, x: &[T], n: usize, w: &[T], m: usize, g: &ConvGeom, bias: Option<&[T]>) -> Vec<T> {
    with_tiling!(tiling, forward_with(x, n, w, m, g, bias))
}

fn forward_with<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    x: &[T],
    n: usize,
    w: &[T],
    m: usize,
    g: &ConvGeom,
    bias: Option<&[T]>,
) -> Vec<T> {
    let c = g.channels;
    let u = transform_filters::<T, W, OUT, IN>(m, c, |o, i, ky, kx| w[((o * c + i) * 3 + ky) * 3 + kx]);
    correlate::<T, W, OUT, IN>(x, n, c, (g.h, g.w), &u, m, bias)
}

/// `dx = convᵀ(dy, w)` for a geometry [`choose`] accepts: `dy [n, m, h, w]`,
/// `w [m, C, 3, 3]`, `dx [n, C, h, w]`. With stride 1 and padding 1 this is the correlation
/// of `dy` (padded by 1) with the filters `w'[i][o][ky][kx] = w[o][i][2 − ky][2 − kx]`.
pub(crate) fn backward_input<T: Gemm>(tiling: Tiling, dy: &[T], n: usize, w: &[T], m: usize, g: &ConvGeom) -> Vec<T> {
    with_tiling!(tiling, backward_input_with(dy, n, w, m, g))
}

fn backward_input_with<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    dy: &[T],
    n: usize,
    w: &[T],
    m: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let c = g.channels;
    let u = transform_filters::<T, W, OUT, IN>(c, m, |i, o, ky, kx| w[((o * c + i) * 3 + (2 - ky)) * 3 + (2 - kx)]);
    correlate::<T, W, OUT, IN>(dy, n, m, (g.h, g.w), &u, c, None)
}

/// `dw = Σ_s dy[s] ⋆ x[s]` for a geometry [`choose`] accepts: `dy [n, m, h, w]`,
/// `x [n, C, h, w]`, `dw [m, C·9]`. The forward pass is `y = Aᵀ [U ⊙ V] A` per tile with
/// `U = G g Gᵀ`, linear in `g`, so its gradient is `Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ V] G`: the
/// transformed output-gradient tiles `Ŷ [m][ξ][tiles]` (zero past the image's edge) and the
/// transformed input tiles `V [tiles][ξ][C]` meet in one product `S[ξ] = Ŷ[ξ] · V[ξ]` per
/// position, summed over every tile of the batch, then each `S[·][o][i]` goes back to 3×3.
pub(crate) fn backward_weight<T: Gemm>(tiling: Tiling, dy: &[T], x: &[T], n: usize, m: usize, g: &ConvGeom) -> Vec<T> {
    with_tiling!(tiling, backward_weight_with(dy, x, n, m, g))
}

fn backward_weight_with<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let c = g.channels;
    let pos = IN * IN;
    let d = Dims::new(c, m, g.h, g.w, OUT);
    let isa = VmathIsa::selected();
    let (in_sample, out_sample) = (c * g.h * g.w, m * g.h * g.w);
    let chunk = samples_per_chunk::<T>(n, d.tiles, d.tiles * pos * c.max(m));
    // S [ξ][m][C] = Σ_chunks Ŷ[ξ] · V[ξ], the reduction over every tile of the batch, chunk by
    // chunk in order (a fixed order: the chunks depend on the shapes only). An empty batch
    // sums to zero.
    let mut sums: Vec<T> = if n == 0 { vec![T::zero(); pos * m * c] } else { Vec::new() };
    for s0 in (0..n).step_by(chunk) {
        let ns = chunk.min(n - s0);
        let p = ns * d.tiles;
        let v = transformed_inputs::<T, W, OUT, IN>(&x[s0 * in_sample..][..ns * in_sample], ns, d, isa);
        // Ŷ [m][ξ][p]: each channel's gradient tiles transformed, 16 tiles at a time.
        let dys = &dy[s0 * out_sample..][..ns * out_sample];
        let yh =
            per_block(m * pos * p, pos * p, |o, block| dispatch!(isa, || transform_channel_grad::<T, W, OUT, IN>(dys, ns, o, d, block)));
        let part = Products {
            count: pos,
            dims: (m, p, c, c),
            start: |xi| xi * m * c,
            a: |xi| MatRef { data: &yh, offset: (xi * p) as isize, rs: (pos * p) as isize, cs: 1 },
            b: |xi| MatRef { data: &v, offset: (xi * c) as isize, rs: (pos * c) as isize, cs: 1 },
        };
        if s0 == 0 {
            sums = part.into_new(pos * m * c);
        } else {
            part.add_to(&mut sums);
        }
    }
    per_block(m * c * 9, c * 9, |o, block| dispatch!(isa, || filters_from_sums::<T, W, OUT, IN>(&sums, m, c, o, block)))
}

/// At most this many bytes of transformed tiles (inputs, or products) at a time: a
/// correlation or weight gradient runs its batch in chunks of samples this size, so that
/// its tiles stay in cache between the transforms and the products (ResNet-18's 64-channel
/// 32×32 convolution at batch 64 has 38 MB of them: 22 → 15 ms forward in 4 MiB chunks).
const CHUNK_BYTES: usize = 4 << 20;
/// But at least this many tiles a chunk: each chunk packs the filters `U` for its products
/// again, which costs more than it saves below this (ResNet-18's 256-channel 8×8 stage).
const CHUNK_MIN_TILES: usize = 256;

/// Samples a correlation takes at a time: as many as keep `per_sample` values of `T` a
/// sample (its transformed inputs or products, whichever is more) within [`CHUNK_BYTES`],
/// but at least [`CHUNK_MIN_TILES`] tiles of `tiles` a sample.
fn samples_per_chunk<T>(n: usize, tiles: usize, per_sample: usize) -> usize {
    #[cfg(test)]
    if let Some(chunk) = tests::SAMPLES_PER_CHUNK.get() {
        return chunk.clamp(1, n.max(1));
    }
    let by_bytes = CHUNK_BYTES / (per_sample * std::mem::size_of::<T>()).max(1);
    by_bytes.max(CHUNK_MIN_TILES.div_ceil(tiles.max(1))).clamp(1, n.max(1))
}

/// The products' output buffer, shared by the tasks that write its disjoint rows.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);

// SAFETY: the tasks write disjoint elements of a buffer that outlives them (see its use).
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The element `i` places in.
    ///
    /// # Safety
    /// `i` lies inside the buffer's capacity.
    unsafe fn at(self, i: usize) -> *mut T {
        self.0.add(i)
    }
}

/// The `count` products `a(ξ) · b(ξ)` (`rows × depth` by `depth × cols`), one per position
/// of the transform, product ξ's rows at `start(ξ)` of the output, `ldc` apart. They run
/// side by side on the pool, each on its worker alone ([`crate::cpu::gemm::serial`]):
/// splitting every product between the workers in turn packed each `b` once per part and
/// added 36 fork-joins, and measured 10–12% slower on ResNet-18's 8×8 forward and weight
/// gradient.
struct Products<S, A, B> {
    count: usize,
    /// `(rows, depth, cols, ldc)`.
    dims: (usize, usize, usize, usize),
    start: S,
    a: A,
    b: B,
}

impl<'a, T: Gemm, S, A, B> Products<S, A, B>
where
    S: Fn(usize) -> usize + Sync,
    A: Fn(usize) -> MatRef<'a, T> + Sync,
    B: Fn(usize) -> MatRef<'a, T> + Sync,
{
    /// The products in a new buffer of `len` elements, which they cover.
    fn into_new(self, len: usize) -> Vec<T> {
        let mut out: Vec<T> = Vec::with_capacity(len);
        // SAFETY: `out` has capacity `len`; with `beta = 0` nothing is read before it is
        // written, and the products cover the buffer (every caller's layout tiles it exactly).
        unsafe {
            self.run(Shared(out.as_mut_ptr()), len, T::zero());
            out.set_len(len);
        }
        out
    }

    /// Adds the products to `out`.
    fn add_to(self, out: &mut [T]) {
        // SAFETY: `out` is initialized and `out.len()` elements long.
        unsafe { self.run(Shared(out.as_mut_ptr()), out.len(), T::one()) }
    }

    /// `out = a(ξ) · b(ξ) + beta · out` at each product's place.
    ///
    /// # Safety
    /// `out` holds `len` elements (initialized unless `beta` is zero).
    unsafe fn run(&self, out: Shared<T>, len: usize, beta: T) {
        let (rows, depth, cols, ldc) = self.dims;
        (0..self.count).into_par_iter().for_each(|xi| {
            let at = (self.start)(xi);
            assert!(at + (rows - 1) * ldc + cols <= len, "winograd: product {xi} out of its buffer");
            // SAFETY: product ξ writes `rows` rows of `cols` elements from `start(ξ)`, `ldc`
            // apart, inside the buffer (asserted); the callers' layouts keep the products'
            // elements disjoint.
            crate::cpu::gemm::serial(|| unsafe {
                T::gemm_raw(
                    GemmIsa::selected(),
                    rows,
                    depth,
                    cols,
                    T::one(),
                    (self.a)(xi),
                    (self.b)(xi),
                    beta,
                    None,
                    out.at(at),
                    len - at,
                    ldc,
                )
            });
        });
    }
}

/// Output channel `o`'s weight gradient `[C][3][3]` from the summed products
/// `S [ξ][m][C]`: `Gᵀ S[·][o][i] G` for each input channel `i`, 16 at a time.
#[inline(always)]
fn filters_from_sums<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    sums: &[T],
    m: usize,
    c: usize,
    o: usize,
    out: &mut [MaybeUninit<T>],
) {
    let g: [[T; 3]; IN] = W::G.map(|row| row.map(<T as Element>::from_f64));
    for i0 in (0..c).step_by(LANES) {
        let lanes = LANES.min(c - i0);
        // r[ky][b] = Σ_a G[a][ky] · S[a][b], then out[ky][kx] = Σ_b r[ky][b] · G[b][kx].
        let mut r = [[[T::zero(); LANES]; IN]; 3];
        for a in 0..IN {
            for b in 0..IN {
                let sv = read_lanes(&sums[((a * IN + b) * m + o) * c + i0..], lanes);
                for (ky, rk) in r.iter_mut().enumerate() {
                    for l in 0..LANES {
                        rk[b][l] += g[a][ky] * sv[l];
                    }
                }
            }
        }
        for (ky, rk) in r.iter().enumerate() {
            for kx in 0..3 {
                let mut acc = [T::zero(); LANES];
                for (b, rkb) in rk.iter().enumerate() {
                    for l in 0..LANES {
                        acc[l] += rkb[l] * g[b][kx];
                    }
                }
                for (l, &val) in acc.iter().enumerate().take(lanes) {
                    out[(i0 + l) * 9 + ky * 3 + kx].write(val);
                }
            }
        }
    }
}

/// Channels transformed side by side (the lanes of the transforms' loops, which LLVM
/// vectorizes): every transform runs on 16 channels of one tile at a time, so its loads and
/// stores of `V` and `M` are whole cache lines.
const LANES: usize = 16;

/// One value per lane.
type Lanes<T> = [T; LANES];

/// Writes the first `lanes` values of `src` to `dst`. All sixteen (every block but a ragged
/// last one) go as one fixed-size copy, which stays in registers: the copy of a run-time
/// length LLVM makes of the general loop is a call to `memmove`, 4% of a ResNet-18 step.
#[inline(always)]
fn write_lanes<T: Copy>(dst: &mut [MaybeUninit<T>], src: &Lanes<T>, lanes: usize) {
    if lanes == LANES {
        let dst: &mut [MaybeUninit<T>; LANES] = (&mut dst[..LANES]).try_into().expect("LANES elements");
        for (d, &v) in dst.iter_mut().zip(src) {
            d.write(v);
        }
    } else {
        for (d, &v) in dst[..lanes].iter_mut().zip(src) {
            d.write(v);
        }
    }
}

/// The first `lanes` values of `src`, zeros after them: [`write_lanes`]' reading half.
#[inline(always)]
fn read_lanes<T: Gemm>(src: &[T], lanes: usize) -> Lanes<T> {
    if lanes == LANES {
        src[..LANES].try_into().expect("LANES elements")
    } else {
        let mut l = [T::zero(); LANES];
        l[..lanes].copy_from_slice(&src[..lanes]);
        l
    }
}

/// The transformed filters `U [in][ξ][out]`, `U[i][ξ][o] = (G f(o, i) Gᵀ)[ξ]` computed in f64
/// and rounded once; `f(o, i, ky, kx)` reads filter `(o, i)`. Memory-bound at ResNet-18's
/// 512 channels: `U` (16 or 36 values a filter) is 2–4× the weights it is made from (writing
/// the filters several at a time to vectorize the arithmetic measured the same).
fn transform_filters<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    outs: usize,
    ins: usize,
    f: impl Fn(usize, usize, usize, usize) -> T + Sync,
) -> Vec<T> {
    per_block(ins * IN * IN * outs, IN * IN * outs, |i, block| {
        for o in 0..outs {
            // t = G g (IN × 3), then u = t Gᵀ (IN × IN).
            let mut t = [[0.0f64; 3]; IN];
            for (a, row) in t.iter_mut().enumerate() {
                for (kx, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|ky| W::G[a][ky] * Element::to_f64(f(o, i, ky, kx))).sum();
                }
            }
            for a in 0..IN {
                for b in 0..IN {
                    let u: f64 = (0..3).map(|kx| t[a][kx] * W::G[b][kx]).sum();
                    block[(a * IN + b) * outs + o].write(<T as Element>::from_f64(u));
                }
            }
        }
    })
}

/// The sizes of one correlation.
#[derive(Clone, Copy)]
struct Dims {
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    /// Tiles per row and per sample.
    tw: usize,
    tiles: usize,
}

impl Dims {
    /// The sizes of a correlation in tiles of `out × out` outputs.
    fn new(cin: usize, cout: usize, h: usize, w: usize, out: usize) -> Dims {
        let tw = w.div_ceil(out);
        Dims { cin, cout, h, w, tw, tiles: h.div_ceil(out) * tw }
    }
}

/// The transformed input tiles of a batch `x [n, cin, h, w]`, `V [p][ξ][cin]` with
/// `p = sample · tiles + tile`, one sample per task.
fn transformed_inputs<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    x: &[T],
    n: usize,
    d: Dims,
    isa: VmathIsa,
) -> Vec<T> {
    let sample = d.cin * d.h * d.w;
    per_block(n * d.tiles * IN * IN * d.cin, d.tiles * IN * IN * d.cin, |s, block| {
        let xs = &x[s * sample..][..sample];
        dispatch!(isa, || transform_sample_input::<T, W, OUT, IN>(xs, d, block))
    })
}

/// The correlation of `x [n, cin, h, w]`, zero-padded by 1, with the transformed filters
/// `u [cin][ξ][cout]`, plus `bias`: `[n, cout, h, w]`.
fn correlate<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    x: &[T],
    n: usize,
    cin: usize,
    (h, w): (usize, usize),
    u: &[T],
    cout: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    let pos = IN * IN;
    let d = Dims::new(cin, cout, h, w, OUT);
    let isa = VmathIsa::selected();
    let (in_sample, out_sample) = (cin * h * w, cout * h * w);
    let chunk = samples_per_chunk::<T>(n, d.tiles, d.tiles * pos * cin.max(cout));
    strided::build(n * out_sample, |y| {
        for (k, y) in y.chunks_mut(chunk * out_sample).enumerate() {
            let ns = y.len() / out_sample;
            let p = ns * d.tiles;
            let v = transformed_inputs::<T, W, OUT, IN>(&x[k * chunk * in_sample..][..ns * in_sample], ns, d, isa);
            // M [p][ξ][cout] = V[ξ] · U[ξ], the rows of the products interleaved so that a
            // tile's products are together for the output transform.
            let prod = Products {
                count: pos,
                dims: (p, cin, cout, pos * cout),
                start: |xi| xi * cout,
                a: |xi| MatRef { data: &v, offset: (xi * cin) as isize, rs: (pos * cin) as isize, cs: 1 },
                b: |xi| MatRef { data: u, offset: (xi * cout) as isize, rs: (pos * cout) as isize, cs: 1 },
            }
            .into_new(p * pos * cout);
            drop(v);
            fill_blocks(y, out_sample, |s, ys| {
                let ms = &prod[s * d.tiles * pos * cout..][..d.tiles * pos * cout];
                dispatch!(isa, || transform_sample_output::<T, W, OUT, IN>(ms, d, bias, ys))
            });
        }
    })
}

/// One sample's transformed input tiles, `[tile][ξ][cin]`. The sample is first copied
/// channels-last into a zero-padded buffer, so a tile's 16 channels at one pixel are one
/// vector load.
#[inline(always)]
fn transform_sample_input<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(x: &[T], d: Dims, out: &mut [MaybeUninit<T>]) {
    let (cin, h, w, tw) = (d.cin, d.h, d.w, d.tw);
    let cin_pad = cin.next_multiple_of(LANES);
    let (hp, wp) = ((d.tiles / tw) * OUT + 2, tw * OUT + 2);
    let mut xp = vec![T::zero(); hp * wp * cin_pad];
    // xp[(y + 1, x + 1)][c] = x[c][y][x], in the 8 × 8 register blocks of `transpose_scatter`.
    transpose_scatter(x, (cin, h * w), h * w, &mut xp, |q| ((q / w + 1) * wp + q % w + 1) * cin_pad);
    let mut t = [[[T::zero(); LANES]; IN]; IN];
    for tile in 0..d.tiles {
        let (y0, x0) = ((tile / tw) * OUT, (tile % tw) * OUT);
        let dst = &mut out[tile * IN * IN * cin..][..IN * IN * cin];
        for c0 in (0..cin).step_by(LANES) {
            let lanes = LANES.min(cin - c0);
            let at = |a: usize, b: usize| -> Lanes<T> {
                xp[((y0 + a) * wp + x0 + b) * cin_pad + c0..][..LANES].try_into().expect("LANES elements")
            };
            // V = Bᵀ d B.
            transform_2d(&mut t, at, W::input_1d::<T>, |a, b, v| write_lanes(&mut dst[(a * IN + b) * cin + c0..], v, lanes));
        }
    }
}

/// One sample's output `[cout, h, w]` from its products `[tile][ξ][cout]`, plus the bias.
#[inline(always)]
fn transform_sample_output<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    m: &[T],
    d: Dims,
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let (cout, h, w, tw) = (d.cout, d.h, d.w, d.tw);
    let plane = h * w;
    let mut t = [[[T::zero(); LANES]; IN]; OUT];
    let mut o = [[[T::zero(); LANES]; OUT]; OUT];
    for tile in 0..d.tiles {
        let (y0, x0) = ((tile / tw) * OUT, (tile % tw) * OUT);
        let (rows, cols) = (OUT.min(h - y0), OUT.min(w - x0));
        let tile_products = &m[tile * IN * IN * cout..][..IN * IN * cout];
        for c0 in (0..cout).step_by(LANES) {
            let lanes = LANES.min(cout - c0);
            let at = |xi: usize| read_lanes(&tile_products[xi * cout + c0..], lanes);
            // o = Aᵀ m A.
            transform_2d(&mut t, |a, b| at(a * IN + b), W::output_1d::<T>, |a, b, v| o[a][b] = *v);
            for l in 0..lanes {
                let b = bias.map_or(T::zero(), |b| b[c0 + l]);
                let dst = &mut y[(c0 + l) * plane..][..plane];
                for (a, orow) in o.iter().enumerate().take(rows) {
                    for (bb, ov) in orow.iter().enumerate().take(cols) {
                        dst[(y0 + a) * w + x0 + bb].write(ov[l] + b);
                    }
                }
            }
        }
    }
}

/// One channel `o` of the transformed output-gradient tiles `A dy Aᵀ`, `[ξ][tiles of the
/// batch]`, 16 tiles side by side; the gradient is zero past the image's edge (those
/// outputs do not exist).
#[inline(always)]
fn transform_channel_grad<T: Gemm, W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(
    dy: &[T],
    n: usize,
    o: usize,
    d: Dims,
    out: &mut [MaybeUninit<T>],
) {
    let (cout, h, w, tw) = (d.cout, d.h, d.w, d.tw);
    let p = n * d.tiles;
    let mut g = [[[T::zero(); LANES]; OUT]; OUT];
    let mut t = [[[T::zero(); LANES]; OUT]; IN];
    for p0 in (0..p).step_by(LANES) {
        let lanes = LANES.min(p - p0);
        for l in 0..LANES {
            let q = (p0 + l).min(p - 1);
            let (s, tile) = (q / d.tiles, q % d.tiles);
            let (y0, x0) = ((tile / tw) * OUT, (tile % tw) * OUT);
            let plane = &dy[(s * cout + o) * h * w..][..h * w];
            for (a, ga) in g.iter_mut().enumerate() {
                for (b, gab) in ga.iter_mut().enumerate() {
                    let (y, x) = (y0 + a, x0 + b);
                    gab[l] = if y < h && x < w { plane[y * w + x] } else { T::zero() };
                }
            }
        }
        // Ŷ = A g Aᵀ.
        transform_2d(&mut t, |a, b| g[a][b], W::grad_1d::<T>, |a, b, v| write_lanes(&mut out[(a * IN + b) * p + p0..], v, lanes));
    }
}

/// The separable 2-D transform `F d Fᵀ` of an `R × R` tile of lanes-vectors (`get(a, b)` is
/// row `a`, column `b`) by a 1-D transform `f` from `R` values to `S`: `f` down each column
/// into `t` (the caller's `S × R` scratch), then along each row of `t`; `put(a, b, v)`
/// receives element `(a, b)` of the `S × S` result, row by row.
#[inline(always)]
fn transform_2d<T: Gemm, const R: usize, const S: usize>(
    t: &mut [[Lanes<T>; R]; S],
    get: impl Fn(usize, usize) -> Lanes<T>,
    f: impl Fn(&[Lanes<T>; R], &mut [Lanes<T>; S]),
    mut put: impl FnMut(usize, usize, &Lanes<T>),
) {
    let mut v = [[T::zero(); LANES]; S];
    for b in 0..R {
        f(&std::array::from_fn(|a| get(a, b)), &mut v);
        for (ta, va) in t.iter_mut().zip(&v) {
            ta[b] = *va;
        }
    }
    for (a, ta) in t.iter().enumerate() {
        f(ta, &mut v);
        for (b, vb) in v.iter().enumerate() {
            put(a, b, vb);
        }
    }
}
