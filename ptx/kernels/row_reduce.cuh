// Cooperative reductions shared by reduce.cu, softmax.cu and norm.cu: combine rules with the
// CPU backend's NaN behaviour, and warp / block reductions in a fixed order (no atomics), so
// a result is bitwise the same from run to run on one device.
//
// The kernels call these with their compute type (acc_t<T>: f32 for bf16 / f16 storage), so
// the shared-memory slots and shuffles are never 16-bit.
#pragma once
#include "common.cuh"
#include "half.cuh"

#define TS_FULL_MASK 0xffffffffu

template <typename T> __device__ __forceinline__ T infinity();
template <> __device__ __forceinline__ float infinity<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double infinity<double>() { return __longlong_as_double(0x7ff0000000000000LL); }

// Combine codes: 0 sum, 1 max and 2 min (a NaN anywhere wins, as the CPU's `b > a || b.is_nan()`
// fold), 3 max ignoring NaN (Rust's f64::max, which softmax's row maximum uses).
enum Combine { COMBINE_SUM = 0, COMBINE_MAX = 1, COMBINE_MIN = 2, COMBINE_FMAX = 3 };

template <typename T> __device__ __forceinline__ T combine_identity(int op) {
    switch (op) {
    case COMBINE_MAX: case COMBINE_FMAX: return -infinity<T>();
    case COMBINE_MIN: return infinity<T>();
    }
    return T(0);
}

template <typename T> __device__ __forceinline__ T combine(int op, T a, T b) {
    switch (op) {
    case COMBINE_MAX: return (a != a) ? a : ((b != b || b > a) ? b : a);
    case COMBINE_MIN: return (a != a) ? a : ((b != b || b < a) ? b : a);
    case COMBINE_FMAX: return (b > a || a != a) ? b : a;
    }
    return a + b;
}

// Every lane of a full warp gets the combination of the 32 lanes' values (a tree in lane
// order, then lane 0's result broadcast, so all lanes agree bit for bit).
template <typename T> __device__ __forceinline__ T warp_reduce(int op, T v) {
    for (int o = 16; o > 0; o >>= 1) v = combine(op, v, __shfl_down_sync(TS_FULL_MASK, v, o));
    return __shfl_sync(TS_FULL_MASK, v, 0);
}

// Every thread of the block gets the combination of all threads' values. `smem` holds 33
// values; blockDim.x is a multiple of 32. Every thread of the block must call it.
template <typename T> __device__ __forceinline__ T block_reduce(int op, T v, T* smem) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce(op, v);
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? smem[lane] : combine_identity<T>(op);
        v = warp_reduce(op, v);
        if (lane == 0) smem[32] = v;
    }
    __syncthreads();
    T r = smem[32];
    __syncthreads();  // the next call may overwrite smem
    return r;
}

// The threads that share one row: a warp (rows of up to a few hundred elements) or the whole
// block (longer rows). `lane` and `size` index the row's elements: j = lane, lane + size, ...
template <bool WholeBlock> struct RowGroup {
    __device__ __forceinline__ static int size() { return WholeBlock ? (int)blockDim.x : 32; }
    __device__ __forceinline__ static int lane() { return WholeBlock ? (int)threadIdx.x : (int)(threadIdx.x & 31); }
    // First row of this group and the step between its rows, for a grid-stride loop.
    __device__ __forceinline__ static i64 first() {
        return WholeBlock ? (i64)blockIdx.x : (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    }
    __device__ __forceinline__ static i64 step() { return WholeBlock ? (i64)gridDim.x : (i64)gridDim.x * (blockDim.x >> 5); }
    template <typename T> __device__ __forceinline__ static T reduce(int op, T v, T* smem) {
        return WholeBlock ? block_reduce(op, v, smem) : warp_reduce(op, v);
    }
};
