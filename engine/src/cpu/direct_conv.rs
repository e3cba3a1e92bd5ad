//! Direct (im2col-free) 2-D convolution kernels: forward, input gradient and weight
//! gradient, all built on one register-tiled microkernel that vectorizes over channels.
//!
//! The microkernel computes a tile `acc[r][c] += Σ_k src[rows[r] + offs[k]] · vecs[k][c]`:
//! `MR` rows, each reading one scalar of a zero-padded source image per reduction step `k`
//! (broadcast), times an `NR`-wide vector of packed weights (or output gradients). The
//! three convolution passes differ only in what plays the rows, the reduction and the
//! vectors:
//!
//! * forward: rows are output pixels, the reduction runs over (input channel, tap), the
//!   vectors are weights `[k][co]`;
//! * input gradient: the output image is split by stride phase (`y mod sh`, `x mod sw`);
//!   within one phase the transposed convolution is a plain correlation of the zero-padded
//!   output gradient with the taps of that phase, so rows are input pixels of the phase,
//!   the reduction runs over (output channel, tap of the phase), the vectors are weights
//!   `[k][ci]`; every input pixel is written once, so no col2im scatter is needed;
//! * weight gradient: rows are taps (input channel, tap), the reduction runs over the output
//!   pixels of several samples, the vectors are the output gradient transposed to
//!   `[pixel][co]`.
//!
//! Nothing is packed per output tile, the source images are only padded (one copy per
//! sample), and no im2col matrix is ever built. The reduction order of every output element
//! is fixed by the shapes (the weight gradient sums its batch in fixed chunks, added in
//! order), so results do not depend on the thread count.
//!
//! # Instruction sets and tiles
//!
//! The loops are plain Rust that autovectorizes; on x86-64 the three per-sample loops are
//! compiled again with more target features and chosen at run time ([`Isa`]):
//!
//! * AVX-512 (`avx512f,avx2,fma`): 32 registers of 16 f32 (8 f64) lanes. The tile is 6 rows ×
//!   32 lanes for f32 (6 × 16 for f64): two registers per row, so each step loads 2 vectors
//!   and broadcasts 6 scalars for 12 FMAs, the 12 accumulators stay in registers and so do
//!   the six row offsets. When the vectors cover only 16 channels (8 for f64), as in the
//!   first stage of a narrow ResNet, half of those lanes would be zero padding, so those
//!   passes run the AVX2 path: a 16-lane AVX-512 tile of 10 rows measured the same as AVX2
//!   there (±4%), and taller ones lose, since the 16 general-purpose registers hold about
//!   10 row offsets and past that they are reloaded from the stack every step (12 × 16 was
//!   up to 1.3× slower than AVX2). Also, at some heights (7, 8 and 14 rows with rustc 1.95)
//!   LLVM vectorizes the tile across its rows with gathers and scatters instead of keeping
//!   the accumulators in registers (30–60× slower): check the assembly when changing a tile.
//! * AVX2 + FMA: 6 rows × 16 lanes for f32 (6 × 8 for f64), twelve 256-bit accumulators.
//! * Anything else: the AVX2 tile compiled for the baseline target, multiply then add.
//!
//! With fused multiply-adds every output element is summed in the same order whatever the
//! tile, so the AVX-512 and AVX2 paths agree bit for bit. For benchmarks, the environment
//! variable `TESSERA_CONV_ISA` (`avx512`, `avx2` or `portable`, read once per process) forces
//! an ISA (with `avx512`, the 16-channel passes still run on AVX2, as above); a request the
//! CPU cannot run falls back to the best ISA below it.

