// Warp-level tensor-core primitives (sm_80 and later): TF32 rounding and the two mma.sync
// shapes the GEMM kernels use. Everything that is inline PTX lives here, so the tiling code
// around it is plain CUDA C.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8 / m16n8k16"), with
// g = lane / 4 and q = lane % 4:
//   m16n8k8 tf32:  A (16×8) a0 (g, q) a1 (g+8, q) a2 (g, q+4) a3 (g+8, q+4);
//                  B (8×8)  b0 (q, g) b1 (q+4, g).
//   m16n8k16 bf16: A (16×16) reg0 (g, 2q..2q+1) reg1 (g+8, 2q..) reg2 (g, 2q+8..) reg3 (g+8, 2q+8..);
//                  B (16×8)  reg0 (2q..2q+1, g) reg1 (2q+8..2q+9, g); each register holds
//                  two bf16, the lower-indexed one in the low 16 bits.
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
