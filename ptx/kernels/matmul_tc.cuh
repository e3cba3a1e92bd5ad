// The tensor-core (TF32 and bf16) matrix products of matmul.cu, in two steps:
//
// 1. pack: each f32 operand is rounded (tf32: cvt.rna; bf16: nearest even) once and written
//    (a bf16 / f16 operand is copied unchanged: it already is in the format the mma takes)
//    as a plain row-major "K-contiguous" matrix: A as M rows of K, B transposed as N rows of
//    K, each row padded with zeros to a multiple of 8 elements so that every row starts on a
//    16-byte boundary. Any strides, transposed, sliced or flipped, are read here (through a
//    shared-memory tile, so reads and writes both coalesce); the product never sees them.
//    O(n²) work, next to the product's O(n³). A bf16 / f16 operand that already is
//    K-contiguous with 16-byte aligned rows skips this step: the product reads it in place.
// 2. the product: per block a BM×BN output tile (64×64 per warp, 4×8 mma fragments), K in
//    slices of 128 bytes per row (32 tf32 or 64 bf16) copied global -> shared with 16-byte
//    cp.async into a STAGES-deep ring, so the copies of later slices overlap the mma of this
//    one; fragments come from shared memory with ldmatrix (one instruction per 16×16 bf16 /
//    16×8 tf32 block, the same for both since it moves 32-bit words).
//
// The 16-byte chunks of each 128-byte row are XOR-swizzled by row % 8: ldmatrix reads the
// same logical chunk of 8 consecutive rows and cp.async writes 8 chunks of one row, and both
// land on 8 distinct 16-byte bank groups, so neither conflicts.
#pragma once
#include "common.cuh"
#include "matmul_order.cuh"
#include "half.cuh"
#include "mma.cuh"

// ---- step 1: packing ---------------------------------------------------------------------------

#define PACK_THREADS 256
#define PACK_TILE 32

// dst[z] = the rows × ld matrix whose element (r, k) is src[strided_offset(src_batch, z) +
// r·rs + k·ks] converted by Conv for k < K, and 0 for K <= k < ld; dst[z] starts at
// z·rows·ld. 32×32 tiles, held in the source type (Conv applies on the way out, so 16-bit
// values move as they are): read with the lanes along whichever of r and k has the smaller
// stride, written with the lanes along k.
template <typename Src, typename Out, Out (*Conv)(Src)>
__device__ void pack_tiles(i64 batch, i64 rows, i64 K, i64 ld, Strided src_batch, const Src* src, i64 rs, i64 ks,
                           Out* dst) {
    __shared__ Src t[PACK_TILE][PACK_TILE + 1];
    const int tx = threadIdx.x % PACK_TILE, ty = threadIdx.x / PACK_TILE;
    constexpr int PASSES = PACK_TILE * PACK_TILE / PACK_THREADS, STEP = PACK_THREADS / PACK_TILE;
    const bool k_fast = llabs(ks) <= llabs(rs);
    const i64 tiles_r = (rows + PACK_TILE - 1) / PACK_TILE, tiles_k = (ld + PACK_TILE - 1) / PACK_TILE;
    for (i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        const Src* s = src + strided_offset(src_batch, z);
        Out* d = dst + z * rows * ld;
        for (i64 tile = blockIdx.x; tile < tiles_r * tiles_k; tile += gridDim.x) {
            const i64 r0 = tile / tiles_k * PACK_TILE, k0 = tile % tiles_k * PACK_TILE;
#pragma unroll
            for (int p = 0; p < PASSES; ++p) {
                const int i = ty + p * STEP;
                const int tr = k_fast ? i : tx, tk = k_fast ? tx : i;
                const i64 r = r0 + tr, k = k0 + tk;
                t[tr][tk] = (r < rows && k < K) ? s[r * rs + k * ks] : Src();
            }
            __syncthreads();
#pragma unroll
            for (int p = 0; p < PASSES; ++p) {
                const int tr = ty + p * STEP;
                const i64 r = r0 + tr, k = k0 + tx;
                if (r < rows && k < ld) d[r * ld + k] = Conv(t[tr][tx]);
            }
            __syncthreads();
        }
    }
}

// ---- step 2: the product -----------------------------------------------------------------------

#define TC_SLICE 128  // bytes of K per row and stage
#define TC_WARP 64    // each warp computes a TC_WARP × TC_WARP piece of the block's tile

// Byte offset of 16-byte chunk `chunk` (0..7) of row `row` in a stage's A or B part.
__device__ __forceinline__ unsigned tc_offset(int row, int chunk) {
    return row * TC_SLICE + ((chunk ^ (row & 7)) << 4);
}

