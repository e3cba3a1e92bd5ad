//! The counter-based draws on the host. Value `i` of a draw is a pure function of
//! `(seed, start + i)` (normals take two counters each), so results do not depend on the
//! thread count, and ptx/kernels/random.cu computes the same functions bit for bit.

mod portable_math;

use super::strided;
use crate::dtype::Element;

/// A strong 64-bit mix (SplitMix64's finalizer) of a counter under a key.
#[inline(always)]
pub(crate) fn mix(key: u64, counter: u64) -> u64 {
    let mut z = key ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform f64 in [0, 1) from 53 random bits.
#[inline(always)]
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `[0, range)` from 64 random bits: the high half of their product
/// with `range`, which needs no division.
#[inline(always)]
pub(crate) fn below(bits: u64, range: u64) -> u64 {
    ((bits as u128 * range as u128) >> 64) as u64
}

/// A standard normal from counters `c` and `c + 1`. `ln` and `cos` are our own (see
/// `portable_math`): the GPU kernel repeats them operation for operation.
#[inline(always)]
pub(crate) fn box_muller(seed: u64, c: u64) -> f64 {
    let u1 = unit(mix(seed, c));
    let u2 = unit(mix(seed, c.wrapping_add(1)));
    (-2.0 * portable_math::ln(1.0 - u1)).sqrt() * portable_math::cos(std::f64::consts::TAU * u2)
}

/// `f(i)` for `i` in `0..n`, in parallel when long.
fn draw<U: Send + Default + Copy>(n: usize, f: impl Fn(u64) -> U + Sync) -> Vec<U> {
    let idx: Vec<u64> = (0..n as u64).collect();
    strided::map(&idx, f)
}

/// `n` uniform values in [0, 1) from counters `start..start + n`.
fn units(seed: u64, start: u64, n: usize) -> Vec<f64> {
    draw(n, move |i| unit(mix(seed, start.wrapping_add(i))))
}

/// `n` uniform values in `[low, high)`, counters `start..start + n`.
pub(crate) fn uniform<T: Element>(seed: u64, start: u64, n: usize, low: f64, high: f64) -> Vec<T> {
    units(seed, start, n).iter().map(|&x| T::from_f64(low + (high - low) * x)).collect()
}

/// `n` normal values, counters `start..start + 2n`.
pub(crate) fn normal<T: Element>(seed: u64, start: u64, n: usize, mean: f64, std: f64) -> Vec<T> {
    let z = draw(n, move |i| box_muller(seed, start.wrapping_add(2 * i)));
    z.iter().map(|&x| T::from_f64(mean + std * x)).collect()
}

/// `n` normal values within `[a, b]` standard deviations of the mean, by resampling from
/// counter `start` on; also returns how many counters that consumed (two per try).
pub(crate) fn trunc_normal<T: Element>(seed: u64, start: u64, n: usize, mean: f64, std: f64, a: f64, b: f64) -> (Vec<T>, u64) {
    let mut out = Vec::with_capacity(n);
    let mut c = start;
    while out.len() < n {
        let z = box_muller(seed, c);
        c = c.wrapping_add(2);
        if z >= a && z <= b {
            out.push(mean + std * z);
        }
    }
    (out.iter().map(|&x| T::from_f64(x)).collect(), c.wrapping_sub(start))
}

/// `n` u8 values, 1 with probability `p`, counters `start..start + n`.
pub(crate) fn bernoulli(seed: u64, start: u64, n: usize, p: f64) -> Vec<u8> {
    units(seed, start, n).iter().map(|&x| (x < p) as u8).collect()
}

/// `n` uniform integers in `[low, low + range)`, counters `start..start + n`.
pub(crate) fn randint(seed: u64, start: u64, n: usize, low: i64, range: u64) -> Vec<i64> {
    draw(n, move |i| low + below(mix(seed, start.wrapping_add(i)), range) as i64)
}
