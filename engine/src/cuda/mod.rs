//! The CUDA backend: device memory behind [`Storage::Cuda`](crate::storage::Storage), our own
//! PTX kernels (the `tessera-ptx` crate) launched through `cudarc`'s driver API.
//!
//! `cudarc` loads `libcuda` at run time (its `dynamic-loading` feature), so tessera builds
//! without a CUDA toolkit and a machine without a driver or GPU simply reports none:
//! [`device_count`] is 0 and `Device::Cuda(_)` is a clear error.
//!
//! One stream per device carries every kernel and copy, so work is ordered without events,
//! and the caching allocator can hand a freed buffer to the next op at once.

mod alloc;
mod buffer;
mod device;
pub(crate) mod launch;
pub(crate) mod ops;
pub mod profile;

pub use alloc::MemoryStats;
pub(crate) use buffer::CudaBuffer;
pub(crate) use device::{device, CudaDevice};
pub use device::{device_count, device_name, is_available, memory_stats, reset_peak_memory, synchronize};
pub use ops::matmul::{matmul_precision, set_matmul_precision, MatmulPrecision};
