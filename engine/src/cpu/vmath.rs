//! Branch-free f32 transcendentals for elementwise kernels: `exp`, the normal CDF `Φ` and
//! exact (erf) GELU with its derivative.
//!
//! `f32::exp` and `libm::erf` are scalar library calls, so a loop that calls them per element
//! cannot vectorize; these are plain arithmetic, integer bit tricks and selects (no calls, no
//! branches), which LLVM vectorizes. The slice kernels at the bottom are compiled three times
//! on x86-64, for the baseline target, with AVX2 + FMA (8 lanes) and with AVX-512F (16 lanes),
//! the widest the CPU runs chosen at run time (`TESSERA_VMATH_ISA=avx2|portable` caps it).
//! Rust never contracts `a * b + c` into a fused multiply-add on its own; the polynomials'
//! steps ask for one explicitly ([`fma`]), which every copy computes exactly (an instruction
//! in the wide copies, libm's `fmaf` in the baseline one), so the copies agree bit for bit:
//! results depend neither on the CPU nor on the thread count.
//!
//! Accuracy (measured by the tests at the bottom over a dense sweep, against f64 references):
//! `exp` within 1 ulp for normal results (the tests allow 2), correctly flushed in the
//! subnormal range and to infinity past overflow; `Φ` within 3.9e-7 relative, both tails
//! included (the erfc fit is good to 1.05e-7, the rest is f32 rounding); GELU within 4.0e-7
//! relative; its derivative within 1.5e-7 absolute everywhere and 1.4e-6 relative where
//! |GELU'| ≥ 0.05 (it crosses zero at x ≈ -0.75, where only the absolute bound means much).

use std::mem::MaybeUninit;

/// 1.5 · 2^23: adding it to a float of magnitude below 2^22 rounds to an integer (ties to
/// even), and the result's low mantissa bits are that integer in two's complement.
const ROUND_MAGIC: f32 = 12_582_912.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split for Cody–Waite range reduction: `LN2_HI` has 9 significant bits, so `n · LN2_HI`
/// is exact for the |n| ≤ 151 used here; `LN2_HI + LN2_LO` is ln 2 to about 1e-11.
// Written out in full: the exact binary value, which the shortest literal would hide.
#[allow(clippy::excessive_precision)]
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this exp(x) rounds to 0 in f32 (e^-104 ≈ 6.8e-46, under half the least subnormal).
const EXP_MIN: f32 = -104.0;
/// Above this exp(x) overflows to infinity (e^89 > f32::MAX).
const EXP_MAX: f32 = 89.0;

/// `a·b + c` rounded once. On x86-64 the slice kernels run in copies compiled with FMA
/// (AVX2 + FMA, AVX-512F), where this is one instruction per lane; the baseline copy calls
/// libm's exact `fmaf`, slower but the same bits, so every copy still agrees bit for bit.
/// Fusing the polynomials' steps took 30% of GELU's arithmetic away.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `x` clamped into `[lo, hi]`, written as compares and selects so that a NaN passes through
/// (`f32::max`/`min` would replace it by the bound).
#[inline(always)]
fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// 2^n for integer n in [-252, 254] as a product of two normal powers of two, so that
/// `p · s.0 · s.1` rounds once, also into the subnormal range, and overflows to infinity
/// above f32::MAX.
#[inline(always)]
fn pow2_split(n: i32) -> (f32, f32) {
    let n1 = n >> 1;
    let n2 = n - n1;
    (f32::from_bits(((n1 + 127) << 23) as u32), f32::from_bits(((n2 + 127) << 23) as u32))
}

