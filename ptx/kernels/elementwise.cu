// Elementwise kernels: strided copy, unary ops and their fused backward, broadcasting binary
// ops, comparisons, where, casts and fill. Op codes mirror engine/src/cuda/elementwise.rs.
// bf16 / f16 are storage only (half.cuh): the math below runs in acc_t<T>, f32 for them.
#include "common.cuh"
#include "half.cuh"

// ---- copy ----------------------------------------------------------------------------------
template <typename T>
__device__ void copy_strided(i64 n, Strided s, const T* src, T* dst) {
    TS_GRID_STRIDE(i, n) { dst[i] = src[strided_offset(s, i)]; }
}

// ---- unary ---------------------------------------------------------------------------------
// Codes: 0 neg 1 abs 2 exp 3 log 4 sqrt 5 rsqrt 6 sin 7 cos 8 tanh 9 sigmoid 10 relu
// 11 gelu(erf) 12 gelu(tanh) 13 silu 14 softplus 15 sign 16 floor 17 round(half even)
// 18 square 19 recip 20 clamp(p0, p1) 21 pow(x, p0) 22 x + p0 23 x * p0
template <typename T> __device__ __forceinline__ T sigmoid_of(T x) {
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    T e = exp(x);
    return e / (T(1) + e);
}

template <typename T> __device__ __forceinline__ T unary_forward(int op, T x, double p0, double p1) {
    const T sqrt_2_over_pi = T(0.7978845608028654);
    switch (op) {
    case 0: return -x;
    case 1: return fabs(x);
    case 2: return exp(x);
    case 3: return log(x);
    case 4: return sqrt(x);
    case 5: return T(1) / sqrt(x);
    case 6: return sin(x);
    case 7: return cos(x);
    case 8: return tanh(x);
    case 9: return sigmoid_of(x);
    case 10: return x > T(0) ? x : T(0);
    case 11: return T(0.5) * x * (T(1) + erf(x * T(0.7071067811865476)));
    case 12: return T(0.5) * x * (T(1) + tanh(sqrt_2_over_pi * (x + T(0.044715) * x * x * x)));
    case 13: return x * sigmoid_of(x);
    case 14: return fmax(x, T(0)) + log1p(exp(-fabs(x)));
    case 15: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case 16: return floor(x);
    case 17: return rint(x);
    case 18: return x * x;
    case 19: return T(1) / x;
    case 20: return fmin(fmax(x, T(p0)), T(p1));
    case 21: return pow(x, T(p0));
    case 22: return x + T(p0);
    case 23: return x * T(p0);
    }
    return x;
}

// f'(x) given x and y = f(x); the same subgradients as the CPU backend.
template <typename T> __device__ __forceinline__ T unary_derivative(int op, T x, T y, double p0, double p1) {
    const T sqrt_2_over_pi = T(0.7978845608028654);
    switch (op) {
    case 0: return T(-1);
    case 1: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case 2: return y;
    case 3: return T(1) / x;
    case 4: return T(0.5) / y;
    case 5: return T(-0.5) * y * y * y;
    case 6: return cos(x);
    case 7: return -sin(x);
    case 8: return T(1) - y * y;
    case 9: return y * (T(1) - y);
    case 10: return x > T(0) ? T(1) : T(0);
    case 11: {
        T cdf = T(0.5) * (T(1) + erf(x * T(0.7071067811865476)));
        T pdf = exp(T(-0.5) * x * x) * T(0.3989422804014327);
        return cdf + x * pdf;
    }
    case 12: {
        T t = tanh(sqrt_2_over_pi * (x + T(0.044715) * x * x * x));
        T dinner = sqrt_2_over_pi * (T(1) + T(3.0 * 0.044715) * x * x);
        return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner;
    }
    case 13: {
        T s = sigmoid_of(x);
        return s * (T(1) + x * (T(1) - s));
    }
    case 14: return sigmoid_of(x);
    case 15: case 16: case 17: return T(0);
    case 18: return T(2) * x;
    case 19: return -y * y;
    case 20: return (x >= T(p0) && x <= T(p1)) ? T(1) : T(0);
    case 21: return T(p0) * pow(x, T(p0 - 1.0));
    case 22: return T(1);
    case 23: return T(p0);
    }
    return T(0);
}

template <typename T>
__device__ void unary(i64 n, int op, double p0, double p1, Strided sx, const T* x, T* y) {
    TS_GRID_STRIDE(i, n) { y[i] = from_acc<T>(unary_forward<acc_t<T>>(op, to_acc(x[strided_offset(sx, i)]), p0, p1)); }
}

template <typename T>
__device__ void unary_backward(i64 n, int op, double p0, double p1, Strided sx, const T* x, Strided sy, const T* y,
                               Strided sg, const T* g, T* out) {
    typedef acc_t<T> A;
    TS_GRID_STRIDE(i, n) {
        A xv = to_acc(x[strided_offset(sx, i)]), yv = to_acc(y[strided_offset(sy, i)]);
        out[i] = from_acc<T>(to_acc(g[strided_offset(sg, i)]) * unary_derivative<A>(op, xv, yv, p0, p1));
    }
}

// ---- binary --------------------------------------------------------------------------------
// Codes: 0 add 1 sub 2 mul 3 div 4 pow 5 maximum 6 minimum (ties to the left operand).
template <typename T> __device__ __forceinline__ T binary_apply(int op, T a, T b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return pow(a, b);
    case 5: return b > a ? b : a;
    case 6: return b < a ? b : a;
    }
    return a;
}

