//! tessera's tensor engine: shapes, strided views, dtypes, devices, seeded random tensors
//! and the CPU kernels (rayon threads, vectorized loops, an AVX-512 GEMM of our own with
//! `matrixmultiply` as the portable fallback).
//!
//! Every fallible op returns [`Result`]; errors name the op and the shapes, dtypes or
//! devices involved.

pub mod cpu;
pub mod cuda;
mod device;
mod dtype;
mod error;
pub mod layout;
pub mod ops;
mod random;
mod storage;
mod tensor;

pub use device::Device;
pub use dtype::{DType, Element, FloatElem};
pub use error::{Error, Result};
/// The host types of the bf16 / f16 dtypes (`half::bf16`, `half::f16`).
pub use half;
pub use layout::Layout;
pub use ops::binary::{BinaryOp, CmpOp};
pub use ops::conv::Pair;
pub use ops::reduce::ReduceOp;
pub use ops::shape::PadMode;
pub use ops::unary::UnaryOp;
pub use random::Generator;
pub use storage::{live_cpu_bytes, peak_cpu_bytes, reset_peak_cpu_bytes, CpuStorage};
pub use tensor::Tensor;
