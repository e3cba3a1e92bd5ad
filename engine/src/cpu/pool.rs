//! 2-D pooling on the host, over contiguous `planes × h × w` images: max pooling with
//! indices, average pooling (fixed or adaptive windows), and their backward. Every plane is
//! independent: planes run in parallel and each backward kernel accumulates within its own
//! plane, in a fixed order. The windows come precomputed per output row and column
//! ([`PlaneWindows`]), validated by the engine ops (engine/src/ops/conv/pool.rs).

use crate::cpu::reduce::sum_slice;
use crate::cpu::PAR_MIN_ELEMS;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
use crate::kinds::Pair;
use rayon::prelude::*;

/// One output position's window along one axis: the input position of its first in-bounds
/// tap and how many taps (spaced by the dilation) are in bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AxisWin {
    pub start: usize,
    pub taps: usize,
}

/// The windows of a kernel `k`, stride `s`, padding `p` and dilation `d` over an axis of `n`.
pub(crate) fn axis_windows(n: usize, out: usize, k: usize, s: usize, p: usize, d: usize) -> Vec<AxisWin> {
    (0..out)
        .map(|o| {
            let base = o * s;
            let i0 = if p > base { (p - base).div_ceil(d) } else { 0 };
            let i1 = if n + p > base { ((n + p - 1 - base) / d + 1).min(k) } else { 0 };
            if i0 >= i1 {
                AxisWin { start: 0, taps: 0 }
            } else {
                AxisWin { start: base + i0 * d - p, taps: i1 - i0 }
            }
        })
        .collect()
}

/// Adaptive bins along one axis: `⌊i·n/out⌋ .. ⌈(i+1)·n/out⌉` (in u128, so no overflow).
pub(crate) fn adaptive_windows(n: usize, out: usize) -> Vec<AxisWin> {
    let (n128, o128) = (n as u128, out as u128);
    (0..out as u128)
        .map(|i| {
            let start = (i * n128 / o128) as usize;
            let end = ((i + 1) * n128).div_ceil(o128) as usize;
            AxisWin { start, taps: end - start }
        })
        .collect()
}

/// `planes` planes of `h × w` pooled to `oh × ow`, with each output row's and column's window.
pub(crate) struct PlaneWindows {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub ys: Vec<AxisWin>,
    pub xs: Vec<AxisWin>,
}

