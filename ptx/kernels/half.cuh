// The 16-bit storage types, bf16 and f16, and the rule every kernel follows for them: load,
// compute and accumulate in f32, round once when storing. f32 and f64 compute in themselves,
// so for them the helpers here are the identity and their kernels are what they were.
//
// Our own 2-byte structs rather than cuda_bf16.h / cuda_fp16.h: the NVRTC wheel ships no
// headers, and the kernels only ever need the two conversions. The Rust side (engine dtype
// `BF16` / `F16`, the `half` crate on the host) uses the same bit layouts and roundings.
#pragma once

struct __align__(2) bf16 {
    unsigned short bits;
};
struct __align__(2) f16 {
    unsigned short bits;
};

// f32 -> bf16 bits, rounded to nearest even; NaN stays a (quiet) NaN. The same result as
// cvt.rn.bf16.f32 and as the host's half::bf16::from_f32.
__device__ __forceinline__ unsigned short f32_to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// bf16 is the top half of an f32: widening is exact.
__device__ __forceinline__ float bf16_to_f32(unsigned short b) { return __uint_as_float((unsigned)b << 16); }

// f32 -> f16 bits, rounded to nearest even (subnormals and overflow to ±inf included).
__device__ __forceinline__ unsigned short f32_to_f16(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
    return x;
}

// The type a kernel computes and accumulates in for storage type T.
template <typename T> struct AccOf {
    typedef T type;
};
template <> struct AccOf<bf16> {
    typedef float type;
};
template <> struct AccOf<f16> {
    typedef float type;
};
template <typename T> using acc_t = typename AccOf<T>::type;

// Storage -> compute type (exact).
__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(bf16 x) { return bf16_to_f32(x.bits); }
__device__ __forceinline__ float to_acc(f16 x) { return f16_to_f32(x.bits); }

// ---- helpers for kernels templated over every dtype ----------------------------------------
// The integer dtypes compute in themselves too: with these, code written once over all six
// storage types (compare, sort, casts, arg-extremes) widens every operand alike.
__device__ __forceinline__ long long to_acc(long long x) { return x; }
__device__ __forceinline__ unsigned char to_acc(unsigned char x) { return x; }

// Compute -> storage type D: C++'s conversion for f32 / f64 / i64 / u8 (so their kernels
// keep their old `(T)v`), and for the halves one rounding to nearest even through f32 (f64
// and i64 values too, as PyTorch's conversions and the host's `from_f64` do, so both round
// alike).
template <typename D> struct StorageOf {
    template <typename V> static __device__ __forceinline__ D from(V v) { return (D)v; }
};
template <> struct StorageOf<bf16> {
    template <typename V> static __device__ __forceinline__ bf16 from(V v) { return bf16{f32_to_bf16((float)v)}; }
};
template <> struct StorageOf<f16> {
    template <typename V> static __device__ __forceinline__ f16 from(V v) { return f16{f32_to_f16((float)v)}; }
};
template <typename D, typename V> __device__ __forceinline__ D from_acc(V v) { return StorageOf<D>::from(v); }
