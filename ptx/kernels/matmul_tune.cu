// Tuning candidates for the tensor-core products of matmul.cu (same parameters, same packed
// operands), not yet measured against its defaults; a module of their own so that the
// GEMM module the engine loads stays small to JIT. engine/src/cuda/matmul.rs loads them
// when TESSERA_GEMM_VARIANT names one (_s4, _w8); benches/gpu_gemm.rs times them with
// GEMM_VARIANTS=_s4,_w8.
#include "matmul_tc.cuh"

// 4 stages of 128×128 tiles: 128 KiB of shared memory, one block per SM.
TC_KERNEL(gemm_tf32_s4, unsigned, 4, MmaTf32, 2, 2, 4)
TC_KERNEL(gemm_bf16_s4, unsigned short, 2, MmaBf16, 2, 2, 4)
// 128×256 tiles on 8 warps, 3 stages: 144 KiB, one block per SM; a quarter less shared-memory
// traffic per multiply-add than 128×128.
TC_KERNEL(gemm_tf32_w8, unsigned, 4, MmaTf32, 2, 4, 3)
TC_KERNEL(gemm_bf16_w8, unsigned short, 2, MmaBf16, 2, 4, 3)
