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

// ---- tensor-core tiles -----------------------------------------------------------------------
// 128×128 output tiles and k-tiles of 16 (with 32, the staging registers push the kernels
// past 255 registers into spills); 8 warps in a 2×4 grid, each owning a 64×32 piece of the
// tile as 4×4 m16n8 accumulator fragments.
#define MMA_BM 128
#define MMA_BN 128
#define MMA_BK 16

// TF32: A as [m][k] and B as [k][n], already rounded (cvt.rna) and kept as tf32 bit
// patterns. Row pitches of 20 and 136 words put a warp's fragment loads on 32 distinct banks.
struct __align__(16) Tf32Tiles {
    static constexpr int BM = MMA_BM, BN = MMA_BN, BK = MMA_BK, KSTEP = 8;
    static constexpr int AP = BK + 4, BP = BN + 8;
    unsigned a[BM * AP];
    unsigned b[BK * BP];
    __device__ __forceinline__ void put_a(int m, int k, float v) { a[m * AP + k] = f32_to_tf32(v); }
    __device__ __forceinline__ void put_b(int k, int n, float v) { b[k * BP + n] = f32_to_tf32(v); }
    // The 16×8 A block at (m, k): (g, q) (g+8, q) (g, q+4) (g+8, q+4).
    __device__ __forceinline__ void a_frag(unsigned (&f)[4], int m, int k, int g, int q) const {
        const unsigned* p = a + (m + g) * AP + k + q;
        f[0] = p[0];
        f[1] = p[8 * AP];
        f[2] = p[4];
        f[3] = p[8 * AP + 4];
    }
    // The 8×8 B block at (k, n): (q, g) (q+4, g).
    __device__ __forceinline__ void b_frag(unsigned (&f)[2], int n, int k, int g, int q) const {
        const unsigned* p = b + (k + q) * BP + n + g;
        f[0] = p[0];
        f[1] = p[4 * BP];
    }
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_m16n8k8_tf32(d, a, b);
    }
};

// f32 -> bf16 bits, rounded to nearest even (what cvt.rn.bf16.f32 gives); NaN stays NaN.
__device__ __forceinline__ unsigned short f32_to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// BF16: A as [m][k] and B transposed as [n][k], since a register of either fragment holds
// two k-consecutive elements: each is one 32-bit load. A row pitch of 24 halves (12 words)
// puts a warp's fragment loads on 32 distinct banks.
struct __align__(16) Bf16Tiles {
    static constexpr int BM = MMA_BM, BN = MMA_BN, BK = MMA_BK, KSTEP = 16;
    static constexpr int P = BK + 8;
    unsigned short a[BM * P];
    unsigned short b[BN * P];
    __device__ __forceinline__ void put_a(int m, int k, float v) { a[m * P + k] = f32_to_bf16(v); }
    __device__ __forceinline__ void put_b(int k, int n, float v) { b[n * P + k] = f32_to_bf16(v); }
    // Elements (row, k) and (row, k+1) of a [row][k] array as one register, k even.
    static __device__ __forceinline__ unsigned pair(const unsigned short* p) {
        return *reinterpret_cast<const unsigned*>(p);
    }
    // The 16×16 A block at (m, k): rows g and g+8, k pairs 2q and 2q+8.
    __device__ __forceinline__ void a_frag(unsigned (&f)[4], int m, int k, int g, int q) const {
        const unsigned short* p = a + (m + g) * P + k + 2 * q;
        f[0] = pair(p);
        f[1] = pair(p + 8 * P);
        f[2] = pair(p + 8);
        f[3] = pair(p + 8 * P + 8);
    }
    // The 16×8 B block at (k, n): column g, k pairs 2q and 2q+8.
    __device__ __forceinline__ void b_frag(unsigned (&f)[2], int n, int k, int g, int q) const {
        const unsigned short* p = b + (n + g) * P + k + 2 * q;
        f[0] = pair(p);
        f[1] = pair(p + 8);
    }
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_m16n8k16_bf16(d, a, b);
    }
};

template <class Tiles> struct MmaAcc {
    static_assert(GEMM_THREADS == 256 && Tiles::BM == 128 && Tiles::BN == 128, "8 warps as 2 × 4 pieces of 64 × 32");
    float c[4][4][4];  // [m16 block][n8 block][fragment element]

    static __device__ __forceinline__ int warp_m() { return (threadIdx.x / 32) / 4 * 64; }
    static __device__ __forceinline__ int warp_n() { return (threadIdx.x / 32) % 4 * 32; }

    __device__ __forceinline__ void step(const Tiles& s) {
        const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4, wm = warp_m(), wn = warp_n();
#pragma unroll
        for (int k = 0; k < Tiles::BK; k += Tiles::KSTEP) {
            unsigned a[4][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 4; ++i) s.a_frag(a[i], wm + i * 16, k, g, q);
#pragma unroll
            for (int j = 0; j < 4; ++j) s.b_frag(b[j], wn + j * 8, k, g, q);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) Tiles::mma(c[i][j], a[i], b[j]);
        }
    }

    // Fragment element e sits at (g + 8·(e / 2), 2q + e % 2) of its 16×8 block.
    __device__ __forceinline__ void store(float* out, i64 ld, int rows, int cols) const {
        const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4, wm = warp_m(), wn = warp_n();
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = wm + i * 16 + g + 8 * (e / 2), cc = wn + j * 8 + 2 * q + e % 2;
                    if (r < rows && cc < cols) out[r * ld + cc] = c[i][j][e];
                }
    }
};

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

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_tf32(GEMM_PARAMS(float)) {
    gemm_tiles<float, Tf32Tiles, MmaAcc<Tf32Tiles>>(GEMM_ARGS);
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_bf16(GEMM_PARAMS(float)) {
    gemm_tiles<float, Bf16Tiles, MmaAcc<Bf16Tiles>>(GEMM_ARGS);
}
