//! Row reductions on the host: the deterministic sums every CPU kernel uses (eight lanes,
//! then a fixed combine, so a result depends only on the length) and each [`ReduceOp`] over
//! one contiguous row.

use crate::cpu::PAR_MIN_ELEMS;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
use crate::kinds::ReduceOp;
use rayon::prelude::*;

/// Sum of a slice with eight independent accumulators, so it vectorizes and loses less
/// precision than a running sum.
#[inline(always)]
pub fn sum_slice<T: FloatElem>(s: &[T]) -> T {
    sum_by(s, |v| v)
}

/// `Σ f(s[i])`, summed like [`sum_slice`]: eight lanes, then a fixed pairwise combine, so
/// the order (and the result) depends only on the length.
#[inline(always)]
pub fn sum_by<T: FloatElem>(s: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            acc[l] += f(c[l]);
        }
    }
    let tail: T = chunks.remainder().iter().fold(T::zero(), |a, &b| a + f(b));
    combine_lanes(acc, tail)
}

/// `(Σ f(a, b).0, Σ f(a, b).1)` over two slices of equal length in one pass, each sum in the
/// lane order of [`sum_by`] (batch norm's backward: Σ g and Σ g·x̂ together).
// Always inlined, so that each vector copy of a caller (cpu/vmath.rs's `dispatch!`) gets a
// vector copy of the sum too.
#[inline(always)]
pub fn sum_zip2<T: FloatElem>(a: &[T], b: &[T], f: impl Fn(T, T) -> (T, T)) -> (T, T) {
    debug_assert_eq!(a.len(), b.len());
    let (mut p, mut q) = ([T::zero(); 8], [T::zero(); 8]);
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            let (u, v) = f(x[l], y[l]);
            p[l] += u;
            q[l] += v;
        }
    }
    let (mut tp, mut tq) = (T::zero(), T::zero());
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        let (u, v) = f(x, y);
        tp += u;
        tq += v;
    }
    (combine_lanes(p, tp), combine_lanes(q, tq))
}

/// The fixed pairwise combine of eight lane sums and a tail that every sum here ends with.
#[inline(always)]
fn combine_lanes<T: FloatElem>(acc: [T; 8], tail: T) -> T {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Columns summed together by one task of [`sum_middle_axis`]: its eight lane accumulators
/// and tail (9 × 256 elements) stay in L1 while the rows stream past.
const COLUMN_BLOCK: usize = 256;

/// `out[o, j] = Σ_r x[o, r, j]` over a contiguous `[outer, red, inner]` buffer: a reduction
/// whose reduced axes sit in front of contiguous kept ones (a bias gradient summing
/// `[rows, features]` over its rows, a mean over the tokens of `[N, L, D]`). Each sum runs in
/// [`sum_slice`]'s order over `r` (lane `r mod 8` for the first `red − red mod 8` rows, a
/// running tail for the rest, the fixed combine), so the result is bitwise what summing the
/// transposed rows gives, without building the transpose: rows are read in memory order,
/// `COLUMN_BLOCK` columns at a time.
pub(crate) fn sum_middle_axis<T: FloatElem>(x: &[T], outer: usize, red: usize, inner: usize) -> Vec<T> {
    assert_eq!(x.len(), outer * red * inner, "sum_middle_axis: buffer length");
    let mut out = vec![T::zero(); outer * inner];
    if inner == 0 {
        return out;
    }
    let block_sums = |o: usize, j0: usize, dst: &mut [T]| {
        let w = dst.len();
        let mut lanes = [[T::zero(); COLUMN_BLOCK]; 8];
        let mut tail = [T::zero(); COLUMN_BLOCK];
        let full = red - red % 8;
        for r in 0..red {
            let row = &x[(o * red + r) * inner + j0..][..w];
            let acc = if r < full { &mut lanes[r % 8][..w] } else { &mut tail[..w] };
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
        for (j, d) in dst.iter_mut().enumerate() {
            *d = combine_lanes(std::array::from_fn(|l| lanes[l][j]), tail[j]);
        }
    };
    let per_output = |(o, dst): (usize, &mut [T])| {
        for (b, chunk) in dst.chunks_mut(COLUMN_BLOCK).enumerate() {
            block_sums(o, b * COLUMN_BLOCK, chunk);
        }
    };
    if x.len() < PAR_MIN_ELEMS {
        out.chunks_mut(inner).enumerate().for_each(per_output);
    } else {
        // One task per (outer index, column block): every column's sum is the same whichever
        // task computes it, so the split does not change the result.
        out.par_chunks_mut(inner).enumerate().for_each(|(o, dst)| {
            dst.par_chunks_mut(COLUMN_BLOCK).enumerate().for_each(|(b, chunk)| block_sums(o, b * COLUMN_BLOCK, chunk));
        });
    }
    out
}

/// `op` over one row.
pub(crate) fn reduce_row<T: FloatElem>(op: ReduceOp, row: &[T]) -> T {
    let n = T::c(row.len() as f64);
    match op {
        ReduceOp::Sum => sum_slice(row),
        ReduceOp::Mean => sum_slice(row) / n,
        ReduceOp::Max => row.iter().copied().fold(T::neg_infinity(), |a, b| if b > a || b.is_nan() { b } else { a }),
        ReduceOp::Min => row.iter().copied().fold(T::infinity(), |a, b| if b < a || b.is_nan() { b } else { a }),
        ReduceOp::Var { unbiased } => {
            let mean = sum_slice(row) / n;
            let ss = sum_by(row, |x| (x - mean) * (x - mean));
            ss / (n - if unbiased { T::one() } else { T::zero() })
        }
        ReduceOp::LogSumExp => {
            let m = reduce_row(ReduceOp::Max, row);
            if m.is_infinite() {
                return m;
            }
            m + row.iter().fold(T::zero(), |a, &x| a + (x - m).exp()).ln()
        }
    }
}

/// Applies `f` to each row in parallel (above a size threshold) and collects one value each.
pub(crate) fn map_rows<T: Sync, U: Send + Default + Copy>(data: &[T], inner: usize, outer: usize, f: impl Fn(&[T]) -> U + Sync) -> Vec<U> {
    let mut out = vec![U::default(); outer];
    if inner == 0 {
        for o in out.iter_mut() {
            *o = f(&[]);
        }
        return out;
    }
    if data.len() < PAR_MIN_ELEMS || outer == 1 {
        for (o, row) in out.iter_mut().zip(data.chunks(inner)) {
            *o = f(row);
        }
    } else {
        out.par_iter_mut().zip(data.par_chunks(inner)).for_each(|(o, row)| *o = f(row));
    }
    out
}
