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

fn row_max<T: FloatElem>(row: &[T]) -> T {
    row.iter().copied().fold(T::neg_infinity(), T::max)
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
