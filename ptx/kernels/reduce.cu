// Reductions of a contiguous [outer, len, inner] array over its middle dim, and arg-extremes.
// `reduce_rows_*` serve inner == 1 (a group of threads per row), `reduce_cols_*` inner > 1
// (a thread per output column, reading coalesced across columns). Either can split the
// reduced dim into `segs` segments, giving partials [outer, segs, inner] that a second launch
// with segs = 1 combines: long reductions then use the whole GPU, in a fixed order.
// Codes mirror engine/src/cuda/reduce.rs.
//
// bf16 / f16 inputs are combined in f32 (acc_t) and rounded once into the output. Anything
// that crosses launches stays f32 for them: the per-segment partials, and the `shift` (a mean
// or maximum computed by an earlier reduction), so the kernels read `shift` as acc_t and
// take separate input and output types; the halves get `{base}_{h}_f32` (h in, f32 out) and
// `{base}_f32_{h}` (f32 partials in, h out) entry points beside `{base}_{h}`.
#include "row_reduce.cuh"

// Map codes, applied to each element before combining: 0 x, 1 exp(x - shift[row]),
// 2 (x - shift[row])^2. Post codes, applied to the combined value: 0 none, 1 acc / div,
// 2 shift[row] + log(acc), or the shift itself when infinite (logsumexp).
template <typename T> __device__ __forceinline__ T map_element(int map, T x, T shift) {
    switch (map) {
    case 1: return Float<T>::exp(x - shift);
    case 2: { T d = x - shift; return d * d; }
    }
    return x;
}

template <typename T> __device__ __forceinline__ T finish(int post, T acc, double div, T shift) {
    switch (post) {
    case 1: return acc / T(div);
    case 2: return isinf(shift) ? shift : shift + Float<T>::log(acc);
    }
    return acc;
}

template <typename In, typename Out, bool WholeBlock>
__device__ void reduce_rows(i64 rows, i64 len, i64 segs, int map, int comb, int post, double div, const In* x,
                            const acc_t<In>* shift, Out* out) {
    typedef acc_t<In> T;
    typedef RowGroup<WholeBlock> G;
    __shared__ T smem[33];
    const i64 seg_len = (len + segs - 1) / segs;
    for (i64 item = G::first(); item < rows * segs; item += G::step()) {
        const i64 row = item / segs, seg = item - row * segs;
        const i64 begin = seg * seg_len, end = min(len, begin + seg_len);
        const T sh = map != 0 ? shift[row] : T(0);
        const In* xr = x + row * len;
        T acc = combine_identity<T>(comb);
        for (i64 j = begin + G::lane(); j < end; j += G::size())
            acc = combine(comb, acc, map_element(map, to_acc(xr[j]), sh));
        acc = G::reduce(comb, acc, smem);
        if (G::lane() == 0) out[item] = from_acc<Out>(finish(post, acc, div, post == 2 ? shift[row] : T(0)));
    }
}

template <typename In, typename Out>
__device__ void reduce_cols(i64 outer, i64 len, i64 inner, i64 segs, int map, int comb, int post, double div,
                            const In* x, const acc_t<In>* shift, Out* out) {
    typedef acc_t<In> T;
    const i64 seg_len = (len + segs - 1) / segs;
    TS_GRID_STRIDE(i, outer * segs * inner) {
        const i64 k = i % inner, t = i / inner;
        const i64 seg = t % segs, o = t / segs;
        const i64 row = o * inner + k;  // the final output element this column feeds
        const i64 begin = seg * seg_len, end = min(len, begin + seg_len);
        const T sh = map != 0 ? shift[row] : T(0);
        const In* xc = x + o * len * inner + k;
        T acc = combine_identity<T>(comb);
        for (i64 r = begin; r < end; ++r) acc = combine(comb, acc, map_element(map, to_acc(xc[r * inner]), sh));
        out[i] = from_acc<Out>(finish(post, acc, div, post == 2 ? shift[row] : T(0)));
    }
}

// ---- argmax / argmin / extreme mask ----------------------------------------------------------
// The CPU scans `best = 0; if better(row[best], row[i]) best = i` comparing as f64: the first
// index of the extreme among non-NaN values, except that a NaN first element stays index 0.
// The (value, index) pairs below combine to exactly that in any order.
struct ArgBest {
    double v;
    i64 i;  // -1: no candidate yet
};

__device__ __forceinline__ ArgBest arg_combine(bool is_max, ArgBest a, ArgBest b) {
    if (b.i < 0) return a;
    if (a.i < 0) return b;
    bool better = is_max ? b.v > a.v : b.v < a.v;
    return (better || (b.v == a.v && b.i < a.i)) ? b : a;
}

