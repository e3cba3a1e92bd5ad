// Random fills, bit-identical to engine/src/cpu/random.rs: element i of a draw is a pure function
// of (seed, counter + i) there, so each thread computes that same function for its i. Rust
// side: engine/src/cuda/random.rs.
//
// Every float operation is an explicitly rounded intrinsic (__dmul_rn, __dadd_rn, ...): NVRTC
// otherwise contracts a*b+c into an FMA, which rounds once instead of twice and would change
// bits. ln and cos are engine/src/cpu/random/portable_math.rs's, operation for operation.
//
// bf16 / f16 draws are the same f64 values, rounded to f32 and then to the half (from_acc),
// as the host's `from_f64` does.
#include "common.cuh"
#include "half.cuh"

typedef unsigned long long u64;

// SplitMix64's finalizer of a counter under a key (cpu/random.rs `mix`).
__device__ __forceinline__ u64 mix(u64 key, u64 counter) {
    u64 z = key ^ (counter * 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// A uniform double in [0, 1) from the top 53 bits (exact).
__device__ __forceinline__ double unit(u64 bits) { return __dmul_rn(__ull2double_rn(bits >> 11), 1.0 / 9007199254740992.0); }

__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double div(double a, double b) { return __ddiv_rn(a, b); }

// ---- portable_math.rs ----------------------------------------------------------------------
// Constants as exact doubles: pi/2 = P1 + P2 + P3 with P1, P2 of 33 significant bits, ln 2 =
// LN2_HI + LN2_LO with LN2_HI of 32 bits; the series coefficients are 2/(2k+1) and ±1/n!.
#define SQRT2 1.4142135623730951
#define LN2_HI 0.6931471803691238
#define LN2_LO 1.9082149292705877e-10
#define TWO_OVER_PI 0.6366197723675814
#define P1 1.5707963267341256
#define P2 6.077100506303966e-11
#define P3 2.0222662487959506e-21

// Natural log of a positive normal double.
__device__ double portable_ln(double x) {
    long long b = __double_as_longlong(x);
    long long k = ((b >> 52) & 0x7ff) - 1023;
    double m = __longlong_as_double((b & 0x000FFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
    if (m > SQRT2) {
        m = mul(m, 0.5);
        k += 1;
    }
    double f = sub(m, 1.0);
    double s = div(f, add(2.0, f));
    double z = mul(s, s);
    double r = 2.0 / 21.0;
    r = add(2.0 / 19.0, mul(z, r));
    r = add(2.0 / 17.0, mul(z, r));
    r = add(2.0 / 15.0, mul(z, r));
    r = add(2.0 / 13.0, mul(z, r));
    r = add(2.0 / 11.0, mul(z, r));
    r = add(2.0 / 9.0, mul(z, r));
    r = add(2.0 / 7.0, mul(z, r));
    r = add(2.0 / 5.0, mul(z, r));
    r = add(2.0 / 3.0, mul(z, r));
    r = mul(z, r);
    double hfsq = mul(mul(0.5, f), f);
    double dk = (double)k;
    return sub(mul(dk, LN2_HI), sub(sub(hfsq, add(mul(s, add(hfsq, r)), mul(dk, LN2_LO))), f));
}

// cos and sin on [-pi/4, pi/4] by their Taylor series.
__device__ double cos_kernel(double r) {
    double z = mul(r, r);
    double hz = mul(0.5, z);
    double w = sub(1.0, hz);
    double p = 1.0 / 20922789888000.0;             // 1/16!
    p = add(-1.0 / 87178291200.0, mul(z, p));      // -1/14!
    p = add(1.0 / 479001600.0, mul(z, p));         // 1/12!
    p = add(-1.0 / 3628800.0, mul(z, p));          // -1/10!
    p = add(1.0 / 40320.0, mul(z, p));             // 1/8!
    p = add(-1.0 / 720.0, mul(z, p));              // -1/6!
    p = add(1.0 / 24.0, mul(z, p));                // 1/4!
    return add(w, add(sub(sub(1.0, w), hz), mul(mul(z, z), p)));
}

__device__ double sin_kernel(double r) {
    double z = mul(r, r);
    double p = 1.0 / 355687428096000.0;            // 1/17!
    p = add(-1.0 / 1307674368000.0, mul(z, p));    // -1/15!
    p = add(1.0 / 6227020800.0, mul(z, p));        // 1/13!
    p = add(-1.0 / 39916800.0, mul(z, p));         // -1/11!
    p = add(1.0 / 362880.0, mul(z, p));            // 1/9!
    p = add(-1.0 / 5040.0, mul(z, p));             // -1/7!
    p = add(1.0 / 120.0, mul(z, p));               // 1/5!
    p = add(-1.0 / 6.0, mul(z, p));                // -1/3!
    return add(r, mul(mul(r, z), p));
}

// cos of x in [0, 8): x reduced by the nearest multiple n of pi/2 (n <= 5).
__device__ double portable_cos(double x) {
    double dn = floor(add(mul(x, TWO_OVER_PI), 0.5));
    double r = sub(sub(sub(x, mul(dn, P1)), mul(dn, P2)), mul(dn, P3));
    switch ((int)dn & 3) {
    case 0: return cos_kernel(r);
    case 1: return -sin_kernel(r);
    case 2: return -cos_kernel(r);
    default: return sin_kernel(r);
    }
}

// A standard normal from counters c and c + 1 (cpu/random.rs `box_muller`).
__device__ double box_muller(u64 seed, u64 c) {
    double u1 = unit(mix(seed, c));
    double u2 = unit(mix(seed, c + 1));
    double radius = __dsqrt_rn(mul(-2.0, portable_ln(sub(1.0, u1))));
    return mul(radius, portable_cos(mul(6.283185307179586, u2)));
}

// ---- fills ---------------------------------------------------------------------------------
// low + (high - low) * u, then rounded to T (Rust's `as`: round to nearest even; via f32 for
// the halves).
template <typename T> __device__ void uniform(i64 n, u64 seed, u64 start, double low, double high, T* out) {
    double span = sub(high, low);
    TS_GRID_STRIDE(i, n) { out[i] = from_acc<T>(add(low, mul(span, unit(mix(seed, start + (u64)i))))); }
}

// Element i uses counters start + 2i and start + 2i + 1.
template <typename T> __device__ void normal(i64 n, u64 seed, u64 start, double mean, double std, T* out) {
    TS_GRID_STRIDE(i, n) { out[i] = from_acc<T>(add(mean, mul(std, box_muller(seed, start + 2 * (u64)i)))); }
}

extern "C" __global__ void bernoulli(i64 n, u64 seed, u64 start, double p, u8* out) {
    TS_GRID_STRIDE(i, n) { out[i] = unit(mix(seed, start + (u64)i)) < p ? 1 : 0; }
}

// low + floor(bits * range / 2^64): the high half of the 128-bit product.
extern "C" __global__ void randint(i64 n, u64 seed, u64 start, i64 low, u64 range, i64* out) {
    TS_GRID_STRIDE(i, n) { out[i] = low + (i64)__umul64hi(mix(seed, start + (u64)i), range); }
}

#define FLOAT_DTYPE(s, T)                                                                                     \
    extern "C" __global__ void uniform_##s(i64 n, u64 seed, u64 start, double low, double high, T* out) {   \
        uniform<T>(n, seed, start, low, high, out);                                                           \
    }                                                                                                         \
    extern "C" __global__ void normal_##s(i64 n, u64 seed, u64 start, double mean, double std, T* out) {    \
        normal<T>(n, seed, start, mean, std, out);                                                            \
    }
FLOAT_DTYPE(f32, float)
FLOAT_DTYPE(f64, double)
FLOAT_DTYPE(bf16, bf16)
FLOAT_DTYPE(f16, f16)
