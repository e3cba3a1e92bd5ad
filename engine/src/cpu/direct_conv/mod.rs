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
//! order, or for large weights in one sum whose channel blocks the workers share), so
//! results do not depend on the thread count.
//!
//! Small images (fewer than `MIN_TASK_ROWS` tile rows per sample, such as ResNet's last
//! stages) change three things, none of which changes what each output element sums: a
//! forward or input-gradient task takes several samples, so each block of packed weights
//! serves many tiles (`samples_per_task`, which also picks the count whose rows fill the
//! tiles best); the padded samples are channels-last
//! (`Layout`); and the taps that fall in the zero padding are skipped, as oneDNN does —
//! tile rows are sorted by the taps they read inside the image and a tile reduces over the
//! union of its rows' taps (`TapRect`, `TaskRows`); the weight gradient groups its
//! pixels the same way. On a 4×4 image with a 3×3 kernel that is 31% of the work.
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
use super::transpose::transpose_scatter;
use crate::kinds::ConvGeom;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Runs the per-sample kernel `$kernel::<T, MR, NR, FMA>` compiled for `isa`. Run-time
/// multiversioning in Rust takes one `#[target_feature]` function per instruction set, so
/// this defines the two x86-64 copies (each only forwards, with fused multiply-adds) where
/// the pass calls them, and picks one. The parameters are listed with their types once,
/// as `name: Type = value`.
macro_rules! run_on_isa {
    ($isa:expr, $kernel:ident::<$t:ty, $mr:ident, $nr:ident>($($arg:ident: $ty:ty = $val:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2<T: ConvElem, const MR: usize, const NR: usize>($($arg: $ty),*) {
            $kernel::<T, MR, NR, true>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx512<T: ConvElem, const MR: usize, const NR: usize>($($arg: $ty),*) {
            $kernel::<T, MR, NR, true>($($arg),*)
        }
        match $isa {
            // SAFETY: Isa::Avx512 is only detected on CPUs with AVX-512F, AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::<$t, $mr, $nr>($($val),*) },
            // SAFETY: Isa::Avx2Fma is only detected on CPUs with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { avx2::<$t, $mr, $nr>($($val),*) },
            _ => $kernel::<$t, $mr, $nr, false>($($val),*),
        }
    }};
}

mod forward_pass;
mod input_grad;
mod weight_grad;

use forward_pass::forward;
use input_grad::backward_input;
use weight_grad::backward_weight;
#[cfg(test)]
use weight_grad::backward_weight_with;

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
/// A forward or input-gradient task takes several samples when one has fewer rows than this
/// (see [`samples_per_task`]).
const MIN_TASK_ROWS: usize = 128;

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

/// A new buffer of `blocks · len` elements whose block `i` is written whole by `f(i, block)`,
/// by the pool's workers when large ([`crate::cpu::per_block`]). The convolutions' packed
/// weights and gradients are several MB on small images (ResNet-18's 512 × 512 × 3 × 3 is
/// 9 MB): filled by one thread, and zeroed first, they cost as much as a fifth of a 4 × 4
/// convolution.
fn blocks_from<T: ConvElem>(blocks: usize, len: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    crate::cpu::per_block(blocks * len, len, f)
}

/// `blocks · len` zeros, written in parallel when there are many (see [`blocks_from`]).
fn zeroed_blocks<T: ConvElem>(blocks: usize, len: usize) -> Vec<T> {
    blocks_from(blocks, len, |_, b| b.fill(MaybeUninit::new(T::zero())))
}

/// Packs vectors of a weight `w` as the microkernel reads them: `blocks` blocks of
/// `[k][NR]`, `k < offs.len()`, where block `blk` with `(base, lanes) = block(blk)` holds
/// `w[base + c·lane_stride + offs[k]]` in lane `c < lanes` and zero past it.
fn pack_weight_blocks<T: ConvElem, const NR: usize>(
    w: &[T],
    blocks: usize,
    offs: &[usize],
    lane_stride: usize,
    block: impl Fn(usize) -> (usize, usize) + Sync,
) -> Vec<T> {
    blocks_from(blocks, offs.len() * NR, |blk, dst| {
        let (base, lanes) = block(blk);
        for (&o, v) in offs.iter().zip(dst.chunks_exact_mut(NR)) {
            for (c, e) in v.iter_mut().enumerate() {
                e.write(if c < lanes { w[base + c * lane_stride + o] } else { T::zero() });
            }
        }
    })
}

/// The rows and columns of an `h × w` image that land inside a padded `hp × wp` plane at
/// (top, left).
fn padded_interior((h, w): (usize, usize), (hp, wp): (usize, usize), (top, left): (usize, usize)) -> (usize, usize) {
    ((top + h).min(hp).saturating_sub(top), (left + w).min(wp).saturating_sub(left))
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
    let (rows, cols) = padded_interior((h, w), (hp, wp), (top, left));
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

/// Whether a pass over samples of `rows_per_sample` tile rows skips the taps that fall in
/// the zero padding: small images do (31% of the work at 4×4 with a 3×3 kernel, 16% at 8×8),
/// large ones compute them (a few percent there, not worth their layout's cost).
fn skips_padding(rows_per_sample: usize) -> bool {
    rows_per_sample < MIN_TASK_ROWS
}

/// The reduction steps `(channel, tap)` of `chans` channels and `taps` taps, in order. When
/// skipping padding the steps run tap by tap, the channels innermost, so that the taps a tile
/// reads ([`TapRect`]) are runs of steps: `k = (a·cols + b)·chans + channel` for tap `(a, b)`.
/// Otherwise channel by channel (a channel's taps share cache lines), over every tap.
fn reduction_order(skip_padding: bool, chans: usize, taps: usize) -> Vec<(usize, usize)> {
    if skip_padding {
        (0..taps).flat_map(|t| (0..chans).map(move |ch| (ch, t))).collect()
    } else {
        (0..chans).flat_map(|ch| (0..taps).map(move |t| (ch, t))).collect()
    }
}

/// How a forward or input-gradient task lays out its padded samples: `channels` planes of
/// `plane` elements each (as the tensors are), or channels last, when images are small. A
/// tile reads, per reduction step, one element for each of its rows; the steps run through
/// the channels of one tap. Channels-first, the rows of a large image's tile are adjacent
/// pixels, so one cache line serves all of them, but each step moves to another plane;
/// channels-last, each row reads consecutive elements (a line serves 16 f32 steps), which
/// is what small images need, where a tile's rows are pixels of several samples (4×4 images
/// in ResNet-18's last stage: 1.3–1.5× faster), and transposing costs little next to their
/// many channels. Large images stay channels-first: there the transposition cost up to a
/// fifth of a 3×3 convolution and most of a strided 1×1 one.
#[derive(Clone, Copy)]
struct Layout {
    channels_last: bool,
    channels: usize,
    plane: usize,
}

impl Layout {
    /// Channels-last for samples of fewer than [`MIN_TASK_ROWS`] rows (the ones whose tasks
    /// take several samples).
    fn for_rows(rows_per_sample: usize, channels: usize, plane: usize) -> Self {
        Layout { channels_last: skips_padding(rows_per_sample), channels, plane }
    }

    /// Whether tasks in this layout skip the padding taps: channels-last ones do (both are
    /// for small images, see [`skips_padding`]).
    fn skips_padding(&self) -> bool {
        self.channels_last
    }

    /// Where channel `ch` of padded position `pos` lies in a padded sample.
    fn at(&self, ch: usize, pos: usize) -> usize {
        if self.channels_last {
            pos * self.channels + ch
        } else {
            ch * self.plane + pos
        }
    }

    /// Pads a `c × h × w` image into `dst`, as [`pad_image`] does, in this layout.
    fn pad<T: ConvElem>(&self, src: &[T], chw: (usize, usize, usize), dst: &mut [T], hwp: (usize, usize), corner: (usize, usize)) {
        if self.channels_last {
            pad_image_channels_last(src, chw, dst, hwp, corner);
        } else {
            pad_image(src, chw, dst, hwp, corner);
        }
    }
}

/// [`pad_image`] into a channels-last buffer: pixel (y, x) of channel `ch` goes to
/// `dst[((y + top)·wp + x + left)·c + ch]`.
fn pad_image_channels_last<T: ConvElem>(
    src: &[T],
    (c, h, w): (usize, usize, usize),
    dst: &mut [T],
    (hp, wp): (usize, usize),
    (top, left): (usize, usize),
) {
    let (rows, cols) = padded_interior((h, w), (hp, wp), (top, left));
    if rows == 0 || cols == 0 {
        return;
    }
    // The image as a `c × (h·w)` matrix, transposed into the padded rows: all its kept rows
    // at once when whole rows are kept (the pixels then run on across rows), else row by row.
    let corner = |y: usize, x: usize| ((top + y) * wp + left + x) * c;
    if cols == w {
        transpose_scatter(src, (c, rows * w), h * w, dst, |p| corner(p / w, p % w));
    } else {
        for y in 0..rows {
            transpose_scatter(&src[y * w..], (c, cols), h * w, dst, |x| corner(y, x));
        }
    }
}

/// How many consecutive samples one task of a forward or input-gradient pass takes. A task
/// streams each channel block's packed weights once over all its rows (output or input
/// pixels), so a sample with few pixels — a 4×4 image in ResNet-18's last stage has 16 —
/// would read the whole weight once per 16 rows; a task takes about enough samples to reach
/// [`MIN_TASK_ROWS`] rows, but no more than leaves each worker a few tasks. Within that
/// range (half to twice the samples that reach it) the count is the one whose tasks do the
/// least work per sample, `work(count)` being the taps a task of `count` samples reads
/// ([`TaskRows::work`]), times the samples the busiest worker gets: how the rows of a task
/// fill its tiles depends on the count (at 4×4, tasks of 6 samples read 7% fewer taps than
/// tasks of 8, and at 8×8 tasks of 4 samples 6% fewer than tasks of 2). Each output element
/// is still one tile's full reduction, so the count changes no result.
fn samples_per_task(rows_per_sample: usize, n: usize, work: impl Fn(usize) -> usize) -> usize {
    let wanted = MIN_TASK_ROWS.div_ceil(rows_per_sample.max(1));
    let threads = rayon::current_num_threads();
    let spread = n.div_ceil(4 * threads).max(1);
    if wanted <= 1 || spread <= 1 {
        return 1;
    }
    let (lo, hi) = (wanted.div_ceil(2).min(spread), (2 * wanted).min(spread));
    // Candidates nearest `wanted` first, so that it wins ties.
    let mut candidates: Vec<usize> = (lo..=hi).collect();
    candidates.sort_by_key(|&c| c.abs_diff(wanted));
    let score = |per: usize| work(per) as f64 / per as f64 * busiest_worker(n, per, threads) as f64;
    let mut best = (candidates[0], score(candidates[0]));
    for &per in &candidates[1..] {
        let s = score(per);
        if s < best.1 {
            best = (per, s);
        }
    }
    best.0
}

/// The samples the busiest of `threads` workers gets when `n` samples are cut into tasks of
/// `per` (the last one shorter) and each task goes to the least loaded worker, largest first.
fn busiest_worker(n: usize, per: usize, threads: usize) -> usize {
    let (full, rest) = (n / per, n % per);
    let (q, r) = (full / threads, full % threads);
    let most = (q + usize::from(r > 0)) * per;
    if rest == 0 {
        most
    } else {
        most.max(q * per + rest)
    }
}

/// Runs `f(first_sample, out, scratch)` for every task of `per_task` consecutive samples
/// (the last may have fewer) of a new `n·per` buffer, whose `out` is the tasks' samples'
/// `per`-sized outputs, in parallel when the batch is large, and returns the buffer.
/// `scratch` is a buffer of `per_task · scratch_len` elements, zeroed once per worker and
/// reused across its tasks (see [`pad_image`]). `f` must write every element of its `out`.
fn collect_samples<T: ConvElem>(
    n: usize,
    per: usize,
    per_task: usize,
    flops_per_sample: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>], &mut [T]) + Sync,
) -> Vec<T> {
    let total = n * per;
    let mut out: Vec<T> = Vec::with_capacity(total);
    if per > 0 {
        let spare = &mut out.spare_capacity_mut()[..total];
        let (chunk, scratch) = (per * per_task, per_task * scratch_len);
        if n > per_task && n.saturating_mul(flops_per_sample) >= PAR_MIN_FLOPS {
            spare.par_chunks_mut(chunk).enumerate().for_each_init(|| vec![T::zero(); scratch], |buf, (t, o)| f(t * per_task, o, buf));
        } else {
            let mut buf = vec![T::zero(); scratch];
            for (t, o) in spare.chunks_mut(chunk).enumerate() {
                f(t * per_task, o, &mut buf);
            }
        }
    }
    // SAFETY: the capacity is `total`, and every chunk of the first `total` elements was
    // handed to `f`, which writes all of its elements (each kernel below documents how its
    // writes cover its output); with per == 0, total == 0.
    unsafe { out.set_len(total) };
    out
}

/// The taps one tile row reads inside the image (not in its zero padding): the taps are a
/// grid (kernel rows × kernel columns; for the input gradient, those of one stride phase),
/// and a row reads the rectangle `a0..a1` × `b0..b1` of it. Rows near the border read fewer
/// taps: a 4×4 image with a 3×3 kernel and padding 1 reads 100 of its 144 (pixel, tap) pairs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct TapRect {
    a0: u32,
    a1: u32,
    b0: u32,
    b1: u32,
}

