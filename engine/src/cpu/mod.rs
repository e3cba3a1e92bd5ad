//! CPU kernels shared by many ops: strided gathers, the elementwise map machinery, vectorized
//! f32 transcendentals and GEMM.

pub mod allocator;
pub mod direct_conv;
pub mod gemm;
pub mod im2col;
pub mod strided;
pub mod vmath;

/// Below this many elements a kernel runs on the calling thread: handing work to rayon costs
/// more than it saves on small tensors.
pub const PAR_MIN_ELEMS: usize = 1 << 15;
