// 2-D pooling over the planes of [N, C, H, W] (or [C, H, W]) tensors: max pooling with
// indices, average pooling and adaptive average pooling, and their backward. Every result
// follows engine/src/ops/conv/pool.rs: the same windows, tie rules and summation order.
// `PoolGeom` mirrors engine/src/cuda/pool.rs field for field.
//
// bf16 / f16 are read into f32 (acc_t) and every sum, division and comparison runs there,
// each output rounded once. The max-pool backward scatters into its output, so for them it
// adds into an f32 buffer that the host rounds to the dtype afterwards.
#include "half.cuh"
#include "nchw.cuh"

// `planes` planes of h × w pooled to oh × ow; plane p is (p / lead1, p % lead1) of the
// [n, lead1, h, w] view the kernels read. Window parameters as in PyTorch; average pooling
// passes dilation 1, adaptive pooling ignores them.
struct PoolGeom {
    i64 planes, lead1, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
};

// Output o's window along one axis of size n: its first in-bounds input position and how
// many taps (spaced by d) are in bounds (pool.rs's `axis_windows`).
struct AxisWin {
    i64 start, taps;
};

__device__ __forceinline__ AxisWin axis_window(i64 o, i64 n, i64 k, i64 s, i64 p, i64 d) {
    i64 base = o * s;
    i64 i0 = p > base ? (p - base + d - 1) / d : 0;
    i64 i1 = n + p > base ? min((n + p - 1 - base) / d + 1, k) : 0;
    AxisWin a = {0, 0};
    if (i0 < i1) {
        a.start = base + i0 * d - p;
        a.taps = i1 - i0;
    }
    return a;
}

// Adaptive bin i of `out` over n inputs: ⌊i·n/out⌋ .. ⌈(i+1)·n/out⌉.
__device__ __forceinline__ AxisWin adaptive_window(i64 i, i64 n, i64 out) {
    i64 start = i * n / out, end = ((i + 1) * n + out - 1) / out;
    AxisWin a = {start, end - start};
    return a;
}

// ---- max pooling -----------------------------------------------------------------------------
// Taps in scan order from the window's first in-bounds one: a larger value or a NaN takes
// over, so ties keep the first position and the last NaN wins, as on the CPU. Indices are
// flat positions y·W + x within the plane.
template <typename T>
__device__ void max_pool2d(i64 total, PoolGeom g, View4 xv, const T* x, T* vals, i64* idx) {
    TS_GRID_STRIDE(e, total) {
        i64 ox = e % g.ow, t = e / g.ow;
        i64 oy = t % g.oh, pl = t / g.oh;
        i64 n = pl / g.lead1, c = pl % g.lead1;
        AxisWin wy = axis_window(oy, g.h, g.kh, g.sh, g.ph, g.dh);
        AxisWin wx = axis_window(ox, g.w, g.kw, g.sw, g.pw, g.dw);
        acc_t<T> best = to_acc(x[at4(xv, n, c, wy.start, wx.start)]);
        i64 arg = wy.start * g.w + wx.start;
        for (i64 ty = 0; ty < wy.taps; ++ty) {
            i64 iy = wy.start + ty * g.dh;
            for (i64 tx = 0; tx < wx.taps; ++tx) {
                i64 ix = wx.start + tx * g.dw;
                acc_t<T> v = to_acc(x[at4(xv, n, c, iy, ix)]);
                if (v > best || isnan(v)) {
                    best = v;
                    arg = iy * g.w + ix;
                }
            }
        }
        vals[e] = from_acc<T>(best);  // exact: best is one of the inputs
        idx[e] = arg;
    }
}

