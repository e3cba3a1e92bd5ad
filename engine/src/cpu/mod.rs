//! The CPU backend: host kernels on slices and layouts, never on tensors. Shared machinery
//! (strided gathers and the elementwise map in `strided`, vectorized f32 transcendentals in
//! `vmath`, the GEMM in `gemm`, the allocator settings in `allocator`) and one file per op
//! family named as in `ops/` and `cuda/` (`conv` with `direct_conv` and `im2col`, `matmul`,
//! `norm`, `pool`, `reduce`, `softmax`).

pub mod allocator;
pub(crate) mod conv;
pub mod direct_conv;
pub mod gemm;
pub mod im2col;
pub mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub mod reduce;
pub(crate) mod softmax;
pub mod strided;
pub mod vmath;

/// Below this many elements a kernel runs on the calling thread: handing work to rayon costs
/// more than it saves on small tensors.
pub const PAR_MIN_ELEMS: usize = 1 << 15;
