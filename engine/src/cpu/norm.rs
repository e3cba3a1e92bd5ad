//! Normalization on the host: batch norm (statistics per channel over batch and space) and
//! layer norm (statistics per row over the last dim), forward and fused backward, on
//! contiguous buffers. Every sum runs in a fixed order (cpu/reduce.rs), so results do not
//! depend on the thread count, nor on the vector copy (`isa`, cpu/vmath.rs) the loops run in:
//! each function's per-channel or per-row work is compiled for AVX-512 and AVX2 as well, since
//! on the baseline target the lane sums and the ReLU mask's select are done element by element
//! (the batch-norm backward ran 4.6× slower that way).

use crate::cpu::reduce::{sum_by, sum_slice, sum_zip2};
use crate::cpu::vmath::{dispatch, VmathIsa};
use crate::cpu::{per_block, PAR_MIN_ELEMS};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Applies `f(c, channel_slices)` per channel in parallel; each channel's N slices of length S.
fn per_channel<T: FloatElem, U: Send + Default + Clone>(
    x: &[T],
    n: usize,
    c: usize,
    s: usize,
    f: impl Fn(usize, &mut dyn Iterator<Item = &[T]>) -> U + Sync,
) -> Vec<U> {
    (0..c).into_par_iter().map(|ch| f(ch, &mut (0..n).map(|i| &x[(i * c + ch) * s..(i * c + ch + 1) * s]))).collect()
}

/// Per-channel statistics and affine parameters on the host, with the `(scale, shift)` that
/// turns `x` into `(x - mean) · rstd · weight + bias` as one multiply-add (the forward and the
/// ReLU mask of the backward use the same arithmetic, so they agree bit for bit).
pub(crate) struct Affine<T> {
    pub mean: Vec<T>,
    pub rstd: Vec<T>,
    pub weight: Option<Vec<T>>,
    pub bias: Option<Vec<T>>,
}

impl<T: FloatElem> Affine<T> {
    pub fn weight(&self, ch: usize) -> T {
        self.weight.as_ref().map_or(T::one(), |w| w[ch])
    }

    pub fn at(&self, ch: usize) -> (T, T) {
        let scale = self.rstd[ch] * self.weight(ch);
        let shift = self.bias.as_ref().map_or(T::zero(), |b| b[ch]) - self.mean[ch] * scale;
        (scale, shift)
    }
}

/// Per-channel mean, biased variance and `1 / sqrt(var + eps)` of a contiguous `[N, C, S]`
/// input (`N · S > 0`).
pub(crate) fn batch_norm_stats<T: FloatElem>(isa: VmathIsa, x: &[T], n: usize, c: usize, s: usize, eps: f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let m = T::c((n * s) as f64);
    let stats = per_channel(x, n, c, s, |_, rows| {
        let rows: Vec<&[T]> = rows.collect();
        dispatch!(isa, || channel_mean_var(&rows, m))
    });
    let mean: Vec<T> = stats.iter().map(|p| p.0).collect();
    let var: Vec<T> = stats.iter().map(|p| p.1).collect();
    let rstd: Vec<T> = var.iter().map(|&v| (v + T::c(eps)).sqrt().recip()).collect();
    (mean, var, rstd)
}

/// `(x - mean) · rstd · weight + bias` per channel of a contiguous `[N, C, S]` input, then a
/// ReLU when `RELU`.
pub(crate) fn batch_norm_apply<T: FloatElem, const RELU: bool>(isa: VmathIsa, x: &[T], c: usize, s: usize, affine: &Affine<T>) -> Vec<T> {
    per_block(x.len(), s, |blk, o| {
        let (scale, shift) = affine.at(blk % c);
        let write = |o: &mut [MaybeUninit<T>]| {
            for (o, &v) in o.iter_mut().zip(&x[blk * s..(blk + 1) * s]) {
                let y = v * scale + shift;
                o.write(if RELU && !(y > T::zero()) { T::zero() } else { y });
            }
        };
        dispatch!(isa, || write(o))
    })
}