use super::gemm::Gemm;
use super::im2col::ConvGeom;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Element types with direct convolution kernels. With `x` a batch `[n, C, h, w]` (`C` is
/// `g.channels`), `w` a weight `[m, C/groups · kh · kw]` and `dy` an output gradient
/// `[n, m, oh, ow]`, all contiguous. Each type has a register tile per [`Isa`] (see the
/// module documentation).
pub trait ConvElem: Gemm {
    /// `y = conv(x, w) (+ bias)`: `[n, m, oh, ow]`.
    fn conv_forward(x: &[Self], n: usize, w: &[Self], m: usize, groups: usize, g: &ConvGeom, bias: Option<&[Self]>) -> Vec<Self>;
    /// `dx = convᵀ(dy, w)`: `[n, C, h, w]`.
    fn conv_backward_input(dy: &[Self], n: usize, w: &[Self], m: usize, groups: usize, g: &ConvGeom) -> Vec<Self>;
    /// `dw = Σ_s dy[s] ⋆ x[s]`: `[m, C/groups · kh · kw]`.
    fn conv_backward_weight(dy: &[Self], x: &[Self], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Vec<Self>;
}

/// Calls the generic pass `$f::<$t, MR, NR>(isa, $args)` of this module (from a child module:
/// the per-type entry points of `impl_conv_elem!`) with the ISA and tile for `$isa` when the
/// vectors cover `$lanes` channels (per group): AVX-512 and its wide tile, unless that would
/// pad the channels to more lanes than AVX2's tile (16 f32 channels: one AVX2 block rather
/// than half of an AVX-512 one), in which case AVX2; AVX2's tile otherwise.
macro_rules! with_tile {
    ($isa:expr, $lanes:expr, $f:ident::<$t:ty>($($arg:expr),*), avx2: ($mr:literal, $nr:literal), avx512: ($mrw:literal, $nrw:literal)) => {{
        let lanes: usize = $lanes;
        match $isa {
            Isa::Avx512 if lanes.div_ceil($nrw) * $nrw <= lanes.div_ceil($nr) * $nr => super::$f::<$t, $mrw, $nrw>(Isa::Avx512, $($arg),*),
            Isa::Avx512 | Isa::Avx2Fma => super::$f::<$t, $mr, $nr>(Isa::Avx2Fma, $($arg),*),
            Isa::Portable => super::$f::<$t, $mr, $nr>(Isa::Portable, $($arg),*),
        }
    }};
}

/// Implements [`ConvElem`] for `$t` through a module `$kernels` of entry points that take the
/// [`Isa`] and pick its tile (`MR` rows × `NR` lanes, see `with_tile!`).
macro_rules! impl_conv_elem {
    ($t:ty, $kernels:ident, $($tiles:tt)*) => {
        mod $kernels {
            use super::*;

            #[allow(clippy::too_many_arguments)]
            pub(super) fn forward(
                isa: Isa,
                x: &[$t],
                n: usize,
                w: &[$t],
                m: usize,
                groups: usize,
                g: &ConvGeom,
                bias: Option<&[$t]>,
            ) -> Vec<$t> {
                with_tile!(isa, m / groups, forward::<$t>(x, n, w, m, groups, g, bias), $($tiles)*)
            }

            pub(super) fn backward_input(isa: Isa, dy: &[$t], n: usize, w: &[$t], m: usize, groups: usize, g: &ConvGeom) -> Vec<$t> {
                with_tile!(isa, g.channels / groups, backward_input::<$t>(dy, n, w, m, groups, g), $($tiles)*)
            }

            pub(super) fn backward_weight(isa: Isa, dy: &[$t], x: &[$t], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Vec<$t> {
                with_tile!(isa, m / groups, backward_weight::<$t>(dy, x, n, m, groups, g), $($tiles)*)
            }
        }

        impl ConvElem for $t {
            fn conv_forward(x: &[Self], n: usize, w: &[Self], m: usize, groups: usize, g: &ConvGeom, bias: Option<&[Self]>) -> Vec<Self> {
                $kernels::forward(Isa::selected(), x, n, w, m, groups, g, bias)
            }
            fn conv_backward_input(dy: &[Self], n: usize, w: &[Self], m: usize, groups: usize, g: &ConvGeom) -> Vec<Self> {
                $kernels::backward_input(Isa::selected(), dy, n, w, m, groups, g)
            }
            fn conv_backward_weight(dy: &[Self], x: &[Self], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Vec<Self> {
                $kernels::backward_weight(Isa::selected(), dy, x, n, m, groups, g)
            }
        }
    };
}
impl_conv_elem!(f32, f32_kernels, avx2: (6, 16), avx512: (6, 32));
impl_conv_elem!(f64, f64_kernels, avx2: (6, 8), avx512: (6, 16));

/// Below this many multiply-adds a batch runs on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 18;
/// The weight gradient sums the batch in at most this many chunks (fixed by the shapes).
const WGRAD_MAX_CHUNKS: usize = 8;
/// ... and keeps at most this many partial-sum elements alive.
const WGRAD_MAX_PARTIAL: usize = 1 << 24;
/// The weight gradient reduces over several samples at once: at least this many output
/// pixels per microkernel call ...
const WGRAD_MIN_PIXELS: usize = 512;
/// ... as long as the padded inputs and gradients of those samples stay this small
/// (elements), so that they are reused from cache across the tiles.
const WGRAD_MAX_BATCH_ELEMS: usize = 96 * 1024;

/// The instruction set the hot loops run with, best first (the order is what `<` compares).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Isa {
    /// x86-64 with AVX-512F (and AVX2, FMA): the loops compiled with those features, 32
    /// 512-bit registers, so a wider tile (for channel counts it does not mostly pad).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
    /// x86-64 with AVX2 and FMA: the loops compiled with those features, fused multiply-add.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2Fma,
    /// Anything else: the same loops for the baseline target, separate multiply and add.
    Portable,
}

impl Isa {
    /// The ISAs this CPU runs, best first (always ending with [`Isa::Portable`]).
    fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                if has!("avx512f") {
                    v.push(Isa::Avx512);
                }
                v.push(Isa::Avx2Fma);
            }
        }
        v.push(Isa::Portable);
        v
    }

    /// The ISA a pass runs with: the best one available, unless the environment variable
    /// `TESSERA_CONV_ISA` (`avx512`, `avx2` or `portable`, read once per process) asks for
    /// another; a request the CPU cannot run falls back to the best ISA below it, and an
    /// unknown value is ignored.
    fn selected() -> Isa {
        static CHOICE: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let available = Isa::available();
            let want = match std::env::var("TESSERA_CONV_ISA").as_deref() {
                Ok("avx512") => Isa::Avx512,
                Ok("avx2") => Isa::Avx2Fma,
                Ok("portable") => Isa::Portable,
                _ => available[0],
            };
            available.into_iter().find(|&i| i >= want).unwrap_or(Isa::Portable)
        })
    }
}

/// Offsets into a source buffer, with their maximum (what the microkernel's bounds check
/// uses, so that it costs O(MR) per tile and not O(K)).
struct Offsets {
    v: Vec<usize>,
    max: usize,
}

impl Offsets {
    fn new(v: Vec<usize>) -> Self {
        let max = v.iter().copied().max().unwrap_or(0);
        Offsets { v, max }
    }
}

/// `a·b + c`, fused when `FMA` (the loops are then compiled with the FMA feature, so this
/// is one instruction per lane).
#[inline(always)]
fn madd<T: ConvElem, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA {
        a.mul_add(b, c)
    } else {
        c + a * b
    }
}

