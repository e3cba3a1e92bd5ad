// Batch norm over a contiguous [N, C, S] array (statistics per channel; a block per channel
// for the reductions, a thread per element otherwise) and layer norm over the last dim of a
// contiguous [rows, D] array (a warp or a block per row). The formulas are the CPU backend's
// (engine/src/ops/norm.rs); weight and bias pointers may be null (no affine term).
#include "row_reduce.cuh"

// Offset of the j-th element (0 <= j < N*S) of channel `ch`.
__device__ __forceinline__ i64 channel_offset(i64 j, i64 c, i64 s, i64 ch) {
    const i64 i = j / s;
    return (i * c + ch) * s + (j - i * s);
}

// ---- batch norm -----------------------------------------------------------------------------
template <typename T>
__device__ void batch_norm_stats(i64 n, i64 c, i64 s, double eps, const T* x, T* mean, T* var, T* rstd) {
    __shared__ T smem[33];
    const i64 count = n * s;
    const T m = T((double)count);
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        T acc = T(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) acc += x[channel_offset(j, c, s, ch)];
        const T mu = block_reduce(COMBINE_SUM, acc, smem) / m;
        acc = T(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) {
            const T d = x[channel_offset(j, c, s, ch)] - mu;
            acc += d * d;
        }
        const T v = block_reduce(COMBINE_SUM, acc, smem) / m;
        if (threadIdx.x == 0) {
            mean[ch] = mu;
            var[ch] = v;
            rstd[ch] = T(1) / sqrt(v + T(eps));
        }
    }
}

template <typename T>
__device__ void batch_norm_apply(i64 total, i64 c, i64 s, const T* x, const T* mean, const T* rstd, const T* w,
                                 const T* b, T* out) {
    TS_GRID_STRIDE(i, total) {
        const i64 ch = (i / s) % c;
        const T scale = rstd[ch] * (w != nullptr ? w[ch] : T(1));
        const T shift = (b != nullptr ? b[ch] : T(0)) - mean[ch] * scale;
        out[i] = x[i] * scale + shift;
    }
}

// Per channel: Σ g and Σ g · x̂ (= rstd · Σ g · (x - mean)), the weight and bias gradients.
template <typename T>
__device__ void batch_norm_backward_sums(i64 n, i64 c, i64 s, const T* x, const T* g, const T* mean, const T* rstd,
                                         T* sum_g, T* sum_gxhat) {
    __shared__ T smem[33];
    const i64 count = n * s;
    for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
        const T mu = mean[ch];
        T sg = T(0), sgx = T(0);
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) {
            const i64 off = channel_offset(j, c, s, ch);
            sg += g[off];
            sgx += g[off] * (x[off] - mu);
        }
        sg = block_reduce(COMBINE_SUM, sg, smem);
        sgx = block_reduce(COMBINE_SUM, sgx, smem);
        if (threadIdx.x == 0) {
            sum_g[ch] = sg;
            sum_gxhat[ch] = sgx * rstd[ch];
        }
    }
}

template <typename T>
__device__ void batch_norm_backward_dx(i64 total, i64 c, i64 s, double count, const T* x, const T* g, const T* mean,
                                       const T* rstd, const T* w, const T* sum_g, const T* sum_gxhat, T* dx) {
    const T m = T(count);
    TS_GRID_STRIDE(i, total) {
        const i64 ch = (i / s) % c;
        const T k = rstd[ch] * (w != nullptr ? w[ch] : T(1));
        const T xhat = (x[i] - mean[ch]) * rstd[ch];
        dx[i] = k * (g[i] - sum_g[ch] / m - xhat * sum_gxhat[ch] / m);
    }
}

// ---- layer norm -----------------------------------------------------------------------------
template <typename T, bool WholeBlock>
__device__ void layer_norm(i64 rows, i64 d, double eps, const T* x, const T* w, const T* b, T* y, T* mean, T* rstd) {
    typedef RowGroup<WholeBlock> G;
    __shared__ T smem[33];
    const int lane = G::lane(), size = G::size();
    const T dn = T((double)d);
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const T* xr = x + row * d;
        T* yr = y + row * d;
        T acc = T(0);
        for (i64 j = lane; j < d; j += size) acc += xr[j];
        const T mu = G::reduce(COMBINE_SUM, acc, smem) / dn;
        acc = T(0);
        for (i64 j = lane; j < d; j += size) {
            const T e = xr[j] - mu;
            acc += e * e;
        }
        const T var = G::reduce(COMBINE_SUM, acc, smem) / dn;
        const T r = T(1) / sqrt(var + T(eps));
        for (i64 j = lane; j < d; j += size) {
            const T xhat = (xr[j] - mu) * r;
            yr[j] = xhat * (w != nullptr ? w[j] : T(1)) + (b != nullptr ? b[j] : T(0));
        }
        if (lane == 0) {
            mean[row] = mu;
            rstd[row] = r;
        }
    }
}

template <typename T, bool WholeBlock>
__device__ void layer_norm_backward(i64 rows, i64 d, const T* x, const T* g, const T* mean, const T* rstd, const T* w,
                                    T* dx, T* xhat) {
    typedef RowGroup<WholeBlock> G;
    __shared__ T smem[33];
    const int lane = G::lane(), size = G::size();
    const T dn = T((double)d);
    for (i64 row = G::first(); row < rows; row += G::step()) {
        const i64 base = row * d;
        const T mu = mean[row], r = rstd[row];
        T s1 = T(0), s2 = T(0);
        for (i64 j = lane; j < d; j += size) {
            const T xh = (x[base + j] - mu) * r;
            const T gw = g[base + j] * (w != nullptr ? w[j] : T(1));
            xhat[base + j] = xh;
            s1 += gw;
            s2 += gw * xh;
        }
        s1 = G::reduce(COMBINE_SUM, s1, smem);
        s2 = G::reduce(COMBINE_SUM, s2, smem);
        // Each thread rereads only the x̂ it wrote itself: no barrier needed.
        for (i64 j = lane; j < d; j += size) {
            const T gw = g[base + j] * (w != nullptr ? w[j] : T(1));
            dx[base + j] = r * (gw - s1 / dn - xhat[base + j] * s2 / dn);
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
                                                            const T* mean, const T* rstd, T* sum_g, T* sum_gxhat) { \
        batch_norm_backward_sums<T>(n, c, sp, x, g, mean, rstd, sum_g, sum_gxhat);                                  \
    }                                                                                                                \
    extern "C" __global__ void batch_norm_backward_dx_##s(i64 total, i64 c, i64 sp, double count, const T* x,       \
                                                          const T* g, const T* mean, const T* rstd, const T* w,     \
                                                          const T* sum_g, const T* sum_gxhat, T* dx) {              \
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
