//! tessera's tensor engine: shapes, strided views, dtypes, devices, seeded random tensors,
//! the CPU kernels (rayon threads, vectorized loops, an AVX-512 GEMM of our own with
//! `matrixmultiply` as the portable fallback) and the CUDA backend.
//!
//! Layers, each importing only those below it: the ground floor (`dtype`, `device`, `error`,
//! `layout`, [`kinds`]), the backends ([`cpu`], [`cuda`]: kernels on buffers and layouts),
//! `storage` and `tensor`, `backend` (where a tensor's storage picks the backend, once per
//! op) and [`ops`] (the `Tensor` methods). engine/README.md maps each op family to its files
//! in every layer and says how to add an op.
//!
//! Every fallible op returns [`Result`]; errors name the op and the shapes, dtypes or
//! devices involved.

// `!(a <= b)` and the like are deliberate throughout: unlike `a > b` they are true when a
// value is NaN, which the checks written this way must reject (or, in the kernels, route
// the way PyTorch does).
#![allow(clippy::neg_cmp_op_on_partial_ord)]
mod backend;
pub mod cpu;
pub mod cuda;
mod device;
mod dtype;
mod error;
pub mod kinds;
pub mod layout;
pub mod ops;
mod random;
mod storage;
mod tensor;

pub use device::Device;
pub use dtype::{CpuStorage, DType, Element, FloatElem};
pub use error::{Error, Result};
/// The host types of the bf16 / f16 dtypes (`half::bf16`, `half::f16`).
pub use half;
pub use kinds::{BinaryOp, CmpOp, DerivativeNeeds, PadMode, Pair, ReduceOp, UnaryOp};
pub use layout::Layout;
pub use random::Generator;
pub use storage::{live_cpu_bytes, peak_cpu_bytes, reset_peak_cpu_bytes};
pub use tensor::Tensor;
