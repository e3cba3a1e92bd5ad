// Warp-level tensor-core primitives (sm_80 and later): TF32 rounding and the mma.sync
// shapes the GEMM kernels use (tf32, bf16, f16). Everything that is inline PTX lives here,
// so the tiling code around it is plain CUDA C.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8 / m16n8k16"), with
// g = lane / 4 and q = lane % 4:
//   m16n8k8 tf32:  A (16×8) a0 (g, q) a1 (g+8, q) a2 (g, q+4) a3 (g+8, q+4);
//                  B (8×8)  b0 (q, g) b1 (q+4, g).
//   m16n8k16 bf16 / f16 (the same layout for both):
//                  A (16×16) reg0 (g, 2q..2q+1) reg1 (g+8, 2q..) reg2 (g, 2q+8..) reg3 (g+8, 2q+8..);
//                  B (16×8)  reg0 (2q..2q+1, g) reg1 (2q+8..2q+9, g); each register holds
//                  two 16-bit values, the lower-indexed one in the low 16 bits.
//   D (16×8, f32, both shapes): d0 (g, 2q) d1 (g, 2q+1) d2 (g+8, 2q) d3 (g+8, 2q+1).
#pragma once

// f32 -> tf32 (10 explicit mantissa bits) rounded to nearest, ties away from zero; the low
// 13 bits of the result are zero.
__device__ __forceinline__ unsigned f32_to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// d += a · b on one warp's 16×8 tile, k = 8, tf32 inputs and f32 accumulators.
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += a · b on one warp's 16×8 tile, k = 16, bf16 inputs and f32 accumulators.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += a · b on one warp's 16×8 tile, k = 16, f16 inputs and f32 accumulators (the
// fragments are laid out as for bf16, so the same ldmatrix loads feed it).
__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Two f32 -> two bf16 / f16 in one register (lo in the low 16 bits), each rounded to nearest
// even, in one instruction: the GEMM epilogue's pair stores. Per value the same as
// f32_to_bf16 / f32_to_f16 of half.cuh (a NaN may come out with another payload).
__device__ __forceinline__ unsigned f32x2_to_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ unsigned f32x2_to_f16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// ---- shared-memory staging for the pipelined tensor-core kernels ------------------------------
// Shared-memory addresses as the 32-bit offsets cp.async and ldmatrix take.
typedef unsigned SmemAddr;

__device__ __forceinline__ SmemAddr smem_addr(const void* p) { return (SmemAddr)__cvta_generic_to_shared(p); }

// The block's dynamic shared memory (its size is the launch's shared_mem_bytes).
__device__ __forceinline__ unsigned char* dynamic_smem() {
    extern __shared__ __align__(128) unsigned char ts_dynamic_smem[];
    return ts_dynamic_smem;
}

// Copies 16 bytes global -> shared without holding the thread (L2 only, not L1). Only the
// first `bytes` (0..16) are read; the rest of the 16 are zero-filled, so a copy with
// bytes = 0 reads nothing and writes zeros.
__device__ __forceinline__ void cp_async16(SmemAddr dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes));
}

// Closes the group of copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }

// Waits until at most N of this thread's committed groups are still in flight (the N newest).
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Four 8×8 matrices of 16-bit elements (8 rows of 16 bytes each) from shared memory: lane l
// gives the address of row l % 8 of matrix l / 8, and register i of lane l receives 32-bit
// word l % 4 of row l / 4 of matrix i. For 32-bit (tf32) elements that is element (l / 4, l % 4)
// of an 8×4 matrix: the same layout as the tf32 fragments.
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], SmemAddr addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
