//! The host's three convolution kernels on contiguous slices, with `x` an input batch
//! `[n, C, h, w]` and `w` a weight `[m, C/groups · kh · kw]`:
//!
//! * forward: `y = conv(x, w) (+ bias)`, `[n, m, oh·ow]`;
//! * input gradient: `dx = convᵀ(dy, w)`, `[n, C, h, w]`;
//! * weight gradient: `dw = Σ_s dy[s] ⋆ x[s]`, `[m, C/groups · kh · kw]`, summed over the
//!   batch in chunks fixed by the shapes, so the result does not depend on the thread count.
//!
//! All three run as the direct, channel-vectorized kernels of [`crate::cpu::direct_conv`],
//! except f32 same-padded stride-1 3×3 convolutions of at least 64 channels on images of at
//! least 8×8 (ResNet-18's 32×32, 16×16 and 8×8 stages), which run as Winograd's F(4×4, 3×3), and
//! those of at least 512 channels on images of 4 to 7 pixels a side (ResNet-18's 4×4
//! stage), which run as F(2×2, 3×3) ([`crate::cpu::winograd`]): a quarter (or 4/9) of the
//! multiplies, on the GEMM.
//! A forward pass whose reduction is tiny (fewer than [`DIRECT_MIN_REDUCTION`] (channel, tap)
//! pairs per group, such as a stem conv on one-channel images) runs as im2col + GEMM instead:
//! there the direct kernel's per-pixel output stores would cost more than its arithmetic.
//! With `cols(x)` the im2col matrix of one sample, that is
//! `y[s, group] = w[group] · cols(x[s])[group]`; a 1×1, stride-1, unpadded geometry skips
//! im2col (the image already is its column matrix).

use crate::cpu::direct_conv::ConvElem;
use crate::cpu::gemm::{Gemm, MatRef};
use crate::cpu::im2col::im2col;
use crate::cpu::winograd;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::kinds::ConvGeom;
use rayon::prelude::*;

/// Below this many multiply-adds a batch runs on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// A forward pass with fewer (input channel, tap) pairs per group than this runs as
/// im2col + GEMM.
const DIRECT_MIN_REDUCTION: usize = 16;

/// Runs `f(sample, out_chunk, scratch)` for each `per`-sized chunk of `out`, in parallel when
/// the batch is large; `scratch` is a buffer of `scratch_len` elements reused across samples.
fn for_each_sample<T: Gemm>(
    out: &mut [T],
    per: usize,
    flops_per_sample: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    if per == 0 || out.is_empty() {
        return;
    }
    let n = out.len() / per;
    if n > 1 && n.saturating_mul(flops_per_sample) >= PAR_MIN_FLOPS {
        out.par_chunks_mut(per).enumerate().for_each_init(|| vec![T::zero(); scratch_len], |buf, (s, o)| f(s, o, buf));
    } else {
        let mut buf = vec![T::zero(); scratch_len];
        for (s, o) in out.chunks_mut(per).enumerate() {
            f(s, o, &mut buf);
        }
    }
}

/// Which Winograd algorithm an f32 convolution runs, if any ([`winograd::choose`], unless
/// switched off). f64 keeps the direct kernels: it is the precision gradients are checked
/// in, where the direct sum's rounding is the reference.
fn winograd_f32<T: ConvElem>(g: &ConvGeom, groups: usize, n: usize, m: usize) -> Option<winograd::Tiling> {
    let f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
    winograd::choose(g, groups, n, m).filter(|_| f32 && winograd::enabled())
}

/// Adds `bias[c]` to each `l`-long channel row of one sample's output.
fn add_bias<T: Gemm>(out: &mut [T], bias: &[T], l: usize) {
    for (row, &b) in out.chunks_mut(l).zip(bias) {
        for v in row {
            *v += b;
        }
    }
}

/// `y = conv(x, w) (+ bias)`: `[n, m, oh·ow]` from `x [n, C, h, w]` and `w [m, C/groups·kh·kw]`.
pub(crate) fn conv_forward<T: ConvElem>(x: &[T], n: usize, w: &[T], m: usize, groups: usize, g: &ConvGeom, bias: Option<&[T]>) -> Vec<T> {
    if let Some(tiling) = winograd_f32::<T>(g, groups, n, m) {
        return winograd::forward(tiling, x, n, w, m, g, bias);
    }
    if g.col_rows() / groups >= DIRECT_MIN_REDUCTION {
        return T::conv_forward(x, n, w, m, groups, g, bias);
    }
    let (l, img) = (g.col_len(), g.image_len());
    let (mg, kg) = (m / groups, g.col_rows() / groups);
    let mut out = vec![T::zero(); n * m * l];
    let identity = g.is_identity();
    let scratch = if identity { 0 } else { g.col_rows() * l };
    for_each_sample(&mut out, m * l, m.saturating_mul(kg).saturating_mul(l), scratch, |s, y, cols| {
        let xs = &x[s * img..(s + 1) * img];
        let cols: &[T] = if identity {
            xs
        } else {
            im2col(xs, g, cols);
            cols
        };
        for grp in 0..groups {
            let a = MatRef { data: w, offset: (grp * mg * kg) as isize, rs: kg as isize, cs: 1 };
            let b = MatRef { data: cols, offset: (grp * kg * l) as isize, rs: l as isize, cs: 1 };
            T::gemm(mg, kg, l, T::one(), a, b, T::zero(), &mut y[grp * mg * l..(grp + 1) * mg * l], l);
        }
        if let Some(bias) = bias {
            add_bias(y, bias, l);
        }
    });
    out
}

/// `dx = convᵀ(dy, w)`: `[n, C, h, w]` from `dy [n, m, oh·ow]` and `w [m, C/groups·kh·kw]`.
pub(crate) fn conv_backward_input<T: ConvElem>(dy: &[T], n: usize, w: &[T], m: usize, groups: usize, g: &ConvGeom) -> Vec<T> {
    if let Some(tiling) = winograd_f32::<T>(g, groups, n, m) {
        return winograd::backward_input(tiling, dy, n, w, m, g);
    }
    T::conv_backward_input(dy, n, w, m, groups, g)
}

/// `dw = Σ_s dy[s] ⋆ x[s]`: `[m, C/groups·kh·kw]`, summed over the batch in a fixed order
/// whatever the thread count.
pub(crate) fn conv_backward_weight<T: ConvElem>(dy: &[T], x: &[T], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Vec<T> {
    if let Some(tiling) = winograd_f32::<T>(g, groups, n, m) {
        return winograd::backward_weight(tiling, dy, x, n, m, g);
    }
    T::conv_backward_weight(dy, x, n, m, groups, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winograd_runs_f32_convolutions_it_applies_to_and_never_f64() {
        let g = ConvGeom { channels: 128, h: 8, w: 8, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: 8, ow: 8 };
        assert_eq!(winograd_f32::<f32>(&g, 1, 32, 128).is_some(), winograd::enabled());
        assert_eq!(winograd_f32::<f64>(&g, 1, 32, 128), None, "f64 keeps the direct kernels");
        assert_eq!(winograd_f32::<f32>(&g, 1, 8, 128), None, "too few tiles");
    }
}