impl TapRect {
    /// The taps `t < k` along one axis for which `position(t)` is inside `0..size`: a
    /// contiguous run, since positions move monotonically with the tap.
    fn axis(k: usize, size: usize, position: impl Fn(usize) -> isize) -> (u32, u32) {
        let inside = |t: usize| (0..size as isize).contains(&position(t));
        let first = (0..k).find(|&t| inside(t)).unwrap_or(k);
        let end = (first..k).find(|&t| !inside(t)).unwrap_or(k);
        debug_assert!((end..k).all(|t| !inside(t)), "taps inside the image must be contiguous");
        (first as u32, end as u32)
    }

    fn new((a0, a1): (u32, u32), (b0, b1): (u32, u32)) -> Self {
        TapRect { a0, a1, b0, b1 }
    }

    /// The kernel taps output pixel `(oy, ox)` reads inside the image.
    fn inside_output(g: &ConvGeom, oy: usize, ox: usize) -> Self {
        let axis = |k: usize, size: usize, s: usize, p: usize, d: usize, o: usize| {
            TapRect::axis(k, size, |t| (o * s + t * d) as isize - p as isize)
        };
        TapRect::new(axis(g.kh, g.h, g.sh, g.ph, g.dh, oy), axis(g.kw, g.w, g.sw, g.pw, g.dw, ox))
    }

