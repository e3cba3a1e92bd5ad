//! Host kernels of the layout ops that copy: `cat`, `pad` (constant or reflect) with the
//! reflect backward, and the scatter of a view's gradient into zeros. On contiguous slices
//! and shapes; the op above has checked them.

use super::{drive_rows, strided, PAR_MIN_ELEMS};
use crate::dtype::{Element, FloatElem};
use crate::kinds::PadMode;
use crate::layout::{contiguous_strides, Layout};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The contiguous `parts` laid end to end along axis `a` of the output `shape`; part `i` has
/// `lens[i]` entries along that axis.
pub(crate) fn cat<T: Element>(parts: &[&[T]], lens: &[usize], shape: &[usize], a: usize) -> Vec<T> {
    let n: usize = shape.iter().product();
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let blocks: Vec<usize> = lens.iter().map(|&l| l * inner).collect();
    let row = shape[a] * inner;
    // Every output row is the parts' blocks end to end (they sum to `row`), so the buffer is
    // written once, never zeroed first.
    let fill = |o: usize, dst: &mut [MaybeUninit<T>]| {
        let mut at = 0;
        for (p, &b) in parts.iter().zip(&blocks) {
            for (d, &v) in dst[at..at + b].iter_mut().zip(&p[o * b..(o + 1) * b]) {
                d.write(v);
            }
            at += b;
        }
    };
    strided::build(n, |out| {
        if row > 0 {
            if outer > 1 && n >= PAR_MIN_ELEMS {
                out.par_chunks_mut(row).enumerate().for_each(|(o, d)| fill(o, d));
            } else {
                out.chunks_mut(row).enumerate().for_each(|(o, d)| fill(o, d));
            }
        }
    })
}

/// `o − before` mirrored into `0..n` (valid for `before < n` and `o − before < 2n − 1`).
fn reflect(o: usize, before: usize, n: usize) -> usize {
    let i = o as isize - before as isize;
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * (n - 1) - i } else { i }) as usize
}

/// The source position of output position `o` along an axis of length `n` padded by
/// `before` (`None`: the constant).
#[inline]
fn pad_src(o: usize, before: usize, n: usize, mode: PadMode) -> Option<usize> {
    match mode {
        PadMode::Constant(_) => (o >= before && o - before < n).then(|| o - before),
        PadMode::Reflect => Some(reflect(o, before, n)),
    }
}

/// The contiguous `x` of `in_shape` padded to `shape`, `full[d]` being the `(before, after)`
/// of axis `d`.
pub(crate) fn pad<T: Element>(x: &[T], in_shape: &[usize], shape: &[usize], full: &[(usize, usize)], mode: PadMode) -> Vec<T> {
    let rank = shape.len();
    let total: usize = shape.iter().product();
    if rank == 0 {
        return x.to_vec();
    }
    if total == 0 {
        return Vec::new();
    }
    let fill_value = if let PadMode::Constant(v) = mode { v } else { 0.0 };
    let src_strides = contiguous_strides(in_shape);
    let inner = shape[rank - 1];
    let n_last = in_shape[rank - 1];
    let (b_last, _) = full[rank - 1];
    // The last axis' map is at most as long as the output, which is allocated anyway.
    let last_map: Vec<Option<usize>> = (0..inner).map(|o| pad_src(o, b_last, n_last, mode)).collect();
    let last_plain = inner == n_last;
    let mut out = vec![T::from_f64(fill_value); total];
    drive_rows(&mut out, inner, |start, chunk| {
        for (t, row) in chunk.chunks_mut(inner).enumerate() {
            // Decompose the row number over the leading output axes.
            let mut r = start + t;
            let mut base = Some(0usize);
            for d in (0..rank - 1).rev() {
                let o = r % shape[d];
                r /= shape[d];
                base = base.and_then(|b| pad_src(o, full[d].0, in_shape[d], mode).map(|s| b + s * src_strides[d] as usize));
            }
            let Some(base) = base else { continue }; // a border row: the constant
            if last_plain {
                row.copy_from_slice(&x[base..base + inner]);
            } else {
                for (o, m) in row.iter_mut().zip(&last_map) {
                    if let Some(s) = m {
                        *o = x[base + s];
                    }
                }
            }
        }
    });
    out
}

/// The backward of a reflect pad: the contiguous gradient `g` of `shape` folded back to
/// `in_shape`, one padded axis at a time (`pads[i]` applies to axis `lead + i`), each border
/// entry added to the entry it mirrors.
pub(crate) fn pad_backward_reflect<T: FloatElem>(
    g: Vec<T>,
    shape: &[usize],
    in_shape: &[usize],
    pads: &[(usize, usize)],
    lead: usize,
) -> Vec<T> {
    let mut cur = g;
    let mut shape = shape.to_vec();
    for (i, &(b, _)) in pads.iter().enumerate() {
        let d = lead + i;
        let (n_in, n_out) = (in_shape[d], shape[d]);
        if n_in == n_out {
            continue;
        }
        let outer: usize = shape[..d].iter().product();
        let inner: usize = shape[d + 1..].iter().product();
        let map: Vec<usize> = (0..n_out).map(|o| reflect(o, b, n_in)).collect();
        let mut next = vec![T::zero(); outer * n_in * inner];
        if inner > 0 && n_in > 0 {
            let body = |o: usize, dst: &mut [T]| {
                let src = &cur[o * n_out * inner..(o + 1) * n_out * inner];
                for (j, &m) in map.iter().enumerate() {
                    for (t, &v) in dst[m * inner..(m + 1) * inner].iter_mut().zip(&src[j * inner..(j + 1) * inner]) {
                        *t += v;
                    }
                }
            };
            if outer > 1 && cur.len() >= PAR_MIN_ELEMS {
                next.par_chunks_mut(n_in * inner).enumerate().for_each(|(o, dst)| body(o, dst));
            } else {
                next.chunks_mut(n_in * inner).enumerate().for_each(|(o, dst)| body(o, dst));
            }
        }
        cur = next;
        shape[d] = n_in;
    }
    cur
}

/// `n` zeros with the contiguous `src` written where `target` (a layout over them) points.
pub(crate) fn scatter_into_zeros<T: Element>(src: &[T], n: usize, target: &Layout) -> Vec<T> {
    let mut out = vec![T::default(); n];
    strided::scatter_into(&mut out, target, src);
    out
}
