//! softmax and log_softmax over one contiguous row on the host, and their backward; rows are
//! shifted by their maximum, so inputs of 1e4 do not overflow. [`map_rows`] runs a row
//! kernel over every row of one or two same-shaped inputs.

use crate::cpu::reduce::sum_slice;
use crate::cpu::{vmath, PAR_MIN_ELEMS};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
use rayon::prelude::*;

/// `f(input_rows, output_row)` for every `n`-long row of the (one or two) contiguous
/// `inputs`, into a new buffer of `len` elements; rows in parallel when large.
pub(crate) fn map_rows<T: FloatElem>(inputs: &[&[T]], n: usize, len: usize, f: impl Fn(&[&[T]], &mut [T]) + Sync) -> Vec<T> {
    debug_assert!(inputs.len() <= 2, "map_rows serves one or two inputs");
    let mut out = vec![T::zero(); len];
    if n > 0 {
        let body = |(r, o): (usize, &mut [T])| {
            // A fixed array, not a Vec: no allocation per row.
            let mut rows: [&[T]; 2] = [&[], &[]];
            for (slot, m) in rows.iter_mut().zip(inputs) {
                *slot = &m[r * n..(r + 1) * n];
            }
            f(&rows[..inputs.len()], o);
        };
        if out.len() >= PAR_MIN_ELEMS {
            out.par_chunks_mut(n).enumerate().for_each(body);
        } else {
            out.chunks_mut(n).enumerate().for_each(body);
        }
    }
    out
}

/// The row's largest value (NaNs skipped, as `f32::max` skips them; -inf for an empty or
/// all-NaN row). Sixteen running maxima written as compare-and-select, which vectorizes,
/// where one `max` fold is a chain of dependent instructions as long as the row. The maximum
/// is exact, so the lanes do not change the result.
fn row_max<T: FloatElem>(row: &[T]) -> T {
    let larger = |a: T, b: T| if b > a { b } else { a };
    let mut acc = [T::neg_infinity(); 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = larger(*a, v);
        }
    }
    let tail = chunks.remainder().iter().copied().fold(T::neg_infinity(), larger);
    acc.into_iter().fold(tail, larger)
}

/// softmax of an f32 row: vmath's exp vectorizes where `f32::exp` is a call per element; the
/// row sum then goes eight lanes wide too (its order depends only on the row length).
pub(crate) fn softmax_row_f32(x: &[f32], o: &mut [f32]) {
    vmath::exp_shifted_slice(x, row_max(x), o);
    let inv = sum_slice(o).recip();
    o.iter_mut().for_each(|v| *v *= inv);
}

/// softmax of a row, for the dtypes without a vectorized exp.
pub(crate) fn softmax_row<T: FloatElem>(x: &[T], o: &mut [T]) {
    let m = row_max(x);
    let mut s = T::zero();
    for (o, &x) in o.iter_mut().zip(x) {
        *o = (x - m).exp();
        s += *o;
    }
    let inv = s.recip();
    o.iter_mut().for_each(|v| *v *= inv);
}

/// log_softmax of an f32 row: as in [`softmax_row_f32`], the exponentials (into the output
/// row, overwritten below) and their sum vectorize.
pub(crate) fn log_softmax_row_f32(x: &[f32], o: &mut [f32]) {
    let m = row_max(x);
    vmath::exp_shifted_slice(x, m, o);
    let log_sum = sum_slice(o).ln();
    for (o, &x) in o.iter_mut().zip(x) {
        *o = (x - m) - log_sum;
    }
}

/// log_softmax of a row, for the dtypes without a vectorized exp.
pub(crate) fn log_softmax_row<T: FloatElem>(x: &[T], o: &mut [T]) {
    let m = row_max(x);
    // `(x - m) - log Σ` rather than `x - (m + log Σ)`: the latter rounds `m + log Σ`
    // to the precision of `m`, losing digits when inputs are large (1e4 in f32).
    let log_sum = x.iter().fold(T::zero(), |a, &x| a + (x - m).exp()).ln();
    for (o, &x) in o.iter_mut().zip(x) {
        *o = (x - m) - log_sum;
    }
}

/// `y · (g - Σ g·y)` over a row, `y` the softmax output and `g` its gradient.
pub(crate) fn softmax_backward_row<T: FloatElem>(y: &[T], g: &[T], o: &mut [T]) {
    let dot = T::dot(y, g);
    for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
        *o = y * (g - dot);
    }
}

/// `g - exp(y) · Σ g` over a row, `y` the log_softmax output and `g` its gradient.
pub(crate) fn log_softmax_backward_row<T: FloatElem>(y: &[T], g: &[T], o: &mut [T]) {
    let s = sum_slice(g);
    for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
        *o = g - y.exp() * s;
    }
}

#[cfg(test)]
mod row_max_tests {
    use super::row_max;

    /// The laned maximum equals the plain `f32::max` fold for every length around the lane
    /// count, with NaNs (skipped by both) and an all-NaN row (-inf for both).
    #[test]
    fn laned_max_equals_the_fold() {
        for n in 0..50usize {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            if n > 3 {
                row[n / 2] = f32::NAN;
            }
            let want = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&row).to_bits(), want.to_bits(), "length {n}");
        }
        assert_eq!(row_max(&[f32::NAN; 20]), f32::NEG_INFINITY);
    }
}