__device__ __forceinline__ ArgBest arg_warp_reduce(bool is_max, ArgBest a) {
    for (int o = 16; o > 0; o >>= 1) {
        ArgBest b = {__shfl_down_sync(TS_FULL_MASK, a.v, o), __shfl_down_sync(TS_FULL_MASK, a.i, o)};
        a = arg_combine(is_max, a, b);
    }
    a.v = __shfl_sync(TS_FULL_MASK, a.v, 0);
    a.i = __shfl_sync(TS_FULL_MASK, a.i, 0);
    return a;
}

__device__ __forceinline__ ArgBest arg_block_reduce(bool is_max, ArgBest a, double* sv, i64* si) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    a = arg_warp_reduce(is_max, a);
    if (lane == 0) { sv[warp] = a.v; si[warp] = a.i; }
    __syncthreads();
    if (warp == 0) {
        ArgBest b = {0.0, -1};
        if (lane < warps) { b.v = sv[lane]; b.i = si[lane]; }
        b = arg_warp_reduce(is_max, b);
        if (lane == 0) { sv[32] = b.v; si[32] = b.i; }
    }
    __syncthreads();
    ArgBest r = {sv[32], si[32]};
    __syncthreads();
    return r;
}

// Per row of a contiguous [rows, len] array (len > 0): the index of the first extreme into
// `idx` (if not null), and a u8 row marking it into `mask` (if not null).
template <typename T, bool WholeBlock>
__device__ void arg_extreme_rows(i64 rows, i64 len, int is_max, const T* x, i64* idx, u8* mask) {
    typedef RowGroup<WholeBlock> G;
    __shared__ double sv[33];
    __shared__ i64 si[33];
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const T* xr = x + row * len;
        ArgBest best = {0.0, -1};
        double first = (double)to_acc(xr[0]);
        if (first != first) {
            best.i = 0;  // the whole group reads the same first element: a uniform branch
        } else {
            for (i64 j = G::lane(); j < len; j += G::size()) {
                double v = (double)to_acc(xr[j]);
                if (v == v) best = arg_combine(is_max != 0, best, ArgBest{v, j});
            }
            best = WholeBlock ? arg_block_reduce(is_max != 0, best, sv, si) : arg_warp_reduce(is_max != 0, best);
        }
        if (idx != nullptr && G::lane() == 0) idx[row] = best.i;
        if (mask != nullptr)
            for (i64 j = G::lane(); j < len; j += G::size()) mask[row * len + j] = j == best.i ? 1 : 0;
    }
}

// ---- extern "C" entry points ----------------------------------------------------------------
// `s`: the entry-point suffix; In: the input's storage type, Out: the output's.
#define REDUCE(s, In, Out)                                                                                            \
    extern "C" __global__ void reduce_rows_warp_##s(i64 rows, i64 len, i64 segs, int map, int comb, int post,       \
                                                    double div, const In* x, const acc_t<In>* shift, Out* out) {    \
        reduce_rows<In, Out, false>(rows, len, segs, map, comb, post, div, x, shift, out);                           \
    }                                                                                                                 \
    extern "C" __global__ void reduce_rows_block_##s(i64 rows, i64 len, i64 segs, int map, int comb, int post,      \
                                                     double div, const In* x, const acc_t<In>* shift, Out* out) {   \
        reduce_rows<In, Out, true>(rows, len, segs, map, comb, post, div, x, shift, out);                            \
    }                                                                                                                 \
    extern "C" __global__ void reduce_cols_##s(i64 outer, i64 len, i64 inner, i64 segs, int map, int comb, int post, \
                                               double div, const In* x, const acc_t<In>* shift, Out* out) {         \
        reduce_cols<In, Out>(outer, len, inner, segs, map, comb, post, div, x, shift, out);                          \
    }
REDUCE(f32, float, float)
REDUCE(f64, double, double)
// A half: h -> h in one launch; h -> f32 (partials, shifts) and f32 partials -> h.
#define REDUCE_HALF(s, T) REDUCE(s, T, T) REDUCE(s##_f32, T, float) REDUCE(f32_##s, float, T)
REDUCE_HALF(bf16, bf16)
REDUCE_HALF(f16, f16)

#define ARG_EXTREME(s, T)                                                                                         \
    extern "C" __global__ void arg_extreme_rows_warp_##s(i64 rows, i64 len, int is_max, const T* x, i64* idx,    \
                                                         u8* mask) {                                             \
        arg_extreme_rows<T, false>(rows, len, is_max, x, idx, mask);                                             \
    }                                                                                                             \
    extern "C" __global__ void arg_extreme_rows_block_##s(i64 rows, i64 len, int is_max, const T* x, i64* idx,   \
                                                          u8* mask) {                                            \
        arg_extreme_rows<T, true>(rows, len, is_max, x, idx, mask);                                              \
    }
ARG_EXTREME(f32, float)
ARG_EXTREME(f64, double)
ARG_EXTREME(i64, i64)
ARG_EXTREME(u8, u8)
ARG_EXTREME(bf16, bf16)
ARG_EXTREME(f16, f16)
