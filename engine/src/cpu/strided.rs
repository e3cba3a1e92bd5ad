//! Elementwise kernels over strided operands. Dims are collapsed first so the inner loop is
//! long, and the inner loop is specialized for unit and zero strides so it vectorizes.

use super::PAR_MIN_ELEMS;
use crate::layout::{collapse_dims, contiguous_strides, for_each_row, Layout};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows per parallel task so each task has at least `PAR_MIN_ELEMS / 4` elements.
fn rows_per_task(inner: usize) -> usize {
    ((PAR_MIN_ELEMS / 4) / inner.max(1)).max(1)
}

/// A new buffer of `n` elements, filled by `fill` without being zeroed first. `fill` must
/// write every element of the slice it is given (each caller below hands every element to
/// exactly one write).
pub(crate) fn build<U>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<U>])) -> Vec<U> {
    let mut out = Vec::with_capacity(n);
    fill(&mut out.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least n, and `fill` initialized all of the first n
    // elements (its contract; if it panics instead, the length stays 0 and nothing is read).
    unsafe { out.set_len(n) };
    out
}

/// Runs `row_fn(offsets, out_row)` over every row of `out`, in parallel when large. Every
/// element of `out` lies in exactly one row (`out.len()` is a multiple of the last dim).
fn drive<U: Send>(
    out: &mut [MaybeUninit<U>],
    shape: &[usize],
    strides: &[Vec<isize>],
    bases: &[isize],
    row_fn: impl Fn(&[isize], &mut [MaybeUninit<U>]) + Sync,
) {
    let inner = *shape.last().unwrap();
    if inner == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / inner;
    if out.len() < PAR_MIN_ELEMS {
        for_each_row(shape, strides, bases, 0, rows, |r, offs| row_fn(offs, &mut out[r * inner..(r + 1) * inner]));
        return;
    }
    let per = rows_per_task(inner);
    out.par_chunks_mut(per * inner).enumerate().for_each(|(t, chunk)| {
        let start = t * per;
        let end = start + chunk.len() / inner;
        for_each_row(shape, strides, bases, start, end, |r, offs| {
            let o = (r - start) * inner;
            row_fn(offs, &mut chunk[o..o + inner]);
        });
    });
}

/// Copies a strided view into a new contiguous buffer, in logical (row-major) order.
pub fn gather<T: Copy + Send + Sync + Default>(src: &[T], layout: &Layout) -> Vec<T> {
    let n = layout.numel();
    if layout.is_contiguous() {
        return src[layout.offset..layout.offset + n].to_vec();
    }
    let (shape, strides) = collapse_dims(&layout.shape, std::slice::from_ref(&layout.strides));
    let s = strides[0][shape.len() - 1];
    build(n, |out| {
        drive(out, &shape, &strides, &[layout.offset as isize], |offs, row| {
            let base = offs[0];
            if s == 1 {
                let len = row.len();
                for (o, &v) in row.iter_mut().zip(&src[base as usize..base as usize + len]) {
                    o.write(v);
                }
            } else {
                for (i, o) in row.iter_mut().enumerate() {
                    o.write(src[(base + i as isize * s) as usize]);
                }
            }
        })
    })
}

/// `f` applied to every element of a contiguous slice.
pub fn map<T: Copy + Sync, U: Send + Default + Copy>(src: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    map_slices(src, |s, o| {
        for (o, &x) in o.iter_mut().zip(s) {
            o.write(f(x));
        }
    })
}

/// [`map`] with the element loop supplied by the caller: `kernel(src_chunk, out_chunk)`
/// runs over the same chunks `map` uses (in parallel when large) and must write every
/// element of `out_chunk` (which is as long as `src_chunk`). For kernels that pick their
/// instruction set at run time, like those of [`vmath`](super::vmath).
pub fn map_slices<T: Sync, U: Send>(src: &[T], kernel: impl Fn(&[T], &mut [MaybeUninit<U>]) + Sync) -> Vec<U> {
    build(src.len(), |out| {
        if src.len() < PAR_MIN_ELEMS {
            kernel(src, out);
        } else {
            out.par_chunks_mut(PAR_MIN_ELEMS / 4).zip(src.par_chunks(PAR_MIN_ELEMS / 4)).for_each(|(o, s)| kernel(s, o));
        }
    })
}

/// `f(a, b)` over the broadcast of two strided operands into a contiguous result of
/// `out_shape` (the caller has checked that the shapes broadcast).
pub fn zip_map<T: Copy + Sync, V: Copy + Sync, U: Send + Default + Copy>(
    a: &[T],
    la: &Layout,
    b: &[V],
    lb: &Layout,
    out_shape: &[usize],
    f: impl Fn(T, V) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    let (shape, strides) =
        collapse_dims(out_shape, &[contiguous_strides(out_shape), la.broadcast_strides(out_shape), lb.broadcast_strides(out_shape)]);
    let strides = vec![strides[1].clone(), strides[2].clone()];
    let last = shape.len() - 1;
    let (sa, sb) = (strides[0][last], strides[1][last]);
    build(n, |out| {
        drive(out, &shape, &strides, &[la.offset as isize, lb.offset as isize], |offs, row| {
            let (ao, bo) = (offs[0] as usize, offs[1] as usize);
            let len = row.len();
            match (sa, sb) {
                (1, 1) => {
                    for ((o, &x), &y) in row.iter_mut().zip(&a[ao..ao + len]).zip(&b[bo..bo + len]) {
                        o.write(f(x, y));
                    }
                }
                (1, 0) => {
                    let y = b[bo];
                    for (o, &x) in row.iter_mut().zip(&a[ao..ao + len]) {
                        o.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let x = a[ao];
                    for (o, &y) in row.iter_mut().zip(&b[bo..bo + len]) {
                        o.write(f(x, y));
                    }
                }
                _ => {
                    for (i, o) in row.iter_mut().enumerate() {
                        let x = a[(offs[0] + i as isize * sa) as usize];
                        let y = b[(offs[1] + i as isize * sb) as usize];
                        o.write(f(x, y));
                    }
                }
            }
        })
    })
}

/// `f(c, a, b)` over the broadcast of three strided operands (used by `where`).
#[allow(clippy::too_many_arguments)]
pub fn zip3_map<C: Copy + Sync, T: Copy + Sync, U: Send + Default + Copy>(
    c: &[C],
    lc: &Layout,
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    out_shape: &[usize],
    f: impl Fn(C, T, T) -> U + Sync,
) -> Vec<U> {
    let n: usize = out_shape.iter().product();
    let (shape, strides) = collapse_dims(
        out_shape,
        &[contiguous_strides(out_shape), lc.broadcast_strides(out_shape), la.broadcast_strides(out_shape), lb.broadcast_strides(out_shape)],
    );
    let strides = strides[1..].to_vec();
    let last = shape.len() - 1;
    let (sc, sa, sb) = (strides[0][last], strides[1][last], strides[2][last]);
    build(n, |out| {
        drive(out, &shape, &strides, &[lc.offset as isize, la.offset as isize, lb.offset as isize], |offs, row| {
            for (i, o) in row.iter_mut().enumerate() {
                let i = i as isize;
                o.write(f(c[(offs[0] + i * sc) as usize], a[(offs[1] + i * sa) as usize], b[(offs[2] + i * sb) as usize]));
            }
        })
    })
}

/// `f(a[i], b[i], c[i])` over three contiguous slices of equal length.
pub fn map3<A: Copy + Sync, B: Copy + Sync, C: Copy + Sync, U: Send + Default + Copy>(
    a: &[A],
    b: &[B],
    c: &[C],
    f: impl Fn(A, B, C) -> U + Sync,
) -> Vec<U> {
    map3_slices(a, b, c, |a, b, c, o| {
        for (((o, &x), &y), &z) in o.iter_mut().zip(a).zip(b).zip(c) {
            o.write(f(x, y, z));
        }
    })
}

/// [`map3`] with the element loop supplied by the caller: `kernel(a, b, c, out)` over
/// matching chunks (in parallel when large), each as long as `out`, every element of which it
/// must write.
pub fn map3_slices<A: Sync, B: Sync, C: Sync, U: Send>(
    a: &[A],
    b: &[B],
    c: &[C],
    kernel: impl Fn(&[A], &[B], &[C], &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    // Every output element is written, so the slices must cover it.
    assert!(b.len() >= a.len() && c.len() >= a.len(), "map3: operands shorter than the first");
    build(a.len(), |out| {
        if a.len() < PAR_MIN_ELEMS {
            let n = a.len();
            kernel(a, &b[..n], &c[..n], out);
        } else {
            let k = PAR_MIN_ELEMS / 4;
            out.par_chunks_mut(k).enumerate().for_each(|(i, o)| {
                let s = i * k;
                let e = s + o.len();
                kernel(&a[s..e], &b[s..e], &c[s..e], o);
            });
        }
    })
}

/// Two outputs from two contiguous operands of equal length in one pass:
/// `kernel(a_chunk, b_chunk, first_chunk, second_chunk)` runs over the chunks [`map_slices`]
/// uses (in parallel when large) and must write every element of both output chunks.
pub fn map2_slices_to_pair<A: Sync, B: Sync, U: Send>(
    a: &[A],
    b: &[B],
    kernel: impl Fn(&[A], &[B], &mut [MaybeUninit<U>], &mut [MaybeUninit<U>]) + Sync,
) -> (Vec<U>, Vec<U>) {
    assert!(b.len() >= a.len(), "map2_slices_to_pair: second operand shorter than the first");
    let n = a.len();
    let mut second = Vec::with_capacity(n);
    let first = build(n, |first| {
        let second = &mut second.spare_capacity_mut()[..n];
        if n < PAR_MIN_ELEMS {
            kernel(a, &b[..n], first, second);
        } else {
            let k = PAR_MIN_ELEMS / 4;
            first.par_chunks_mut(k).zip(second.par_chunks_mut(k)).enumerate().for_each(|(i, (f, s))| {
                let start = i * k;
                let end = start + f.len();
                kernel(&a[start..end], &b[start..end], f, s);
            });
        }
    });
    // SAFETY: the capacity is n and the kernel wrote every element of both outputs (its
    // contract); had it panicked, the length would have stayed 0.
    unsafe { second.set_len(n) };
    (first, second)
}

/// Writes `src` (logical order) into the positions a strided `layout` addresses in `dst`:
/// the inverse of [`gather`]. Layouts with overlapping positions (stride 0) are not allowed.
pub fn scatter_into<T: Copy>(dst: &mut [T], layout: &Layout, src: &[T]) {
    let (shape, strides) = collapse_dims(&layout.shape, std::slice::from_ref(&layout.strides));
    let inner = *shape.last().unwrap();
    let s = strides[0][shape.len() - 1];
    let rows = src.len().checked_div(inner).unwrap_or(0);
    for_each_row(&shape, &strides, &[layout.offset as isize], 0, rows, |r, offs| {
        for i in 0..inner {
            dst[(offs[0] + i as isize * s) as usize] = src[r * inner + i];
        }
    });
}