/// The microkernel: `acc[r][c] += Σ_{k ∈ ks} src[rows[r] + offs[k]] · vecs[(k − ks.start)·NR + c]`,
/// for each `k` in order (so each accumulator sums in a fixed order).
#[inline(always)]
fn tile<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    src: &[T],
    rows: &[usize; MR],
    offs: &Offsets,
    ks: Range<usize>,
    vecs: &[T],
    acc: &mut [[T; NR]; MR],
) {
    if ks.is_empty() {
        return;
    }
    let rmax = rows.iter().fold(0, |a, &b| a.max(b));
    assert!(ks.end <= offs.v.len() && vecs.len() >= ks.len() * NR, "direct conv: reduction out of bounds");
    assert!(rmax.checked_add(offs.max).is_some_and(|e| e < src.len()), "direct conv: source out of bounds");
    let mut a = *acc;
    for (&o, v) in offs.v[ks].iter().zip(vecs.chunks_exact(NR)) {
        let v: &[T; NR] = v.try_into().expect("chunks_exact yields NR elements");
        // SAFETY: o ≤ offs.max < src.len() (every entry of offs.v is at most its max, and
        // rmax + offs.max < src.len() was asserted above), so `base` points into `src`.
        // (Offsetting the pointer once per step lets each row load use a single
        // base + index addressing mode.)
        let base = unsafe { src.as_ptr().add(o) };
        for r in 0..MR {
            // SAFETY: base + rows[r] is src[o + rows[r]], and o + rows[r] ≤ offs.max + rmax
            // < src.len().
            let x = unsafe { *base.add(rows[r]) };
            for c in 0..NR {
                a[r][c] = madd::<T, FMA>(x, v[c], a[r][c]);
            }
        }
    }
    *acc = a;
}

/// Copies a `c × h × w` image into the interior of `dst` (`c × hp × wp`): pixel (y, x) goes
/// to (y + top, x + left); rows and columns past `hp`, `wp` are dropped. The border is left
/// alone: every padded buffer starts zeroed and is only ever written here, with the same
/// geometry, so its border stays zero.
fn pad_image<T: ConvElem>(
    src: &[T],
    (c, h, w): (usize, usize, usize),
    dst: &mut [T],
    (hp, wp): (usize, usize),
    (top, left): (usize, usize),
) {
    let cols = (left + w).min(wp).saturating_sub(left);
    let rows = (top + h).min(hp).saturating_sub(top);
    if cols == 0 {
        return;
    }
    for ch in 0..c {
        for y in 0..rows {
            let line = &src[(ch * h + y) * w..][..cols];
            dst[(ch * hp + top + y) * wp + left..][..cols].copy_from_slice(line);
        }
    }
}

/// Runs `f(sample, out, scratch)` for every `per`-sized chunk of a new `n·per` buffer, in
/// parallel when the batch is large, and returns the buffer. `scratch` is a buffer of
/// `scratch_len` elements, zeroed once per worker and reused across its samples (see
/// [`pad_image`]). `f` must write every element of its `out`.
fn collect_samples<T: ConvElem>(
    n: usize,
    per: usize,
    flops_per_sample: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>], &mut [T]) + Sync,
) -> Vec<T> {
    let total = n * per;
    let mut out: Vec<T> = Vec::with_capacity(total);
    if per > 0 {
        let spare = &mut out.spare_capacity_mut()[..total];
        if n > 1 && n.saturating_mul(flops_per_sample) >= PAR_MIN_FLOPS {
            spare.par_chunks_mut(per).enumerate().for_each_init(|| vec![T::zero(); scratch_len], |buf, (s, o)| f(s, o, buf));
        } else {
            let mut buf = vec![T::zero(); scratch_len];
            for (s, o) in spare.chunks_mut(per).enumerate() {
                f(s, o, &mut buf);
            }
        }
    }
    // SAFETY: the capacity is `total`, and every `per`-chunk of the first `total` elements
    // was handed to `f`, which writes all of its elements (each kernel below documents how
    // its writes cover its output); with per == 0, total == 0.
    unsafe { out.set_len(total) };
    out
}

// ---- forward ----------------------------------------------------------------------------

/// What every sample of a forward pass shares.
struct FwdPlan<T> {
    /// Padded input plane: `hp × wp`, with the image at (ph, pw).
    hp: usize,
    wp: usize,
    /// Groups, input channels and output channels per group, channel blocks per group.
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Reduction offsets of (ci, i, j) relative to a pixel's window corner, in one group.
    offs: Offsets,
    /// Window corner of each output pixel in the padded image.
    pix: Vec<usize>,
    /// Weights packed per (group, channel block) as `[k][NR]`, zero past the channels.
    wpk: Vec<T>,
}

/// The window-corner offsets of the output pixels and the (channel, tap) offsets, for a
/// padded `channels × hp × wp` source with the geometry's strides and dilations.
fn window_offsets(g: &ConvGeom, cg: usize, hp: usize, wp: usize) -> (Offsets, Vec<usize>) {
    let mut offs = Vec::with_capacity(cg * g.kh * g.kw);
    for ci in 0..cg {
        for i in 0..g.kh {
            for j in 0..g.kw {
                offs.push(ci * hp * wp + i * g.dh * wp + j * g.dw);
            }
        }
    }
    let mut pix = Vec::with_capacity(g.oh * g.ow);
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            pix.push(oy * g.sh * wp + ox * g.sw);
        }
    }
    (Offsets::new(offs), pix)
}

