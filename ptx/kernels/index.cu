// Indexing and layout kernels: index checks, gather (serves index_select too), index_add,
// scatter_add, masked_fill, one_hot, a strided-into-strided copy (cat, scatter_into_zeros),
// pad and its reflect backward, and tile (repeat). Rust side: engine/src/cuda/index.rs and
// engine/src/cuda/shape.rs.
//
// Accumulating kernels (index_add, scatter_add, the pad backward) give each output element to
// one thread, which adds its contributions in the CPU backend's order: results are
// bit-identical to the CPU's and do not depend on the launch shape (no float atomics). For
// bf16 / f16 they add in f32 (acc_t) and round once per output element, so they stay
// deterministic too; the other kernels only move values (a `T` scalar argument of a half is
// its 2-byte pattern).
#include "common.cuh"
#include "half.cuh"

// Per-dim extents beside a `Strided` whose dims are all kept (not merged): kernels that need
// each dim's own coordinate (pad, tile, scatter_add) take them this way.
struct Extents {
    i64 v[TS_MAX_RANK];
};

// ---- index checks --------------------------------------------------------------------------
// The first (logical, row-major) position of an index outside 0..size, as an atomic minimum
// into `first`, which the caller sets to n beforehand: the CPU backend reports that one too.
extern "C" __global__ void first_bad_index(i64 n, Strided s, const i64* idx, i64 size, unsigned long long* first) {
    TS_GRID_STRIDE(i, n) {
        i64 v = idx[strided_offset(s, i)];
        if (v < 0 || v >= size) atomicMin(first, (unsigned long long)i);
    }
}

// ---- gather / index_select -----------------------------------------------------------------
// out[i] = x[base(i) + idx[at(i)] * axis_stride]: `sx` is x's layout over the output shape
// with the gathered axis' stride zeroed, `si` the index's layout over the output shape (for
// index_select, the 1-D index broadcast along every other axis).
template <typename T>
__device__ void gather(i64 n, Strided sx, i64 axis_stride, const T* x, Strided si, const i64* idx, T* out) {
    TS_GRID_STRIDE(i, n) { out[i] = x[strided_offset(sx, i) + idx[strided_offset(si, i)] * axis_stride]; }
}

// ---- index_add -----------------------------------------------------------------------------
// out = self with src's slices added along the axis: output element i (axis coordinate t)
// adds src slices order[starts[t]..starts[t+1]], the index positions that hold t in
// increasing order (built on the host), as the CPU does. `sr` is src's layout over the
// output shape with the axis' stride zeroed.
template <typename T>
__device__ void index_add(i64 n, i64 inner, i64 axis_len, Strided ss, const T* self, Strided sr, i64 src_axis_stride,
                          const T* src, const i64* starts, const i64* order, T* out) {
    TS_GRID_STRIDE(i, n) {
        i64 t = (i / inner) % axis_len;
        i64 base = strided_offset(sr, i);
        acc_t<T> acc = to_acc(self[strided_offset(ss, i)]);
        for (i64 p = starts[t]; p < starts[t + 1]; ++p) acc += to_acc(src[base + order[p] * src_axis_stride]);
        out[i] = from_acc<T>(acc);
    }
}

// ---- scatter_add ---------------------------------------------------------------------------
// out = self with src[j] added at index[j]'s target along `axis`. Each output element scans
// the index line that can reach it (same coordinates off the axis) in increasing order,
// the CPU's row-major accumulation order. All three layouts keep every dim: `so` over
// self's shape, `si` over the index's, `ss` over src's (only its strides are used).
template <typename T>
__device__ void scatter_add(i64 n, int axis, Strided so, const T* self, Strided si, const i64* idx, Strided ss,
                            const T* src, T* out) {
    TS_GRID_STRIDE(i, n) {
        i64 rest = i, self_off = so.offset, idx_off = si.offset, src_off = ss.offset, target = 0;
        bool reached = true;
        for (int d = so.rank - 1; d >= 0; --d) {
            i64 c = rest % so.shape[d];
            rest /= so.shape[d];
            self_off += c * so.strides[d];
            if (d == axis) {
                target = c;
            } else {
                reached = reached && c < si.shape[d];
                idx_off += c * si.strides[d];
                src_off += c * ss.strides[d];
            }
        }
        acc_t<T> acc = to_acc(self[self_off]);
        if (reached) {
            for (i64 j = 0; j < si.shape[axis]; ++j) {
                if (idx[idx_off + j * si.strides[axis]] == target) acc += to_acc(src[src_off + j * ss.strides[axis]]);
            }
        }
        out[i] = from_acc<T>(acc);
    }
}

// ---- masked_fill / one_hot -----------------------------------------------------------------
template <typename T>
__device__ void masked_fill(i64 n, Strided sx, const T* x, Strided sm, const u8* m, T v, T* out) {
    TS_GRID_STRIDE(i, n) { out[i] = m[strided_offset(sm, i)] ? v : x[strided_offset(sx, i)]; }
}

extern "C" __global__ void one_hot(i64 n, i64 classes, Strided sl, const i64* labels, float* out) {
    TS_GRID_STRIDE(i, n) { out[i] = labels[strided_offset(sl, i / classes)] == i % classes ? 1.0f : 0.0f; }
}

// ---- strided copies ------------------------------------------------------------------------
// dst view ← src view, both over one logical shape; the dst view must not overlap itself.
template <typename T> __device__ void copy_into(i64 n, Strided sd, T* dst, Strided ss, const T* src) {
    TS_GRID_STRIDE(i, n) { dst[strided_offset(sd, i)] = src[strided_offset(ss, i)]; }
}

