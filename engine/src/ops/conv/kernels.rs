//! The three GEMM-based convolution kernels on contiguous slices. With `x` an input batch
//! `[n, C, h, w]`, `w` a weight `[m, C/groups · kh · kw]` and `cols(x)` the im2col matrix of
//! one sample:
//!
//! * forward: `y[s, group] = w[group] · cols(x[s])[group]`
//! * input gradient: `dx[s] = col2im(w[group]ᵀ · dy[s, group])`
//! * weight gradient: `dw[group] = Σ_s dy[s, group] · cols(x[s])[group]ᵀ`
//!
//! A 1×1, stride-1, unpadded geometry skips im2col: the image already is its column matrix.
//! Samples run in parallel over rayon when the batch is large enough; each worker reuses one
//! column buffer.

use crate::cpu::gemm::{Gemm, MatRef};
use crate::cpu::im2col::{col2im, im2col, ConvGeom};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use rayon::prelude::*;

/// Below this many multiply-adds a batch runs on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// The weight gradient sums the batch in at most this many chunks (fixed by the shapes).
const WGRAD_MAX_CHUNKS: usize = 8;
/// ... and keeps at most this many partial-sum elements alive.
const WGRAD_MAX_PARTIAL: usize = 1 << 24;

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

/// Adds `bias[c]` to each `l`-long channel row of one sample's output.
fn add_bias<T: Gemm>(out: &mut [T], bias: &[T], l: usize) {
    for (row, &b) in out.chunks_mut(l).zip(bias) {
        for v in row {
            *v += b;
        }
    }
}

/// `y = conv(x, w) (+ bias)`: `[n, m, oh·ow]` from `x [n, C, h, w]` and `w [m, C/groups·kh·kw]`.
pub(crate) fn conv_forward<T: Gemm>(x: &[T], n: usize, w: &[T], m: usize, groups: usize, g: &ConvGeom, bias: Option<&[T]>) -> Vec<T> {
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
pub(crate) fn conv_backward_input<T: Gemm>(dy: &[T], n: usize, w: &[T], m: usize, groups: usize, g: &ConvGeom) -> Vec<T> {
    let (l, img) = (g.col_len(), g.image_len());
    let (mg, kg) = (m / groups, g.col_rows() / groups);
    let mut out = vec![T::zero(); n * img];
    let identity = g.is_identity();
    let scratch = if identity { 0 } else { g.col_rows() * l };
    for_each_sample(&mut out, img, m.saturating_mul(kg).saturating_mul(l), scratch, |s, dx, cols| {
        let dys = &dy[s * m * l..(s + 1) * m * l];
        // With an identity geometry the column matrix is dx itself.
        let target: &mut [T] = if identity { &mut *dx } else { &mut *cols };
        for grp in 0..groups {
            let a = MatRef { data: w, offset: (grp * mg * kg) as isize, rs: 1, cs: kg as isize };
            let b = MatRef { data: dys, offset: (grp * mg * l) as isize, rs: l as isize, cs: 1 };
            T::gemm(kg, mg, l, T::one(), a, b, T::zero(), &mut target[grp * kg * l..(grp + 1) * kg * l], l);
        }
        if !identity {
            col2im(cols, g, dx);
        }
    });
    out
}

/// `dw = Σ_s dy[s] · cols(x[s])ᵀ`: `[m, C/groups·kh·kw]`. The batch is cut into a number of
/// chunks fixed by the shapes; chunks run in parallel and their partial sums are added in
/// chunk order, so the result does not depend on the thread count.
pub(crate) fn conv_backward_weight<T: Gemm>(dy: &[T], x: &[T], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Vec<T> {
    let (l, img) = (g.col_len(), g.image_len());
    let (mg, kg) = (m / groups, g.col_rows() / groups);
    let wlen = m * kg;
    if n == 0 || wlen == 0 {
        return vec![T::zero(); wlen];
    }
    let identity = g.is_identity();
    let chunks = n.min(WGRAD_MAX_CHUNKS).min((WGRAD_MAX_PARTIAL / wlen).max(1));
    let per = n.div_ceil(chunks);
    let chunks = n.div_ceil(per);
    let partial = |c: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); wlen];
        let mut cols = vec![T::zero(); if identity { 0 } else { g.col_rows() * l }];
        for s in c * per..((c + 1) * per).min(n) {
            let xs = &x[s * img..(s + 1) * img];
            let cols: &[T] = if identity {
                xs
            } else {
                im2col(xs, g, &mut cols);
                &cols
            };
            for grp in 0..groups {
                let a = MatRef { data: dy, offset: ((s * m + grp * mg) * l) as isize, rs: l as isize, cs: 1 };
                let b = MatRef { data: cols, offset: (grp * kg * l) as isize, rs: 1, cs: l as isize };
                T::gemm(mg, l, kg, T::one(), a, b, T::one(), &mut acc[grp * mg * kg..(grp + 1) * mg * kg], kg);
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
    let mut out = parts.next().unwrap_or_else(|| vec![T::zero(); wlen]);
    for p in parts {
        for (o, &v) in out.iter_mut().zip(&p) {
            *o += v;
        }
    }
    out
}