/// Runs `f(plane, out_plane)` over `per`-sized chunks of `out`, in parallel when large.
pub(crate) fn per_plane<U: Send>(out: &mut [U], per: usize, work: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    if per == 0 || out.is_empty() {
        return;
    }
    if work >= PAR_MIN_ELEMS && out.len() > per {
        out.par_chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// The maxima of each window and their flat positions `h·W + w` within the plane. Ties keep
/// the first position in scan order; a NaN wins (the last one, as in PyTorch).
pub(crate) fn max_pool2d<T: FloatElem>(
    x: &[T],
    p: &PlaneWindows,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> (Vec<T>, Vec<i64>) {
    let (plane, per) = (p.h * p.w, p.oh * p.ow);
    let (dh, dw) = dilation;
    let mut vals = vec![T::zero(); p.planes * per];
    let mut idx = vec![0i64; p.planes * per];
    // Output columns whose windows lie wholly inside the input: for those every
    // tap is in bounds, so each tap is one pass over the whole run of them (no
    // dependency between columns, strided loads). The border columns go one by one.
    let (kw, sw, pw) = (kernel.1, stride.1, padding.1);
    let x_lo = p.xs.iter().position(|a| a.taps == kw).unwrap_or(p.ow);
    let x_hi = p.xs.iter().rposition(|a| a.taps == kw).map_or(x_lo, |i| i + 1);
    let body = |pl: usize, (ov, oi): (&mut [T], &mut [i64])| {
        let src = &x[pl * plane..(pl + 1) * plane];
        for (oy, wy) in p.ys.iter().enumerate() {
            let (ov, oi) = (&mut ov[oy * p.ow..(oy + 1) * p.ow], &mut oi[oy * p.ow..(oy + 1) * p.ow]);
            // Start from each window's first in-bounds tap (every window has one).
            for (ox, wx) in p.xs.iter().enumerate() {
                let at = wy.start * p.w + wx.start;
                ov[ox] = src[at];
                oi[ox] = at as i64;
            }
            // Taps in scan order (row, then column) per output: ties keep the first.
            for ty in 0..wy.taps {
                let iy = wy.start + ty * dh;
                let line = &src[iy * p.w..(iy + 1) * p.w];
                let base = (iy * p.w) as i64;
                if x_lo < x_hi {
                    for tx in 0..kw {
                        let first = x_lo * sw + tx * dw - pw;
                        let run = ov[x_lo..x_hi].iter_mut().zip(oi[x_lo..x_hi].iter_mut());
                        for (t, (&v, (b, a))) in line[first..].iter().step_by(sw).zip(run).enumerate() {
                            let take = v > *b || v.is_nan();
                            *b = if take { v } else { *b };
                            *a = if take { base + (first + t * sw) as i64 } else { *a };
                        }
                    }
                }
                for ox in (0..x_lo).chain(x_hi..p.ow) {
                    let wx = p.xs[ox];
                    for tx in 0..wx.taps {
                        let j = wx.start + tx * dw;
                        let v = line[j];
                        if v > ov[ox] || v.is_nan() {
                            ov[ox] = v;
                            oi[ox] = base + j as i64;
                        }
                    }
                }
            }
        }
    };
    if per > 0 {
        if x.len() >= PAR_MIN_ELEMS && p.planes > 1 {
            vals.par_chunks_mut(per).zip(idx.par_chunks_mut(per)).enumerate().for_each(|(pl, o)| body(pl, o));
        } else {
            vals.chunks_mut(per).zip(idx.chunks_mut(per)).enumerate().for_each(|(pl, o)| body(pl, o));
        }
    }
    (vals, idx)
}

/// Each gradient of `g` (`planes × per`) added at its index (checked to lie in the plane) of
/// a zero `planes × plane` buffer.
pub(crate) fn max_pool2d_backward<T: FloatElem>(g: &[T], idx: &[i64], planes: usize, per: usize, plane: usize) -> Vec<T> {
    let mut out = vec![T::zero(); planes * plane];
    per_plane(&mut out, plane, g.len(), |pl, o| {
        for (&gv, &i) in g[pl * per..(pl + 1) * per].iter().zip(&idx[pl * per..(pl + 1) * per]) {
            o[i as usize] += gv;
        }
    });
    out
}

/// The mean of each window: divided by `area` when given (`count_include_pad`), else by the
/// window's in-bounds count (which adaptive pooling always is).
pub(crate) fn avg_pool2d<T: FloatElem>(x: &[T], p: &PlaneWindows, area: Option<usize>) -> Vec<T> {
    let (plane, per) = (p.h * p.w, p.oh * p.ow);
    let mut out = vec![T::zero(); p.planes * per];
    per_plane(&mut out, per, x.len(), |pl, o| {
        let src = &x[pl * plane..(pl + 1) * plane];
        for (oy, wy) in p.ys.iter().enumerate() {
            for (ox, wx) in p.xs.iter().enumerate() {
                let mut s = T::zero();
                for y in wy.start..wy.start + wy.taps {
                    s += sum_slice(&src[y * p.w + wx.start..y * p.w + wx.start + wx.taps]);
                }
                let div = area.unwrap_or(wy.taps * wx.taps);
                o[oy * p.ow + ox] = s / T::c(div as f64);
            }
        }
    });
    out
}

/// The gradient of [`avg_pool2d`]: each window spreads its gradient over its in-bounds
/// inputs, divided as in the forward.
pub(crate) fn avg_pool2d_backward<T: FloatElem>(g: &[T], p: &PlaneWindows, area: Option<usize>) -> Vec<T> {
    let (plane, per) = (p.h * p.w, p.oh * p.ow);
    let planes_len = p.planes * plane;
    let mut out = vec![T::zero(); planes_len];
    per_plane(&mut out, plane, g.len().max(planes_len), |pl, o| {
        let gp = &g[pl * per..(pl + 1) * per];
        for (oy, wy) in p.ys.iter().enumerate() {
            for (ox, wx) in p.xs.iter().enumerate() {
                let div = area.unwrap_or(wy.taps * wx.taps);
                let v = gp[oy * p.ow + ox] / T::c(div as f64);
                for y in wy.start..wy.start + wy.taps {
                    o[y * p.w + wx.start..y * p.w + wx.start + wx.taps].iter_mut().for_each(|t| *t += v);
                }
            }
        }
    });
    out
}
