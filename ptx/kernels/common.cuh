// Shared by every tessera kernel module: the strided-operand descriptor and the index math.
// The Rust side mirrors `Strided` as engine/src/cuda/launch.rs's `StridedArg` (#[repr(C)]).
#pragma once

#define TS_MAX_RANK 8

typedef long long i64;
typedef unsigned char u8;

// A tensor operand as (shape, strides, offset) in elements; shape is the *output's* shape,
// with zero strides on broadcast dims, so one logical index serves every operand.
struct Strided {
    int rank;
    i64 offset;
    i64 shape[TS_MAX_RANK];
    i64 strides[TS_MAX_RANK];
};

// Storage offset of logical (row-major) element `i`.
__device__ __forceinline__ i64 strided_offset(const Strided& s, i64 i) {
    i64 off = s.offset;
    for (int d = s.rank - 1; d >= 0; --d) {
        i64 n = s.shape[d];
        i64 q = i / n;
        off += (i - q * n) * s.strides[d];
        i = q;
    }
    return off;
}

#define TS_GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

template <typename T> struct Float;
template <> struct Float<float> {
    static __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __device__ __forceinline__ float log(float x) { return logf(x); }
};
template <> struct Float<double> {
    static __device__ __forceinline__ double exp(double x) { return ::exp(x); }
    static __device__ __forceinline__ double log(double x) { return ::log(x); }
};
