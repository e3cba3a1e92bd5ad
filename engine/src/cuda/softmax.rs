//! softmax, log_softmax and their backward (ptx/kernels/softmax.cu) along one axis: the axis
//! is swapped last (a copy unless already contiguous so), each row reduced by a warp or a
//! block, and the result returned in the original axis order as a permuted view, like the
//! CPU backend's.

use super::rows::{contiguous, swap_last, RowGroup};
use super::{kernel, output};
use crate::cuda::launch::run;
use crate::cuda::{CudaArray, CudaView};
use crate::Result;
use cudarc::driver::PushKernelArg;
use tessera_ptx::SOFTMAX;

/// The op codes of softmax.cu.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SoftmaxOp {
    Softmax = 0,
    LogSoftmax = 1,
    /// `x` is the softmax output, `grad` the output gradient.
    SoftmaxBackward = 2,
    /// `x` is the log_softmax output, `grad` the output gradient.
    LogSoftmaxBackward = 3,
}

/// `op` along `axis` (normalized); `grad` has `x`'s shape, dtype and device (checked by the caller).
pub(crate) fn along_axis(name: &'static str, op: SoftmaxOp, x: &CudaView, grad: Option<&CudaView>, axis: usize) -> Result<CudaArray> {
    let dev = x.buf.dev.clone();
    let perm = swap_last(x.rank(), axis);
    let moved_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let out = output(&dev, name, x.dtype(), &moved_shape)?;
    let n = x.shape()[axis];
    let rows = x.numel().checked_div(n).unwrap_or(0);
    if rows > 0 {
        let xs = contiguous(&x.permute(&perm)?, name)?;
        let gs = grad.map(|g| contiguous(&g.permute(&perm)?, name)).transpose()?;
        // The forward ops never read `g`; any valid pointer will do.
        let g_ptr = gs.as_ref().map_or(xs.ptr, |g| g.ptr);
        let group = RowGroup::for_len(n);
        let f = dev.function(name, SOFTMAX, &kernel(&group.kernel_base("softmax_rows"), x.dtype()))?;
        let (r, n64, code) = (rows as i64, n as i64, op as i32);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&r).arg(&n64).arg(&code).arg(&xs.ptr).arg(&g_ptr).arg(&out.ptr);
        run(&dev, name, b, group.launch(&dev, rows))?;
    }
    CudaArray::new(out, &moved_shape).permute(&perm)
}