/// Backward of training-mode batch norm (and of its ReLU when `RELU`, the mask recomputed
/// from `x` with the forward's arithmetic): `(dx, dweight, dbias)` from the input `x` and
/// the output gradient `g`, both contiguous `[N, C, S]`.
pub(crate) fn batch_norm_backward<T: FloatElem, const RELU: bool>(
    isa: VmathIsa,
    x: &[T],
    g: &[T],
    n: usize,
    c: usize,
    s: usize,
    affine: &Affine<T>,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (mean, rstd) = (&affine.mean, &affine.rstd);
    // The output gradient as the normalization sees it: masked by the ReLU, if any.
    let masked = |scale: T, shift: T| move |xv: T, gv: T| if RELU && !(xv * scale + shift > T::zero()) { T::zero() } else { gv };
    // Per channel: Σ g and Σ g·x̂, each summed in a fixed order.
    let sums = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (scale, shift) = affine.at(ch);
            let rows = (0..n).map(|i| (i * c + ch) * s..(i * c + ch + 1) * s);
            dispatch!(isa, || channel_sums(x, g, rows, masked(scale, shift), mean[ch], rstd[ch]))
        })
        .collect::<Vec<_>>();
    let m = T::c((n * s) as f64);
    let dx = per_block(x.len(), s, |blk, o| {
        let ch = blk % c;
        let (scale, shift) = affine.at(ch);
        let gm = masked(scale, shift);
        let (sg, sgx) = sums[ch];
        let k = rstd[ch] * affine.weight(ch);
        // dx = k·(g - Σg/m - x̂·Σgx̂/m) with x̂ = (x - mean)·rstd, as one multiply-add per element.
        let (a, b) = (k * sgx / m * rstd[ch], k * sg / m);
        let c0 = a * mean[ch] - b;
        let r = blk * s..(blk + 1) * s;
        let write = |o: &mut [MaybeUninit<T>]| {
            for ((o, &xv), &gv) in o.iter_mut().zip(&x[r.clone()]).zip(&g[r.clone()]) {
                o.write(k * gm(xv, gv) - a * xv + c0);
            }
        };
        dispatch!(isa, || write(o))
    });
    let dw: Vec<T> = sums.iter().map(|p| p.1).collect();
    let db: Vec<T> = sums.iter().map(|p| p.0).collect();
    (dx, dw, db)
}

/// One channel's mean and biased variance over its rows (`m` values in all), each row summed
/// in [`sum_by`]'s lane order, then the rows in order. Inlined into each vector copy.
#[inline(always)]
fn channel_mean_var<T: FloatElem>(rows: &[&[T]], m: T) -> (T, T) {
    let mean = rows.iter().map(|r| sum_slice(r)).fold(T::zero(), |a, b| a + b) / m;
    let var = rows.iter().map(|r| sum_by(r, |v| (v - mean) * (v - mean))).fold(T::zero(), |a, b| a + b) / m;
    (mean, var)
}

/// Σ g and Σ g·x̂ over one channel's rows of `x` and `g` (`g` seen through `mask`), each row
/// summed in [`sum_zip2`]'s lane order, then the rows in order. Inlined into each vector copy.
#[inline(always)]
fn channel_sums<T: FloatElem>(
    x: &[T],
    g: &[T],
    rows: impl Iterator<Item = std::ops::Range<usize>>,
    mask: impl Fn(T, T) -> T,
    mean: T,
    rstd: T,
) -> (T, T) {
    let (mut sg, mut sgx) = (T::zero(), T::zero());
    for r in rows {
        let (a, b) = sum_zip2(&x[r.clone()], &g[r], |xv, gv| {
            let gv = mask(xv, gv);
            (gv, gv * (xv - mean))
        });
        sg += a;
        sgx += b * rstd;
    }
    (sg, sgx)
}

/// Layer norm of each `d`-long row of `x`: the output and each row's `(mean, rstd)`.
pub(crate) fn layer_norm<T: FloatElem>(
    isa: VmathIsa,
    x: &[T],
    d: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<(T, T)>) {
    let rows = x.len() / d;
    let mut y = Vec::with_capacity(x.len());
    let mut stats = vec![(T::zero(), T::zero()); rows];
    type RowJob<'a, T> = ((&'a mut [MaybeUninit<T>], &'a mut (T, T)), &'a [T]);
    let body = |((o, st), xr): RowJob<T>| *st = dispatch!(isa, || layer_norm_row(xr, o, w, b, eps));
    let ys = &mut y.spare_capacity_mut()[..x.len()];
    if x.len() >= PAR_MIN_ELEMS {
        ys.par_chunks_mut(d).zip(stats.par_iter_mut()).zip(x.par_chunks(d)).for_each(body);
    } else {
        ys.chunks_mut(d).zip(stats.iter_mut()).zip(x.chunks(d)).for_each(body);
    }
    // SAFETY: `layer_norm_row` wrote every element of every row.
    unsafe { y.set_len(x.len()) };
    (y, stats)
}

/// Backward of layer norm over `d`-long rows: `(dx, x̂)` from the input, the output gradient,
/// each row's mean and rstd, and the weight.
pub(crate) fn layer_norm_backward<T: FloatElem>(
    isa: VmathIsa,
    x: &[T],
    g: &[T],
    d: usize,
    mean: &[T],
    rstd: &[T],
    w: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let (mut dx, mut xhat) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
    type RowJob<'a, T> = (usize, (&'a mut [MaybeUninit<T>], &'a mut [MaybeUninit<T>]));
    let body = |(r, (o, xh)): RowJob<T>| {
        let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
        dispatch!(isa, || layer_norm_backward_row(xr, gr, w, mean[r], rstd[r], o, xh))
    };
    let (dxs, xhs) = (&mut dx.spare_capacity_mut()[..x.len()], &mut xhat.spare_capacity_mut()[..x.len()]);
    if x.len() >= PAR_MIN_ELEMS {
        dxs.par_chunks_mut(d).zip(xhs.par_chunks_mut(d)).enumerate().for_each(body);
    } else {
        dxs.chunks_mut(d).zip(xhs.chunks_mut(d)).enumerate().for_each(body);
    }
    // SAFETY: `layer_norm_backward_row` wrote every element of every row of both.
    unsafe {
        dx.set_len(x.len());
        xhat.set_len(x.len());
    }
    (dx, xhat)
}

