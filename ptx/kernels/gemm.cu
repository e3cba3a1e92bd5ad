// Batched matrix products C[z] = A[z] · B[z] of strided operands, in three precisions:
//   gemm_f32, gemm_f64  exact: CUDA-core FMAs over shared-memory tiles;
//   gemm_tf32           tensor cores (mma.sync m16n8k8): inputs rounded to TF32, f32 sums;
//   gemm_bf16           tensor cores (mma.sync m16n8k16): the f32 inputs are rounded to bf16
//                       (nearest even) as tiles are staged in shared memory, f32 sums; a
//                       bf16-precision product of f32 tensors (tessera has no bf16 dtype).
// A is M×K with strides (a_rs, a_cs) and B is K×N with (b_rs, b_cs), in elements, so
// transposed and sliced views are read in place. The matrices of batch z start at
// strided_offset(a_batch, z) and strided_offset(b_batch, z) (zero strides on broadcast batch
// dims); C is a contiguous [batch, M, N]. Parameter lists mirror
// engine/src/cuda/ops/matmul.rs.
//
// Every kernel runs GEMM_THREADS threads per block, and loops over its tiles (blockIdx.x)
// and batches (blockIdx.z) with grid strides, so any grid size is correct.
#include "common.cuh"
#include "mma.cuh"

#define GEMM_THREADS 256

// ---- which output tile a block computes ----------------------------------------------------
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

// ---- global -> registers ---------------------------------------------------------------------
// A thread's share of an R×C tile: its i-th element is (r + i·dr, c + i·dc). Consecutive
// threads step along the dim with the smaller memory stride, so a warp's loads coalesce for
// a matrix and for its transpose alike.
struct TileWalk {
    int r, c, dr, dc;
};

template <int R, int C> __device__ __forceinline__ TileWalk tile_walk(i64 rs, i64 cs) {
    static_assert(GEMM_THREADS % R == 0 && GEMM_THREADS % C == 0 && (R * C) % GEMM_THREADS == 0,
                  "the tile must split evenly over the block");
    const int t = threadIdx.x;
    if (llabs(cs) <= llabs(rs)) return {t / C, t % C, GEMM_THREADS / C, 0};
    return {t % R, t / R, 0, GEMM_THREADS / R};
}

// The thread's share of the tile whose (0, 0) element is at p; only rows × cols of it lie
// inside the matrix, the rest reads as zero so partial edge tiles add nothing.
template <int N, typename T>
__device__ __forceinline__ void load_tile(T (&v)[N], const T* p, i64 rs, i64 cs, int rows, int cols, TileWalk w) {
#pragma unroll
    for (int i = 0; i < N; ++i) {
        const int r = w.r + i * w.dr, c = w.c + i * w.dc;
        v[i] = (r < rows && c < cols) ? p[r * rs + c * cs] : T(0);
    }
}

// ---- the tile loop every kernel shares -------------------------------------------------------
// Tiles: the shared-memory staging of one BM×BK tile of A and one BK×BN tile of B (put_a /
// put_b convert as they store). Acc: one thread's accumulators, with step(tiles) multiplying
// the staged tiles into them and store(..) writing the in-bounds ones out.
template <class Tiles, int NA, int NB, typename T>
__device__ __forceinline__ void stage(Tiles& s, const T (&ra)[NA], TileWalk wa, const T (&rb)[NB], TileWalk wb) {
#pragma unroll
    for (int i = 0; i < NA; ++i) s.put_a(wa.r + i * wa.dr, wa.c + i * wa.dc, ra[i]);
#pragma unroll
    for (int i = 0; i < NB; ++i) s.put_b(wb.r + i * wb.dr, wb.c + i * wb.dc, rb[i]);
}

