//! 3×3 convolutions by Winograd's minimal filtering, F(4×4, 3×3) (Lavin & Gray, 2016): each
//! 4×4 block of outputs is computed from a 6×6 block of input with 36 multiplies per
//! (input, output) channel pair where the direct convolution spends 144.
//!
//! With `d` a 6×6 input tile and `g` a 3×3 filter, the output tile is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. Summed over input channels, the elementwise products become
//! 36 independent matrix products, one per position ξ of the 6×6 transform:
//! `M[ξ] = V[ξ] · U[ξ]`, with `V[ξ]` the transformed input tiles `[tiles, in]` and `U[ξ]`
//! the transformed filters `[in, out]`. Those run on the crate's GEMM, so the convolution
//! gets the GEMM's speed on a quarter of the multiplies; the transforms around them are
//! memory traffic, run on 16 channels (or 16 tiles) at a time as the sums of the matrices'
//! nonzero entries (`input_1d`, `output_1d`, `grad_1d`), in the AVX-512 or AVX2 copy that
//! `vmath`'s `dispatch!` picks.
//!
//! Only the stride-1, "same"-padded 3×3 convolution (every 3×3 convolution of a ResNet but
//! the stride-2 ones) goes this way, and only where it measured faster than the direct
//! kernels ([`applies`]). The input gradient of such a convolution is the same correlation
//! of the output gradient with the filters flipped and transposed; the weight gradient is
//! the forward pass's transposition (see [`backward_weight`]).
//!
//! Rounding differs from the direct convolution: the transforms add and subtract inputs of
//! up to 5× and 8× the tile's values around the products, so f32 results carry an error of
//! up to about 1e-5 of the output's largest magnitude where the direct sum's is nearer 1e-6
//! (the tests below and `tests/engine_determinism.rs` bound it against f64). The order of
//! every operation is fixed by the shapes, so results do not depend on the thread count.
//! The transform of the filters is computed in f64 and rounded once.

use crate::cpu::gemm::{Gemm, GemmIsa, MatRef};
use crate::cpu::per_block;
use crate::cpu::vmath::{dispatch, VmathIsa};
use crate::dtype::Element;
use crate::kinds::ConvGeom;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Outputs per tile side.
const OUT: usize = 4;
/// Inputs per tile side (`OUT + 3 − 1`).
const IN: usize = 6;
/// Positions of the transform (`IN²`): the number of matrix products.
const POS: usize = IN * IN;

/// `G`, the filter transform.
const G: [[f64; 3]; IN] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Fewer input or output channels than this keep the direct kernels: the transforms move
/// `36 · (in + out)` values per tile for `36 · in · out` multiply-adds, so with thin layers
/// they cost as much as the products save (ResNet-18's 64-channel 32×32 convolutions ran
/// as fast either way, the narrow ResNet's 64-channel 7×7 ones 25% slower).
pub(crate) const MIN_CHANNELS: usize = 128;
/// Images smaller than this on either side keep the direct kernels, which skip the taps
/// that fall in the padding there (a 4×4 image is one tile, a 7×7 one a 2×2 grid of tiles
/// that computes 8×8 outputs). One-tile 4×4 images would gain (the narrow ResNet's
/// 128-channel convolution at 512 images: 8.2 → 5.3 ms forward), but that changes the
/// default SimCLR model's rounding, and with it the main job's linear probe moved from 0.855
/// to 0.844, under raw pixels' 0.847 (BENCHMARKS.md, seventeenth session).
const MIN_SIDE: usize = 8;

