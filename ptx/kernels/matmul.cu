// Batched matrix products C[z] = A[z] · B[z], C a contiguous [batch, M, N]:
//   gemm_f32, gemm_f64  exact, CUDA-core FMAs, register-staged shared-memory tiles. A is M×K
//                       with strides (a_rs, a_cs) and B is K×N with (b_rs, b_cs), in elements,
//                       so transposed and sliced views are read in place; the matrices of batch
//                       z start at strided_offset(a_batch, z) and strided_offset(b_batch, z)
//                       (zero strides on broadcast batch dims).
//   gemm_f32_packed     exact f32 with a cp.async pipeline, from operands stored as K rows of
//                       M (A) and of N (B) with 16-byte aligned rows: in place where they are,
//                       else packed first by pack_f32. For larger products.
//   gemm_tf32 / _bf16   tensor cores (mma.sync, ldmatrix, cp.async pipeline; matmul_tc.cuh) on
//                       operands packed by pack_tf32 / pack_bf16: f32 tensors rounded once to
//                       TF32 / bf16 and stored K-contiguous; f32 accumulators, f32 out.
//   gemm_f16            the f32-output product on f16 operands (gemm_bf16 serves bf16 ones):
//                       half tensors whose f32 accumulators are kept (convolutions).
//   gemm_bf16_bf16out   the same product for bf16 / f16 tensors (m16n8k16 bf16 / f16 mma),
//   gemm_f16_f16out     f32 accumulators rounded once (nearest even) to the tensors' dtype on
//                       the way out. Operands that are K-contiguous with 16-byte aligned rows
//                       are read in place; others are first copied K-contiguous, unchanged,
//                       by pack_b16 (any strides, 16-bit values moved as they are).
// Parameter lists mirror engine/src/cuda/matmul.rs, which picks the kernel and packs.
//
// Every kernel loops over its tiles (blockIdx.x) and batches (blockIdx.z) with grid strides,
// so any grid size is correct. GEMM_THREADS threads per block except the tensor-core
// kernels (TcShape::THREADS) and the packs (PACK_THREADS).
#include "common.cuh"
#include "matmul_order.cuh"
#include "mma.cuh"

#define GEMM_THREADS 256

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

#include "matmul_tc.cuh"

// ---- exact f32 from packed operands: cp.async pipeline ------------------------------------------
// A as K rows of M (M contiguous, row pitch lda) and B as K rows of N (pitch ldb), both with
// 16-byte aligned rows: packed copies (pack_f32), or the operands themselves where they
// already are so. The z-th matrices start at strided_offset(a_batch, z) and (b_batch, z).
// 128×128 tiles, K in slices of 16 rows through a 3-stage cp.async ring; the SimtAcc
// outer products read them as the register-staged kernel's tiles (stored k-major).
#define PIPE_BK 16
#define PIPE_STAGES 3
struct PipeTiles {
    static constexpr int BM = 128, BN = 128, BK = PIPE_BK;
    float a[BK][BM];
    float b[BK][BN];
};

// Queues the copies of rows k0.. k0 + BK of a K × `width` operand (pitch ld) into dst:
// thread t copies 16-byte chunk t % 32 of rows t / 32, t / 32 + 8; chunks past `width` or K
// are zero-filled.
__device__ __forceinline__ void pipe_load(SmemAddr dst, const float* p, i64 ld, i64 col0, i64 width, i64 K, i64 k0) {
    constexpr int CHUNKS = 128 / 4, RSTEP = GEMM_THREADS / CHUNKS;
    const int c = threadIdx.x % CHUNKS, r0 = threadIdx.x / CHUNKS;
    const i64 col = col0 + 4 * c;
    const int bytes = (int)max((i64)0, min((i64)16, (width - col) * 4));
#pragma unroll
    for (int i = 0; i < PIPE_BK / RSTEP; ++i) {
        const int r = r0 + i * RSTEP;
        const bool ok = k0 + r < K && bytes > 0;
        cp_async16(dst + (r * 128 + 4 * c) * 4, ok ? p + (k0 + r) * ld + col : p, ok ? bytes : 0);
    }
}

