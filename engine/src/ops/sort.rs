//! Sorting along one axis: `argsort` (stable) and `topk` (sorted, ties to the lower index).
//! NaN orders above every number, as in PyTorch. Rows run in parallel when large.

use crate::backend::Backend;
use crate::cpu::PAR_MIN_ELEMS;
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::normalize_axis;
use crate::{with_any, Element, Error, Result, Tensor};
use rayon::prelude::*;
use std::cmp::Ordering;

/// A total order on elements with NaN above everything (NaNs equal to each other).
#[inline]
fn total_cmp<T: Element>(a: T, b: T) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        #[allow(clippy::eq_op)]
        None => match (a != a, b != b) {
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => Ordering::Equal,
        },
    }
}

/// Moves `axis` last and runs `f(row, out_row)` for every row, with `k` outputs per row.
/// Returns the outputs in the moved layout together with the permutation to undo it.
fn along_axis<T: Element, U: Send + Copy + Default>(
    x: &Tensor,
    op: &'static str,
    axis: isize,
    k: impl FnOnce(usize) -> Result<usize>,
    f: impl Fn(&[T], &mut [U]) + Sync,
) -> Result<(Vec<U>, Vec<usize>, Vec<usize>)> {
    let a = normalize_axis(op, axis, x.shape())?;
    let last = x.rank() - 1;
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.swap(a, last);
    let n = x.shape()[a];
    let k = k(n)?;
    let moved = x.permute(&perm)?;
    let data = moved.values::<T>(op)?;
    let mut shape: Vec<usize> = moved.shape().to_vec();
    shape[last] = k;
    let rows: usize = shape[..last].iter().product();
    let mut out = vec![U::default(); rows * k];
    if k > 0 {
        if out.len() >= PAR_MIN_ELEMS / 8 && rows > 1 {
            out.par_chunks_mut(k).enumerate().for_each(|(r, o)| f(&data[r * n..(r + 1) * n], o));
        } else {
            out.chunks_mut(k).enumerate().for_each(|(r, o)| f(&data[r * n..(r + 1) * n], o));
        }
    }
    Ok((out, shape, perm))
}

impl Tensor {
    /// The i64 indices that sort `axis` (ascending, or `descending`); stable, so equal
    /// values keep their order (the lower index first) either way.
    pub fn argsort(&self, axis: isize, descending: bool) -> Result<Tensor> {
        const OP: &str = "argsort";
        if let Backend::Cuda(x) = self.backend() {
            let a = normalize_axis(OP, axis, self.shape())?;
            return Ok(Tensor::from_cuda_array(cuda::sort::sorted_along(&x, OP, a, self.shape()[a], descending, false)?.1));
        }
        with_any!(self.dtype(), |T| {
            let (out, shape, perm) = along_axis::<T, i64>(self, OP, axis, Ok, |row, o| {
                let mut pairs: Vec<(T, usize)> = row.iter().copied().zip(0..).collect();
                if descending {
                    pairs.sort_by(|a, b| total_cmp(b.0, a.0));
                } else {
                    pairs.sort_by(|a, b| total_cmp(a.0, b.0));
                }
                for (o, p) in o.iter_mut().zip(&pairs) {
                    *o = p.1 as i64;
                }
            })?;
            Tensor::from_vec_unchecked(out, &shape).permute(&perm)
        })
    }

    /// The `k` largest (or smallest, with `largest = false`) entries along `axis`, sorted
    /// from the most extreme, and their i64 indices; ties go to the lower index.
    pub fn topk(&self, k: usize, axis: isize, largest: bool) -> Result<(Tensor, Tensor)> {
        const OP: &str = "topk";
        let shape_in = self.shape().to_vec();
        let check = |n: usize| {
            if k > n {
                Err(Error::invalid(OP, format!("k = {k} exceeds the length {n} of axis {axis} (shape {shape_in:?})")))
            } else {
                Ok(k)
            }
        };
        if let Backend::Cuda(x) = self.backend() {
            let a = normalize_axis(OP, axis, self.shape())?;
            check(self.shape()[a])?;
            let (vals, idx) = cuda::sort::sorted_along(&x, OP, a, k, largest, true)?;
            return Ok((Tensor::from_cuda_array(vals.expect("asked for values")), Tensor::from_cuda_array(idx)));
        }
        with_any!(self.dtype(), |T| {
            let (out, shape, perm) = along_axis::<T, (T, i64)>(self, OP, axis, check, |row, o| {
                // Order: most extreme value first, then lower index; a strict total order,
                // so an unstable selection gives a deterministic result.
                let cmp = |a: &(T, usize), b: &(T, usize)| {
                    let by_value = if largest { total_cmp(b.0, a.0) } else { total_cmp(a.0, b.0) };
                    by_value.then(a.1.cmp(&b.1))
                };
                let mut pairs: Vec<(T, usize)> = row.iter().copied().zip(0..).collect();
                let k = o.len();
                if k < pairs.len() {
                    pairs.select_nth_unstable_by(k - 1, cmp);
                    pairs.truncate(k);
                }
                pairs.sort_unstable_by(cmp);
                for (o, p) in o.iter_mut().zip(&pairs) {
                    *o = (p.0, p.1 as i64);
                }
            })?;
            let (vals, idx): (Vec<T>, Vec<i64>) = out.into_iter().unzip();
            Ok((Tensor::from_vec_unchecked(vals, &shape).permute(&perm)?, Tensor::from_vec_unchecked(idx, &shape).permute(&perm)?))
        })
    }
}
