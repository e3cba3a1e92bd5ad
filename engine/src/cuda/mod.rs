//! The CUDA backend: device memory behind [`Storage::Cuda`](crate::storage::Storage), our own
//! PTX kernels (the `tessera-ptx` crate) launched through `cudarc`'s driver API.
//!
//! `cudarc` loads `libcuda` at run time (its `dynamic-loading` feature), so tessera builds
//! without a CUDA toolkit and a machine without a driver or GPU simply reports none:
//! [`device_count`] is 0 and `Device::Cuda(_)` is a clear error.
//!
//! One stream per device carries every kernel and copy, so work is ordered without events,
//! and the caching allocator can hand a freed buffer to the next op at once.
//!
//! This is a backend, below the engine ops: each launcher file (`conv.rs`, `matmul.rs`, ...) mirrors
//! one module of `ptx/kernels/`, takes [`CudaView`]s (a buffer and a layout) whose shapes the
//! engine op of the same name in `engine/src/ops/` has checked, and returns [`CudaArray`]s.
//! Anything built from several ops (the GEMM convolution) is composed up there.

mod alloc;
mod buffer;
mod device;
pub(crate) mod launch;
pub mod profile;
mod view;

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod rows;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod sort;

pub use alloc::MemoryStats;
pub(crate) use buffer::CudaBuffer;
pub(crate) use device::{device, CudaDevice};
pub use device::{device_count, device_name, is_available, memory_stats, reset_peak_memory, synchronize};
pub(crate) use launch::{acc_dtype, kernel, output};
pub use matmul::{matmul_precision, set_matmul_precision, MatmulPrecision};
pub(crate) use view::{common_device, CudaArray, CudaView};