/// e^(hi + lo), where `hi` is exact and `lo` a small correction (|lo| of order 1); the sum is
/// never formed in f32 except to pick n, so its rounding error does not enter the result.
/// `hi` must be clamped into [EXP_MIN, EXP_MAX] by the caller (or NaN).
#[inline(always)]
fn exp_hi_lo(hi: f32, lo: f32) -> f32 {
    // n = round((hi + lo) / ln 2); r = hi + lo - n ln 2 lies in about [-0.35, 0.35].
    let k = (hi + lo) * LOG2_E + ROUND_MAGIC;
    let n = k - ROUND_MAGIC;
    let r = (hi - n * LN2_HI) + (lo - n * LN2_LO);
    // e^r = 1 + r + r² P(r): Cephes' expf polynomial, relative error 1.1e-9 on |r| ≤ 0.35.
    let mut p = 1.987_569_1e-4f32;
    p = fma(p, r, 1.398_199_9e-3);
    p = fma(p, r, 8.333_452e-3);
    p = fma(p, r, 4.166_579_6e-2);
    p = fma(p, r, 1.666_666_5e-1);
    p = fma(p, r, 5e-1);
    let er = fma(p, r * r, r) + 1.0;
    // k lies in [2^23, 2^24), where the ulp is 1, so its bits minus the magic's bits are n.
    let ni = k.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let (s1, s2) = pow2_split(ni);
    er * s1 * s2
}

/// e^x in f32: within 2 ulp of the true value for x in [-87.3, 88.7] (normal results),
/// correctly flushed to 0 below -103.97 and to infinity above 88.73, NaN in → NaN out.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_hi_lo(clamp_keep_nan(x, EXP_MIN, EXP_MAX), 0.0)
}

/// Where Φ has rounded to 0 (x ≤ -15: Φ ≈ 3.7e-51) or to 1 in f32, so |x| is clamped to it.
/// This keeps every intermediate finite and the error terms of -x²/2 small.
const PHI_CLAMP: f32 = 15.0;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `(t, hi, lo)` for a = min(|x|, PHI_CLAMP): t = 1/(1 + a/(2√2)) and `hi + lo = -a²/2`, with
/// `hi` exact. -a²/2 is the exponent of both the erfc and the normal density, and its
/// absolute rounding error becomes a relative error of theirs: a plain `a * a` in f32 would
/// cost 6e-8 · a²/2, 7e-6 at a = 15. So a is split into `ah` (its top 12 significand bits,
/// whose square is exact in f32) and `al = a - ah` (exact), and a² = ah² + al (a + ah).
#[inline(always)]
fn phi_parts(x: f32) -> (f32, f32, f32) {
    let a = clamp_keep_nan(x.abs(), 0.0, PHI_CLAMP);
    let ah = f32::from_bits(a.to_bits() & 0xffff_f000);
    let al = a - ah;
    let hi = -0.5 * (ah * ah);
    let lo = -0.5 * (al * (a + ah));
    let t = 1.0 / (1.0 + 0.5 * (a * FRAC_1_SQRT_2));
    (t, hi, lo)
}

/// erfc(a/√2) = t · exp(-a²/2 + P(t)): Numerical Recipes' `erfcc` (Chebyshev fit, fractional
/// error below 1.2e-7 for all arguments; 1.05e-7 measured on [0, 15]). Evaluated in f32,
/// Φ's worst relative error measures 3.9e-7: the fit's, exp's ulp and the roundings of the
/// Horner steps (the coefficients alternate in sign up to 1.5). Evaluating P in f64 was tried
/// and only brought that to 2.8e-7, so it stays f32.
#[inline(always)]
fn erfc_scaled(t: f32, hi: f32, lo: f32) -> f32 {
    let mut p = 0.170_872_77f32;
    p = fma(p, t, -0.822_152_23);
    p = fma(p, t, 1.488_515_9);
    p = fma(p, t, -1.135_204);
    p = fma(p, t, 0.278_868_07);
    p = fma(p, t, -0.186_288_06);
    p = fma(p, t, 0.096_784_18);
    p = fma(p, t, 0.374_091_96);
    p = fma(p, t, 1.000_023_7);
    p = fma(p, t, -1.265_512_2);
    t * exp_hi_lo(hi, lo + p)
}

