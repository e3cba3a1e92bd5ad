//! Host kernels of the index family, on slices and layouts: `index_select` / `index_add`,
//! `gather` / `scatter_add`, `masked_fill` and `one_hot`. The op above has checked every
//! index against its axis, so these only index. Scatters accumulate in a fixed order, so
//! results do not depend on the thread count.

use super::{drive_rows, strided, PAR_MIN_ELEMS};
use crate::dtype::{Element, FloatElem};
use crate::layout::{contiguous_strides, for_each_row, Layout};
use rayon::prelude::*;

/// `(outer, inner)`: the products of the dims before and after `a`.
fn outer_inner(shape: &[usize], a: usize) -> (usize, usize) {
    (shape[..a].iter().product(), shape[a + 1..].iter().product())
}

/// The entries `idx` of axis `a` of the contiguous `x` of `shape`, in index order.
pub(crate) fn index_select<T: Element>(x: &[T], shape: &[usize], a: usize, idx: &[i64]) -> Vec<T> {
    let (outer, inner) = outer_inner(shape, a);
    let (n, k) = (shape[a], idx.len());
    let mut out = vec![T::default(); outer * k * inner];
    drive_rows(&mut out, inner, |start, chunk| {
        for (t, row) in chunk.chunks_mut(inner).enumerate() {
            let (o, j) = ((start + t) / k, (start + t) % k);
            let s = (o * n + idx[j] as usize) * inner;
            row.copy_from_slice(&x[s..s + inner]);
        }
    });
    out
}

/// Adds the slices of `src` (contiguous, `shape` with `idx.len()` along `a`) at positions
/// `idx` of axis `a` of the contiguous `out` of `shape`; repeats accumulate in index order.
pub(crate) fn index_add<T: FloatElem>(out: &mut [T], shape: &[usize], a: usize, idx: &[i64], src: &[T]) {
    let (outer, inner) = outer_inner(shape, a);
    let (n, k) = (shape[a], idx.len());
    let block = n * inner;
    let body = |o: usize, dst: &mut [T]| {
        for (j, &i) in idx.iter().enumerate() {
            let from = &src[(o * k + j) * inner..(o * k + j + 1) * inner];
            for (d, &v) in dst[i as usize * inner..(i as usize + 1) * inner].iter_mut().zip(from) {
                *d += v;
            }
        }
    };
    if block > 0 {
        if outer > 1 && src.len() >= PAR_MIN_ELEMS {
            out.par_chunks_mut(block).enumerate().for_each(|(o, d)| body(o, d));
        } else {
            out.chunks_mut(block).enumerate().for_each(|(o, d)| body(o, d));
        }
    }
}

/// `out[.., j, ..] = x[.., idx[.., j, ..], ..]` along axis `a` of the strided `x`, for a
/// contiguous index of shape `ishape` (the result's shape).
pub(crate) fn gather<T: Element>(buf: &[T], layout: &Layout, a: usize, idx: &[i64], ishape: &[usize]) -> Vec<T> {
    let inner = *ishape.last().unwrap_or(&1);
    // The source's strides with axis `a` zeroed: the index supplies that coordinate.
    let mut zs = layout.strides.clone();
    let sa = zs[a];
    zs[a] = 0;
    let zlast = *zs.last().unwrap_or(&0);
    let zs = [zs];
    let mut out = vec![T::default(); idx.len()];
    drive_rows(&mut out, inner, |start, chunk| {
        let rows = chunk.len() / inner;
        for_each_row(ishape, &zs, &[layout.offset as isize], start, start + rows, |r, offs| {
            let row = &mut chunk[(r - start) * inner..(r - start + 1) * inner];
            let ir = &idx[r * inner..(r + 1) * inner];
            for (j, (o, &i)) in row.iter_mut().zip(ir).enumerate() {
                *o = buf[(offs[0] + j as isize * zlast + i as isize * sa) as usize];
            }
        });
    });
    out
}

/// `out[.., idx[.., j, ..], ..] += src[.., j, ..]` along axis `a` of the contiguous `out` of
/// `shape`, for a contiguous index of shape `ishape` and a strided `src`. Repeated targets
/// accumulate in the index's row-major order.
pub(crate) fn scatter_add<T: FloatElem>(out: &mut [T], shape: &[usize], a: usize, idx: &[i64], ishape: &[usize], sbuf: &[T], ls: &Layout) {
    if idx.is_empty() {
        return;
    }
    let rank = ishape.len();
    let inner = *ishape.last().unwrap_or(&1);
    let cs = contiguous_strides(shape);
    let mut zs = cs.clone();
    let sa = zs[a];
    zs[a] = 0;
    let strides = [zs, ls.strides.clone()];
    let (zlast, slast) = (strides[0][rank - 1], strides[1][rank - 1]);
    // Rows `start..end` of the index, writing into `dst`, which begins at storage position
    // `dst_base` of the output.
    let run = |dst: &mut [T], dst_base: isize, start: usize, end: usize| {
        for_each_row(ishape, &strides, &[-dst_base, ls.offset as isize], start, end, |r, offs| {
            let ir = &idx[r * inner..(r + 1) * inner];
            for (j, &i) in ir.iter().enumerate() {
                let j = j as isize;
                dst[(offs[0] + j * zlast + i as isize * sa) as usize] += sbuf[(offs[1] + j * slast) as usize];
            }
        });
    };
    let rows = idx.len() / inner;
    if a != 0 && rank >= 2 && idx.len() >= PAR_MIN_ELEMS && ishape[0] > 1 {
        // Targets of different first-axis entries are disjoint: split the output there.
        let per = rows / ishape[0];
        let block = cs[0] as usize;
        out.par_chunks_mut(block)
            .take(ishape[0])
            .enumerate()
            .for_each(|(i0, dst)| run(dst, (i0 * block) as isize, i0 * per, (i0 + 1) * per));
    } else {
        run(out, 0, 0, rows);
    }
}

/// `v` where the strided u8 mask is non-zero, `x` elsewhere, over `shape` (both operands
/// broadcast to it).
pub(crate) fn masked_fill<T: Element>(x: &[T], xl: &Layout, mask: &[u8], ml: &Layout, shape: &[usize], v: T) -> Vec<T> {
    strided::zip_map(x, xl, mask, ml, shape, move |x: T, c: u8| if c != 0 { v } else { x })
}

/// Rows of `num_classes` f32 zeros with a 1 at each label.
pub(crate) fn one_hot(labels: &[i64], num_classes: usize) -> Vec<f32> {
    let mut out = vec![0f32; labels.len() * num_classes];
    drive_rows(&mut out, num_classes, |start, chunk| {
        for (t, row) in chunk.chunks_mut(num_classes).enumerate() {
            row[labels[start + t] as usize] = 1.0;
        }
    });
    out
}
