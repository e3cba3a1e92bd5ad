//! Normalization on the host: batch norm (statistics per channel over batch and space) and
//! layer norm (statistics per row over the last dim), forward and fused backward, on
//! contiguous buffers. Every sum runs in a fixed order (cpu/reduce.rs), so results do not
//! depend on the thread count.

use crate::cpu::reduce::{sum_by, sum_slice, sum_zip2};
use crate::cpu::PAR_MIN_ELEMS;
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

/// A new buffer of `len` elements made of blocks of `s` (one `[.., C, S]` channel slice of
/// one sample each), every block written in full by `f(block_index, block)`; in parallel when
/// large. No zero fill first: the blocks cover the buffer.
fn per_block<T: FloatElem>(len: usize, s: usize, f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    crate::cpu::strided::build(len, |out| {
        if s == 0 {
            return;
        }
        if len >= PAR_MIN_ELEMS {
            out.par_chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
        } else {
            out.chunks_mut(s).enumerate().for_each(|(blk, o)| f(blk, o));
        }
    })
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
pub(crate) fn batch_norm_stats<T: FloatElem>(x: &[T], n: usize, c: usize, s: usize, eps: f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let m = T::c((n * s) as f64);
    let stats = per_channel(x, n, c, s, |_, rows| {
        let rows: Vec<&[T]> = rows.collect();
        let mean = rows.iter().map(|r| sum_slice(r)).fold(T::zero(), |a, b| a + b) / m;
        let var = rows.iter().map(|r| sum_by(r, |v| (v - mean) * (v - mean))).fold(T::zero(), |a, b| a + b) / m;
        (mean, var)
    });
    let mean: Vec<T> = stats.iter().map(|p| p.0).collect();
    let var: Vec<T> = stats.iter().map(|p| p.1).collect();
    let rstd: Vec<T> = var.iter().map(|&v| (v + T::c(eps)).sqrt().recip()).collect();
    (mean, var, rstd)
}

/// `(x - mean) · rstd · weight + bias` per channel of a contiguous `[N, C, S]` input, then a
/// ReLU when `RELU`.
pub(crate) fn batch_norm_apply<T: FloatElem, const RELU: bool>(x: &[T], c: usize, s: usize, affine: &Affine<T>) -> Vec<T> {
    per_block(x.len(), s, |blk, o| {
        let (scale, shift) = affine.at(blk % c);
        for (o, &v) in o.iter_mut().zip(&x[blk * s..(blk + 1) * s]) {
            let y = v * scale + shift;
            o.write(if RELU && !(y > T::zero()) { T::zero() } else { y });
        }
    })
}

/// Backward of training-mode batch norm (and of its ReLU when `RELU`, the mask recomputed
/// from `x` with the forward's arithmetic): `(dx, dweight, dbias)` from the input `x` and
/// the output gradient `g`, both contiguous `[N, C, S]`.
pub(crate) fn batch_norm_backward<T: FloatElem, const RELU: bool>(
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
            let gm = masked(scale, shift);
            let (mut sg, mut sgx) = (T::zero(), T::zero());
            for i in 0..n {
                let r = (i * c + ch) * s..(i * c + ch + 1) * s;
                let (xs, gs) = (&x[r.clone()], &g[r]);
                let (a, b) = sum_zip2(xs, gs, |xv, gv| {
                    let gv = gm(xv, gv);
                    (gv, gv * (xv - mean[ch]))
                });
                sg += a;
                sgx += b * rstd[ch];
            }
            (sg, sgx)
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
        for ((o, &xv), &gv) in o.iter_mut().zip(&x[r.clone()]).zip(&g[r]) {
            o.write(k * gm(xv, gv) - a * xv + c0);
        }
    });
    let dw: Vec<T> = sums.iter().map(|p| p.1).collect();
    let db: Vec<T> = sums.iter().map(|p| p.0).collect();
    (dx, dw, db)
}

/// Layer norm of each `d`-long row of `x`: the output and each row's `(mean, rstd)`.
pub(crate) fn layer_norm<T: FloatElem>(x: &[T], d: usize, w: Option<&[T]>, b: Option<&[T]>, eps: f64) -> (Vec<T>, Vec<(T, T)>) {
    let rows = x.len() / d;
    let mut y = vec![T::zero(); x.len()];
    let mut stats = vec![(T::zero(), T::zero()); rows];
    let body = |((o, st), xr): ((&mut [T], &mut (T, T)), &[T])| {
        let mean = sum_slice(xr) / T::c(d as f64);
        let var = sum_by(xr, |v| (v - mean) * (v - mean)) / T::c(d as f64);
        let rstd = (var + T::c(eps)).sqrt().recip();
        for (j, (o, &v)) in o.iter_mut().zip(xr).enumerate() {
            let xhat = (v - mean) * rstd;
            *o = xhat * w.map_or(T::one(), |w| w[j]) + b.map_or(T::zero(), |b| b[j]);
        }
        *st = (mean, rstd);
    };
    if x.len() >= PAR_MIN_ELEMS {
        y.par_chunks_mut(d).zip(stats.par_iter_mut()).zip(x.par_chunks(d)).for_each(body);
    } else {
        y.chunks_mut(d).zip(stats.iter_mut()).zip(x.chunks(d)).for_each(body);
    }
    (y, stats)
}

/// Backward of layer norm over `d`-long rows: `(dx, x̂)` from the input, the output gradient,
/// each row's mean and rstd, and the weight.
pub(crate) fn layer_norm_backward<T: FloatElem>(x: &[T], g: &[T], d: usize, mean: &[T], rstd: &[T], w: Option<&[T]>) -> (Vec<T>, Vec<T>) {
    let mut dx = vec![T::zero(); x.len()];
    let mut xhat = vec![T::zero(); x.len()];
    let dn = T::c(d as f64);
    let body = |(r, (o, xh)): (usize, (&mut [T], &mut [T]))| {
        let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
        let (mut s1, mut s2) = (T::zero(), T::zero());
        for j in 0..d {
            xh[j] = (xr[j] - mean[r]) * rstd[r];
            let gw = gr[j] * w.map_or(T::one(), |w| w[j]);
            s1 += gw;
            s2 += gw * xh[j];
        }
        for j in 0..d {
            let gw = gr[j] * w.map_or(T::one(), |w| w[j]);
            o[j] = rstd[r] * (gw - s1 / dn - xh[j] * s2 / dn);
        }
    };
    if x.len() >= PAR_MIN_ELEMS {
        dx.par_chunks_mut(d).zip(xhat.par_chunks_mut(d)).enumerate().for_each(body);
    } else {
        dx.chunks_mut(d).zip(xhat.chunks_mut(d)).enumerate().for_each(body);
    }
    (dx, xhat)
}
