// Shared by the convolution and pooling modules: a strided operand addressed by up to four
// coordinates (an NCHW image batch, a column matrix). Mirrored by `View4` in
// engine/src/cuda/conv.rs.
#pragma once
#include "common.cuh"

// Storage offset and per-dim strides in elements. Lower-rank operands are left-padded with
// size-1, stride-0 dims.
struct View4 {
    i64 offset;
    i64 stride[4];
};

__device__ __forceinline__ i64 at4(const View4& v, i64 a, i64 b, i64 c, i64 d) {
    return v.offset + a * v.stride[0] + b * v.stride[1] + c * v.stride[2] + d * v.stride[3];
}
