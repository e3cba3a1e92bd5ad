// Per-row sort of a contiguous [rows, n] array for argsort and topk: one block per row runs a
// bitonic network over (value, index) pairs padded to a power of two `p`, in shared memory
// when it fits, else in a global scratch slot per block. Ordering by value (NaN above every
// number, as the CPU's total_cmp) and then by index makes every pair distinct, so the
// unstable network gives the stable order the CPU backend gives. bf16 / f16 keys stay 2-byte in
// shared memory or scratch and compare as their exact f32 values.
#include "common.cuh"
#include "half.cuh"

// -1, 0 or 1 as a is below, equal to or above b, with NaN above everything (NaNs equal).
template <typename T> __device__ __forceinline__ int total_cmp(T a, T b) {
    const bool an = a != a, bn = b != b;
    if (an || bn) return (int)an - (int)bn;
    return a < b ? -1 : (a > b ? 1 : 0);
}

// Whether pair a goes before pair b. Index -1 marks padding, which goes after everything.
template <typename T> __device__ __forceinline__ bool goes_before(T ka, int ia, T kb, int ib, bool descending) {
    if (ia < 0) return false;
    if (ib < 0) return true;
    int c = total_cmp(to_acc(ka), to_acc(kb));
    if (descending) c = -c;
    return c != 0 ? c < 0 : ia < ib;
}

// Writes the first k sorted positions of each row: indices into out_idx [rows, k] and, if
// not null, values into out_val [rows, k]. scratch_keys / scratch_idx: null to sort in dynamic
// shared memory (keys rounded up to 8 bytes, then p ints), else gridDim.x slots of p entries each.
template <typename T>
__device__ void sort_rows(i64 rows, i64 n, i64 p, i64 k, int descending, const T* x, T* scratch_keys, int* scratch_idx,
                          i64* out_idx, T* out_val) {
    extern __shared__ __align__(8) unsigned char shared_bytes[];
    T* keys;
    int* idx;
    if (scratch_keys != nullptr) {
        keys = scratch_keys + (i64)blockIdx.x * p;
        idx = scratch_idx + (i64)blockIdx.x * p;
    } else {
        keys = (T*)shared_bytes;
        idx = (int*)(shared_bytes + (p * sizeof(T) + 7) / 8 * 8);
    }
    const bool desc = descending != 0;
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * n;
        for (i64 t = threadIdx.x; t < p; t += blockDim.x) {
            keys[t] = t < n ? xr[t] : T();  // padding: any value (index -1 sorts it last)
            idx[t] = t < n ? (int)t : -1;
        }
        __syncthreads();
        for (i64 size = 2; size <= p; size <<= 1) {
            for (i64 stride = size >> 1; stride > 0; stride >>= 1) {
                for (i64 t = threadIdx.x; t < p; t += blockDim.x) {
                    const i64 u = t ^ stride;
                    if (u <= t) continue;
                    // Within each run of `size`, the first half of the network sorts up.
                    const bool up = (t & size) == 0;
                    const bool swap = up ? goes_before(keys[u], idx[u], keys[t], idx[t], desc)
                                         : goes_before(keys[t], idx[t], keys[u], idx[u], desc);
                    if (swap) {
                        const T kt = keys[t];
                        keys[t] = keys[u];
                        keys[u] = kt;
                        const int it = idx[t];
                        idx[t] = idx[u];
                        idx[u] = it;
                    }
                }
                __syncthreads();
            }
        }
        for (i64 t = threadIdx.x; t < k; t += blockDim.x) {
            out_idx[row * k + t] = idx[t];
            if (out_val != nullptr) out_val[row * k + t] = keys[t];
        }
        __syncthreads();  // the next row overwrites keys and idx
    }
}

#define SORT(s, T)                                                                                                    \
    extern "C" __global__ void sort_rows_##s(i64 rows, i64 n, i64 p, i64 k, int descending, const T* x,             \
                                             T* scratch_keys, int* scratch_idx, i64* out_idx, T* out_val) {         \
        sort_rows<T>(rows, n, p, k, descending, x, scratch_keys, scratch_idx, out_idx, out_val);                    \
    }
SORT(f32, float)
SORT(f64, double)
SORT(i64, i64)
SORT(u8, u8)
SORT(bf16, bf16)
SORT(f16, f16)
