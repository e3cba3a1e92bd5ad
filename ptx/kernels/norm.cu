// Batch norm over a contiguous [N, C, S] array (statistics per channel; a block per channel
// for the reductions, a thread per element otherwise) and layer norm over the last dim of a
// contiguous [rows, D] array (a warp or a block per row). The formulas are the CPU backend's
// (engine/src/ops/norm.rs); weight and bias pointers may be null (no affine term).
//
// bf16 / f16: every operand is widened to f32 (A = acc_t<T>) and all arithmetic runs there.
// The statistics handed back to the engine (batch mean / var / rstd, layer-norm mean / rstd,
// x̂) are tensors of x's dtype, so they are stored in T; only the batch-norm backward's
// per-channel sums, which feed the dx launch, stay f32 in between (the host rounds them to T
// for the weight / bias gradients afterwards).
#include "row_reduce.cuh"

// Offset of the j-th element (0 <= j < N*S) of channel `ch`.
__device__ __forceinline__ i64 channel_offset(i64 j, i64 c, i64 s, i64 ch) {
    const i64 i = j / s;
    return (i * c + ch) * s + (j - i * s);
}

// ---- batch norm -----------------------------------------------------------------------------
template <typename T>
__device__ void batch_norm_stats(i64 n, i64 c, i64 s, double eps, const T* x, T* mean, T* var, T* rstd) {
    typedef acc_t<T> A;
    __shared__ A smem[33];
    const i64 count = n * s;
    const A m = A((double)count);
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        A acc = A(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) acc += to_acc(x[channel_offset(j, c, s, ch)]);
        const A mu = block_reduce(COMBINE_SUM, acc, smem) / m;
        acc = A(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) {
            const A d = to_acc(x[channel_offset(j, c, s, ch)]) - mu;
            acc += d * d;
        }
        const A v = block_reduce(COMBINE_SUM, acc, smem) / m;
        if (threadIdx.x == 0) {
            mean[ch] = from_acc<T>(mu);
            var[ch] = from_acc<T>(v);
            rstd[ch] = from_acc<T>(A(1) / sqrt(v + A(eps)));
        }
    }
}

template <typename T>
__device__ void batch_norm_apply(i64 total, i64 c, i64 s, const T* x, const T* mean, const T* rstd, const T* w,
                                 const T* b, T* out) {
    typedef acc_t<T> A;
    TS_GRID_STRIDE(i, total) {
        const i64 ch = (i / s) % c;
        const A scale = to_acc(rstd[ch]) * (w != nullptr ? to_acc(w[ch]) : A(1));
        const A shift = (b != nullptr ? to_acc(b[ch]) : A(0)) - to_acc(mean[ch]) * scale;
        out[i] = from_acc<T>(to_acc(x[i]) * scale + shift);
    }
}

// Per channel: Σ g and Σ g · x̂ (= rstd · Σ g · (x - mean)), the weight and bias gradients.
template <typename T>
__device__ void batch_norm_backward_sums(i64 n, i64 c, i64 s, const T* x, const T* g, const T* mean, const T* rstd,
                                         acc_t<T>* sum_g, acc_t<T>* sum_gxhat) {
    typedef acc_t<T> A;
    __shared__ A smem[33];
    const i64 count = n * s;
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const A mu = to_acc(mean[ch]);
        A sg = A(0), sgx = A(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) {
            const i64 off = channel_offset(j, c, s, ch);
            const A gv = to_acc(g[off]);
            sg += gv;
            sgx += gv * (to_acc(x[off]) - mu);
        }
        sg = block_reduce(COMBINE_SUM, sg, smem);
        sgx = block_reduce(COMBINE_SUM, sgx, smem);
        if (threadIdx.x == 0) {
            sum_g[ch] = sg;
            sum_gxhat[ch] = sgx * to_acc(rstd[ch]);
        }
    }
}

template <typename T>
__device__ void batch_norm_backward_dx(i64 total, i64 c, i64 s, double count, const T* x, const T* g, const T* mean,
                                       const T* rstd, const T* w, const acc_t<T>* sum_g, const acc_t<T>* sum_gxhat,
                                       T* dx) {
    typedef acc_t<T> A;
    const A m = A(count);
    TS_GRID_STRIDE(i, total) {
        const i64 ch = (i / s) % c;
        const A k = to_acc(rstd[ch]) * (w != nullptr ? to_acc(w[ch]) : A(1));
        const A xhat = (to_acc(x[i]) - to_acc(mean[ch])) * to_acc(rstd[ch]);
        dx[i] = from_acc<T>(k * (to_acc(g[i]) - sum_g[ch] / m - xhat * sum_gxhat[ch] / m));
    }
}

// ---- layer norm -----------------------------------------------------------------------------
// x̂ at k for the second pass of the backward. f32 / f64 reread the x̂ they stored (exact;
// each thread only its own, so no barrier); the halves recompute it in f32 rather than use
// its rounded copy.
template <typename T>
__device__ __forceinline__ acc_t<T> xhat_again(const T* xhat, const T* x, i64 k, acc_t<T> mu, acc_t<T> r) {
    return sizeof(T) == sizeof(acc_t<T>) ? to_acc(xhat[k]) : (to_acc(x[k]) - mu) * r;
}