// Two stages of tiles: while the block multiplies k-tile kt from one, the next k-tile's
// global loads are in flight and then staged into the other, so one barrier per k-tile
// suffices (a stage is rewritten only after every thread has passed the barrier that ends
// the step reading it).
template <typename T, class Tiles, class Acc>
__device__ void gemm_tiles(i64 batch, i64 M, i64 N, i64 K, Strided a_batch, const T* A, i64 a_rs, i64 a_cs,
                           Strided b_batch, const T* B, i64 b_rs, i64 b_cs, T* C) {
    constexpr int BM = Tiles::BM, BN = Tiles::BN, BK = Tiles::BK;
    constexpr int NA = BM * BK / GEMM_THREADS, NB = BK * BN / GEMM_THREADS;
    __shared__ Tiles s[2];
    const TileWalk wa = tile_walk<BM, BK>(a_rs, a_cs), wb = tile_walk<BK, BN>(b_rs, b_cs);
    const i64 tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN, k_tiles = (K + BK - 1) / BK;
    for (i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* a_z = A + strided_offset(a_batch, z);
        const T* b_z = B + strided_offset(b_batch, z);
        for (i64 t = blockIdx.x; t < tiles_m * tiles_n; t += gridDim.x) {
            const TileCoord tc = tile_coord(t, tiles_m, tiles_n, BM, BN);
            const int rows = (int)min((i64)BM, M - tc.m0), cols = (int)min((i64)BN, N - tc.n0);
            const T* a_tile = a_z + tc.m0 * a_rs;  // A[m0, 0]
            const T* b_tile = b_z + tc.n0 * b_cs;  // B[0, n0]
            Acc acc{};                             // zeroed: K = 0 gives zeros
            T ra[NA], rb[NB];
            if (k_tiles > 0) {
                const int kc = (int)min((i64)BK, K);
                load_tile(ra, a_tile, a_rs, a_cs, rows, kc, wa);
                load_tile(rb, b_tile, b_rs, b_cs, kc, cols, wb);
                stage(s[0], ra, wa, rb, wb);
                __syncthreads();
            }
            for (i64 kt = 0; kt < k_tiles; ++kt) {
                const bool more = kt + 1 < k_tiles;
                if (more) {
                    const i64 k0 = (kt + 1) * BK;
                    const int kc = (int)min((i64)BK, K - k0);
                    load_tile(ra, a_tile + k0 * a_cs, a_rs, a_cs, rows, kc, wa);
                    load_tile(rb, b_tile + k0 * b_rs, b_rs, b_cs, kc, cols, wb);
                }
                acc.step(s[kt & 1]);
                if (more) stage(s[(kt + 1) & 1], ra, wa, rb, wb);
                __syncthreads();
            }
            acc.store(C + z * M * N + tc.m0 * N + tc.n0, N, rows, cols);
        }
    }
}

// ---- exact SIMT tiles ------------------------------------------------------------------------
// Stored k-major, so the rows of A (and columns of B) a thread multiplies are contiguous;
// the padding keeps the transposing stores of A and of a transposed B free of bank conflicts.
template <typename T, int BM_, int BN_, int BK_> struct __align__(16) SimtTiles {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, PAD = 4;
    T a[BK][BM + PAD];
    T b[BK][BN + PAD];
    __device__ __forceinline__ void put_a(int m, int k, T v) { a[k][m] = v; }
    __device__ __forceinline__ void put_b(int k, int n, T v) { b[k][n] = v; }
};

// A thread's TM×TN outputs, in 4-wide strips: rows i/4·(BM/GM) + ty·4 + i%4 and columns
// j/4·(BN/GN) + tx·4 + j%4, so each k-step reads 4-wide runs of shared memory and the
// threads of a warp read neighbouring runs.
template <typename T, int BM, int BN, int TM, int TN> struct SimtAcc {
    static_assert((BM / TM) * (BN / TN) == GEMM_THREADS, "one thread per TM×TN block of outputs");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "outputs come in 4-wide strips");
    static constexpr int TX = BN / TN, GM = TM / 4, GN = TN / 4;
    T c[TM][TN];

    static __device__ __forceinline__ int row(int i) { return (i / 4) * (BM / GM) + (threadIdx.x / TX) * 4 + i % 4; }
    static __device__ __forceinline__ int col(int j) { return (j / 4) * (BN / GN) + (threadIdx.x % TX) * 4 + j % 4; }

    template <class Tiles> __device__ __forceinline__ void step(const Tiles& s) {
#pragma unroll
        for (int k = 0; k < Tiles::BK; ++k) {
            T a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = s.a[k][row(i)];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = s.b[k][col(j)];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) c[i][j] = fma(a[i], b[j], c[i][j]);
        }
    }

    __device__ __forceinline__ void store(T* out, i64 ld, int rows, int cols) const {
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            if (row(i) >= rows) continue;
#pragma unroll
            for (int j = 0; j < TN; ++j)
                if (col(j) < cols) out[row(i) * ld + col(j)] = c[i][j];
        }
    }
};