/// One row of [`layer_norm`]: writes `x̂ · w + b` into every element of `o` (fresh memory:
/// nothing is read from it), returns `(mean, rstd)`. Inlined into each vector copy.
#[inline(always)]
fn layer_norm_row<T: FloatElem>(xr: &[T], o: &mut [MaybeUninit<T>], w: Option<&[T]>, b: Option<&[T]>, eps: f64) -> (T, T) {
    let d = T::c(xr.len() as f64);
    let mean = sum_slice(xr) / d;
    let var = sum_by(xr, |v| (v - mean) * (v - mean)) / d;
    let rstd = (var + T::c(eps)).sqrt().recip();
    for (j, (o, &v)) in o.iter_mut().zip(xr).enumerate() {
        o.write((v - mean) * rstd * w.map_or(T::one(), |w| w[j]) + b.map_or(T::zero(), |b| b[j]));
    }
    (mean, rstd)
}

/// One row of [`layer_norm_backward`]: `x̂` into every element of `xh`, `dx` into every
/// element of `o` (both fresh memory). The two row sums run element by element, in the order
/// they always have (the ViT presets' figures were measured with it); the rest vectorizes.
/// Inlined into each vector copy.
#[inline(always)]
fn layer_norm_backward_row<T: FloatElem>(
    xr: &[T],
    gr: &[T],
    w: Option<&[T]>,
    mean: T,
    rstd: T,
    o: &mut [MaybeUninit<T>],
    xh: &mut [MaybeUninit<T>],
) {
    let dn = T::c(xr.len() as f64);
    let weight = |j: usize| w.map_or(T::one(), |w| w[j]);
    let (mut s1, mut s2) = (T::zero(), T::zero());
    for j in 0..xr.len() {
        let xhat = *xh[j].write((xr[j] - mean) * rstd);
        let gw = gr[j] * weight(j);
        s1 += gw;
        s2 += gw * xhat;
    }
    for j in 0..xr.len() {
        let gw = gr[j] * weight(j);
        // SAFETY: the loop above wrote every element of `xh`.
        let xhat = unsafe { xh[j].assume_init() };
        o[j].write(rstd * (gw - s1 / dn - xhat * s2 / dn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output of every function here, as bits, computed in the vector copy `isa`, on
    /// rows whose lengths leave tails after the eight lanes.
    fn all_outputs<T: FloatElem>(isa: VmathIsa) -> Vec<f64> {
        let (n, c, s) = (3, 5, 13);
        let value = |i: usize, a: usize, m: usize| T::c(((i * a % m) as f64 - m as f64 / 2.0) / 17.0);
        let x: Vec<T> = (0..n * c * s).map(|i| value(i, 37, 101)).collect();
        let g: Vec<T> = (0..n * c * s).map(|i| value(i, 53, 89)).collect();
        let (w, b): (Vec<T>, Vec<T>) = ((0..c).map(|i| value(i, 7, 11)).collect(), (0..c).map(|i| value(i, 5, 13)).collect());
        let (mean, var, rstd) = batch_norm_stats(isa, &x, n, c, s, 1e-5);
        let affine = Affine { mean: mean.clone(), rstd: rstd.clone(), weight: Some(w), bias: Some(b) };
        let y = batch_norm_apply::<T, true>(isa, &x, c, s, &affine);
        let (dx, dw, db) = batch_norm_backward::<T, true>(isa, &x, &g, n, c, s, &affine);
        let (lw, lb): (Vec<T>, Vec<T>) = ((0..s).map(|i| value(i, 3, 7)).collect(), (0..s).map(|i| value(i, 11, 19)).collect());
        let (ly, stats) = layer_norm(isa, &x, s, Some(&lw), Some(&lb), 1e-5);
        let (lmean, lrstd): (Vec<T>, Vec<T>) = stats.into_iter().unzip();
        let (ldx, lxh) = layer_norm_backward(isa, &x, &g, s, &lmean, &lrstd, Some(&lw));
        [mean, var, rstd, y, dx, dw, db, ly, lmean, lrstd, ldx, lxh].concat().iter().map(|&v| crate::dtype::Element::to_f64(v)).collect()
    }

    #[test]
    fn every_vector_copy_gives_the_portable_bits() {
        let (want32, want64) = (all_outputs::<f32>(VmathIsa::Portable), all_outputs::<f64>(VmathIsa::Portable));
        for isa in VmathIsa::available() {
            let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()) && a.len() == b.len();
            assert!(same(&all_outputs::<f32>(isa), &want32), "f32 in the {isa:?} copy");
            assert!(same(&all_outputs::<f64>(isa), &want64), "f64 in the {isa:?} copy");
        }
    }
}