    /// The taps a tile row reads: these (the ones inside the image) when skipping padding,
    /// otherwise the whole `rows × cols` grid.
    fn read(self, skip_padding: bool, (rows, cols): (usize, usize)) -> Self {
        if skip_padding {
            self
        } else {
            TapRect::new((0, rows as u32), (0, cols as u32))
        }
    }

    /// How many taps the rectangle holds.
    fn area(&self) -> usize {
        (self.a1.saturating_sub(self.a0) * self.b1.saturating_sub(self.b0)) as usize
    }

    /// Whether tap `(a, b)` is in the rectangle.
    fn contains(&self, a: u32, b: u32) -> bool {
        (self.a0..self.a1).contains(&a) && (self.b0..self.b1).contains(&b)
    }

    /// The smallest rectangle holding both (an empty rectangle holds nothing).
    fn union(self, o: TapRect) -> TapRect {
        let empty = |r: &TapRect| r.a0 >= r.a1 || r.b0 >= r.b1;
        match (empty(&self), empty(&o)) {
            (true, _) => o,
            (_, true) => self,
            _ => TapRect { a0: self.a0.min(o.a0), a1: self.a1.max(o.a1), b0: self.b0.min(o.b0), b1: self.b1.max(o.b1) },
        }
    }
}

/// The tile rows of one forward or input-gradient task, for all its samples: each row's
/// offset in the task's padded source, its place in the task's output (channel 0) and the
/// taps it reads inside the image. Rows are ordered by those taps, then by sample, and cut
/// into tiles of at most `MR` rows (see [`cut_tiles`]), each with the union of its rows' taps.
struct TaskRows {
    rows: Vec<usize>,
    outs: Vec<usize>,
    tiles: Vec<(Range<usize>, TapRect)>,
    /// The taps the tiles read, summed over the tiles (each tile computes `MR` rows).
    work: usize,
}

