//! Sorting rows on the host: `argsort` (stable) and `topk` (sorted, ties to the lower index)
//! over `rows` contiguous rows of `n`. NaN orders above every number, as in PyTorch. Rows run
//! in parallel when large.

use super::PAR_MIN_ELEMS;
use crate::dtype::Element;
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

/// `f(row, out_row)` for each of the `rows` rows of `n` in `data`, with `k` outputs per row.
fn map_rows<T: Element, U: Send + Copy + Default>(
    data: &[T],
    rows: usize,
    n: usize,
    k: usize,
    f: impl Fn(&[T], &mut [U]) + Sync,
) -> Vec<U> {
    let mut out = vec![U::default(); rows * k];
    if k > 0 {
        // Sorting costs more per element than a copy: parallel from fewer elements on.
        if out.len() >= PAR_MIN_ELEMS / 8 && rows > 1 {
            out.par_chunks_mut(k).enumerate().for_each(|(r, o)| f(&data[r * n..(r + 1) * n], o));
        } else {
            out.chunks_mut(k).enumerate().for_each(|(r, o)| f(&data[r * n..(r + 1) * n], o));
        }
    }
    out
}

/// The positions that sort each row, ascending or `descending`; stable either way.
pub(crate) fn argsort<T: Element>(data: &[T], rows: usize, n: usize, descending: bool) -> Vec<i64> {
    map_rows(data, rows, n, n, |row, o| {
        let mut pairs: Vec<(T, usize)> = row.iter().copied().zip(0..).collect();
        if descending {
            pairs.sort_by(|a, b| total_cmp(b.0, a.0));
        } else {
            pairs.sort_by(|a, b| total_cmp(a.0, b.0));
        }
        for (o, p) in o.iter_mut().zip(&pairs) {
            *o = p.1 as i64;
        }
    })
}

/// The `k` largest (or smallest) entries of each row, most extreme first, and their positions.
pub(crate) fn topk<T: Element>(data: &[T], rows: usize, n: usize, k: usize, largest: bool) -> (Vec<T>, Vec<i64>) {
    let out = map_rows(data, rows, n, k, |row, o: &mut [(T, i64)]| {
        // Order: most extreme value first, then lower index; a strict total order, so an
        // unstable selection gives a deterministic result.
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
    });
    out.into_iter().unzip()
}