__device__ void gemm_f32_pipelined(i64 batch, i64 M, i64 N, i64 K, Strided a_batch, const float* A, i64 lda,
                                   Strided b_batch, const float* B, i64 ldb, float* C) {
    typedef SimtAcc<float, 128, 128, 8, 8> Acc;
    constexpr int STAGE_BYTES = sizeof(PipeTiles);
    unsigned char* base = dynamic_smem();
    const SmemAddr smem = smem_addr(base);
    const i64 tiles_m = (M + 127) / 128, tiles_n = (N + 127) / 128, k_tiles = (K + PIPE_BK - 1) / PIPE_BK;
    for (i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const float* a = A + strided_offset(a_batch, z);
        const float* b = B + strided_offset(b_batch, z);
        for (i64 t = blockIdx.x; t < tiles_m * tiles_n; t += gridDim.x) {
            const TileCoord tc = tile_coord(t, tiles_m, tiles_n, 128, 128);
            Acc acc{};
#pragma unroll
            for (int st = 0; st < PIPE_STAGES - 1; ++st) {
                if (st < k_tiles) {
                    const SmemAddr s = smem + st * STAGE_BYTES;
                    pipe_load(s, a, lda, tc.m0, M, K, (i64)st * PIPE_BK);
                    pipe_load(s + sizeof(PipeTiles::a), b, ldb, tc.n0, N, K, (i64)st * PIPE_BK);
                }
                cp_async_commit();
            }
            int read = 0, write = PIPE_STAGES - 1;
            for (i64 kt = 0; kt < k_tiles; ++kt) {
                cp_async_wait<PIPE_STAGES - 2>();
                __syncthreads();  // slice kt landed for all; slice kt - 1 is free to overwrite
                const i64 next = kt + PIPE_STAGES - 1;
                if (next < k_tiles) {
                    const SmemAddr s = smem + write * STAGE_BYTES;
                    pipe_load(s, a, lda, tc.m0, M, K, next * PIPE_BK);
                    pipe_load(s + sizeof(PipeTiles::a), b, ldb, tc.n0, N, K, next * PIPE_BK);
                }
                cp_async_commit();
                acc.step(*reinterpret_cast<const PipeTiles*>(base + read * STAGE_BYTES));
                read = read + 1 == PIPE_STAGES ? 0 : read + 1;
                write = write + 1 == PIPE_STAGES ? 0 : write + 1;
            }
            cp_async_wait<0>();
            __syncthreads();  // the stages are free for the next tile's copies
            const int rows = (int)min((i64)128, M - tc.m0), cols = (int)min((i64)128, N - tc.n0);
            acc.store(C + z * M * N + tc.m0 * N + tc.n0, N, rows, cols);
        }
    }
}

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


// ---- packs and pipelined products (matmul_tc.cuh) -----------------------------------------------
__device__ __forceinline__ unsigned round_tf32(float x) { return f32_to_tf32(x); }

#define PACK_PARAMS(Src, Out) \
    i64 batch, i64 rows, i64 k, i64 ld, Strided src_batch, const Src *src, i64 rs, i64 ks, Out *dst
#define PACK_ARGS batch, rows, k, ld, src_batch, src, rs, ks, dst

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_tf32(PACK_PARAMS(float, unsigned)) {
    pack_tiles<float, unsigned, round_tf32>(PACK_ARGS);
}

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_bf16(PACK_PARAMS(float, unsigned short)) {
    pack_tiles<float, unsigned short, f32_to_bf16>(PACK_ARGS);
}

__device__ __forceinline__ float keep_f32(float x) { return x; }

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_f32(PACK_PARAMS(float, float)) {
    pack_tiles<float, float, keep_f32>(PACK_ARGS);
}

// bf16 and f16 operands are already in the format their mma takes: one pack for both,
// moving the 16-bit values unchanged (no rounding, NaN payloads kept).
__device__ __forceinline__ unsigned short keep_b16(unsigned short x) { return x; }

extern "C" __global__ void __launch_bounds__(PACK_THREADS) pack_b16(PACK_PARAMS(unsigned short, unsigned short)) {
    pack_tiles<unsigned short, unsigned short, keep_b16>(PACK_ARGS);
}

// The pipelined exact f32 product; 2 blocks per SM.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
    gemm_f32_packed(i64 batch, i64 m, i64 n, i64 k, Strided a_batch, const float *a, i64 lda, Strided b_batch,
                    const float *b, i64 ldb, float *c) {
    gemm_f32_pipelined(batch, m, n, k, a_batch, a, lda, b_batch, b, ldb, c);
}

// 128×128 tiles on 4 warps, 3 stages: 96 KiB of shared memory, which fits every sm_80+ GPU
// (two blocks per SM on A100 and H100). Other shapes to tune against: matmul_tune.cu.
TC_KERNEL(gemm_tf32, unsigned, 4, MmaTf32, 2, 2, 3)
TC_KERNEL(gemm_bf16, unsigned short, 2, MmaBf16, 2, 2, 3)
TC_KERNEL(gemm_f16, unsigned short, 2, MmaF16, 2, 2, 3)
// The same shape on bf16 / f16 tensors, the result rounded to their dtype.
TC_KERNEL_OUT(gemm_bf16_bf16out, unsigned short, 2, MmaBf16, 2, 2, 3, bf16)
TC_KERNEL_OUT(gemm_f16_f16out, unsigned short, 2, MmaF16, 2, 2, 3, f16)