impl TaskRows {
    /// The rows of `samples` consecutive samples, from one sample's `(source offset, output
    /// offset, taps)` per row; sample `b`'s offsets are shifted by `b·row_step` and
    /// `b·out_step`; tiles of at most `mr` rows.
    fn new(per_sample: &[(usize, usize, TapRect)], samples: usize, row_step: usize, out_step: usize, mr: usize) -> Self {
        let mut order: Vec<usize> = (0..per_sample.len()).collect();
        order.sort_by_key(|&i| per_sample[i].2);
        let total = per_sample.len() * samples;
        let (mut rows, mut outs, mut rects) = (Vec::with_capacity(total), Vec::with_capacity(total), Vec::with_capacity(total));
        for class in order.chunk_by(|&i, &j| per_sample[i].2 == per_sample[j].2) {
            for b in 0..samples {
                for &i in class {
                    let (row, out, rect) = per_sample[i];
                    rows.push(b * row_step + row);
                    outs.push(b * out_step + out);
                    rects.push(rect);
                }
            }
        }
        let tiles = cut_tiles(&rects, mr);
        let work = tiles.iter().map(|(_, rect)| rect.area()).sum();
        TaskRows { rows, outs, tiles, work }
    }
}

/// Cuts rows, in order, into tiles of at most `mr` consecutive rows, each with the union of
/// its rows' taps, so that the tiles read as few taps in all as can be: a tile costs `mr`
/// rows times the taps of that union however many rows it holds, so a short tile can beat
/// one that straddles two groups of rows whose union is larger (at 8×8, a tile of corner
/// and edge rows reads 6 taps where one of a left and a right edge row reads all 9).
/// Dynamic programming over where the tiles end; ties go to the longer last tile. Rows that
/// all read the same taps are simply cut every `mr` rows.
fn cut_tiles(rects: &[TapRect], mr: usize) -> Vec<(Range<usize>, TapRect)> {
    let n = rects.len();
    let union = |r: Range<usize>| rects[r.clone()].iter().fold(rects[r.start], |u, &x| u.union(x));
    if rects.windows(2).all(|w| w[0] == w[1]) {
        return (0..n).step_by(mr.max(1)).map(|s| s..(s + mr).min(n)).map(|r| (r.clone(), union(r))).collect();
    }
    // best[i]: the least cost of tiling rows 0..i, and where its last tile starts.
    let mut best = vec![(usize::MAX, 0); n + 1];
    best[0] = (0, 0);
    for i in 1..=n {
        let mut u = rects[i - 1];
        for j in (i.saturating_sub(mr)..i).rev() {
            u = u.union(rects[j]);
            let cost = best[j].0 + u.area();
            if cost <= best[i].0 {
                best[i] = (cost, j);
            }
        }
    }
    let mut tiles = Vec::new();
    let mut end = n;
    while end > 0 {
        let start = best[end].1;
        tiles.push((start..end, union(start..end)));
        end = start;
    }
    tiles.reverse();
    tiles
}