/// Whether a convolution of `n` samples, `m` output channels and geometry `g` runs here:
/// 3×3, stride 1, dilation 1, padding 1 on both axes, one group, at least [`MIN_CHANNELS`]
/// channels in and out, at least [`MIN_SIDE`] pixels a side, and at least as many tiles as
/// output channels (otherwise the transformed filters, four times the weights, are the
/// larger operand of the products: ResNet-18's 512-channel 4×4 stage ran 1.4× slower). The
/// input gradient of such a convolution is such a convolution too (channels swapped).
pub(crate) fn applies(g: &ConvGeom, groups: usize, n: usize, m: usize) -> bool {
    let same3x3 = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ph, g.pw) == (3, 3, 1, 1, 1, 1, 1, 1);
    let tiles = n * g.h.div_ceil(OUT) * g.w.div_ceil(OUT);
    same3x3 && groups == 1 && g.channels.min(m) >= MIN_CHANNELS && g.h.min(g.w) >= MIN_SIDE && tiles >= g.channels.max(m)
}

/// Whether the Winograd path is switched on: it is unless the environment variable
/// `TESSERA_CONV_WINOGRAD` is `0` or `off` (read once per process), which keeps every
/// convolution on the direct kernels (for A/B benchmarks, or for the direct kernels' rounding).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !matches!(std::env::var("TESSERA_CONV_WINOGRAD").as_deref(), Ok("0") | Ok("off")))
}

/// `y = conv(x, w) (+ bias)` for a geometry [`applies`] accepts: `x [n, C, h, w]`,
/// `w [m, C, 3, 3]`, `y [n, m, h, w]`.
pub(crate) fn forward<T: Gemm>(x: &[T], n: usize, w: &[T], m: usize, g: &ConvGeom, bias: Option<&[T]>) -> Vec<T> {
    let c = g.channels;
    let u = transform_filters(m, c, |o, i, ky, kx| w[((o * c + i) * 3 + ky) * 3 + kx]);
    correlate(x, n, c, (g.h, g.w), &u, m, bias)
}

/// `dx = convᵀ(dy, w)` for a geometry [`applies`] accepts: `dy [n, m, h, w]`,
/// `w [m, C, 3, 3]`, `dx [n, C, h, w]`. With stride 1 and padding 1 this is the correlation
/// of `dy` (padded by 1) with the filters `w'[i][o][ky][kx] = w[o][i][2 − ky][2 − kx]`.
pub(crate) fn backward_input<T: Gemm>(dy: &[T], n: usize, w: &[T], m: usize, g: &ConvGeom) -> Vec<T> {
    let c = g.channels;
    let u = transform_filters(c, m, |i, o, ky, kx| w[((o * c + i) * 3 + (2 - ky)) * 3 + (2 - kx)]);
    correlate(dy, n, m, (g.h, g.w), &u, c, None)
}

