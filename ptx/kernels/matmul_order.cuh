// The order in which GEMM blocks take their output tiles (matmul.cu, matmul_tc.cuh).
#pragma once
#include "common.cuh"

// Tiles are numbered in groups of 8 tile-rows, down each column of a group before moving
// right, so the blocks running at once share A row-panels and B column-panels in L2.
struct TileCoord {
    i64 m0, n0;
};

__device__ __forceinline__ TileCoord tile_coord(i64 t, i64 tiles_m, i64 tiles_n, int bm, int bn) {
    const i64 group = 8;
    const i64 per_group = group * tiles_n;
    const i64 first = (t / per_group) * group;
    const i64 rows = min(tiles_m - first, group);
    const i64 r = t % per_group;
    return {(first + r % rows) * bm, (r / rows) * bn};
}
