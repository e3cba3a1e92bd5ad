// Convolution kernels on NCHW images: im2col and col2im (the engine's unfold / fold, and the
// data movement around the matmul-based conv2d / conv_transpose2d), plus a store that adds a
// per-channel bias. The GEMMs themselves are the engine's matmul. `View4` and `ConvGeom`
// mirror engine/src/cuda/conv.rs field for field. bf16 / f16: sums and bias adds run in
// f32 (acc_t), rounded once per output; im2col only moves values. The `_wide` entries of
// col2im and store_with_bias read f32 columns / products (the GEMM's f32 accumulators, kept
// for half tensors) and write the half output, so a half conv rounds once per output, as the
// CPU's widened convolution does.
#include "half.cuh"
#include "nchw.cuh"

// The sliding-window geometry of one `channels × h × w` image (engine/src/cpu/im2col.rs).
// `oh × ow` output positions; `oh`, `ow` may be fewer than fit (a transposed convolution's
// output padding needs that).
struct ConvGeom {
    i64 channels, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

// cols[s, r, l] for sample s < n, row r = (c·kh + i)·kw + j and column l = oy·ow + ox: the
// value of channel c under tap (i, j) of output position (oy, ox), 0 in the padding. The
// image is read as [n, C, H, W] through `xv`; cols[s, r, l] is written at
// s·col_sample + r·col_row + l, so one kernel serves the sample-major [n, R, L] layout
// (forward, unfold) and the row-major [R, n, L] one (weight gradient).
template <typename T>
__device__ void im2col(i64 total, ConvGeom g, View4 xv, const T* x, i64 col_sample, i64 col_row, T* cols) {
    const i64 len = g.oh * g.ow, rows = g.channels * g.kh * g.kw;
    TS_GRID_STRIDE(e, total) {
        // Column fastest: consecutive threads write consecutive addresses.
        i64 l = e % len, t = e / len;
        i64 r = t % rows, s = t / rows;
        i64 j = r % g.kw, u = r / g.kw;
        i64 i = u % g.kh, c = u / g.kh;
        i64 ox = l % g.ow, oy = l / g.ow;
        i64 iy = oy * g.sh - g.ph + i * g.dh, ix = ox * g.sw - g.pw + j * g.dw;
        T v = T();  // zero for every storage type
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[at4(xv, s, c, iy, ix)];
        cols[s * col_sample + r * col_row + l] = v;
    }
}

// out[s, c, y, x] = Σ cols[s, (c·kh + i)·kw + j, oy·ow + ox] over the taps (i, j) whose output
// position (oy, ox) reads pixel (y, x), plus bias[c] when given: the adjoint of im2col. A
// gather: each pixel sums its own contributions, in tap order as the CPU's col2im adds them,
// so there are no atomics and the result is deterministic. cols is read as [_, n, R, L]
// through `cv`; out is contiguous [n, C, H, W].
template <typename C, typename T>
__device__ void col2im(i64 total, ConvGeom g, View4 cv, const C* cols, const T* bias, i64 bias_stride, T* out) {
    TS_GRID_STRIDE(e, total) {
        i64 x = e % g.w, t = e / g.w;
        i64 y = t % g.h;
        t /= g.h;
        i64 c = t % g.channels, s = t / g.channels;
        acc_t<T> acc = 0;
        for (i64 i = 0; i < g.kh; ++i) {
            i64 ty = y + g.ph - i * g.dh;
            if (ty < 0) break;  // later taps sit further up
            if (ty % g.sh != 0) continue;
            i64 oy = ty / g.sh;
            if (oy >= g.oh) continue;
            for (i64 j = 0; j < g.kw; ++j) {
                i64 tx = x + g.pw - j * g.dw;
                if (tx < 0) break;
                if (tx % g.sw != 0) continue;
                i64 ox = tx / g.sw;
                if (ox >= g.ow) continue;
                acc += to_acc(cols[at4(cv, 0, s, (c * g.kh + i) * g.kw + j, oy * g.ow + ox)]);
            }
        }
        if (bias) acc += to_acc(bias[c * bias_stride]);
        out[e] = from_acc<T>(acc);
    }
}

// dst[k] = src[k] + bias[(k / len) % channels] over the logical elements of `src`, a
// `[.., channels, len]` tensor read through `ss`; dst is contiguous. Used to add a conv bias
// to a matmul result, and to place a batch chunk's result in the full output.
template <typename S, typename T>
__device__ void store_with_bias(i64 total, i64 len, i64 channels, Strided ss, const S* src, const T* bias,
                                i64 bias_stride, T* dst) {
    TS_GRID_STRIDE(k, total) {
        acc_t<T> v = to_acc(src[strided_offset(ss, k)]);
        if (bias) v += to_acc(bias[((k / len) % channels) * bias_stride]);
        dst[k] = from_acc<T>(v);
    }
}

// ---- extern "C" entry points ----------------------------------------------------------------
// C: the columns' / products' type (T, or f32 for the `_wide` half entries).
#define COL2IM_STORE(name, C, T)                                                                                  \
    extern "C" __global__ void col2im_##name(i64 total, ConvGeom g, View4 cv, const C* cols, const T* bias,     \
                                             i64 bias_stride, T* out) {                                           \
        col2im<C, T>(total, g, cv, cols, bias, bias_stride, out);                                                 \
    }                                                                                                             \
    extern "C" __global__ void store_with_bias_##name(i64 total, i64 len, i64 channels, Strided ss,             \
                                                      const C* src, const T* bias, i64 bias_stride, T* dst) {     \
        store_with_bias<C, T>(total, len, channels, ss, src, bias, bias_stride, dst);                             \
    }
#define CONV(s, T)                                                                                                \
    extern "C" __global__ void im2col_##s(i64 total, ConvGeom g, View4 xv, const T* x, i64 col_sample,          \
                                          i64 col_row, T* cols) {                                                 \
        im2col<T>(total, g, xv, x, col_sample, col_row, cols);                                                    \
    }                                                                                                             \
    COL2IM_STORE(s, T, T)
CONV(f32, float)
CONV(f64, double)
CONV(bf16, bf16)
CONV(f16, f16)
COL2IM_STORE(wide_bf16, float, bf16)
COL2IM_STORE(wide_f16, float, f16)