/// The padded size the windows of a geometry read: `(oh − 1)·sh + (kh − 1)·dh + 1` rows.
fn padded_dims(g: &ConvGeom) -> (usize, usize) {
    ((g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1)
}

#[allow(clippy::too_many_arguments)]
fn forward<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    x: &[T],
    n: usize,
    w: &[T],
    m: usize,
    groups: usize,
    g: &ConvGeom,
    bias: Option<&[T]>,
) -> Vec<T> {
    let l = g.col_len();
    if l == 0 || m == 0 {
        return vec![T::zero(); n * m * l];
    }
    let (cg, mg) = (g.channels / groups, m / groups);
    let kg = cg * g.kh * g.kw;
    let (hp, wp) = padded_dims(g);
    let (offs, pix) = window_offsets(g, cg, hp, wp);
    let ncb = mg.div_ceil(NR);
    let mut wpk = vec![T::zero(); groups * ncb * kg * NR];
    for grp in 0..groups {
        for cb in 0..ncb {
            let blk = &mut wpk[(grp * ncb + cb) * kg * NR..][..kg * NR];
            for c in 0..NR.min(mg - cb * NR) {
                let co = grp * mg + cb * NR + c;
                for (k, &v) in w[co * kg..(co + 1) * kg].iter().enumerate() {
                    blk[k * NR + c] = v;
                }
            }
        }
    }
    let plan = FwdPlan { hp, wp, groups, cg, mg, ncb, offs, pix, wpk };
    let img = g.image_len();
    collect_samples(n, m * l, m * kg * l, g.channels * hp * wp, |s, y, pad| {
        let xs = &x[s * img..(s + 1) * img];
        match isa {
            // SAFETY: Isa::Avx512 is only detected on CPUs with AVX-512F, AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { forward_sample_avx512::<T, MR, NR>(&plan, g, xs, bias, y, pad) },
            // SAFETY: Isa::Avx2Fma is only detected on CPUs with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { forward_sample_avx2::<T, MR, NR>(&plan, g, xs, bias, y, pad) },
            _ => forward_sample::<T, MR, NR, false>(&plan, g, xs, bias, y, pad),
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_sample_avx2<T: ConvElem, const MR: usize, const NR: usize>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    forward_sample::<T, MR, NR, true>(p, g, xs, bias, y, pad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_sample_avx512<T: ConvElem, const MR: usize, const NR: usize>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    forward_sample::<T, MR, NR, true>(p, g, xs, bias, y, pad)
}

/// One sample of the forward pass. Writes every element of `y` (`m × l`): each group, each
/// channel block's `min(NR, mg − cb·NR)` channels, each pixel tile's `min(MR, l − p0)`
/// pixels.
#[inline(always)]
fn forward_sample<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let (plane, l, kg) = (p.hp * p.wp, p.pix.len(), p.offs.v.len());
    pad_image(xs, (g.channels, g.h, g.w), pad, (p.hp, p.wp), (g.ph, g.pw));
    for grp in 0..p.groups {
        let gbase = grp * p.cg * plane;
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let wv = &p.wpk[(grp * p.ncb + cb) * kg * NR..][..kg * NR];
            let mut init = [T::zero(); NR];
            if let Some(b) = bias {
                init[..cn].copy_from_slice(&b[co0..co0 + cn]);
            }
            for p0 in (0..l).step_by(MR) {
                let rows: [usize; MR] = std::array::from_fn(|r| gbase + p.pix[(p0 + r).min(l - 1)]);
                let mut acc = [init; MR];
                tile::<T, MR, NR, FMA>(pad, &rows, &p.offs, 0..kg, wv, &mut acc);
                let pn = MR.min(l - p0);
                for c in 0..cn {
                    for (r, o) in y[(co0 + c) * l + p0..][..pn].iter_mut().enumerate() {
                        o.write(acc[r][c]);
                    }
                }
            }
        }
    }
}

// ---- input gradient ---------------------------------------------------------------------

/// One stride phase of the input gradient: the input pixels (y, x) with y ≡ ry (mod sh) and
/// x ≡ rx (mod sw), and the taps that reach them.
struct Phase {
    /// Offset of each pixel's window corner in the padded output gradient, and the pixel's
    /// position in an input plane.
    rows: Vec<usize>,
    outs: Vec<usize>,
    /// (output channel, tap) offsets relative to the window corner, in one group.
    offs: Offsets,
    /// Where this phase's packed weights start in `BwdPlan::wpk`: per (group, channel
    /// block) a `[k][NR]` block.
    wstart: usize,
}

struct BwdPlan<T> {
    /// Padded output-gradient plane `hq × wq`, with the gradient at (ty, tx).
    hq: usize,
    wq: usize,
    ty: usize,
    tx: usize,
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    phases: Vec<Phase>,
    /// Whether some phase with pixels has no taps (a kernel smaller than the stride): its
    /// pixels are zero.
    zero_phases: bool,
    wpk: Vec<T>,
}

/// Along one axis of an input of size `n` (stride `s`, padding `p`, dilation `d`, kernel
/// `k`): for each phase `r < s`, the pixels of the phase and the taps `(i, e)` that reach
/// them, where input pixel `r + s·t` reads output position `t + e`.
fn axis_phases(n: usize, k: usize, s: usize, p: usize, d: usize) -> Vec<(usize, Vec<(usize, isize)>)> {
    (0..s)
        .map(|r| {
            let count = if r < n { (n - r).div_ceil(s) } else { 0 };
            let taps = (0..k)
                .filter_map(|i| {
                    let t = (r + p) as isize - (i * d) as isize;
                    (t.rem_euclid(s as isize) == 0).then(|| (i, t.div_euclid(s as isize)))
                })
                .collect();
            (count, taps)
        })
        .collect()
}

/// The zero padding (before, total) an axis of `out` output positions needs so that every
/// tap of every phase reads inside the padded gradient.
fn axis_padding(phases: &[(usize, Vec<(usize, isize)>)], out: usize) -> (usize, usize) {
    let mut before = 0isize;
    let mut end = out as isize;
    for (count, taps) in phases {
        if *count == 0 {
            continue;
        }
        for &(_, e) in taps {
            before = before.max(-e);
            end = end.max(*count as isize - 1 + e + 1);
        }
    }
    (before as usize, (before + end) as usize)
}

fn backward_input<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    n: usize,
    w: &[T],
    m: usize,
    groups: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let img = g.image_len();
    let l = g.col_len();
    if img == 0 {
        return Vec::new();
    }
    let (cg, mg) = (g.channels / groups, m / groups);
    let (kk, kg) = (g.kh * g.kw, g.channels / groups * g.kh * g.kw);
    let ay = axis_phases(g.h, g.kh, g.sh, g.ph, g.dh);
    let ax = axis_phases(g.w, g.kw, g.sw, g.pw, g.dw);
    let (ty, hq) = axis_padding(&ay, g.oh);
    let (tx, wq) = axis_padding(&ax, g.ow);
    let plane = hq * wq;
    let ncb = cg.div_ceil(NR);
    let mut phases = Vec::with_capacity(g.sh * g.sw);
    let mut wpk = Vec::new();
    for (ry, (ny, ti)) in ay.iter().enumerate() {
        for (rx, (nx, tj)) in ax.iter().enumerate() {
            let mut rows = Vec::with_capacity(ny * nx);
            let mut outs = Vec::with_capacity(ny * nx);
            for py in 0..*ny {
                for px in 0..*nx {
                    rows.push(py * wq + px);
                    outs.push((ry + g.sh * py) * g.w + rx + g.sw * px);
                }
            }
            // A phase without pixels gets no taps: its offsets may lie outside the padding.
            let used = ny * nx > 0;
            let mut offs = Vec::with_capacity(mg * ti.len() * tj.len());
            for co in (0..mg).filter(|_| used) {
                for &(_, ey) in ti {
                    for &(_, ex) in tj {
                        offs.push(co * plane + (ey + ty as isize) as usize * wq + (ex + tx as isize) as usize);
                    }
                }
            }
            let kp = offs.len();
            let wstart = wpk.len();
            wpk.resize(wstart + groups * ncb * kp * NR, T::zero());
            for grp in 0..groups {
                for cb in 0..ncb {
                    let blk = &mut wpk[wstart + (grp * ncb + cb) * kp * NR..][..kp * NR];
                    let mut k = 0;
                    for co in (0..mg).filter(|_| used) {
                        let wrow = &w[(grp * mg + co) * kg..(grp * mg + co + 1) * kg];
                        for &(i, _) in ti {
                            for &(j, _) in tj {
                                for c in 0..NR.min(cg - cb * NR) {
                                    blk[k * NR + c] = wrow[(cb * NR + c) * kk + i * g.kw + j];
                                }
                                k += 1;
                            }
                        }
                    }
                }
            }
            phases.push(Phase { rows, outs, offs: Offsets::new(offs), wstart });
        }
    }
    let zero_phases = phases.iter().any(|ph| !ph.rows.is_empty() && ph.offs.v.is_empty());
    let plan = BwdPlan { hq, wq, ty, tx, groups, cg, mg, ncb, phases, zero_phases, wpk };
    collect_samples(n, img, m * kg * l, m * plane, |s, dx, pad| {
        let dys = &dy[s * m * l..(s + 1) * m * l];
        match isa {
            // SAFETY: Isa::Avx512 is only detected on CPUs with AVX-512F, AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { backward_input_sample_avx512::<T, MR, NR>(&plan, g, m, dys, dx, pad) },
            // SAFETY: Isa::Avx2Fma is only detected on CPUs with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { backward_input_sample_avx2::<T, MR, NR>(&plan, g, m, dys, dx, pad) },
            _ => backward_input_sample::<T, MR, NR, false>(&plan, g, m, dys, dx, pad),
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_input_sample_avx2<T: ConvElem, const MR: usize, const NR: usize>(
    p: &BwdPlan<T>,
    g: &ConvGeom,
    m: usize,
    dys: &[T],
    dx: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    backward_input_sample::<T, MR, NR, true>(p, g, m, dys, dx, pad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn backward_input_sample_avx512<T: ConvElem, const MR: usize, const NR: usize>(
    p: &BwdPlan<T>,
    g: &ConvGeom,
    m: usize,
    dys: &[T],
    dx: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    backward_input_sample::<T, MR, NR, true>(p, g, m, dys, dx, pad)
}

/// One sample of the input gradient. Writes every element of `dx` (`C × h × w`): the
/// phases partition the pixels of a plane (`y mod sh`, `x mod sw`), and each group's
/// channel blocks cover its `cg` channels; phases without taps are zero, written up front
/// by one fill of the whole sample.
#[inline(always)]
fn backward_input_sample<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &BwdPlan<T>,
    g: &ConvGeom,
    m: usize,
    dys: &[T],
    dx: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let plane = p.hq * p.wq;
    let hw = g.h * g.w;
    pad_image(dys, (m, g.oh, g.ow), pad, (p.hq, p.wq), (p.ty, p.tx));
    if p.zero_phases {
        for o in dx.iter_mut() {
            o.write(T::zero());
        }
    }
    for ph in &p.phases {
        let (np, kp) = (ph.rows.len(), ph.offs.v.len());
        if np == 0 || (kp == 0 && p.zero_phases) {
            continue;
        }
        for grp in 0..p.groups {
            let gbase = grp * p.mg * plane;
            for cb in 0..p.ncb {
                let ci0 = grp * p.cg + cb * NR;
                let cn = NR.min(p.cg - cb * NR);
                let wv = &p.wpk[ph.wstart + (grp * p.ncb + cb) * kp * NR..][..kp * NR];
                for p0 in (0..np).step_by(MR) {
                    let rows: [usize; MR] = std::array::from_fn(|r| gbase + ph.rows[(p0 + r).min(np - 1)]);
                    let mut acc = [[T::zero(); NR]; MR];
                    tile::<T, MR, NR, FMA>(pad, &rows, &ph.offs, 0..kp, wv, &mut acc);
                    let pn = MR.min(np - p0);
                    let outs = &ph.outs[p0..p0 + pn];
                    if outs[pn - 1] - outs[0] == pn - 1 {
                        // The tile's pixels are adjacent in the image (always at stride 1).
                        for c in 0..cn {
                            for (r, o) in dx[(ci0 + c) * hw + outs[0]..][..pn].iter_mut().enumerate() {
                                o.write(acc[r][c]);
                            }
                        }
                    } else {
                        for c in 0..cn {
                            let out = &mut dx[(ci0 + c) * hw..][..hw];
                            for (r, &q) in outs.iter().enumerate() {
                                out[q].write(acc[r][c]);
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---- weight gradient --------------------------------------------------------------------

fn backward_weight<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
    groups: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let (l, img) = (g.col_len(), g.image_len());
    let (cg, mg) = (g.channels / groups, m / groups);
    let kg = cg * g.kh * g.kw;
    let wlen = m * kg;
    if n == 0 || wlen == 0 || l == 0 {
        return vec![T::zero(); wlen];
    }
    let (hp, wp) = padded_dims(g);
    let (taps, pix) = window_offsets(g, cg, hp, wp);
    let pad_len = g.channels * hp * wp;
    let ncb = mg.div_ceil(NR);
    // Samples per microkernel call: enough pixels to amortize loading the accumulators,
    // few enough that the batch stays in cache.
    let per_sample = pad_len + ncb * groups * NR * l;
    let batch = WGRAD_MIN_PIXELS.div_ceil(l).min(WGRAD_MAX_BATCH_ELEMS / per_sample.max(1)).clamp(1, n);
    let red: Vec<usize> = (0..batch).flat_map(|b| pix.iter().map(move |&q| b * pad_len + q)).collect();
    let red = Offsets::new(red);
    let chunks = n.min(WGRAD_MAX_CHUNKS).min((WGRAD_MAX_PARTIAL / wlen).max(1));
    let per = n.div_ceil(chunks);
    let chunks = n.div_ceil(per);
    let plan = WgradPlan { groups, cg, mg, ncb, l, pad_len, hp, wp, batch, taps, red };
    let partial = |c: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); wlen];
        let mut pads = vec![T::zero(); batch * pad_len];
        let mut dyt = vec![T::zero(); groups * ncb * batch * l * NR];
        let (s0, s1) = (c * per, ((c + 1) * per).min(n));
        for b0 in (s0..s1).step_by(batch) {
            let bn = batch.min(s1 - b0);
            let xs = &x[b0 * img..(b0 + bn) * img];
            let dys = &dy[b0 * m * l..(b0 + bn) * m * l];
            match isa {
                // SAFETY: Isa::Avx512 is only detected on CPUs with AVX-512F, AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe {
                    backward_weight_batch_avx512::<T, MR, NR>(&plan, g, m, bn, xs, dys, &mut acc, &mut pads, &mut dyt)
                },
                // SAFETY: Isa::Avx2Fma is only detected on CPUs with AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Fma => unsafe { backward_weight_batch_avx2::<T, MR, NR>(&plan, g, m, bn, xs, dys, &mut acc, &mut pads, &mut dyt) },
                _ => backward_weight_batch::<T, MR, NR, false>(&plan, g, m, bn, xs, dys, &mut acc, &mut pads, &mut dyt),
            }
        }
        acc
    };
    let work = n.saturating_mul(wlen).saturating_mul(l);
    let parts: Vec<Vec<T>> = if chunks > 1 && work >= PAR_MIN_FLOPS {
        (0..chunks).into_par_iter().map(partial).collect()
    } else {
        (0..chunks).map(partial).collect()
    };
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![T::zero(); wlen]);
    for p in parts {
        for (o, &v) in sum.iter_mut().zip(&p) {
            *o += v;
        }
    }
    // [kg, m] → [m, kg].
    let mut out = vec![T::zero(); wlen];
    for (k, row) in sum.chunks_exact(m).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            out[co * kg + k] = v;
        }
    }
    out
}

struct WgradPlan {
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Output pixels per sample, padded input length per sample and its plane.
    l: usize,
    pad_len: usize,
    hp: usize,
    wp: usize,
    /// Samples per microkernel call.
    batch: usize,
    /// (ci, i, j) offsets in one group of a padded sample: the tile rows.
    taps: Offsets,
    /// Window corners of every output pixel of `batch` padded samples laid end to end.
    red: Offsets,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_weight_batch_avx2<T: ConvElem, const MR: usize, const NR: usize>(
    p: &WgradPlan,
    g: &ConvGeom,
    m: usize,
    bn: usize,
    xs: &[T],
    dys: &[T],
    acc: &mut [T],
    pads: &mut [T],
    dyt: &mut [T],
) {
    backward_weight_batch::<T, MR, NR, true>(p, g, m, bn, xs, dys, acc, pads, dyt)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_weight_batch_avx512<T: ConvElem, const MR: usize, const NR: usize>(
    p: &WgradPlan,
    g: &ConvGeom,
    m: usize,
    bn: usize,
    xs: &[T],
    dys: &[T],
    acc: &mut [T],
    pads: &mut [T],
    dyt: &mut [T],
) {
    backward_weight_batch::<T, MR, NR, true>(p, g, m, bn, xs, dys, acc, pads, dyt)
}

/// Adds the weight gradient of `bn` consecutive samples to `acc`, transposed (`[kg, m]`):
/// pads their
/// inputs end to end, transposes their output gradients to `[pixel][NR]` per channel block,
/// then runs the microkernel over every (tap tile, channel block), each accumulating in
/// sample-then-pixel order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_weight_batch<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &WgradPlan,
    g: &ConvGeom,
    m: usize,
    bn: usize,
    xs: &[T],
    dys: &[T],
    acc: &mut [T],
    pads: &mut [T],
    dyt: &mut [T],
) {
    let (l, img, kg) = (p.l, g.image_len(), p.taps.v.len());
    let blk = p.batch * l * NR;
    for b in 0..bn {
        pad_image(
            &xs[b * img..(b + 1) * img],
            (g.channels, g.h, g.w),
            &mut pads[b * p.pad_len..(b + 1) * p.pad_len],
            (p.hp, p.wp),
            (g.ph, g.pw),
        );
        for grp in 0..p.groups {
            for cb in 0..p.ncb {
                let out = &mut dyt[(grp * p.ncb + cb) * blk + b * l * NR..][..l * NR];
                for c in 0..NR {
                    let co = cb * NR + c;
                    if co < p.mg {
                        let src = &dys[(b * m + grp * p.mg + co) * l..][..l];
                        for (q, &v) in src.iter().enumerate() {
                            out[q * NR + c] = v;
                        }
                    } else {
                        for q in 0..l {
                            out[q * NR + c] = T::zero();
                        }
                    }
                }
            }
        }
    }
    let plane = p.hp * p.wp;
    let len = bn * l;
    for grp in 0..p.groups {
        let gbase = grp * p.cg * plane;
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let vecs = &dyt[(grp * p.ncb + cb) * blk..][..len * NR];
            for k0 in (0..kg).step_by(MR) {
                let kn = MR.min(kg - k0);
                let rows: [usize; MR] = std::array::from_fn(|r| gbase + p.taps.v[(k0 + r).min(kg - 1)]);
                let mut t = [[T::zero(); NR]; MR];
                for (r, tr) in t.iter_mut().enumerate().take(kn) {
                    tr[..cn].copy_from_slice(&acc[(k0 + r) * m + co0..][..cn]);
                }
                tile::<T, MR, NR, FMA>(pads, &rows, &p.red, 0..len, vecs, &mut t);
                for (r, tr) in t.iter().enumerate().take(kn) {
                    acc[(k0 + r) * m + co0..][..cn].copy_from_slice(&tr[..cn]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), uniform in [-1, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn vec(&mut self, n: usize) -> Vec<f64> {
            (0..n).map(|_| (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0).collect()
        }
    }

    /// The input position a tap reads, if inside the image.
    fn at(o: usize, s: usize, k: usize, d: usize, p: usize, n: usize) -> Option<usize> {
        (o * s + k * d).checked_sub(p).filter(|&v| v < n)
    }

    /// Naive forward, input gradient and weight gradient.
    #[allow(clippy::type_complexity)]
    fn reference(x: &[f64], w: &[f64], dy: &[f64], n: usize, m: usize, groups: usize, g: &ConvGeom) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (cg, mg, l) = (g.channels / groups, m / groups, g.col_len());
        let kg = cg * g.kh * g.kw;
        let mut y = vec![0.0; n * m * l];
        let mut dx = vec![0.0; n * g.image_len()];
        let mut dw = vec![0.0; m * kg];
        for s in 0..n {
            for co in 0..m {
                let grp = co / mg;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let yi = (s * m + co) * l + oy * g.ow + ox;
                        for cl in 0..cg {
                            let ci = grp * cg + cl;
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let (Some(iy), Some(ix)) = (at(oy, g.sh, i, g.dh, g.ph, g.h), at(ox, g.sw, j, g.dw, g.pw, g.w)) else {
                                        continue;
                                    };
                                    let xi = ((s * g.channels + ci) * g.h + iy) * g.w + ix;
                                    let wi = co * kg + (cl * g.kh + i) * g.kw + j;
                                    y[yi] += w[wi] * x[xi];
                                    dx[xi] += w[wi] * dy[yi];
                                    dw[wi] += dy[yi] * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: got {a}, want {b}");
        }
    }

    fn check_case(rng: &mut Rng, case: usize) {
        let groups = 1 + rng.below(3);
        let (cg, mg) = (1 + rng.below(if case.is_multiple_of(3) { 20 } else { 4 }), 1 + rng.below(if case % 3 == 1 { 20 } else { 4 }));
        let (c, m) = (cg * groups, mg * groups);
        let n = 1 + rng.below(if case.is_multiple_of(5) { 20 } else { 3 });
        let (h, w) = (1 + rng.below(9), 1 + rng.below(9));
        let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
        let (sh, sw) = (1 + rng.below(3), 1 + rng.below(3));
        let (ph, pw) = (rng.below(3), rng.below(3));
        let (dh, dw) = (1 + rng.below(3), 1 + rng.below(3));
        let fits =
            |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p > d * (k - 1)).then(|| (n + 2 * p - d * (k - 1) - 1) / s + 1);
        let (Some(oh), Some(ow)) = (fits(h, kh, sh, ph, dh), fits(w, kw, sw, pw, dw)) else {
            return;
        };
        let g = ConvGeom { channels: c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
        let x = rng.vec(n * g.image_len());
        let wt = rng.vec(m * cg * kh * kw);
        let dy = rng.vec(n * m * oh * ow);
        let bias = rng.vec(m);
        let (mut y, dx, dwt) = reference(&x, &wt, &dy, n, m, groups, &g);
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias[(i / (oh * ow)) % m];
        }
        let what = format!("case {case}: {g:?} n {n} m {m} groups {groups}");
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let (x32, w32, dy32, b32) = (f32s(&x), f32s(&wt), f32s(&dy), f32s(&bias));
        // Every ISA of this CPU, each with its tile; the FMA ISAs sum every element in the
        // same order, so they must agree bit for bit. Outputs: (y, dx, dw) in f64, then f32.
        type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f32>, Vec<f32>, Vec<f32>);
        let mut fused: Option<Outputs> = None;
        for isa in Isa::available() {
            let y64 = f64_kernels::forward(isa, &x, n, &wt, m, groups, &g, Some(&bias));
            let dx64 = f64_kernels::backward_input(isa, &dy, n, &wt, m, groups, &g);
            let dw64 = f64_kernels::backward_weight(isa, &dy, &x, n, m, groups, &g);
            let y32 = f32_kernels::forward(isa, &x32, n, &w32, m, groups, &g, Some(&b32));
            let dx32 = f32_kernels::backward_input(isa, &dy32, n, &w32, m, groups, &g);
            let dw32 = f32_kernels::backward_weight(isa, &dy32, &x32, n, m, groups, &g);
            close(&y64, &y, 1e-12, &format!("f64 forward {isa:?} {what}"));
            close(&dx64, &dx, 1e-12, &format!("f64 dx {isa:?} {what}"));
            close(&dw64, &dwt, 1e-12, &format!("f64 dw {isa:?} {what}"));
            close(&f64s(&y32), &y, 1e-4, &format!("f32 forward {isa:?} {what}"));
            close(&f64s(&dx32), &dx, 1e-4, &format!("f32 dx {isa:?} {what}"));
            close(&f64s(&dw32), &dwt, 1e-4, &format!("f32 dw {isa:?} {what}"));
            if isa == Isa::Portable {
                continue;
            }
            let got = (y64, dx64, dw64, y32, dx32, dw32);
            match &fused {
                Some(first) => assert!(*first == got, "{isa:?} differs from the other FMA ISA: {what}"),
                None => fused = Some(got),
            }
        }
    }

    #[test]
    fn direct_kernels_match_naive_convolution() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..400 {
            check_case(&mut rng, case);
        }
    }

    #[test]
    fn narrow_resnet_shapes_match_naive_convolution() {
        // The SimCLR encoder's shapes (small batch): 3×3 stride 1 and 2, 1×1 stride 2.
        let mut rng = Rng(7);
        for (c, hw, m, k, s, p) in
            [(1, 28, 16, 3, 1, 1), (16, 28, 32, 3, 2, 1), (16, 28, 32, 1, 2, 0), (64, 7, 128, 3, 2, 1), (128, 4, 128, 3, 1, 1)]
        {
            let o = (hw + 2 * p - k) / s + 1;
            let g = ConvGeom { channels: c, h: hw, w: hw, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, dh: 1, dw: 1, oh: o, ow: o };
            let n = 3;
            let x = rng.vec(n * g.image_len());
            let wt = rng.vec(m * c * k * k);
            let dy = rng.vec(n * m * o * o);
            let (y, dx, dwt) = reference(&x, &wt, &dy, n, m, 1, &g);
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
            let (x32, w32, dy32) = (f32s(&x), f32s(&wt), f32s(&dy));
            let mut fused: Option<(Vec<f32>, Vec<f32>, Vec<f32>)> = None;
            for isa in Isa::available() {
                let what = format!("{isa:?} {g:?}");
                let got = (
                    f32_kernels::forward(isa, &x32, n, &w32, m, 1, &g, None),
                    f32_kernels::backward_input(isa, &dy32, n, &w32, m, 1, &g),
                    f32_kernels::backward_weight(isa, &dy32, &x32, n, m, 1, &g),
                );
                close(&f64s(&got.0), &y, 1e-4, &what);
                close(&f64s(&got.1), &dx, 1e-4, &what);
                close(&f64s(&got.2), &dwt, 1e-3, &what);
                // The FMA ISAs agree bit for bit (see check_case).
                match (&fused, isa) {
                    (_, Isa::Portable) => {}
                    (Some(first), _) => assert!(*first == got, "{what}: differs from the other FMA ISA"),
                    (None, _) => fused = Some(got),
                }
            }
            // The trait runs the selected ISA.
            let what = format!("default {g:?}");
            close(&f64s(&f32::conv_forward(&x32, n, &w32, m, 1, &g, None)), &y, 1e-4, &what);
            close(&f64s(&f32::conv_backward_input(&dy32, n, &w32, m, 1, &g)), &dx, 1e-4, &what);
            close(&f64s(&f32::conv_backward_weight(&dy32, &x32, n, m, 1, &g)), &dwt, 1e-3, &what);
        }
    }
}