template <typename T>
__device__ void binary(i64 n, int op, Strided sa, const T* a, Strided sb, const T* b, T* out) {
    TS_GRID_STRIDE(i, n) {
        out[i] = from_acc<T>(binary_apply<acc_t<T>>(op, to_acc(a[strided_offset(sa, i)]), to_acc(b[strided_offset(sb, i)])));
    }
}

// Codes: 0 eq 1 ne 2 lt 3 le 4 gt 5 ge.
template <typename T>
__device__ void compare(i64 n, int op, Strided sa, const T* a, Strided sb, const T* b, u8* out) {
    TS_GRID_STRIDE(i, n) {
        // The halves compare their exact f32 values.
        acc_t<T> x = to_acc(a[strided_offset(sa, i)]), y = to_acc(b[strided_offset(sb, i)]);
        bool r = false;
        switch (op) {
        case 0: r = x == y; break;
        case 1: r = x != y; break;
        case 2: r = x < y; break;
        case 3: r = x <= y; break;
        case 4: r = x > y; break;
        case 5: r = x >= y; break;
        }
        out[i] = r ? 1 : 0;
    }
}

template <typename T>
__device__ void where_select(i64 n, Strided sc, const u8* c, Strided sa, const T* a, Strided sb, const T* b, T* out) {
    TS_GRID_STRIDE(i, n) { out[i] = c[strided_offset(sc, i)] ? a[strided_offset(sa, i)] : b[strided_offset(sb, i)]; }
}

template <typename T> __device__ void fill(i64 n, double value, T* out) {
    T v = from_acc<T>(value);
    TS_GRID_STRIDE(i, n) { out[i] = v; }
}

// Casts follow Rust's `as` for float→int (toward zero) and map anything→u8 to x != 0. A
// bf16 / f16 source enters as its exact f32 value (to_acc), so it then casts as f32 does; a
// bf16 / f16 destination rounds once from f32 (i64 and f64 sources pass through f32 first, as
// the host's conversions do).
template <typename D> struct CastTo {
    template <typename V> static __device__ __forceinline__ D from(V x) { return from_acc<D>(x); }
};
template <> struct CastTo<u8> {
    template <typename V> static __device__ __forceinline__ u8 from(V x) { return x != V(0); }
    static __device__ __forceinline__ u8 from(u8 x) { return x; }  // u8 -> u8 copies, as before
};

template <typename S, typename D> __device__ void cast(i64 n, Strided s, const S* src, D* dst) {
    TS_GRID_STRIDE(i, n) { dst[i] = CastTo<D>::from(to_acc(src[strided_offset(s, i)])); }
}

// ---- extern "C" entry points ----------------------------------------------------------------
#define TS_ANY(M) M(f32, float) M(f64, double) M(i64, i64) M(u8, u8) M(bf16, bf16) M(f16, f16)
#define TS_FLOAT(M) M(f32, float) M(f64, double) M(bf16, bf16) M(f16, f16)

#define COPY(s, T) \
    extern "C" __global__ void copy_strided_##s(i64 n, Strided st, const T* src, T* dst) { copy_strided<T>(n, st, src, dst); }
TS_ANY(COPY)

#define FILL(s, T) \
    extern "C" __global__ void fill_##s(i64 n, double v, T* out) { fill<T>(n, v, out); }
TS_ANY(FILL)

#define UNARY(s, T)                                                                                                  \
    extern "C" __global__ void unary_##s(i64 n, int op, double p0, double p1, Strided sx, const T* x, T* y) {       \
        unary<T>(n, op, p0, p1, sx, x, y);                                                                           \
    }                                                                                                                \
    extern "C" __global__ void unary_backward_##s(i64 n, int op, double p0, double p1, Strided sx, const T* x,      \
                                                  Strided sy, const T* y, Strided sg, const T* g, T* out) {          \
        unary_backward<T>(n, op, p0, p1, sx, x, sy, y, sg, g, out);                                                  \
    }                                                                                                                \
    extern "C" __global__ void binary_##s(i64 n, int op, Strided sa, const T* a, Strided sb, const T* b, T* out) {  \
        binary<T>(n, op, sa, a, sb, b, out);                                                                         \
    }
TS_FLOAT(UNARY)

#define CMP_WHERE(s, T)                                                                                              \
    extern "C" __global__ void compare_##s(i64 n, int op, Strided sa, const T* a, Strided sb, const T* b, u8* out) { \
        compare<T>(n, op, sa, a, sb, b, out);                                                                        \
    }                                                                                                                \
    extern "C" __global__ void where_##s(i64 n, Strided sc, const u8* c, Strided sa, const T* a, Strided sb,        \
                                         const T* b, T* out) {                                                       \
        where_select<T>(n, sc, c, sa, a, sb, b, out);                                                                \
    }
TS_ANY(CMP_WHERE)

#define CAST_FROM(s, S)                                                                                          \
    CAST(s, S, f32, float) CAST(s, S, f64, double) CAST(s, S, i64, i64) CAST(s, S, u8, u8) CAST(s, S, bf16, bf16) \
    CAST(s, S, f16, f16)
#define CAST(s, S, d, D) \
    extern "C" __global__ void cast_##s##_##d(i64 n, Strided st, const S* src, D* dst) { cast<S, D>(n, st, src, dst); }
TS_ANY(CAST_FROM)