/// `dw = Σ_s dy[s] ⋆ x[s]` for a geometry [`applies`] accepts: `dy [n, m, h, w]`,
/// `x [n, C, h, w]`, `dw [m, C·9]`. The forward pass is `y = Aᵀ [U ⊙ V] A` per tile with
/// `U = G g Gᵀ`, linear in `g`, so its gradient is `Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ V] G`: the
/// transformed output-gradient tiles `Ŷ [m][ξ][tiles]` (zero past the image's edge) and the
/// transformed input tiles `V [tiles][ξ][C]` meet in 36 products `S[ξ] = Ŷ[ξ] · V[ξ]`
/// summed over every tile of the batch, then each `S[·][o][i]` goes back to 3×3.
pub(crate) fn backward_weight<T: Gemm>(dy: &[T], x: &[T], n: usize, m: usize, g: &ConvGeom) -> Vec<T> {
    let c = g.channels;
    let d = Dims::new(c, m, g.h, g.w);
    let p = n * d.tiles;
    let isa = VmathIsa::selected();
    let v = transformed_inputs(x, n, d, isa);
    // Ŷ [m][ξ][p]: each channel's gradient tiles transformed, 16 tiles at a time.
    let yh = per_block(m * POS * p, POS * p, |o, block| dispatch!(isa, || transform_channel_grad(dy, n, o, d, block)));
    // S [ξ][m][C] = Ŷ[ξ] · V[ξ], the reduction over every tile of the batch.
    let sums = products(
        POS * m * c,
        (m, p, c, c),
        |xi| xi * m * c,
        |xi| MatRef { data: &yh, offset: (xi * p) as isize, rs: (POS * p) as isize, cs: 1 },
        |xi| MatRef { data: &v, offset: (xi * c) as isize, rs: (POS * c) as isize, cs: 1 },
    );
    drop((v, yh));
    per_block(m * c * 9, c * 9, |o, block| dispatch!(isa, || filters_from_sums(&sums, m, c, o, block)))
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

/// The 36 products `a(ξ) · b(ξ)` (`rows × depth` by `depth × cols`) into a new buffer of
/// `len` elements, product ξ's rows at `start(ξ)`, `ldc` apart. They run side by side on the
/// pool, each on its worker alone ([`crate::cpu::gemm::serial`]): splitting every product
/// between the workers in turn packed each `b` once per part and added 36 fork-joins, and
/// measured 10–12% slower on ResNet-18's 8×8 forward and weight gradient.
fn products<'a, T: Gemm>(
    len: usize,
    (rows, depth, cols, ldc): (usize, usize, usize, usize),
    start: impl Fn(usize) -> usize + Sync,
    a: impl Fn(usize) -> MatRef<'a, T> + Sync,
    b: impl Fn(usize) -> MatRef<'a, T> + Sync,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    let base = Shared(out.as_mut_ptr());
    (0..POS).into_par_iter().for_each(|xi| {
        let at = start(xi);
        assert!(at + (rows - 1) * ldc + cols <= len, "winograd: product {xi} out of its buffer");
        // SAFETY: product ξ writes `rows` rows of `cols` elements from `start(ξ)`, `ldc`
        // apart, inside the buffer's capacity (asserted); the callers' layouts keep the 36
        // products' elements disjoint, and nothing reads the buffer before all are written.
        crate::cpu::gemm::serial(|| unsafe {
            T::gemm_raw(GemmIsa::selected(), rows, depth, cols, T::one(), a(xi), b(xi), T::zero(), None, base.at(at), len - at, ldc)
        });
    });
    // SAFETY: the 36 products cover the buffer (every caller's layout tiles it exactly).
    unsafe { out.set_len(len) };
    out
}