#include "gemm_tc.cuh"

// ---- entry points ----------------------------------------------------------------------------
#define GEMM_PARAMS(T)                                                                                            \
    i64 batch, i64 m, i64 n, i64 k, Strided a_batch, const T *a, i64 a_rs, i64 a_cs, Strided b_batch, const T *b, \
        i64 b_rs, i64 b_cs, T *c
#define GEMM_ARGS batch, m, n, k, a_batch, a, a_rs, a_cs, b_batch, b, b_rs, b_cs, c

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_f32(GEMM_PARAMS(float)) {
    gemm_tiles<float, SimtTiles<float, 128, 128, 8>, SimtAcc<float, 128, 128, 8, 8>>(GEMM_ARGS);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_f64(GEMM_PARAMS(double)) {
    gemm_tiles<double, SimtTiles<double, 64, 64, 8>, SimtAcc<double, 64, 64, 4, 4>>(GEMM_ARGS);
}


// ---- tensor-core entry points (gemm_tc.cuh) ----------------------------------------------------
__device__ __forceinline__ unsigned round_tf32(float x) { return f32_to_tf32(x); }

#define PACK_PARAMS(Out) \
    i64 batch, i64 rows, i64 k, i64 ld, Strided src_batch, const float *src, i64 rs, i64 ks, Out *dst
#define PACK_ARGS batch, rows, k, ld, src_batch, src, rs, ks, dst

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_tf32(PACK_PARAMS(unsigned)) {
    pack_tiles<unsigned, round_tf32>(PACK_ARGS);
}

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_bf16(PACK_PARAMS(unsigned short)) {
    pack_tiles<unsigned short, f32_to_bf16>(PACK_ARGS);
}

#define TC_PARAMS(T) \
    i64 batch, i64 m, i64 n, i64 k, const T *a, i64 lda, i64 a_bs, const T *b, i64 ldb, i64 b_bs, float *c
#define TC_ARGS batch, m, n, k, a, lda, a_bs, b, ldb, b_bs, c

// name, bytes per element, mma, warps down × across, stages. 128 threads: two blocks per SM
// (registers: 128 accumulators + 64 fragment registers a thread).
#define TC_KERNEL(name, T, ELEM, MMA, WM, WN, ST)                                                        \
    extern "C" __global__ void __launch_bounds__(32 * WM * WN, WM * WN == 4 ? 2 : 1) name(TC_PARAMS(T)) { \
        tc_gemm<TcShape<ELEM, WM, WN, ST>, MMA>(TC_ARGS);                                                 \
    }

TC_KERNEL(gemm_tf32, unsigned, 4, MmaTf32, 2, 2, 3)
TC_KERNEL(gemm_bf16, unsigned short, 2, MmaBf16, 2, 2, 3)
// Tuning candidates (TESSERA_GEMM_VARIANT).
TC_KERNEL(gemm_tf32_s4, unsigned, 4, MmaTf32, 2, 2, 4)
TC_KERNEL(gemm_bf16_s4, unsigned short, 2, MmaBf16, 2, 2, 4)
TC_KERNEL(gemm_tf32_s2, unsigned, 4, MmaTf32, 2, 2, 2)
TC_KERNEL(gemm_bf16_s2, unsigned short, 2, MmaBf16, 2, 2, 2)
TC_KERNEL(gemm_tf32_w8, unsigned, 4, MmaTf32, 2, 4, 3)
TC_KERNEL(gemm_bf16_w8, unsigned short, 2, MmaBf16, 2, 4, 3)
TC_KERNEL(gemm_tf32_w8s4, unsigned, 4, MmaTf32, 2, 4, 4)
TC_KERNEL(gemm_bf16_w8s4, unsigned short, 2, MmaBf16, 2, 4, 4)
