//! Row reductions on the host: the deterministic sums every CPU kernel uses (eight lanes,
//! then a fixed combine, so a result depends only on the length) and each [`ReduceOp`] over
//! one contiguous row.

use crate::cpu::vmath::{dispatch, VmathIsa};
use crate::cpu::PAR_MIN_ELEMS;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;
use crate::kinds::ReduceOp;
use rayon::prelude::*;
use std::ops::Range;

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

/// `out[o, j] = Σ_r x[o, r, j]` over a contiguous `[outer, red, inner]` buffer: a reduction
/// whose reduced axes sit in front of contiguous kept ones (a bias gradient summing
/// `[rows, features]` over its rows, a mean over the tokens of `[N, L, D]`). Each sum runs in
/// [`sum_slice`]'s order over `r` (lane `r mod 8` for the first `red − red mod 8` rows, a
/// running tail for the rest, the fixed combine), so the result is bitwise what summing the
/// transposed rows gives, without building the transpose.
///
/// Rows are read whole, in memory order (reading part of each row measured 2–3× slower: the
/// prefetchers follow whole rows). With fewer outer indices than threads, the eight lanes are
/// split between tasks (two threads: lanes 0–3 and 4–7, each reading runs of four rows): a
/// lane's sum is the same whichever task computes it, so the split does not change the result.
pub(crate) fn sum_middle_axis<T: FloatElem>(x: &[T], outer: usize, red: usize, inner: usize) -> Vec<T> {
    assert_eq!(x.len(), outer * red * inner, "sum_middle_axis: buffer length");
    let mut out = vec![T::zero(); outer * inner];
    if inner == 0 {
        return out;
    }
    let full = red - red % 8;
    let isa = VmathIsa::selected();
    let lane_sums = |o: usize, lanes: Range<usize>, acc: &mut [T]| {
        dispatch!(isa, || add_lane_rows(&x[o * red * inner..][..full * inner], inner, lanes, acc))
    };
    // The tail rows and the fixed combine of the eight lane rows (`lanes`: 8 × inner).
    let finish = |o: usize, lanes: &[T], dst: &mut [T]| {
        for (j, d) in dst.iter_mut().enumerate() {
            let tail = (full..red).fold(T::zero(), |t, r| t + x[(o * red + r) * inner + j]);
            *d = combine_lanes(std::array::from_fn(|l| lanes[l * inner + j]), tail);
        }
    };
    let threads = rayon::current_num_threads();
    let whole = |acc: &mut Vec<T>, (o, dst): (usize, &mut [T])| {
        acc.fill(T::zero());
        lane_sums(o, 0..8, acc);
        finish(o, acc, dst);
    };
    if x.len() < PAR_MIN_ELEMS || threads == 1 {
        let mut acc = vec![T::zero(); 8 * inner];
        out.chunks_mut(inner).enumerate().for_each(|job| whole(&mut acc, job));
    } else if outer >= threads {
        out.par_chunks_mut(inner).enumerate().for_each_init(|| vec![T::zero(); 8 * inner], whole);
    } else {
        let groups = (threads / outer).next_power_of_two().min(8);
        let per = 8 / groups;
        let mut partial = vec![T::zero(); outer * 8 * inner];
        partial
            .par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(t, acc)| lane_sums(t / groups, t % groups * per..(t % groups + 1) * per, acc));
        out.par_chunks_mut(inner).zip(partial.par_chunks(8 * inner)).enumerate().for_each(|(o, (dst, lanes))| finish(o, lanes, dst));
    }
    out
}

/// Adds row `c + l` of `x` (rows of `inner`), for every chunk start `c` (a multiple of 8) and
/// each lane `l` of `lanes`, into that lane's accumulator row of `acc` (one `inner`-long row
/// per lane, in order). Always inlined, so each `dispatch!` copy vectorizes it.
#[inline(always)]
fn add_lane_rows<T: FloatElem>(x: &[T], inner: usize, lanes: Range<usize>, acc: &mut [T]) {
    for chunk in x.chunks_exact(8 * inner) {
        for (l, a) in lanes.clone().zip(acc.chunks_exact_mut(inner)) {
            for (a, &v) in a.iter_mut().zip(&chunk[l * inner..][..inner]) {
                *a += v;
            }
        }
    }
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
