// softmax / log_softmax along the last dim of a contiguous [rows, n] array, and their fused
// backward; a warp per row for short rows, a block per row for long ones. The formulas are
// the CPU backend's (engine/src/ops/softmax.rs), term for term. Op codes mirror
// engine/src/cuda/softmax.rs. bf16 / f16 rows are read into f32 (A = acc_t<T>), reduced
// and computed in f32, and each output rounded once.
#include "row_reduce.cuh"

// Ops: 0 softmax(x), 1 log_softmax(x), 2 softmax_backward(y = x, g), 3 log_softmax_backward(y = x, g).
template <typename S, bool WholeBlock>
__device__ void softmax_rows(i64 rows, i64 n, int op, const S* x, const S* g, S* out) {
    typedef acc_t<S> T;
    typedef RowGroup<WholeBlock> G;
    __shared__ T smem[33];
    const int lane = G::lane(), size = G::size();
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const S* xs = x + row * n;
        const S* gs = g + row * n;  // only read by the backward ops
        S* o = out + row * n;
        // Element j of the row, widened to the compute type.
        auto xr = [&](i64 j) { return to_acc(xs[j]); };
        auto gr = [&](i64 j) { return to_acc(gs[j]); };
        if (op == 0 || op == 1) {
            // The row maximum ignores NaN (f64::max), like the CPU's.
            T m = -infinity<T>();
            for (i64 j = lane; j < n; j += size) m = combine(COMBINE_FMAX, m, xr(j));
            m = G::reduce(COMBINE_FMAX, m, smem);
            T s = T(0);
            for (i64 j = lane; j < n; j += size) s += Float<T>::exp(xr(j) - m);
            s = G::reduce(COMBINE_SUM, s, smem);
            if (op == 0) {
                const T inv = T(1) / s;
                for (i64 j = lane; j < n; j += size) o[j] = from_acc<S>(Float<T>::exp(xr(j) - m) * inv);
            } else {
                const T log_sum = Float<T>::log(s);
                for (i64 j = lane; j < n; j += size) o[j] = from_acc<S>((xr(j) - m) - log_sum);
            }
        } else if (op == 2) {
            T dot = T(0);
            for (i64 j = lane; j < n; j += size) dot += xr(j) * gr(j);
            dot = G::reduce(COMBINE_SUM, dot, smem);
            for (i64 j = lane; j < n; j += size) o[j] = from_acc<S>(xr(j) * (gr(j) - dot));
        } else {
            T s = T(0);
            for (i64 j = lane; j < n; j += size) s += gr(j);
            s = G::reduce(COMBINE_SUM, s, smem);
            for (i64 j = lane; j < n; j += size) o[j] = from_acc<S>(gr(j) - Float<T>::exp(xr(j)) * s);
        }
    }
}

#define SOFTMAX(s, T)                                                                                          \
    extern "C" __global__ void softmax_rows_warp_##s(i64 rows, i64 n, int op, const T* x, const T* g, T* out) { \
        softmax_rows<T, false>(rows, n, op, x, g, out);                                                        \
    }                                                                                                          \
    extern "C" __global__ void softmax_rows_block_##s(i64 rows, i64 n, int op, const T* x, const T* g,        \
                                                      T* out) {                                                \
        softmax_rows<T, true>(rows, n, op, x, g, out);                                                         \
    }
SOFTMAX(f32, float)
SOFTMAX(f64, double)
SOFTMAX(bf16, bf16)
SOFTMAX(f16, f16)