template <typename T, bool WholeBlock>
__device__ void layer_norm(i64 rows, i64 d, double eps, const T* x, const T* w, const T* b, T* y, T* mean, T* rstd) {
    typedef acc_t<T> A;
    typedef RowGroup<WholeBlock> G;
    __shared__ A smem[33];
    const int lane = G::lane(), size = G::size();
    const A dn = A((double)d);
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const T* xr = x + row * d;
        T* yr = y + row * d;
        A acc = A(0);
        for (i64 j = lane; j < d; j += size) acc += to_acc(xr[j]);
        const A mu = G::reduce(COMBINE_SUM, acc, smem) / dn;
        acc = A(0);
        for (i64 j = lane; j < d; j += size) {
            const A e = to_acc(xr[j]) - mu;
            acc += e * e;
        }
        const A var = G::reduce(COMBINE_SUM, acc, smem) / dn;
        const A r = A(1) / sqrt(var + A(eps));
        for (i64 j = lane; j < d; j += size) {
            const A xhat = (to_acc(xr[j]) - mu) * r;
            yr[j] = from_acc<T>(xhat * (w != nullptr ? to_acc(w[j]) : A(1)) + (b != nullptr ? to_acc(b[j]) : A(0)));
        }
        if (lane == 0) {
            mean[row] = from_acc<T>(mu);
            rstd[row] = from_acc<T>(r);
        }
    }
}

template <typename T, bool WholeBlock>
__device__ void layer_norm_backward(i64 rows, i64 d, const T* x, const T* g, const T* mean, const T* rstd, const T* w,
                                    T* dx, T* xhat) {
    typedef acc_t<T> A;
    typedef RowGroup<WholeBlock> G;
    __shared__ A smem[33];
    const int lane = G::lane(), size = G::size();
    const A dn = A((double)d);
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const i64 base = row * d;
        const A mu = to_acc(mean[row]), r = to_acc(rstd[row]);
        A s1 = A(0), s2 = A(0);
        for (i64 j = lane; j < d; j += size) {
            const A xh = (to_acc(x[base + j]) - mu) * r;
            const A gw = to_acc(g[base + j]) * (w != nullptr ? to_acc(w[j]) : A(1));
            xhat[base + j] = from_acc<T>(xh);
            s1 += gw;
            s2 += gw * xh;
        }
        s1 = G::reduce(COMBINE_SUM, s1, smem);
        s2 = G::reduce(COMBINE_SUM, s2, smem);
        for (i64 j = lane; j < d; j += size) {
            const A gw = to_acc(g[base + j]) * (w != nullptr ? to_acc(w[j]) : A(1));
            dx[base + j] = from_acc<T>(r * (gw - s1 / dn - xhat_again(xhat, x, base + j, mu, r) * s2 / dn));
        }
    }
}

// ---- extern "C" entry points ----------------------------------------------------------------
#define NORM(s, T)                                                                                                   \
    extern "C" __global__ void batch_norm_stats_##s(i64 n, i64 c, i64 sp, double eps, const T* x, T* mean, T* var,  \
                                                    T* rstd) {                                                      \
        batch_norm_stats<T>(n, c, sp, eps, x, mean, var, rstd);                                                     \
    }                                                                                                                \
    extern "C" __global__ void batch_norm_apply_##s(i64 total, i64 c, i64 sp, const T* x, const T* mean,            \
                                                    const T* rstd, const T* w, const T* b, T* out) {                \
        batch_norm_apply<T>(total, c, sp, x, mean, rstd, w, b, out);                                                \
    }                                                                                                                \
    extern "C" __global__ void batch_norm_backward_sums_##s(i64 n, i64 c, i64 sp, const T* x, const T* g,          \
                                                            const T* mean, const T* rstd, acc_t<T>* sum_g,       \
                                                            acc_t<T>* sum_gxhat) {                               \
        batch_norm_backward_sums<T>(n, c, sp, x, g, mean, rstd, sum_g, sum_gxhat);                                  \
    }                                                                                                                \
    extern "C" __global__ void batch_norm_backward_dx_##s(i64 total, i64 c, i64 sp, double count, const T* x,       \
                                                          const T* g, const T* mean, const T* rstd, const T* w,     \
                                                          const acc_t<T>* sum_g, const acc_t<T>* sum_gxhat, T* dx) {\
        batch_norm_backward_dx<T>(total, c, sp, count, x, g, mean, rstd, w, sum_g, sum_gxhat, dx);                  \
    }                                                                                                                \
    extern "C" __global__ void layer_norm_warp_##s(i64 rows, i64 d, double eps, const T* x, const T* w, const T* b, \
                                                   T* y, T* mean, T* rstd) {                                        \
        layer_norm<T, false>(rows, d, eps, x, w, b, y, mean, rstd);                                                 \
    }                                                                                                                \
    extern "C" __global__ void layer_norm_block_##s(i64 rows, i64 d, double eps, const T* x, const T* w,            \
                                                    const T* b, T* y, T* mean, T* rstd) {                           \
        layer_norm<T, true>(rows, d, eps, x, w, b, y, mean, rstd);                                                  \
    }                                                                                                                \
    extern "C" __global__ void layer_norm_backward_warp_##s(i64 rows, i64 d, const T* x, const T* g, const T* mean, \
                                                            const T* rstd, const T* w, T* dx, T* xhat) {            \
        layer_norm_backward<T, false>(rows, d, x, g, mean, rstd, w, dx, xhat);                                      \
    }                                                                                                                \
    extern "C" __global__ void layer_norm_backward_block_##s(i64 rows, i64 d, const T* x, const T* g,               \
                                                             const T* mean, const T* rstd, const T* w, T* dx,       \
                                                             T* xhat) {                                             \
        layer_norm_backward<T, true>(rows, d, x, g, mean, rstd, w, dx, xhat);                                       \
    }
NORM(f32, float)
NORM(f64, double)
NORM(bf16, bf16)
NORM(f16, f16)
