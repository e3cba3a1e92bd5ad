//! `ln` and `cos` for the normal draws, built from `+ − × ÷` in a fixed order, so that the
//! GPU kernel (ptx/kernels/random.cu, which repeats every operation with explicitly rounded
//! intrinsics) gives the very same bits, and so that draws do not depend on the platform's
//! libm. Both stay within one ulp of the correctly rounded result on the domains the
//! generator uses (see the tests).

const SQRT2: f64 = std::f64::consts::SQRT_2;
/// ln 2 = `LN2_HI + LN2_LO`; `LN2_HI` has 32 significant bits, so `k · LN2_HI` is exact.
const LN2_HI: f64 = 0.6931471803691238;
const LN2_LO: f64 = 1.9082149292705877e-10;
const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
/// π/2 = `P1 + P2 + P3`; `P1` and `P2` have 33 significant bits, so `n · P1` and `n · P2` are
/// exact for the small `n` of our reduction.
const P1: f64 = 1.5707963267341256;
const P2: f64 = 6.077100506303966e-11;
const P3: f64 = 2.0222662487959506e-21;

/// Natural log of a positive normal `x`. With `x = 2^k · m`, `m` in (√2/2, √2] and
/// `f = m − 1`, `s = f / (2 + f)`: `ln m = 2 atanh s = f − s·(f − R)` where `R` is the series
/// `Σ 2/(2j+1) · s^(2j)` (j ≥ 1), which its ten terms give to far below an ulp since
/// `s² < 0.03`.
pub(super) fn ln(x: f64) -> f64 {
    let b = x.to_bits();
    let mut k = ((b >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((b & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > SQRT2 {
        m *= 0.5;
        k += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut r = 2.0 / 21.0;
    for c in [2.0 / 19.0, 2.0 / 17.0, 2.0 / 15.0, 2.0 / 13.0, 2.0 / 11.0, 2.0 / 9.0, 2.0 / 7.0, 2.0 / 5.0, 2.0 / 3.0] {
        r = c + z * r;
    }
    let r = z * r;
    // f − s·(f − R) written as f − (f²/2 − s·(f²/2 + R)), whose rounding errors stay small.
    let hfsq = 0.5 * f * f;
    let dk = k as f64;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// cos on [−π/4, π/4]: `1 − z/2 + z²·P(z)` (z = r²) with the rounding error of `1 − z/2`
/// added back.
fn cos_kernel(r: f64) -> f64 {
    let z = r * r;
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let mut p = 1.0 / 20922789888000.0; // 1/16!
    for c in [-1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0] {
        p = c + z * p;
    }
    w + (((1.0 - w) - hz) + (z * z) * p)
}

/// sin on [−π/4, π/4]: `r + r·z·P(z)`.
fn sin_kernel(r: f64) -> f64 {
    let z = r * r;
    let mut p = 1.0 / 355687428096000.0; // 1/17!
    for c in [-1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0] {
        p = c + z * p;
    }
    r + (r * z) * p
}

/// cos of `x` in [0, 8) (the generator's angles lie in [0, 2π]): reduced by the nearest
/// multiple `n` of π/2, in three exact-ish steps.
pub(super) fn cos(x: f64) -> f64 {
    let dn = (x * TWO_OVER_PI + 0.5).floor();
    let r = ((x - dn * P1) - dn * P2) - dn * P3;
    match dn as i64 & 3 {
        0 => cos_kernel(r),
        1 => -sin_kernel(r),
        2 => -cos_kernel(r),
        _ => sin_kernel(r),
    }
}

#[cfg(test)]
mod tests {
    /// Distance in ulps between two finite doubles.
    fn ulps(a: f64, b: f64) -> u64 {
        let key = |x: f64| {
            let b = x.to_bits() as i64;
            if b < 0 {
                i64::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(b))
    }

    /// The generator's own inputs: `1 − u` and `2π·u` for `u` a multiple of 2⁻⁵³ in [0, 1).
    fn units() -> impl Iterator<Item = f64> {
        let edges = [0.0, 0.5, 0.25, 0.75, 1.0 - 1.0 / (1u64 << 53) as f64, 1.0 / (1u64 << 53) as f64];
        let mut state = 12345u64;
        let random = std::iter::repeat_with(move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        });
        edges.into_iter().chain(random.take(200_000))
    }

    #[test]
    fn ln_is_within_an_ulp_of_the_libm_one() {
        for u in units() {
            let x = 1.0 - u;
            assert!(ulps(super::ln(x), x.ln()) <= 1, "ln({x:e}) = {} vs {}", super::ln(x), x.ln());
        }
        for x in [1.0, 2.0, 0.5, std::f64::consts::E, 1e-300, 1e300, f64::MIN_POSITIVE, f64::MAX] {
            assert!(ulps(super::ln(x), x.ln()) <= 1, "ln({x:e})");
        }
        assert_eq!(super::ln(1.0), 0.0);
    }

    #[test]
    fn cos_is_within_an_ulp_of_the_libm_one() {
        for u in units() {
            let x = std::f64::consts::TAU * u;
            assert!(ulps(super::cos(x), x.cos()) <= 1, "cos({x:e}) = {} vs {}", super::cos(x), x.cos());
        }
        for x in [0.0, 1e-300, 1e-8, 0.785, 7.9] {
            assert!(ulps(super::cos(x), x.cos()) <= 1, "cos({x:e})");
        }
        // Near the zeros, compare absolute errors: an ulp of the tiny result means nothing.
        for k in 1..=4 {
            let x = k as f64 * std::f64::consts::FRAC_PI_2;
            assert!((super::cos(x) - x.cos()).abs() < 1e-30, "cos({x})");
        }
    }
}
