//! The one error type of the engine: every fallible op returns `Result<_, Error>`, and the
//! message names the op and the shapes, dtypes or devices involved.

use crate::{DType, Device};

/// Why an engine op refused its inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{op}: shapes {lhs:?} and {rhs:?} are incompatible{hint}")]
    ShapeMismatch { op: &'static str, lhs: Vec<usize>, rhs: Vec<usize>, hint: String },
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank} (shape {shape:?})")]
    AxisOutOfRange { op: &'static str, axis: isize, rank: usize, shape: Vec<usize> },
    #[error("{op}: dtypes {lhs:?} and {rhs:?} differ; cast one with `to_dtype` first")]
    DTypeMismatch { op: &'static str, lhs: DType, rhs: DType },
    #[error("{op}: dtype {dtype:?} is not supported here (expected {expected})")]
    UnsupportedDType { op: &'static str, dtype: DType, expected: &'static str },
    /// A CPU op without a bf16 / f16 path (ops compute halves by widening to f32; one that
    /// does not yet says so here rather than failing obscurely).
    #[error("{op}: no {} kernel on the CPU; cast first with `.to_dtype(DType::F32)`", .dtype.name())]
    HalfOnCpu { op: &'static str, dtype: DType },
    #[error("{op}: tensors live on different devices, {lhs} and {rhs}; copy one with `to_device` first")]
    DeviceMismatch { op: &'static str, lhs: Device, rhs: Device },
    #[error("{op}: device {device} is not available: {reason}")]
    DeviceUnavailable { op: &'static str, device: Device, reason: String },
    #[error("{op}: {len} elements given for shape {shape:?}, which holds {expected}")]
    LengthMismatch { op: &'static str, len: usize, shape: Vec<usize>, expected: usize },
    #[error("{op}: the element count of shape {shape:?} overflows usize")]
    ShapeOverflow { op: &'static str, shape: Vec<usize> },
    #[error("{op}: has no kernel for {device} yet; copy the tensors with `to_device(Device::Cpu)` first")]
    NoKernel { op: &'static str, device: Device },
    #[error("{op}: out of memory on {device} asking for {bytes} bytes ({free} of {total} bytes free){detail}")]
    OutOfMemory { op: &'static str, device: Device, bytes: usize, free: usize, total: usize, detail: String },
    #[error("{op}: the CUDA driver failed on {device}: {msg}")]
    Cuda { op: &'static str, device: Device, msg: String },
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
}

/// Shorthand used by every engine op.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape mismatch with no extra explanation.
    pub fn shapes(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec(), hint: String::new() }
    }

    /// A shape mismatch with a sentence on what was expected.
    pub fn shapes_hint(op: &'static str, lhs: &[usize], rhs: &[usize], hint: impl Into<String>) -> Self {
        Error::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec(), hint: format!(": {}", hint.into()) }
    }

    /// Any other invalid argument, explained in words.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid { op, msg: msg.into() }
    }
}