// out (contiguous, shape `out_shape`) tiles x (every dim kept, leading 1s for new axes):
// output coordinate c reads x at c mod x's extent, per dim.
template <typename T> __device__ void tile(i64 n, Strided sx, Extents out_shape, const T* x, T* out) {
    TS_GRID_STRIDE(i, n) {
        i64 rest = i, off = sx.offset;
        for (int d = sx.rank - 1; d >= 0; --d) {
            i64 c = rest % out_shape.v[d];
            rest /= out_shape.v[d];
            off += (c % sx.shape[d]) * sx.strides[d];
        }
        out[i] = x[off];
    }
}

// ---- pad -----------------------------------------------------------------------------------
// Source coordinate of output coordinate o along an axis of length len padded by `before`;
// -1 where a constant pad shows the fill value. Reflect mirrors without repeating the edge.
__device__ __forceinline__ i64 pad_source(i64 o, i64 before, i64 len, int reflect) {
    i64 s = o - before;
    if (!reflect) return (s >= 0 && s < len) ? s : -1;
    if (s < 0) s = -s;
    return s >= len ? 2 * (len - 1) - s : s;
}

// out (contiguous, `out_shape`) = x (every dim kept) padded by `before` per dim.
template <typename T>
__device__ void pad(i64 n, Strided sx, Extents out_shape, Extents before, int reflect, T fill, const T* x, T* out) {
    TS_GRID_STRIDE(i, n) {
        i64 rest = i, off = sx.offset;
        bool inside = true;
        for (int d = sx.rank - 1; d >= 0 && inside; --d) {
            i64 c = rest % out_shape.v[d];
            rest /= out_shape.v[d];
            i64 s = pad_source(c, before.v[d], sx.shape[d], reflect);
            inside = s >= 0;
            off += s * sx.strides[d];
        }
        out[i] = inside ? x[off] : fill;
    }
}

// The reflect-pad backward along one axis of a contiguous [outer, padded_len, inner]
// gradient: entry m of the unpadded axis sums the (at most three) padded positions that
// show it, in increasing position order from zero, as the CPU does.
template <typename T>
__device__ void pad_backward_reflect(i64 n, i64 inner, i64 len, i64 padded_len, i64 before, const T* g, T* out) {
    TS_GRID_STRIDE(i, n) {
        i64 c = i % inner, m = (i / inner) % len, o = i / (inner * len);
        const T* line = g + o * padded_len * inner + c;
        acc_t<T> acc = 0;
        if (m >= 1 && m <= before) acc += to_acc(line[(before - m) * inner]);
        acc += to_acc(line[(before + m) * inner]);
        i64 right = before + 2 * (len - 1) - m;
        if (m < len - 1 && right < padded_len) acc += to_acc(line[right * inner]);
        out[i] = from_acc<T>(acc);
    }
}

// ---- extern "C" entry points ----------------------------------------------------------------
#define TS_ANY(M) M(f32, float) M(f64, double) M(i64, i64) M(u8, u8) M(bf16, bf16) M(f16, f16)
#define TS_FLOAT(M) M(f32, float) M(f64, double) M(bf16, bf16) M(f16, f16)

#define ANY_DTYPE(s, T)                                                                                             \
    extern "C" __global__ void gather_##s(i64 n, Strided sx, i64 axis_stride, const T* x, Strided si, const i64* idx, \
                                          T* out) {                                                                 \
        gather<T>(n, sx, axis_stride, x, si, idx, out);                                                             \
    }                                                                                                               \
    extern "C" __global__ void masked_fill_##s(i64 n, Strided sx, const T* x, Strided sm, const u8* m, T v, T* out) { \
        masked_fill<T>(n, sx, x, sm, m, v, out);                                                                    \
    }                                                                                                               \
    extern "C" __global__ void copy_into_##s(i64 n, Strided sd, T* dst, Strided ss, const T* src) {                \
        copy_into<T>(n, sd, dst, ss, src);                                                                          \
    }                                                                                                               \
    extern "C" __global__ void tile_##s(i64 n, Strided sx, Extents out_shape, const T* x, T* out) {                \
        tile<T>(n, sx, out_shape, x, out);                                                                          \
    }                                                                                                               \
    extern "C" __global__ void pad_##s(i64 n, Strided sx, Extents out_shape, Extents before, int reflect, T fill,  \
                                       const T* x, T* out) {                                                        \
        pad<T>(n, sx, out_shape, before, reflect, fill, x, out);                                                    \
    }
TS_ANY(ANY_DTYPE)

#define FLOAT_DTYPE(s, T)                                                                                           \
    extern "C" __global__ void index_add_##s(i64 n, i64 inner, i64 axis_len, Strided ss, const T* self, Strided sr, \
                                             i64 src_axis_stride, const T* src, const i64* starts, const i64* order, \
                                             T* out) {                                                              \
        index_add<T>(n, inner, axis_len, ss, self, sr, src_axis_stride, src, starts, order, out);                   \
    }                                                                                                               \
    extern "C" __global__ void scatter_add_##s(i64 n, int axis, Strided so, const T* self, Strided si,             \
                                               const i64* idx, Strided ss, const T* src, T* out) {                 \
        scatter_add<T>(n, axis, so, self, si, idx, ss, src, out);                                                   \
    }                                                                                                               \
    extern "C" __global__ void pad_backward_reflect_##s(i64 n, i64 inner, i64 len, i64 padded_len, i64 before,     \
                                                        const T* g, T* out) {                                       \
        pad_backward_reflect<T>(n, inner, len, padded_len, before, g, out);                                         \
    }
TS_FLOAT(FLOAT_DTYPE)