/// Φ(x) (the normal CDF) from the parts of [`phi_parts`]. Φ is taken as
/// erfc(|x|/√2)/2 for x < 0 so the negative tail keeps its relative accuracy.
#[inline(always)]
fn cdf_from_parts(x: f32, t: f32, hi: f32, lo: f32) -> f32 {
    let half_q = 0.5 * erfc_scaled(t, hi, lo);
    if x < 0.0 {
        half_q
    } else {
        1.0 - half_q
    }
}

/// The standard normal CDF Φ(x) in f32 (NaN in → NaN out).
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let (t, hi, lo) = phi_parts(x);
    cdf_from_parts(x, t, hi, lo)
}

/// Exact GELU `x · Φ(x)`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// d/dx GELU = Φ(x) + x φ(x), φ(x) = e^(-x²/2)/√(2π). For |x| ≥ 15 (clamped), x φ(x) is 0 in
/// f32 anyway (< 1e-48), and NaN propagates as in the libm path.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    gelu_and_grad(x).1
}

/// `(GELU(x), GELU'(x))` from one evaluation of Φ: the two share the erfc fit, so a pass that
/// needs both (a layer that recomputes its activation in its backward) pays for one. The same
/// bits as [`gelu`] and [`gelu_grad`] (the same steps on the same values).
#[inline(always)]
pub fn gelu_and_grad(x: f32) -> (f32, f32) {
    let (t, hi, lo) = phi_parts(x);
    let cdf = cdf_from_parts(x, t, hi, lo);
    let pdf = exp_hi_lo(hi, lo) * FRAC_1_SQRT_2PI;
    (x * cdf, cdf + x * pdf)
}

/// The copy of the slice kernels that runs, widest first (the order is what `<` compares).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum VmathIsa {
    /// 16 lanes (x86-64 with AVX-512F).
    Avx512,
    /// 8 lanes with FMA available (x86-64 with AVX2 and FMA).
    Avx2,
    /// The baseline target.
    Portable,
}

impl VmathIsa {
    /// The copies this CPU runs, widest first (always ending with [`VmathIsa::Portable`]).
    pub fn available() -> Vec<VmathIsa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(VmathIsa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(VmathIsa::Avx2);
            }
        }
        v.push(VmathIsa::Portable);
        v
    }

    /// The copy the kernels use: the widest available, capped by `TESSERA_VMATH_ISA`
    /// (`avx512`, `avx2` or `portable`, read once per process; an unknown value is ignored).
    pub fn selected() -> VmathIsa {
        static CHOICE: std::sync::OnceLock<VmathIsa> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let cap = match std::env::var("TESSERA_VMATH_ISA").as_deref() {
                Ok("avx2") => VmathIsa::Avx2,
                Ok("portable") => VmathIsa::Portable,
                _ => VmathIsa::Avx512,
            };
            cap.or_below()
        })
    }

    /// This copy if the CPU runs it, else the best one below it. Cheap: every `dispatch!`
    /// asks, per row or channel, so the CPU is probed once per process.
    pub fn or_below(self) -> VmathIsa {
        static AVAILABLE: std::sync::OnceLock<Vec<VmathIsa>> = std::sync::OnceLock::new();
        AVAILABLE.get_or_init(VmathIsa::available).iter().copied().find(|&i| i >= self).unwrap_or(VmathIsa::Portable)
    }
}

/// Runs `$call` compiled for `$isa` (or the best copy below it this CPU runs): the same loop
/// with AVX-512F or AVX2 + FMA enabled.
macro_rules! dispatch {
    ($isa:expr, || $call:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            match $isa.or_below() {
                // SAFETY: or_below() only returns an ISA this CPU was detected to run.
                VmathIsa::Avx512 => unsafe { avx512(|| $call) },
                VmathIsa::Avx2 => unsafe { avx2(|| $call) },
                VmathIsa::Portable => $call,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $call
        }
    }};
}

pub(crate) use dispatch;