// Adds each output gradient to its index's position of a zeroed `out` ([planes, h·w]). The
// indices alone do not say which outputs can reach a pixel, so this is a scatter; one thread
// per plane walks that plane's outputs in order, which keeps the sums deterministic and in the
// CPU's order. Indices outside the plane are skipped and the smallest flat position of one is
// left in *bad (which starts at all ones), for the host to report.
template <typename T>
__device__ void max_pool2d_backward(i64 planes, i64 lead1, i64 oh, i64 ow, i64 plane, View4 gv, const T* g, View4 iv,
                                    const i64* idx, acc_t<T>* out, unsigned long long* bad) {
    TS_GRID_STRIDE(pl, planes) {
        i64 n = pl / lead1, c = pl % lead1;
        acc_t<T>* o = out + pl * plane;
        for (i64 oy = 0; oy < oh; ++oy) {
            for (i64 ox = 0; ox < ow; ++ox) {
                i64 at = idx[at4(iv, n, c, oy, ox)];
                if (at < 0 || at >= plane) {
                    atomicMin(bad, (unsigned long long)((pl * oh + oy) * ow + ox));
                    continue;
                }
                o[at] += to_acc(g[at4(gv, n, c, oy, ox)]);
            }
        }
    }
}

// ---- average pooling -------------------------------------------------------------------------
// Each row of the window summed, then the rows; divided by kh·kw, or by the in-bounds count
// without count_include_pad.
template <typename T>
__device__ void avg_pool2d(i64 total, PoolGeom g, int count_include_pad, View4 xv, const T* x, T* out) {
    TS_GRID_STRIDE(e, total) {
        i64 ox = e % g.ow, t = e / g.ow;
        i64 oy = t % g.oh, pl = t / g.oh;
        i64 n = pl / g.lead1, c = pl % g.lead1;
        AxisWin wy = axis_window(oy, g.h, g.kh, g.sh, g.ph, 1);
        AxisWin wx = axis_window(ox, g.w, g.kw, g.sw, g.pw, 1);
        typedef acc_t<T> A;
        A s = A(0);
        for (i64 y = wy.start; y < wy.start + wy.taps; ++y) {
            A row = A(0);
            for (i64 xi = wx.start; xi < wx.start + wx.taps; ++xi) row += to_acc(x[at4(xv, n, c, y, xi)]);
            s += row;
        }
        i64 div = count_include_pad ? g.kh * g.kw : wy.taps * wx.taps;
        out[e] = from_acc<T>(s / A(div));
    }
}

// The outputs whose (undilated) windows along one axis cover input position y: those o with
// o·s − p ≤ y < o·s − p + k, clipped to [0, out).
__device__ __forceinline__ void covering(i64 y, i64 k, i64 s, i64 p, i64 out, i64* lo, i64* hi) {
    i64 first = y + p - k + 1;
    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    *hi = min((y + p) / s + 1, out);
}