/// The rows of a pass's tasks: `full` for tasks of `per_task` samples, `last` for the final,
/// smaller one when the batch does not divide evenly.
struct TasksRows {
    per_task: usize,
    full: TaskRows,
    last: Option<TaskRows>,
}

impl TasksRows {
    fn new(per_sample: &[(usize, usize, TapRect)], n: usize, per_task: usize, row_step: usize, out_step: usize, mr: usize) -> Self {
        let full = TaskRows::new(per_sample, per_task, row_step, out_step, mr);
        let last = (!n.is_multiple_of(per_task)).then(|| TaskRows::new(per_sample, n % per_task, row_step, out_step, mr));
        TasksRows { per_task, full, last }
    }

    /// The rows of a task of `samples` samples.
    fn of(&self, samples: usize) -> &TaskRows {
        match &self.last {
            Some(last) if samples != self.per_task => last,
            _ => &self.full,
        }
    }
}

/// One channel block of a forward or input-gradient task: runs the microkernel over the
/// task's tiles (at most `MR` rows each; `base` is added to each source offset) with the packed
/// `vecs`, every accumulator starting at `init`, and writes row `i`'s result for channel
/// `c < cn` to `out[outs[i] + (ch0 + c)·stride]`. A tile reduces over the union of the
/// taps its rows read (see [`reduction_order`]), tap row `a` by tap row: steps
/// `(a·cols + b0)·chans .. (a·cols + b1)·chans` (`grid = (cols, chans)`). Over the whole
/// grid these ranges cover every step in order, whatever the reduction order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles_to_output<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    src: &[T],
    base: usize,
    task: &TaskRows,
    offs: &Offsets,
    (cols, chans): (usize, usize),
    vecs: &[T],
    init: &[T; NR],
    (ch0, cn, stride): (usize, usize, usize),
    out: &mut [MaybeUninit<T>],
) {
    for (tile_range, rect) in &task.tiles {
        let (p0, pn) = (tile_range.start, tile_range.len());
        let tile_rows: [usize; MR] = std::array::from_fn(|r| base + task.rows[p0 + r.min(pn - 1)]);
        let mut acc = [*init; MR];
        let (a0, a1, b0, b1) = (rect.a0 as usize, rect.a1 as usize, rect.b0 as usize, rect.b1 as usize);
        if b0 == 0 && b1 == cols {
            // Whole tap rows: one range.
            let ks = a0 * cols * chans..a1 * cols * chans;
            tile::<T, MR, NR, FMA>(src, &tile_rows, offs, ks.clone(), &vecs[ks.start * NR..], &mut acc);
        } else if b0 < b1 {
            for a in a0..a1 {
                let ks = (a * cols + b0) * chans..(a * cols + b1) * chans;
                tile::<T, MR, NR, FMA>(src, &tile_rows, offs, ks.clone(), &vecs[ks.start * NR..], &mut acc);
            }
        }
        let outs = &task.outs[p0..p0 + pn];
        if outs.windows(2).all(|w| w[1] == w[0] + 1) {
            // The tile's rows are adjacent in the output (mostly so within a sample).
            for c in 0..cn {
                for (r, o) in out[outs[0] + (ch0 + c) * stride..][..pn].iter_mut().enumerate() {
                    o.write(acc[r][c]);
                }
            }
        } else {
            for c in 0..cn {
                for (r, &q) in outs.iter().enumerate() {
                    out[q + (ch0 + c) * stride].write(acc[r][c]);
                }
            }
        }
    }
}

/// The window corner of each output pixel, in order, in a padded `hp × wp` plane with the
/// geometry's strides.
fn window_corners(g: &ConvGeom, wp: usize) -> Vec<usize> {
    (0..g.oh).flat_map(|oy| (0..g.ow).map(move |ox| oy * g.sh * wp + ox * g.sw)).collect()
}

/// The padded size the windows of a geometry read: `(oh − 1)·sh + (kh − 1)·dh + 1` rows.
fn padded_dims(g: &ConvGeom) -> (usize, usize) {
    ((g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1)
}

// After the macros, which the tests use.
#[cfg(test)]
mod tests;