/// Output channel `o`'s weight gradient `[C][3][3]` from the summed products
/// `S [ξ][m][C]`: `Gᵀ S[·][o][i] G` for each input channel `i`, 16 at a time.
#[inline(always)]
fn filters_from_sums<T: Gemm>(sums: &[T], m: usize, c: usize, o: usize, out: &mut [MaybeUninit<T>]) {
    let g: [[T; 3]; IN] = G.map(|row| row.map(<T as Element>::from_f64));
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
/// and rounded once; `f(o, i, ky, kx)` reads filter `(o, i)`.
fn transform_filters<T: Gemm>(outs: usize, ins: usize, f: impl Fn(usize, usize, usize, usize) -> T + Sync) -> Vec<T> {
    per_block(ins * POS * outs, POS * outs, |i, block| {
        for o in 0..outs {
            // t = G g (6×3), then u = t Gᵀ (6×6).
            let mut t = [[0.0f64; 3]; IN];
            for (a, row) in t.iter_mut().enumerate() {
                for (kx, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|ky| G[a][ky] * Element::to_f64(f(o, i, ky, kx))).sum();
                }
            }
            for a in 0..IN {
                for b in 0..IN {
                    let u: f64 = (0..3).map(|kx| t[a][kx] * G[b][kx]).sum();
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
    fn new(cin: usize, cout: usize, h: usize, w: usize) -> Dims {
        let tw = w.div_ceil(OUT);
        Dims { cin, cout, h, w, tw, tiles: h.div_ceil(OUT) * tw }
    }
}

/// The transformed input tiles of a batch `x [n, cin, h, w]`, `V [p][ξ][cin]` with
/// `p = sample · tiles + tile`, one sample per task.
fn transformed_inputs<T: Gemm>(x: &[T], n: usize, d: Dims, isa: VmathIsa) -> Vec<T> {
    let sample = d.cin * d.h * d.w;
    per_block(n * d.tiles * POS * d.cin, d.tiles * POS * d.cin, |s, block| {
        let xs = &x[s * sample..][..sample];
        dispatch!(isa, || transform_sample_input(xs, d, block))
    })
}

/// The correlation of `x [n, cin, h, w]`, zero-padded by 1, with the transformed filters
/// `u [cin][ξ][cout]`, plus `bias`: `[n, cout, h, w]`.
fn correlate<T: Gemm>(x: &[T], n: usize, cin: usize, (h, w): (usize, usize), u: &[T], cout: usize, bias: Option<&[T]>) -> Vec<T> {
    let d = Dims::new(cin, cout, h, w);
    let p = n * d.tiles;
    let isa = VmathIsa::selected();
    let v = transformed_inputs(x, n, d, isa);
    // M [p][ξ][cout] = V[ξ] · U[ξ], the rows of the 36 products interleaved so that a tile's
    // products are together for the output transform.
    let prod = products(
        p * POS * cout,
        (p, cin, cout, POS * cout),
        |xi| xi * cout,
        |xi| MatRef { data: &v, offset: (xi * cin) as isize, rs: (POS * cin) as isize, cs: 1 },
        |xi| MatRef { data: u, offset: (xi * cout) as isize, rs: (POS * cout) as isize, cs: 1 },
    );
    drop(v);
    per_block(n * cout * h * w, cout * h * w, |s, y| {
        let ms = &prod[s * d.tiles * POS * cout..][..d.tiles * POS * cout];
        dispatch!(isa, || transform_sample_output(ms, d, bias, y))
    })
}

/// One sample's transformed input tiles, `[tile][ξ][cin]`. The sample is first copied
/// channels-last into a zero-padded buffer, so a tile's 16 channels at one pixel are one
/// vector load.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a tile's column `b` indexes rows of `t` and picks inputs
fn transform_sample_input<T: Gemm>(x: &[T], d: Dims, out: &mut [MaybeUninit<T>]) {
    let (cin, h, w, tw) = (d.cin, d.h, d.w, d.tw);
    let cin_pad = cin.next_multiple_of(LANES);
    let (hp, wp) = ((d.tiles / tw) * OUT + 2, tw * OUT + 2);
    let mut xp = vec![T::zero(); hp * wp * cin_pad];
    for c in 0..cin {
        for (yy, row) in x[c * h * w..][..h * w].chunks_exact(w).enumerate() {
            for (xx, &val) in row.iter().enumerate() {
                xp[((yy + 1) * wp + xx + 1) * cin_pad + c] = val;
            }
        }
    }
    let mut t = [[[T::zero(); LANES]; IN]; IN];
    let mut o = [[T::zero(); LANES]; IN];
    for tile in 0..d.tiles {
        let (y0, x0) = ((tile / tw) * OUT, (tile % tw) * OUT);
        let dst = &mut out[tile * POS * cin..][..POS * cin];
        for c0 in (0..cin).step_by(LANES) {
            let lanes = LANES.min(cin - c0);
            let at = |a: usize, b: usize| -> Lanes<T> {
                xp[((y0 + a) * wp + x0 + b) * cin_pad + c0..][..LANES].try_into().expect("LANES elements")
            };
            // t = Bᵀ d, column by column, then each row of t times B into V.
            for b in 0..IN {
                input_1d(&[at(0, b), at(1, b), at(2, b), at(3, b), at(4, b), at(5, b)], &mut o);
                for a in 0..IN {
                    t[a][b] = o[a];
                }
            }
            for (a, ta) in t.iter().enumerate() {
                input_1d(ta, &mut o);
                for (b, ob) in o.iter().enumerate() {
                    write_lanes(&mut dst[(a * IN + b) * cin + c0..], ob, lanes);
                }
            }
        }
    }
}

/// One sample's output `[cout, h, w]` from its products `[tile][ξ][cout]`, plus the bias.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // a tile's column `b` indexes rows of `t` and picks inputs
fn transform_sample_output<T: Gemm>(m: &[T], d: Dims, bias: Option<&[T]>, y: &mut [MaybeUninit<T>]) {
    let (cout, h, w, tw) = (d.cout, d.h, d.w, d.tw);
    let plane = h * w;
    let mut t = [[[T::zero(); LANES]; IN]; OUT];
    let mut o = [[[T::zero(); LANES]; OUT]; OUT];
    let mut col = [[T::zero(); LANES]; IN];
    let mut res = [[T::zero(); LANES]; OUT];
    for tile in 0..d.tiles {
        let (y0, x0) = ((tile / tw) * OUT, (tile % tw) * OUT);
        let (rows, cols) = (OUT.min(h - y0), OUT.min(w - x0));
        let tile_products = &m[tile * POS * cout..][..POS * cout];
        for c0 in (0..cout).step_by(LANES) {
            let lanes = LANES.min(cout - c0);
            let at = |xi: usize| read_lanes(&tile_products[xi * cout + c0..], lanes);
            // t = Aᵀ m, column by column, then each row of t times A.
            for b in 0..IN {
                for (a, c) in col.iter_mut().enumerate() {
                    *c = at(a * IN + b);
                }
                output_1d(&col, &mut res);
                for a in 0..OUT {
                    t[a][b] = res[a];
                }
            }
            for a in 0..OUT {
                output_1d(&t[a], &mut o[a]);
            }
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
fn transform_channel_grad<T: Gemm>(dy: &[T], n: usize, o: usize, d: Dims, out: &mut [MaybeUninit<T>]) {
    let (cout, h, w, tw) = (d.cout, d.h, d.w, d.tw);
    let p = n * d.tiles;
    let mut g = [[[T::zero(); LANES]; OUT]; OUT];
    let mut t = [[[T::zero(); LANES]; OUT]; IN];
    let mut r = [[T::zero(); LANES]; IN];
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
        // t = A g, column by column (6 × 4), then each row of t times Aᵀ.
        for b in 0..OUT {
            grad_1d(&[g[0][b], g[1][b], g[2][b], g[3][b]], &mut r);
            for a in 0..IN {
                t[a][b] = r[a];
            }
        }
        for (a, ta) in t.iter().enumerate() {
            grad_1d(ta, &mut r);
            for (b, rb) in r.iter().enumerate() {
                write_lanes(&mut out[(a * IN + b) * p + p0..], rb, lanes);
            }
        }
    }
}

/// `o = A v` (`A` the transpose of the output transform `Aᵀ`) for four lanes-vectors `v`:
/// six.
#[inline(always)]
fn grad_1d<T: Gemm>(v: &[Lanes<T>; OUT], o: &mut [Lanes<T>; IN]) {
    let (two, four, eight) = (T::c(2.0), T::c(4.0), T::c(8.0));
    for l in 0..LANES {
        let (g0, g1, g2, g3) = (v[0][l], v[1][l], v[2][l], v[3][l]);
        let (s02, s13) = (g0 + g2, g1 + g3);
        let (e02, e13) = (g0 + four * g2, two * g1 + eight * g3);
        o[0][l] = g0;
        o[1][l] = s02 + s13;
        o[2][l] = s02 - s13;
        o[3][l] = e02 + e13;
        o[4][l] = e02 - e13;
        o[5][l] = g3;
    }
}

/// `o = Bᵀ v` for six lanes-vectors `v` (one column or row of a tile), as the sums of
/// `Bᵀ`'s nonzero entries.
#[inline(always)]
fn input_1d<T: Gemm>(v: &[Lanes<T>; IN], o: &mut [Lanes<T>; IN]) {
    let (four, five, two) = (T::c(4.0), T::c(5.0), T::c(2.0));
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
        o[0][l] = four * d0 - five * d2 + d4;
        o[1][l] = d3 + d4 - four * (d1 + d2);
        o[2][l] = four * (d1 - d2) + d4 - d3;
        o[3][l] = two * (d3 - d1) + d4 - d2;
        o[4][l] = two * (d1 - d3) + d4 - d2;
        o[5][l] = four * d1 - five * d3 + d5;
    }
}

/// `o = Aᵀ v` for six lanes-vectors `v`: four.
#[inline(always)]
fn output_1d<T: Gemm>(v: &[Lanes<T>; IN], o: &mut [Lanes<T>; OUT]) {
    let (two, four, eight) = (T::c(2.0), T::c(4.0), T::c(8.0));
    for l in 0..LANES {
        let (m0, m1, m2, m3, m4, m5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        o[0][l] = m0 + s12 + s34;
        o[1][l] = d12 + two * d34;
        o[2][l] = s12 + four * s34;
        o[3][l] = d12 + eight * d34 + m5;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Bᵀ`, the input transform.
    const BT: [[f64; IN]; IN] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];

    /// `Aᵀ`, the output transform.
    const AT: [[f64; IN]; OUT] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    #[test]
    fn one_dimensional_transforms_are_the_matrices() {
        let v = values(7, IN * LANES);
        let lanes: [Lanes<f64>; IN] = std::array::from_fn(|a| std::array::from_fn(|l| v[a * LANES + l]));
        let (mut got_in, mut got_out) = ([[0.0; LANES]; IN], [[0.0; LANES]; OUT]);
        input_1d(&lanes, &mut got_in);
        output_1d(&lanes, &mut got_out);
        for l in 0..LANES {
            for a in 0..IN {
                let want: f64 = (0..IN).map(|i| BT[a][i] * lanes[i][l]).sum();
                assert!((got_in[a][l] - want).abs() < 1e-12, "Bᵀ row {a}");
            }
            for a in 0..OUT {
                let want: f64 = (0..IN).map(|i| AT[a][i] * lanes[i][l]).sum();
                assert!((got_out[a][l] - want).abs() < 1e-12, "Aᵀ row {a}");
            }
        }
    }

    /// A small deterministic generator of values in [-1, 1).
    fn values(seed: u64, len: usize) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    fn geom(c: usize, h: usize, w: usize) -> ConvGeom {
        ConvGeom { channels: c, h, w, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: h, ow: w }
    }

    /// The naive same-padded 3×3 correlation and its input and weight gradients, in f64.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f64],
        w: &[f64],
        dy: &[f64],
        bias: &[f64],
        n: usize,
        c: usize,
        m: usize,
        (h, wd): (usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; n * m * h * wd];
        let mut dx = vec![0.0; n * c * h * wd];
        let mut dw = vec![0.0; m * c * 9];
        for s in 0..n {
            for o in 0..m {
                for oy in 0..h {
                    for ox in 0..wd {
                        let yi = ((s * m + o) * h + oy) * wd + ox;
                        y[yi] = bias[o];
                        for i in 0..c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                                    if iy < h && ix < wd {
                                        let xi = ((s * c + i) * h + iy) * wd + ix;
                                        let wv = w[((o * c + i) * 3 + ky) * 3 + kx];
                                        y[yi] += x[xi] * wv;
                                        dx[xi] += dy[yi] * wv;
                                        dw[((o * c + i) * 3 + ky) * 3 + kx] += dy[yi] * x[xi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    /// Largest error relative to the reference's largest magnitude.
    fn scaled_error(got: &[f64], want: &[f64]) -> f64 {
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-30);
        got.iter().zip(want).fold(0.0f64, |a, (g, w)| a.max((g - w).abs())) / scale
    }

    #[test]
    fn forward_and_both_gradients_match_the_direct_sum() {
        // Image sides that are and are not multiples of the 4-pixel tile, down to one
        // partial tile; channel counts below MIN_CHANNELS (the functions do not check it),
        // below LANES, and one whole block of LANES and a ragged one (20 and 18).
        let cases =
            [(2, 3, 5, 4, 4), (1, 4, 3, 7, 7), (3, 2, 4, 5, 9), (2, 5, 2, 8, 8), (1, 3, 3, 1, 6), (2, 6, 4, 14, 11), (2, 20, 18, 8, 9)];
        for (case, &(n, c, m, h, w)) in cases.iter().enumerate() {
            let g = geom(c, h, w);
            let x = values(4 * case as u64 + 1, n * c * h * w);
            let wt = values(4 * case as u64 + 2, m * c * 9);
            let dy = values(4 * case as u64 + 3, n * m * h * w);
            let bias = values(4 * case as u64 + 4, m);
            let (y, dx, dw) = naive(&x, &wt, &dy, &bias, n, c, m, (h, w));
            let y64 = forward(&x, n, &wt, m, &g, Some(&bias));
            let dx64 = backward_input(&dy, n, &wt, m, &g);
            assert!(scaled_error(&y64, &y) < 1e-13, "f64 forward, case {case}: {}", scaled_error(&y64, &y));
            assert!(scaled_error(&dx64, &dx) < 1e-13, "f64 input gradient, case {case}: {}", scaled_error(&dx64, &dx));
            let dw64 = backward_weight(&dy, &x, n, m, &g);
            assert!(scaled_error(&dw64, &dw) < 1e-13, "f64 weight gradient, case {case}: {}", scaled_error(&dw64, &dw));
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            let y32 = forward(&f32s(&x), n, &f32s(&wt), m, &g, Some(&f32s(&bias)));
            let dx32 = backward_input(&f32s(&dy), n, &f32s(&wt), m, &g);
            assert!(scaled_error(&f64s(&y32), &y) < 1e-5, "f32 forward, case {case}: {}", scaled_error(&f64s(&y32), &y));
            assert!(scaled_error(&f64s(&dx32), &dx) < 1e-5, "f32 input gradient, case {case}: {}", scaled_error(&f64s(&dx32), &dx));
            let dw32 = backward_weight(&f32s(&dy), &f32s(&x), n, m, &g);
            assert!(scaled_error(&f64s(&dw32), &dw) < 1e-5, "f32 weight gradient, case {case}: {}", scaled_error(&f64s(&dw32), &dw));
        }
    }

    #[test]
    fn only_same_padded_stride_one_3x3_convolutions_with_enough_channels_and_tiles_apply() {
        let g = geom(128, 8, 8);
        assert!(applies(&g, 1, 32, 128));
        assert!(!applies(&g, 1, 31, 128), "fewer tiles than channels");
        assert!(!applies(&g, 2, 32, 128), "groups");
        assert!(!applies(&g, 1, 32, 64), "output channels");
        assert!(!applies(&geom(64, 8, 8), 1, 32, 128), "input channels");
        assert!(!applies(&geom(128, 7, 16), 1, 64, 128), "height");
        assert!(!applies(&ConvGeom { sh: 2, oh: 4, ..g }, 1, 32, 128), "stride");
        assert!(!applies(&ConvGeom { ph: 0, oh: 6, ..g }, 1, 32, 128), "padding");
        assert!(!applies(&ConvGeom { dh: 2, oh: 6, ..g }, 1, 32, 128), "dilation");
        assert!(!applies(&ConvGeom { kh: 1, kw: 1, ph: 0, pw: 0, ..g }, 1, 32, 128), "1×1");
    }
}
