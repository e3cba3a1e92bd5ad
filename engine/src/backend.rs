//! The one place a tensor's storage picks the backend that runs an op. An op in `ops/`
//! validates its operands, then matches once on [`Tensor::backend`]: the CPU arm runs the
//! slice kernels of `cpu/`, the CUDA arm the launchers of `cuda/` on views of the operands
//! ([`cuda_operands`]) and wraps what they return with [`Tensor::from_cuda_array`]. Neither
//! backend sees a `Tensor`.

use crate::cuda::CudaView;
use crate::{Device, Error, Result, Tensor};

/// Which backend runs an op on a tensor: where its storage lives.
pub(crate) enum Backend<'a> {
    Cpu,
    Cuda(CudaView<'a>),
}

impl Tensor {
    /// The backend for ops on this tensor, with its device view when that is a GPU.
    pub(crate) fn backend(&self) -> Backend<'_> {
        match self.cuda_buffer() {
            Some(buf) => Backend::Cuda(CudaView::new(buf, self.layout())),
            None => Backend::Cpu,
        }
    }

    /// This operand as a device view, or a device mismatch naming `op` when it lives on the
    /// host (an op that picked the CUDA backend for its first operand checks the others so).
    pub(crate) fn cuda_operand(&self, op: &'static str) -> Result<CudaView<'_>> {
        match self.backend() {
            Backend::Cuda(v) => Ok(v),
            Backend::Cpu => Err(Error::DeviceMismatch { op, lhs: self.device(), rhs: Device::Cuda(0) }),
        }
    }
}

/// Device views of operands that must all live on the first one's GPU.
pub(crate) fn cuda_operands<'a, const N: usize>(op: &'static str, ts: [&'a Tensor; N]) -> Result<[CudaView<'a>; N]> {
    let first = ts[0].cuda_operand(op)?;
    for t in &ts[1..] {
        if t.device() != first.device() {
            return Err(Error::DeviceMismatch { op, lhs: first.device(), rhs: t.device() });
        }
    }
    Ok(ts.map(|t| t.cuda_operand(op).expect("on the first operand's GPU")))
}

/// [`cuda_operands`] for any number of operands.
pub(crate) fn cuda_views<'a>(op: &'static str, ts: &[&'a Tensor]) -> Result<Vec<CudaView<'a>>> {
    let first = ts[0].cuda_operand(op)?;
    for t in &ts[1..] {
        if t.device() != first.device() {
            return Err(Error::DeviceMismatch { op, lhs: first.device(), rhs: t.device() });
        }
    }
    ts.iter().map(|t| t.cuda_operand(op)).collect()
}