// ELEM: bytes per element (4: tf32, 2: bf16); a WARPS_M × WARPS_N grid of warps.
template <int ELEM_, int WARPS_M, int WARPS_N, int STAGES_> struct TcShape {
    static constexpr int ELEM = ELEM_;
    static constexpr int BM = TC_WARP * WARPS_M, BN = TC_WARP * WARPS_N, WN = WARPS_N, STAGES = STAGES_;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int KE = TC_SLICE / ELEM, CE = 16 / ELEM;  // elements per slice / per chunk
    static constexpr int A_BYTES = BM * TC_SLICE, STAGE_BYTES = (BM + BN) * TC_SLICE;
    static constexpr int SMEM_BYTES = STAGES * STAGE_BYTES;
};

// Queues the copies of one slice of ROWS rows: row r, elements k0.. k0 + KE of the matrix at
// p (row pitch ld), of which only rows < nrows and elements < K exist; the rest become zeros.
// Thread t copies chunk t % 8 of rows t / 8, t / 8 + THREADS / 8, ...
template <int ROWS, int THREADS, int ELEM, typename T>
__device__ __forceinline__ void tc_load(SmemAddr s, const T* p, i64 ld, int nrows, i64 K, i64 k0) {
    constexpr int PER = ROWS * 8 / THREADS, RSTEP = THREADS / 8;
    static_assert(PER * THREADS == ROWS * 8 && RSTEP % 8 == 0, "rows split evenly; row % 8 fixed per thread");
    const int c = threadIdx.x % 8, r0 = threadIdx.x / 8;
    const i64 k = k0 + c * (16 / ELEM);
    const int bytes = (int)max((i64)0, min((i64)16, (K - k) * ELEM));
    const T* q = p + r0 * ld + k;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
        const int r = r0 + i * RSTEP;
        const bool ok = r < nrows && bytes > 0;
        cp_async16(s + tc_offset(r, c), ok ? q + i * RSTEP * ld : p, ok ? bytes : 0);
    }
}

// acc += this warp's 64×64 piece of A-slice · B-sliceᵀ, in four k-steps of 32 bytes.
template <class Mma>
__device__ __forceinline__ void tc_slice(float (&acc)[4][8][4], SmemAddr sa, SmemAddr sb, int wm, int wn) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
        unsigned a[4][4], b[8][2];
        // A: matrices (rows 0-7, chunk lo) (rows 8-15, lo) (0-7, hi) (8-15, hi) = a0..a3.
#pragma unroll
        for (int i = 0; i < 4; ++i) ldmatrix_x4(a[i], sa + tc_offset(wm + i * 16 + lane % 16, 2 * s + lane / 16));
        // B (stored [n][k]): matrices (n 0-7, lo) (0-7, hi) (8-15, lo) (8-15, hi) = the two
        // registers of n-block j, then of n-block j + 1.
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            unsigned r[4];
            ldmatrix_x4(r, sb + tc_offset(wn + j * 8 + lane % 8 + lane / 16 * 8, 2 * s + lane / 8 % 2));
            b[j][0] = r[0];
            b[j][1] = r[1];
            b[j + 1][0] = r[2];
            b[j + 1][1] = r[3];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) Mma::mma(acc[i][j], a[i], b[j]);
    }
}

// Outputs (c, c + 1) of one row, c even, as one 8-byte (f32) or 4-byte (bf16, f16) store.
__device__ __forceinline__ void store_pair(float* o, float x, float y) {
    *reinterpret_cast<float2*>(o) = make_float2(x, y);
}
__device__ __forceinline__ void store_pair(bf16* o, float x, float y) {
    *reinterpret_cast<unsigned*>(o) = f32x2_to_bf16x2(x, y);
}
__device__ __forceinline__ void store_pair(f16* o, float x, float y) {
    *reinterpret_cast<unsigned*>(o) = f32x2_to_f16x2(x, y);
}

// Writes the in-bounds part of the warp's piece, each value rounded once to Out (f32: as it
// is); fragment element e of block (i, j) is at (16i + g + 8·(e / 2), 8j + 2q + e % 2).
// Pairs go out as one store where ld is even (then c, even, keeps them aligned).
template <typename Out>
__device__ __forceinline__ void tc_store(const float (&acc)[4][8][4], Out* out, i64 ld, int rows, int cols, int wm,
                                         int wn) {
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    const bool pairs = ld % 2 == 0;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = wm + i * 16 + g + 8 * h;
            if (r >= rows) continue;
            Out* o = out + r * ld;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const int c = wn + j * 8 + 2 * q;
                const float x = acc[i][j][2 * h], y = acc[i][j][2 * h + 1];
                if (pairs && c + 1 < cols) {
                    store_pair(o + c, x, y);
                } else {
                    if (c < cols) o[c] = from_acc<Out>(x);
                    if (c + 1 < cols) o[c + 1] = from_acc<Out>(y);
                }
            }
        }
}