/// Defines a slice kernel `$name(inputs…, out)` running `$body` per element in the copy
/// [`VmathIsa::selected`] names, and `$with(isa, inputs…, out)` in a given one (for tests
/// and benchmarks that compare them). The element functions above are `#[inline(always)]`,
/// so each copy gets its own vectorized loop.
macro_rules! slice_kernel {
    ($(#[$doc:meta])* $name:ident, $with:ident, $portable:ident, |$($x:ident),+| $body:expr) => {
        $(#[$doc])*
        pub fn $name($($x: &[f32],)+ out: &mut [MaybeUninit<f32>]) {
            $with(VmathIsa::selected(), $($x,)+ out)
        }

        /// The kernel of the same name without the `_with` suffix, in the copy `isa` (or the
        /// best one below it that this CPU runs).
        pub fn $with(isa: VmathIsa, $($x: &[f32],)+ out: &mut [MaybeUninit<f32>]) {
            dispatch!(isa, || $portable($($x,)+ out))
        }

        /// The loop of the kernel of the same name without the `_portable` suffix, for the
        /// baseline target (and inlined into its wider copies).
        #[inline(always)]
        pub fn $portable($($x: &[f32],)+ out: &mut [MaybeUninit<f32>]) {
            let n = out.len();
            $(let $x = &$x[..n];)+
            for i in 0..n {
                $(let $x = $x[i];)+
                out[i].write($body);
            }
        }
    };
}

slice_kernel!(
    /// `out[i] = GELU(x[i])` (exact, erf form).
    gelu_slice, gelu_slice_with, gelu_slice_portable, |x| gelu(x)
);
slice_kernel!(
    /// `out[i] = g[i] · GELU'(x[i])`: the backward of [`gelu_slice`].
    gelu_backward_slice, gelu_backward_slice_with, gelu_backward_slice_portable, |x, g| g * gelu_grad(x)
);

slice_kernel!(
    /// `out[i] = e^x[i]`.
    exp_slice, exp_slice_with, exp_slice_portable, |x| exp(x)
);

/// `y[i] = GELU(x[i])` and `dx[i] = g[i] · GELU'(x[i])` in one pass: [`gelu_slice`] and
/// [`gelu_backward_slice`] at the price of the second alone (the bits of both).
pub fn gelu_and_backward_slice(x: &[f32], g: &[f32], y: &mut [MaybeUninit<f32>], dx: &mut [MaybeUninit<f32>]) {
    gelu_and_backward_slice_with(VmathIsa::selected(), x, g, y, dx)
}

/// [`gelu_and_backward_slice`] in the copy `isa` (or the best one below it this CPU runs).
pub fn gelu_and_backward_slice_with(isa: VmathIsa, x: &[f32], g: &[f32], y: &mut [MaybeUninit<f32>], dx: &mut [MaybeUninit<f32>]) {
    #[inline(always)]
    fn portable(x: &[f32], g: &[f32], y: &mut [MaybeUninit<f32>], dx: &mut [MaybeUninit<f32>]) {
        let n = y.len();
        let (x, g, dx) = (&x[..n], &g[..n], &mut dx[..n]);
        for i in 0..n {
            let (value, slope) = gelu_and_grad(x[i]);
            y[i].write(value);
            dx[i].write(g[i] * slope);
        }
    }
    dispatch!(isa, || portable(x, g, y, dx))
}

/// `out[i] = e^(x[i] - shift)`: softmax's numerators, shifted by the row maximum (into an
/// initialized row, unlike the kernels above).
pub fn exp_shifted_slice(x: &[f32], shift: f32, out: &mut [f32]) {
    #[inline(always)]
    fn portable(x: &[f32], shift: f32, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = exp(v - shift);
        }
    }
    dispatch!(VmathIsa::selected(), || portable(x, shift, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 1e-3 over [-10, 10], then the extremes and special values.
    fn sweep() -> Vec<f32> {
        let mut v: Vec<f32> = (-10_000..=10_000).map(|i| i as f32 * 1e-3).collect();
        v.extend([
            -87.0,
            87.0,
            -88.7,
            88.7,
            -103.0,
            -15.0,
            15.0,
            -20.0,
            20.0,
            -1e4,
            1e4,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-30,
            -1e-30,
        ]);
        v
    }

    /// The f64 references.
    fn phi64(x: f64) -> f64 {
        0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
    }
    fn pdf64(x: f64) -> f64 {
        (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    /// Distance in ulps between an f32 and the f64 value rounded to f32.
    fn ulps(got: f32, want: f64) -> i64 {
        let w = want as f32;
        let key = |v: f32| {
            let b = v.to_bits() as i32 as i64;
            if b < 0 {
                i32::MIN as i64 - b
            } else {
                b
            }
        };
        (key(got) - key(w)).abs()
    }

    #[test]
    fn exp_within_two_ulp_from_subnormal_to_overflow() {
        let mut worst = 0;
        let mut xs: Vec<f32> = (-104_000..=89_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend([-87.33655, 88.72283, 88.7229, -103.97, -103.98, 1e-8, -1e-8, 0.0, -0.0]);
        for &x in &xs {
            let want = (x as f64).exp();
            let got = exp(x);
            if want < f32::MIN_POSITIVE as f64 {
                // Subnormal results carry fewer bits: compare absolutely, to a least subnormal.
                assert!((got as f64 - want).abs() <= 1.5e-45, "exp({x}) = {got}, want {want}");
            } else if want > f32::MAX as f64 {
                assert_eq!(got, f32::INFINITY, "exp({x}) overflows");
            } else {
                let u = ulps(got, want);
                assert!(u <= 2, "exp({x}) = {got}, want {want} ({u} ulp)");
                worst = worst.max(u);
            }
        }
        println!("exp: worst {worst} ulp");
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn normal_cdf_keeps_relative_accuracy_in_both_tails() {
        let mut worst = 0f64;
        for x in sweep().into_iter().chain((-14_000..=-10_000).map(|i| i as f32 * 1e-3)) {
            let want = phi64(x as f64);
            let got = normal_cdf(x) as f64;
            if want < 1e-36 {
                // Near the subnormal range: absolute.
                assert!((got - want).abs() < 1e-42, "Φ({x}) = {got}, want {want}");
                continue;
            }
            let rel = ((got - want) / want).abs();
            assert!(rel < 6e-7, "Φ({x}) = {got}, want {want} (rel {rel:e})");
            worst = worst.max(rel);
        }
        println!("Φ: worst rel {worst:e}");
        assert!(normal_cdf(f32::NAN).is_nan());
        assert_eq!(normal_cdf(f32::INFINITY), 1.0);
        assert_eq!(normal_cdf(f32::NEG_INFINITY), 0.0);
    }

    /// The Numerical Recipes erfc approximation itself, evaluated in f64: its stated bound.
    #[test]
    fn erfc_approximation_meets_its_stated_bound() {
        let c =
            [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];
        let mut worst = 0f64;
        for i in 0..=15_000 {
            let z = i as f64 * 1e-3;
            let t = 1.0 / (1.0 + 0.5 * z);
            let p = c.iter().rev().fold(0.0, |p, &a| p * t + a);
            let rel = (t * (-z * z + p).exp() / libm::erfc(z) - 1.0).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1.2e-7, "erfc fit: {worst:e}");
    }

    /// GELU: relative error below 5e-7 wherever the value is a normal f32 (the tail included).
    /// Its derivative crosses zero at x ≈ -0.7518, where Φ(x) and x φ(x) (both about 0.22)
    /// cancel: there the error is absolute, below 2e-7 (Φ's 3.9e-7 relative error on Φ ≤ 0.5;
    /// one ulp of 1 is 1.2e-7); relative below 2e-6 where |GELU'| ≥ 0.05.
    #[test]
    fn gelu_and_derivative_match_f64() {
        let (mut worst_f, mut worst_b, mut worst_b_abs) = (0f64, 0f64, 0f64);
        for x in sweep() {
            let xd = x as f64;
            let want = xd * phi64(xd);
            let got = gelu(x) as f64;
            if want.abs() > 1e-37 {
                let rel = ((got - want) / want).abs();
                assert!(rel < 5e-7, "gelu({x}) = {got}, want {want} (rel {rel:e})");
                worst_f = worst_f.max(rel);
            } else {
                assert!((got - want).abs() < 1e-43, "gelu({x}) = {got}, want {want}");
            }
            let want = phi64(xd) + xd * pdf64(xd);
            let got = gelu_grad(x) as f64;
            let (err, rel) = ((got - want).abs(), ((got - want) / want).abs());
            assert!(err < 2e-7, "gelu'({x}) = {got}, want {want} (err {err:e})");
            assert!(want.abs() < 0.05 || rel < 2e-6, "gelu'({x}) = {got}, want {want} (rel {rel:e})");
            worst_b_abs = worst_b_abs.max(err);
            if want.abs() >= 0.05 {
                worst_b = worst_b.max(rel);
            }
        }
        println!("gelu: worst rel {worst_f:e}; gelu': worst abs {worst_b_abs:e}, worst rel {worst_b:e} where |gelu'| >= 0.05");
        assert!(gelu(f32::NAN).is_nan() && gelu_grad(f32::NAN).is_nan());
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
        assert_eq!(gelu(-1e4), 0.0);
        assert_eq!(gelu_grad(1e4), 1.0);
        assert_eq!(gelu_grad(-1e4), 0.0);
    }

    /// Every copy this CPU runs (AVX-512, AVX2, baseline) and the portable loop agree bit
    /// for bit.
    #[test]
    fn slice_kernels_match_the_portable_loop_bitwise() {
        let x = sweep();
        let g: Vec<f32> = x.iter().map(|v| 1.0 - 0.3 * v).collect();
        let run = |f: &dyn Fn(&mut [MaybeUninit<f32>])| {
            let mut out = vec![MaybeUninit::new(f32::NAN); x.len()];
            f(&mut out);
            out.into_iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect::<Vec<_>>()
        };
        let gelu_want = run(&|o| gelu_slice_portable(&x, o));
        assert_eq!(gelu_want, x.iter().map(|&v| gelu(v).to_bits()).collect::<Vec<_>>());
        let back_want = run(&|o| gelu_backward_slice_portable(&x, &g, o));
        let exp_want = run(&|o| exp_slice_portable(&x, o));
        for isa in VmathIsa::available() {
            assert_eq!(run(&|o| gelu_slice_with(isa, &x, o)), gelu_want, "{isa:?}");
            assert_eq!(run(&|o| gelu_backward_slice_with(isa, &x, &g, o)), back_want, "{isa:?}");
            assert_eq!(run(&|o| exp_slice_with(isa, &x, o)), exp_want, "{isa:?}");
        }
        assert_eq!(run(&|o| gelu_slice(&x, o)), gelu_want);
        // The fused pass writes both outputs with the bits of the two kernels.
        let bits = |v: Vec<MaybeUninit<f32>>| v.into_iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect::<Vec<_>>();
        for isa in VmathIsa::available() {
            let (mut y, mut dx) = (vec![MaybeUninit::new(f32::NAN); x.len()], vec![MaybeUninit::new(f32::NAN); x.len()]);
            gelu_and_backward_slice_with(isa, &x, &g, &mut y, &mut dx);
            assert_eq!(bits(y), gelu_want, "{isa:?}");
            assert_eq!(bits(dx), back_want, "{isa:?}");
        }
        let mut shifted = vec![0.0; x.len()];
        exp_shifted_slice(&x, 0.5, &mut shifted);
        assert!(shifted.iter().zip(&x).all(|(s, &v)| s.to_bits() == exp(v - 0.5).to_bits()));
    }
}