// Gather form: each input pixel adds grad / divisor of every window that covers it, in
// output order as the CPU does, so no atomics and the CPU's rounding.
template <typename T>
__device__ void avg_pool2d_backward(i64 total, PoolGeom g, int count_include_pad, View4 gv, const T* grad, T* out) {
    TS_GRID_STRIDE(e, total) {
        i64 x = e % g.w, t = e / g.w;
        i64 y = t % g.h, pl = t / g.h;
        i64 n = pl / g.lead1, c = pl % g.lead1;
        i64 y0, y1, x0, x1;
        covering(y, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
        covering(x, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
        typedef acc_t<T> A;
        A acc = A(0);
        for (i64 oy = y0; oy < y1; ++oy) {
            i64 ty = axis_window(oy, g.h, g.kh, g.sh, g.ph, 1).taps;
            for (i64 ox = x0; ox < x1; ++ox) {
                i64 div = count_include_pad ? g.kh * g.kw : ty * axis_window(ox, g.w, g.kw, g.sw, g.pw, 1).taps;
                acc += to_acc(grad[at4(gv, n, c, oy, ox)]) / A(div);
            }
        }
        out[e] = from_acc<T>(acc);
    }
}

// ---- adaptive average pooling ----------------------------------------------------------------
template <typename T>
__device__ void adaptive_avg_pool2d(i64 total, PoolGeom g, View4 xv, const T* x, T* out) {
    TS_GRID_STRIDE(e, total) {
        i64 ox = e % g.ow, t = e / g.ow;
        i64 oy = t % g.oh, pl = t / g.oh;
        i64 n = pl / g.lead1, c = pl % g.lead1;
        AxisWin wy = adaptive_window(oy, g.h, g.oh), wx = adaptive_window(ox, g.w, g.ow);
        typedef acc_t<T> A;
        A s = A(0);
        for (i64 y = wy.start; y < wy.start + wy.taps; ++y) {
            A row = A(0);
            for (i64 xi = wx.start; xi < wx.start + wx.taps; ++xi) row += to_acc(x[at4(xv, n, c, y, xi)]);
            s += row;
        }
        out[e] = from_acc<T>(s / A(wy.taps * wx.taps));
    }
}

// The adaptive bins of `out` over n inputs that contain position y: from ⌊y·out/n⌋ to
// ⌊((y+1)·out − 1)/n⌋; one bin of slack each side, each tested, guards the integer bounds.
__device__ __forceinline__ void adaptive_covering(i64 y, i64 n, i64 out, i64* lo, i64* hi) {
    *lo = max(y * out / n - 1, (i64)0);
    *hi = min(((y + 1) * out - 1) / n + 2, out);
}

template <typename T>
__device__ void adaptive_avg_pool2d_backward(i64 total, PoolGeom g, View4 gv, const T* grad, T* out) {
    TS_GRID_STRIDE(e, total) {
        i64 x = e % g.w, t = e / g.w;
        i64 y = t % g.h, pl = t / g.h;
        i64 n = pl / g.lead1, c = pl % g.lead1;
        i64 y0, y1, x0, x1;
        adaptive_covering(y, g.h, g.oh, &y0, &y1);
        adaptive_covering(x, g.w, g.ow, &x0, &x1);
        typedef acc_t<T> A;
        A acc = A(0);
        for (i64 oy = y0; oy < y1; ++oy) {
            AxisWin wy = adaptive_window(oy, g.h, g.oh);
            if (y < wy.start || y >= wy.start + wy.taps) continue;
            for (i64 ox = x0; ox < x1; ++ox) {
                AxisWin wx = adaptive_window(ox, g.w, g.ow);
                if (x < wx.start || x >= wx.start + wx.taps) continue;
                acc += to_acc(grad[at4(gv, n, c, oy, ox)]) / A(wy.taps * wx.taps);
            }
        }
        out[e] = from_acc<T>(acc);
    }
}

// ---- extern "C" entry points ----------------------------------------------------------------
#define POOL(s, T)                                                                                                  \
    extern "C" __global__ void max_pool2d_##s(i64 total, PoolGeom g, View4 xv, const T* x, T* vals, i64* idx) {   \
        max_pool2d<T>(total, g, xv, x, vals, idx);                                                                  \
    }                                                                                                               \
    extern "C" __global__ void max_pool2d_backward_##s(i64 planes, i64 lead1, i64 oh, i64 ow, i64 plane, View4 gv,\
                                                       const T* g, View4 iv, const i64* idx, acc_t<T>* out,         \
                                                       unsigned long long* bad) {                                   \
        max_pool2d_backward<T>(planes, lead1, oh, ow, plane, gv, g, iv, idx, out, bad);                             \
    }                                                                                                               \
    extern "C" __global__ void avg_pool2d_##s(i64 total, PoolGeom g, int count_include_pad, View4 xv, const T* x, \
                                              T* out) {                                                             \
        avg_pool2d<T>(total, g, count_include_pad, xv, x, out);                                                     \
    }                                                                                                               \
    extern "C" __global__ void avg_pool2d_backward_##s(i64 total, PoolGeom g, int count_include_pad, View4 gv,    \
                                                       const T* grad, T* out) {                                     \
        avg_pool2d_backward<T>(total, g, count_include_pad, gv, grad, out);                                         \
    }                                                                                                               \
    extern "C" __global__ void adaptive_avg_pool2d_##s(i64 total, PoolGeom g, View4 xv, const T* x, T* out) {     \
        adaptive_avg_pool2d<T>(total, g, xv, x, out);                                                               \
    }                                                                                                               \
    extern "C" __global__ void adaptive_avg_pool2d_backward_##s(i64 total, PoolGeom g, View4 gv, const T* grad,   \
                                                                T* out) {                                           \
        adaptive_avg_pool2d_backward<T>(total, g, gv, grad, out);                                                   \
    }
POOL(f32, float)
POOL(f64, double)
POOL(bf16, bf16)
POOL(f16, f16)