// C[z] (contiguous M×N, f32 or rounded to bf16 / f16) = A[z] · B[z]ᵀ for K-contiguous A
// (M rows of pitch lda, z-th at z·a_bs) and B (N rows of pitch ldb, z-th at z·b_bs), packed
// or read in place: rows start 16-byte aligned (pitches and batch strides multiples of 16
// bytes), and elements of K and beyond read as zero whatever memory holds there (tc_load
// copies only the bytes below K). Blocks loop over tiles (x) and batches (z) with grid
// strides, so any grid is correct.
template <class S, class Mma, typename T, typename Out>
__device__ void tc_gemm(i64 batch, i64 M, i64 N, i64 K, const T* A, i64 lda, i64 a_bs, const T* B, i64 ldb, i64 b_bs,
                        Out* C) {
    const SmemAddr smem = smem_addr(dynamic_smem());
    const int warp = threadIdx.x / 32, wm = warp / S::WN * TC_WARP, wn = warp % S::WN * TC_WARP;
    const i64 tiles_m = (M + S::BM - 1) / S::BM, tiles_n = (N + S::BN - 1) / S::BN;
    const i64 k_tiles = (K + S::KE - 1) / S::KE;
    for (i64 z = blockIdx.z; z < batch; z += gridDim.z) {
        for (i64 t = blockIdx.x; t < tiles_m * tiles_n; t += gridDim.x) {
            const TileCoord tc = tile_coord(t, tiles_m, tiles_n, S::BM, S::BN);
            const int rows = (int)min((i64)S::BM, M - tc.m0), cols = (int)min((i64)S::BN, N - tc.n0);
            const T* a = A + z * a_bs + tc.m0 * lda;
            const T* b = B + z * b_bs + tc.n0 * ldb;
            float acc[4][8][4] = {};
            // Slice kt goes to stage kt % STAGES; STAGES - 1 slices are in flight ahead of
            // the one being multiplied. Every iteration commits a group (empty at the end),
            // so "all but the newest STAGES - 2 groups done" always means "slice kt landed".
#pragma unroll
            for (int st = 0; st < S::STAGES - 1; ++st) {
                if (st < k_tiles) {
                    const SmemAddr s = smem + st * S::STAGE_BYTES;
                    tc_load<S::BM, S::THREADS, S::ELEM>(s, a, lda, rows, K, (i64)st * S::KE);
                    tc_load<S::BN, S::THREADS, S::ELEM>(s + S::A_BYTES, b, ldb, cols, K, (i64)st * S::KE);
                }
                cp_async_commit();
            }
            int read = 0, write = S::STAGES - 1;
            for (i64 kt = 0; kt < k_tiles; ++kt) {
                cp_async_wait<S::STAGES - 2>();
                // Slice kt is visible to all, and every warp is done with slice kt - 1,
                // whose stage the next copies overwrite.
                __syncthreads();
                const i64 next = kt + S::STAGES - 1;
                if (next < k_tiles) {
                    const SmemAddr s = smem + write * S::STAGE_BYTES;
                    tc_load<S::BM, S::THREADS, S::ELEM>(s, a, lda, rows, K, next * S::KE);
                    tc_load<S::BN, S::THREADS, S::ELEM>(s + S::A_BYTES, b, ldb, cols, K, next * S::KE);
                }
                cp_async_commit();
                const SmemAddr s = smem + read * S::STAGE_BYTES;
                tc_slice<Mma>(acc, s, s + S::A_BYTES, wm, wn);
                read = read + 1 == S::STAGES ? 0 : read + 1;
                write = write + 1 == S::STAGES ? 0 : write + 1;
            }
            cp_async_wait<0>();
            __syncthreads();  // the stages are free for the next tile's copies
            tc_store(acc, C + z * M * N + tc.m0 * N + tc.n0, N, rows, cols, wm, wn);
        }
    }
}

struct MmaTf32 {
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_m16n8k8_tf32(d, a, b);
    }
};

struct MmaBf16 {
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_m16n8k16_bf16(d, a, b);
    }
};

struct MmaF16 {
    static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
        mma_m16n8k16_f16(d, a, b);
    }
};

// ---- entry points ------------------------------------------------------------------------------
#define TC_PARAMS(T, OUT) \
    i64 batch, i64 m, i64 n, i64 k, const T *a, i64 lda, i64 a_bs, const T *b, i64 ldb, i64 b_bs, OUT *c
#define TC_ARGS batch, m, n, k, a, lda, a_bs, b, ldb, b_bs, c

// name, operand type, bytes per element, mma, warps down × across, stages, output type.
// 128 threads: two blocks per SM (registers: 128 accumulators + 64 fragment registers a
// thread).
#define TC_KERNEL_OUT(name, T, ELEM, MMA, WM, WN, ST, OUT)                                                    \
    extern "C" __global__ void __launch_bounds__(32 * WM * WN, WM * WN == 4 ? 2 : 1) name(TC_PARAMS(T, OUT)) { \
        tc_gemm<TcShape<ELEM, WM, WN, ST>, MMA>(TC_ARGS);                                                      \
    }
// The f32-output products (f32 tensors under the TF32 / bf16 precisions).
#define TC_KERNEL(name, T, ELEM, MMA, WM, WN, ST) TC_KERNEL_OUT(name, T, ELEM, MMA, WM, WN, ST, float)
